"""The resolved topology a backend receives: nodes and testers, frozen.

Pure data: no I/O, no engine knowledge. ``preset.resolve`` builds a ``Topology`` with every
default applied; ``topology.diff`` compares two of them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from ..errors import did_you_mean
from .contract import DEFAULT_APP_ID, HTTP_PORT_IN_CONTAINER, SERVICES

__all__ = [
    "DEFAULT_APP_ID",
    "HTTP_PORT_IN_CONTAINER",
    "HealthCheck",
    "HealthKind",
    "Node",
    "NodeKind",
    "Resources",
    "TesterSpec",
    "Topology",
    "infra_node",
]

HealthKind = Literal["http", "tcp", "command", "log", "heartbeat", "mysql", "none"]
NodeKind = Literal["bannou", "infrastructure", "custom"]


@dataclass(frozen=True)
class HealthCheck:
    """How to tell that a node is ready. ``target``: path (http), port (tcp, mysql: a login with
    the node's ``MYSQL_*`` credentials), argv (command), regex (log), nothing (heartbeat/none)."""

    kind: HealthKind = "http"
    target: str | int | tuple[str, ...] = "/health"
    interval: float = 1.0
    timeout: float = 5.0
    retries: int = 30
    start_period: float = 0.0


@dataclass(frozen=True)
class Resources:
    cpu_limit: str | None = None
    memory_limit: str | None = None
    cpu_request: str | None = None
    memory_request: str | None = None


@dataclass(frozen=True)
class Node:
    """One deployable unit: a bannou node, an infrastructure service or a custom process.

    ``ports`` are ports *inside* the node (container ports); the first one is the node's HTTP
    port for bannou nodes. Backends publish them on free host ports and report the mapping.
    ``environment`` is the effective environment (preset < node < overrides) with service
    enablement already written in.
    """

    name: str
    app_id: str
    kind: NodeKind = "bannou"
    services: tuple[str, ...] = ()
    layers: tuple[str, ...] = ()
    replicas: int = 1
    environment: Mapping[str, str] = field(default_factory=dict)
    image: str | None = None
    command: tuple[str, ...] | None = None
    ports: tuple[int, ...] = (HTTP_PORT_IN_CONTAINER,)
    volumes: tuple[str, ...] = ()
    healthcheck: HealthCheck | None = field(default_factory=HealthCheck)
    depends_on: tuple[str, ...] = ()
    resources: Resources | None = None
    mesh_enabled: bool = True
    infra_type: str | None = None  # "redis", "rabbitmq", ... for kind == "infrastructure"
    version: str | None = None  # infrastructure version as the preset wrote it

    def __hash__(self) -> int:
        return hash(self.spec_hash())

    @property
    def http_port(self) -> int | None:
        return self.ports[0] if self.ports else None

    @property
    def http_health(self) -> bool:
        """Whether it answers HTTP ``/health`` (bannou nodes, an ingress; not Redis, RabbitMQ,
        MySQL, whose readiness is their own protocol)."""
        return self.kind != "infrastructure" or (
            self.healthcheck is not None and self.healthcheck.kind == "http"
        )

    def spec(self, *, with_replicas: bool = True) -> dict:
        """A JSON-able description; without replicas it is what decides *recreate*."""
        d = {
            "name": self.name,
            "app_id": self.app_id,
            "kind": self.kind,
            "services": list(self.services),
            "layers": list(self.layers),
            "environment": dict(sorted(self.environment.items())),
            "image": self.image,
            "command": list(self.command) if self.command is not None else None,
            "ports": list(self.ports),
            "volumes": list(self.volumes),
            "healthcheck": jsonable(self.healthcheck),
            "depends_on": list(self.depends_on),
            "resources": jsonable(self.resources),
            "mesh_enabled": self.mesh_enabled,
            "infra_type": self.infra_type,
            "version": self.version,
        }
        if with_replicas:
            d["replicas"] = self.replicas
        return d

    def spec_hash(self, *, with_replicas: bool = False) -> str:
        raw = json.dumps(self.spec(with_replicas=with_replicas), sort_keys=True).encode()
        return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True)
class TesterSpec:
    """A preset's external tester (run by ``pytest_bannou.testers``)."""

    name: str
    image: str | None = None
    command: tuple[str, ...] | None = None
    environment: Mapping[str, str] = field(default_factory=dict)
    format: str = "exit-code"
    timeout: float = 600.0
    daemon: bool = True
    target: str | None = None  # node the tester talks to; None = the node hosting most services

    def __hash__(self) -> int:
        return hash((self.name, self.image, self.command, self.format))


