"""What a budget buys (demand as a ceiling), the budget's exit-3 explanation, near-optimal alternatives and the
options' input checks."""

from __future__ import annotations

import pytest
from gpuplan.optimizer.planning.solver import Problem, solve
from solver_fixtures import candidate as _cand
from solver_fixtures import workload as _workload

FLEET = "examples/fleet.yaml"


def test_budget_serves_equal_shares_of_two_identical_workloads() -> None:
    # two workloads of 4 req/s, one candidate each: 1 req/s per replica on a 1-GPU $1/h offer.
    # $4/h buys 4 replicas: equal shares give each 2 replicas = 50 % of its demand.
    ws = [_workload("a", 4.0), _workload("b", 4.0)]
    cands = [_cand(0, "a", ("p", "g1", 1, 1.0), 1, 1.0), _cand(1, "b", ("p", "g1", 1, 1.0), 1, 1.0)]
    sol = solve(Problem(ws, cands, "on_demand", budget_usd_per_hour=4.0, objective="max-throughput"))
    assert sol.served == {"a": pytest.approx(0.5), "b": pytest.approx(0.5)}


def test_weights_scale_the_served_shares() -> None:
    # weight 3 vs 1: served fractions ≥ φ·1 and ≥ φ·1/3. $4/h = 4 replicas; 3 for a (75 %), 1 for b (25 %)
    # gives φ = 0.75, the best possible (a at 100 % would leave b at 0).
    a = _workload("a", 4.0).model_copy(update={"weight": 3.0})
    ws = [a, _workload("b", 4.0)]
    cands = [_cand(0, "a", ("p", "g1", 1, 1.0), 1, 1.0), _cand(1, "b", ("p", "g1", 1, 1.0), 1, 1.0)]
    sol = solve(Problem(ws, cands, "on_demand", budget_usd_per_hour=4.0, objective="max-throughput"))
    assert sol.served == {"a": pytest.approx(0.75), "b": pytest.approx(0.25)}


def test_demand_is_a_ceiling() -> None:
    # a budget far above the need buys no more than the demand (1 replica at 1 req/s covers 0.6 req/s).
    ws = [_workload("a", 0.6)]
    sol = solve(Problem(ws, [_cand(0, "a", ("p", "g1", 1, 1.0), 1, 1.0)], "on_demand", budget_usd_per_hour=50.0,
                        objective="max-throughput"))
    assert sol.replicas == {"a/c0": 1} and sol.served == {"a": 1.0}


def test_max_throughput_reports_served_fraction(gpuplan) -> None:
    r = gpuplan("plan", FLEET, "--objective", "max-throughput", "--budget-usd-per-hour", "12", "--format", "json")
    assert r.code == 0, r.err
    plan = r.json()
    assert plan["total_usd_per_hour"] <= 12
    fractions = [w["served_fraction"] for w in plan["workloads"]]
    assert all(0 < f <= 1 for f in fractions) and min(fractions) < 1


def test_min_cost_with_a_binding_budget_says_what_it_serves(gpuplan) -> None:
    r = gpuplan("plan", FLEET, "--budget-usd-per-hour", "12")
    assert r.code == 3
    assert "$12.00/h serves" in r.err and "% of chat's demand" in r.err


def test_alternatives_are_dearer_and_of_another_kind(gpuplan) -> None:
    r = gpuplan("plan", FLEET, "--alternatives", "3", "--format", "json")
    assert r.code == 0, r.err
    plan = r.json()
    best_providers = {i["provider"] for i in plan["instances"]}
    assert plan["alternatives"]
    for alt in plan["alternatives"]:
        assert alt["total_usd_per_hour"] >= plan["total_usd_per_hour"] - 1e-9
        assert alt["extra_usd_per_hour"] == pytest.approx(alt["total_usd_per_hour"] - plan["total_usd_per_hour"])
        if alt["kind"] == "other-provider":
            main = max(best_providers, key=lambda p: sum(i["usd_per_hour"] for i in plan["instances"]
                                                         if i["provider"] == p))
            assert main not in alt["providers"]
    within = gpuplan("plan", FLEET, "--alternatives", "3", "--within", "1%", "--format", "json").json()
    assert all(a["extra_fraction"] <= 0.01 for a in within["alternatives"])


@pytest.mark.parametrize("args", [("--alternatives", "-1"), ("--alternatives", "2", "--within", "0"),
                                  ("--alternatives", "2", "--within", "101%"), ("--within", "five")])
def test_bad_alternative_options_exit_2_in_one_line(gpuplan, args) -> None:
    r = gpuplan("plan", FLEET, *args)
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err


@pytest.mark.parametrize("weight", ["0", "-1"])
def test_non_positive_weight_exits_2(gpuplan, tmp_path, weight) -> None:
    f = tmp_path / "w.yaml"
    f.write_text("workloads:\n  - {name: a, model: llama-3.1-8b, input_tokens: 100, output_tokens: 100, rate_rps: 1,"
                 f" weight: {weight}, slo: {{ttft_ms: 1000, tpot_ms: 100}}}}\n")
    r = gpuplan("plan", str(f))
    assert r.code == 2 and "weight" in r.err and len(r.err.strip().splitlines()) == 1
