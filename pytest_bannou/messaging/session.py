"""The messaging side of an environment: broker, heartbeat monitor, mapping and deployment events.

Messaging is on for an environment when its topology has a ``rabbitmq`` infrastructure node or
the session was given a broker (``--bannou-amqp-url``); Redis (a ``redis`` node or
``--bannou-redis-url``) adds the heartbeat monitor. Then, per activation:

1. ``prepare``: start the infrastructure first when the broker/Redis are nodes of the topology
   (a two-phase start: their ports are only known once they run), connect the publisher, start
   the ``HeartbeatMonitor`` (before any bannou node starts, so their first heartbeats are seen),
   publish deployment ``started`` and give every bannou node ``BANNOU_AMQP_URL``,
   ``BANNOU_HEARTBEAT_INTERVAL`` and its peers' addresses;
2. ``ready``: once every node is ready, rewrite the mesh endpoints file, publish a
   FullServiceMappingsEvent (strictly increasing version) and a deployment event (``completed``
   or ``topology-changed``), and wait until every reference node applied that mapping version
   (its ``/health`` reports ``mappingsVersion``), so the first request already routes.

How nodes learn their peers: bannou's mapping event carries no URLs, so the contract stays
intact and addresses travel separately. Container backends get ``BANNOU_MESH_ENDPOINTS`` with
node names (``appId=http://bannou-auth:80``), known before start. The local backend picks ports
when it starts a node, so nodes get ``BANNOU_MESH_ENDPOINTS_FILE`` naming a file in the run
directory, rewritten after every change (see ``reference.mesh_file``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .._support.files import atomic_write
from .._support.masking import mask_environment
from ..backends import registry
from ..backends.base import Backend, Endpoint
from ..errors import BannouError, DeployError
from ..health import probes
from ..health.wait import wait_ready
from ..topology.diff import diff
from ..topology.model import Node, Topology, infra_node
from .contract import (
    AMQP_URL_ENV,
    DEFAULT_TTL,
    HEARTBEAT_INTERVAL_ENV,
    MESH_ENDPOINTS_ENV,
    MESH_ENDPOINTS_FILE_ENV,
    HeartbeatRecord,
    write_mesh_endpoints,
)
from .restart_policy import DEFAULT_DEGRADED_THRESHOLD, RestartDecision

if TYPE_CHECKING:
    from .broker import EventPublisher
    from .heartbeats import HeartbeatMonitor

__all__ = [  # the node-side setting names are re-exported: they are part of this module's contract
    "AMQP_URL_ENV",
    "HEARTBEAT_INTERVAL_ENV",
    "MESH_ENDPOINTS_ENV",
    "MESH_ENDPOINTS_FILE_ENV",
    "EnvMessaging",
    "EnvironmentView",
    "MessagingNotConfigured",
    "MessagingSettings",
    "read_state",
    "settings_from",
]

log = logging.getLogger("pytest_bannou.messaging.session")

MESH_FILE_NAME = "mesh-endpoints"
LIVE_STATE = "live.json"
DEFAULT_HEARTBEAT_INTERVAL = 1.0  # short: tests want to see state changes quickly
MAPPING_ACK_TIMEOUT = 30.0
REPUBLISH_AFTER = 2.0
RABBITMQ_ERL_ARGS_ENV = "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"


class MessagingNotConfigured(BannouError):
    """A messaging feature was used on an environment without a broker or Redis."""


class EnvironmentView(Protocol):
    """What the messaging side needs of an environment (``environment.Environment`` is one);
    ``prepare`` replaces its ``topology`` with the one the nodes get."""

    topology: Topology
    run_id: str
    preset: str
    backend: str
    key: str

    def url(self, node: str) -> str: ...


@dataclass(frozen=True)
class MessagingSettings:
    amqp_url: str | None = None  # an external broker, used by the plugin and given to the nodes
    redis_url: str | None = None  # an external Redis for the heartbeat monitor
    heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL
    ttl: float = DEFAULT_TTL
    degraded_threshold: float = DEFAULT_DEGRADED_THRESHOLD
    connect_deadline: float = 30.0
    clock: Callable[[], float] = time.time


def _peer(backend_name: str, node: Node, port: int) -> Endpoint | None:
    """Where the other nodes reach ``port`` of ``node`` on this backend (``Backend.peer_address``);
    None when they only reach each other through published endpoints."""
    cls = registry.find(backend_name)
    return cls.peer_address(node, port) if cls is not None else None


def _peer_of(backend_name: str, node: Node | None) -> tuple[str, int]:
    assert node is not None  # messaging without --bannou-amqp-url has a rabbitmq node
    ep = _peer(backend_name, node, node.ports[0])
    assert ep is not None
    return ep.host, ep.port


def amqp_url(host: str, port: int) -> str:
    return f"amqp://guest:guest@{host}:{port}/%2F"


class EnvMessaging:
    """One session's messaging; the ``EnvironmentManager`` calls ``prepare``/``ready``/``failed``/
    ``stop`` around each activation. Inactive (and free) for topologies without messaging."""

    def __init__(self, settings: MessagingSettings | None = None, workdir: Path | None = None) -> None:
        self.settings = settings or MessagingSettings()
        self.workdir = workdir
        self.publisher: EventPublisher | None = None
        self.monitor: HeartbeatMonitor | None = None
        self.redis: Any = None
        self.broker_url: str | None = None  # as this process reaches it
        self.redis_url: str | None = None
        self.node_env: dict[str, str] = {}  # what every bannou node got
        self.versions: list[int] = []  # mapping versions published, in order
        self._probe_registered = False

    # --- state --------------------------------------------------------------------------------
    def wanted(self, topology: Topology) -> bool:
        return bool(self.settings.amqp_url) or infra_node(topology, "rabbitmq") is not None

    @property
    def active(self) -> bool:
        return self.publisher is not None

    @property
    def mesh_file(self) -> Path | None:
        return self.workdir / MESH_FILE_NAME if self.workdir is not None else None

    # --- activation ---------------------------------------------------------------------------
    def prepare(
        self, backend: Backend, old: Topology | None, env: EnvironmentView, deadline: float
    ) -> Topology | None:
        """Start what messaging needs and give the nodes their settings (``env.topology`` is
        replaced). Returns the topology now running on the backend when infrastructure was
        started first (the caller then applies the rest as a transition), else None."""
        new = env.topology
        if not self.wanted(new):
            self.stop()
            return None
        new = self.prepare_infrastructure(backend.name, new)
        base = self._start_infrastructure(backend, old, new, deadline)
        self._connect(backend, new, deadline)
        env.topology = self.inject(backend.name, new)
        self._deployment("started", env)
        return base

    def attach(self, backend: Backend, env: EnvironmentView, deadline: float, last_version: int = 0) -> None:
        """Take up the messaging of a kept environment another process deployed (``bannou-env
        update``): connect to its broker and Redis and give its nodes their settings again
        (the same as they run with, so they are not changed), with mapping versions going on
        from ``last_version``; no deployment event (nothing was deployed)."""
        if not self.wanted(env.topology):
            return
        if last_version:
            self.versions.append(last_version)
        self._connect(backend, env.topology, deadline)
        env.topology = self.inject(backend.name, env.topology)

    def _start_infrastructure(
        self, backend: Backend, old: Topology | None, new: Topology, deadline: float
    ) -> Topology | None:
        wanted = [
            n
            for kind, option in (("rabbitmq", self.settings.amqp_url), ("redis", self.settings.redis_url))
            if not option and (n := infra_node(new, kind)) is not None
        ]
        if not wanted:
            return None
        first = standalone_infrastructure(new)
        if old is None:
            phase1 = new.with_nodes(first)
            backend.deploy(phase1, deadline)
        else:
            running = {n.name: n for n in old.nodes}
            if all(running.get(n.name) == n and running[n.name].replicas == n.replicas for n in wanted):
                return None
            names = {n.name for n in first}
            # what fronts the nodes (an ingress) stays as it is until the nodes are changed
            kept = [n for n in old.nodes if n.name not in names and n.kind == "infrastructure"]
            phase1 = old.with_nodes([*first, *old.bannou_nodes, *kept])
            backend.apply(diff(old, phase1), deadline)
        wait_ready(backend, phase1, deadline, nodes=[n.name for n in first])
        return phase1

    def _connect(self, backend: Backend, topology: Topology, deadline: float) -> None:
        from .broker import EventPublisher  # pika and redis only for sessions with messaging
        from .heartbeats import HeartbeatMonitor, connect_redis

        s = self.settings
        broker = s.amqp_url or self._infra_url(backend, topology, "rabbitmq")
        redis_url = s.redis_url or self._infra_url(backend, topology, "redis")
        budget = max(1.0, min(s.connect_deadline, deadline - time.monotonic()))
        if broker != self.broker_url or self.publisher is None:
            self.stop()
            last = max(self.versions) if self.versions else 0
            self.publisher = EventPublisher(broker, deadline=budget, last_version=last, clock=s.clock)
            self.broker_url = broker
        if redis_url and (redis_url != self.redis_url or self.monitor is None):
            if self.monitor is not None:
                self.monitor.stop()
            self.redis = connect_redis(redis_url, deadline=budget)
            self.monitor = HeartbeatMonitor(
                broker,
                self.redis,
                ttl=s.ttl,
                degraded_threshold=s.degraded_threshold,
                deadline=budget,
                clock=s.clock,
            ).start()
            self.redis_url = redis_url
            self._register_probe()

    @staticmethod
    def _infra_url(backend: Backend, topology: Topology, kind: str) -> str | None:
        node = infra_node(topology, kind)
        if node is None:
            return None
        ep = backend.endpoint(node.name, node.ports[0] if node.ports else None)
        if kind == "rabbitmq":
            return amqp_url(ep.host, ep.port)
        return f"redis://{ep.host}:{ep.port}/0"

    @staticmethod
    def prepare_infrastructure(backend_name: str, topology: Topology) -> Topology:
        """Container backends: the plugin reaches RabbitMQ through a published port, which the
        broker does not count as loopback, so user guest must be allowed from anywhere (bannou's
        official image does this in its config; a plain rabbitmq-server needs it said)."""
        rabbit = infra_node(topology, "rabbitmq")
        if rabbit is None or _peer(backend_name, rabbit, rabbit.ports[0] if rabbit.ports else 0) is None:
            return topology
        extra = {RABBITMQ_ERL_ARGS_ENV: "-rabbit loopback_users []", **rabbit.environment}
        return topology.with_nodes(
            replace(n, environment=extra) if n is rabbit else n for n in topology.nodes
        )

    def inject(self, backend_name: str, topology: Topology) -> Topology:
        """Every bannou node gets the broker, the heartbeat interval and how to find its peers
        (settings a preset gives a node itself win)."""
        if any(_peer(backend_name, n, n.http_port or 0) for n in topology.nodes):  # in-network peers
            rabbit = infra_node(topology, "rabbitmq")
            node_broker = self.settings.amqp_url or amqp_url(*_peer_of(backend_name, rabbit))
            peers = {
                n.app_id: ep.url()
                for n in topology.bannou_nodes
                if n.http_port and (ep := _peer(backend_name, n, n.http_port)) is not None
            }
            extra = {MESH_ENDPOINTS_ENV: ",".join(f"{a}={u}" for a, u in sorted(peers.items()))}
        else:
            node_broker = self.broker_url or ""
            extra = {MESH_ENDPOINTS_FILE_ENV: str(self.mesh_file)} if self.mesh_file else {}
        self.node_env = {
            AMQP_URL_ENV: node_broker,
            HEARTBEAT_INTERVAL_ENV: f"{self.settings.heartbeat_interval:g}",
            **extra,
        }
        nodes = [
            replace(n, environment={**self.node_env, **n.environment}) if n.kind != "infrastructure" else n
            for n in topology.nodes
        ]
        return topology.with_nodes(nodes)

    def ready(
        self, env: EnvironmentView, action: str = "completed", changes: list[str] | None = None
    ) -> None:
        """After every deploy, transition, change or restart: peers' addresses, a mapping event,
        a deployment event, and the nodes' acknowledgement of the new mappings."""
        if not self.active:
            return
        assert self.publisher is not None
        endpoints = self.endpoints(env)
        if self.mesh_file is not None:
            write_mesh_endpoints(self.mesh_file, endpoints)
        event = self.publisher.publish_mappings(env.topology)
        self.versions.append(event["version"])
        self._deployment(action, env, changes=changes)
        self._wait_applied(env, event["version"])
        self.save(env)

    def failed(self, env: EnvironmentView, error: BaseException) -> None:
        if self.active:
            with contextlib.suppress(Exception):
                self._deployment("failed", env, error=str(error))

    def restarted(
        self, node: Node, reason: str, new_environment: Mapping[str, str] | None = None
    ) -> dict[str, Any] | None:
        """A ServiceRestartEvent for a node the plugin restarted (``serviceName``: its app id,
        bannou's name of the instance); secret values of ``new_environment`` are masked."""
        if not self.active:
            return None
        assert self.publisher is not None
        env = mask_environment(new_environment) if new_environment else None
        return self.publisher.publish_service_restart(node.app_id, reason, new_environment=env)

    def configuration_changed(self, version: int, changed_keys: list[str]) -> dict[str, Any] | None:
        """A ConfigurationChangedEvent: configuration version ``version`` is now active."""
        if not self.active:
            return None
        assert self.publisher is not None
        return self.publisher.publish_configuration_changed(version, changed_keys)

    def endpoints(self, env: EnvironmentView) -> dict[str, str]:
        out: dict[str, str] = {}
        for n in env.topology.bannou_nodes:
            if n.http_port is not None and n.replicas > 0:
                with contextlib.suppress(BannouError, KeyError):
                    out.setdefault(n.app_id, env.url(n.name))
        return out

    def _deployment(self, action: str, env: EnvironmentView, **fields: Any) -> None:
        assert self.publisher is not None
        self.publisher.publish_deployment(
            action, env.run_id, preset=env.preset, backend=env.backend, **fields
        )

    def _wait_applied(self, env: EnvironmentView, version: int) -> None:
        """Reference nodes report ``mappingsVersion`` on /health: wait until each has ``version``.
        A node that subscribed only after the event went out (a recreated container can pass a
        heartbeat probe on its predecessor's record) gets the mappings republished, as bannou's
        orchestrator republishes them, every ``REPUBLISH_AFTER`` seconds."""
        import httpx

        end = time.monotonic() + MAPPING_ACK_TIMEOUT
        republish = time.monotonic() + REPUBLISH_AFTER
        pending = {n.name: n for n in env.topology.bannou_nodes if n.http_port and n.replicas > 0}
        last: dict[str, str] = {}
        with httpx.Client(timeout=2.0, trust_env=False) as client:
            while pending:
                for name in list(pending):
                    try:
                        body = client.get(env.url(name) + "/health").json()
                    except (httpx.HTTPError, ValueError, BannouError) as exc:
                        last[name] = repr(exc)
                        continue
                    seen = body.get("mappingsVersion", version) if isinstance(body, dict) else version
                    if seen is not None and seen >= version:
                        del pending[name]
                    else:
                        last[name] = f"mappingsVersion {seen}"
                if pending and time.monotonic() >= end:
                    detail = ", ".join(f"{n}: {last.get(n, '?')}" for n in pending)
                    raise DeployError(
                        f"environment {env.key!r}: node(s) did not apply service mappings version {version}"
                        f" within {MAPPING_ACK_TIMEOUT:g}s ({detail}); check that they reach RabbitMQ at"
                        f" {self.broker_url} (node logs: bannou-env logs {env.run_id} NODE)"
                    )
                if pending and time.monotonic() >= republish and self.publisher is not None:
                    version = self.publisher.publish_mappings(env.topology)["version"]
                    self.versions.append(version)
                    republish = time.monotonic() + REPUBLISH_AFTER
                if pending:
                    time.sleep(0.05)

    # --- heartbeats ---------------------------------------------------------------------------
    def _need_monitor(self) -> HeartbeatMonitor:
        if self.monitor is None:
            raise MessagingNotConfigured(
                "heartbeats need RabbitMQ and Redis: enable the rabbitmq and redis infrastructure in the"
                " preset, or pass --bannou-amqp-url and --bannou-redis-url"
                " (ini bannou_amqp_url / bannou_redis_url, env BANNOU_AMQP_URL / BANNOU_REDIS_URL)"
            )
        return self.monitor

    def heartbeats(self) -> dict[str, HeartbeatRecord]:
        return self._need_monitor().all()

    def should_restart(self, app_id: str, now: float | None = None) -> RestartDecision:
        return self._need_monitor().should_restart(app_id, now)

    def wait_heartbeat(self, app_id: str, status: str | None = "healthy", timeout: float = 30.0) -> Any:
        return self._need_monitor().wait_for(app_id, status, timeout)

    def forget(self, app_ids: list[str]) -> None:
        """Drop the heartbeat records of nodes about to be recreated: their readiness must come
        from the new process (an engine that kills the old one sends no ``shutting_down``)."""
        if self.monitor is not None:
            for app_id in app_ids:
                self.monitor.store.forget(app_id)

    def _register_probe(self) -> None:
        from .heartbeats import HeartbeatProbe

        def factory(node: Node) -> probes.Probe:
            if self.redis is not None:
                return HeartbeatProbe(self.redis)
            return probes.HttpProbe("/health") if node.http_port is not None else probes.ProcessProbe()

        probes.register_probe("heartbeat", factory)

    # --- state for the CLI --------------------------------------------------------------------
    def save(self, env: EnvironmentView) -> None:
        """What ``bannou-env update`` needs to publish for a kept environment."""
        if self.workdir is None:
            return
        path = self.workdir / LIVE_STATE
        data = read_state(self.workdir)
        data["messaging"] = {
            "broker_url": self.broker_url,
            "redis_url": self.redis_url,
            "last_version": max(self.versions) if self.versions else 0,
            "external_amqp": self.settings.amqp_url,
            "external_redis": self.settings.redis_url,
            "heartbeat_interval": self.settings.heartbeat_interval,
            "heartbeat_ttl": self.settings.ttl,
            "degraded_threshold": self.settings.degraded_threshold,
            "node_env": self.node_env,
        }
        atomic_write(path, json.dumps(data, indent=1, sort_keys=True))  # 0600: names the broker

    def keep(self, env: EnvironmentView) -> None:
        """The environment stays running after the session: record what ``bannou-env update``
        needs to publish for it (its manager records the configuration versions), then stop."""
        if self.workdir is not None and self.active:
            with contextlib.suppress(OSError):
                self.save(env)
        self.stop()

    def stop(self) -> None:
        """Stop the monitor and close the publisher (before the broker goes away)."""
        if self.monitor is not None:
            with contextlib.suppress(Exception):
                self.monitor.stop()
            self.monitor = None
        if self.redis is not None:
            with contextlib.suppress(Exception):
                self.redis.close()
            self.redis = None
        if self.publisher is not None:
            with contextlib.suppress(Exception):
                self.publisher.close()
            self.publisher = None
        self.broker_url = self.redis_url = None