@dataclass(frozen=True)
class Topology:
    """A preset fully resolved: what a backend deploys."""

    preset: str
    nodes: tuple[Node, ...]
    mappings: Mapping[str, str] = field(default_factory=dict)  # service -> app id
    default_app_id: str = DEFAULT_APP_ID
    preset_hash: str = ""
    testers: tuple[TesterSpec, ...] = ()
    required_backends: tuple[str, ...] = ()
    source: str = ""  # file the preset came from

    def __hash__(self) -> int:
        return hash((self.preset, self.preset_hash, self.nodes))

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(f"preset {self.preset!r} has no node {name!r}; nodes: {', '.join(self.node_names)}")

    @property
    def node_names(self) -> tuple[str, ...]:
        return tuple(n.name for n in self.nodes)

    @property
    def bannou_nodes(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.kind != "infrastructure")

    @property
    def infrastructure(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.kind == "infrastructure")

    def node_for(self, service_or_node: str) -> Node:
        """The node of that name or app id, else the node a service is routed to as bannou routes
        it: its mapping, or (a bannou service nobody hosts explicitly) the main node. Any other
        name is a ``KeyError`` listing the nodes and services: a typo never lands on a node."""
        for n in self.nodes:
            if n.name == service_or_node:
                return n
        app_id = self.mappings.get(service_or_node)
        if app_id is None:
            for n in self.nodes:
                if n.app_id == service_or_node:
                    return n
            main = self.main_node
            if main is not None and service_or_node in self.known_services:
                return main
            raise KeyError(self._unknown_name(service_or_node))
        for n in self.bannou_nodes:
            if n.app_id == app_id:
                return n
        raise KeyError(
            f"preset {self.preset!r}: service {service_or_node!r} is routed to app id {app_id!r},"
            f" which no node has; nodes: {', '.join(self.node_names)}"
        )

    @property
    def main_node(self) -> Node | None:
        """The node bannou routes unmapped services to: the one with the default app id, else
        (a preset without one) the first bannou node."""
        for n in self.bannou_nodes:
            if n.app_id == self.default_app_id:
                return n
        return self.bannou_nodes[0] if self.bannou_nodes else None

    @property
    def known_services(self) -> frozenset[str]:
        """bannou's services plus any this topology names (older names a preset hosts)."""
        named = {s for n in self.nodes for s in n.services}
        return SERVICES | named | set(self.mappings)

    def _unknown_name(self, name: str) -> str:
        hosted = ", ".join(f"{s} ({self._host_name(s)})" for s in sorted(self.mappings))
        main = self.main_node
        others = f"; every other bannou service goes to {main.name}" if main is not None else ""
        candidates = [*self.node_names, *(n.app_id for n in self.nodes), *sorted(self.known_services)]
        hint = did_you_mean(name, candidates)
        return (
            f"preset {self.preset!r}: no node hosts {name!r} (not a node, app id or bannou service{hint});"
            f" nodes: {', '.join(self.node_names) or '(none)'};"
            f" services: {hosted or '(none hosted on a node of its own)'}{others}"
        )

    def _host_name(self, service: str) -> str:
        app_id = self.mappings[service]
        return next((n.name for n in self.bannou_nodes if n.app_id == app_id), f"app id {app_id}")

    def routing(self) -> dict[str, object]:
        """What ``node_for`` needs, as JSON (the run record: ``bannou-env logs RUN SERVICE``)."""
        return {
            "preset": self.preset,
            "nodes": [[n.name, n.app_id, n.kind] for n in self.nodes],
            "mappings": dict(self.mappings),
            "default_app_id": self.default_app_id,
        }

    @classmethod
    def from_routing(cls, data: Mapping[str, object]) -> Topology:
        """A topology with only the names ``routing()`` kept: enough to resolve names."""
        nodes = tuple(
            Node(name=str(name), app_id=str(app_id), kind=kind)  # type: ignore[arg-type]
            for name, app_id, kind in data.get("nodes") or ()  # type: ignore[attr-defined]
        )
        return cls(
            preset=str(data.get("preset", "")),
            nodes=nodes,
            mappings=dict(data.get("mappings") or {}),  # type: ignore[call-overload]
            default_app_id=str(data.get("default_app_id") or DEFAULT_APP_ID),
        )

    def with_nodes(self, nodes: Iterable[Node]) -> Topology:
        return replace(self, nodes=tuple(nodes))


def infra_node(topology: Topology, kind: str) -> Node | None:
    """The running infrastructure node of ``kind`` (``rabbitmq``, ``redis``, ``ingress`` ...):
    matched on its infrastructure type, else its name, in any case; scaled to zero counts as absent."""
    wanted = kind.lower()
    for n in topology.infrastructure:
        if (n.infra_type or n.name).lower() == wanted and n.replicas > 0:
            return n
    return None


def jsonable(obj: object) -> object:
    """``obj`` (dataclasses, tuples, plain values) as JSON-ready dicts and lists."""
    if obj is None:
        return None
    if hasattr(obj, "__dataclass_fields__"):
        return {k: jsonable(getattr(obj, k)) for k in obj.__dataclass_fields__}
    if isinstance(obj, tuple):
        return [jsonable(x) for x in obj]
    return obj


_jsonable = jsonable  # the name before the house (re-exported by ``pytest_bannou.topology``)
