"""The ingress on Compose (and Swarm): the stand-in image (the host's nginx behind the package's
entrypoint) proxies HTTP and WebSocket to the bannou node, and sits on the environment's network
plus an ``external`` one where an image tester runs alone, reaching the ingress and not bannou,
as in bannou's edge set-up."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect as ws_connect

from pytest_bannou.backends.base import Backend, BackendOptions, TesterContainer
from pytest_bannou.backends.docker import engine as _docker
from pytest_bannou.backends.docker.compose import ComposeBackend
from pytest_bannou.backends.docker.images import INGRESS_TAG
from pytest_bannou.backends.docker.swarm import SwarmBackend
from pytest_bannou.backends.ingress import nginx_binary
from pytest_bannou.preset.library import load_file
from pytest_bannou.preset.resolve import resolve
from pytest_bannou.testers.endpoints import endpoint_variables
from tests.support.backends import deploy_ready
from tests.support.docker_helpers import new_run_id
from tests.support.ws_echo import __file__ as WS_ECHO

COMPOSE = ComposeBackend.available()
pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(not COMPOSE, reason=f"needs Docker Compose v2: {COMPOSE.reason}"),
    pytest.mark.skipif(nginx_binary() is None, reason="needs nginx for the stand-in: apt-get install nginx"),
    pytest.mark.usefixtures("local_images"),
]

PRESET = """\
name: edge-docker
topology:
  nodes:
    - name: bannou
      services: [auth, connect]
      command: [{python}, /ws-echo/ws_echo.py]
      volumes: ["{echo_dir}:/ws-echo:ro"]
  infrastructure:
    ingress:
      enabled: true
"""

# the host interpreter itself, not a virtualenv's link to it: the local images mount it whichever
# checkout built them last (they are shared on a test machine)
PYTHON = os.path.realpath(sys.executable)

# run in the tester container (stdlib only): bannou must be out of reach, the ingress in reach
# (HTTP, and a WebSocket round trip through /connect)
PROBE = r"""
import base64, json, os, socket, urllib.request
out = {}
try:
    socket.create_connection(("bannou", 80), timeout=3).close()
    out["bannou"] = "reached"
except OSError as exc:
    out["bannou"] = type(exc).__name__
