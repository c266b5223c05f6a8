"""The ingress on the local backend: the host's nginx with a generated configuration in the run
directory, proxying HTTP and a WebSocket upgrade to the bannou node the way bannou's OpenResty
does, answering /health itself, gone at teardown."""

from __future__ import annotations

import os
import stat
import sys
import time
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect as ws_connect

from pytest_bannou.backends.base import BackendOptions
from pytest_bannou.backends.ingress import nginx_binary
from pytest_bannou.backends.local.backend import LocalBackend
from pytest_bannou.errors import BackendUnavailable
from pytest_bannou.health.probes import HttpProbe, IngressProbe, probe_for
from pytest_bannou.health.wait import wait_ready
from pytest_bannou.preset.library import load_file
from pytest_bannou.preset.resolve import resolve
from pytest_bannou.topology.ingress import UPSTREAM_ENV, ingress_target
from tests.support.backends import deploy_ready
from tests.support.ws_echo import __file__ as WS_ECHO

from .test_local import wait_dead

needs_nginx = pytest.mark.skipif(nginx_binary() is None, reason="needs nginx: apt-get install nginx")

PRESET = """\
name: edge-local
topology:
  nodes:
    - name: bannou
      services: [auth, connect]
      command: [{python}, {echo}]
  infrastructure:
    ingress:
      enabled: true
"""


def edge_topology(tmp_path: Path, **replicas: int):
    path = tmp_path / "edge-local.yaml"
    path.write_text(PRESET.format(python=sys.executable, echo=WS_ECHO))
    return resolve(load_file(path), replicas=replicas)


@pytest.fixture
def local(tmp_path):
    b = LocalBackend(BackendOptions(run_id="ingress-test", workdir=tmp_path / "run"), grace=2.0)
    yield b
    b.teardown()


def test_resolve_puts_the_ingress_after_the_node_it_fronts(tmp_path):
    topo = edge_topology(tmp_path)
    ingress, bannou = topo.node("ingress"), topo.node("bannou")
    assert ingress_target(topo) == bannou
    assert ingress.depends_on == ("bannou",) and "ingress" not in bannou.depends_on
    assert ingress.environment[UPSTREAM_ENV] == "bannou:80"
    assert ingress.image == "openresty/openresty:1.21.4.2-0-alpine"
    assert (ingress.healthcheck.kind, ingress.healthcheck.target) == ("http", "/health")
    # its readiness includes reaching bannou: its failures count only after bannou's own budget
    hc = bannou.healthcheck
    assert ingress.healthcheck.start_period == hc.start_period + hc.retries * hc.interval > 0


@needs_nginx
def test_the_ingress_proxies_http_and_websocket_and_leaves_no_process(local, tmp_path):
    topo = edge_topology(tmp_path, bannou=2)
    deploy_ready(local, topo, timeout=90)
    front = local.endpoint("ingress")
    assert front.host == "127.0.0.1"
    assert {local.endpoint("bannou", replica=i).port for i in (0, 1)}.isdisjoint({front.port})

    health = httpx.get(front.url() + "/health", timeout=10)  # the ingress's own answer
    assert health.status_code == 200 and health.text.strip() == "OpenResty OK"
    login = httpx.post(front.url() + "/auth/login", json={"u": "x"}, timeout=10).json()
    assert login["path"] == "/auth/login" and login["method"] == "POST" and '"u"' in login["body"]
    assert login["headers"]["X-Forwarded-For"] == "127.0.0.1"
    assert httpx.post(front.url() + "/account/get", timeout=10).json()["path"] == "/account/get"

    with ws_connect(f"ws://{front.host}:{front.port}/connect?session=1", open_timeout=10, proxy=None) as ws:
        ws.send("hello through the ingress")
        assert ws.recv(timeout=10) == "hello through the ingress"
        ws.send(b"\x00\x01binary")
        assert ws.recv(timeout=10) == b"\x00\x01binary"

    prefix = local.rundir / "ingress-ingress"
    conf = prefix / "nginx.conf"
    assert stat.S_IMODE(prefix.stat().st_mode) == 0o700 and stat.S_IMODE(conf.stat().st_mode) == 0o600
    text = conf.read_text()
    for port in (local.endpoint("bannou", replica=i).port for i in (0, 1)):
        assert f"server 127.0.0.1:{port};" in text  # both replicas behind it
    assert f"listen 127.0.0.1:{front.port}" in text and "proxy_read_timeout 3600s" in text
    nginx_pid = int((prefix / "nginx.pid").read_text())
    leader = int(next(s.id for s in local.status() if s.node == "ingress"))
    assert _children(leader) == [nginx_pid]  # nginx under the leader that keeps the marker
    workers = [p for p in _children(nginx_pid)]
    assert workers, "nginx started no worker"

    local.teardown()
    for pid in (leader, nginx_pid, *workers):
        assert wait_dead(pid), f"nginx process {pid} outlived teardown"


def _nginx_processes(backend: LocalBackend) -> list[int]:
    leader = int(next(s.id for s in backend.status() if s.node == "ingress"))
    master = _children(leader)
    return [leader, *master, *(w for m in master for w in _children(m))]


