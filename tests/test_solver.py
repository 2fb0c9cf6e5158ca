"""The CP-SAT model against exhaustive enumeration on small random instances, and its properties."""

from __future__ import annotations

import dataclasses
import itertools
import math
import os

import pytest
from gpuplan.optimizer.planning.candidate_gen import Candidate
from gpuplan.optimizer.planning.solver import PRICE_SCALE, RATE_SCALE, Problem, solve
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from solver_fixtures import candidate, draw_candidates, draw_problem, draw_workloads, offer_lists, workload


@st.composite
def instances(draw):
    """Offers of 1 to 10 GPUs; each workload gets one to three candidates on offers drawn at random."""
    offers = draw(offer_lists([1, 2, 3, 4, 5, 6, 8, 10], 20, 3))
    workloads = draw_workloads(draw, 6.0)
    cands = draw_candidates(draw, workloads, offers, (1, 3), (1, 2, 4, 8), (0.3, 5.0))
    return draw_problem(draw, workloads, cands, 12, (1, 120))


def _instances_needed(chosen: dict[str, int], cands: list[Candidate]) -> dict[str, int]:
    """Fewest whole instances per offer that hold the replicas, by searching concrete placements."""
    from exact_checker import packable

    need: dict[str, int] = {}
    for offer in {c.offer + c.provider for c in cands}:
        group = [c for c in cands if c.offer + c.provider == offer]
        tps = [c.tp for c in group for _ in range(chosen[c.id])]
        n = math.ceil(sum(tps) / group[0].gpus_per_instance)
        while not packable(group[0].gpus_per_instance, n, tps):
            n += 1
        need[offer] = n
    return need


def brute_force(p: Problem) -> float | None:
    """Enumerate replica counts up to ceil(demand / capacity) per candidate; min cost or None."""
    demand = {w.name: round(w.rate_rps * RATE_SCALE) for w in p.workloads}
    ranges = [range(0, math.ceil(demand[c.workload] / round(c.capacity_req_s * RATE_SCALE)) + 1)
              for c in p.candidates]
    best = None
    for combo in itertools.product(*ranges):
        chosen = {c.id: k for c, k in zip(p.candidates, combo, strict=True)}
        if any(sum(round(c.capacity_req_s * RATE_SCALE) * chosen[c.id] for c in p.candidates
                   if c.workload == w) < d for w, d in demand.items()):
            continue
        if p.single_gpu_type and any(len({c.gpu for c in p.candidates if c.workload == w.name and chosen[c.id]}) > 1
                                     for w in p.workloads):
            continue
        need = _instances_needed(chosen, p.candidates)
        price = {c.offer + c.provider: c.instance_usd_per_hour for c in p.candidates}
        gpi = {c.offer + c.provider: c.gpus_per_instance for c in p.candidates}
        gpu_of = {c.offer + c.provider: c.gpu for c in p.candidates}
        if any(sum(n * gpi[o] for o, n in need.items() if gpu_of[o] == g) > cap for g, cap in p.max_gpus.items()):
            continue
        cost = sum(round(price[o] * PRICE_SCALE) * n for o, n in need.items())
        if p.budget_usd_per_hour is not None and cost > math.floor(p.budget_usd_per_hour * PRICE_SCALE):
            continue
        best = cost if best is None else min(best, cost)
    return None if best is None else best / PRICE_SCALE


def enumeration_size(p: Problem) -> int:
    """How many replica-count combinations ``brute_force`` visits."""
    demand = {w.name: round(w.rate_rps * RATE_SCALE) for w in p.workloads}
    return math.prod(math.ceil(demand[c.workload] / round(c.capacity_req_s * RATE_SCALE)) + 1 for c in p.candidates)