def read_state(workdir: Path) -> dict[str, Any]:
    try:
        data = json.loads((workdir / LIVE_STATE).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def settings_from(values: Mapping[str, Any]) -> MessagingSettings:
    """From resolved option values (``bannou_amqp_url``, ``bannou_redis_url``,
    ``bannou_heartbeat_interval``, ``bannou_heartbeat_ttl``, ``bannou_degraded_threshold``):
    the plugin passes them down here, nothing below reads an option or a variable itself."""
    return MessagingSettings(
        amqp_url=values.get("bannou_amqp_url") or None,
        redis_url=values.get("bannou_redis_url") or None,
        heartbeat_interval=float(values.get("bannou_heartbeat_interval") or DEFAULT_HEARTBEAT_INTERVAL),
        ttl=float(values.get("bannou_heartbeat_ttl") or DEFAULT_TTL),
        degraded_threshold=float(values.get("bannou_degraded_threshold") or DEFAULT_DEGRADED_THRESHOLD),
    )


def standalone_infrastructure(topology: Topology) -> list[Node]:
    """The infrastructure nodes that need no bannou node (an ingress fronting one does): what
    starts before the nodes, so that the broker and Redis are there when they come up."""
    ready: set[str] = set()
    infra = list(topology.infrastructure)
    changed = True
    while changed:
        changed = False
        for n in infra:
            if n.name not in ready and all(d in ready for d in n.depends_on):
                ready.add(n.name)
                changed = True
    return [n for n in infra if n.name in ready]
