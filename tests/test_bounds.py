"""The per-workload lower bound: an unbounded covering knapsack solved by DP, checked by enumeration."""

from __future__ import annotations

import itertools
import math

from gpuplan.optimizer.planning.bounds import cover_choice, cover_table
from hypothesis import given, settings
from hypothesis import strategies as st


def _enumerate(demand: int, caps: list[int], costs: list[int]) -> int:
    """Brute force over the counts of every item but the last; the last then takes the fewest units that
    cover what is left (costs are positive, so fewer is cheaper)."""
    ranges = [range(math.ceil(demand / c) + 1) for c in caps[:-1]]
    best = math.inf
    for ks in itertools.product(*ranges):
        covered = sum(k * c for k, c in zip(ks, caps, strict=False))
        last = max(0, math.ceil((demand - covered) / caps[-1]))
        best = min(best, sum(k * c for k, c in zip(ks, costs, strict=False)) + last * costs[-1])
    return int(best)


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 60), st.lists(st.tuples(st.integers(1, 25), st.integers(1, 40)), min_size=1, max_size=4))
def test_exact_when_the_unit_is_one(demand: int, items: list[tuple[int, int]]) -> None:
    caps, costs = [c for c, _ in items], [p for _, p in items]
    dp, unit = cover_table(demand, caps, costs)
    assert unit == 1
    assert dp[-1] == _enumerate(demand, caps, costs)
    pick = cover_choice(dp, unit, caps, costs)
    assert sum(caps[i] * k for i, k in pick.items()) >= demand
    assert sum(costs[i] * k for i, k in pick.items()) == dp[-1]


@settings(max_examples=60, deadline=None)
@given(st.integers(5_000, 40_000), st.lists(st.tuples(st.integers(900, 9_000), st.integers(1, 40)), min_size=1,
                                            max_size=3))
def test_coarse_units_still_bound_from_below(demand: int, items: list[tuple[int, int]]) -> None:
    # demand above RESOLUTION units: capacities round up, demand down, so the table never exceeds the optimum
    caps, costs = [c for c, _ in items], [p for _, p in items]
    dp, unit = cover_table(demand, caps, costs)
    assert unit > 1
    assert dp[-1] <= _enumerate(demand, caps, costs)
