"""A topology as a Compose project: rendering (shared by the compose and portainer backends,
neither imports the other, by ``bannou-env render``, and in part by swarm's stack file) and
reading a project's containers back (replicas, status, published ports)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from ...errors import DeployError
from ...topology.ingress import is_ingress
from ...topology.model import Node, Topology
from ..base import BackendOptions, ReplicaStatus
from ..ingress import DOCKER_RESOLVER, public_launch
from . import engine as _docker

LABEL_PROJECT = "com.docker.compose.project"
LABEL_SERVICE = "com.docker.compose.service"
LABEL_NUMBER = "com.docker.compose.container-number"


def _duration(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


def _cpus(value: str) -> str:
    return str(int(value[:-1]) / 1000) if value.endswith("m") else value


def project_name(options: BackendOptions, topology: Topology) -> str:
    worker = options.worker or os.environ.get("PYTEST_XDIST_WORKER", "") or "main"
    return _docker.sanitize(f"bannou-{options.run_id}-{topology.preset}-{worker}")


def add_mounts_and_healthcheck(
    svc: dict[str, Any],
    node: Node,
    info: _docker.ImageInfo | None,
    volume_labels: Mapping[str, str],
    volumes: dict[str, Any],
) -> None:
    """Fill a compose service with the node's mounts (a stand-in image's read-only host mounts,
    then the node's volumes; named volumes are declared in ``volumes`` with ``volume_labels``),
    a stand-in's tmpfs paths and the node's healthcheck. A public image gets neither."""
    info = info if info is not None and info.local_build else None
    mounts = _docker.host_mounts(info) if info else []
    for spec in node.volumes:
        source, _, rest = spec.partition(":")
        if rest and not source.startswith(("/", ".", "~")):
            volumes[source] = {"labels": volume_labels}
        mounts.append(spec)
    if mounts:
        svc["volumes"] = mounts
    if info and info.tmpfs:
        svc["tmpfs"] = list(info.tmpfs)
    hc = _docker.container_healthcheck(node, bool(info and info.local_build))
    if hc:
        svc["healthcheck"] = {
            "test": [escape(t) for t in hc["test"]],  # run by the container's shell, not Compose
            "interval": _duration(hc["interval"]),
            "timeout": _duration(hc["timeout"]),
            "retries": hc["retries"],
            "start_period": _duration(hc["start_period"]),
        }


def escape(text: str) -> str:
    """``text`` as a Compose file value: Compose interpolates ``$NAME``, ``$$`` is a literal ``$``."""
    return text.replace("$", "$$")


def add_public_ingress(svc: dict[str, Any], node: Node, info: _docker.ImageInfo | None) -> None:
    """An ingress on the real image (no stand-in: ``info`` missing or without the plugin's
    labels) gets its configuration and the entrypoint that writes it (``ingress.public_launch``),
    its names resolved by Docker's DNS at request time. ``$`` escaped for Compose."""
    if info is not None and info.local_build:
        return
    launch = public_launch(node, DOCKER_RESOLVER)
    if launch is None:
        return
    entrypoint, env = launch
    svc["entrypoint"] = [escape(a) for a in entrypoint]
    svc["environment"] = {**svc["environment"], **{k: escape(v) for k, v in env.items()}}


