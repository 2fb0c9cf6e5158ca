"""The residue model (``model.residues``): its bound against the exact assignment model, its plans, its proofs.

The model claims, for a cost U: every plan costing ≤ U costs at least its bound (and the bound is at most U + 1),
and its plan, packed into whole instances, is a real plan. Both are checked on random separable fleets with
1- to 10-GPU offers and TP 1, 2, 3, 4, 6 and 8 (where exact packing can need more than the model's idle-GPU
count) against ``exact_checker`` (HiGHS assigning replicas to concrete instances, nothing shared with the solver).
"""

from __future__ import annotations

import contextlib
import math
import os

import pytest
from exact_checker import exact_min_cost
from gpuplan.optimizer.planning import solver
from gpuplan.optimizer.planning.model.problem import PRICE_SCALE, Problem, cap_units, demand_units
from gpuplan.optimizer.planning.model.reduce import bound_tables, eliminate
from gpuplan.optimizer.planning.model.residues import solve_residues
from gpuplan.optimizer.planning.model.start import cost_of, greedy
from gpuplan.optimizer.planning.solver import solve
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from solver_fixtures import candidate, draw_candidates, draw_workloads, offer_lists, workload

EXAMPLES = int(os.environ.get("RESIDUE_EXAMPLES", "60"))


@st.composite
def separable(draw):
    """One or two workloads, two to five candidates each on offers of 1 to 10 GPUs, no caps or budget."""
    offers = draw(offer_lists([1, 2, 3, 4, 5, 6, 8, 10], 30, 3))
    workloads = draw_workloads(draw, 8.0)
    cands = draw_candidates(draw, workloads, offers, (2, 5), (1, 2, 3, 4, 6, 8), (0.3, 3.0), tp_exponent=0.8)
    return Problem(workloads, cands, "on_demand", single_gpu_type=draw(st.booleans()))


def _meets_demand(p: Problem, counts: dict[str, int]) -> bool:
    by_id = {c.id: c for c in p.candidates}
    return all(sum(cap_units(by_id[i], w) * k for i, k in counts.items() if by_id[i].workload == w.name)
               >= demand_units(w) for w in p.workloads)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(separable(), st.sampled_from([0.0, 0.01, 0.05, 0.2, 1.0]))
def test_residue_bound_never_exceeds_the_exact_optimum(p: Problem, slack: float) -> None:
    expected = exact_min_cost(p)
    tables = bound_tables(p, p.candidates)
    lb = sum(float(t[0][-1]) for t in tables.values())
    start = greedy(p, p.candidates, {w.name: w for w in p.workloads})
    upper = math.floor(lb * (1 + slack)) if slack < 1 else cost_of(p.candidates, start)
    cands = eliminate(p, p.candidates, {w.name: w for w in p.workloads}, tables, upper)
    res = solve_residues(p, cands, tables, upper, det_s=5.0, wall_s=30.0)
    assert res is not None
    assert res.bound <= upper + 1
    if expected is None:  # one GPU type per workload left no plan: nothing to bound
        assert not res.counts
        return
    exact_units = round(expected * PRICE_SCALE)
    assert res.bound <= exact_units  # below U it bounds the optimum; above U, U + 1 ≤ the optimum
    if res.counts:
        assert _meets_demand(p, res.counts)
        assert cost_of(cands, res.counts) >= exact_units  # a real plan
    if res.optimal and exact_units <= upper and all(c.tp & (c.tp - 1) == 0 and
                                                   c.gpus_per_instance & (c.gpus_per_instance - 1) == 0
                                                   for c in p.candidates):
        # power-of-two offers and TP degrees: the idle-GPU count is exact packing, so the model is the problem
        assert res.bound == exact_units
        assert cost_of(cands, res.counts) == exact_units


