"""Percentile SLOs in plans: parsing, simulator-backed capacities, and that tighter never costs less."""

from __future__ import annotations

import pytest
from gpuplan.optimizer.api import candidates, plan
from gpuplan.optimizer.planning import percentile
from gpuplan.optimizer.serving.simulation import simulate
from hypothesis import given, settings
from hypothesis import strategies as st


def chat(percentile_value: object = 90, **slo: float) -> dict:
    return {"workloads": [{
        "name": "chat", "model": "llama-3.1-8b", "weights": ["bf16", "fp8"], "kv": ["bf16"], "input_tokens": 1000,
        "output_tokens": 200, "rate_rps": 30,
        "slo": {"ttft_ms": slo.get("ttft_ms", 300), "tpot_ms": slo.get("tpot_ms", 20),
                "percentile": percentile_value}}],
        "constraints": {"gpus": ["h100-sxm", "l40s"], "providers": ["aws", "lambda"]}}


@pytest.mark.parametrize(("value", "needle"), [
    (100, "percentile must be in (0, 100), got 100"),
    (0, "percentile must be in (0, 100), got 0"),
    (-5, "percentile must be in (0, 100), got -5"),
    ("p100", "percentile must be in (0, 100), got 100"),
    ("often", "percentile must be a number in (0, 100), 'pNN' or 'mean'"),
])
def test_percentile_outside_0_100_is_refused(gpuplan, tmp_path, value: object, needle: str) -> None:
    import yaml

    path = tmp_path / "w.yaml"
    path.write_text(yaml.safe_dump(chat(value)))
    r = gpuplan("plan", str(path))
    assert r.code == 2
    assert needle in r.err and "workload 'chat', field 'slo.percentile'" in r.err and str(path) in r.err
    assert len(r.err.strip().splitlines()) == 1


def test_p90_candidates_are_simulated_and_reproducible() -> None:
    # Each simulated candidate's capacity is a rate at which `simulate` (same seed, same request count)
    # gives p90 TTFT/TPOT within the targets — the same numbers the candidate carries.
    sims = [c for c in candidates(chat(90)).candidates if c.latency == "p90 simulated"]
    assert sims
    for c in sims[:3]:
        assert c.ttft_ms <= 300 and c.tpot_ms <= 20
        r = simulate(c.model, c.gpu, c.weights, c.kv, c.tp, 1000, 200, rate_rps=c.capacity_req_s,
                     requests=percentile.sim_requests(90), seed=percentile.SEED, max_num_seqs=c.batch, engine=c.engine)
        assert r.ttft_ms.p90 == pytest.approx(c.ttft_ms, rel=1e-6)
        assert r.tpot_ms.p90 == pytest.approx(c.tpot_ms, rel=1e-6)


def test_plan_table_shows_the_percentile_next_to_the_target(gpuplan, tmp_path) -> None:
    import yaml

    path = tmp_path / "w.yaml"
    path.write_text(yaml.safe_dump(chat("p99")))
    r = gpuplan("plan", str(path))
    assert r.code == 0, r.err
    assert "TTFT p99 ms (≤ 300)" in r.out and "TPOT p99 ms (≤ 20)" in r.out
    assert "p99 simulated" in r.out
    data = gpuplan("plan", str(path), "--format", "json").json()
    w = data["workloads"][0]
    assert w["percentile"] == 99 and w["slo_ttft_ms"] == 300
    for d in w["deployments"]:
        assert d["latency"] == "p99 simulated" and d["ttft_ms"] <= 300 and d["tpot_ms"] <= 20


def test_mean_slo_is_unchanged_by_the_percentile_machinery() -> None:
    mean = plan(chat("mean"))
    assert all(d.latency == "mean model" for w in mean.workloads for d in w.deployments)
    assert mean.workloads[0].percentile is None


def test_percentile_targets_bind() -> None:
    # With TTFT ≤ 120 ms and TPOT ≤ 15 ms at 400 req/s the percentile decides the fleet: p50 is cheaper than
    # p99, and the cost never falls as the percentile tightens.
    costs = []
    for q in (50, 90, 99):
        fleet = chat(q, ttft_ms=120, tpot_ms=15)
        fleet["workloads"][0]["rate_rps"] = 400
        costs.append(plan(fleet).total_usd_per_hour)
    assert costs == sorted(costs) and costs[0] < costs[2]


@settings(max_examples=6, deadline=None)
@given(pair=st.lists(st.sampled_from([50, 75, 90, 95, 99]), min_size=2, max_size=2, unique=True).map(sorted),
       rate=st.sampled_from([30, 80, 400]), slo=st.sampled_from([(120, 15), (200, 20)]))
def test_tighter_percentile_never_costs_less(pair: list[int], rate: int, slo: tuple[int, int]) -> None:
    loose, tight = pair
    costs = []
    for q in (loose, tight):
        fleet = chat(q, ttft_ms=slo[0], tpot_ms=slo[1])
        fleet["workloads"][0]["rate_rps"] = rate
        costs.append(plan(fleet).total_usd_per_hour)
    assert costs[1] >= costs[0] - 1e-9


def test_concurrency_workload_gets_the_most_clients_meeting_p90() -> None:
    # Closed loop: each simulated candidate holds the most clients whose p90 TTFT/TPOT (after the first round)
    # meet the targets, never more than its KV holds; one more client would miss them (bisection on integers).
    fleet = {"workloads": [{"name": "batch", "model": "llama-3.1-8b", "weights": ["fp8"], "kv": ["fp8"],
                            "input_tokens": 2000, "output_tokens": 300, "concurrency": 512,
                            "slo": {"ttft_ms": 2000, "tpot_ms": 40, "percentile": 90}}],
             "constraints": {"gpus": ["h100-sxm"], "providers": ["aws", "lambda"]}}
    from gpuplan.optimizer.api import fleet as make_fleet
    from gpuplan.optimizer.serving.arrivals import make_requests
    from gpuplan.optimizer.serving.simulation import deployment_steps
    from gpuplan.optimizer.serving.simulator import SchedulerConfig, simulate_trace
    from gpuplan.optimizer.tables import Tables

    w = make_fleet(fleet).workloads[0]
    sims = [c for c in candidates(fleet).candidates if c.latency == "p90 simulated"]
    assert sims
    c = sims[0]
    assert c.ttft_ms <= 2000 and c.tpot_ms <= 40 and c.batch == c.capacity_sequences
    assert c.capacity_sequences <= percentile.largest_batch(c, w, Tables())
    steps, _, _, tokens = deployment_steps(percentile.resolve(c.model), c.gpu, c.weights, c.kv, c.tp, c.engine,
                                           2000, 300, percentile.largest_batch(c, w, Tables()), 2300, Tables())
    n = c.capacity_sequences + 1
    reqs = make_requests(2000, 300, max(percentile.sim_requests(90), 2 * n), 0, concurrency=n)
    tr = simulate_trace(steps, reqs.input_tokens, reqs.output_tokens, SchedulerConfig(n, max(tokens, n)),
                        concurrency=n)
    ttft, tpot, _ = percentile.trace_percentiles(tr, 90, skip=n)
    assert n > percentile.largest_batch(c, w, Tables()) or ttft > 2000 or tpot > 40
