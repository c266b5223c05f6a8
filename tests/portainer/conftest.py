"""Portainer tests: a stand-in Portainer (tests/support/portainer_standin.py) on 127.0.0.1 in
front of the real Docker Engine and the real Compose v2 binary. Skip (with how to get them)
when either is missing. After the session, fail if the stand-in answered anything its OpenAPI
document does not allow, if a stack is left, or if a run id these tests created left a labelled
resource (removed by run id)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_bannou.backends.docker import engine as _docker
from pytest_bannou.errors import BackendUnavailable
from tests.support.backends import leak_checked_docker_client
from tests.support.portainer_standin import DOCUMENT, RUN_IDS, PortainerStandIn

HERE = Path(__file__).resolve().parent

ENGINE = _docker.engine_availability()


def _compose_reason() -> tuple[tuple[str, ...] | None, str]:
    from pytest_bannou.backends.docker.compose import compose_command

    try:
        found = compose_command()
    except BackendUnavailable as exc:
        return None, exc.message
    return found.argv, found.describe()


COMPOSE_ARGV, COMPOSE_REASON = _compose_reason() if ENGINE else (None, "")


def pytest_collection_modifyitems(config, items):
    """Tests that use the stand-in or Docker are marked ``docker`` and skipped (saying how to
    get what is missing) without an engine or Compose; the pure ones always run."""
    reason = ""
    if not DOCUMENT.is_file():
        reason = (
            f"Portainer's OpenAPI document not found at {DOCUMENT} (the repository's "
            "../shared/upstream-schemas, or set BANNOU_PORTAINER_OPENAPI)"
        )
        for item in items:
            if HERE in Path(str(item.fspath)).resolve().parents:
                item.add_marker(pytest.mark.skip(reason=reason))
        return
    if not ENGINE:
        reason = f"needs a Docker Engine: {ENGINE.reason}"
    elif not COMPOSE_ARGV:
        reason = f"needs Docker Compose v2 for the stand-in Portainer: {COMPOSE_REASON}"
    for item in items:
        if HERE not in Path(str(item.fspath)).resolve().parents:
            continue
        if {"standin", "docker_client"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.docker)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def docker_client() -> Iterator:
    yield from leak_checked_docker_client(RUN_IDS, "portainer tests")


@pytest.fixture(scope="session")
def local_images(docker_client) -> list[str]:
    from pytest_bannou.backends.docker.images import ensure_images

    return ensure_images(docker_client)


@pytest.fixture(scope="session")
def credentials() -> dict[str, str]:
    """Fresh secrets per session, long and distinctive so a leak is found by substring."""
    return {
        "api_key": "ptr_" + secrets.token_hex(20),
        "username": "admin",
        "password": "pw-" + secrets.token_hex(12),
    }


@pytest.fixture(scope="session")
def standin(docker_client, local_images, credentials, tmp_path_factory) -> Iterator[PortainerStandIn]:
    server = PortainerStandIn(
        tmp_path_factory.mktemp("portainer"),
        COMPOSE_ARGV or (),
        api_key=credentials["api_key"],
        username=credentials["username"],
        password=credentials["password"],
        endpoints={1: "local", 7: "second-docker"},
    ).start()
    yield server
    left = server.close()
    assert not server.violations, "stand-in answered outside Portainer's document:\n" + "\n".join(
        server.violations
    )
    assert not left, f"portainer tests left stacks: {left}"


@pytest.fixture
def api_key_extra(standin, credentials) -> dict[str, str]:
    return {"url": standin.url, "api_key": credentials["api_key"], "endpoint": "local"}


@pytest.fixture
def password_extra(standin, credentials) -> dict[str, str]:
    return {
        "url": standin.url,
        "username": credentials["username"],
        "password": credentials["password"],
        "endpoint": "1",
    }
