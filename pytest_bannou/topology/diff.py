"""The diff between two resolved topologies: per node keep / start / stop / recreate / scale.

``diff`` turns two topologies into a ``Transition`` that says, per node, what a backend has to
do to go from one to the other; its ``cost`` (node starts + stops) is what batching minimises.
Pure: no I/O, no engine knowledge.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .model import Node, Topology

__all__ = ["Action", "NodeChange", "Transition", "apply", "diff"]


class Action(StrEnum):
    KEEP = "keep"
    START = "start"
    STOP = "stop"
    RECREATE = "recreate"
    SCALE = "scale"


@dataclass(frozen=True)
class NodeChange:
    name: str
    action: Action
    old: Node | None
    new: Node | None

    @property
    def starts(self) -> int:
        """Replica processes/containers this change starts."""
        if self.action in (Action.START, Action.RECREATE):
            return self.new.replicas if self.new else 0
        if self.action is Action.SCALE and self.new and self.old:
            return max(0, self.new.replicas - self.old.replicas)
        return 0

    @property
    def stops(self) -> int:
        if self.action in (Action.STOP, Action.RECREATE):
            return self.old.replicas if self.old else 0
        if self.action is Action.SCALE and self.new and self.old:
            return max(0, self.old.replicas - self.new.replicas)
        return 0


@dataclass(frozen=True)
class Transition:
    """What it takes to go from ``old`` to ``new``; ``old`` None means a fresh deploy."""

    old: Topology | None
    new: Topology | None
    changes: tuple[NodeChange, ...]

    def of(self, *actions: Action) -> tuple[NodeChange, ...]:
        return tuple(c for c in self.changes if c.action in actions)

    @property
    def is_noop(self) -> bool:
        return all(c.action is Action.KEEP for c in self.changes)

    @property
    def cost(self) -> int:
        """Node starts + stops: the number that batching minimises."""
        return sum(c.starts + c.stops for c in self.changes)

    @property
    def node_starts(self) -> int:
        return sum(c.starts for c in self.changes)

    def summary(self) -> str:
        parts = []
        for action in Action:
            names = [c.name for c in self.changes if c.action is action]
            if names and action is not Action.KEEP:
                parts.append(f"{action.value} {', '.join(names)}")
        return "; ".join(parts) or "no change"


def diff(old: Topology | None, new: Topology | None) -> Transition:
    """Per node keep / start / stop / recreate / scale, in a deterministic order (new's order,
    then nodes only ``old`` has)."""
    old_nodes = {n.name: n for n in old.nodes} if old else {}
    new_nodes = {n.name: n for n in new.nodes} if new else {}
    changes: list[NodeChange] = []
    for name, n in new_nodes.items():
        o = old_nodes.get(name)
        if o is None:
            changes.append(NodeChange(name, Action.START, None, n))
        elif o.spec_hash() != n.spec_hash():
            changes.append(NodeChange(name, Action.RECREATE, o, n))
        elif o.replicas != n.replicas:
            changes.append(NodeChange(name, Action.SCALE, o, n))
        else:
            changes.append(NodeChange(name, Action.KEEP, o, n))
    for name, o in old_nodes.items():
        if name not in new_nodes:
            changes.append(NodeChange(name, Action.STOP, o, None))
    return Transition(old, new, tuple(changes))


def apply(old: Topology | None, transition: Transition) -> tuple[Node, ...]:
    """The node set that results from applying ``transition`` to ``old`` (used by property tests
    and by backends that track what they run)."""
    nodes = {n.name: n for n in old.nodes} if old else {}
    for c in transition.changes:
        if c.action is Action.STOP:
            nodes.pop(c.name, None)
        elif c.new is not None:
            nodes[c.name] = c.new
    order = [n.name for n in transition.new.nodes] if transition.new else []
    return tuple(nodes[name] for name in order if name in nodes)
