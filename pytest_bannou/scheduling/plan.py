"""Batching: group collected tests by environment into a plan of groups and transitions.

Every environment switch costs node starts and stops (``topology.diff(a, b).cost``), so the
tests that need the same environment run together, in the order ``scheduling.order`` finds
(smallest total cost; exact up to ``exhaustive_limit`` environments, greedy beyond).

Pure module: no pytest, no I/O. The plugin passes only the selected items, so an environment
whose tests are all deselected (``-k``, ``-m``, ``--deselect``, ``--lf``) is never in the plan.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .._support.masking import mask_data, mask_text, topology_secrets
from ..topology.diff import Transition, diff
from ..topology.model import Topology
from .order import cost_of, greedy_order, optimal_order, order_environments

__all__ = [
    "Plan",
    "PlanGroup",
    "PlanItem",
    "cost_of",
    "greedy_order",
    "make_plan",
    "optimal_order",
    "order_environments",
]


@dataclass(frozen=True, slots=True)
class PlanItem:
    """One selected test: its pytest node id and the environment it needs (None: none)."""

    id: str
    env: str | None


@dataclass(frozen=True)
class PlanGroup:
    """A run of tests that share one activation of an environment."""

    env: str
    topology: Topology
    item_ids: tuple[str, ...]
    transition: Transition  # from the previous group's topology (or from nothing) to this one

    @property
    def node_starts(self) -> int:
        return self.transition.node_starts

    @property
    def preset(self) -> str:
        return self.topology.preset


@dataclass(frozen=True)
class Plan:
    """The run order and what each environment switch costs; printable before any deploy."""

    groups: tuple[PlanGroup, ...]
    order: tuple[str, ...]
    batched: bool
    teardown: Transition  # from the last group's topology to nothing

    @property
    def deploys(self) -> int:
        """Environment activations (one per group)."""
        return len(self.groups)

    @property
    def node_starts(self) -> int:
        return sum(g.node_starts for g in self.groups)

    @property
    def transition_cost(self) -> int:
        """Node starts + stops over the whole session, final teardown included."""
        return sum(g.transition.cost for g in self.groups) + self.teardown.cost

    @property
    def unscheduled(self) -> int:
        """Tests that need no environment (they keep their place in ``order``)."""
        return len(self.order) - sum(len(g.item_ids) for g in self.groups)

    def to_text(self) -> str:
        mode = "batched by environment" if self.batched else "pytest order (--bannou-no-batch)"
        distinct = len({g.env for g in self.groups})
        lines = [
            f"bannou plan: {len(self.order)} tests, {distinct} environments, {mode}",
        ]
        for i, g in enumerate(self.groups, 1):
            nodes = len(g.topology.nodes)
            tests = len(g.item_ids)
            label = g.env if g.env == g.preset else f"{g.env} (preset {g.preset})"
            lines.append(
                f"{i}. {label} ({nodes} node{'s' * (nodes != 1)}, {tests} test{'s' * (tests != 1)}): "
                f"{g.transition.summary()}"
            )
        if self.groups:
            lines.append(f"teardown: {self.teardown.summary()}")
        if self.unscheduled:
            lines.append(f"tests needing no environment, left in place: {self.unscheduled}")
        lines.append(
            f"deploys: {self.deploys}, node starts: {self.node_starts}, "
            f"transition cost: {self.transition_cost} (node starts + stops, teardown included)"
        )
        return mask_text("\n".join(lines), self._secrets())

    def _secrets(self) -> set[str]:
        """Secret environment values of the plan's topologies: never printed (``secrets``)."""
        return topology_secrets(g.topology for g in self.groups)

    def to_json(self) -> dict:
        return mask_data(self._to_json(), self._secrets())

    def _to_json(self) -> dict:
        return {
            "batched": self.batched,
            "groups": [
                {
                    "env": g.env,
                    "preset": g.preset,
                    "preset_hash": g.topology.preset_hash,
                    "tests": list(g.item_ids),
                    "transition": _actions(g.transition),
                    "node_starts": g.node_starts,
                }
                for g in self.groups
            ],
            "teardown": _actions(self.teardown),
            "deploys": self.deploys,
            "node_starts": self.node_starts,
            "transition_cost": self.transition_cost,
            "order": list(self.order),
        }


def _actions(t: Transition) -> dict[str, str]:
    return {c.name: c.action.value for c in t.changes}


def make_plan(
    items: Sequence[PlanItem],
    topologies: Mapping[str, Topology],
    *,
    batch: bool = True,
    start: Topology | None = None,
    exhaustive_limit: int = 8,
) -> Plan:
    """Group ``items`` by environment and order them; ``batch=False`` keeps pytest's order.

    Items without an environment keep their index in ``order``; the others fill the remaining
    slots. Without batching, every run of consecutive items of one environment (items that need
    none do not interrupt a run: the deployed environment simply stays) is its own activation.
    """
    ids = [it.id for it in items]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise ValueError(f"duplicate test id {dup!r} in the plan input; pytest node ids are unique")
    missing = sorted({it.env for it in items if it.env is not None and it.env not in topologies})
    if missing:
        raise KeyError(f"no topology for environment(s) {', '.join(missing)}; known: {', '.join(topologies)}")

    runs: list[tuple[str, list[str]]] = []
    if batch:
        by_env: dict[str, list[str]] = {}
        for it in items:
            if it.env is not None:
                by_env.setdefault(it.env, []).append(it.id)
        present = {env: topologies[env] for env in by_env}  # first appearance order
        for env in order_environments(present, start=start, exhaustive_limit=exhaustive_limit):
            runs.append((env, by_env[env]))
    else:
        for it in items:
            if it.env is None:
                continue
            if runs and runs[-1][0] == it.env:
                runs[-1][1].append(it.id)
            else:
                runs.append((it.env, [it.id]))

    groups: list[PlanGroup] = []
    transitions: dict[tuple[str | None, str], Transition] = {}  # unbatched plans repeat pairs
    previous: str | None = None
    current = start
    for env, run_ids in runs:
        topology = topologies[env]
        if (previous, env) not in transitions:
            transitions[previous, env] = diff(current, topology)
        groups.append(PlanGroup(env, topology, tuple(run_ids), transitions[previous, env]))
        previous, current = env, topology

    env_ids = iter(i for g in groups for i in g.item_ids)
    order = tuple(it.id if it.env is None else next(env_ids) for it in items)
    return Plan(tuple(groups), order, batch, diff(current, None))
