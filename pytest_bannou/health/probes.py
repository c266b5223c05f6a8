"""Readiness: is every node of a deployed topology ready to serve tests?

One ``Probe`` protocol (like testcontainers' wait strategies) with an implementation per
healthcheck kind: ``HttpProbe`` (2xx on a path), ``TcpProbe`` (a connection is accepted),
``CommandProbe`` (``backend.exec`` exits 0), ``LogProbe`` (a regex appears in the node's logs) and
``ProcessProbe`` (the replicas are running). ``probe_for(node)`` picks one from the node's
healthcheck; ``register_probe`` lets a higher layer add kinds (the bannou heartbeat lives in
``events``). ``wait_ready`` waits for all nodes in parallel, fails fast when a replica exits and
never waits past its deadline.
"""

from __future__ import annotations

import http.client
import re
import shlex
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from ..backends.base import Backend
from ..errors import NodeNotReady
from ..topology.model import HealthCheck, Node, Topology

FAST_POLL = 0.02  # readiness wants the first ready moment; the healthcheck interval caps this
STATUS_POLL = 0.1  # how often wait_ready asks the backend whether a replica exited
LOG_TAIL = 40
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
            ep = backend.endpoint(node.name, self.port, replica)
            conn = http.client.HTTPConnection(ep.host, ep.port, timeout=max(timeout, 0.01))
            try:
                conn.request("GET", self.path)
                resp = conn.getresponse()
                resp.read()
            finally:
                conn.close()
        except Exception as exc:  # any failure is "not ready yet", with its reason
            return ProbeResult(False, f"GET {self.path}: {type(exc).__name__}: {exc}")
        if 200 <= resp.status < 300:
            return ProbeResult(True, f"GET {self.path} -> {resp.status}")
        return ProbeResult(False, f"GET {self.path} -> HTTP {resp.status}")


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
        return HttpProbe(str(hc.target or "/health"))
    if hc.kind == "tcp":
        return TcpProbe(_port(hc.target))
    if hc.kind == "command":
        argv = tuple(shlex.split(hc.target)) if isinstance(hc.target, str) else tuple(map(str, hc.target))
        return CommandProbe(argv)
    if hc.kind == "log":
        return LogProbe(str(hc.target))
    # heartbeat without a registered probe: the node's health endpoint when it has one
    return HttpProbe("/health") if node.http_port is not None else ProcessProbe()


def _port(target: object) -> int | None:
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.strip().isdigit():
        return int(target)
    return None


@dataclass
class _NodeWait:
    node: Node
    probe: Probe
    hc: HealthCheck
    ready_at: float | None = None
    last_error: str = "no probe has run yet"
    failure: NodeNotReady | None = None


def wait_ready(
    backend: Backend,
    topology: Topology,
    deadline: float,
    nodes: Sequence[str] | None = None,
    on_progress: Callable[[str, float], None] | None = None,
    poll: float = FAST_POLL,
) -> dict[str, float]:
    """Wait until every replica of ``nodes`` (default: all) passes its probe.

    Returns seconds-to-ready per node. ``deadline`` is a ``time.monotonic()`` value. Probes run
    every ``min(healthcheck.interval, poll)`` seconds, each limited to ``healthcheck.timeout``;
    after ``start_period`` a node gets ``retries`` intervals before it counts as unhealthy.
    Raises ``NodeNotReady`` as soon as a replica exits, when a node is unhealthy, or at the
    deadline (with the last probe error and the node's last log lines).
    """
    start = time.monotonic()
    names = list(nodes) if nodes is not None else list(topology.node_names)
    waits = {}
    for name in names:
        node = topology.node(name)
        waits[name] = _NodeWait(node, probe_for(node), node.healthcheck or HealthCheck(kind="none"))
    stop = threading.Event()
    lock = threading.Lock()
    done = threading.Condition(lock)

    def fail(w: _NodeWait, reason: str) -> None:
        with lock:
            if w.failure is None:
                w.failure = NodeNotReady(
                    topology.preset, w.node.name, reason, _logs(backend, w.node), backend.name
                )
            done.notify_all()

    def run(w: _NodeWait) -> None:
        try:
            probe_until_ready(w)
        except Exception as exc:  # a broken probe must fail this node, not hang the wait
            fail(w, f"readiness probe {w.probe.describe()!r} failed: {type(exc).__name__}: {exc}")

    def probe_until_ready(w: _NodeWait) -> None:
        hc = w.hc
        gap = max(0.005, min(hc.interval or poll, poll))
        own_deadline = deadline
        if hc.retries > 0 and hc.kind != "none":
            own_deadline = min(deadline, start + hc.start_period + hc.retries * max(hc.interval, gap))
        pending = list(range(w.node.replicas))
        while pending and not stop.is_set():
            timeout = min(hc.timeout or 5.0, max(0.0, deadline - time.monotonic()))
            for replica in list(pending):
                result = w.probe.check(backend, w.node, replica, timeout)
                if result.ok:
                    pending.remove(replica)
                else:
                    w.last_error = f"replica {replica}: {result.detail}"
            if not pending:
                break
            now = time.monotonic()
            if now >= own_deadline:
                if own_deadline < deadline:
                    reason = (
                        f"unhealthy: {w.probe.describe()} failed for start period {hc.start_period}s + "
                        f"{hc.retries} retries x {hc.interval}s; last error: {w.last_error}"
                    )
                else:
                    reason = (
                        f"not ready after {now - start:.1f}s (deadline); last probe error: {w.last_error}"
                    )
                fail(w, reason)
                return
            stop.wait(min(gap, max(0.0, own_deadline - now)))
        if not pending:
            with lock:
                w.ready_at = time.monotonic() - start
                done.notify_all()
            if on_progress is not None:
                on_progress(w.node.name, w.ready_at)

    threads = [
        threading.Thread(target=run, args=(w,), daemon=True, name=f"ready-{n}") for n, w in waits.items()
    ]
    for t in threads:
        t.start()
    try:
        while True:
            with lock:
                failed = [w for w in waits.values() if w.failure is not None]
                waiting = [w for w in waits.values() if w.ready_at is None and w.failure is None]
            if failed:
                raise failed[0].failure
            if not waiting:
                return {n: w.ready_at for n, w in waits.items() if w.ready_at is not None}
            _check_exits(backend, waiting, fail)
            if time.monotonic() > deadline + STATUS_POLL * 5:  # a probe overran its timeout
                for w in waiting:
                    fail(w, f"not ready by the deadline; last probe error: {w.last_error}")
                continue
            with lock:
                done.wait(STATUS_POLL)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=1.0)


def _check_exits(backend: Backend, waiting: list[_NodeWait], fail: Callable[[_NodeWait, str], None]) -> None:
    try:
        statuses = backend.status()
    except Exception:  # a status hiccup is not a node failure; probes keep running
        return
    by_node = {w.node.name: w for w in waiting}
    for s in statuses:
        w = by_node.get(s.node)
        if w is not None and s.state == "exited":
            code = "" if s.exit_code is None else f" with code {s.exit_code}"
            fail(w, f"replica {s.replica} exited{code} before it became ready ({w.probe.describe()})")


def _logs(backend: Backend, node: Node) -> str:
    try:
        return backend.logs(node.name, tail=LOG_TAIL)
    except Exception as exc:
        return f"(logs unavailable: {exc})"
