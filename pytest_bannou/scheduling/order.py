"""The order of environments that makes the total transition cost smallest.

Every environment switch costs node starts and stops (``topology.diff(a, b).cost``), from
nothing to the first environment and from the last one back to nothing. Up to
``exhaustive_limit`` environments the order is exact (dynamic programming over subsets); above
it, nearest neighbour. Ties always go to the environment that appears first in the input, so the
same collection gives the same order. Pure: no pytest, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import cache

from ..topology.diff import diff
from ..topology.model import Topology

__all__ = ["cost_of", "greedy_order", "optimal_order", "order_environments"]


def cost_of(order: Sequence[str], topologies: Mapping[str, Topology], start: Topology | None = None) -> int:
    """Total transition cost of activating ``order`` from ``start``, then tearing down."""
    cost, current = 0, start
    for env in order:
        cost += diff(current, topologies[env]).cost
        current = topologies[env]
    return cost + diff(current, None).cost


def greedy_order(topologies: Mapping[str, Topology], start: Topology | None = None) -> list[str]:
    """Nearest neighbour: always switch to the cheapest next environment (first one on ties)."""
    remaining = list(topologies)
    order: list[str] = []
    cost = _pair_cost(topologies, start)
    current: str | None = None
    while remaining:
        best = min(remaining, key=lambda env: cost(current, env))  # min keeps the first on ties
        remaining.remove(best)
        order.append(best)
        current = best
    return order


def _pair_cost(
    topologies: Mapping[str, Topology], start: Topology | None
) -> Callable[[str | None, str | None], int]:
    """Memoised ``diff(...).cost`` between environments by key (None: ``start``); diffs hash
    every node spec, so each pair is computed once."""
    memo: dict[tuple[str | None, str | None], int] = {}

    def cost(a: str | None, b: str | None) -> int:
        if (a, b) not in memo:
            old = start if a is None else topologies[a]
            memo[a, b] = diff(old, None if b is None else topologies[b]).cost
        return memo[a, b]

    return cost


def optimal_order(topologies: Mapping[str, Topology], start: Topology | None = None) -> list[str]:
    """The order of minimal total cost (teardown included), by dynamic programming over subsets.

    Of several optimal orders it returns the lexicographically first by position in
    ``topologies``, so the result only depends on the input. n^2 diffs, then O(2^n * n^2)
    integer steps: fine for the small n it is used for.
    """
    envs = list(topologies)
    n = len(envs)
    tops = [topologies[e] for e in envs]
    step = [[diff(a, b).cost for b in tops] for a in tops]
    first = [diff(start, b).cost for b in tops]
    last = [diff(a, None).cost for a in tops]

    @cache
    def rest(remaining: int, at: int) -> int:
        """Minimal cost to visit every env in ``remaining`` from ``at``, then tear down."""
        if not remaining:
            return last[at]
        return min(step[at][j] + rest(remaining & ~(1 << j), j) for j in range(n) if remaining >> j & 1)

    order: list[str] = []
    remaining = (1 << n) - 1
    at: int | None = None
    while remaining:
        candidates = [j for j in range(n) if remaining >> j & 1]
        costs = [
            (first[j] if at is None else step[at][j]) + rest(remaining & ~(1 << j), j) for j in candidates
        ]
        j = candidates[costs.index(min(costs))]
        order.append(envs[j])
        remaining &= ~(1 << j)
        at = j
    rest.cache_clear()
    return order


def order_environments(
    topologies: Mapping[str, Topology], *, start: Topology | None = None, exhaustive_limit: int = 8
) -> list[str]:
    """Exact order up to ``exhaustive_limit`` environments, nearest neighbour above it."""
    if len(topologies) <= exhaustive_limit:
        return optimal_order(topologies, start)
    return greedy_order(topologies, start)
