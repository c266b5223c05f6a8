"""Docker helpers shared by the Compose, Swarm and Portainer backends (none imports another).

One place for what they need from the engine: a client with a clear error when no engine is
reachable, the labels every resource carries, the image each node runs and the read-only host
mounts that the locally built images ask for (see ``images``), container log merging, ``exec``
with a deadline, clean-up by label, and ``EngineBackend``, the SDK plumbing Compose and Swarm share.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..._support.names import resource_name
from ..._support.pids import pid_alive
from ...errors import BackendUnavailable, DeployError
from ...topology.diff import Transition
from ...topology.model import Node, Topology
from ..base import (
    LABEL_NODE,
    LABEL_OWNER_PID,
    LABEL_PREFIX,
    LABEL_PRESET,
    LABEL_PRESET_HASH,
    LABEL_RUN_ID,
    Availability,
    Backend,
    BackendOptions,
    Endpoint,
    ExecResult,
    ReplicaStatus,
)

if TYPE_CHECKING:  # pragma: no cover
    import docker

LABEL_OWNER_HOST = f"{LABEL_PREFIX}.owner-host"
LABEL_BACKEND = f"{LABEL_PREFIX}.backend"
# image labels written by ``images`` (the contract is described there)
LABEL_HOST_MOUNTS = f"{LABEL_PREFIX}.host-mounts"
LABEL_TMPFS = f"{LABEL_PREFIX}.tmpfs"
LABEL_IMAGE_FINGERPRINT = f"{LABEL_PREFIX}.fingerprint"
LABEL_PYTHON = f"{LABEL_PREFIX}.python"  # the interpreter whose paths the host mounts hold
# the client-facing network of a preset with an ingress (bannou's ``external``): the ingress is on
# it and on the environment's network, image testers only on it (``testers``)
EDGE_NETWORK = "external"
LABEL_EDGE_NETWORK = f"{LABEL_PREFIX}.edge-network"

START_ENGINE_HINT = (
    "start dockerd: apt-get install docker.io && dockerd & (or point DOCKER_HOST at a running engine)"
)
BUILD_IMAGES_HINT = "build the local images with `python -m pytest_bannou.backends.docker.images`"

# image per infrastructure type; {v} is the preset's version (default in the tuple)
INFRA_IMAGES: dict[str, tuple[str, str]] = {
    "redis": ("redis:{v}", "7"),
    "rabbitmq": ("rabbitmq:{v}-management", "3.12"),
    "mysql": ("mysql:{v}", "8.0"),
    "mariadb": ("mariadb:{v}", "11"),
    "postgres": ("postgres:{v}", "16"),
    "minio": ("minio/minio:{v}", "latest"),
    "ingress": ("openresty/openresty:{v}", "1.21.4.2-0-alpine"),  # bannou's pin (preset.resolve)
}
DEFAULT_BANNOU_IMAGE = "bannou:latest"


def engine_label() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def client(timeout: float = 30.0) -> docker.DockerClient:
    """A connected client, or ``BackendUnavailable`` saying where the engine was looked for and
    how to start one."""
    try:
        import docker as docker_sdk
    except ImportError:
        raise BackendUnavailable(
            "the Docker SDK for Python is not installed; install it: pip install 'pytest-bannou[docker]'"
        ) from None
    try:
        c = docker_sdk.from_env(timeout=int(max(1, timeout)))
        c.ping()
    except Exception as exc:
        raise BackendUnavailable(
            f"no Docker Engine reachable at {engine_label()} ({_short(exc)}); {START_ENGINE_HINT}"
        ) from None
    return c


def engine_availability() -> Availability:
    try:
        c = client(timeout=5)
    except BackendUnavailable as exc:
        return Availability(False, exc.message)
    try:
        version = c.version().get("Version", "?")
    finally:
        c.close()
    return Availability(True, f"Docker Engine {version} at {engine_label()}")


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1][:300] if text else type(exc).__name__


# --- labels and names ----------------------------------------------------------------------------
def resource_labels(
    options: BackendOptions, topology: Topology | None, backend: str, node: str | None = None
) -> dict[str, str]:
    labels = {
        LABEL_RUN_ID: options.run_id,
        LABEL_OWNER_PID: str(os.getpid()),
        LABEL_OWNER_HOST: socket.gethostname(),
        LABEL_BACKEND: backend,
    }
    if topology is not None:
        labels[LABEL_PRESET] = topology.preset
        labels[LABEL_PRESET_HASH] = topology.preset_hash
    if node is not None:
        labels[LABEL_NODE] = node
    return labels


def sanitize(text: str, max_len: int = 63) -> str:
    """Lowercase ``[a-z0-9_-]``, starting with a letter or digit (Compose project/Swarm names)."""
    return resource_name(text, max_len)  # the one sanitizer: _support.names


def owner_alive(labels: Mapping[str, str]) -> bool:
    """Whether the session that labelled a resource still runs. Resources of another host, and
    resources without an owner (started by hand from ``bannou-env render``), count as alive:
    only ``clean --run-id`` removes them."""
    host = labels.get(LABEL_OWNER_HOST)
    if host and host != socket.gethostname():
        return True
    try:
        pid = int(labels.get(LABEL_OWNER_PID, ""))
    except ValueError:
        return True
    return pid == os.getpid() or pid_alive(pid)


# --- images ----------------------------------------------------------------------------------------
def image_for(node: Node) -> str:
    """The image a node runs: its own, else by infrastructure type and version, else bannou's."""
    if node.image:
        return node.image
    if node.kind == "infrastructure" and node.infra_type in INFRA_IMAGES:
        pattern, default = INFRA_IMAGES[node.infra_type]
        return pattern.format(v=node.version or default)
    return DEFAULT_BANNOU_IMAGE


