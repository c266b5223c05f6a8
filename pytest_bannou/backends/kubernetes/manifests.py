"""A resolved topology as plain Kubernetes objects (dicts), without talking to a cluster.

A Namespace labelled with run id, preset, preset hash and owner pid; per node a Deployment with
replicas, environment, requests/limits, the node's healthcheck as ``readinessProbe`` (from the
start, no delay for its start period; an ingress's also asks for a request it proxies), labels,
``imagePullPolicy: Never`` and the read-only host paths a locally built image asks for as
``hostPath`` volumes, plus a Service for its ports. ``render_yaml`` gives what ``kubectl apply
-f -`` accepts. What the images ask for is read from the local Docker Engine
(``local_image_meta``) unless it is passed in. ``hand_manifests`` (``bannou-env render``) keeps
``Never`` for this host's stand-ins only: public images get the cluster's default pull policy.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from ...errors import DeployError
from ...topology.ingress import PROXIED_PATH, UPSTREAM_DOWN, checks_upstream
from ...topology.model import Node, Topology
from ..base import LABEL_PREFIX, LABEL_PRESET, LABEL_RUN_ID, BackendOptions
from ..docker import engine as _docker
from ..ingress import public_launch
from .names import ANNOTATION_NODE, CONTAINER, namespace_name, object_name, resource_labels, selector
from .options import float_option, service_type


# --- images ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImageMeta:
    """What a locally built image (``images``) asks for: read-only host paths and tmpfs dirs."""

    host_mounts: tuple[str, ...] = ()
    tmpfs: tuple[str, ...] = ()
    python: str = ""  # the interpreter it was built for (``engine.ImageInfo.python``)


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
                info = _docker.image_info_from_attrs(name, cli.images.get(name).attrs)
            except Exception:
                continue
            if _docker.stale_stand_in(info):
                raise DeployError(
                    f"image {name} (node {node.name}): {_docker.stale_stand_in(info)}; "
                    f"{_docker.BUILD_IMAGES_HINT} with the Python that runs pytest"
                )
            out[name] = ImageMeta(info.host_mounts, info.tmpfs, info.python)
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


UPSTREAM_CHECK = (  # the stand-in's ingress check (the host's Python: /usr is mounted)
    "import http.client as h, sys\n"
    "def get(path):\n"
    "    c = h.HTTPConnection('127.0.0.1', {port}, timeout={timeout})\n"
    "    c.request('GET', path)\n"
    "    return c.getresponse().status\n"
    "own = get('/health')\n"
    "if not 200 <= own < 300: sys.exit('GET /health -> HTTP %d' % own)\n"
    "status = get('{proxied}')\n"
    "if status in {down}:\n"
    "    sys.exit('GET {proxied} through the ingress -> HTTP %d: the node behind it is not reached'"
    " % status)\n"
)
#: the public image's (busybox or GNU wget, else curl): its own /health, then a status line for
#: the proxied request that is not nginx's "upstream down" (no status at all fails too; one try:
#: GNU wget retries a 5xx; busybox takes ``--tries=1``, as bannou's own healthcheck in that image does)
UPSTREAM_CHECK_SH = (
    "u=http://127.0.0.1:{port}; if command -v wget >/dev/null 2>&1; then "
    "wget -q --tries=1 -O /dev/null $u/health && wget -S --tries=1 -O /dev/null $u{proxied} 2>&1 "
    "| grep -E 'HTTP/[0-9.]+ [0-9]{{3}}' | grep -qvE 'HTTP/[0-9.]+ ({down_re})'; "
    "else curl -fsS -o /dev/null $u/health && curl -sS -o /dev/null -w '%{{http_code}}\\n' $u{proxied} "
    "| grep -qvE '^(000|{down_re})$'; fi"
)


def _upstream_check(node: Node, public: bool, timeout: float, python: str) -> dict[str, Any]:
    """An exec check of what ``health.probes.IngressProbe`` asks: the ingress's own ``/health``
    answers 2xx and ``GET /`` through it is not nginx's 502/503/504, so that the pod, its
    Service and a rendered file are not ready while the node behind it is not reached. An
    ``httpGet`` on ``/`` cannot say that: the node's own 404 there would fail it."""
    port = node.http_port or 80
    down = sorted(UPSTREAM_DOWN)
    if public:
        line = UPSTREAM_CHECK_SH.format(port=port, proxied=PROXIED_PATH, down_re="|".join(map(str, down)))
        return {"exec": {"command": ["/bin/sh", "-c", line]}}
    code = UPSTREAM_CHECK.format(port=port, timeout=timeout, proxied=PROXIED_PATH, down=tuple(down))
    return {"exec": {"command": [python or "/usr/bin/python3", "-c", code]}}  # the stand-in's