host, port = os.environ["OPENRESTY_HOST"], os.environ["OPENRESTY_PORT"]
out["health"] = urllib.request.urlopen(f"http://{host}:{port}/health", timeout=10).read().decode().strip()
req = urllib.request.Request(f"http://{host}:{port}/auth/login", data=b"{}", method="POST")
out["login"] = json.loads(urllib.request.urlopen(req, timeout=10).read())["path"]
hostport, _, path = os.environ["CONNECT_ENDPOINT"].partition("/")
ws = socket.create_connection((hostport.split(":")[0], int(hostport.split(":")[1])), timeout=10)
key = base64.b64encode(os.urandom(16)).decode()
ws.sendall(f"GET /{path} HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
f = ws.makefile("rb")
out["upgrade"] = f.readline().decode().strip()
while f.readline() not in (b"\r\n", b""):
    pass
msg = b"round trip"
ws.sendall(bytes([0x81, 0x80 | len(msg)]) + b"\0\0\0\0" + msg)
head = f.read(2)
out["ws"] = f.read(head[1] & 0x7F).decode()
ws.close()
out["env"] = {k: os.environ[k] for k in ("OPENRESTY_HOST", "OPENRESTY_PORT", "CONNECT_ENDPOINT")}
print("PROBE " + json.dumps(out), flush=True)
"""


def edge_topology(tmp_path: Path):
    path = tmp_path / "edge-docker.yaml"
    path.write_text(PRESET.format(python=PYTHON, echo_dir=Path(WS_ECHO).parent))
    return resolve(load_file(path))


def probe_from_outside(backend: Backend, topo, tmp_path: Path) -> dict:
    """Run PROBE as an image tester of ``backend``'s environment; its JSON line."""
    log = tmp_path / "probe.log"
    outcome = backend.run_tester_container(  # type: ignore[attr-defined]
        TesterContainer(
            name="probe",
            run_id=backend.run_id,
            backend=backend.name,
            env_key="edge-docker",
            image=None,
            command=(PYTHON, "-c", PROBE),
            target="bannou",
            environment=lambda address: endpoint_variables(topo, "bannou", address),
            workdir=tmp_path,
            log_path=log,
            timeout=120,
        )
    )
    text = log.read_text()
    assert outcome.exit_code == 0, f"{outcome}\n{text}"
    line = next(ln for ln in text.splitlines() if "PROBE " in ln)
    return {"network": outcome.network, **json.loads(line.split("PROBE ", 1)[1])}


def check_edge(backend: Backend, topo, tmp_path: Path, docker_client) -> None:
    deploy_ready(backend, topo, timeout=180)
    front = backend.endpoint("ingress")
    health = httpx.get(front.url() + "/health", timeout=10)
    assert health.status_code == 200 and health.text.strip() == "OpenResty OK"
    assert httpx.post(front.url() + "/auth/login", timeout=10).json()["path"] == "/auth/login"
    with ws_connect(f"ws://{front.host}:{front.port}/connect", open_timeout=10, proxy=None) as ws:
        ws.send("from the host")
        assert ws.recv(timeout=10) == "from the host"

    seen = probe_from_outside(backend, topo, tmp_path)
    assert seen["bannou"] != "reached", seen  # not on bannou's network
    assert seen["upgrade"].startswith("HTTP/1.1 101"), seen
    assert seen["health"] == "OpenResty OK" and seen["login"] == "/auth/login" and seen["ws"] == "round trip"
    assert (
        seen["env"]["OPENRESTY_HOST"] == "ingress" and seen["env"]["CONNECT_ENDPOINT"] == "ingress:80/connect"
    )
    net = docker_client.api.inspect_network(seen["network"])
    assert net["Labels"].get(_docker.LABEL_EDGE_NETWORK) == "true"
    # (an overlay also lists its load-balancer endpoint, ``NETWORK-endpoint``)
    members = {c["Name"] for c in net["Containers"].values() if not c["Name"].endswith("-endpoint")}
    assert members and all("ingress" in m for m in members), members  # only the ingress is there


@pytest.fixture
def make_backend(tmp_path):
    created: list[Backend] = []

    def factory(cls: type[Backend], prefix: str) -> Backend:
        rid = new_run_id(prefix)
        b = cls(BackendOptions(run_id=rid, workdir=tmp_path / rid, ready_timeout=120))
        created.append(b)
        return b

    yield factory
    for b in created:
        b.teardown()


def test_the_stand_in_is_tagged_as_presets_name_the_ingress(docker_client, tmp_path):
    assert edge_topology(tmp_path).node("ingress").image == INGRESS_TAG
    info = _docker.image_info(docker_client, INGRESS_TAG)
    assert info is not None and info.local_build


def test_compose_ingress_fronts_bannou_and_the_tester_is_outside(make_backend, tmp_path, docker_client):
    backend = make_backend(ComposeBackend, "ing")
    topo = edge_topology(tmp_path)
    check_edge(backend, topo, tmp_path, docker_client)
    doc = (Path(backend.file)).read_text()
    assert "external" in doc
    backend.teardown()
    left = docker_client.api.networks(filters={"label": [f"io.bannou.pytest.run-id={backend.run_id}"]})
    assert not left


SWARM = SwarmBackend.available()


@pytest.mark.skipif(not SWARM, reason=f"needs a Swarm: {SWARM.reason}")
def test_swarm_ingress_fronts_bannou_and_the_tester_is_outside(make_backend, tmp_path, docker_client):
    backend = make_backend(SwarmBackend, "ings")
    topo = edge_topology(tmp_path)
    check_edge(backend, topo, tmp_path, docker_client)
    backend.teardown()
    deadline = time.monotonic() + 30
    flt = {"label": [f"io.bannou.pytest.run-id={backend.run_id}"]}
    while docker_client.api.networks(filters=flt) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not docker_client.api.networks(filters=flt)