@dataclass(frozen=True)
class ImageInfo:
    name: str
    id: str
    host_mounts: tuple[str, ...]
    tmpfs: tuple[str, ...]
    has_cmd: bool
    python: str = ""  # a stand-in's interpreter: its label, else its command's (older builds)

    @property
    def local_build(self) -> bool:
        """Built by ``images``: host programs are available inside (``/usr/bin/python3``)."""
        return bool(self.host_mounts)


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(p.strip() for p in (value or "").split(",") if p.strip())


def image_info(cli: docker.DockerClient, name: str) -> ImageInfo | None:
    """What the engine knows of a local image (None when it has no such image)."""
    import docker as docker_sdk

    try:
        img = cli.images.get(name)
    except docker_sdk.errors.ImageNotFound:
        return None
    return image_info_from_attrs(name, img.attrs)


def image_info_from_attrs(name: str, attrs: Mapping[str, Any]) -> ImageInfo:
    """An ``ImageInfo`` from the engine's image inspect answer (``GET /images/NAME/json``)."""
    cfg = attrs.get("Config") or {}
    labels = cfg.get("Labels") or {}
    mounts, cmd = _split(labels.get(LABEL_HOST_MOUNTS)), list(cfg.get("Cmd") or [])
    python = labels.get(LABEL_PYTHON) or ""
    if mounts and not python and cmd and os.path.basename(str(cmd[0])).startswith("python"):
        python = str(cmd[0])
    has_cmd = bool(cmd or cfg.get("Entrypoint"))
    return ImageInfo(name, attrs.get("Id", ""), mounts, _split(labels.get(LABEL_TMPFS)), has_cmd, python)


def stale_stand_in(info: ImageInfo) -> str:
    """Why a stand-in cannot run here ("" when it can): the interpreter it was built for is gone
    (its virtualenv removed or moved), so each of its containers would fail to start."""
    gone = info.python and not os.path.exists(info.python)
    return f"built for {info.python}, which is gone" if gone else ""