def _check(node: Node, public: bool, python: str = "") -> dict[str, Any] | None:
    """The handler part of a probe (``httpGet``, ``tcpSocket`` or ``exec``) for the node's
    healthcheck; None when Kubernetes cannot run it (heartbeat, log: the plugin's own probes)."""
    hc = node.healthcheck
    if hc is None or hc.kind in ("none", "heartbeat", "log"):
        return None
    if checks_upstream(node):
        return _upstream_check(node, public, hc.timeout, python)
    if hc.kind == "http":
        path = str(hc.target or "/health")
        return {
            "httpGet": {"path": path if path.startswith("/") else "/" + path, "port": node.http_port or 80}
        }
    if hc.kind == "mysql" and public and str(hc.target).strip().isdigit():
        return {"exec": {"command": ["/bin/sh", "-c", _docker.mysql_login(int(hc.target))]}}
    if hc.kind in ("tcp", "mysql"):  # mysql: the plugin logs in from outside (health.probes)
        port = int(hc.target) if str(hc.target).strip().isdigit() else (node.ports[0] if node.ports else 80)
        return {"tcpSocket": {"port": port}}
    argv = list(hc.target) if isinstance(hc.target, tuple) else ["/bin/sh", "-c", str(hc.target)]
    return {"exec": {"command": argv}}


def readiness_probe(node: Node, public: bool = False, python: str = "") -> dict[str, Any] | None:
    """The node's healthcheck as a Kubernetes probe (whole seconds, Kubernetes' minimum 1), run
    from the container's start: Docker's start period is a grace period (checks run, the first
    success counts), and a readiness probe's failures only mean "not ready", so no delay is
    needed; ``initialDelaySeconds`` would wait the whole period out on every start. No
    ``startupProbe``: with no liveness probe to hold off it would only add restarts. ``public``:
    the image is no stand-in (the real ``mysql`` image gets a login, the real ingress a shell line)."""
    check = _check(node, public, python)
    if check is None or node.healthcheck is None:
        return None
    hc = node.healthcheck
    return {
        **check,
        "periodSeconds": _seconds(hc.interval),
        "timeoutSeconds": _seconds(hc.timeout),
        "failureThreshold": max(1, hc.retries or 3),
        "successThreshold": 1,
    }


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
    pull_public: bool = False,
    aliases: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The node's Deployment. ``imagePullPolicy: Never`` (the backend pulls nothing) unless
    ``pull_public`` and the image is no stand-in (``meta`` without host mounts): then the
    cluster's default, as a user would write it. ``aliases`` (Service name -> cluster IP) become
    the pod's ``hostAliases`` (``host_aliases``): Service names resolve without cluster DNS."""
    name = object_name(node.name)
    container: dict[str, Any] = {"name": CONTAINER, "image": _docker.image_for(node)}
    if not (pull_public and not (meta and meta.host_mounts)):
        container["imagePullPolicy"] = "Never"
    env = _docker.node_environment(node)
    # the real ingress image: its configuration and an entrypoint that writes it; the upstream
    # (a Service name, its cluster IP stable) resolved once at start, through cluster DNS or
    # the pod's hostAliases (nginx's own resolver would read neither search domains nor hosts)
    launch = None if meta and meta.host_mounts else public_launch(node, None)
    if launch is not None:
        container["command"] = list(launch[0])
        env |= launch[1]
    container["env"] = [{"name": k, "value": str(v)} for k, v in env.items()]
    if node.command:
        container["args"] = list(node.command)
    if node.ports:
        container["ports"] = [{"containerPort": p, "protocol": "TCP"} for p in dict.fromkeys(node.ports)]
    resources = _resources(node)
    if resources:
        container["resources"] = resources
    public = not (meta and meta.host_mounts)
    probe = readiness_probe(node, public, meta.python if meta else "")  # a stand-in's own Python
    if probe:
        container["readinessProbe"] = probe
    volumes, mounts = _volumes(node, meta)
    if mounts:
        container["volumeMounts"] = mounts
    pod_spec: dict[str, Any] = {
        "containers": [container],
        "terminationGracePeriodSeconds": int(float_option(options, "kubernetes_termination_grace", 5)),
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,
    }
    if volumes:
        pod_spec["volumes"] = volumes
    if aliases:
        pod_spec["hostAliases"] = host_aliases(aliases, namespace)
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


