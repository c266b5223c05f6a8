"""The health of an environment's infrastructure, as bannou's orchestrator reports it
(``InfrastructureHealth``): one real round-trip per server, with its latency.

Redis answers ``PING``, RabbitMQ accepts an AMQP connection, MySQL/MariaDB a login with the
node's credentials (``health.clients``); any other kind (MinIO, the ingress) accepts a TCP
connection. ``check_all`` runs the checks in parallel so one server that hangs costs one
timeout; error messages are masked with the secrets of the node's environment.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from .._support.masking import mask_text, secret_values
from ..backends.mysql_server import KINDS as MYSQL_KINDS
from ..topology.model import Node
from .clients import ClientError, mysql_login, rabbitmq_connect, redis_ping

DEFAULT_TIMEOUT = 5.0


@dataclass(frozen=True)
class InfraTarget:
    """Where one infrastructure node answers, and the environment it was started with."""

    node: str
    kind: str  # redis, rabbitmq, mysql, mariadb, minio, ingress ...
    host: str
    port: int
    environment: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class InfraHealth:
    """The answer of one infrastructure node."""

    node: str
    kind: str
    ok: bool
    latency_ms: float | None  # of the successful round-trip (None when it failed)
    check: str  # what was tried: "PING", "AMQP connection", "login", "TCP connect"
    address: str = ""
    detail: str = ""  # what answered
    error: str = ""  # what failed, masked

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        """One line for a terminal: ``redis (redis) ok 0.4 ms PING 127.0.0.1:6379``."""
        if self.ok:
            return f"{self.node} ({self.kind}) ok {self.latency_ms:.1f} ms {self.check} {self.address}"
        return f"{self.node} ({self.kind}) FAILED {self.check} {self.address}: {self.error}"


def _tcp(host: str, port: int, timeout: float, env: Mapping[str, str]) -> str:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return "accepted"
    except OSError as exc:
        raise ClientError(f"{host}:{port}: {type(exc).__name__}: {exc}") from None


Check = Callable[[str, int, float, Mapping[str, str]], str]
CHECKS: dict[str, tuple[str, Check]] = {
    "redis": ("PING", lambda h, p, t, env: redis_ping(h, p, t)),
    "rabbitmq": ("AMQP connection", rabbitmq_connect),
    **{kind: ("login", mysql_login) for kind in MYSQL_KINDS},
}


def check(target: InfraTarget, timeout: float = DEFAULT_TIMEOUT) -> InfraHealth:
    """One round-trip with ``target``; never raises."""
    what, fn = CHECKS.get(target.kind.lower(), ("TCP connect", _tcp))
    address = f"{target.host}:{target.port}"
    start = time.perf_counter()
    try:
        detail = fn(target.host, target.port, timeout, target.environment)
    except Exception as exc:  # any failure is the answer, with its reason
        text = str(exc) if isinstance(exc, ClientError) else f"{type(exc).__name__}: {exc}"
        error = mask_text(text, secret_values(target.environment))
        return InfraHealth(target.node, target.kind, False, None, what, address, error=error)
    latency = (time.perf_counter() - start) * 1000.0
    return InfraHealth(target.node, target.kind, True, round(latency, 2), what, address, detail=detail)


def failed(node: str, kind: str, error: str) -> InfraHealth:
    """The health of a node that could not even be addressed (no endpoint)."""
    return InfraHealth(node, kind, False, None, "endpoint", error=error)


def check_all(targets: Iterable[InfraTarget], timeout: float = DEFAULT_TIMEOUT) -> list[InfraHealth]:
    """Every target checked, in parallel, in the order given."""
    targets = list(targets)
    if not targets:
        return []
    with ThreadPoolExecutor(max_workers=min(8, len(targets))) as pool:
        return list(pool.map(lambda t: check(t, timeout), targets))


def check_nodes(
    nodes: Iterable[Node], address: Callable[[Node], tuple[str, int]], timeout: float = DEFAULT_TIMEOUT
) -> list[InfraHealth]:
    """Every running infrastructure node of ``nodes`` checked; ``address(node)`` says where its
    first port answers (an exception there is that node's failure)."""
    results: list[InfraHealth | InfraTarget] = []
    for n in nodes:
        if n.kind != "infrastructure" or n.replicas < 1 or not n.ports:
            continue
        kind = (n.infra_type or n.name).lower()
        try:
            host, port = address(n)
        except Exception as exc:
            text = mask_text(f"{type(exc).__name__}: {exc}", secret_values(n.environment))
            results.append(failed(n.name, kind, text))
            continue
        results.append(InfraTarget(n.name, kind, host, port, dict(n.environment)))
    checked = iter(check_all([r for r in results if isinstance(r, InfraTarget)], timeout))
    return [next(checked) if isinstance(r, InfraTarget) else r for r in results]
