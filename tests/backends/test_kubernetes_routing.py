"""``KubernetesServices._wait_routed``, the wait after readiness and before a pod that goes
through Services (a tester): Endpoints complete, and, when this process runs on a node of the
cluster, the health path answering through the cluster IP. The API is a stand-in object and the
"cluster IP" a 127.0.0.1 HTTP server, so every branch runs without a cluster (tests/k8s runs the
real thing)."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest
from kubernetes.client.exceptions import ApiException

from pytest_bannou.backends.base import BackendOptions
from pytest_bannou.backends.kubernetes import services
from pytest_bannou.backends.kubernetes.services import KubernetesServices
from pytest_bannou.errors import DeployError
from pytest_bannou.topology.model import HealthCheck, Node, Topology


class ScriptedServer:
    """Answers ``GET`` with the next status of ``statuses`` (the last one repeats)."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.asked: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.asked.append(self.path)
                status = outer.statuses.pop(0) if len(outer.statuses) > 1 else outer.statuses[0]
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class StandInCore:
    """The CoreV1Api calls ``_wait_routed`` makes; Endpoints grow one pod per read up to
    ``ready`` (or raise ``error``); the one node's InternalIP is ``node_ip``."""

    def __init__(self, ready: int, error: Exception | None = None, node_ip: str = "127.0.0.1") -> None:
        self.ready, self.error, self.reads, self.node_ip = ready, error, 0, node_ip

    def list_node(self, _request_timeout: float) -> SimpleNamespace:
        address = SimpleNamespace(type="InternalIP", address=self.node_ip)
        return SimpleNamespace(items=[SimpleNamespace(status=SimpleNamespace(addresses=[address]))])

    def list_namespaced_service(self, namespace: str, _request_timeout: float) -> SimpleNamespace:
        spec = SimpleNamespace(cluster_ip="127.0.0.1")
        svc = SimpleNamespace(metadata=SimpleNamespace(name="web"), spec=spec)
        return SimpleNamespace(items=[svc])

    def read_namespaced_endpoints(
        self, name: str, namespace: str, _request_timeout: float
    ) -> SimpleNamespace:
        if self.error is not None:
            raise self.error
        self.reads += 1
        pods = [SimpleNamespace(ip=f"172.17.0.{i}") for i in range(min(self.reads - 1, self.ready))]
        return SimpleNamespace(subsets=[SimpleNamespace(addresses=pods or None)])


class Routed(KubernetesServices):
    def __init__(self, port: int, core: StandInCore, replicas: int = 2, kind: str = "http") -> None:
        node = Node(
            name="web", app_id="web", ports=(port,), replicas=replicas, healthcheck=HealthCheck(kind=kind)
        )
        self.topology = Topology(preset="routing", nodes=(node,))
        self.namespace = "bannou-routing"
        self.options = BackendOptions(run_id="routing", workdir=Path("/nonexistent"), ready_timeout=7.0)
        self.core = core

    def _where(self) -> str:
        return f"namespace {self.namespace} on stand-in"


@pytest.fixture
def server():
    made: list[ScriptedServer] = []

    def make(*statuses: int) -> ScriptedServer:
        made.append(ScriptedServer(*statuses))
        return made[-1]

    yield make
    for s in made:
        s.close()


def test_waits_for_every_replica_then_for_the_cluster_ip_to_answer(server):
    web = server(404, 404, 200)  # kube-proxy catches up after two requests
    b = Routed(web.port, StandInCore(ready=2))
    assert b._wait_routed(time.monotonic() + 60) == {"web": "127.0.0.1"}
    assert b.core.reads >= 3  # 0, 1, then 2 ready pods
    assert web.asked == ["/health"] * 3  # asked only once both were ready, until it answered 2xx
    assert b._on_a_node is True