def inspect_images(cli: docker.DockerClient, topology: Topology) -> dict[str, ImageInfo]:
    """Every image the topology needs, inspected; a ``DeployError`` naming each missing one."""
    infos: dict[str, ImageInfo] = {}
    missing: list[str] = []
    for node in topology.nodes:
        name = image_for(node)
        if name in infos or any(m.startswith(name + " ") for m in missing):
            continue
        info = image_info(cli, name)
        if info is None:
            missing.append(f"{name} (node {node.name})")
        elif stale_stand_in(info):
            missing.append(f"{name} (node {node.name}; {stale_stand_in(info)})")
        else:
            infos[name] = info
    if missing:
        raise DeployError(
            f"preset {topology.preset!r}: image(s) not usable on the Docker Engine at {engine_label()}: "
            f"{', '.join(missing)}. Nothing can be pulled here: {BUILD_IMAGES_HINT}, or build/tag your "
            "own with `docker build -t NAME .` / `docker tag EXISTING NAME`"
        )
    return infos


def host_mounts(info: ImageInfo) -> list[str]:
    """Existing host paths an image asks for, as ``path:path:ro`` bind specs."""
    return [f"{p}:{p}:ro" for p in info.host_mounts if os.path.exists(p)]


# --- containers ------------------------------------------------------------------------------------
_CONTAINER_STATES: dict[str, str] = {
    "created": "starting",
    "restarting": "starting",
    "running": "running",
    "paused": "stopped",
    "removing": "stopped",
    "exited": "exited",
    "dead": "exited",
}


def merged_logs(chunks: Iterable[bytes], tail: int | None = None) -> str:
    """Lines of several ``timestamps=True`` log streams merged oldest first, timestamps removed."""
    lines: list[tuple[str, str]] = []
    for raw in chunks:
        for line in raw.decode("utf-8", "replace").splitlines():
            ts, _, rest = line.partition(" ")
            lines.append((ts, rest))
    lines.sort(key=lambda t: t[0])
    out = [rest for _, rest in lines]
    if tail is not None:
        out = out[-tail:] if tail > 0 else []
    return "\n".join(out) + ("\n" if out else "")


def exec_in(cli: docker.DockerClient, container_id: str, argv: Sequence[str], timeout: float) -> ExecResult:
    """``docker exec`` with a deadline: exit code 124 and what was read when it runs out."""
    import docker as docker_sdk

    api = cli.api
    try:
        exec_id = api.exec_create(container_id, list(argv), stdout=True, stderr=True)["Id"]
    except docker_sdk.errors.APIError as exc:  # not running, removed, ...
        raise DeployError(
            f"cannot exec {' '.join(argv)!r} in container {container_id[:12]}: {_short(exc)}"
        ) from None
    result: dict[str, bytes] = {}

    def run() -> None:
        result["out"] = api.exec_start(exec_id, stream=False, demux=False) or b""

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        return ExecResult(124, f"{' '.join(argv)}: timed out after {timeout:.1f}s")
    code = api.exec_inspect(exec_id).get("ExitCode")
    return ExecResult(int(code if code is not None else 1), result.get("out", b"").decode("utf-8", "replace"))


def node_environment(node: Node) -> dict[str, str]:
    """The environment a node's container gets: its identity and HTTP port (what the local
    backend sets too) unless the preset sets them, then the node's effective environment."""
    env: dict[str, str] = {}
    if node.kind != "infrastructure":
        env["BANNOU_APP_ID"] = node.app_id
        if node.http_port is not None:
            env["HTTP_WEB_HOST_PORT"] = str(node.http_port)
    env.update(node.environment)
    return env


def mysql_login(port: int) -> str:
    """A shell line that logs in to the ``mysql`` image's server as root over TCP (its password
    from the container's ``MYSQL_ROOT_PASSWORD``, passed in ``MYSQL_PWD``, not on the command
    line); fails while the image's entrypoint still runs its socket-only set-up server."""
    return f"MYSQL_PWD=\"$MYSQL_ROOT_PASSWORD\" mysql -h 127.0.0.1 -P {port} -u root -e 'SELECT 1' >/dev/null"


