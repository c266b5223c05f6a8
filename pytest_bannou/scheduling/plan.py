"""Batching: group collected tests by environment into a plan of groups and transitions.

Every environment switch costs node starts and stops (``topology.diff(a, b).cost``), so the
tests that need the same environment run together, in the order ``scheduling.order`` finds
(smallest total cost; exact up to ``exhaustive_limit`` environments, greedy beyond).

Environments on several backends (``--bannou-backend=auto`` picks one per preset): the plan
runs each backend's environments together (a switch tears the last one down and deploys from
nothing); environments whose preset cannot run on the session's backend are listed as skipped.

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
    "PlanSkip",
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
    backend: str = ""  # the backend it runs on ("": not known to the plan)
    released: Transition | None = None  # the previous backend's environment torn down first

    @property
    def node_starts(self) -> int:
        return self.transition.node_starts

    @property
    def preset(self) -> str:
        return self.topology.preset


@dataclass(frozen=True)
class PlanSkip:
    """An environment whose tests are skipped: its preset cannot run on the backend."""

    env: str
    item_ids: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class Plan:
    """The run order and what each environment switch costs; printable before any deploy."""

    groups: tuple[PlanGroup, ...]
    order: tuple[str, ...]
    batched: bool
    teardown: Transition  # from the last group's topology to nothing
    skipped: tuple[PlanSkip, ...] = ()

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
        released = sum(g.released.cost for g in self.groups if g.released is not None)
        return sum(g.transition.cost for g in self.groups) + released + self.teardown.cost

    @property
    def unscheduled(self) -> int:
        """Tests that need no environment (they keep their place in ``order``)."""
        grouped = sum(len(g.item_ids) for g in self.groups) + sum(len(s.item_ids) for s in self.skipped)
        return len(self.order) - grouped

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
            label += f" on {g.backend}" if g.backend else ""
            if g.released is not None:
                lines.append(f"teardown before the switch to {g.backend}: {g.released.summary()}")
            lines.append(
                f"{i}. {label} ({nodes} node{'s' * (nodes != 1)}, {tests} test{'s' * (tests != 1)}): "
                f"{g.transition.summary()}"
            )
        if self.groups:
            lines.append(f"teardown: {self.teardown.summary()}")
        for skip in self.skipped:
            tests = len(skip.item_ids)
            lines.append(f"skipped: {skip.env} ({tests} test{'s' * (tests != 1)}): {skip.reason}")
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
                    **({"backend": g.backend} if g.backend else {}),
                    "preset_hash": g.topology.preset_hash,
                    "tests": list(g.item_ids),
                    "transition": _actions(g.transition),
                    "node_starts": g.node_starts,
                    **({"released": _actions(g.released)} if g.released is not None else {}),
                }
                for g in self.groups
            ],
            "skipped": [{"env": s.env, "tests": list(s.item_ids), "reason": s.reason} for s in self.skipped],
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
    backends: Mapping[str, str] | None = None,
    skipped: Mapping[str, str] | None = None,
) -> Plan:
    """Group ``items`` by environment and order them; ``batch=False`` keeps pytest's order.

    Items without an environment keep their index in ``order``; the others fill the remaining
    slots. Without batching, every run of consecutive items of one environment (items that need
    none do not interrupt a run: the deployed environment simply stays) is its own activation.
    ``backends`` (env -> backend) groups the environments by backend; ``skipped`` (env -> why)
    environments are not deployed, their items keep their place like those that need none.
    """
    backend_of = (backends or {}).get
    skips = skipped or {}
    skipped_ids: dict[str, list[str]] = {}
    for it in items:
        if it.env in skips:
            skipped_ids.setdefault(it.env, []).append(it.id)
    planned = [it if it.env not in skips else PlanItem(it.id, None) for it in items]
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
        for it in planned:
            if it.env is not None:
                by_env.setdefault(it.env, []).append(it.id)
        parts: dict[str, dict[str, Topology]] = {}  # backend -> its environments, first appearance order
        for env in by_env:
            parts.setdefault(backend_of(env, ""), {})[env] = topologies[env]
        for i, present in enumerate(parts.values()):
            first = start if i == 0 else None
            for env in order_environments(present, start=first, exhaustive_limit=exhaustive_limit):
                runs.append((env, by_env[env]))
    else:
        for it in planned:
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
        backend = backend_of(env, "")
        released = None
        if groups and backend != groups[-1].backend:  # another engine: the last one goes first
            released, previous, current = diff(current, None), None, None
        if (previous, env) not in transitions:
            transitions[previous, env] = diff(current, topology)
        groups.append(PlanGroup(env, topology, tuple(run_ids), transitions[previous, env], backend, released))
        previous, current = env, topology

    env_ids = iter(i for g in groups for i in g.item_ids)
    order = tuple(it.id if it.env is None else next(env_ids) for it in planned)
    skips_out = tuple(PlanSkip(env, tuple(ids), skips[env]) for env, ids in skipped_ids.items())
    return Plan(tuple(groups), order, batch, diff(current, None), skips_out)