def test_on_a_node_a_cluster_ip_that_does_not_route_is_an_error(server):
    web = server(404)
    b = Routed(web.port, StandInCore(ready=1), replicas=1)
    with pytest.raises(DeployError) as info:
        b._wait_routed(time.monotonic() + 1.5)
    msg = info.value.message
    assert msg.startswith(
        "kubernetes namespace bannou-routing on stand-in: the nodes answer their probes, but after "
    )
    assert f"Service web: GET /health at 127.0.0.1:{web.port} -> HTTP 404" in msg
    assert "kubectl -n bannou-routing get pods,endpoints" in msg and "ready_timeout, now 7 s" in msg


def test_on_a_node_a_silent_cluster_ip_is_not_routed_yet():
    b = Routed(9, StandInCore(ready=1), replicas=1)  # port 9 (discard): nothing listens
    with pytest.raises(DeployError, match=r"Service web: GET /health at 127.0.0.1:9 -> no answer"):
        b._wait_routed(time.monotonic() + 1.5)


def test_off_the_cluster_only_the_endpoints_count(server):
    web = server(404)  # e.g. a network that answers every address it does not route
    b = Routed(web.port, StandInCore(ready=1, node_ip="192.0.2.10"), replicas=1)  # not this host
    start = time.monotonic()
    assert b._wait_routed(start + 60) == {"web": "127.0.0.1"}
    assert web.asked == [] and b._on_a_node is False and time.monotonic() - start < 30


def test_only_the_nodes_asked_for(server):
    web = server(404)
    b = Routed(web.port, StandInCore(ready=0), replicas=1)  # web never gets a ready pod
    assert b.topology is not None
    b.wait_routed(b.topology, [], time.monotonic() + 1.0)  # e.g. after restarting another node
    with pytest.raises(DeployError, match="Service web: 0 of 1"):
        b.wait_routed(b.topology, ["web"], time.monotonic() + 1.0)


def test_missing_endpoints_at_the_deadline_name_the_service(server):
    web = server(200)
    b = Routed(web.port, StandInCore(ready=1), replicas=3)
    with pytest.raises(DeployError, match=r"Service web: 1 of 3 pods ready behind it"):
        b._wait_routed(time.monotonic() + 1.5)
    assert web.asked == []  # the cluster IP is asked only once every replica is behind it


def test_an_endpoints_read_that_fails_says_why(server):
    web = server(200)
    denied = ApiException(status=403, reason="Forbidden")
    b = Routed(web.port, StandInCore(ready=1, error=denied), replicas=1)
    with pytest.raises(DeployError, match=r"Service web: reading its Endpoints failed: HTTP 403 Forbidden"):
        b._wait_routed(time.monotonic() + 1.0)


def test_a_node_whose_readiness_is_not_http_needs_its_endpoints_only(server):
    web = server(404)
    b = Routed(web.port, StandInCore(ready=1), replicas=1, kind="tcp")
    b._wait_routed(time.monotonic() + 30)
    assert web.asked == [] and b._on_a_node is None


def test_a_node_address_is_local_only_when_the_kernel_sends_to_it_from_itself():
    assert services._local_address("127.0.0.1")
    assert not services._local_address("192.0.2.10")  # TEST-NET-1: never this host's
    assert not services._local_address("not an address")


def test_wait_ready_gives_the_route_a_grace_after_probes_that_passed_at_the_deadline(tmp_path):
    from pytest_bannou.health import wait
    from tests.support.fake_backend import FakeBackend

    seen: list[float] = []

    class Routing(FakeBackend):
        def wait_routed(self, topology: Topology, nodes, deadline: float) -> None:
            seen.append(deadline - time.monotonic())

    topology = Topology(preset="routing", nodes=(Node(name="web", app_id="web"),))
    wait.wait_ready(
        Routing(BackendOptions(run_id="grace", workdir=tmp_path)), topology, time.monotonic(), nodes=[]
    )
    assert len(seen) == 1 and seen[0] > wait.ROUTE_GRACE_S - 5
