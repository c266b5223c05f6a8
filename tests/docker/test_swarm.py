"""The Swarm backend on a real single-node swarm: the shared conformance cases plus what only
services have (host-mode ports per task, real task states, rolling env updates, labels on
services and networks, engine without a swarm)."""

from __future__ import annotations

import time

import pytest

from pytest_bannou.backends.base import LABEL_NODE, LABEL_RUN_ID, Backend, BackendOptions
from pytest_bannou.backends.docker import engine as _docker
from pytest_bannou.backends.docker.swarm import SwarmBackend, name_prefix
from pytest_bannou.errors import BackendUnavailable, DeployError, NodeNotReady
from pytest_bannou.health import wait as health
from tests.support.backends import deploy_ready, node, topology_maker
from tests.support.docker_helpers import DockerConformance, new_run_id

pytestmark = [pytest.mark.docker, pytest.mark.swarm, pytest.mark.usefixtures("local_images", "swarm_ready")]
topo = topology_maker("swarm-test", "s1")


class TestSwarmConformance(DockerConformance):
    run_id_prefix = "sconf"

    def create_backend(self, options: BackendOptions) -> Backend:
        return SwarmBackend(options)


@pytest.fixture
def make_swarm(tmp_path):
    created: list[SwarmBackend] = []

    def factory() -> SwarmBackend:
        rid = new_run_id("swm")
        b = SwarmBackend(BackendOptions(run_id=rid, workdir=tmp_path / rid, ready_timeout=60))
        created.append(b)
        return b

    yield factory
    for b in created:
        b.teardown()


def test_available_names_the_swarm_manager():
    available = SwarmBackend.available()
    assert available and "swarm manager" in available.reason


def test_engine_not_running_is_unavailable(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/dead.sock")
    available = SwarmBackend.available()
    assert not available and "start dockerd" in available.reason
    b = SwarmBackend(BackendOptions(run_id=new_run_id("swm"), workdir=tmp_path))
    with pytest.raises(BackendUnavailable, match="no Docker Engine reachable"):
        b.deploy(topo(node("a")), time.monotonic() + 10)


def test_each_replica_has_its_own_host_mode_port(make_swarm, docker_client):
    b = make_swarm()
    deploy_ready(b, topo(node("web", replicas=2)))
    p0, p1 = b.endpoint("web", replica=0), b.endpoint("web", replica=1)
    assert p0.port != p1.port and p0.host == "127.0.0.1"
    spec = docker_client.api.inspect_service(b._services["web"])["Spec"]
    assert spec["EndpointSpec"]["Mode"] == "dnsrr"
    assert {p["PublishMode"] for p in spec["EndpointSpec"]["Ports"]} == {"host"}
    assert spec["Labels"][LABEL_RUN_ID] == b.run_id and spec["Labels"][LABEL_NODE] == "web"
    assert spec["TaskTemplate"]["ContainerSpec"]["Init"] is True
    assert spec["UpdateConfig"]["Order"] == "start-first"
    net = docker_client.networks.get(b.network)
    assert net.attrs["Driver"] == "overlay" and net.attrs["Labels"][LABEL_RUN_ID] == b.run_id


def test_status_is_the_real_task_state_of_a_failing_service(make_swarm):
    b = make_swarm()
    t = topo(node("bad", environment={"BANNOU_REFERENCE_EXIT_CODE": "7"}))
    b.deploy(t, time.monotonic() + 60)
    end = time.monotonic() + 60
    while True:  # the snapshot that shows the exit: swarm then starts a replacement task
        (s,) = b.status()
        if s.state == "exited" or time.monotonic() > end:
            break
        time.sleep(0.1)
    assert (s.state, s.exit_code) == ("exited", 7) and "failed" in s.detail
    with pytest.raises(NodeNotReady, match="exited with code 7"):
        health.wait_ready(b, t, time.monotonic() + 10)


def test_rolling_update_replaces_every_replica_one_by_one(make_swarm):
    b = make_swarm()
    deploy_ready(b, topo(node("web", replicas=2)))
    before = {s.id for s in b.status()}
    b.restart("web", environment={"BANNOU_APP_ID": "rolled"})
    health.wait_ready(b, b.topology, time.monotonic() + 60)
    after = b.status()
    assert len(after) == 2 and not before & {s.id for s in after}
    for replica in (0, 1):
        ep = b.endpoint("web", replica=replica)
        out = b.exec(
            "web", ["/usr/bin/python3", "-c", "import os; print(os.environ['BANNOU_APP_ID'])"], 10, replica
        )
        assert out.output.strip() == "rolled", ep


def test_service_names_are_short_enough(tmp_path):
    options = BackendOptions(run_id="x" * 80, workdir=tmp_path, worker="gw12")
    prefix = name_prefix(options, topo(node("a"), preset="a-very-long-preset-name-" * 3))
    assert len(prefix) <= 40 and prefix.startswith("bannou-x")


def test_missing_image_is_a_clear_error_and_creates_nothing(make_swarm, docker_client):
    b = make_swarm()
    with pytest.raises(
        DeployError, match=r"bannou-never-built:1 \(node a\).*pytest_bannou.backends.docker.images"
    ):
        b.deploy(topo(node("a", image="bannou-never-built:1")), time.monotonic() + 10)
    assert _docker.labelled_leftovers(docker_client, b.run_id) == []
