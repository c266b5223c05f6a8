"""The same messaging path on Docker Compose: containers reach the broker and each other by node
name, the plugin through published ports. Skipped without a Docker engine and Compose."""

from __future__ import annotations

import httpx
import pytest

from pytest_bannou.backends import registry
from pytest_bannou.environment.manager import EnvironmentManager
from pytest_bannou.environment.runs import make_options


@pytest.fixture
def compose_manager(infra_servers: None):
    try:
        cls = registry.load("compose")
    except Exception as exc:  # the docker extra is not installed
        pytest.skip(f"compose backend unavailable: {exc}; pip install 'pytest-bannou[docker]'")
    avail = cls.available()
    if not avail:
        pytest.skip(f"compose backend unavailable: {avail.reason}")
    import docker

    from pytest_bannou.backends.docker.images import ensure_images

    ensure_images(docker.from_env())
    options = make_options(ready_timeout=180)
    manager = EnvironmentManager("compose", options)
    yield manager
    manager.teardown(remove_workdir=True)


def test_compose_heartbeats_routing_changes_and_rollback(compose_manager, library):
    env = compose_manager.activate("msg-split", library.resolve("msg-split"))
    m = compose_manager.messaging
    main = env.topology.node("bannou-main").environment
    assert main["BANNOU_AMQP_URL"] == "amqp://guest:guest@rabbitmq:5672/%2F"
    assert "bannou-auth=http://bannou-auth:80" in main["BANNOU_MESH_ENDPOINTS"]
    assert m.wait_heartbeat("bannou-auth").status == "healthy"
    assert not env.should_restart("bannou-auth").restart
    assert httpx.get(env.url() + "/health", timeout=5).json()["mappingsVersion"] == m.versions[-1]
    assert httpx.post(env.url() + "/auth/login", json={}, timeout=10).json()["appId"] == "bannou-auth"

    env.update([{"action": "move-service", "nodeName": "bannou-main", "services": ["auth"]}])
    assert env.config_version == 2
    assert httpx.post(env.url() + "/auth/login", json={}, timeout=10).json()["appId"] == "bannou"
    assert env.rollback() == 3  # version 1's configuration, recorded as version 3
    assert httpx.post(env.url() + "/auth/login", json={}, timeout=10).json()["appId"] == "bannou-auth"
