"""Readiness probes: is one replica of a node ready to serve tests?

One ``Probe`` protocol (like testcontainers' wait strategies) with an implementation per
healthcheck kind: ``HttpProbe`` (2xx on a path), ``TcpProbe`` (a connection is accepted),
``CommandProbe`` (``backend.exec`` exits 0), ``LogProbe`` (a regex appears in the node's logs),
``HeartbeatProbe`` (a healthy bannou heartbeat, read from a ``HeartbeatSource`` that messaging
provides), ``MysqlProbe`` (a MySQL login with the node's credentials) and ``ProcessProbe``
(the replicas are running); an ingress in front of a bannou node gets ``IngressProbe`` (its own
/health and a request it proxies). ``probe_for(node)`` picks one from the node's healthcheck;
``register_probe`` lets a lower room plug in a kind (messaging registers the heartbeat probe on
its Redis store). Waiting for them is ``health.wait``'s job.
"""

from __future__ import annotations

import http.client
import re
import shlex
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ..backends.base import Backend, Endpoint
from ..topology.ingress import PROXIED_PATH, UPSTREAM_DOWN, checks_upstream
from ..topology.model import Node
from .clients import ClientError, mysql_login

CLOSE_GRACE = 0.1  # a TCP peer that hangs up within this is not ready (port proxies accept early)


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    detail: str = ""


class Probe(Protocol):
    """A readiness check of one replica; must return within ``timeout`` seconds."""

    def describe(self) -> str: ...

    def check(self, backend: Backend, node: Node, replica: int, timeout: float) -> ProbeResult: ...


@dataclass(frozen=True)
class HttpProbe:
    path: str = "/health"
    port: int | None = None  # container port; None = the node's HTTP port

    def describe(self) -> str:
        return f"HTTP GET {self.path} answers 2xx"

    def check(self, backend: Backend, node: Node, replica: int, timeout: float) -> ProbeResult:
        try:
            status = _http_get(backend.endpoint(node.name, self.port, replica), self.path, timeout)
        except Exception as exc:  # any failure is "not ready yet", with its reason
            return ProbeResult(False, f"GET {self.path}: {type(exc).__name__}: {exc}")
        if 200 <= status < 300:
            return ProbeResult(True, f"GET {self.path} -> {status}")
        return ProbeResult(False, f"GET {self.path} -> HTTP {status}")


def _http_get(ep: Endpoint, path: str, timeout: float) -> int:
    """The status of ``GET path`` on ``ep`` (the body read and dropped)."""
    conn = http.client.HTTPConnection(ep.host, ep.port, timeout=max(timeout, 0.01))
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


@dataclass(frozen=True)
class IngressProbe:
    """For an ingress in front of a bannou node: its own ``/health`` answers 2xx *and* a request
    it proxies reaches the node (nginx answers 502/504 while it cannot; 503: the node is not
    serving yet). An ingress container is up before the route behind it: a Kubernetes Service
    routes only once its endpoints are programmed on the node, after the pod is ready, and the
    first tester requests met 502 without this. The proxied request is ``GET /``: the ordinary
    API route, not the WebSocket one (whose read timeout is an hour)."""

    path: str = "/health"
    proxied: str = PROXIED_PATH

    def describe(self) -> str:
        return f"HTTP GET {self.path} answers 2xx and GET {self.proxied} reaches the node behind it"

    def check(self, backend: Backend, node: Node, replica: int, timeout: float) -> ProbeResult:
        deadline = time.monotonic() + timeout
        try:
            ep = backend.endpoint(node.name, None, replica)
            own = _http_get(ep, self.path, deadline - time.monotonic())
        except Exception as exc:
            return ProbeResult(False, f"GET {self.path}: {type(exc).__name__}: {exc}")
        if not 200 <= own < 300:
            return ProbeResult(False, f"GET {self.path} -> HTTP {own}")
        left = deadline - time.monotonic()
        if left <= 0:
            return ProbeResult(False, f"GET {self.path} -> {own}, no time left to ask for {self.proxied}")
        try:
            status = _http_get(ep, self.proxied, left)
        except Exception as exc:
            return ProbeResult(False, f"GET {self.proxied} through the ingress: {type(exc).__name__}: {exc}")
        if status in UPSTREAM_DOWN:
            return ProbeResult(
                False,
                f"GET {self.proxied} through the ingress -> HTTP {status}: the node behind it is not reached",
            )
        return ProbeResult(
            True, f"GET {self.path} -> {own}; GET {self.proxied} through the ingress -> {status}"
        )


@dataclass(frozen=True)
class TcpProbe:
    """Connect, then make sure the peer does not hang up at once (see ``check``)."""

    port: int | None = None  # container port; None = the node's first port

    def describe(self) -> str:
        return f"TCP port {self.port or 'default'} accepts connections"

    def check(self, backend: Backend, node: Node, replica: int, timeout: float) -> ProbeResult:
        try:
            ep = backend.endpoint(node.name, self.port, replica)
            with socket.create_connection((ep.host, ep.port), timeout=max(timeout, 0.01)) as sock:
                # Docker's userland port proxy accepts on a published port even when nothing
                # listens inside the container, then closes at once: an immediate EOF is "not
                # yet"; silence (the server waits for the client) or a greeting is "ready".
                sock.settimeout(min(CLOSE_GRACE, max(timeout, 0.01)))
                try:
                    if sock.recv(1, socket.MSG_PEEK) == b"":
                        return ProbeResult(False, f"{ep.host}:{ep.port} closed the connection at once")
                except TimeoutError:
                    pass
                return ProbeResult(True, f"connected to {ep.host}:{ep.port}")
        except Exception as exc:
            return ProbeResult(False, f"TCP connect: {type(exc).__name__}: {exc}")


