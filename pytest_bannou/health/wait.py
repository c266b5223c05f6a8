"""Waiting with a deadline: one poll loop, and readiness of a deployed topology built on it.

``poll_until`` is the one loop every wait in ``health`` uses (as testcontainers' ``waiting_utils``
gives every wait strategy one retry loop): call a check until it has an answer, sleep between
calls, never past the deadline. ``wait_ready`` waits for all nodes of a topology in parallel (one
poll per node over its probe, one poll watching for exited replicas), fails fast when a replica
exits and never waits past its deadline; then the backend's ``wait_routed`` (Kubernetes: the
Services) gets what is left of it, at least ``ROUTE_GRACE_S``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ..backends.base import Backend
from ..errors import NodeNotReady
from ..topology.model import HealthCheck, Node, Topology
from .probes import Probe, probe_for

FAST_POLL = 0.02  # readiness wants the first ready moment; the healthcheck interval caps this
STATUS_POLL = 0.1  # how often wait_ready asks the backend whether a replica exited
LOG_TAIL = 40

T = TypeVar("T")


#: what ``wait_routed`` gets at least after the probes passed (Kubernetes: the endpoints
#: controller and kube-proxy follow a pod's readiness within seconds)
ROUTE_GRACE_S = 15.0


def poll_until(
    check: Callable[[], T | None],
    deadline: float,
    interval: float,
    on_timeout: Callable[[], T],
    *,
    sleep: Callable[[float], Any] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Call ``check`` until it returns something other than None and return that; between
    calls sleep ``interval`` (never past ``deadline``, a ``clock()`` value). At the deadline,
    the answer is ``on_timeout()`` (which may raise). ``check`` always runs at least once."""
    while True:
        result = check()
        if result is not None:
            return result
        remaining = deadline - clock()
        if remaining <= 0:
            return on_timeout()
        sleep(min(interval, remaining))


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
    every ``min(healthcheck.interval, poll)`` seconds, each limited to
    ``healthcheck.timeout``; after ``start_period`` a node gets ``retries`` intervals before it
    counts as unhealthy. Raises ``NodeNotReady`` as soon as a replica exits, when a node is
    unhealthy, or at the deadline (with the last probe error and the node's last log lines).
    Then ``backend.wait_routed``, until the deadline but at least ``ROUTE_GRACE_S`` (a node ready
    at the deadline is not failed for the moment its route takes); it raises ``DeployError``.
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

        def check() -> bool | None:
            if stop.is_set():
                return False
            timeout = min(hc.timeout or 5.0, max(0.0, deadline - time.monotonic()))
            for replica in list(pending):
                result = w.probe.check(backend, w.node, replica, timeout)
                if result.ok:
                    pending.remove(replica)
                else:
                    w.last_error = f"replica {replica}: {result.detail}"
            return True if not pending else None

        def timed_out() -> bool:
            if own_deadline < deadline:
                reason = (
                    f"unhealthy: {w.probe.describe()} failed for start period {hc.start_period}s + "
                    f"{hc.retries} retries x {hc.interval}s; last error: {w.last_error}"
                )
            else:
                reason = (
                    f"not ready after {time.monotonic() - start:.1f}s (deadline); "
                    f"last probe error: {w.last_error}"
                )
            fail(w, reason)
            return False

        if poll_until(check, own_deadline, gap, timed_out, sleep=stop.wait):
            with lock:
                w.ready_at = time.monotonic() - start
                done.notify_all()
            if on_progress is not None:
                on_progress(w.node.name, w.ready_at)

    def settled() -> dict[str, float] | None:
        with lock:
            failed = [w for w in waits.values() if w.failure is not None]
            waiting = [w for w in waits.values() if w.ready_at is None and w.failure is None]
        if failed:
            raise failed[0].failure
        if not waiting:
            return {n: w.ready_at for n, w in waits.items() if w.ready_at is not None}
        _check_exits(backend, waiting, fail)
        return None

    def overran() -> dict[str, float]:
        """A probe overran its timeout: whoever still waits failed at the deadline."""
        with lock:
            waiting = [w for w in waits.values() if w.ready_at is None and w.failure is None]
        for w in waiting:
            fail(w, f"not ready by the deadline; last probe error: {w.last_error}")
        result = settled()
        assert result is not None  # every node is ready or failed now (a failure raised)
        return result

    def wait_for_news(seconds: float) -> None:
        with lock:
            done.wait(seconds)

    threads = [
        threading.Thread(target=run, args=(w,), daemon=True, name=f"ready-{n}") for n, w in waits.items()
    ]
    for t in threads:
        t.start()
    try:
        ready = poll_until(settled, deadline + STATUS_POLL * 5, STATUS_POLL, overran, sleep=wait_for_news)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=1.0)
    backend.wait_routed(topology, names, max(deadline, time.monotonic() + ROUTE_GRACE_S))
    return ready


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
