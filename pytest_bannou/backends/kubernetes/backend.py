"""Kubernetes backend: one namespace per environment, a Deployment and a Service per node.

The resolved topology is rendered to plain manifests (``render_manifests`` / ``render_yaml``:
a Namespace labelled with run id, preset, preset hash and owner pid; per node a Deployment with
replicas, environment, requests/limits, the node's healthcheck as ``readinessProbe``, labels,
``imagePullPolicy: Never`` and the read-only host paths a locally built image asks for as
``hostPath`` volumes, plus a Service for its ports) and created through the official client.

``deploy`` returns once every pod has started (image present, container created), failing fast
with the image and how to build it when the node cannot get it; readiness is probed from the test
process by ``health.wait_ready`` as on every backend (set ``extra["kubernetes_wait_rollout"]`` to
``"true"`` to also wait for the rollout). ``wait_rollout`` (observedGeneration, updatedReplicas,
availableReplicas, no old pods) is what ``apply``, ``restart`` and ``scale`` wait for; a pod in
CrashLoopBackOff / ImagePullBackOff / ErrImageNeverPull / Error fails it at once with the pod's
reason and last log lines.

The test process reaches a replica through the API server: ``endpoint`` opens a listener on
127.0.0.1 per pod and port that relays each accepted connection over its own port-forward
websocket, so it works on any cluster, without routes to pod IPs. With
``extra["kubernetes_service_type"] = "NodePort"`` the Service is a NodePort and ``endpoint``
returns the node address (``extra["kubernetes_node_address"]``, default the pod's host IP) and
node port, load-balanced over the replicas.

Teardown deletes the namespace and waits, up to ``extra["kubernetes_teardown_timeout"]`` seconds
(default 60), until its pods are gone: that is when nothing runs any more (a terminating pod whose
containers have all stopped is removed without grace, since the kubelet keeps its object up to
50 s longer for bookkeeping). Waiting for the
namespace object itself (``extra["kubernetes_teardown_wait"] = "namespace"``) costs another
10-25 s of namespace-controller requeues on a healthy cluster. ``clean`` finds namespaces by the
run-id label across the cluster (without a run id: those whose owner process is dead).

Kubeconfig: ``extra["kubeconfig"]``, else ``KUBECONFIG``, else the in-cluster service account,
else ``~/.kube/config`` (context: ``extra["kubernetes_context"]``).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import os
import re
import select
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import yaml

from ...errors import BackendUnavailable, DeployError, NodeNotReady
from ...topology.diff import Action, Transition
from ...topology.model import Node, Topology
from ..base import (
    LABEL_NODE,
    LABEL_PREFIX,
    LABEL_PRESET,
    LABEL_RUN_ID,
    Availability,
    Backend,
    BackendOptions,
    Endpoint,
    ExecResult,
    ReplicaStatus,
)
from ..docker import engine as _docker

LABEL_OWNER_HOST = _docker.LABEL_OWNER_HOST
LABEL_BACKEND = _docker.LABEL_BACKEND
ANNOTATION_NODE = f"{LABEL_PREFIX}.node-name"  # the node's name as the preset wrote it
ANNOTATION_RESTARTS = f"{LABEL_PREFIX}.restarts"  # restarts this backend did (pod template)
ANNOTATION_RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"  # what `kubectl rollout restart` sets
CONTAINER = "node"
REQUEST_TIMEOUT = 15.0
POLL = 0.25
LOG_TAIL = 40
CLUSTER_HINT = (
    "start one with `../shared/k8s/cluster up` (in this repository's CI) or point KUBECONFIG at a cluster"
)
BUILD_HINT = (
    "build it on the cluster node's Docker Engine (`python -m pytest_bannou.backends.docker.images` builds "
    "bannou:latest, redis:7 and rabbitmq:3.12-management; your own with `docker build -t IMAGE .`); "
    "nothing is pulled (imagePullPolicy: Never)"
)
LAYERLESS_HINT = (
    "a dockershim kubelet (Kubernetes <= 1.23 on Docker) refuses images of size 0, such as the "
    "layer-less FROM scratch images `python -m pytest_bannou.backends.docker.images` builds: give the "
    "image a layer (`FROM IMAGE` + `COPY somefile /`, or "
    "`pytest_bannou.backends.kubernetes.backend.layered_image(IMAGE)` "
    "which builds IMAGE-layered) and run that tag"
)
IMAGE_REASONS = {
    "ErrImageNeverPull",
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "ImageInspectError",
}
FAIL_REASONS = IMAGE_REASONS | {
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
}


# --- options -------------------------------------------------------------------------------------
def _extra(options: BackendOptions | None, key: str, default: str = "") -> str:
    if options is None:
        return default
    return str((options.extra or {}).get(key, default) or default)


def _float_option(options: BackendOptions | None, key: str, default: float) -> float:
    raw = _extra(options, key)
    try:
        return float(raw) if raw else default
    except ValueError:
        raise DeployError(f"backend kubernetes: option {key}={raw!r} is not a number of seconds") from None


def service_type(options: BackendOptions | None) -> str:
    value = _extra(options, "kubernetes_service_type", "ClusterIP")
    for known in ("ClusterIP", "NodePort"):
        if value.lower() == known.lower():
            return known
    raise DeployError(
        f"backend kubernetes: kubernetes_service_type={value!r} is not supported; use ClusterIP "
        "(endpoints through port-forwards, the default) or NodePort"
    )


# --- names and labels ----------------------------------------------------------------------------
def _dns_label(text: str, max_len: int = 63) -> str:
    s = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    s = re.sub(r"-{2,}", "-", s)
    return s[:max_len].rstrip("-")


def _with_hash(text: str, clean: str, max_len: int) -> str:
    """``clean`` if it is ``text`` unchanged and fits, else a shortened form with a hash suffix,
    so two different names never map to the same object."""
    if clean == text and len(clean) <= max_len:
        return clean
    digest = hashlib.sha256(text.encode()).hexdigest()[:6]
    return f"{clean[: max_len - 7].rstrip('-')}-{digest}"


def object_name(node: str) -> str:
    """A node's Deployment/Service/label name: a DNS-1035 label (Services must start with a letter)."""
    clean = _dns_label(node, 63) or "node"
    if not clean[0].isalpha():
        clean = ("n-" + clean)[:63]
    return _with_hash(node, clean, 63)


def namespace_name(options: BackendOptions, topology: Topology) -> str:
    """``bannou-RUNID-PRESET-WORKER`` as a DNS-1123 label (hash-suffixed when it had to change)."""
    worker = options.worker or os.environ.get("PYTEST_XDIST_WORKER", "") or "main"
    raw = f"bannou-{options.run_id}-{topology.preset}-{worker}"
    return _with_hash(raw, _dns_label(raw, 63), 63)


