"""Swarm service specs: what ``SwarmBackend`` creates through the SDK and the equivalent stack
file ``bannou-env render`` writes, kept apart from the backend's lifecycle (swarm.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...errors import DeployError
from ...topology.ingress import is_ingress
from ...topology.model import Node, Topology
from ..base import BackendOptions
from ..ingress import DOCKER_RESOLVER, public_launch
from . import engine as _docker
from .compose_file import add_mounts_and_healthcheck, add_public_ingress

NS = 1_000_000_000


def render_stack(
    topology: Topology,
    options: BackendOptions,
    prefix: str,
    images: Mapping[str, _docker.ImageInfo] | None = None,
) -> dict[str, Any]:
    """A ``docker stack deploy`` file equivalent to what ``SwarmBackend`` creates through the
    SDK (host-mode ports, dnsrr, replicas, rolling updates, labels, read-only host mounts)."""
    images = images or {}
    labels = _docker.resource_labels(options, None, "swarm")
    services: dict[str, Any] = {}
    volumes: dict[str, Any] = {}
    for node in topology.nodes:
        image = _docker.image_for(node)
        info = images.get(image)
        svc: dict[str, Any] = {
            "image": image,
            "init": True,
            "environment": _docker.node_environment(node),
            "networks": {"default": {"aliases": [node.name]}},
        }
        if node.command:
            svc["command"] = list(node.command)
        if node.ports:
            svc["ports"] = [
                {"target": p, "protocol": "tcp", "mode": "host"} for p in dict.fromkeys(node.ports)
            ]
        add_mounts_and_healthcheck(svc, node, info, labels, volumes)
        tmpfs_as_mounts(svc)
        add_public_ingress(svc, node, info)
        svc["deploy"] = {
            "replicas": node.replicas,
            "endpoint_mode": "dnsrr",
            "labels": _docker.resource_labels(options, topology, "swarm", node.name),
            "restart_policy": {"condition": "on-failure", "delay": "1s", "max_attempts": 3},
            "update_config": {
                "parallelism": 1,
                "delay": "0s",
                "failure_action": "pause",
                "order": "start-first",
            },
        }
        services[_docker.sanitize(node.name)] = svc
    doc: dict[str, Any] = {
        "version": "3.9",
        "services": services,
        "networks": {"default": {"driver": "overlay", "attachable": True, "labels": labels}},
    }
    if volumes:
        doc["volumes"] = volumes
    fronts = [_docker.sanitize(n.name) for n in topology.nodes if is_ingress(n)]
    if fronts:  # bannou's edge set-up, as compose_file.add_edge_network
        edge_labels = {**labels, _docker.LABEL_EDGE_NETWORK: "true"}
        doc["networks"][_docker.EDGE_NETWORK] = {
            "driver": "overlay",
            "attachable": True,
            "labels": edge_labels,
        }
        for name in fronts:
            services[name]["networks"][_docker.EDGE_NETWORK] = {
                "aliases": [services[name]["networks"]["default"]["aliases"][0]]
            }
    return doc


def tmpfs_as_mounts(svc: dict[str, Any]) -> None:
    """A service's ``tmpfs:`` paths as long-syntax ``volumes:`` entries (``type: tmpfs``):
    ``docker stack deploy`` ignores the service-level key (a stand-in then cannot write its
    ``/tmp``), and honours these, as the backend's tmpfs mounts (``service_spec``)."""
    paths = svc.pop("tmpfs", None) or []
    if paths:
        svc["volumes"] = [*svc.get("volumes", []), *({"type": "tmpfs", "target": p} for p in paths)]


