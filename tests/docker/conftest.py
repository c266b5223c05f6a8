"""Docker tests: skip (with how to get one) when no engine is reachable; build the local
scratch images once; after the session, fail if any run id these tests created left a labelled
container, network, volume or service behind (and remove it, by run id)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_bannou.backends.docker import engine as _docker
from tests.support.backends import leak_checked_docker_client
from tests.support.docker_helpers import RUN_IDS

ENGINE = _docker.engine_availability()


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).resolve().parent
    skip = pytest.mark.skip(reason=f"needs a Docker Engine: {ENGINE.reason}")
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.docker)
            if not ENGINE:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def docker_client() -> Iterator:
    yield from leak_checked_docker_client(RUN_IDS, "docker tests")


@pytest.fixture(scope="session")
def local_images(docker_client) -> list[str]:
    from pytest_bannou.backends.docker.images import ensure_images

    return ensure_images(docker_client)


@pytest.fixture(scope="session")
def swarm_ready(docker_client) -> None:
    """A single-node swarm; initialised here when the engine is in none (and left on: CI's
    .ci/run initialises it too)."""
    from pytest_bannou.backends.docker.swarm import swarm_availability

    state = (docker_client.info().get("Swarm") or {}).get("LocalNodeState")
    if state == "inactive":
        docker_client.swarm.init(advertise_addr="127.0.0.1")
    available = swarm_availability(docker_client)
    if not available:
        pytest.skip(available.reason)
