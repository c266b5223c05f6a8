"""Readiness probes against real servers, sockets, commands and logs (nodes run by the local
backend), and wait_ready's fail-fast, unhealthy and deadline paths."""

from __future__ import annotations

import socket
import sys
import time

import pytest

from pytest_bannou.backends.base import BackendOptions
from pytest_bannou.backends.local.backend import LocalBackend
from pytest_bannou.errors import NodeNotReady
from pytest_bannou.health import probes as health
from pytest_bannou.health.probes import (
    CommandProbe,
    HttpProbe,
    LogProbe,
    ProbeResult,
    ProcessProbe,
    TcpProbe,
    probe_for,
    register_probe,
)
from pytest_bannou.health.wait import wait_ready
from pytest_bannou.topology.model import HealthCheck, Node, Topology

FAST = HealthCheck(kind="http", target="/health", interval=0.1, retries=0)
LISTENER = (
    "import os, socket, time; s = socket.socket(); "
    "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
    "s.bind(('127.0.0.1', int(os.environ['PORT_7000']))); s.listen(); print('bound', flush=True); "
    "time.sleep(600)"
)


@pytest.fixture(autouse=True)
def isolated_state_index(tmp_path, monkeypatch):
    monkeypatch.setenv("BANNOU_LOCAL_STATE_DIR", str(tmp_path / "index"))


@pytest.fixture
def backend(tmp_path):
    b = LocalBackend(BackendOptions(run_id="health-test", workdir=tmp_path / "run"), grace=1.0)
    yield b
    b.teardown()


def deploy(backend: LocalBackend, *nodes: Node) -> Topology:
    topo = Topology(preset="health", nodes=tuple(nodes))
    backend.deploy(topo, time.monotonic() + 30)
    return topo


def until(probe, backend, node, timeout: float = 30.0) -> ProbeResult:
    end = time.monotonic() + timeout
    result = probe.check(backend, node, 0, 5.0)
    while not result.ok and time.monotonic() < end:
        time.sleep(0.05)
        result = probe.check(backend, node, 0, 5.0)
    return result


def test_http_probe_needs_a_2xx(backend):
    n = Node("web", "web", environment={"BANNOU_SERVICES_ENABLED": "false"}, healthcheck=FAST)
    deploy(backend, n)
    assert until(HttpProbe("/health"), backend, n).ok
    not_hosted = HttpProbe("/auth/login").check(backend, n, 0, 5.0)
    assert not not_hosted.ok and "HTTP 404" in not_hosted.detail


def test_http_probe_reports_connection_refused_before_the_node_listens(backend):
    n = Node("late", "late", environment={"BANNOU_REFERENCE_STARTUP_DELAY": "600"}, healthcheck=FAST)
    deploy(backend, n)
    result = HttpProbe().check(backend, n, 0, 1.0)
    assert not result.ok and "ConnectionRefused" in result.detail


def test_tcp_probe_on_a_named_port(backend):
    n = Node(
        "tcp",
        "tcp",
        kind="custom",
        command=(sys.executable, "-c", LISTENER),
        ports=(80, 7000),
        healthcheck=HealthCheck(kind="tcp", target=7000, interval=0.1),
    )
    deploy(backend, n)
    assert probe_for(n) == TcpProbe(7000)
    assert until(TcpProbe(7000), backend, n).ok
    closed = TcpProbe(80).check(backend, n, 0, 1.0)  # nothing listens on the HTTP port
    assert not closed.ok and "TCP connect" in closed.detail


def test_command_probe_uses_exec_and_its_exit_code(backend):
    n = Node("cmd", "cmd-app", healthcheck=FAST)
    deploy(backend, n)
    check = "import os, sys; sys.exit(0 if os.environ['BANNOU_APP_ID'] == 'cmd-app' else 3)"
    assert CommandProbe((sys.executable, "-c", check)).check(backend, n, 0, 10.0).ok
    failing = CommandProbe((sys.executable, "-c", "print('nope'); raise SystemExit(4)"))
    result = failing.check(backend, n, 0, 10.0)
    assert not result.ok and "exited 4: nope" in result.detail


def test_log_probe_matches_a_regex(backend):
    n = Node("logs", "logs", healthcheck=HealthCheck(kind="log", target=r"listening on :\d+"))
    deploy(backend, n)
    assert until(LogProbe(r"listening on :\d+"), backend, n).ok
    assert not LogProbe("never printed").check(backend, n, 0, 1.0).ok


def test_process_probe_follows_the_replica_state(backend):
    n = Node("proc", "proc", command=(sys.executable, "-c", "raise SystemExit(2)"), healthcheck=None)
    deploy(backend, n)
    end = time.monotonic() + 10
    while backend.status()[0].state != "exited" and time.monotonic() < end:
        time.sleep(0.02)
    result = ProcessProbe().check(backend, n, 0, 1.0)
    assert not result.ok and "exited" in result.detail


def test_probe_for_each_healthcheck_kind():
    def node(hc: HealthCheck | None, ports=(80,)) -> Node:
        return Node("n", "n", healthcheck=hc, ports=ports)

    assert probe_for(node(HealthCheck())) == HttpProbe("/health")
    assert probe_for(node(HealthCheck(kind="http", target="/ready"))) == HttpProbe("/ready")
    assert probe_for(node(HealthCheck(kind="tcp", target="6379"))) == TcpProbe(6379)
    assert probe_for(node(HealthCheck(kind="tcp", target="/health"))) == TcpProbe(None)
    assert probe_for(node(HealthCheck(kind="command", target="redis-cli ping"))) == CommandProbe(
        ("redis-cli", "ping")
    )
    assert probe_for(node(HealthCheck(kind="command", target=("a", "b")))) == CommandProbe(("a", "b"))
    assert probe_for(node(HealthCheck(kind="log", target="ready"))) == LogProbe("ready")
    assert probe_for(node(None)) == ProcessProbe()
    assert probe_for(node(HealthCheck(kind="none"))) == ProcessProbe()
    assert probe_for(node(HealthCheck(kind="heartbeat"))) == HttpProbe("/health")
    assert probe_for(node(HealthCheck(kind="heartbeat"), ports=())) == ProcessProbe()