def host_aliases(ips: Mapping[str, str], namespace: str) -> list[dict[str, Any]]:
    """``hostAliases`` entries: each Service's cluster IP under its short name and the names
    cluster DNS would give it (``NAME.NAMESPACE``, ``NAME.NAMESPACE.svc``,
    ``NAME.NAMESPACE.svc.cluster.local``). Sorted, so an unchanged set renders the same template."""
    by_ip: dict[str, list[str]] = {}
    for name, ip in sorted(ips.items()):
        qualified = f"{name}.{namespace}"
        by_ip.setdefault(ip, []).extend(
            [name, qualified, f"{qualified}.svc", f"{qualified}.svc.cluster.local"]
        )
    return [{"ip": ip, "hostnames": names} for ip, names in sorted(by_ip.items())]


def render_service(
    node: Node,
    topology: Topology,
    options: BackendOptions,
    namespace: str,
    cluster_ip: str | None = None,
) -> dict[str, Any] | None:
    """The node's Service (None: the node has no ports). ``cluster_ip`` asks for that address:
    a recreated Service keeps the one the other pods' ``hostAliases`` name."""
    if not node.ports:
        return None
    spec: dict[str, Any] = {"type": service_type(options)}
    if cluster_ip:
        spec["clusterIP"] = cluster_ip
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
            **spec,
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
    topology: Topology,
    options: BackendOptions,
    images: Mapping[str, ImageMeta] | None = None,
    pull_public: bool = False,
) -> list[dict[str, Any]]:
    """Namespace, then a Deployment and (when it has ports) a Service per node, as dicts.
    ``images`` defaults to the labels of the local Docker Engine's images (``local_image_meta``)."""
    images = local_image_meta(topology) if images is None else images
    ns = namespace_name(options, topology)
    docs: list[dict[str, Any]] = [render_namespace(topology, options, ns)]
    for node in topology.nodes:
        meta = images.get(_docker.image_for(node))
        docs.append(render_deployment(node, topology, options, ns, meta, pull_public=pull_public))
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


def hand_manifests(
    topology: Topology, options: BackendOptions, warn: Callable[[str], None] | None = None
) -> list[dict[str, Any]]:
    """The manifests ``bannou-env render`` writes: this host's stand-ins (``images``) with their
    host paths and ``imagePullPolicy: Never``, every other image as a user would write it."""
    from ..docker.images import stand_ins_for

    infos = stand_ins_for(topology, options, warn)
    metas = {name: ImageMeta(info.host_mounts, info.tmpfs, info.python) for name, info in infos.items()}
    return render_manifests(topology, options, metas, pull_public=True)
