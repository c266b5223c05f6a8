"""The real ingress image's form on Compose, run without a registry: the ingress service of a
``--no-stand-ins`` file (its ``/bin/sh`` entrypoint and the generated configuration, ``$``
escaped for Compose) put on the stand-in image (which has /bin/sh and nginx from the host), on a
network with a bannou node: Compose's interpolation, Docker's DNS resolver and bannou's routes
(/health, /auth/login, a WebSocket at /connect) are proven by the engine itself."""

from __future__ import annotations

import subprocess
import time

import httpx
import pytest
import yaml
from websockets.sync.client import connect as ws_connect

from pytest_bannou.backends.base import BackendOptions
from pytest_bannou.backends.docker import compose_file
from pytest_bannou.backends.docker import engine as _docker
from pytest_bannou.backends.docker.compose import ComposeBackend, compose_command
from pytest_bannou.backends.ingress import CONF_ENV, nginx_binary
from pytest_bannou.cli import main
from pytest_bannou.topology.ingress import HEALTH_BODY
from tests.support.docker_helpers import new_run_id

from .test_compose_ingress import edge_topology

COMPOSE = ComposeBackend.available()
pytestmark = [
    pytest.mark.docker,
    pytest.mark.skipif(not COMPOSE, reason=f"needs Docker Compose v2: {COMPOSE.reason}"),
    pytest.mark.usefixtures("local_images"),
]


@pytest.mark.parametrize("backend", ["compose", "swarm", "kubernetes"])
def test_a_stand_in_keeps_its_own_entrypoint(capsys, monkeypatch, backend):
    monkeypatch.setenv("BANNOU_INFRA", "true")
    assert main(["render", "test-edge", "--backend", backend]) == 0
    text = capsys.readouterr().out
    assert "openresty/openresty" in text and CONF_ENV not in text
    assert "entrypoint" not in text and "/bin/sh" not in text


@pytest.mark.skipif(nginx_binary() is None, reason="needs nginx for the stand-in: apt-get install nginx")
def test_the_public_ingress_form_runs_under_compose(tmp_path, docker_client):
    topo = edge_topology(tmp_path)
    rid = new_run_id("pubing")
    options = BackendOptions(run_id=rid, workdir=tmp_path)
    project = compose_file.project_name(options, topo)
    infos = _docker.inspect_images(docker_client, topo)
    doc = compose_file.render(topo, options, project, infos)
    public = compose_file.render(topo, options, project, {}, pull_public=True)["services"]["ingress"]
    assert "entrypoint" not in doc["services"]["ingress"]  # the stand-in's own
    doc["services"]["ingress"]["entrypoint"] = public["entrypoint"]
    doc["services"]["ingress"]["environment"] = public["environment"]
    path = tmp_path / "public-ingress.yaml"
    path.write_text(compose_file.render_text(doc))
    compose = [*compose_command().argv, "-p", project, "-f", str(path)]
    try:
        up = subprocess.run([*compose, "up", "-d"], capture_output=True, text=True, timeout=300)
        assert up.returncode == 0, up.stderr
        port = subprocess.run([*compose, "port", "ingress", "80"], capture_output=True, text=True, timeout=60)
        assert port.returncode == 0, port.stderr
        url = "http://127.0.0.1:" + port.stdout.strip().rsplit(":", 1)[1]
        deadline = time.monotonic() + 120
        while True:
            try:
                login = httpx.post(url + "/auth/login", timeout=5)
                if login.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, _logs(compose)
            time.sleep(0.5)
        assert login.json()["path"] == "/auth/login"
        assert httpx.get(url + "/health", timeout=10).text.strip() == HEALTH_BODY
        wsport = url.rpartition(":")[2]
        with ws_connect(f"ws://127.0.0.1:{wsport}/connect", open_timeout=10, proxy=None) as ws:
            ws.send("through the real image's form")
            assert ws.recv(timeout=10) == "through the real image's form"
        conf = yaml.safe_load(path.read_text())["services"]["ingress"]["environment"][CONF_ENV]
        assert "resolver 127.0.0.11" in conf
    finally:
        subprocess.run([*compose, "down", "-v", "--timeout", "5"], capture_output=True, timeout=300)


def _logs(compose: list[str]) -> str:
    out = subprocess.run([*compose, "logs", "--no-color"], capture_output=True, text=True, timeout=60)
    return out.stdout[-4000:] + out.stderr[-2000:]