def render(
    topology: Topology,
    options: BackendOptions,
    project: str,
    images: Mapping[str, _docker.ImageInfo] | None = None,
    pull_public: bool = False,
) -> dict[str, Any]:
    """The compose project for ``topology`` as a dict (``yaml.safe_dump`` it to get the file).
    Only images built on this host (``images``: stand-ins, ``ImageInfo.local_build``) get host
    mounts. Every image gets ``pull_policy: never`` (a backend pulls nothing) unless
    ``pull_public`` (``bannou-env render``): then only stand-ins, the others are written as a
    user would."""
    images = images or {}
    services: dict[str, Any] = {}
    volumes: dict[str, Any] = {}
    # networks and volumes outlive transitions: no preset in their labels, or Compose would
    # want to recreate them when the next preset is applied
    vol_labels = _docker.resource_labels(options, None, "compose")
    for node in topology.nodes:
        image = _docker.image_for(node)
        info = images.get(image)
        svc: dict[str, Any] = {"image": image}
        if not pull_public or (info is not None and info.local_build):  # no registry has a stand-in
            svc["pull_policy"] = "never"
        svc |= {
            "init": True,
            "labels": _docker.resource_labels(options, topology, "compose", node.name),
            "environment": _docker.node_environment(node),
            "stop_grace_period": "5s",
        }
        if node.command:
            svc["command"] = list(node.command)
        if node.ports:
            svc["ports"] = [
                {"target": p, "host_ip": "127.0.0.1", "protocol": "tcp"} for p in dict.fromkeys(node.ports)
            ]
        add_mounts_and_healthcheck(svc, node, info, vol_labels, volumes)
        add_public_ingress(svc, node, info)
        deps = {}
        for dep in node.depends_on:
            try:
                dep_node = topology.node(dep)
            except KeyError:
                continue
            healthy = _docker.container_healthcheck(dep_node, True) is not None
            deps[dep] = {"condition": "service_healthy" if healthy else "service_started"}
        if deps:
            svc["depends_on"] = deps
        deploy: dict[str, Any] = {"replicas": node.replicas}
        if node.resources:
            r = node.resources
            limits = {k: v for k, v in (("cpus", r.cpu_limit), ("memory", r.memory_limit)) if v}
            reservations = {k: v for k, v in (("cpus", r.cpu_request), ("memory", r.memory_request)) if v}
            res: dict[str, Any] = {}
            if limits:
                res["limits"] = {k: _cpus(v) if k == "cpus" else v for k, v in limits.items()}
            if reservations:
                res["reservations"] = {k: _cpus(v) if k == "cpus" else v for k, v in reservations.items()}
            if res:
                deploy["resources"] = res
        svc["deploy"] = deploy
        services[service_name(node.name)] = svc
    doc: dict[str, Any] = {
        "name": project,
        "services": services,
        "networks": {"default": {"labels": vol_labels}},
    }
    if volumes:
        doc["volumes"] = volumes
    add_edge_network(doc, topology, vol_labels)
    return doc


def add_edge_network(doc: dict[str, Any], topology: Topology, labels: Mapping[str, str]) -> None:
    """bannou's edge set-up: the ingress on the environment's network and on ``external``, where
    clients (image testers) are; nothing else is on ``external``."""
    fronts = [service_name(n.name) for n in topology.nodes if is_ingress(n)]
    if not fronts:
        return
    doc["networks"][_docker.EDGE_NETWORK] = {"labels": {**labels, _docker.LABEL_EDGE_NETWORK: "true"}}
    for name in fronts:
        doc["services"][name]["networks"] = ["default", _docker.EDGE_NETWORK]


def service_name(node: str) -> str:
    """The Compose service name of a node."""
    return _docker.sanitize(node)


def render_text(doc: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(doc), sort_keys=False, default_flow_style=False)


# --- reading a project's containers back --------------------------------------------------------
def replica_containers(containers: Iterable[Mapping[str, Any]], node: str) -> dict[int, Any]:
    """Replica index -> container (list entries, newest first: while compose recreates, old and
    new containers share a number and the newest wins) of a node's service, by index."""
    svc = service_name(node)
    out: dict[int, Any] = {}
    for c in containers:
        labels = c.get("Labels") or {}
        if labels.get(LABEL_SERVICE) == svc:
            out.setdefault(int(labels.get(LABEL_NUMBER, "1")) - 1, c)
    return dict(sorted(out.items()))


def replica_statuses(
    topology: Topology, containers: Iterable[Mapping[str, Any]], restarts: Mapping[str, int]
) -> list[ReplicaStatus]:
    """One status per replica of every node, in topology order, from the project's containers."""
    containers = list(containers)
    return [
        _docker.list_entry_status(node.name, idx, c, restarts.get(node.name, 0))
        for node in topology.nodes
        for idx, c in replica_containers(containers, node.name).items()
    ]


def published_port(container: Mapping[str, Any], port: int) -> int | None:
    """The host port a container publishes ``port`` (tcp) on, or None."""
    for p in container.get("Ports") or []:
        if p.get("PrivatePort") == port and p.get("PublicPort") and p.get("Type", "tcp") == "tcp":
            return int(p["PublicPort"])
    return None


def no_published_port(
    where: str, node: str, replica: int, port: int, container: Mapping[str, Any]
) -> DeployError:
    """The error for a replica that does not publish ``port`` (what it publishes instead)."""
    published = sorted(p.get("PrivatePort") for p in container.get("Ports") or [])
    return DeployError(
        f"{where}: node {node!r} replica {replica} has no published port {port} "
        f"(published: {published}; container {container.get('State')})"
    )
