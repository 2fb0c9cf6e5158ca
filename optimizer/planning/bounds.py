"""Per-workload lower bounds: the cheapest GPU-share cover of one workload's demand.

A replica of candidate c costs at least its GPUs' share of the instance, share_c = price_o · tp_c / g_o
(idle GPUs only add cost). Any plan therefore costs at least Σ_w LB_w, where

  LB_w = min Σ_{c ∈ w} share_c · r_c   s.t.  Σ_{c ∈ w} cap_c · r_c ≥ demand_w,  r_c ∈ ℕ

is an unbounded covering knapsack, solved exactly by dynamic programming over demand units. To keep the
table small, capacities are rounded *up* and the demand *down* to a unit of demand_w / resolution, which
relaxes the knapsack: the result is still a valid lower bound. Each replica's capacity gains < 1 unit, so a
cover of k replicas may be up to k units short: at RESOLUTION = 2000 a workload served by 20 small replicas
can lose 1 % of its bound. The fleet planner uses FLEET_RESOLUTION (measured on the 100-workload benchmark:
Σ_w LB_w $1,475.59/h at 2000, $1,476.47/h, the exact knapsack optimum, at 8000 and above; 0.06 s).

The table also bounds plans that use a given candidate: share_c + dp_w[demand - cap_c]. A candidate whose
such bound, plus the other workloads' bounds, exceeds the cost of a known plan is in no optimal plan.
"""

from __future__ import annotations

import math

import numpy as np

RESOLUTION = 2000  # demand units per workload in the DP table (the daily model: 24 tables per workload)
FLEET_RESOLUTION = 8000  # the fleet model's tables (one per workload)


def cover_table(demand: int, caps: list[int], costs: list[float],
                resolution: int = RESOLUTION) -> tuple[np.ndarray, int]:
    """dp[d] = least cost to cover ≥ d·unit (d = 0..D), and the unit. ``demand`` and ``caps`` share one
    integer scale; ``costs`` are any non-negative numbers."""
    unit = max(1, demand // resolution)
    size = demand // unit
    if size == 0:
        return np.zeros(1), unit
    steps = [min(max(1, math.ceil(c / unit)), size) for c in caps]  # an item covering it all counts as all
    dp = np.full(size + 1, np.inf)
    dp[0] = 0.0
    for k, cost in _pareto(steps, costs):
        dp = add_item(dp, k, cost)
    return dp, unit


def _pareto(steps: list[int], costs: list[float]) -> list[tuple[int, float]]:
    """Items no other item dominates (as large a step for no more cost): the others never change the table."""
    keep: list[tuple[int, float]] = []
    best = math.inf
    for k, cost in sorted(zip(steps, costs, strict=True), key=lambda t: (-t[0], t[1])):
        if cost < best:
            keep.append((k, cost))
            best = cost
    return keep


def add_item(dp: np.ndarray, k: int, cost: float) -> np.ndarray:
    """Unbounded use of one item of size k: new[d] = min_j dp[max(0, d - j·k)] + j·cost. Per residue class
    d = r + i·k this is i·cost + prefix-min over j ≤ i of (a_j - j·cost), with d ≤ 0 clamped to index 0."""
    size = len(dp) - 1
    # prepend k entries of 0 cost (covering d ≤ 0 is free), so index shift k maps d → d + k
    ext = np.concatenate([np.zeros(k), dp])
    n = len(ext)
    rows = -(-n // k)
    padded = np.full(rows * k, np.inf)
    padded[:n] = ext
    grid = padded.reshape(rows, k)
    i = np.arange(rows, dtype=float)[:, None]
    best = np.minimum.accumulate(grid - i * cost, axis=0) + i * cost
    out = best.reshape(-1)[:n][k:]
    return np.minimum(out, dp)[: size + 1]


def cover_choice(dp: np.ndarray, unit: int, caps: list[int], costs: list[float]) -> dict[int, int]:
    """Item index → count of one least-cost cover in the table (walk back from the full demand)."""
    steps = [max(1, math.ceil(c / unit)) for c in caps]
    counts: dict[int, int] = {}
    d = len(dp) - 1
    while d > 0:
        best = min(range(len(steps)), key=lambda i: (costs[i] + dp[max(0, d - steps[i])], i))
        counts[best] = counts.get(best, 0) + 1
        d = max(0, d - steps[best])
    return counts


def lower_bound(dp: np.ndarray) -> float:
    """LB: the least share cost of covering the whole demand (the table's last entry)."""
    return float(dp[-1])


def lower_bound_units(dp: np.ndarray) -> int:
    """LB rounded up to whole price units (the float sums of the table may sit a hair below an integer)."""
    return math.ceil(lower_bound(dp) - 1e-6)


def bound_with(dp: np.ndarray, unit: int, demand: int, cap: int, cost: float) -> float:
    """Least share cost of covering the demand when at least one replica (cap, cost) is used."""
    rest = max(0, demand - cap) // unit  # relaxed: fewer units left to cover
    return cost + float(dp[min(rest, len(dp) - 1)])