def label_value(value: str) -> str:
    """A valid label value (63 chars of ``[A-Za-z0-9._-]``, alphanumeric at both ends)."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", value)[:63]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", s)


def resource_labels(
    options: BackendOptions, topology: Topology | None, node: str | None = None
) -> dict[str, str]:
    labels = {k: label_value(v) for k, v in _docker.resource_labels(options, topology, "kubernetes").items()}
    if node is not None:
        labels[LABEL_NODE] = object_name(node)
    return labels


def selector(options: BackendOptions, node: str) -> dict[str, str]:
    """Pod selector of a node's Deployment; immutable, so it holds neither preset nor hash."""
    return {LABEL_RUN_ID: label_value(options.run_id), LABEL_NODE: object_name(node)}


# --- images ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImageMeta:
    """What a locally built image (``images``) asks for: read-only host paths and tmpfs dirs."""

    host_mounts: tuple[str, ...] = ()
    tmpfs: tuple[str, ...] = ()


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(p.strip() for p in (value or "").split(",") if p.strip())


def local_image_meta(topology: Topology) -> dict[str, ImageMeta]:
    """Labels of the images the topology runs, read from the local Docker Engine when there is
    one (the single-node cluster runs on it). Images it does not know get no host mounts; a
    missing image is reported by the kubelet (ErrImageNeverPull) and explained by ``deploy``."""
    try:
        cli = _docker.client(timeout=10)
    except Exception:
        return {}
    out: dict[str, ImageMeta] = {}
    try:
        for node in topology.nodes:
            name = _docker.image_for(node)
            if name in out:
                continue
            try:
                labels = (cli.images.get(name).attrs.get("Config") or {}).get("Labels") or {}
            except Exception:
                continue
            out[name] = ImageMeta(
                _split(labels.get(_docker.LABEL_HOST_MOUNTS)), _split(labels.get(_docker.LABEL_TMPFS))
            )
    finally:
        cli.close()
    return out


