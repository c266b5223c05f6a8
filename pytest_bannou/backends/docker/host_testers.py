"""Tester containers on the host's network: how the local backend runs a tester given as an
``image`` (its nodes are processes listening on 127.0.0.1, which a container reaches only from
the host's network namespace).

The container runs with ``network_mode: host`` on the local Docker Engine, so the endpoints the
tester gets are the ones a process tester gets (``127.0.0.1`` and the published ports). As on the
Docker backends (``testers``) it carries the run-id labels (``bannou-env clean`` removes a
leftover), the run's tester directory is mounted at the same path, stdin is closed, the output is
read back with Docker's timestamps, and at the deadline it is killed; it is removed in any case.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..base import (
    Availability,
    TesterAddress,
    TesterContainer,
    TesterContainerOutcome,
)
from . import engine as _docker
from .testers import HOST_NETWORK, command_in_image, run_container

if TYPE_CHECKING:  # pragma: no cover
    import docker

DOCKER_FOR_IMAGES = (
    "a tester given as an `image` runs in a container on the local Docker Engine (host network) "
    "on the local backend"
)


def host_tester_availability() -> Availability:
    """Whether a Docker Engine is there to run image testers; the reason says how to get one."""
    found = _docker.engine_availability()
    if found:
        return found
    return Availability(
        False,
        f"{DOCKER_FOR_IMAGES}, and there is none: {found.reason}. Install Docker (docker.io and "
        "`pip install 'pytest-bannou[docker]'`) and start dockerd, or give the tester a `command`",
    )


def run_on_host_network(
    tester: TesterContainer,
    address: TesterAddress,
    client: Callable[[], docker.DockerClient] = _docker.client,
) -> TesterContainerOutcome:
    """Run ``tester`` on the host's network; ``address`` is how the test process reaches a node."""
    image = tester.image or _docker.DEFAULT_BANNOU_IMAGE
    cli = client()
    try:
        info = _docker.image_info(cli, image)
        if info is None:
            return TesterContainerOutcome(
                None,
                False,
                0.0,
                image,
                HOST_NETWORK,
                tuple(tester.command),
                f"tester {tester.name!r}: image {image} not found on the Docker Engine at "
                f"{_docker.engine_label()}. Nothing is pulled: {_docker.BUILD_IMAGES_HINT}, or "
                f"build/tag it with `docker build -t {image} .`",
            )
        argv = command_in_image(tester.command, info.local_build, info.python)
        environment = dict(tester.environment(address))
        return run_container(cli, tester, image, argv, environment, info, HOST_NETWORK)
    finally:
        cli.close()