@dataclass(frozen=True)
class CommandProbe:
    argv: tuple[str, ...]

    def describe(self) -> str:
        return f"command {shlex.join(self.argv)} exits 0"

    def check(self, backend: Backend, node: Node, replica: int, timeout: float) -> ProbeResult:
        try:
            result = backend.exec(node.name, self.argv, timeout=max(timeout, 0.01), replica=replica)
        except Exception as exc:
            return ProbeResult(False, f"{shlex.join(self.argv)}: {type(exc).__name__}: {exc}")
        if result.exit_code == 0:
            return ProbeResult(True, "exit code 0")
        last = result.output.strip().splitlines()[-1:] or [""]
        return ProbeResult(False, f"{shlex.join(self.argv)} exited {result.exit_code}: {last[0]}")


@dataclass(frozen=True)
class LogProbe:
    pattern: str

    def describe(self) -> str:
        return f"log line matching /{self.pattern}/"

    def check(self, backend: Backend, node: Node, replica: int, timeout: float) -> ProbeResult:
        try:
            text = backend.logs(node.name)
        except Exception as exc:
            return ProbeResult(False, f"reading logs: {type(exc).__name__}: {exc}")
        if re.search(self.pattern, text, re.MULTILINE):
            return ProbeResult(True, f"log matched /{self.pattern}/")
        return ProbeResult(False, f"no log line matches /{self.pattern}/ yet")


@dataclass(frozen=True)
class ProcessProbe:
    """For nodes without a healthcheck: ready once the replica's process is running."""

    def describe(self) -> str:
        return "process running"

    def check(self, backend: Backend, node: Node, replica: int, timeout: float) -> ProbeResult:
        for s in backend.status():
            if s.node == node.name and s.replica == replica:
                return ProbeResult(s.state == "running", f"state {s.state}")
        return ProbeResult(False, "replica not listed by the backend")


@dataclass(frozen=True)
class MysqlProbe:
    """For kind ``mysql`` (the default of ``mysql``/``mariadb`` infrastructure): a real login
    with the credentials the node's environment gives the image (``health.clients.mysql_login``);
    a listening port is not enough, the first-start settings must have been applied."""

    port: int | None = None  # container port; None = the node's first port

    def describe(self) -> str:
        return "MySQL login with the node's MYSQL_* credentials"

    def check(self, backend: Backend, node: Node, replica: int, timeout: float) -> ProbeResult:
        try:
            ep = backend.endpoint(node.name, self.port, replica)
            return ProbeResult(True, mysql_login(ep.host, ep.port, max(timeout, 0.01), node.environment))
        except ClientError as exc:
            return ProbeResult(False, str(exc))
        except Exception as exc:
            return ProbeResult(False, f"MySQL login: {type(exc).__name__}: {exc}")


class HeartbeatSource(Protocol):
    """Where bannou heartbeats are read (messaging's Redis store); ``healthy`` raises when the
    store cannot be read."""

    def describe(self) -> str: ...

    def healthy(self, app_id: str) -> bool: ...


@dataclass(frozen=True)
class HeartbeatProbe:
    """For kind ``heartbeat``: the node's app id has a healthy, unexpired heartbeat."""

    source: HeartbeatSource

    def describe(self) -> str:
        return f"a healthy bannou heartbeat in {self.source.describe()}"

    def check(self, backend: Backend, node: Node, replica: int, timeout: float) -> ProbeResult:
        try:
            ok = self.source.healthy(node.app_id)
        except Exception as exc:
            return ProbeResult(False, f"{self.source.describe()} not answering: {exc!r}")
        return ProbeResult(ok, "heartbeat healthy" if ok else f"no healthy heartbeat from {node.app_id!r}")


ProbeFactory = Callable[[Node], Probe]
_registry: dict[str, ProbeFactory] = {}


def register_probe(kind: str, factory: ProbeFactory) -> None:
    """Let a higher layer provide the probe for a healthcheck kind (e.g. ``heartbeat``)."""
    _registry[kind] = factory


def probe_for(node: Node) -> Probe:
    hc = node.healthcheck
    if hc is None or hc.kind == "none":
        return ProcessProbe()
    if hc.kind in _registry:
        return _registry[hc.kind](node)
    if hc.kind == "http":
        path = str(hc.target or "/health")
        if checks_upstream(node):
            return IngressProbe(path)
        return HttpProbe(path)
    if hc.kind == "tcp":
        return TcpProbe(_port(hc.target))
    if hc.kind == "command":
        argv = tuple(shlex.split(hc.target)) if isinstance(hc.target, str) else tuple(map(str, hc.target))
        return CommandProbe(argv)
    if hc.kind == "log":
        return LogProbe(str(hc.target))
    if hc.kind == "mysql":
        return MysqlProbe(_port(hc.target))
    # heartbeat without a registered probe: the node's health endpoint when it has one
    return HttpProbe("/health") if node.http_port is not None else ProcessProbe()


def _port(target: object) -> int | None:
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.strip().isdigit():
        return int(target)
    return None