@contextlib.contextmanager
def _large_model_path():
    saved = solver.LARGE_MODEL
    solver.LARGE_MODEL = 0
    try:
        yield
    finally:
        solver.LARGE_MODEL = saved


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(separable())
def test_solver_with_residues_reports_true_bounds_and_gaps(p: Problem) -> None:
    expected = exact_min_cost(p)
    with _large_model_path():
        sol = solve(p, time_limit_s=5)
    if expected is None:
        assert sol.status == "infeasible"
        return
    assert sol.bound <= expected + 1e-9
    assert sol.objective_value >= expected - 1e-9
    if sol.status == "optimal":
        assert sol.objective_value == pytest.approx(expected, abs=1e-9)
    else:
        assert sol.gap == pytest.approx((sol.objective_value - sol.bound) / sol.objective_value, abs=1e-6)


def _two_on_eight() -> Problem:
    # $8/h for 8 GPUs ($1/GPU) or $1.20/h for 1 GPU; two workloads of 3 TP-1 replicas (1 req/s each, 3 req/s).
    big, small = ("p1", "g1", 8, 8.0), ("p1", "g1", 1, 1.2)
    ws = [workload("a", 3.0), workload("b", 3.0)]
    cands = [candidate(i, w.name, o, 1, 1.0) for i, (w, o) in enumerate((w, o) for w in ws for o in (big, small))]
    return Problem(ws, cands, "on_demand")


def test_idle_gpus_raise_the_bound_to_the_optimum() -> None:
    """Σ LB_w = 6 GPUs × $1 = $6.00/h, but 6 GPUs of an 8-GPU instance leave 2 idle ($8.00/h), and any split
    leaves more idle or pays $1.20 per GPU: 6 × $1.20 = $7.20/h is the optimum, which the model proves."""
    p = _two_on_eight()
    tables = bound_tables(p, p.candidates)
    assert sum(float(t[0][-1]) for t in tables.values()) == pytest.approx(6.0 * PRICE_SCALE)
    res = solve_residues(p, p.candidates, tables, 80_000, det_s=1.0, wall_s=10.0)
    assert res.optimal and res.bound == 72_000
    assert cost_of(p.candidates, res.counts) == 72_000
    with _large_model_path():
        sol = solve(p, time_limit_s=5)
    assert sol.status == "optimal" and sol.bound == pytest.approx(7.2) and sol.objective_value == pytest.approx(7.2)


def test_same_result_twice() -> None:
    p = _two_on_eight()
    tables = bound_tables(p, p.candidates)
    first = solve_residues(p, p.candidates, tables, 80_000, det_s=1.0, wall_s=10.0)
    again = solve_residues(p, p.candidates, tables, 80_000, det_s=1.0, wall_s=10.0)
    assert first == again


def _fleet_of_450() -> Problem:
    """30 workloads × 15 candidates on 1-, 2-, 4- and 8-GPU offers of two GPUs (a seeded draw): above the 400
    candidates from which the solver takes the target and residue path."""
    import random

    rng = random.Random(11)
    offers = [("p1", "g1", 8, 16.0), ("p2", "g1", 8, 17.6), ("p1", "g1", 1, 2.3), ("p2", "g2", 4, 6.0),
              ("p1", "g2", 2, 3.4), ("p2", "g2", 8, 11.2)]
    ws = [workload(f"w{i:02d}", round(rng.uniform(1.0, 12.0), 2)) for i in range(30)]
    cands = []
    for w in ws:
        for _ in range(15):
            o = rng.choice(offers)
            tp = rng.choice([t for t in (1, 2, 4, 8) if t <= o[2]])
            cands.append(candidate(len(cands), w.name, o, tp, round(rng.uniform(0.3, 1.5) * tp ** 0.8, 3)))
    return Problem(ws, cands, "on_demand")


def test_residue_path_gives_the_same_plan_alone_and_under_a_cpu_hog() -> None:
    import subprocess
    import sys

    p = _fleet_of_450()
    alone = solve(p, time_limit_s=10)
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        busy = solve(p, time_limit_s=10)
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    assert alone.status in ("optimal", "feasible") and alone.gap <= 1e-3
    assert not any("may differ" in n for n in alone.notes + busy.notes)
    for sol in (alone, busy):
        sol.solve_seconds = 0.0
    assert alone == busy
