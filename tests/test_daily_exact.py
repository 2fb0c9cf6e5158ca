"""Daily plans against the full daily problem solved by enumeration, on cases small enough to enumerate."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from gpuplan.optimizer.planning.candidate_gen import generate
from gpuplan.optimizer.planning.day import plan_day
from gpuplan.optimizer.planning.workload import parse_fleet
from gpuplan.optimizer.tables import Tables

PRICES = Path(__file__).parent / "data" / "daily_one_offer.csv"


def _enumerate(needed: list[int], share: float, prices: dict[str, float]) -> float:
    """Least daily cost: a committed base b paid 24 h, then per hour t ≥ n_h instances of which at most
    ⌊share · t⌋ spot and the rest on demand (plain enumeration over b, t and the spot count)."""
    best = math.inf
    reserved, on_demand, spot = prices["reserved_1y"], prices["on_demand"], prices["spot"]
    for b in range(max(needed) + 1):
        cost = 24 * reserved * b
        for n in needed:
            hour = math.inf
            for t in range(max(n, b), max(n, b) + 3):
                for s in range(0, t - b + 1):
                    if s <= share * t + 1e-9:
                        hour = min(hour, (t - b - s) * on_demand + s * spot)
            cost += hour
        best = min(best, cost)
    return best


@pytest.mark.parametrize("profile,share", [([1.0] * 12 + [3.0] * 12, 0.3), ([0.5] * 20 + [6.0] * 4, 0.5),
                                           ([2.0] * 24, 0.0)])
def test_daily_plan_equals_enumeration(profile: list[float], share: float) -> None:
    tables = Tables(pricing=[PRICES])
    data = {"workloads": [{"name": "chat", "model": "llama-3.1-8b", "weights": ["fp8"], "kv": ["fp8"],
                           "input_tokens": 1000, "output_tokens": 250, "max_context": 4096,
                           "rate_profile": [round(x * SCALE, 3) for x in profile],
                           "slo": {"ttft_ms": 2000, "tpot_ms": 40}}],
            "constraints": {"committed_tier": "reserved_1y", "spot_max_share": share}}
    fleet = parse_fleet(data, "test")
    peak = fleet.workloads[0].model_copy(update={"rate_rps": max(fleet.workloads[0].rate_profile),
                                                 "rate_profile": None})
    cands = generate(peak, fleet.constraints.model_copy(update={"tier": "on_demand"}), tables).candidates
    assert len(cands) == 1  # one offer, one format, TP 1: replicas = instances
    cap = cands[0].capacity_req_s
    needed = [math.ceil(x / cap - 1e-9) for x in fleet.workloads[0].rate_profile]
    plan = plan_day(fleet, tables, time_limit_s=20)
    assert plan.status == "optimal"
    offer = next(o for o in tables.offers if o.provider == "aws" and o.instance == "g6e.xlarge")
    prices = {t: offer.price(t) for t in ("reserved_1y", "on_demand", "spot")}  # reserved.csv fills reserved_1y
    assert plan.daily_usd == pytest.approx(_enumerate(needed, share, prices), abs=1e-6)


SCALE = 3.0  # req/s per profile unit: a few instances at the peak


def _exact_full_model(fleet, tables) -> tuple[float, float]:
    """(optimum, Σ_h HB_h) of the full daily model over every candidate, solved to a proven optimum (HiGHS,
    no work limit), next to the sum of the hour-alone bounds."""
    from gpuplan.optimizer.planning import day
    from gpuplan.optimizer.planning.day_model import build_day, hour_cover_bound
    from gpuplan.optimizer.planning.day_search import hour_bounds
    from gpuplan.optimizer.planning.engines import highs
    from gpuplan.optimizer.planning.model.problem import PRICE_SCALE
    from gpuplan.optimizer.planning.workload import HOURS
    from ortools.sat.python import cp_model

    c = fleet.constraints
    offers = day._day_offers(tables, fleet)
    gen = c.model_copy(update={"tier": "on_demand"})
    peak = [w.model_copy(update={"rate_rps": max(w.rate_profile), "rate_profile": None}) for w in fleet.workloads]
    cands = sorted((x for w in peak for x in generate(w, gen, tables, offers,
                                                      price_any=(c.committed_tier, "on_demand", "spot")).candidates),
                   key=lambda x: x.id)
    d = day._inputs(fleet, tables, offers, cands)
    lbs = {(w, h): hour_cover_bound(d, w, h) for w in d.workloads for h in range(HOURS)}
    dm = build_day(d, list(range(HOURS)), lbs)
    dm.model.Minimize(dm.cost)
    stage = highs(dm.model, dm.variables(), 300.0, None, gap=0.0)
    assert stage.status == cp_model.OPTIMAL
    hb, _ = hour_bounds(d, list(range(HOURS)), lbs, 1000.0, lambda: 300.0, "highs")
    return stage.objective / PRICE_SCALE, sum(hb.values()) / PRICE_SCALE


SMALL_DAYS = [  # (GPU types, chat profile in req/s, spot share): aws offers of 1, 4 and 8 GPUs, base vs peaks
    (["l4"], [2.0] * 8 + [9.0] * 10 + [4.0] * 6, 0.3),
    (["a10g", "l4"], [2.0] * 8 + [9.0] * 10 + [4.0] * 6, 0.3),
    (["l4", "l40s"], [1.0] * 6 + [5.0] * 12 + [12.0] * 6, 0.0),
]


@pytest.mark.parametrize("gpus,profile,share", SMALL_DAYS)
def test_daily_plan_against_the_full_model_solved_exactly(gpus: list[str], profile: list[float], share: float) -> None:
    tables = Tables()
    data = {"workloads": [{"name": "chat", "model": "llama-3.1-8b", "weights": ["fp8"], "kv": ["fp8"],
                           "input_tokens": 1000, "output_tokens": 250, "max_context": 4096, "rate_profile": profile,
                           "slo": {"ttft_ms": 2000, "tpot_ms": 40}}],
            "constraints": {"providers": ["aws"], "gpus": gpus, "committed_tier": "reserved_1y",
                            "spot_max_share": share}}
    fleet = parse_fleet(data, "test")
    optimum, hour_sum = _exact_full_model(fleet, tables)
    plan = plan_day(fleet, tables, time_limit_s=10, wall_limit_s=120)  # stops by work, not by the clock
    bound = plan.daily_usd * (1 - plan.gap)
    tol = 5e-4 * optimum  # the model prices in $ × 10⁴ per hour, the plan reports $ from the table's prices
    assert hour_sum <= optimum + 1e-9  # the hour-alone bounds never cut off the optimum (same units)
    assert bound <= optimum + tol  # the reported gap is to a valid bound
    assert plan.daily_usd >= optimum - tol
    if plan.status == "optimal":
        assert plan.daily_usd == pytest.approx(optimum, abs=tol)
    assert plan.daily_usd <= optimum * 1.01  # small cases: within 1 % of the proven optimum
    # the commitment bound, converged (hours solved exactly), is at least the hours' own bounds: its last interval
    # [β₁, β₁ + 1 unit] gives 24·β₁ + Σ_h a_h(β₁ + 1) ≥ Σ_h HB_h − 24 units
    assert bound >= hour_sum - 24 / 10_000 - tol
