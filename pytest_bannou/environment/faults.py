"""Faults a test injected into the current environment (``Environment.kill``/``pause``/
``disconnect``), remembered so they are undone before the next test and at teardown.

The manager owns one ``ActiveFaults``; the backend does the work (``Backend.kill_node`` ...).
Undoing: paused nodes are resumed, disconnected ones reconnected, killed ones that are not
running again are restarted, then all of them are waited for (an engine that restarts on its
own, Swarm or Kubernetes, only needs the wait).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..backends.base import Backend

#: the undo of each fault that lasts: the backend method that ends it
UNDO = {"pause": "resume_node", "disconnect": "reconnect_node"}
ENDS = {"resume": "pause", "reconnect": "disconnect"}


@dataclass(frozen=True)
class FaultEvent:
    """One fault made or undone: what the record and results.json list."""

    action: str  # kill, pause, resume, disconnect, reconnect
    node: str
    replica: int | None = None
    at: float = field(default_factory=time.time)  # epoch seconds
    undo: bool = False  # made by the plugin (before the next test, at teardown), not the test

    def to_json(self) -> dict[str, object]:
        return {
            "action": self.action,
            "node": self.node,
            "replica": self.replica,
            "at": self.at,
            "undo": self.undo,
        }

    def describe(self, env_key: str) -> str:
        which = f"[{self.replica}]" if self.replica is not None else ""
        return f"fault: {self.action} {self.node}{which} on {env_key}" + (" (undo)" if self.undo else "")


class ActiveFaults:
    """The faults in force on the current environment: node names per lasting fault, and the
    nodes killed since the last undo."""

    def __init__(self) -> None:
        self.nodes: dict[str, set[str]] = {"pause": set(), "disconnect": set(), "kill": set()}

    def __bool__(self) -> bool:
        return any(self.nodes.values())

    def summary(self) -> str:
        parts = [f"{fault} {', '.join(sorted(nodes))}" for fault, nodes in self.nodes.items() if nodes]
        return "; ".join(parts)

    def made(self, action: str, node: str) -> None:
        """Remember ``action`` on ``node`` (an undo action forgets its fault)."""
        if action in ENDS:
            self.nodes[ENDS[action]].discard(node)
        elif action in self.nodes:
            self.nodes[action].add(node)

    def clear(self) -> None:
        for nodes in self.nodes.values():
            nodes.clear()

    def resume_paused(self, backend: Backend, log: list[dict[str, object]] | None = None) -> None:
        """Teardown: a paused process or container must not hold up its removal. Best effort."""
        for node in sorted(self.nodes["pause"]):
            with contextlib.suppress(Exception):
                backend.resume_node(node)
                if log is not None:
                    log.append(FaultEvent("resume", node, undo=True).to_json())
        self.clear()

    def undo(self, backend: Backend, log: list[dict[str, object]]) -> list[str]:
        """Before the next test: end every fault; returns the nodes to wait for."""
        touched: set[str] = set()
        for fault, method in UNDO.items():
            for node in sorted(self.nodes[fault]):
                getattr(backend, method)(node)
                log.append(
                    FaultEvent("resume" if fault == "pause" else "reconnect", node, undo=True).to_json()
                )
                touched.add(node)
        killed = sorted(self.nodes["kill"])
        down = {s.node for s in backend.status() if s.node in killed and s.state == "exited"}
        for node in killed:
            if node in down:  # the engine does not restart it by itself (local, compose)
                backend.restart(node)
                log.append(FaultEvent("restart", node, undo=True).to_json())
            touched.add(node)
        self.clear()
        return sorted(touched)


#: the backend method of each action a test may take
METHODS = {
    "kill": "kill_node",
    "pause": "pause_node",
    "resume": "resume_node",
    "disconnect": "disconnect_node",
    "reconnect": "reconnect_node",
}


def make(backend: Backend, event: FaultEvent) -> None:
    """Do ``event`` through the backend (``BackendUnavailable`` where the engine cannot)."""
    if event.action == "kill":
        backend.kill_node(event.node, event.replica)
    else:
        getattr(backend, METHODS[event.action])(event.node)


def undo_all(
    faults: ActiveFaults,
    backend: Backend,
    log: list[dict[str, object]],
    wait: Callable[[list[str]], None],
    say: Callable[[str, bool], None],
    env_key: str,
) -> bool:
    """End every fault on the current environment and wait for its nodes; False (reported)
    when that failed, so the caller deploys the environment again."""
    if not faults:
        return True
    start = time.monotonic()
    say(f"undoing faults on {env_key}: {faults.summary()}", False)
    try:
        wait(faults.undo(backend, log))
    except Exception as exc:
        say(
            f"FAILED ({getattr(exc, 'message', None) or f'{type(exc).__name__}: {exc}'}); deploying it again",
            True,
        )
        return False
    say(f"ready in {time.monotonic() - start:.1f} s", True)
    return True


def inject(
    faults: ActiveFaults,
    backend: Backend,
    event: FaultEvent,
    log: list[dict[str, object]],
    say: Callable[[str, bool], None],
    env_key: str,
) -> None:
    """A fault a test asked for: done by the backend, remembered until undone, recorded in
    ``log`` (the environment record's ``faults``) and reported as a ``bannou: fault: ...`` line."""
    say(event.describe(env_key), False)
    try:
        make(backend, event)
    except BaseException as exc:
        say(f"FAILED ({getattr(exc, 'message', None) or f'{type(exc).__name__}: {exc}'})", True)
        raise
    faults.made(event.action, event.node)
    log.append(event.to_json())
    say("done", True)