def container_healthcheck(node: Node, local_image: bool) -> dict[str, Any] | None:
    """The engine-side healthcheck (Docker's shape, durations in seconds) for a node, or None.

    Images built by ``images`` have the host's /usr mounted, so ``/usr/bin/python3`` does the
    probe; other images get a shell line trying curl, then wget, then bash's /dev/tcp."""
    hc = node.healthcheck
    if hc is None or hc.kind in ("none", "heartbeat", "log"):
        return None
    test: list[str]
    if hc.kind == "http":
        path = str(hc.target or "/health")
        url = f"http://127.0.0.1:{node.http_port or 80}{path if path.startswith('/') else '/' + path}"
        if local_image:
            code = f"import urllib.request as u; u.urlopen({url!r}, timeout={hc.timeout})"
            test = ["CMD", "/usr/bin/python3", "-c", code]
        else:
            test = ["CMD-SHELL", f"curl -fsS -o /dev/null {url} || wget -q -O /dev/null {url}"]
    elif hc.kind == "mysql" and not local_image:  # the real image: a login, as the plugin's probe
        test = ["CMD-SHELL", mysql_login(int(hc.target))]
    elif hc.kind in ("tcp", "mysql"):  # mysql: the plugin logs in from outside (health.probes)
        port = int(hc.target)
        if local_image:
            code = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout={hc.timeout})"
            test = ["CMD", "/usr/bin/python3", "-c", code]
        else:
            test = ["CMD-SHELL", f"nc -z 127.0.0.1 {port} || bash -c '</dev/tcp/127.0.0.1/{port}'"]
    else:  # command
        test = ["CMD", *hc.target] if isinstance(hc.target, tuple) else ["CMD-SHELL", str(hc.target)]
    return {
        "test": test,
        "interval": hc.interval,
        "timeout": hc.timeout,
        "retries": hc.retries,
        "start_period": hc.start_period,
    }


# --- clean-up ----------------------------------------------------------------------------------------
#: a label dockershim puts on the containers of a Kubernetes pod (they carry the pod's labels,
#: run id included): the Kubernetes backend owns those, through their namespace
KUBELET_LABEL = "io.kubernetes.pod.namespace"


def kubelet_managed(labels: Mapping[str, str]) -> bool:
    return KUBELET_LABEL in labels


def owned(labels: Mapping[str, str] | None, run_id: str | None) -> bool:
    """Whether ``clean(run_id)`` removes a resource with these labels: it carries ``run_id``
    (or, when None, any run id whose owner session is gone)."""
    labels = labels or {}
    if LABEL_RUN_ID not in labels or kubelet_managed(labels):
        return False
    if run_id is not None:
        return labels[LABEL_RUN_ID] == run_id
    return not owner_alive(labels)


def clean_by_label(cli: docker.DockerClient, run_id: str | None) -> list[str]:
    """Remove services, containers, networks and volumes labelled with ``run_id`` (or, when None,
    those whose owner process is gone); one line per removed resource."""
    import docker as docker_sdk

    removed: list[str] = []
    flt = {"label": f"{LABEL_RUN_ID}={run_id}" if run_id else LABEL_RUN_ID}
    not_found = docker_sdk.errors.NotFound
    with contextlib.suppress(docker_sdk.errors.APIError):  # not a swarm manager: no services
        for svc in cli.services.list(filters=flt):
            labels = svc.attrs.get("Spec", {}).get("Labels") or {}
            if owned(labels, run_id):
                with contextlib.suppress(not_found):
                    svc.remove()
                    removed.append(f"service {svc.name} (run id {labels[LABEL_RUN_ID]})")
    listed = cli.containers.list(all=True, filters=flt, ignore_removed=True)  # gone meanwhile: skipped
    containers = [c for c in listed if owned(c.labels, run_id)]

    def rm(c: Any) -> None:
        with contextlib.suppress(not_found):
            c.remove(force=True, v=True)
        removed.append(f"container {c.name} (run id {c.labels[LABEL_RUN_ID]})")

    if containers:
        with ThreadPoolExecutor(max_workers=min(8, len(containers))) as pool:
            list(pool.map(rm, containers))
    for net in cli.networks.list(filters=flt):
        labels = net.attrs.get("Labels") or {}
        if owned(labels, run_id):
            problem = remove_network(cli, net.id)
            if problem is None:
                removed.append(f"network {net.name} (run id {labels[LABEL_RUN_ID]})")
    for vol in cli.volumes.list(filters=flt):
        labels = vol.attrs.get("Labels") or {}
        if owned(labels, run_id):
            with contextlib.suppress(not_found):
                vol.remove(force=True)
                removed.append(f"volume {vol.name} (run id {labels[LABEL_RUN_ID]})")
    return removed


