"""Running a tester as a container on a Docker environment's network (Compose and Swarm).

The tester joins the network of the environment's target node and reaches every node by its
in-network name (the alias its container answers to) and container port, exactly as bannou's own
tester images do in bannou's compose files. Its image is ``spec.image``, or ``bannou:latest`` when
the tester only has a ``command`` (the locally built image that mounts the host's programs, so the
reference tester runs in it). The container carries the session's run-id labels (``bannou-env
clean`` removes a leftover), stdin is closed, ``DAEMON_MODE=true`` is always set, and at its
deadline the container is killed and the run reported as timed out. Output is read back with
Docker's timestamps, the same log format ``process.run_process`` writes, and parsed by
``runner.parse_outcome``: everything after the container is shared with the process variant.
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

from ..backends.base import LABEL_NODE, LABEL_OWNER_PID, LABEL_RUN_ID
from ..backends.docker import engine as _docker
from ..errors import BannouError
from ..topology.model import TesterSpec
from .endpoints import endpoint_variables
from .model import TesterRun
from .process import ProcessOutcome
from .registry import get_parser
from .runner import JUNIT_ENV, _safe, parse_outcome, setup_error

if TYPE_CHECKING:  # pragma: no cover
    import docker

    from ..environment.environment import Environment

IGNORED_NETWORKS = frozenset({"bridge", "host", "none", "ingress"})
WAIT_SLICE_S = 1.0


def container_image(spec: TesterSpec) -> str:
    return spec.image or _docker.DEFAULT_BANNOU_IMAGE


def node_address(cli: docker.DockerClient, run_id: str, node: str) -> tuple[str, str] | None:
    """(network, alias) of a running container of ``node`` in run ``run_id`` (None: none found)."""
    flt = {"label": [f"{LABEL_RUN_ID}={run_id}", f"{LABEL_NODE}={node}"], "status": "running"}
    for c in cli.containers.list(filters=flt):
        networks = (c.attrs.get("NetworkSettings") or {}).get("Networks") or {}
        for net, info in networks.items():
            if net in IGNORED_NETWORKS:
                continue
            aliases = [a for a in (info or {}).get("Aliases") or [] if a]
            for wanted in (node, _docker.sanitize(node)):
                if wanted in aliases:
                    return net, wanted
            return net, aliases[0] if aliases else _docker.sanitize(node)
    return None


def run_tester_container(
    spec: TesterSpec,
    env: Environment,
    *,
    workdir: Path,
    deadline_s: float | None = None,
    client: Callable[[], docker.DockerClient] = _docker.client,
) -> TesterRun:
    """Run ``spec`` in a container on ``env``'s network and parse its output.

    Raises ``BannouError`` only for user mistakes found before anything starts (unknown format,
    target node the environment does not run); a missing image, a timeout or bad output are
    results.
    """
    get_parser(spec.format)
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"tester-{_safe(spec.name)}.log"
    junit_path = workdir / f"tester-{_safe(spec.name)}.junit.xml"
    if junit_path.exists():
        junit_path.unlink()
    timeout = spec.timeout if deadline_s is None else min(spec.timeout, max(0.0, deadline_s))
    image = container_image(spec)
    cli = client()
    try:
        info = _docker.image_info(cli, image)
        argv = [
            a.replace("{junit}", str(junit_path)).replace("{workdir}", str(workdir))
            for a in spec.command or ()
        ]
        if info is None:
            return setup_error(
                spec,
                f"tester {spec.name!r}: image {image} not found on the Docker Engine at "
                f"{_docker.engine_label()}. Nothing is pulled: {_docker.BUILD_IMAGES_HINT}, or build/tag "
                f"it with `docker build -t {image} .`",
                argv,
            )
        if argv and argv[0] in ("python", "python3") and info.local_build:
            argv[0] = sys.executable  # the host interpreter the local image mounts
        target = env.node_for(spec.target or env.main_node)  # DeployError naming the nodes
        found = node_address(cli, env.run_id, target)
        if found is None:
            raise BannouError(
                f"tester {spec.name!r}: no running container of node {target!r} in {env.key} "
                f"(run id {env.run_id}) to attach to; check `target:` of the tester"
            )
        network = found[0]

        def address(node: str, port: int | None) -> tuple[str, int]:
            where = found if node == target else node_address(cli, env.run_id, node)
            alias = where[1] if where else _docker.sanitize(node)
            return alias, int(port or 80)

        environment = {**spec.environment, **endpoint_variables(env.topology, target, address)}
        environment["DAEMON_MODE"] = "true"
        environment[JUNIT_ENV] = str(junit_path)
        volumes = [*_docker.host_mounts(info), f"{workdir}:{workdir}:rw"]
        labels = {
            LABEL_RUN_ID: env.run_id,
            LABEL_NODE: f"tester-{spec.name}",
            LABEL_OWNER_PID: str(os.getpid()),
            _docker.LABEL_OWNER_HOST: socket.gethostname(),
            _docker.LABEL_BACKEND: env.backend,
        }
        return _run(
            cli, spec, image, argv, environment, volumes, info, labels, network, log_path, junit_path, timeout
        )
    finally:
        cli.close()


def _run(
    cli: docker.DockerClient,
    spec: TesterSpec,
    image: str,
    argv: list[str],
    environment: dict[str, str],
    volumes: list[str],
    info: Any,
    labels: dict[str, str],
    network: str,
    log_path: Path,
    junit_path: Path,
    timeout: float,
) -> TesterRun:
    import docker as docker_sdk

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
                volumes=volumes,
                tmpfs={p: "" for p in info.tmpfs},
                labels=labels,
                network=network,
                stdin_open=False,
                tty=False,
                init=True,
                working_dir=str(log_path.parent),
                name=_docker.sanitize(
                    f"{labels[LABEL_RUN_ID]}-tester-{spec.name}-{os.getpid()}-{time.time_ns()}"
                ),
            )
            container.start()
        except docker_sdk.errors.APIError as exc:
            return setup_error(
                spec,
                f"tester {spec.name!r}: cannot start a container of {image}: {_docker._short(exc)}",
                argv,
            )
        deadline = start + timeout
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
        with open(log_path, "wb") as log:
            for chunk in container.logs(stream=True, timestamps=True, stdout=True, stderr=True):
                log.write(chunk)
    finally:
        if container is not None:
            with contextlib.suppress(docker_sdk.errors.APIError):
                container.remove(force=True, v=True)
    outcome = ProcessOutcome(None if timed_out else exit_code, timed_out, time.monotonic() - start, 0)
    run = parse_outcome(spec, outcome, log_path, junit_path, argv=argv, timeout=timeout)
    run.summary["image"] = image
    run.summary["network"] = network
    return run