def layered_image(base: str, tag: str | None = None) -> str:
    """Build ``tag`` (default ``BASE-layered``) = ``FROM base`` + one marker file on the local
    Docker Engine and return it: the same image (labels, host mounts, command) with a layer, which
    a dockershim kubelet accepts where it refuses a size-0 image (``LAYERLESS_HINT``)."""
    import io
    import tarfile

    repo, _, version = base.rpartition(":") if ":" in base.rsplit("/", 1)[-1] else (base, "", "latest")
    tag = tag or f"{repo}:{version}-layered"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (
            ("Dockerfile", f"FROM {base}\nCOPY layer /.bannou-layer\n".encode()),
            ("layer", b"pytest-bannou: a layer for dockershim\n"),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    cli = _docker.client()
    try:
        cli.images.build(fileobj=buf, custom_context=True, tag=tag, rm=True)
    except Exception as exc:
        raise DeployError(f"building {tag} from {base} failed: {exc}") from None
    finally:
        cli.close()
    return tag


# --- rendering ---------------------------------------------------------------------------------------
def _seconds(value: float, minimum: int = 1) -> int:
    return max(minimum, round(value))


def readiness_probe(node: Node) -> dict[str, Any] | None:
    """The node's healthcheck as a Kubernetes probe (whole seconds, Kubernetes' minimum 1)."""
    hc = node.healthcheck
    if hc is None or hc.kind in ("none", "heartbeat", "log"):
        return None
    probe: dict[str, Any]
    if hc.kind == "http":
        path = str(hc.target or "/health")
        probe = {
            "httpGet": {"path": path if path.startswith("/") else "/" + path, "port": node.http_port or 80}
        }
    elif hc.kind == "tcp":
        port = int(hc.target) if str(hc.target).strip().isdigit() else (node.ports[0] if node.ports else 80)
        probe = {"tcpSocket": {"port": port}}
    else:
        argv = list(hc.target) if isinstance(hc.target, tuple) else ["/bin/sh", "-c", str(hc.target)]
        probe = {"exec": {"command": argv}}
    probe.update(
        periodSeconds=_seconds(hc.interval),
        timeoutSeconds=_seconds(hc.timeout),
        failureThreshold=max(1, hc.retries or 3),
        successThreshold=1,
    )
    if hc.start_period:
        probe["initialDelaySeconds"] = _seconds(hc.start_period, 0)
    return probe


def _resources(node: Node) -> dict[str, Any] | None:
    r = node.resources
    if r is None:
        return None
    limits = {k: v for k, v in (("cpu", r.cpu_limit), ("memory", r.memory_limit)) if v}
    requests = {k: v for k, v in (("cpu", r.cpu_request), ("memory", r.memory_request)) if v}
    out: dict[str, Any] = {}
    if limits:
        out["limits"] = limits
    if requests:
        out["requests"] = requests
    return out or None


def _volumes(node: Node, meta: ImageMeta | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(volumes, volumeMounts): image host paths read-only, image tmpfs dirs in memory, and the
    node's own ``SOURCE:TARGET[:ro]`` volumes (host paths as hostPath, named ones as emptyDir:
    a pod-local directory, not shared between replicas)."""
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    if meta:
        for i, path in enumerate(meta.host_mounts):
            if not os.path.exists(path):
                continue
            name = f"host-{i}"
            volumes.append({"name": name, "hostPath": {"path": path, "type": "Directory"}})
            mounts.append({"name": name, "mountPath": path, "readOnly": True})
        for i, path in enumerate(meta.tmpfs):
            name = f"tmpfs-{i}"
            volumes.append({"name": name, "emptyDir": {"medium": "Memory"}})
            mounts.append({"name": name, "mountPath": path})
    for i, spec in enumerate(node.volumes):
        parts = spec.split(":")
        source, target = (parts[0], parts[1]) if len(parts) > 1 else ("", parts[0])
        read_only = len(parts) > 2 and "ro" in parts[2].split(",")
        name = f"vol-{i}"
        if source.startswith("/"):
            volumes.append({"name": name, "hostPath": {"path": source}})
        else:
            volumes.append({"name": name, "emptyDir": {}})
        mount: dict[str, Any] = {"name": name, "mountPath": target}
        if read_only:
            mount["readOnly"] = True
        mounts.append(mount)
    return volumes, mounts


def render_deployment(
    node: Node,
    topology: Topology,
    options: BackendOptions,
    namespace: str,
    meta: ImageMeta | None = None,
    template_annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    name = object_name(node.name)
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": _docker.image_for(node),
        "imagePullPolicy": "Never",
        "env": [{"name": k, "value": str(v)} for k, v in _docker.node_environment(node).items()],
    }
    if node.command:
        container["args"] = list(node.command)
    if node.ports:
        container["ports"] = [{"containerPort": p, "protocol": "TCP"} for p in dict.fromkeys(node.ports)]
    resources = _resources(node)
    if resources:
        container["resources"] = resources
    probe = readiness_probe(node)
    if probe:
        container["readinessProbe"] = probe
    volumes, mounts = _volumes(node, meta)
    if mounts:
        container["volumeMounts"] = mounts
    pod_spec: dict[str, Any] = {
        "containers": [container],
        "terminationGracePeriodSeconds": int(_float_option(options, "kubernetes_termination_grace", 5)),
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,
    }
    if volumes:
        pod_spec["volumes"] = volumes
    annotations = {ANNOTATION_NODE: node.name, **(template_annotations or {})}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": resource_labels(options, topology, node.name),
            "annotations": {ANNOTATION_NODE: node.name, f"{LABEL_PREFIX}.spec-hash": node.spec_hash()},
        },
        "spec": {
            "replicas": node.replicas,
            "selector": {"matchLabels": selector(options, node.name)},
            "template": {
                "metadata": {"labels": selector(options, node.name), "annotations": annotations},
                "spec": pod_spec,
            },
        },
    }


def render_service(
    node: Node, topology: Topology, options: BackendOptions, namespace: str
) -> dict[str, Any] | None:
    if not node.ports:
        return None
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": object_name(node.name),
            "namespace": namespace,
            "labels": resource_labels(options, topology, node.name),
            "annotations": {ANNOTATION_NODE: node.name},
        },
        "spec": {
            "type": service_type(options),
            "selector": selector(options, node.name),
            "ports": [
                {"name": f"p{p}", "port": p, "targetPort": p, "protocol": "TCP"}
                for p in dict.fromkeys(node.ports)
            ],
        },
    }


def render_namespace(topology: Topology, options: BackendOptions, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": namespace,
            "labels": resource_labels(options, topology),
            "annotations": {LABEL_PRESET: topology.preset, LABEL_RUN_ID: options.run_id},
        },
    }


def render_manifests(
    topology: Topology, options: BackendOptions, images: Mapping[str, ImageMeta] | None = None
) -> list[dict[str, Any]]:
    """Namespace, then a Deployment and (when it has ports) a Service per node, as dicts.
    ``images`` defaults to the labels of the local Docker Engine's images (``local_image_meta``)."""
    images = local_image_meta(topology) if images is None else images
    ns = namespace_name(options, topology)
    docs: list[dict[str, Any]] = [render_namespace(topology, options, ns)]
    for node in topology.nodes:
        docs.append(render_deployment(node, topology, options, ns, images.get(_docker.image_for(node))))
        svc = render_service(node, topology, options, ns)
        if svc:
            docs.append(svc)
    return docs


def render_yaml(
    topology: Topology, options: BackendOptions, images: Mapping[str, ImageMeta] | None = None
) -> str:
    """The manifests as one multi-document YAML (``kubectl apply -f -`` accepts it)."""
    return yaml.safe_dump_all(
        render_manifests(topology, options, images), sort_keys=False, default_flow_style=False
    )


# --- connecting --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Connection:
    """A client configuration and where it came from (for messages)."""

    configuration: Any
    source: str

    @property
    def host(self) -> str:
        return str(self.configuration.host)


def connect(options: BackendOptions | None = None) -> Connection:
    """Client configuration from ``extra["kubeconfig"]`` / ``KUBECONFIG`` / in-cluster /
    ``~/.kube/config``; ``BackendUnavailable`` saying what was tried."""
    try:
        from kubernetes import client, config
    except ImportError as exc:
        raise BackendUnavailable(
            f"the kubernetes client is not installed ({exc}); pip install 'pytest-bannou[kubernetes]'"
        ) from None
    context = _extra(options, "kubernetes_context") or None
    candidates: list[tuple[str, str]] = []
    if _extra(options, "kubeconfig"):
        candidates.append(("option kubeconfig", _extra(options, "kubeconfig")))
    elif os.environ.get("KUBECONFIG"):
        candidates.append(("KUBECONFIG", os.environ["KUBECONFIG"].split(os.pathsep)[0]))
    cfg = client.Configuration()
    for source, path in candidates:
        if not os.path.isfile(path):
            raise BackendUnavailable(f"kubeconfig {path} (from {source}) does not exist; {CLUSTER_HINT}")
        try:
            config.load_kube_config(config_file=path, context=context, client_configuration=cfg)
        except Exception as exc:
            raise BackendUnavailable(f"kubeconfig {path} (from {source}) cannot be used: {exc}") from None
        return _tune(Connection(cfg, f"{source} {path}"))
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        try:
            config.load_incluster_config(client_configuration=cfg)
        except Exception as exc:
            raise BackendUnavailable(f"in-cluster Kubernetes configuration cannot be used: {exc}") from None
        return _tune(Connection(cfg, "in-cluster service account"))
    home = Path(os.path.expanduser("~/.kube/config"))
    if home.is_file():
        try:
            config.load_kube_config(config_file=str(home), context=context, client_configuration=cfg)
        except Exception as exc:
            raise BackendUnavailable(f"kubeconfig {home} cannot be used: {exc}") from None
        return _tune(Connection(cfg, f"default kubeconfig {home}"))
    raise BackendUnavailable(
        "no Kubernetes configuration: KUBECONFIG is not set, not running in a cluster, no ~/.kube/config, "
        f"no kubeconfig option; {CLUSTER_HINT}"
    )


def _tune(conn: Connection) -> Connection:
    conn.configuration.retries = 1  # an unreachable API server fails in seconds, not minutes
    return conn


def _api_error(exc: BaseException) -> str:
    status = getattr(exc, "status", None)
    if status:
        reason = getattr(exc, "reason", "") or ""
        body = getattr(exc, "body", "") or ""
        message = ""
        with contextlib.suppress(Exception):
            message = yaml.safe_load(body).get("message", "")
        return f"HTTP {status} {reason}{': ' + message if message else ''}".strip()
    text = str(exc).strip().splitlines()
    return text[-1][:300] if text else type(exc).__name__


def check_cluster(conn: Connection, timeout: float = 5.0) -> str:
    """The server version, or ``BackendUnavailable`` naming the address and what went wrong."""
    from kubernetes import client

    api_client = client.ApiClient(conn.configuration)
    try:
        info = client.VersionApi(api_client).get_code(_request_timeout=timeout)
        # /version is readable anonymously: check that the credentials are accepted too
        client.CoreV1Api(api_client).list_namespace(limit=1, _request_timeout=timeout)
    except Exception as exc:
        status = getattr(exc, "status", None)
        if status in (401, 403):
            raise BackendUnavailable(
                f"the Kubernetes API server at {conn.host} rejected the credentials from {conn.source} "
                f"({_api_error(exc)}); use a kubeconfig with a valid token or certificate that may list "
                "namespaces"
            ) from None
        raise BackendUnavailable(
            f"the Kubernetes API server at {conn.host} (from {conn.source}) is unreachable: "
            f"{_api_error(exc)}; "
            f"{CLUSTER_HINT}"
        ) from None
    finally:
        api_client.close()
    return str(info.git_version)


def availability(options: BackendOptions | None = None) -> Availability:
    try:
        conn = connect(options)
        version = check_cluster(conn)
    except BackendUnavailable as exc:
        return Availability(False, exc.message)
    return Availability(True, f"Kubernetes {version} at {conn.host} ({conn.source})")


# --- port-forward relay --------------------------------------------------------------------------------
_HOOK_LOCK = threading.Lock()
_hook_installed = False


def _quiet_portforward_threads() -> None:
    """The client's port-forward proxy thread raises (``SSLEOFError``, ``OSError``) when the API
    server closes a forward whose pod port is not listening yet, which every readiness probe of a
    starting node does; the relay already sees the closed socket. Keep those out of stderr
    (other threads' exceptions still reach the previous hook)."""
    global _hook_installed
    with _HOOK_LOCK:
        if _hook_installed:
            return
        previous = threading.excepthook

        def hook(args: Any) -> None:
            name = getattr(args.thread, "name", "") or ""
            if name.startswith("Kubernetes port forward proxy") and issubclass(args.exc_type, OSError):
                return
            previous(args)

        threading.excepthook = hook
        _hook_installed = True


class _Forwarder:
    """A 127.0.0.1 listener; every accepted connection gets its own port-forward to the pod port."""

    def __init__(self, open_remote: Callable[[], tuple[Any, Any]], label: str) -> None:
        _quiet_portforward_threads()
        self._open_remote = open_remote
        self.label = label
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(64)
        self.port = self._server.getsockname()[1]
        self._closed = threading.Event()
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True, name=f"k8s-forward-{label}").start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            with self._lock:
                self._conns.add(conn)
            threading.Thread(
                target=self._serve, args=(conn,), daemon=True, name=f"k8s-relay-{self.label}"
            ).start()

    def _serve(self, conn: socket.socket) -> None:
        pf = remote = None
        try:
            pf, remote = self._open_remote()
            remote.setblocking(True)
            _relay(conn, remote, self._closed)
        except Exception:  # the pod is not running / port closed: the client sees a closed connection
            pass
        finally:
            for s in (conn, remote):
                with contextlib.suppress(Exception):
                    if s is not None:
                        s.close()
            with contextlib.suppress(Exception):
                if pf is not None:
                    pf.close()
            with self._lock:
                self._conns.discard(conn)

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._server.close()
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)


