"""Kubernetes probes from a node's healthcheck (no cluster needed here): a readiness probe from
the container's start (the first success counts), never an ``initialDelaySeconds`` that waits a
start period out, and no ``startupProbe`` (it would only add restarts); an ingress in front of a
node is ready when a request it proxies reaches that node, as the plugin's ``IngressProbe`` says,
in the backend's manifests and in rendered ones. The checks the ingress's probes run are run here
against a real HTTP server."""

from __future__ import annotations

import http.server
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from pytest_bannou.backends.base import BackendOptions
from pytest_bannou.backends.kubernetes.manifests import readiness_probe, render_manifests
from pytest_bannou.cli import main
from pytest_bannou.topology.ingress import UPSTREAM_ENV
from pytest_bannou.topology.model import HealthCheck, Node, Topology
from tests.support.render_checks import k8s_model_errors


def test_a_start_period_is_no_initial_delay_and_no_startup_probe(tmp_path: Path) -> None:
    hc = HealthCheck(kind="http", target="/health", interval=2, timeout=3, retries=5, start_period=30)
    node = Node(name="slow", app_id="slow", ports=(80,), healthcheck=hc)
    ready = readiness_probe(node)
    assert ready is not None and "initialDelaySeconds" not in ready
    assert ready["httpGet"] == {"path": "/health", "port": 80}
    assert (ready["periodSeconds"], ready["timeoutSeconds"], ready["failureThreshold"]) == (2, 3, 5)
    # a kind Kubernetes cannot check (the plugin's own probes) gets none
    beat = replace(node, healthcheck=replace(hc, kind="heartbeat"))
    assert readiness_probe(beat) is None

    (dep,) = [
        d
        for d in render_manifests(
            Topology(preset="p", nodes=(node,)), BackendOptions("r", tmp_path), images={}
        )
        if d["kind"] == "Deployment"
    ]
    assert k8s_model_errors(dep) == []
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"] == ready
    assert "startupProbe" not in container and "livenessProbe" not in container  # nothing restarts it


def rendered_ingress(capsys, monkeypatch, *argv: str) -> dict:
    monkeypatch.setenv("BANNOU_INFRA", "true")
    assert main(["render", "test-edge", "--backend", "kubernetes", *argv]) == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    for d in docs:
        assert "initialDelaySeconds" not in yaml.safe_dump(d), d["metadata"]["name"]
    (dep,) = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "ingress"]
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    return container


@pytest.mark.parametrize("images", ["--stand-ins", "--no-stand-ins"])
def test_rendered_test_edge_ingress_starts_at_once_and_checks_the_node_behind(capsys, monkeypatch, images):
    container = rendered_ingress(capsys, monkeypatch, images)
    ready = container["readinessProbe"]
    # checked every second from the start (its start period is no delay), nothing restarts it
    assert ready["periodSeconds"] == 1 and "startupProbe" not in container
    assert "httpGet" not in ready and "exec" in ready  # /health alone says nothing about the node behind


class Upstream(http.server.BaseHTTPRequestHandler):
    """An ingress stand-in: ``/health`` 200, ``/`` whatever the test sets (nginx's 502 ...)."""

    status = 200

    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/health" else self.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def ingress_port() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def ingress(port: int) -> Node:
    return Node(
        name="ingress",
        app_id="ingress",
        kind="infrastructure",
        infra_type="ingress",
        ports=(port,),
        environment={UPSTREAM_ENV: "bannou:80"},
        healthcheck=HealthCheck(
            kind="http", target="/health", interval=1, timeout=5, retries=3, start_period=9
        ),
    )


def run_check(probe: dict, path: str) -> subprocess.CompletedProcess[str]:
    argv = list(probe["exec"]["command"])
    env = {"PATH": path}
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env)


@pytest.mark.parametrize(
    "public,tool", [(False, "python"), (True, "wget"), (True, "curl")], ids=["stand-in", "wget", "curl"]
)
def test_the_ingress_check_fails_while_nginx_cannot_reach_the_node(
    ingress_port: int, tmp_path: Path, monkeypatch, public: bool, tool: str
) -> None:
    if not Path("/usr/bin/python3").exists() or (public and shutil.which(tool) is None):
        pytest.skip(f"needs /usr/bin/python3 and {tool}")
    bin_dir = tmp_path / "bin"  # a PATH with only the tool under test (and what sh needs)
    bin_dir.mkdir()
    for name in ("grep", tool):
        (bin_dir / name).symlink_to(shutil.which(name) or "/bin/false")
    probe = readiness_probe(ingress(ingress_port), public=public)
    assert probe is not None
    outcomes = {}
    for status in (200, 404, 500, 502, 503, 504):
        monkeypatch.setattr(Upstream, "status", status)
        outcomes[status] = run_check(probe, str(bin_dir)).returncode == 0
    # any answer from the node is "reached"; nginx's own 502/503/504 are not
    assert outcomes == {200: True, 404: True, 500: True, 502: False, 503: False, 504: False}
    if not public:
        monkeypatch.setattr(Upstream, "status", 502)
        assert "the node behind it is not reached" in run_check(probe, str(bin_dir)).stderr


def test_the_ingress_check_fails_when_the_ingress_does_not_answer(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for public in (False, True):
        probe = readiness_probe(ingress(port), public=public)
        assert probe is not None
        done = run_check(probe, "/usr/bin:/bin")
        assert done.returncode not in (0, 126, 127), done  # refused, not "the check could not run"