def test_register_probe_overrides_a_kind(monkeypatch):
    monkeypatch.setattr(health, "_registry", {})
    register_probe("heartbeat", lambda node: LogProbe(f"heartbeat {node.app_id}"))
    assert probe_for(Node("n", "app", healthcheck=HealthCheck(kind="heartbeat"))) == LogProbe("heartbeat app")


def test_wait_ready_waits_for_all_replicas_and_reports_progress(backend):
    nodes = (
        Node("a", "a", replicas=2, healthcheck=FAST),
        Node("b", "b", environment={"BANNOU_REFERENCE_STARTUP_DELAY": "0.3"}, healthcheck=FAST),
        Node("c", "c", environment={"BANNOU_REFERENCE_STARTUP_DELAY": "600"}, healthcheck=FAST),
    )
    topo = deploy(backend, *nodes)
    seen = []
    ready = wait_ready(
        backend, topo, time.monotonic() + 30, nodes=["a", "b"], on_progress=lambda n, s: seen.append(n)
    )
    assert set(ready) == {"a", "b"} == set(seen)
    assert all(seconds >= 0 for seconds in ready.values())


def test_wait_ready_fails_fast_when_a_replica_exits(backend):
    topo = deploy(
        backend,
        Node("ok", "ok", healthcheck=FAST),
        Node("dies", "dies", environment={"BANNOU_REFERENCE_EXIT_CODE": "9"}, healthcheck=FAST),
    )
    with pytest.raises(NodeNotReady) as info:
        wait_ready(backend, topo, time.monotonic() + 120)
    err = info.value
    assert err.node == "dies" and "exited with code 9 before it became ready" in err.reason
    assert "deadline" not in err.reason
    assert "exiting with code 9" in err.logs and "on backend local" in str(err)


def test_wait_ready_raises_at_the_deadline_with_the_last_probe_error(backend):
    hc = HealthCheck(kind="http", target="/health", interval=0.1, retries=0)
    topo = deploy(
        backend, Node("slow", "slow", environment={"BANNOU_REFERENCE_STARTUP_DELAY": "600"}, healthcheck=hc)
    )
    with pytest.raises(NodeNotReady) as info:
        wait_ready(backend, topo, time.monotonic() + 1.0)
    assert "deadline" in info.value.reason and "ConnectionRefused" in info.value.reason


def test_wait_ready_counts_retries_after_the_start_period(backend):
    hc = HealthCheck(kind="tcp", target=7000, interval=0.1, retries=3, start_period=0.2)
    never = Node(
        "never",
        "never",
        kind="custom",
        command=(sys.executable, "-c", "import time; time.sleep(600)"),
        ports=(7000,),
        healthcheck=hc,
    )
    topo = deploy(backend, never)
    with pytest.raises(NodeNotReady) as info:
        wait_ready(backend, topo, time.monotonic() + 120)
    reason = info.value.reason
    assert reason.startswith("unhealthy") and "start period 0.2s + 3 retries x 0.1s" in reason


def test_wait_ready_honours_the_start_period_before_counting_failures(backend):
    hc = HealthCheck(kind="tcp", target=7000, interval=0.1, retries=1, start_period=30)
    late = Node(
        "late",
        "late",
        kind="custom",
        command=(sys.executable, "-c", "import time; time.sleep(0.8); " + LISTENER),
        ports=(7000,),
        healthcheck=hc,
    )
    topo = deploy(backend, late)
    assert set(wait_ready(backend, topo, time.monotonic() + 60)) == {"late"}


def test_tcp_probe_against_a_plain_socket():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]

        class Fixed:
            name = "fixed"

            def endpoint(self, node, port_=None, replica=0):
                from pytest_bannou.backends.base import Endpoint

                return Endpoint("127.0.0.1", port)

        assert TcpProbe().check(Fixed(), Node("x", "x"), 0, 1.0).ok
    assert not TcpProbe().check(Fixed(), Node("x", "x"), 0, 1.0).ok


def test_tcp_probe_is_not_fooled_by_a_port_proxy_that_hangs_up():
    """Docker's port proxy accepts, finds nothing listening inside, and closes: not ready."""
    import threading

    from pytest_bannou.backends.base import Endpoint

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]

        def hang_up() -> None:
            conn, _ = s.accept()
            conn.close()

        t = threading.Thread(target=hang_up, daemon=True)
        t.start()

        class Proxy:
            name = "proxy"

            def endpoint(self, node, port_=None, replica=0):
                return Endpoint("127.0.0.1", port)

        result = TcpProbe().check(Proxy(), Node("x", "x"), 0, 1.0)
        t.join(5)
    assert not result.ok
    assert "closed the connection" in result.detail


def test_a_probe_that_raises_fails_its_node_instead_of_hanging(backend, monkeypatch):
    class Broken:
        def describe(self) -> str:
            return "broken probe"

        def check(self, backend, node, replica, timeout):
            raise RuntimeError("probe bug")

    monkeypatch.setattr(health, "_registry", {})
    register_probe("heartbeat", lambda node: Broken())
    topo = deploy(backend, Node("hb", "hb", healthcheck=HealthCheck(kind="heartbeat")))
    with pytest.raises(NodeNotReady, match="RuntimeError: probe bug"):
        wait_ready(backend, topo, time.monotonic() + 120)
