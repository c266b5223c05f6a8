"""Rendering a topology as a Compose project: shared by the compose and portainer backends
(neither imports the other) and by ``bannou-env render``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import yaml

from ..topology import Topology
from . import _docker
from .base import BackendOptions


def _duration(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


def _cpus(value: str) -> str:
    return str(int(value[:-1]) / 1000) if value.endswith("m") else value


def project_name(options: BackendOptions, topology: Topology) -> str:
    worker = options.worker or os.environ.get("PYTEST_XDIST_WORKER", "") or "main"
    return _docker.sanitize(f"bannou-{options.run_id}-{topology.preset}-{worker}")


def render(
    topology: Topology,
    options: BackendOptions,
    project: str,
    images: Mapping[str, _docker.ImageInfo] | None = None,
) -> dict[str, Any]:
    """The compose project for ``topology`` as a dict (``yaml.safe_dump`` it to get the file)."""
    images = images or {}
    services: dict[str, Any] = {}
    volumes: dict[str, Any] = {}
    # networks and volumes outlive transitions: no preset in their labels, or Compose would
    # want to recreate them when the next preset is applied
    vol_labels = _docker.resource_labels(options, None, "compose")
    for node in topology.nodes:
        image = _docker.image_for(node)
        info = images.get(image)
        local = bool(info and info.local_build)
        svc: dict[str, Any] = {
            "image": image,
            "pull_policy": "never",
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
        mounts = _docker.host_mounts(info) if info else []
        for spec in node.volumes:
            source, _, rest = spec.partition(":")
            if rest and not source.startswith(("/", ".", "~")):
                volumes[source] = {"labels": vol_labels}
            mounts.append(spec)
        if mounts:
            svc["volumes"] = mounts
        if info and info.tmpfs:
            svc["tmpfs"] = list(info.tmpfs)
        hc = _docker.container_healthcheck(node, local)
        if hc:
            svc["healthcheck"] = {
                "test": hc["test"],
                "interval": _duration(hc["interval"]),
                "timeout": _duration(hc["timeout"]),
                "retries": hc["retries"],
                "start_period": _duration(hc["start_period"]),
            }
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
    return doc


def service_name(node: str) -> str:
    """The Compose service name of a node."""
    return _docker.sanitize(node)


def render_text(doc: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(doc), sort_keys=False, default_flow_style=False)