def _relay(a: Any, b: Any, closed: threading.Event) -> None:
    """Copy bytes both ways until either side closes (HTTP-style request/response streams)."""
    peers = {a.fileno(): b, b.fileno(): a}
    socks = {a.fileno(): a, b.fileno(): b}
    while not closed.is_set():
        readable, _, _ = select.select(list(socks.values()), [], [], 0.5)
        for s in readable:
            data = s.recv(65536)
            if not data:
                return
            peers[s.fileno()].sendall(data)


# --- the backend -------------------------------------------------------------------------------------
class KubernetesBackend(Backend):
    name: ClassVar[str] = "kubernetes"
    aliases: ClassVar[tuple[str, ...]] = ("k8s",)

    def __init__(self, options: BackendOptions) -> None:
        super().__init__(options)
        self.namespace: str | None = None
        self._conn: Connection | None = None
        self._api: Any = None
        self._stream_api: Any = None
        self._stream_lock = threading.Lock()  # the client's stream helpers patch their ApiClient
        self._images: dict[str, ImageMeta] = {}
        self._forwarders: dict[tuple[str, int], _Forwarder] = {}
        self._fw_lock = threading.Lock()

    # capability
    @classmethod
    def available(cls) -> Availability:
        return availability(None)

    # plumbing
    def _connect(self) -> None:
        if self._api is not None:
            return
        from kubernetes import client

        conn = connect(self.options)
        check_cluster(conn)
        self._conn = conn
        self._api = client.ApiClient(conn.configuration)
        self._stream_api = client.ApiClient(conn.configuration)

    @property
    def core(self) -> Any:
        from kubernetes import client

        self._connect()
        return client.CoreV1Api(self._api)

    @property
    def apps(self) -> Any:
        from kubernetes import client

        self._connect()
        return client.AppsV1Api(self._api)

    def _stream_core(self) -> Any:
        from kubernetes import client

        self._connect()
        return client.CoreV1Api(self._stream_api)

    def _where(self) -> str:
        host = self._conn.host if self._conn else "?"
        return f"namespace {self.namespace} on {host}"

    def _require(self, node: str) -> Node:
        if self.topology is None or self.namespace is None:
            raise DeployError("kubernetes backend: nothing is deployed")
        try:
            return self.topology.node(node)
        except KeyError as exc:
            raise DeployError(str(exc.args[0])) from None

    def _set_node(self, node: Node) -> None:
        assert self.topology is not None
        self.topology = self.topology.with_nodes(
            node if x.name == node.name else x for x in self.topology.nodes
        )

    # pods
    def _pods(self, node: str | None = None) -> list[Any]:
        """Live (not terminating) pods of this environment, optionally of one node."""
        if self.namespace is None:
            return []
        sel = f"{LABEL_RUN_ID}={label_value(self.run_id)}"
        if node is not None:
            sel += f",{LABEL_NODE}={object_name(node)}"
        pods = self.core.list_namespaced_pod(
            self.namespace, label_selector=sel, _request_timeout=REQUEST_TIMEOUT
        ).items
        pods = [p for p in pods if p.metadata.deletion_timestamp is None]
        pods.sort(key=lambda p: (p.metadata.creation_timestamp, p.metadata.name))
        return pods

    def _by_node(self, pods: Sequence[Any]) -> dict[str, list[Any]]:
        assert self.topology is not None
        names = {object_name(n.name): n.name for n in self.topology.nodes}
        out: dict[str, list[Any]] = {n: [] for n in self.topology.node_names}
        for p in pods:
            node = names.get((p.metadata.labels or {}).get(LABEL_NODE, ""))
            if node is not None:
                out[node].append(p)
        return out

    def _pod(self, node: str, replica: int) -> Any:
        self._require(node)
        pods = self._pods(node)
        if replica < 0 or replica >= len(pods):
            raise DeployError(
                f"kubernetes {self._where()}: node {node!r} has no replica {replica} (live pods: {len(pods)})"
            )
        return pods[replica]

    # lifecycle
    def deploy(self, topology: Topology, deadline: float) -> None:
        if self.topology is not None:
            raise DeployError(
                f"kubernetes {self._where()} already runs preset {self.topology.preset!r}; "
                "use apply() for a transition or teardown() first"
            )
        self._connect()
        service_type(self.options)  # a bad option fails before anything is created
        self._images = local_image_meta(topology)
        self.namespace = namespace_name(self.options, topology)
        self.topology = topology
        try:
            self.core.create_namespace(
                render_namespace(topology, self.options, self.namespace), _request_timeout=REQUEST_TIMEOUT
            )
        except Exception as exc:
            ns, self.namespace, self.topology = self.namespace, None, None
            raise DeployError(f"kubernetes: creating namespace {ns} failed: {_api_error(exc)}") from None
        for node in topology.nodes:
            self._create_node(node)
        self.wait_started(topology.node_names, deadline)
        if _extra(self.options, "kubernetes_wait_rollout").lower() in ("1", "true", "yes"):
            self.wait_rollout(topology.node_names, deadline)

    def _create_node(self, node: Node) -> None:
        assert self.topology is not None and self.namespace is not None
        dep = render_deployment(
            node, self.topology, self.options, self.namespace, self._images.get(_docker.image_for(node))
        )
        try:
            self.apps.create_namespaced_deployment(self.namespace, dep, _request_timeout=REQUEST_TIMEOUT)
            svc = render_service(node, self.topology, self.options, self.namespace)
            if svc:
                self.core.create_namespaced_service(self.namespace, svc, _request_timeout=REQUEST_TIMEOUT)
        except Exception as exc:
            raise DeployError(
                f"kubernetes {self._where()}: creating node {node.name!r} failed: {_api_error(exc)}"
            ) from None

    def _delete_node(self, node: str) -> None:
        assert self.namespace is not None
        from kubernetes.client.exceptions import ApiException

        name = object_name(node)
        for call in (self.apps.delete_namespaced_deployment, self.core.delete_namespaced_service):
            try:
                _raw(call, name, self.namespace, propagation_policy="Background")
            except ApiException as exc:
                if exc.status != 404:
                    raise DeployError(
                        f"kubernetes {self._where()}: removing node {node!r} failed: {_api_error(exc)}"
                    ) from None
        sel = ",".join(f"{k}={v}" for k, v in selector(self.options, node).items())
        with contextlib.suppress(Exception):  # the ReplicaSet's pods go with it; do not wait for grace
            _raw(self.core.delete_collection_namespaced_pod, self.namespace, label_selector=sel)

    def apply(self, transition: Transition, deadline: float) -> None:
        if transition.new is None:
            self.teardown()
            return
        if self.topology is None or self.namespace is None:
            self.deploy(transition.new, deadline)
            return
        new = transition.new
        self._images.update(local_image_meta(new))
        self.topology = new
        with contextlib.suppress(Exception):
            self.core.patch_namespace(
                self.namespace,
                {"metadata": {"labels": resource_labels(self.options, new)}},
                _request_timeout=REQUEST_TIMEOUT,
            )
        for c in transition.of(Action.STOP):
            self._delete_node(c.name)
        waiting: list[str] = []
        for c in transition.changes:
            if c.new is None:
                continue
            if c.action is Action.START:
                self._create_node(c.new)
                waiting.append(c.name)
            elif c.action is Action.RECREATE:
                self._replace_node(c.new)
                waiting.append(c.name)
            elif c.action is Action.SCALE:
                self._patch_replicas(c.name, c.new.replicas)
                waiting.append(c.name)
        self._drop_forwarders()
        if waiting:
            self.wait_rollout(waiting, deadline)

    def _replace_node(
        self, node: Node, annotations: Mapping[str, str] | None = None, service: bool = True
    ) -> None:
        """PUT the freshly rendered Deployment (a rolling update when the template changed) and,
        with ``service``, recreate its Service."""
        from kubernetes.client.exceptions import ApiException

        assert self.topology is not None and self.namespace is not None
        name = object_name(node.name)
        dep = render_deployment(
            node,
            self.topology,
            self.options,
            self.namespace,
            self._images.get(_docker.image_for(node)),
            annotations,
        )
        try:
            self.apps.replace_namespaced_deployment(
                name, self.namespace, dep, _request_timeout=REQUEST_TIMEOUT
            )
            if not service:
                return
            svc = render_service(node, self.topology, self.options, self.namespace)
            with contextlib.suppress(ApiException):  # 404: the node had no ports before
                _raw(self.core.delete_namespaced_service, name, self.namespace)
            if svc:
                self.core.create_namespaced_service(self.namespace, svc, _request_timeout=REQUEST_TIMEOUT)
        except Exception as exc:
            raise DeployError(
                f"kubernetes {self._where()}: updating node {node.name!r} failed: {_api_error(exc)}"
            ) from None

    def _patch_replicas(self, node: str, replicas: int) -> None:
        assert self.namespace is not None
        try:
            self.apps.patch_namespaced_deployment_scale(
                object_name(node),
                self.namespace,
                {"spec": {"replicas": replicas}},
                _request_timeout=REQUEST_TIMEOUT,
            )
        except Exception as exc:
            raise DeployError(
                f"kubernetes {self._where()}: scaling node {node!r} failed: {_api_error(exc)}"
            ) from None

    # waiting
    def wait_started(self, nodes: Sequence[str], deadline: float) -> None:
        """Until every pod of ``nodes`` exists and its container was created (running, exited or
        crash-looping: ``health.wait_ready`` judges those). Image and scheduling problems, which
        never resolve by waiting, raise ``NodeNotReady`` at once."""
        pending: dict[str, str] = {}
        while True:
            pending = {}
            by_node = self._by_node(self._pods())
            for name in nodes:
                node = self._require(name)
                pods = by_node.get(name, [])
                for pod in pods:
                    self._raise_if_hopeless(node, pod, crash=False)
                if len(pods) < node.replicas:
                    pending[name] = f"{len(pods)}/{node.replicas} pods created"
                    self._raise_if_replica_failure(node)
                    continue
                waiting = [d for d in (_not_started(p) for p in pods) if d]
                if waiting:
                    pending[name] = "; ".join(waiting)
            if not pending:
                return
            if time.monotonic() >= deadline:
                raise DeployError(
                    f"kubernetes {self._where()}: pods did not start before the deadline: "
                    + "; ".join(f"{n}: {d}" for n, d in pending.items())
                )
            time.sleep(POLL)

    def wait_rollout(self, nodes: Sequence[str] | None = None, deadline: float | None = None) -> None:
        """Until each node's Deployment is rolled out: observedGeneration caught up, every replica
        updated and available, no old pods. A pod in CrashLoopBackOff / an image error / a
        terminated container raises ``NodeNotReady`` at once; the deadline raises it with the
        Deployment's state, each pod's state and the last log lines."""
        assert self.topology is not None and self.namespace is not None
        names = list(nodes) if nodes is not None else list(self.topology.node_names)
        deadline = deadline if deadline is not None else time.monotonic() + self.options.ready_timeout
        start = time.monotonic()
        while True:
            left: dict[str, str] = {}
            by_node = self._by_node(self._pods())
            for name in names:
                node = self._require(name)
                try:
                    dep = self.apps.read_namespaced_deployment(
                        object_name(name), self.namespace, _request_timeout=REQUEST_TIMEOUT
                    )
                except Exception as exc:
                    raise DeployError(
                        f"kubernetes {self._where()}: reading Deployment of {name!r}: {_api_error(exc)}"
                    ) from None
                for pod in by_node.get(name, []):
                    self._raise_if_hopeless(node, pod, crash=True)
                self._raise_if_replica_failure(node, dep)
                state = _rollout_state(dep)
                if state:
                    pods = by_node.get(name, [])
                    left[name] = state + (
                        f"; pods: {'; '.join(_pod_summary(p) for p in pods)}" if pods else ""
                    )
            if not left:
                return
            now = time.monotonic()
            if now >= deadline:
                name, state = next(iter(left.items()))
                raise NodeNotReady(
                    self.topology.preset,
                    name,
                    f"rollout not complete after {now - start:.1f}s (deadline) in {self._where()}: {state}",
                    self._safe_logs(name),
                    self.name,
                )
            time.sleep(min(POLL, max(0.0, deadline - now)))

    def _raise_if_hopeless(self, node: Node, pod: Any, crash: bool) -> None:
        assert self.topology is not None
        for cs in pod.status.container_statuses or []:
            waiting = cs.state.waiting if cs.state else None
            terminated = cs.state.terminated if cs.state else None
            if waiting and waiting.reason in IMAGE_REASONS:
                raise NodeNotReady(
                    self.topology.preset,
                    node.name,
                    f"pod {pod.metadata.name}: {waiting.reason}: image {cs.image!r} "
                    + (
                        f"cannot be used ({waiting.message}); {LAYERLESS_HINT}"
                        if waiting.reason == "ImageInspectError"
                        else f"is not on the cluster node ({waiting.message or 'no message'}); {BUILD_HINT}"
                    ),
                    "",
                    self.name,
                )
            if not crash:
                continue
            if waiting and waiting.reason in FAIL_REASONS:
                last = cs.last_state.terminated if cs.last_state else None
                code = f", last exit code {last.exit_code} ({last.reason})" if last else ""
                raise NodeNotReady(
                    self.topology.preset,
                    node.name,
                    f"pod {pod.metadata.name}: {waiting.reason}{code}, {cs.restart_count} restarts"
                    + (
                        f": {waiting.message}"
                        if waiting.message and waiting.reason != "CrashLoopBackOff"
                        else ""
                    ),
                    self._safe_logs(node.name),
                    self.name,
                )
            if terminated:
                raise NodeNotReady(
                    self.topology.preset,
                    node.name,
                    f"pod {pod.metadata.name}: container terminated ({terminated.reason}, "
                    f"exit code {terminated.exit_code})",
                    self._safe_logs(node.name),
                    self.name,
                )
        for cond in pod.status.conditions or []:
            if cond.type == "PodScheduled" and cond.status == "False" and cond.reason == "Unschedulable":
                raise NodeNotReady(
                    self.topology.preset,
                    node.name,
                    f"pod {pod.metadata.name} cannot be scheduled: {cond.message} "
                    "(check the node's resources requests)",
                    "",
                    self.name,
                )

    def _raise_if_replica_failure(self, node: Node, dep: Any = None) -> None:
        assert self.topology is not None and self.namespace is not None
        if dep is None:
            try:
                dep = self.apps.read_namespaced_deployment(
                    object_name(node.name), self.namespace, _request_timeout=REQUEST_TIMEOUT
                )
            except Exception:
                return
        for cond in (dep.status.conditions if dep.status else None) or []:
            if cond.type == "ReplicaFailure" and cond.status == "True":
                raise NodeNotReady(
                    self.topology.preset,
                    node.name,
                    f"pods cannot be created: {cond.reason}: {cond.message}",
                    "",
                    self.name,
                )

    # teardown and clean-up
    def teardown(self) -> None:
        """Delete the namespace and wait (``kubernetes_teardown_timeout``, default 60 s) until its
        pods are gone, or the namespace too with ``kubernetes_teardown_wait=namespace``. Idempotent."""
        self._drop_forwarders()
        if self.namespace is None:
            self.topology = None
            return
        ns = self.namespace
        timeout = _float_option(self.options, "kubernetes_teardown_timeout", 60.0)
        wait_for = _extra(self.options, "kubernetes_teardown_wait", "pods").lower()
        try:
            _delete_namespace(self.core, ns)
            _wait_gone(
                self.core,
                ns,
                time.monotonic() + timeout,
                namespace_too=wait_for == "namespace",
                host=self._conn.host if self._conn else "",
            )
        finally:
            self.topology = None
            self.namespace = None
        self._close_clients()

    def _close_clients(self) -> None:
        for c in (self._api, self._stream_api):
            with contextlib.suppress(Exception):
                if c is not None:
                    c.close()
        self._api = self._stream_api = None

    @classmethod
    def clean(cls, run_id: str | None = None, options: BackendOptions | None = None) -> list[str]:
        """Delete every namespace labelled with ``run_id`` (or, without one, of dead owners on this
        host) and wait for its pods to go; namespaces already terminating are left to finish."""
        from kubernetes import client

        conn = connect(options)
        check_cluster(conn)
        api_client = client.ApiClient(conn.configuration)
        core = client.CoreV1Api(api_client)
        sel = f"{LABEL_RUN_ID}={label_value(run_id)}" if run_id else LABEL_RUN_ID
        removed: list[str] = []
        timeout = _float_option(options, "kubernetes_teardown_timeout", 60.0)
        try:
            victims = []
            for ns in core.list_namespace(label_selector=sel, _request_timeout=REQUEST_TIMEOUT).items:
                labels = ns.metadata.labels or {}
                if ns.status and ns.status.phase == "Terminating":
                    continue
                if run_id is None and _docker.owner_alive(labels):
                    continue
                _delete_namespace(core, ns.metadata.name)
                victims.append(ns.metadata.name)
                rid = (ns.metadata.annotations or {}).get(LABEL_RUN_ID) or labels.get(LABEL_RUN_ID, "?")
                removed.append(
                    f"namespace {ns.metadata.name} (run id {rid}, preset {labels.get(LABEL_PRESET, '?')})"
                )
            deadline = time.monotonic() + timeout
            for name in victims:
                _wait_gone(core, name, deadline, namespace_too=False, host=conn.host)
        finally:
            api_client.close()
        return removed

    # inspection
    def status(self) -> list[ReplicaStatus]:
        if self.topology is None or self.namespace is None:
            return []
        out: list[ReplicaStatus] = []
        for node, pods in self._by_node(self._pods()).items():
            for i, pod in enumerate(pods):
                out.append(_pod_status(node, i, pod))
        return out

    def endpoint(self, node: str, port: int | None = None, replica: int = 0) -> Endpoint:
        n = self._require(node)
        port = port if port is not None else n.http_port
        if port is None:
            raise DeployError(f"kubernetes {self._where()}: node {node!r} has no port")
        if port not in n.ports:
            raise DeployError(
                f"kubernetes {self._where()}: node {node!r} has no port {port} (ports: {list(n.ports)})"
            )
        pod = self._pod(node, replica)
        if service_type(self.options) == "NodePort":
            return self._node_port(n, port, pod)
        return self._forward(pod.metadata.name, port)

    def _node_port(self, node: Node, port: int, pod: Any) -> Endpoint:
        assert self.namespace is not None
        svc = self.core.read_namespaced_service(
            object_name(node.name), self.namespace, _request_timeout=REQUEST_TIMEOUT
        )
        for p in svc.spec.ports or []:
            if p.port == port and p.node_port:
                host = _extra(self.options, "kubernetes_node_address") or pod.status.host_ip
                if not host:
                    raise DeployError(
                        f"kubernetes {self._where()}: pod {pod.metadata.name} has no node address yet"
                    )
                return Endpoint(host, int(p.node_port))
        raise DeployError(
            f"kubernetes {self._where()}: Service {svc.metadata.name} has no node port for {port}"
        )

    def _forward(self, pod: str, port: int) -> Endpoint:
        from kubernetes.stream import portforward

        ns = self.namespace
        with self._fw_lock:
            fw = self._forwarders.get((pod, port))
            if fw is None:
                core = self._stream_core()

                def open_remote() -> tuple[Any, Any]:
                    with self._stream_lock:
                        pf = portforward(
                            core.connect_get_namespaced_pod_portforward, pod, ns, ports=str(port)
                        )
                    return pf, pf.socket(port)

                fw = self._forwarders[(pod, port)] = _Forwarder(open_remote, f"{pod}:{port}")
        return Endpoint("127.0.0.1", fw.port)

    def _drop_forwarders(self, keep: set[str] | None = None) -> None:
        with self._fw_lock:
            for key in list(self._forwarders):
                if keep is None or key[0] not in keep:
                    self._forwarders.pop(key).close()

    def logs(self, node: str, tail: int | None = None) -> str:
        """Every container of the node's pods, merged by timestamp; a container that crashed and
        waits to restart shows its previous run."""
        self._require(node)
        assert self.namespace is not None
        lines: list[tuple[str, str]] = []
        for pod in self._pods(node):
            statuses = {cs.name: cs for cs in pod.status.container_statuses or []}
            for container in pod.spec.containers:
                cs = statuses.get(container.name)
                previous = bool(
                    cs and cs.state and cs.state.waiting and cs.last_state and cs.last_state.terminated
                )
                kwargs: dict[str, Any] = {
                    "container": container.name,
                    "timestamps": True,
                    "previous": previous,
                }
                if tail is not None:
                    kwargs["tail_lines"] = max(tail, 0)
                try:
                    text = self.core.read_namespaced_pod_log(
                        pod.metadata.name, self.namespace, _request_timeout=REQUEST_TIMEOUT, **kwargs
                    )
                except Exception:
                    continue
                for line in (text or "").splitlines():
                    ts, _, rest = line.partition(" ")
                    lines.append((_sortable(ts), rest))
        lines.sort(key=lambda t: t[0])
        out = [rest for _, rest in lines]
        if tail is not None:
            out = out[-tail:] if tail > 0 else []
        return "\n".join(out) + ("\n" if out else "")

    def _safe_logs(self, node: str) -> str:
        try:
            return self.logs(node, tail=LOG_TAIL)
        except Exception as exc:
            return f"(logs unavailable: {exc})"

    def exec(self, node: str, argv: Sequence[str], timeout: float = 10.0, replica: int = 0) -> ExecResult:
        from kubernetes.stream import stream

        pod = self._pod(node, replica)
        core = self._stream_core()
        try:
            with self._stream_lock:
                ws = stream(
                    core.connect_get_namespaced_pod_exec,
                    pod.metadata.name,
                    self.namespace,
                    command=list(argv),
                    container=CONTAINER,
                    stdin=False,
                    stdout=True,
                    stderr=True,
                    tty=False,
                    _preload_content=False,
                    _request_timeout=max(1.0, timeout),
                )
        except Exception as exc:
            return ExecResult(
                126, f"{' '.join(argv)}: exec in pod {pod.metadata.name} failed: {_api_error(exc)}"
            )
        try:
            ws.run_forever(timeout=max(0.01, timeout))
            status = ws.read_channel(3)  # before read_all(), which empties every channel
            output = ws.read_all()
            if ws.is_open():
                return ExecResult(124, output + f"{' '.join(argv)}: timed out after {timeout:.1f}s")
            return _exec_result(status, output)
        finally:
            with contextlib.suppress(Exception):
                ws.close()

    # changes
    def restart(self, node: str, environment: Mapping[str, str] | None = None) -> None:
        """A rolling restart (the pod template's restartedAt annotation, as `kubectl rollout
        restart` does); with ``environment`` the merged environment is part of the new template.
        Returns when the rollout is complete."""
        n = self._require(node)
        assert self.namespace is not None
        deadline = time.monotonic() + self.options.ready_timeout
        dep = self.apps.read_namespaced_deployment(
            object_name(node), self.namespace, _request_timeout=REQUEST_TIMEOUT
        )
        current = dict(dep.spec.template.metadata.annotations or {})
        restarts = int(current.get(ANNOTATION_RESTARTS, "0") or 0) + 1
        annotations = {
            ANNOTATION_RESTARTS: str(restarts),
            ANNOTATION_RESTARTED_AT: _dt.datetime.now(_dt.UTC).isoformat(),
        }
        if environment:
            n = replace(n, environment={**n.environment, **environment})
            self._set_node(n)
        self._replace_node(n, annotations, service=False)
        self.wait_rollout([node], deadline)
        self._drop_forwarders(keep={p.metadata.name for p in self._pods()})

    def scale(self, node: str, replicas: int) -> None:
        """Patch the replica count and wait until the rollout has exactly ``replicas`` pods."""
        n = self._require(node)
        if replicas < 0:
            raise DeployError(f"kubernetes {self._where()}: cannot scale {node!r} to {replicas} replicas")
        self._set_node(replace(n, replicas=replicas))
        self._patch_replicas(node, replicas)
        self.wait_rollout([node], time.monotonic() + self.options.ready_timeout)
        self._drop_forwarders(keep={p.metadata.name for p in self._pods()})

    def describe(self) -> str:
        return (
            f"backend kubernetes, namespace {self.namespace}: remove with `kubectl delete namespace "
            f"{self.namespace}` or `bannou-env clean --run-id {self.run_id}`"
        )


