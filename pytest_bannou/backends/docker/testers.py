"""Tester containers on a Docker environment's network: ``TesterContainers``, the
``run_tester_container`` capability of the Compose and Swarm backends.

The tester joins the network of the target node's container and reaches every node by its
in-network name (the alias its container answers to) and container port, exactly as bannou's own
tester images do in bannou's compose files. When the environment has an ingress on an external
network (``compose_file.add_edge_network``), the tester joins only that network, as bannou's
edge-tester does: it reaches the ingress, not the nodes. Its image is the tester's, or ``bannou:latest`` when
the tester only has a command (the locally built image that mounts the host's programs, so the
reference tester runs in it). The container carries the run-id labels (``bannou-env clean``
removes a leftover), stdin is closed, and at its deadline it is killed and the run reported as
timed out. Output is read back with Docker's timestamps: the log format ``testers.process``
writes, so everything after the container (parsing, reports) is shared with the process variant.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import BannouError
from ..base import LABEL_NODE, LABEL_OWNER_PID, LABEL_RUN_ID, TesterContainer, TesterContainerOutcome
from . import engine as _docker
from .images import interpreter

if TYPE_CHECKING:  # pragma: no cover
    import docker

IGNORED_NETWORKS = frozenset({"bridge", "host", "none", "ingress"})
WAIT_SLICE_S = 1.0
HOST_NETWORK = "host"  # run_container's network for a container in the host's namespace
PYTHON_NAMES = ("python", "python3")  # a tester command run by the host interpreter the image mounts
SWARM_TASK_LABEL = "com.docker.swarm.task.id"  # on the container of a swarm task
LIVE_TASK_STATES = ("running", "ready")  # a task's DesiredState while it is meant to run


def command_in_image(command: Sequence[str], stand_in: bool, image_python: str = "") -> list[str]:
    """A tester's command as it runs in its image. In a stand-in (``images``), ``python``/``python3``
    is the interpreter the image was built for (``image_python``, else this process's): its host
    mounts and ``PYTHONPATH`` are that interpreter's, and another virtualenv's path (the one running
    pytest now) does not exist inside it. Any other image runs the command as given."""
    argv = list(command)
    if stand_in and argv and argv[0] in PYTHON_NAMES:
        argv[0] = image_python or interpreter()
    return argv


class TesterContainers:
    """Mixed into the Docker Engine backends (whose ``tester_network()`` is ``"docker"``)."""

    @classmethod
    def run_tester_container(cls, tester: TesterContainer) -> TesterContainerOutcome:
        return run_tester_container(tester)


def node_address(cli: docker.DockerClient, run_id: str, node: str) -> tuple[str, str] | None:
    """(network, alias) of a running container of ``node`` in run ``run_id`` (None: none found)."""
    flt = {"label": [f"{LABEL_RUN_ID}={run_id}", f"{LABEL_NODE}={node}"], "status": "running"}
    for c in cli.containers.list(filters=flt, ignore_removed=True):
        named = spec_aliases(cli, c.labels)
        if named is None:
            continue
        networks = (c.attrs.get("NetworkSettings") or {}).get("Networks") or {}
        for net, info in networks.items():
            if net in IGNORED_NETWORKS:
                continue
            aliases = network_aliases(named, net, info)
            for wanted in (node, _docker.sanitize(node)):
                if wanted in aliases:
                    return net, wanted
            return net, aliases[0] if aliases else _docker.sanitize(node)
    return None


def spec_aliases(cli: docker.DockerClient, labels: Mapping[str, str]) -> dict[str, list[str]] | None:
    """A swarm task container's aliases as its task spec gives them, by network id or name: the
    names it answers to on each network, which the engine does not list for it (only its
    container id, which resolves on no other network). None: its task is no longer meant to run
    (a removed or replaced service: swarm stops its containers asynchronously, so they still run
    after the transition that removed them). A container of no swarm task (compose): {}."""
    import docker as docker_sdk

    task_id = labels.get(SWARM_TASK_LABEL)
    if not task_id:
        return {}
    try:
        task = cli.api.inspect_task(task_id)
    except docker_sdk.errors.NotFound:
        return None
    if task.get("DesiredState") not in LIVE_TASK_STATES:
        return None
    networks = (task.get("Spec") or {}).get("Networks") or []
    return {n["Target"]: [a for a in n.get("Aliases") or [] if a] for n in networks if n.get("Target")}


def network_aliases(
    named: Mapping[str, list[str]], network: str, info: Mapping[str, Any] | None
) -> list[str]:
    """The names a container answers to on ``network`` (``info``: its entry in the container's
    ``NetworkSettings.Networks``): its spec's aliases (``spec_aliases``) first, then the engine's."""
    info = info or {}
    spec = named.get(network) or named.get(info.get("NetworkID") or "") or []
    return [*spec, *(a for a in info.get("Aliases") or [] if a)]


def edge_address(cli: docker.DockerClient, run_id: str, network: str) -> tuple[str, str, str] | None:
    """(edge network, the ingress's alias on it, its node name) when the environment on
    ``network`` has an ingress with an external network (bannou's edge set-up: the tester is a
    client outside, reaching the ingress and not the nodes); None otherwise."""
    flt = {"label": [f"{LABEL_RUN_ID}={run_id}", f"{_docker.LABEL_EDGE_NETWORK}=true"]}
    edges = {n["Name"] for n in cli.api.networks(filters=flt)}
    if not edges:
        return None
    running = {"label": [f"{LABEL_RUN_ID}={run_id}"], "status": "running"}
    for c in cli.api.containers(filters=running):
        networks = (c.get("NetworkSettings") or {}).get("Networks") or {}
        edge = next((n for n in networks if n in edges), None)
        if edge is None or network not in networks:
            continue
        named = spec_aliases(cli, c.get("Labels") or {})
        if named is None:  # an ingress the transition removed, still stopping
            continue
        node = (c.get("Labels") or {}).get(LABEL_NODE, "")
        info = cli.api.inspect_container(c["Id"])["NetworkSettings"]["Networks"].get(edge) or {}
        aliases = network_aliases(named, edge, info)
        return edge, next((a for a in (node, _docker.sanitize(node)) if a in aliases), node), node
    return None


def run_tester_container(
    tester: TesterContainer, client: Callable[[], docker.DockerClient] = _docker.client
) -> TesterContainerOutcome:
    """Run ``tester`` on the Docker Engine (see the module docstring)."""
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
                command=tuple(tester.command),
                error=f"tester {tester.name!r}: image {image} not found on the Docker Engine at "
                f"{_docker.engine_label()}. Nothing is pulled: {_docker.BUILD_IMAGES_HINT}, or build/tag "
                f"it with `docker build -t {image} .`",
            )
        argv = command_in_image(tester.command, info.local_build, info.python)
        found = node_address(cli, tester.run_id, tester.target)
        if found is None:
            raise BannouError(
                f"tester {tester.name!r}: no running container of node {tester.target!r} in "
                f"{tester.env_key} (run id {tester.run_id}) to attach to; check `target:` of the tester"
            )
        edge = edge_address(cli, tester.run_id, found[0])

        def address(node: str, port: int | None) -> tuple[str, int]:
            if edge is not None and node == edge[2]:
                return edge[1], int(port or 80)
            where = found if node == tester.target else node_address(cli, tester.run_id, node)
            alias = where[1] if where else _docker.sanitize(node)
            return alias, int(port or 80)

        environment = dict(tester.environment(address))
        network = edge[0] if edge is not None else found[0]
        return run_container(cli, tester, image, argv, environment, info, network)
    finally:
        cli.close()


def tester_labels(tester: TesterContainer) -> dict[str, str]:
    """The labels ``clean`` finds a leftover tester container by."""
    return {
        LABEL_RUN_ID: tester.run_id,
        LABEL_NODE: f"tester-{tester.name}",
        LABEL_OWNER_PID: str(os.getpid()),
        _docker.LABEL_OWNER_HOST: socket.gethostname(),
        _docker.LABEL_BACKEND: tester.backend,
    }


def run_container(
    cli: docker.DockerClient,
    tester: TesterContainer,
    image: str,
    argv: list[str],
    environment: dict[str, str],
    info: Any,
    network: str,
) -> TesterContainerOutcome:
    """Create, start and follow the tester's container on ``network`` (``HOST_NETWORK``: the
    host's network namespace) until it exits or its deadline, keep its output in the tester's
    log, and remove it in any case."""
    import docker as docker_sdk

    where = {"network_mode": HOST_NETWORK} if network == HOST_NETWORK else {"network": network}
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
                **where,
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
            return TesterContainerOutcome(None, False, 0.0, image, network, tuple(argv), message, cid)
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
    duration = time.monotonic() - start
    return TesterContainerOutcome(
        None if timed_out else exit_code,
        timed_out,
        duration,
        image,
        network,
        tuple(argv),
        container=container.id,
    )


def _message(exc: BaseException) -> str:
    """The last line of an engine error, short enough for a report."""
    text = str(exc).strip().splitlines()
    return text[-1][:300] if text else type(exc).__name__
