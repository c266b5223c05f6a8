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

import contextlib
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..base import (
    LABEL_NODE,
    LABEL_OWNER_PID,
    LABEL_RUN_ID,
    Availability,
    TesterAddress,
    TesterContainer,
    TesterContainerOutcome,
)
from . import engine as _docker

if TYPE_CHECKING:  # pragma: no cover
    import docker

HOST_NETWORK = "host"
WAIT_SLICE_S = 1.0
_PYTHON_NAMES = ("python", "python3")
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


def tester_labels(tester: TesterContainer) -> dict[str, str]:
    """The labels ``clean`` finds a leftover tester container by."""
    return {
        LABEL_RUN_ID: tester.run_id,
        LABEL_NODE: f"tester-{tester.name}",
        LABEL_OWNER_PID: str(os.getpid()),
        _docker.LABEL_OWNER_HOST: socket.gethostname(),
        _docker.LABEL_BACKEND: tester.backend,
    }


def run_on_host_network(
    tester: TesterContainer,
    address: TesterAddress,
    client: Callable[[], docker.DockerClient] = _docker.client,
) -> TesterContainerOutcome:
    """Run ``tester`` on the host's network; ``address`` is how the test process reaches a node."""
    image = tester.image or _docker.DEFAULT_BANNOU_IMAGE
    argv = list(tester.command)
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
                tuple(argv),
                f"tester {tester.name!r}: image {image} not found on the Docker Engine at "
                f"{_docker.engine_label()}. Nothing is pulled: {_docker.BUILD_IMAGES_HINT}, or "
                f"build/tag it with `docker build -t {image} .`",
            )
        if argv and argv[0] in _PYTHON_NAMES and info.local_build:
            argv[0] = sys.executable  # the host interpreter the local image mounts
        return _run(cli, tester, image, argv, dict(tester.environment(address)), info)
    finally:
        cli.close()


def _run(
    cli: docker.DockerClient,
    tester: TesterContainer,
    image: str,
    argv: list[str],
    environment: dict[str, str],
    info: Any,
) -> TesterContainerOutcome:
    import docker as docker_sdk

    workdir = Path(tester.workdir)
    start = time.monotonic()
    container = None
    timed_out = False
    exit_code: int | None = None
    try:
        try:
            container = cli.containers.create(
                image,
                command=argv or None,
                environment=environment,
                volumes=[*_docker.host_mounts(info), f"{workdir}:{workdir}:rw"],
                tmpfs={p: "" for p in info.tmpfs},
                labels=tester_labels(tester),
                network_mode=HOST_NETWORK,
                stdin_open=False,
                tty=False,
                init=True,
                working_dir=str(tester.log_path.parent),
                name=_docker.sanitize(f"{tester.run_id}-tester-{tester.name}-{os.getpid()}-{time.time_ns()}"),
            )
            container.start()
        except docker_sdk.errors.APIError as exc:
            cid = container.id if container is not None else ""
            message = f"tester {tester.name!r}: cannot start a container of {image}: {_message(exc)}"
            return TesterContainerOutcome(None, False, 0.0, image, HOST_NETWORK, tuple(argv), message, cid)
        deadline = start + tester.timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                with contextlib.suppress(docker_sdk.errors.APIError):
                    container.kill()
                break
            try:
                result = container.wait(timeout=max(0.1, min(WAIT_SLICE_S, left)))
            except Exception:  # requests' read timeout: still running
                continue
            exit_code = int(result.get("StatusCode", -1))
            break
        with open(tester.log_path, "wb") as log:
            for chunk in container.logs(stream=True, timestamps=True, stdout=True, stderr=True):
                log.write(chunk)
    finally:
        if container is not None:
            with contextlib.suppress(docker_sdk.errors.APIError):
                container.remove(force=True, v=True)
    return TesterContainerOutcome(
        None if timed_out else exit_code,
        timed_out,
        time.monotonic() - start,
        image,
        HOST_NETWORK,
        tuple(argv),
        container=container.id,
    )


def _message(exc: BaseException) -> str:
    """The last line of an engine error, short enough for a report."""
    text = str(exc).strip().splitlines()
    return text[-1][:300] if text else type(exc).__name__