def remove_network(cli: docker.DockerClient, network: str, timeout: float = 15.0) -> str | None:
    """Remove a network and wait until the engine no longer lists it (swarm overlays linger
    after removal, and refuse removal while task endpoints detach); None, or what went wrong."""
    import docker as docker_sdk

    deadline = time.monotonic() + timeout
    problem = ""
    while time.monotonic() < deadline:
        try:
            cli.api.remove_network(network)
        except docker_sdk.errors.NotFound:
            pass
        except docker_sdk.errors.APIError as exc:
            problem = _short(exc)
            time.sleep(0.1)
            continue
        try:
            cli.api.inspect_network(network)
        except docker_sdk.errors.NotFound:
            return None
        time.sleep(0.05)
    return problem or "still listed"


def remove_volume(cli: docker.DockerClient, name: str) -> str | None:
    """Remove a volume (gone already is fine); None, or what went wrong."""
    import docker as docker_sdk

    try:
        cli.api.remove_volume(name, force=True)
    except docker_sdk.errors.NotFound:
        pass
    except docker_sdk.errors.APIError as exc:
        return _short(exc)
    return None


def dead_runs() -> set[str]:
    """Run ids on this engine whose owning session is gone (see ``owner_alive``)."""
    cli = client()
    try:
        flt = {"label": LABEL_RUN_ID}
        listed = cli.containers.list(all=True, filters=flt, ignore_removed=True)
        labelled: list[dict[str, str]] = [c.labels for c in listed]
        labelled += [n.attrs.get("Labels") or {} for n in cli.networks.list(filters=flt)]
        labelled += [v.attrs.get("Labels") or {} for v in cli.volumes.list(filters=flt)]
        with contextlib.suppress(Exception):  # not a swarm manager: no services
            labelled += [s.attrs.get("Spec", {}).get("Labels") or {} for s in cli.services.list(filters=flt)]
    finally:
        cli.close()
    return {
        labels[LABEL_RUN_ID] for labels in labelled if not kubelet_managed(labels) and not owner_alive(labels)
    }


def without_owner(obj: Any) -> Any:
    """``obj`` (a rendered file) without owner labels: a file run by hand has no owning session,
    so ``clean --all-stale`` must leave it alone (``clean --run-id`` still finds it)."""
    if isinstance(obj, dict):
        owner = (LABEL_OWNER_HOST, LABEL_OWNER_PID)
        return {k: without_owner(v) for k, v in obj.items() if k not in owner}
    if isinstance(obj, list):
        return [without_owner(v) for v in obj]
    return obj


def with_owner(obj: Any, owner: Mapping[str, str]) -> Any:
    """``obj`` (a rendered file) with the owner labels ``owner`` instead of this process's: a
    kept run taken over by another process keeps the owner it was deployed with, so that the
    resources a change does not touch render exactly as before (Compose recreates a network
    whose labels changed)."""
    if isinstance(obj, dict):
        return {k: owner[k] if k in owner else with_owner(v, owner) for k, v in obj.items()}
    if isinstance(obj, list):
        return [with_owner(v, owner) for v in obj]
    return obj


def owner_of(labels: Mapping[str, str] | None) -> dict[str, str]:
    """The owner labels among ``labels`` (what ``with_owner`` puts back)."""
    return {k: v for k, v in (labels or {}).items() if k in (LABEL_OWNER_HOST, LABEL_OWNER_PID)}