# --- helpers -------------------------------------------------------------------------------------------
def _raw(call: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Call a delete endpoint without decoding its answer: the client decodes some of them into
    the wrong model (a Status into a Service) and fails after the deletion succeeded."""
    resp = call(*args, _preload_content=False, _request_timeout=REQUEST_TIMEOUT, **kwargs)
    with contextlib.suppress(Exception):
        resp.release_conn()


def _delete_namespace(core: Any, name: str) -> None:
    from kubernetes.client.exceptions import ApiException

    try:
        _raw(core.delete_namespace, name, propagation_policy="Background")
    except ApiException as exc:
        if exc.status not in (404, 409):  # 409: already terminating
            raise DeployError(f"kubernetes: deleting namespace {name} failed: {_api_error(exc)}") from None
    # the namespace controller deletes pods only after a requeue: delete them now, without waiting
    with contextlib.suppress(Exception):
        _raw(core.delete_collection_namespaced_pod, name)


def _namespace_state(core: Any, name: str) -> str | None:
    """``namespace NAME (PHASE: true conditions)``, or None when it is gone."""
    from kubernetes.client.exceptions import ApiException

    try:
        ns = core.read_namespace(name, _request_timeout=REQUEST_TIMEOUT)
    except ApiException as exc:
        if exc.status == 404:
            return None
        return f"namespace {name} (cannot read: {_api_error(exc)})"
    conds = "; ".join(f"{c.type}: {c.message}" for c in (ns.status.conditions or []) if c.status == "True")
    return f"namespace {name} ({ns.status.phase}{': ' + conds if conds else ''})"


def _reap_stopped(core: Any, namespace: str, pods: Sequence[Any]) -> None:
    """Remove, without grace, the objects of terminating pods in which nothing runs any more
    (containers exited or never created). The kubelet keeps such a pod object 5-50 s longer
    for its own bookkeeping (longest for image errors); nothing of the environment runs by then,
    and the kubelet removes the sandbox by itself."""
    for pod in pods:
        if pod.metadata.deletion_timestamp is None or pod.metadata.finalizers:
            continue
        if any(cs.state and cs.state.running for cs in pod.status.container_statuses or []):
            continue
        with contextlib.suppress(Exception):
            _raw(core.delete_namespaced_pod, pod.metadata.name, namespace, grace_period_seconds=0)


def _wait_gone(core: Any, name: str, deadline: float, *, namespace_too: bool, host: str) -> None:
    """Until no pod is left in namespace ``name`` (and, with ``namespace_too``, the namespace
    itself is gone); ``DeployError`` at the deadline naming what is left and how to remove it."""
    from kubernetes.client.exceptions import ApiException

    start = time.monotonic()
    while True:
        try:
            pods = core.list_namespaced_pod(name, _request_timeout=REQUEST_TIMEOUT).items
            _reap_stopped(core, name, pods)
            left = [
                f"pod {p.metadata.name}"
                + (f" (finalizers {p.metadata.finalizers})" if p.metadata.finalizers else "")
                for p in pods
            ]
        except ApiException as exc:
            left = [f"(cannot list pods: {_api_error(exc)})"]
        ns_state = _namespace_state(core, name) if namespace_too and not left else None
        if not left and ns_state is None:
            return
        now = time.monotonic()
        if now >= deadline:
            ns_state = ns_state or _namespace_state(core, name) or f"namespace {name} (gone)"
            where = f" on {host}" if host else ""
            raise DeployError(
                f"kubernetes: {ns_state}{where} is still terminating after {now - start:.1f}s "
                f"(teardown deadline); left: {', '.join(left[:10]) or 'no pods'}; inspect it with "
                f"`kubectl get all,events -n {name}`, remove stuck finalizers, or raise "
                "kubernetes_teardown_timeout"
            )
        time.sleep(min(POLL, max(0.0, deadline - now)))


def _sortable(ts: str) -> str:
    """RFC 3339 timestamps with the fraction padded to 9 digits, so that they sort as text."""
    m = re.match(r"^(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(.*)$", ts)
    if not m:
        return ts
    return f"{m.group(1)}.{(m.group(2) or '').ljust(9, '0')}{m.group(3)}"


def _not_started(pod: Any) -> str:
    """Why a pod's containers have not been created yet, or '' when they have."""
    statuses = pod.status.container_statuses or []
    if not statuses:
        return f"pod {pod.metadata.name} {pod.status.phase or 'Pending'}"
    for cs in statuses:
        waiting = cs.state.waiting if cs.state else None
        if (
            waiting
            and waiting.reason != "CrashLoopBackOff"
            and not (cs.last_state and cs.last_state.terminated)
        ):
            return f"pod {pod.metadata.name} {waiting.reason or 'waiting'}"
    return ""


def _rollout_state(dep: Any) -> str:
    """'' when rolled out, else what is missing."""
    want = dep.spec.replicas if dep.spec.replicas is not None else 1
    st = dep.status
    observed = st.observed_generation or 0
    if observed < (dep.metadata.generation or 0):
        return f"Deployment generation {dep.metadata.generation} not observed yet (observed {observed})"
    updated, available, total = st.updated_replicas or 0, st.available_replicas or 0, st.replicas or 0
    if updated == want and available == want and total == want:
        return ""
    return f"{updated}/{want} updated, {available}/{want} available, {total} pods in all"


def _pod_summary(pod: Any) -> str:
    parts = [pod.status.phase or "?"]
    for cs in pod.status.container_statuses or []:
        if cs.state and cs.state.waiting:
            parts.append(f"waiting {cs.state.waiting.reason}")
        elif cs.state and cs.state.terminated:
            parts.append(f"terminated {cs.state.terminated.reason} ({cs.state.terminated.exit_code})")
        elif cs.state and cs.state.running:
            parts.append("running" + ("" if cs.ready else ", not ready"))
        if cs.restart_count:
            parts.append(f"{cs.restart_count} restarts")
    return f"{pod.metadata.name} {', '.join(parts)}"


def _pod_status(node: str, replica: int, pod: Any) -> ReplicaStatus:
    """A replica's state: running; starting (pending, creating, image problems); exited (its
    container terminated or crash-loops, with the last exit code)."""
    restarts = int((pod.metadata.annotations or {}).get(ANNOTATION_RESTARTS, "0") or 0)
    state, exit_code = "starting", None
    phase = pod.status.phase or "Pending"
    statuses = pod.status.container_statuses or []
    for cs in statuses:
        restarts += cs.restart_count or 0
        s = cs.state
        if s and s.terminated:
            state, exit_code = "exited", s.terminated.exit_code
        elif s and s.waiting and cs.last_state and cs.last_state.terminated:
            state, exit_code = "exited", cs.last_state.terminated.exit_code
        elif s and s.running and state != "exited":
            state = "running"
    if phase in ("Succeeded", "Failed") and state != "exited":
        state = "exited"
    elif phase == "Unknown":
        state = "unknown"
    return ReplicaStatus(
        node=node,
        replica=replica,
        state=state,  # type: ignore[arg-type]
        id=pod.metadata.name,
        exit_code=exit_code,
        restarts=restarts,
        detail=_pod_summary(pod),
    )


def _exec_result(error_channel: str, output: str) -> ExecResult:
    """Exit code from the exec error channel (a metav1.Status: Success, or NonZeroExitCode with the
    code in its causes; anything else means the command could not run)."""
    try:
        status = yaml.safe_load(error_channel) or {}
    except yaml.YAMLError:
        status = {}
    if not status or status.get("status") == "Success":
        return ExecResult(0, output)
    for cause in (status.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode":
            with contextlib.suppress(TypeError, ValueError):
                return ExecResult(int(cause.get("message")), output)
    return ExecResult(126, output + str(status.get("message", "exec failed")))
