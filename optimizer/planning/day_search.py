"""Hour by hour: bounds on the daily model from single hours, and daily plans from a fixed base.

Hour bound. Hour h's cost in any daily plan, the committed base counted at one hour of its price, is at least
HB_h, the optimum of hour h planned alone (the same rows, the base free to change from hour to hour), so
Σ_h HB_h bounds the day. Each HB_h is the dual bound HiGHS proves within a node limit; hours with the same
demand share one solve. Their fleets suggest a base (``base_from_hours``).

Fixed base. With the committed base fixed the daily model splits into 24 independent hours; solving each
exactly gives the cheapest on-demand and spot additions for that base (``with_base``); ``polish`` keeps a
plan's base and never returns a dearer plan.

Commitment bound (``commitment_bound``): the hour bounds with the base's hourly price β as a parameter.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

from gpuplan.optimizer.planning.day_model import DayInputs, DayModel, build_day
from gpuplan.optimizer.planning.engines import Stage
from gpuplan.optimizer.planning.engines import run as run_stage
from gpuplan.optimizer.planning.model.problem import PRICE_SCALE
from ortools.sat.python import cp_model

HOUR_GAP = 0.0  # hours are solved exactly (within their node limit)


def _demand_key(d: DayInputs, h: int) -> tuple[int, ...]:
    return tuple(d.demand[w][h] for w in d.workloads)


def _solve_hour(d: DayInputs, h: int, lbs: dict[tuple[str, int], int], det_s: float, left: Callable[[], float],
                engine: str, fixed_base: dict[tuple[str, str], int] | None = None,
                max_committed: int | None = None) -> tuple[DayModel, Stage]:
    """Hour h alone (no daily budget): least cost, or with ``max_committed`` the least on-demand and spot spend
    when the committed instances cost at most that per hour."""
    hm = build_day(d, [h], lbs, fixed_base=fixed_base, with_budget=False)
    objective = hm.cost
    if max_committed is not None:
        committed = sum((d.prices[k][d.committed] or 0) * v for k, v in hm.base.items())
        hm.model.Add(committed <= max_committed)
        objective = hm.cost - committed
    hm.model.Minimize(objective)
    return hm, run_stage(hm.model, hm.variables(), det_s, left(), None, engine, gap=HOUR_GAP)


def hour_bounds(d: DayInputs, hours: list[int], lbs: dict[tuple[str, int], int], det_s: float,
                left: Callable[[], float], engine: str) -> tuple[dict[int, int], dict[int, dict[tuple[str, str], int]]]:
    """HB_h per hour ($ × 10⁴, rounded up: costs are integers) and the instances per offer of each hour's own
    plan, for the hours solved before ``left()`` ran out."""
    solved: dict[tuple[int, ...], tuple[int, dict[tuple[str, str], int]]] = {}
    out: dict[int, int] = {}
    fleets: dict[int, dict[tuple[str, str], int]] = {}
    for h in hours:
        key = _demand_key(d, h)
        if key not in solved:
            if left() <= 0.1:
                break
            hm, stage = _solve_hour(d, h, lbs, det_s, left, engine)
            if stage.status == cp_model.INFEASIBLE or math.isnan(stage.bound):
                continue
            solved[key] = (math.ceil(stage.bound - 1e-6),
                           {k: stage.values[v.Index()] for (k, _h), v in hm.total.items()} if stage.values else {})
        out[h], fleets[h] = solved[key]
    return out, fleets


def base_from_hours(d: DayInputs, fleets: dict[int, dict[tuple[str, str], int]]) -> dict[tuple[str, str], int]:
    """A committed base from the hours' own plans: offer o's j-th instance is committed when the hours that use
    at least j instances of o would pay at least as much for it on demand (spot when o has no on-demand price)
    as the committed price over the whole day."""
    out = {}
    for k in sorted(d.groups):
        pr = d.prices[k]
        alt = pr["on_demand"] or pr["spot"]
        if not pr[d.committed] or not alt:
            continue
        j = 0
        while sum(1 for f in fleets.values() if f.get(k, 0) > j) * alt >= len(d.demand[d.workloads[0]]) * pr[
                d.committed] and any(f.get(k, 0) > j for f in fleets.values()):
            j += 1
        if j:
            out[k] = j
    return out


def with_base(d: DayInputs, dm: DayModel, base: dict[tuple[str, str], int], lbs: dict[tuple[str, int], int],
              det_s: float, left: Callable[[], float], engine: str) -> Stage | None:
    """The cheapest daily plan with this committed base: each hour solved exactly on its own (values of every
    variable of ``dm``; its single-GPU-type indicators excepted), or None when time ran out first."""
    values = {v.Index(): 0 for v in dm.variables()}
    for k, v in dm.base.items():
        values[v.Index()] = base.get(k, 0)
    total = 0
    done: dict[tuple[int, ...], tuple[DayModel, Stage]] = {}
    for h in dm.hours:
        key = _demand_key(d, h)
        if key not in done:
            if left() <= 0.1:
                return None
            hm, got = _solve_hour(d, h, lbs, det_s, left, engine, fixed_base=base)
            if not got.values:
                return None
            done[key] = (hm, got)
        hm, got = done[key]
        hh = hm.hours[0]
        total += round(got.objective)
        for x in d.cands:
            values[dm.r[x.id, h].Index()] = got.values[hm.r[x.id, hh].Index()]
        for k in d.groups:
            for mine, theirs in ((dm.od, hm.od), (dm.spot, hm.spot), (dm.total, hm.total)):
                values[mine[k, h].Index()] = got.values[theirs[k, hh].Index()]
            for a, b in zip(dm.pack_aux[k, h], hm.pack_aux[k, hh], strict=True):
                values[a.Index()] = got.values[b.Index()]
    if d.budget_usd_per_hour is not None and total > math.floor(d.budget_usd_per_hour * len(dm.hours) * PRICE_SCALE):
        return None
    return Stage(cp_model.FEASIBLE, values, float(total), -math.inf, False)


def polish(d: DayInputs, dm: DayModel, stage: Stage, lbs: dict[tuple[str, int], int], det_s: float,
           left: Callable[[], float], engine: str) -> Stage | None:
    """The plan of ``stage`` with its base kept and every hour re-solved exactly, when that is cheaper."""
    base = {k: stage.values[v.Index()] for k, v in dm.base.items()}
    got = with_base(d, dm, base, lbs, det_s, left, engine)
    if got is None or got.objective >= round(stage.objective):
        return None
    return Stage(cp_model.FEASIBLE, got.values, got.objective, stage.bound, stage.wall_bound)


def _additions_bound(d: DayInputs, lbs: dict[tuple[str, int], int], beta: int, det_s: float,
                     left: Callable[[], float], engine: str, zero_from: dict[tuple[int, ...], int]) -> float | None:
    """A(β) = Σ_h a_h(β): a lower bound on the hours' on-demand and spot spend when the committed instances,
    free to differ from hour to hour, cost at most β per hour ($ × 10⁴); None when time ran out. ``zero_from``:
    per demand, the least β known to need no additions (a_h ≥ 0 never increases with β: no solve above it)."""
    solved: dict[tuple[int, ...], float] = {}
    total = 0.0
    for h in range(len(d.demand[d.workloads[0]])):
        key = _demand_key(d, h)
        if key not in solved and beta >= zero_from.get(key, math.inf):
            solved[key] = 0.0
        if key not in solved:
            if left() <= 0.1:
                return None
            _, stage = _solve_hour(d, h, lbs, det_s, left, engine, max_committed=beta)
            solved[key] = math.inf if stage.status == cp_model.INFEASIBLE else max(stage.bound, 0.0)
            if math.isnan(solved[key]):
                return None
            if solved[key] == 0:
                zero_from[key] = min(beta, zero_from.get(key, beta))
        total += solved[key]
    return total


def commitment_bound(d: DayInputs, lbs: dict[tuple[str, int], int], upper: int, steps: int, det_s: float,
                     left: Callable[[], float], engine: str) -> tuple[int | None, bool]:
    """A lower bound on the daily optimum that sees the commitment (``Σ_h HB_h`` prices every hour's fleet as
    committed). Let β = Σ_o price_commit,o · base_o, the base's hourly price. Every hour of a daily plan pays
    β plus additions of at least a_h(β), the least on-demand and spot spend of hour h alone when its committed
    instances may be *any* costing ≤ β; a_h is non-increasing in β. So a plan with β ∈ [β₁, β₂] costs at least
    24·β₁ + A(β₂), and no plan with β ≥ upper/24 beats ``upper``. Best-first bisection over [0, upper/24]:
    split the interval with the least bound, ``steps`` times (each step solves A at one β); the bound is the
    least over the intervals; and whether the clock rather than ``steps`` stopped it (bound None: before the
    first split)."""
    hours = len(d.demand[d.workloads[0]])
    top = upper // hours
    cache: dict[int, float] = {}
    zero_from: dict[tuple[int, ...], int] = {}

    def a(beta: int) -> float | None:
        if beta not in cache:
            got = _additions_bound(d, lbs, beta, det_s, left, engine, zero_from)
            if got is None:
                return None
            cache[beta] = got
        return cache[beta]

    edges = [top * i // INITIAL_INTERVALS for i in range(INITIAL_INTERVALS + 1)]
    intervals: list[tuple[float, int, int]] = []
    for lo, hi in itertools.pairwise(edges):
        got = a(hi)
        if got is None:
            return None, True
        intervals.append((hours * lo + got, lo, hi))
    for _ in range(steps):
        intervals.sort()
        value, lo, hi = intervals[0]
        if hi - lo <= 1 or value >= upper:
            break
        mid = (lo + hi) // 2
        got = a(mid)
        if got is None:
            return min(upper, math.ceil(min(v for v, _, _ in intervals) - 1e-6)), True
        intervals[0:1] = [(hours * lo + got, lo, mid), (hours * mid + cache[hi], mid, hi)]
    return min(upper, math.ceil(min(v for v, _, _ in intervals) - 1e-6)), False


INITIAL_INTERVALS = 4