@settings(max_examples=int(os.environ.get("SOLVER_EXAMPLES", "200")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_solver_equals_brute_force(p: Problem) -> None:
    # plain enumeration stays small: up to 6 candidates with ⌈6 / 0.3⌉ + 1 = 21 counts each would be 85 M plans
    assume(enumeration_size(p) <= 200_000)
    expected = brute_force(p)
    sol = solve(p, time_limit_s=5)
    if expected is None:
        assert sol.status == "infeasible"
    else:
        assert sol.status == "optimal"
        assert sol.objective_value == pytest.approx(expected, abs=1e-9)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances(), st.floats(1.0, 3.0))
def test_more_demand_never_costs_less(p: Problem, factor: float) -> None:
    base = solve(p, time_limit_s=5)
    heavier = Problem([w.model_copy(update={"rate_rps": w.rate_rps * factor}) for w in p.workloads], p.candidates,
                      p.tier, p.max_gpus, p.budget_usd_per_hour, p.single_gpu_type)
    more = solve(heavier, time_limit_s=5)
    if base.status == "optimal" and more.status == "optimal":
        assert more.objective_value >= base.objective_value - 1e-9
    if base.status == "infeasible":
        assert more.status == "infeasible"


def test_packing_tp2_replicas_share_an_8_gpu_instance() -> None:
    # 4 replicas of TP 2 fill one 8-GPU instance exactly: one instance is paid, not four.
    w = workload("w", 4.0)
    c = candidate(0, "w", ("p", "g1", 8, 10.0), 2, 1.0)
    sol = solve(Problem([w], [c], "on_demand"))
    assert sol.replicas == {"w/c0": 4} and sol.objective_value == pytest.approx(10.0)


def test_identical_input_gives_identical_plan() -> None:
    w = workload("w", 5.0)
    offers = [("p1", "g1", 8, 16.0), ("p2", "g1", 8, 16.0), ("p1", "g2", 4, 8.0)]
    cands = [candidate(i, "w", o, 1, 1.0) for i, o in enumerate(offers)]
    first = solve(Problem([w], cands, "on_demand"))
    for _ in range(3):
        again = solve(Problem([w], cands, "on_demand"))
        assert again.replicas == first.replicas and again.instances == first.instances


@settings(max_examples=int(os.environ.get("SOLVER_EXAMPLES", "200")) // 2, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_offer_pruning_keeps_the_optimum(p: Problem) -> None:
    from gpuplan.optimizer.planning.candidate_gen import prune_offers

    kept = prune_offers(p.candidates, set(p.max_gpus), p.single_gpu_type)
    full = solve(p, time_limit_s=5)
    pruned = solve(Problem(p.workloads, kept, p.tier, p.max_gpus, p.budget_usd_per_hour, p.single_gpu_type),
                   time_limit_s=5)
    assert pruned.status == full.status
    if full.status == "optimal":
        assert pruned.objective_value == pytest.approx(full.objective_value, abs=1e-9)


def test_a_starting_plan_that_mixes_gpu_types_is_never_returned_under_single_gpu_type() -> None:
    """Found by the brute-force property test. w1 needs 5 req/s, w2 1 req/s, one GPU type per workload, $18/h:
    w1 on g1 alone costs 5 × $4 = $20 > $18, on g2 alone 2 × $9 = $18, and w2 then adds $1 (it has only a g1
    deployment), so no plan exists. The starting plan (w1 on one g2 replica + two g1 replicas, $17, w2 on a $1
    instance) mixes g1 and g2 for w1 and must not come back as 'feasible'."""
    g1x1, g1x2, g2x8 = ("p1", "g1", 1, 4.0), ("p1", "g1", 2, 1.0), ("p1", "g2", 8, 9.0)
    cands = [candidate(0, "w1", g2x8, 8, 3.0), candidate(1, "w1", g1x1, 1, 1.0), candidate(2, "w1", g1x1, 1, 1.0),
             candidate(3, "w2", g1x2, 1, 1.0)]
    p = Problem(workloads=[workload("w1", 5.0), workload("w2", 1.0)], candidates=cands, tier="on_demand",
                budget_usd_per_hour=18.0, single_gpu_type=True)
    assert solve(p, time_limit_s=5).status == "infeasible"
    relaxed = solve(dataclasses.replace(p, single_gpu_type=False), time_limit_s=5)
    assert relaxed.status == "optimal"  # 1 × g2 ($9) + 2 × g1 ($8) for w1, half a g1x2 instance ($1) for w2
    assert relaxed.objective_value == pytest.approx(18.0)