def service_spec(
    node: Node,
    topology: Topology,
    options: BackendOptions,
    images: Mapping[str, _docker.ImageInfo],
    prefix: str,
    network: str,
    name: str,
    backend: str = "swarm",
    edge_network: str | None = None,
) -> dict[str, Any]:
    """The keyword arguments of ``create_service`` for ``node``: service ``name`` on overlay
    ``network`` (an ingress also on ``edge_network``), named volumes under ``prefix``, every
    object labelled with the run id."""
    image = _docker.image_for(node)
    info = images.get(image)
    labels = _docker.resource_labels(options, topology, backend, node.name)
    mounts: list[dict[str, Any]] = []
    for spec in _docker.host_mounts(info) if info else []:
        src, dst, _ = spec.split(":")
        mounts.append({"Type": "bind", "Source": src, "Target": dst, "ReadOnly": True})
    for path in info.tmpfs if info else ():
        mounts.append({"Type": "tmpfs", "Target": path})
    for spec in node.volumes:
        parts = spec.split(":")
        if len(parts) < 2:
            where = f"preset {topology.preset!r}, node {node.name!r}"
            raise DeployError(f"{where}: volume {spec!r} needs SOURCE:TARGET")
        src, dst = parts[0], parts[1]
        ro = len(parts) > 2 and "ro" in parts[2].split(",")
        if src.startswith("/"):
            mounts.append({"Type": "bind", "Source": src, "Target": dst, "ReadOnly": ro})
        else:
            vol = _docker.sanitize(f"{prefix}-{src}")
            mounts.append(
                {"Type": "volume", "Source": vol, "Target": dst, "ReadOnly": ro,
                 "VolumeOptions": {"Labels": labels}}
            )  # fmt: skip
    container: dict[str, Any] = {
        "Image": image,
        "Env": [f"{k}={v}" for k, v in _docker.node_environment(node).items()],
        "Labels": labels,
        "Mounts": mounts,
        "Init": True,
        "StopGracePeriod": 5 * NS,
    }
    if node.command:
        container["Args"] = list(node.command)
    launch = None if info is not None and info.local_build else public_launch(node, DOCKER_RESOLVER)
    if launch is not None:  # the real ingress image (compose_file.add_public_ingress)
        container["Command"] = list(launch[0])
        container["Env"] += [f"{k}={v}" for k, v in launch[1].items()]
    hc = _docker.container_healthcheck(node, bool(info and info.local_build))
    if hc:
        container["Healthcheck"] = {
            "Test": hc["test"],
            "Interval": int(hc["interval"] * NS),
            "Timeout": int(hc["timeout"] * NS),
            "Retries": hc["retries"],
            "StartPeriod": int(hc["start_period"] * NS),
        }
    task: dict[str, Any] = {
        "ContainerSpec": container,
        "RestartPolicy": {"Condition": "on-failure", "Delay": NS, "MaxAttempts": 3},
        "Networks": [{"Target": network, "Aliases": [node.name]}],
    }
    if edge_network and is_ingress(node):
        task["Networks"].append({"Target": edge_network, "Aliases": [node.name]})
    if node.resources:
        r = node.resources
        res: dict[str, Any] = {}
        if r.cpu_limit or r.memory_limit:
            res["Limits"] = _resources(r.cpu_limit, r.memory_limit)
        if r.cpu_request or r.memory_request:
            res["Reservations"] = _resources(r.cpu_request, r.memory_request)
        task["Resources"] = res
    return {
        "task_template": task,
        "name": name,
        "labels": labels,
        "mode": {"Replicated": {"Replicas": node.replicas}},
        "update_config": {
            "Parallelism": 1,
            "Delay": 0,
            "FailureAction": "pause",
            "Monitor": NS,
            "Order": "start-first",
        },
        "endpoint_spec": {
            "Mode": "dnsrr",
            "Ports": [
                {"Protocol": "tcp", "TargetPort": p, "PublishMode": "host"} for p in dict.fromkeys(node.ports)
            ],
        },
    }


def _resources(cpus: str | None, memory: str | None) -> dict[str, int]:
    out: dict[str, int] = {}
    if cpus:
        value = float(cpus[:-1]) / 1000 if cpus.endswith("m") else float(cpus)
        out["NanoCPUs"] = int(value * NS)
    if memory:
        out["MemoryBytes"] = _bytes(memory)
    return out


def _bytes(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    t = text.strip().lower().rstrip("b").rstrip("i")
    if t and t[-1] in units:
        return int(float(t[:-1]) * units[t[-1]])
    return int(float(t))
