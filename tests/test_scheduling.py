"""Batching: grouping, ordering by transition cost, plan output."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_bannou.scheduling.plan import (
    Plan,
    PlanItem,
    cost_of,
    greedy_order,
    make_plan,
    optimal_order,
    order_environments,
)
from pytest_bannou.topology.diff import diff
from pytest_bannou.topology.model import Node, Topology


def node(name: str, services: tuple[str, ...] = ("svc",), replicas: int = 1) -> Node:
    return Node(name=name, app_id=name, services=services, replicas=replicas)


def topo(preset: str, *nodes: Node) -> Topology:
    return Topology(preset=preset, nodes=nodes, preset_hash=f"h-{preset}")


MAIN = node("bannou-main", ("account", "connect"))
AUTH = node("bannou-auth", ("auth",))
GAME = node("bannou-game", ("game-session",))
TOPS = {
    "monolith": topo("monolith", MAIN),
    "split-auth": topo("split-auth", MAIN, AUTH),
    "split-game": topo("split-game", MAIN, GAME),
    "auth-only": topo("auth-only", AUTH),
}

# Nearest neighbour goes small -> other -> wide and pays for it; starting with the wide one and
# shrinking it is cheaper: greedy 1 + 3 + 7 + 5 = 16, optimal 14.
TRAP = {
    "small": topo("small", node("auth", replicas=1)),
    "other": topo("other", node("game", replicas=2)),
    "wide": topo("wide", node("auth", replicas=3), node("main", replicas=2)),
}


def items(*pairs: tuple[str, str | None]) -> list[PlanItem]:
    return [PlanItem(i, e) for i, e in pairs]


# --- grouping and order -------------------------------------------------------------------------


def test_groups_items_by_env_keeping_pytest_order_inside_groups():
    its = items(
        ("t1", "monolith"),
        ("t2", "auth-only"),
        ("t3", "split-auth"),
        ("t4", "monolith"),
        ("t5", "auth-only"),
    )
    plan = make_plan(its, TOPS)
    assert plan.batched
    # pytest's first-appearance order (monolith, auth-only, split-auth) would cost 6; going through
    # split-auth between its two halves costs 4: every node started once and stopped once
    assert cost_of(["monolith", "auth-only", "split-auth"], TOPS) == 6
    assert [g.env for g in plan.groups] == ["monolith", "split-auth", "auth-only"]
    assert [g.item_ids for g in plan.groups] == [("t1", "t4"), ("t3",), ("t2", "t5")]
    assert plan.order == ("t1", "t4", "t3", "t2", "t5")
    assert plan.deploys == 3
    assert [g.transition.summary() for g in plan.groups] == [
        "start bannou-main",
        "start bannou-auth",
        "stop bannou-main",
    ]
    assert [g.node_starts for g in plan.groups] == [1, 1, 0]
    assert [g.preset for g in plan.groups] == ["monolith", "split-auth", "auth-only"]
    assert plan.node_starts == 2
    assert plan.teardown.summary() == "stop bannou-auth"
    assert plan.transition_cost == 4


def test_items_without_env_keep_their_positions():
    its = items(
        ("a", None),
        ("b", "auth-only"),
        ("c", None),
        ("d", "split-auth"),
        ("e", "auth-only"),
        ("f", None),
        ("g", "monolith"),
    )
    plan = make_plan(its, TOPS)
    assert [g.env for g in plan.groups] == ["auth-only", "split-auth", "monolith"]
    assert [plan.order[i] for i in (0, 2, 5)] == ["a", "c", "f"]
    assert [plan.order[i] for i in (1, 3, 4, 6)] == ["b", "e", "d", "g"]
    assert plan.unscheduled == 3
    assert sorted(plan.order) == sorted(i.id for i in its)


def test_envs_without_items_never_appear():
    plan = make_plan(items(("t1", "auth-only"), ("t2", None)), TOPS)
    assert [g.env for g in plan.groups] == ["auth-only"]
    assert "monolith" not in json.dumps(plan.to_json())
    assert plan.deploys == 1


def test_no_env_items_at_all_gives_an_empty_plan():
    plan = make_plan(items(("t1", None), ("t2", None)), TOPS)
    assert plan.groups == ()
    assert plan.order == ("t1", "t2")
    assert plan.deploys == plan.node_starts == plan.transition_cost == 0


def test_start_topology_is_taken_into_account():
    # split-game is already deployed: staying on it first is free, and monolith is one stop away
    plan = make_plan(items(("t1", "monolith"), ("t2", "split-game")), TOPS, start=TOPS["split-game"])
    assert [g.env for g in plan.groups] == ["split-game", "monolith"]
    assert plan.groups[0].transition.is_noop
    assert plan.node_starts == 0


def test_unknown_env_and_duplicate_ids_are_rejected():
    with pytest.raises(KeyError, match="nope"):
        make_plan(items(("t1", "nope")), TOPS)
    with pytest.raises(ValueError, match="duplicate test id 't1'"):
        make_plan(items(("t1", "monolith"), ("t1", "monolith")), TOPS)


# --- batch=False --------------------------------------------------------------------------------


def test_no_batch_keeps_pytest_order_and_activates_per_run():
    its = items(
        ("t1", "split-auth"),
        ("t2", "split-auth"),
        ("t3", "monolith"),
        ("n1", None),
        ("t4", "monolith"),
        ("t5", "split-auth"),
    )
    plan = make_plan(its, TOPS, batch=False)
    assert not plan.batched
    assert plan.order == tuple(i.id for i in its)
    assert [(g.env, g.item_ids) for g in plan.groups] == [
        ("split-auth", ("t1", "t2")),
        ("monolith", ("t3", "t4")),  # an item needing no environment does not break the run
        ("split-auth", ("t5",)),
    ]
    assert [g.transition.summary() for g in plan.groups] == [
        "start bannou-main, bannou-auth",
        "stop bannou-auth",
        "start bannou-auth",
    ]
    assert plan.deploys == 3
    assert plan.node_starts == 3
    assert plan.transition_cost == 3 + 1 + 2  # starts, one stop, teardown of two nodes

    batched = make_plan(its, TOPS)
    assert batched.deploys == 2
    assert batched.transition_cost < plan.transition_cost


# --- plan output --------------------------------------------------------------------------------


def _sample_plan() -> Plan:
    its = items(
        ("tests/test_a.py::test_1", "split-auth"),
        ("tests/test_a.py::test_2", None),
        ("tests/test_b.py::test_3[monolith]", "monolith"),
        ("tests/test_b.py::test_3[split-auth]", "split-auth"),
    )
    tops = dict(TOPS, **{"split-auth[env:A=1]": topo("split-auth", MAIN, AUTH)})
    its.append(PlanItem("tests/test_c.py::test_4", "split-auth[env:A=1]"))
    return make_plan(its, tops)


def test_to_text_names_groups_transitions_and_totals():
    lines = _sample_plan().to_text().splitlines()
    assert lines == [
        "bannou plan: 5 tests, 3 environments, batched by environment",
        "1. split-auth (2 nodes, 2 tests): start bannou-main, bannou-auth",
        # same nodes as split-auth: the derived environment costs nothing to switch to
        "2. split-auth[env:A=1] (preset split-auth) (2 nodes, 1 test): no change",
        "3. monolith (1 node, 1 test): stop bannou-auth",
        "teardown: stop bannou-main",
        "tests needing no environment, left in place: 1",
        "deploys: 3, node starts: 2, transition cost: 4 (node starts + stops, teardown included)",
    ]


def test_to_json_is_json_and_complete():
    plan = _sample_plan()
    data = json.loads(json.dumps(plan.to_json()))
    assert data["batched"] is True
    assert data["deploys"] == 3
    assert data["node_starts"] == 2
    assert data["transition_cost"] == 4
    assert data["order"] == list(plan.order)
    assert data["order"][1] == "tests/test_a.py::test_2"  # needs no environment: in place
    g0, g1, g2 = data["groups"]
    assert g0 == {
        "env": "split-auth",
        "preset": "split-auth",
        "preset_hash": "h-split-auth",
        "tests": ["tests/test_a.py::test_1", "tests/test_b.py::test_3[split-auth]"],
        "transition": {"bannou-main": "start", "bannou-auth": "start"},
        "node_starts": 2,
    }
    assert g1["env"] == "split-auth[env:A=1]"
    assert g1["preset"] == "split-auth"
    assert g1["tests"] == ["tests/test_c.py::test_4"]
    assert g1["transition"] == {"bannou-main": "keep", "bannou-auth": "keep"}
    assert g1["node_starts"] == 0
    assert g2["env"] == "monolith"
    assert g2["transition"] == {"bannou-main": "keep", "bannou-auth": "stop"}
    assert data["teardown"] == {"bannou-main": "stop"}


def test_plan_is_deterministic():
    its = [PlanItem(f"t{i}", env) for i, env in enumerate(list(TOPS) * 3)]
    first = make_plan(its, TOPS)
    for _ in range(5):
        again = make_plan(its, dict(TOPS))
        assert again.to_json() == first.to_json()
        assert again.to_text() == first.to_text()


def test_ties_go_to_first_appearance():
    same = {"b": topo("b", MAIN), "a": topo("a", MAIN)}
    assert optimal_order(same) == ["b", "a"]
    assert greedy_order(same) == ["b", "a"]
    plan = make_plan(items(("t1", "a"), ("t2", "b")), same)
    assert [g.env for g in plan.groups] == ["a", "b"]


# --- greedy vs optimal --------------------------------------------------------------------------


def test_greedy_is_suboptimal_on_the_trap_and_optimal_is_not():
    greedy = greedy_order(TRAP)
    optimal = optimal_order(TRAP)
    assert greedy == ["small", "other", "wide"]
    assert cost_of(greedy, TRAP) == 16
    assert cost_of(optimal, TRAP) == 14
    assert cost_of(optimal, TRAP) == min(cost_of(p, TRAP) for p in itertools.permutations(TRAP))


def test_exhaustive_limit_switches_to_greedy():
    assert order_environments(TRAP, exhaustive_limit=3) == optimal_order(TRAP)
    assert order_environments(TRAP, exhaustive_limit=2) == greedy_order(TRAP)
    its = [PlanItem(f"t-{e}", e) for e in TRAP]
    assert make_plan(its, TRAP).transition_cost == 14
    assert make_plan(its, TRAP, exhaustive_limit=2).transition_cost == 16


def test_cost_of_counts_start_and_teardown():
    assert cost_of([], TOPS) == 0
    assert cost_of([], TOPS, start=TOPS["split-auth"]) == 2
    assert cost_of(["monolith"], TOPS) == 2
    assert cost_of(["auth-only", "monolith"], TOPS) == 1 + 2 + 1
    recreate = {"v1": topo("v1", node("n", ("a",), 2)), "v2": topo("v2", node("n", ("b",), 2))}
    assert diff(recreate["v1"], recreate["v2"]).cost == 4
    assert cost_of(["v1", "v2"], recreate) == 2 + 4 + 2


_nodes = st.builds(
    node,
    name=st.sampled_from(["w", "x", "y", "z"]),
    services=st.sampled_from([("s0",), ("s1",)]),
    replicas=st.integers(1, 3),
)
_node_sets = st.lists(_nodes, max_size=4, unique_by=lambda n: n.name)
_topology_sets = st.lists(_node_sets, min_size=1, max_size=5).map(
    lambda sets: {f"e{i}": topo(f"e{i}", *ns) for i, ns in enumerate(sets)}
)


@settings(max_examples=300, deadline=None)
@given(tops=_topology_sets, start=st.none() | _node_sets.map(lambda ns: topo("start", *ns)))
def test_optimal_is_the_brute_force_minimum_and_never_worse_than_greedy(tops, start):
    optimal = optimal_order(tops, start)
    greedy = greedy_order(tops, start)
    assert sorted(optimal) == sorted(tops)
    assert sorted(greedy) == sorted(tops)
    brute = min(cost_of(p, tops, start) for p in itertools.permutations(tops))
    assert cost_of(optimal, tops, start) == brute
    assert cost_of(optimal, tops, start) <= cost_of(greedy, tops, start)


@settings(max_examples=200, deadline=None)
@given(
    tops=_topology_sets,
    envs=st.lists(st.integers(-1, 4), max_size=30),
    batch=st.booleans(),
)
def test_plan_invariants(tops, envs, batch):
    names = list(tops)
    its = [PlanItem(f"t{i}", names[e % len(names)] if e >= 0 else None) for i, e in enumerate(envs)]
    plan = make_plan(its, tops, batch=batch)
    # every item exactly once; items without env in place; env items with their group's env
    assert sorted(plan.order) == sorted(i.id for i in its)
    env_of = {i.id: i.env for i in its}
    for idx, it in enumerate(its):
        if it.env is None:
            assert plan.order[idx] == it.id
    pos = {tid: k for k, tid in enumerate(plan.order)}
    for g in plan.groups:
        assert all(env_of[t] == g.env for t in g.item_ids)
        assert [pos[t] for t in g.item_ids] == sorted(pos[t] for t in g.item_ids)
        assert list(g.item_ids) == [i.id for i in its if i.id in set(g.item_ids)]
    assert [t for g in plan.groups for t in g.item_ids] == [t for t in plan.order if env_of[t] is not None]
    used = list(dict.fromkeys(i.env for i in its if i.env is not None))  # first appearance
    if batch:
        assert [g.env for g in plan.groups] == order_environments({e: tops[e] for e in used})
        assert plan.deploys == len(used)
    else:
        assert plan.order == tuple(i.id for i in its)
        assert all(a.env != b.env for a, b in itertools.pairwise(plan.groups))
    # transitions chain from nothing through every group to nothing
    chain = [None, *(g.topology for g in plan.groups), None]
    expected = sum(diff(a, b).cost for a, b in itertools.pairwise(chain))
    assert plan.transition_cost == expected
    if batch:
        assert plan.transition_cost == cost_of([g.env for g in plan.groups], tops)
