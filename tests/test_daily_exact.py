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
