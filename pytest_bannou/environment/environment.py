"""The ``Environment`` a test holds (``bannou_env``): one preset deployed on the session's
backend, with URLs, logs, status and the changes a test may make (restart, scale, live updates).

The environment does not import its manager: it talks to it through ``EnvironmentHost``, the
few public things it needs (the manager implements them), so the two modules form no circle.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any, Protocol

from ..backends.base import Backend, Endpoint, ReplicaStatus
from ..errors import BannouError, DeployError
from ..health.infrastructure import InfraHealth, check_nodes
from ..health.wait import poll_until
from ..messaging.contract import MessagingError
from ..topology.model import Topology
from .record import format_status


class EnvironmentHost(Protocol):
    """What an ``Environment`` needs of the manager that deployed it."""

    backend: Backend | None
    current: Environment | None
    messaging: Any

    @property
    def backend_name(self) -> str: ...

    @property
    def run_id(self) -> str: ...

    def wait_ready(
        self, env: Environment, nodes: list[str] | None = None, timeout: float | None = None
    ) -> None: ...

    def update(self, env: Environment, changes: Sequence[Any]) -> int: ...

    def rollback(self, env: Environment, version: int | None = None) -> int: ...

    def config_version(self, env: Environment) -> int: ...

    def history(self, env: Environment) -> Any: ...

    def record_change(
        self, env: Environment, old: Topology, changes: list[str], restarts: bool = False
    ) -> int: ...

    def fault(self, env: Environment, action: str, node: str, replica: int | None = None) -> None: ...


class Environment:
    """One preset deployed on the session's backend: what tests use through ``bannou_env``."""

    def __init__(self, manager: EnvironmentHost, key: str, topology: Topology) -> None:
        self._manager = manager
        self.key = key
        self.topology = topology

    def __repr__(self) -> str:
        return f"<Environment {self.key} on {self.backend} ({self.run_id})>"

    @property
    def preset(self) -> str:
        return self.topology.preset

    @property
    def backend(self) -> str:
        """The backend's name (``local``, ``compose`` ...)."""
        return self._manager.backend_name

    @property
    def run_id(self) -> str:
        return self._manager.run_id

    @property
    def nodes(self) -> tuple[str, ...]:
        return self.topology.node_names

    @property
    def active(self) -> bool:
        """Whether this environment is the one deployed now (a later test may have moved on)."""
        return self._manager.current is self

    def engine(self) -> Backend:
        """The backend this environment is deployed on; ``DeployError`` once the session moved
        on to another environment (the backend no longer holds this one)."""
        if not self.active:
            raise DeployError(
                f"environment {self.key!r} is no longer deployed (the session moved on to "
                f"{self._manager.current.key if self._manager.current else 'nothing'}); "
                "use the bannou_env fixture of the current test"
            )
        return self._manager.backend  # type: ignore[return-value]  # set once current

    def node_for(self, service_or_node: str) -> str:
        """The node of that name or app id, or the one bannou routes the service to; any other
        name is a ``DeployError`` listing the nodes and services (never the main node)."""
        try:
            return self.topology.node_for(service_or_node).name
        except KeyError as exc:
            raise DeployError(str(exc.args[0])) from None

    @property
    def main_node(self) -> str:
        """The node requests go to by default: the one with the default app id, else the first."""
        main = self.topology.main_node
        if main is not None:
            return main.name
        if not self.topology.nodes:
            raise DeployError(f"preset {self.preset!r} has no nodes")
        return self.topology.nodes[0].name

    def endpoint(self, service_or_node: str, port: int | None = None, replica: int = 0) -> Endpoint:
        return self.engine().endpoint(self.node_for(service_or_node), port, replica)

    def url(self, service_or_node: str | None = None, port: int | None = None) -> str:
        """Base URL of the node hosting ``service_or_node`` (default: the main node)."""
        return self.endpoint(service_or_node or self.main_node, port).url()

    def urls(self) -> dict[str, str]:
        """Base URL of every node that has a port."""
        out = {}
        for n in self.topology.nodes:
            if n.ports:
                with contextlib.suppress(BannouError, KeyError):
                    out[n.name] = self.engine().endpoint(n.name).url()
        return out

    def infrastructure_health(self, timeout: float = 5.0) -> list[InfraHealth]:
        """bannou's ``InfrastructureHealth``: per infrastructure node a real round-trip (Redis
        ``PING``, a RabbitMQ connection, a MySQL login, else a TCP connect) with its latency in
        ms, or the (masked) error; checked in parallel, each within ``timeout`` seconds."""
        engine = self.engine()

        def address(node: Any) -> tuple[str, int]:
            ep = engine.endpoint(node.name, node.ports[0])
            return ep.host, ep.port

        return check_nodes(self.topology.infrastructure, address, timeout)

    def logs(self, node: str, tail: int | None = 50) -> str:
        return self.engine().logs(self.node_for(node), tail)

    def status(self) -> list[ReplicaStatus]:
        return self.engine().status()

    def status_text(self) -> str:
        return format_status(self.status())

    def restart(self, node: str, environment: Mapping[str, str] | None = None) -> None:
        """Restart a node and wait until it is ready again. New ``environment`` values recreate
        the node through the backend (an ``update-env`` change: a new configuration version)."""
        name = self.node_for(node)
        current = self.topology.node(name).environment
        if environment and any(current.get(k) != str(v) for k, v in environment.items()):
            self.update([{"action": "update-env", "nodeName": name, "environment": dict(environment)}])
            return
        self.engine().restart(name, None)
        self._manager.wait_ready(self, nodes=[name])
        self._manager.messaging.ready(self, "completed", [f"restart {name}"])
        self._manager.messaging.restarted(self.topology.node(name), f"restart {name} requested by the test")

    # --- heartbeats, restart policy and live changes (pytest_bannou.messaging.session, .live) -------
    def heartbeats(self) -> dict[str, Any]:
        """app id -> last ``HeartbeatRecord`` stored in Redis by the heartbeat monitor."""
        return self._manager.messaging.heartbeats()

    def should_restart(self, node: str, now: float | None = None) -> Any:
        """bannou's restart policy for a node's app id: a ``RestartDecision`` (restart, reason)."""
        return self._manager.messaging.should_restart(self.topology.node(self.node_for(node)).app_id, now)

    def update(self, changes: Sequence[Any]) -> int:
        """Apply bannou TopologyChanges (all or nothing); returns the new configuration version."""
        self.engine()
        return self._manager.update(self, changes)

    def rollback(self, version: int | None = None) -> int:
        """Return to configuration ``version`` (default: the one before the current, as bannou's
        rollback); the rollback is recorded as a new version, whose number is returned."""
        self.engine()
        return self._manager.rollback(self, version)

    @property
    def config_version(self) -> int:
        return self._manager.config_version(self)

    @property
    def config_versions(self) -> list[Any]:
        """Every configuration version (``live.ConfigVersion``: version, timestamp, changes,
        changed_keys), oldest first; the last one is current."""
        history = self._manager.history(self)
        return [history.detail(v) for v in history.numbers]

    def scale(self, node: str, replicas: int) -> int:
        """Change a node's replica count and wait until the new replicas are ready; a new
        configuration version, whose number is returned."""
        name = self.node_for(node)
        old = self.topology
        self.engine().scale(name, replicas)
        self._update_node(name, replicas=replicas)
        self._manager.wait_ready(self, nodes=[name])
        self._manager.messaging.ready(self, "completed", [f"scale {name} to {replicas}"])
        return self._manager.record_change(self, old, [f"scale {name} replicas={replicas}"])

    # --- fault injection (pytest_bannou.environment.faults; the backend's kill_node ...) -------
    def kill(self, node: str, replica: int | None = None) -> None:
        """Kill the node's replica (every replica when None) at once; an engine that restarts
        by itself (Swarm, Kubernetes) shows it as a restart in ``status()``. Killed nodes that
        are not back are restarted before the next test."""
        self._manager.fault(self, "kill", self.node_for(node), replica)

    def pause(self, node: str) -> None:
        """Freeze the node (SIGSTOP, ``docker pause``): it stops answering and its heartbeats
        stop, without exiting. Resumed before the next test at the latest."""
        self._manager.fault(self, "pause", self.node_for(node))

    def resume(self, node: str) -> None:
        self._manager.fault(self, "resume", self.node_for(node))

    def disconnect(self, node: str) -> None:
        """Cut the node off from its peers and from the tests (Docker: off the environment's
        network). Reconnected before the next test at the latest."""
        self._manager.fault(self, "disconnect", self.node_for(node))

    def reconnect(self, node: str) -> None:
        self._manager.fault(self, "reconnect", self.node_for(node))

    @contextlib.contextmanager
    def paused(self, node: str) -> Iterator[None]:
        """``with bannou_env.paused("auth"):`` the node is paused inside, resumed on exit (also
        when the block fails)."""
        self.pause(node)
        try:
            yield
        finally:
            self.resume(node)

    @contextlib.contextmanager
    def disconnected(self, node: str) -> Iterator[None]:
        """``with bannou_env.disconnected("auth"):`` cut off inside, reconnected on exit."""
        self.disconnect(node)
        try:
            yield
        finally:
            self.reconnect(node)

    def wait_for_heartbeat(self, node: str, status: str = "healthy", timeout: float = 30.0) -> Any:
        """Wait until the heartbeat monitor's store has ``status`` for the node's app id; with
        ``unavailable``, no heartbeat at all (expired or stale) counts too. Returns the restart
        policy's ``RestartDecision`` then; ``MessagingError`` at the deadline."""
        app_id = self.topology.node(self.node_for(node)).app_id
        messaging = self._manager.messaging
        seen: list[Any] = []

        def check() -> Any:
            decision = messaging.should_restart(app_id)
            seen[:] = [decision]
            stale = (
                decision.last_seen is not None and time.time() - decision.last_seen > messaging.settings.ttl
            )
            current = None if stale else decision.status
            if current == status or (status == "unavailable" and current is None):
                return decision
            return None

        def timed_out() -> Any:
            last = seen[0].reason if seen else "no answer"
            raise MessagingError(
                f"node {node!r} (app id {app_id!r}) did not reach heartbeat status {status!r} within"
                f" {timeout:g}s; last: {last}"
            )

        return poll_until(check, time.monotonic() + timeout, 0.1, timed_out)

    def _update_node(
        self, name: str, *, environment: Mapping[str, str] | None = None, replicas: int | None = None
    ) -> None:
        nodes = []
        for n in self.topology.nodes:
            if n.name == name:
                if environment:
                    n = replace(n, environment={**n.environment, **environment})
                if replicas is not None:
                    n = replace(n, replicas=replicas)
            nodes.append(n)
        # the environment no longer matches its preset: later transitions diff against reality
        self.topology = self.topology.with_nodes(nodes)