@needs_nginx
def test_clean_of_a_kept_run_stops_its_nginx(tmp_path):
    # nginx writes its process title over its environment: without the leader that keeps the
    # session's marker, clean (and the stale sweep) could not prove it ours and left it running
    options = BackendOptions(run_id="ingress-clean", workdir=tmp_path / "run")
    kept = LocalBackend(options, grace=2.0)
    try:
        deploy_ready(kept, edge_topology(tmp_path), timeout=90)
        pids = _nginx_processes(kept)
        assert len(pids) >= 3, pids
        removed = LocalBackend.clean("ingress-clean", options)  # as `bannou-env clean --run-id`
        assert any("ingress" in line for line in removed), removed
        for pid in pids:
            assert wait_dead(pid), f"nginx process {pid} outlived clean"
    finally:
        kept.teardown()


@needs_nginx
def test_another_process_scales_the_fronted_node_and_nginx_reloads(local, tmp_path):
    # what `bannou-env update` does: a new backend instance takes the run over (the state file
    # lists the ingress before a recreated node) and changes it; nginx follows the node
    from pytest_bannou.topology.diff import diff

    topo = edge_topology(tmp_path)
    deploy_ready(local, topo, timeout=90)
    changed = topo.with_nodes(
        [replace(n, environment={**n.environment, "X": "1"}) if n.name == "bannou" else n for n in topo.nodes]
    )
    local.apply(diff(topo, changed), time.monotonic() + 90)  # bannou recreated, listed last
    wait_ready(local, changed, time.monotonic() + 90)  # as the plugin does after a change
    before = _nginx_processes(local)
    other = LocalBackend(BackendOptions(run_id="ingress-test", workdir=local.rundir.parent), grace=2.0)
    other.reattach(changed, time.monotonic() + 30)
    scaled = changed.with_nodes([replace(n, replicas=2) if n.name == "bannou" else n for n in changed.nodes])
    other.apply(diff(changed, scaled), time.monotonic() + 90)
    wait_ready(other, scaled, time.monotonic() + 90)  # nginx answers 502 until one listens
    conf = (other.rundir / "ingress-ingress" / "nginx.conf").read_text()
    ports = [other.endpoint("bannou", replica=i).port for i in (0, 1)]
    assert all(f"server 127.0.0.1:{p};" in conf for p in ports), conf
    assert _nginx_processes(other)[:2] == before[:2]  # reloaded (SIGHUP), not restarted
    front = other.endpoint("ingress")
    seen = set()
    deadline = time.monotonic() + 30
    while len(seen) < 2 and time.monotonic() < deadline:  # nginx reloads in the background
        seen.add(httpx.get(front.url() + "/any", timeout=10).json()["port"])
    assert seen == set(ports)


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def test_without_nginx_the_error_says_what_to_install(local, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr("pytest_bannou.backends.ingress.nginx_binary", lambda: None)
    with pytest.raises(BackendUnavailable, match=r"ingress.*apt-get install nginx"):
        local.deploy(edge_topology(tmp_path), deadline=1e18)
    assert not local.rundir.exists() or not list(local.rundir.glob("*.log"))


REFERENCE = """\
name: edge-reference
topology:
  nodes:
    - name: bannou
      services: [account, auth, connect]
  infrastructure:
    ingress:
      enabled: true
"""


@needs_nginx
def test_the_reference_edge_tester_passes_through_the_ingress(local, tmp_path):
    # the ingress answers /health itself, in plain text, like bannou's OpenResty: the tester
    # learns the node's services from the WebSocket welcome and routes every one through it
    from pytest_bannou.reference.tester import WEBSOCKET_CASE
    from pytest_bannou.testers import runner
    from pytest_bannou.topology.model import TesterSpec

    path = tmp_path / "edge-reference.yaml"
    path.write_text(REFERENCE)
    deploy_ready(local, resolve(load_file(path)), timeout=90)
    front = local.endpoint("ingress")
    command = ("python", "-m", "pytest_bannou.reference.tester", "--format", "edge-tester")
    spec = TesterSpec(name="edge-tester", command=command, format="edge-tester", timeout=120)
    run = runner.run_tester(spec, environment=runner.tester_environment(front.url()), workdir=tmp_path)
    assert run.exit_code == 0 and run.ok, run.raw_tail
    assert run.case("Health Check").outcome == "passed"
    for service in ("account", "auth", "connect"):
        assert run.case(f"Service Routing - {service}").outcome == "passed"
    assert run.case(WEBSOCKET_CASE).outcome == "passed"


@needs_nginx
def test_the_ingress_is_ready_only_while_it_reaches_the_node_behind_it(local, tmp_path):
    # its own /health answers from nginx alone; the plugin's probe also asks for a route it
    # proxies (on Kubernetes the Service behind it routes only some time after the pod is ready)
    topo = edge_topology(tmp_path)
    deploy_ready(local, topo, timeout=90)
    ingress = topo.node("ingress")
    probe = probe_for(ingress)
    assert isinstance(probe, IngressProbe)
    ready = probe.check(local, ingress, 0, 5.0)
    assert ready.ok, ready.detail
    local.kill_node("bannou")
    deadline = time.monotonic() + 30
    while (result := probe.check(local, ingress, 0, 5.0)).ok and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not result.ok and "HTTP 502" in result.detail, result.detail
    assert HttpProbe("/health").check(local, ingress, 0, 5.0).ok  # nginx itself still answers


def test_an_ingress_without_a_node_behind_it_is_probed_on_its_own_health(tmp_path):
    path = tmp_path / "ingress-only.yaml"
    path.write_text("name: ingress-only\ntopology:\n  infrastructure:\n    ingress:\n      enabled: true\n")
    ingress = resolve(load_file(path)).node("ingress")
    assert UPSTREAM_ENV not in ingress.environment
    assert probe_for(ingress) == HttpProbe("/health")