def labelled_leftovers(cli: docker.DockerClient, run_id: str) -> list[str]:
    """Every resource still carrying ``run_id`` (tests assert this is empty after teardown)."""
    import docker as docker_sdk

    flt = {"label": f"{LABEL_RUN_ID}={run_id}"}
    found = [f"container {c.name}" for c in cli.containers.list(all=True, filters=flt, ignore_removed=True)]
    found += [f"network {n.name}" for n in cli.networks.list(filters=flt)]
    found += [f"volume {v.name}" for v in cli.volumes.list(filters=flt)]
    with contextlib.suppress(docker_sdk.errors.APIError):
        found += [f"service {s.name}" for s in cli.services.list(filters=flt)]
    return found


def list_entry_status(node: str, replica: int, c: Mapping[str, Any], restarts: int = 0) -> ReplicaStatus:
    """A ``ReplicaStatus`` from a ``containers/json`` list entry (no inspect per container)."""
    raw = c.get("State", "unknown")
    text = c.get("Status", "")
    mapped = _CONTAINER_STATES.get(raw, "unknown")
    exit_code = None
    if mapped == "exited":
        m = re.search(r"Exited \((-?\d+)\)", text)
        exit_code = int(m.group(1)) if m else None
    return ReplicaStatus(
        node=node,
        replica=replica,
        state=mapped,  # type: ignore[arg-type]
        id=c.get("Id", "")[:12],
        exit_code=exit_code,
        restarts=restarts,
        detail=f"container {raw}: {text}",
    )


# --- the SDK plumbing Compose and Swarm share -------------------------------------------------------
def deployed_node(backend: Backend, node: str) -> Node:
    """The deployed node called ``node`` (``Backend.deployed_node``)."""
    return backend.deployed_node(node)


class EngineBackend(Backend):
    """A backend driving the local Docker Engine through the SDK: a lazily connected client,
    clean-up by label, and endpoints cached per (node, port, replica) until the next change."""

    def __init__(self, options: BackendOptions) -> None:
        super().__init__(options)
        self._cli: Any = None
        # (node, port, replica) -> Endpoint: readiness probes ask many times a second, and a
        # container list per probe slows the engine down while it starts containers; cleared by
        # every change this instance makes
        self._endpoints: dict[tuple[str, int | None, int], Endpoint] = {}

    @property
    def cli(self) -> Any:
        if self._cli is None:
            self._cli = client()
        return self._cli

    @classmethod
    def clean(cls, run_id: str | None = None, options: BackendOptions | None = None) -> list[str]:
        cli = client()
        try:
            return clean_by_label(cli, run_id)
        finally:
            cli.close()

    # optional capabilities (see ``base``)
    @classmethod
    def dead_runs(cls) -> set[str]:
        return dead_runs()

    @classmethod
    def peer_address(cls, node: Node, port: int) -> Endpoint:
        """Nodes reach each other by node name (their network alias) and container port."""
        return Endpoint(node.name, port)

    @classmethod
    def tester_network(cls) -> str:
        return "docker"

    def _require(self, node: str) -> Node:
        return self.deployed_node(node)

    # every change forgets the cached endpoints
    def apply(self, transition: Transition, deadline: float) -> None:
        self._endpoints.clear()
        super().apply(transition, deadline)

    def restart(self, node: str, environment: Mapping[str, str] | None = None) -> None:
        self._endpoints.clear()
        super().restart(node, environment)

    def scale(self, node: str, replicas: int) -> None:
        self._endpoints.clear()
        super().scale(node, replicas)

    def endpoint(self, node: str, port: int | None = None, replica: int = 0) -> Endpoint:
        key = (node, port, replica)
        if key not in self._endpoints:
            self._endpoints[key] = self._lookup_endpoint(node, port, replica)
        return self._endpoints[key]

    def _lookup_endpoint(self, node: str, port: int | None, replica: int) -> Endpoint:
        """The endpoint as the engine has it now (``endpoint`` caches it)."""
        raise NotImplementedError
