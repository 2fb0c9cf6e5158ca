"""`gpuplan plan` and `gpuplan candidates` end to end on the shipped data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from gpuplan.optimizer.planning.candidate_gen import generate, prune, usable_offers
from gpuplan.optimizer.planning.solver import Problem, solve
from gpuplan.optimizer.planning.workload import Constraints, load_fleet
from gpuplan.optimizer.tables import Tables

EXAMPLE = Path(__file__).parents[1] / "examples" / "fleet.yaml"

ONE = {"workloads": [{"name": "chat", "model": "llama-3.1-8b", "weights": ["bf16", "fp8"], "kv": ["bf16"],
                      "input_tokens": 1000, "output_tokens": 200, "max_context": 8192, "rate_rps": 10,
                      "slo": {"ttft_ms": 1000, "tpot_ms": 40}}],
       "constraints": {"providers": ["aws", "lambda", "nebius"]}}


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "w.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_plan_json_contract_and_determinism(gpuplan) -> None:
    a = gpuplan("plan", str(EXAMPLE), "--format", "json")
    b = gpuplan("plan", str(EXAMPLE), "--format", "json")
    assert a.code == 0, a.err
    da, db = a.json(), b.json()
    da.pop("solve_seconds"), db.pop("solve_seconds")
    assert json.dumps(da) == json.dumps(db)
    for key in ("status", "gap", "total_usd_per_hour", "usd_per_mtok_output", "workloads", "instances"):
        assert key in da
    assert da["status"] == "optimal"
    w = da["workloads"][0]
    for key in ("name", "usd_per_hour", "usd_per_mtok_output", "deployments"):
        assert key in w
    d = w["deployments"][0]
    for key in ("candidate", "gpu", "provider", "offer", "weights", "kv", "tp", "replicas", "gpus", "batch",
                "tpot_ms", "ttft_ms", "output_tok_s", "usd_per_hour", "launch"):
        assert key in d
    assert d["launch"].startswith(("vllm serve", "llama-server", "python -m sglang"))
    for i in da["instances"]:
        assert {"provider", "offer", "count", "usd_per_hour"} <= set(i)
    # whole instances are paid: the fleet's $/h is the sum over instances, and workloads share it exactly
    assert da["total_usd_per_hour"] == pytest.approx(sum(i["usd_per_hour"] for i in da["instances"]), rel=1e-5)
    assert da["total_usd_per_hour"] == pytest.approx(sum(w["usd_per_hour"] for w in da["workloads"]), rel=1e-5)


def test_every_deployment_meets_its_targets(gpuplan) -> None:
    fleet = load_fleet(EXAMPLE)
    data = gpuplan("plan", str(EXAMPLE), "--format", "json").json()
    for w, plan in zip(fleet.workloads, data["workloads"], strict=True):
        assert plan["deployments"]
        for d in plan["deployments"]:
            assert d["tpot_ms"] <= w.slo.tpot_ms and d["ttft_ms"] <= w.slo.ttft_ms
        if w.rate_rps:
            assert sum(d["capacity_req_s"] for d in plan["deployments"]) >= w.rate_rps


def test_plan_writes_skypilot_tasks(gpuplan, tmp_path: Path) -> None:
    r = gpuplan("plan", str(_write(tmp_path, ONE)), "-o", str(tmp_path / "out"))
    assert r.code == 0, r.err
    tasks = list((tmp_path / "out").glob("*.sky.yaml"))
    assert tasks and (tmp_path / "out" / "plan.json").exists()
    task = yaml.safe_load(tasks[0].read_text())
    assert task["service"]["replicas"] >= 1 and "vllm serve" in task["run"]


def test_tighter_tpot_never_costs_less(gpuplan, tmp_path: Path) -> None:
    costs = []
    for tpot in (60, 30, 15):
        data = json.loads(json.dumps(ONE))
        data["workloads"][0]["slo"]["tpot_ms"] = tpot
        r = gpuplan("plan", str(_write(tmp_path, data)), "--format", "json")
        assert r.code == 0, r.err
        costs.append(r.json()["total_usd_per_hour"])
    assert costs == sorted(costs)


def test_impossible_slo_exits_3_with_reasons(gpuplan, tmp_path: Path) -> None:
    data = json.loads(json.dumps(ONE))
    data["workloads"][0]["slo"]["tpot_ms"] = 0.5
    r = gpuplan("plan", str(_write(tmp_path, data)))
    assert r.code == 3
    assert "workload 'chat'" in r.err and "TPOT at batch 1" in r.err and "Traceback" not in r.err


def test_context_beyond_model_limit_exits_3(gpuplan, tmp_path: Path) -> None:
    data = json.loads(json.dumps(ONE))
    data["workloads"][0]["model"] = "llama-2-7b"  # max_position_embeddings 4096
    r = gpuplan("plan", str(_write(tmp_path, data)))
    assert r.code == 3 and "beyond llama-2-7b's limit of 4,096" in r.err


def test_budget_that_binds_is_named(gpuplan, tmp_path: Path) -> None:
    r = gpuplan("plan", str(_write(tmp_path, ONE)), "--budget-usd-per-hour", "0.5")
    assert r.code == 3 and "budget $0.50/h binds" in r.err


def test_gpu_cap_that_binds_is_named(gpuplan, tmp_path: Path) -> None:
    data = json.loads(json.dumps(ONE))
    data["workloads"][0]["rate_rps"] = 200
    data["constraints"]["gpus"] = ["h100-sxm"]
    data["constraints"]["max_gpus"] = {"h100-sxm": 1}
    r = gpuplan("plan", str(_write(tmp_path, data)))
    assert r.code == 3 and "max_gpus h100-sxm = 1 binds" in r.err


@pytest.mark.parametrize(("patch", "needle"), [
    ({"rate_rps": -1}, "workload 'chat', field 'rate_rps'"),
    ({"concurrency": 5}, "exactly one of rate_rps, concurrency or rate_profile"),
    ({"slo": {"ttft_ms": 100}}, "field 'slo.tpot_ms'"),
    ({"model": "llama-9"}, "unknown model 'llama-9'"),
    ({"weights": ["fp7"]}, "unknown weight format 'fp7'"),
])
def test_bad_workload_file_exit_2(gpuplan, tmp_path: Path, patch: dict, needle: str) -> None:
    data = json.loads(json.dumps(ONE))
    data["workloads"][0].update(patch)
    r = gpuplan("plan", str(_write(tmp_path, data)))
    assert r.code == 2 and needle in r.err and len(r.err.strip().splitlines()) == 1


def test_no_output_file_on_error(gpuplan, tmp_path: Path) -> None:
    data = json.loads(json.dumps(ONE))
    data["workloads"][0]["slo"]["tpot_ms"] = 0.5
    out = tmp_path / "plan.json"
    r = gpuplan("plan", str(_write(tmp_path, data)), "--format", "json", "-o", str(out))
    assert r.code == 3 and not out.exists()


def test_candidates_command_lists_fields(gpuplan, tmp_path: Path) -> None:
    r = gpuplan("candidates", str(_write(tmp_path, ONE)), "--format", "json")
    rows = r.json()
    assert rows
    for key in ("id", "workload", "gpu", "provider", "offer", "weights", "kv", "tp", "gpus_per_replica",
                "gpus_per_instance", "instance_usd_per_hour", "capacity_req_s", "capacity_sequences",
                "capacity_tok_s", "usd_per_hour"):
        assert key in rows[0]


def test_pruning_is_safe() -> None:
    # The optimum over the pruned candidates equals the optimum over all of them.
    tables = Tables()
    fleet = load_fleet(EXAMPLE)
    c = Constraints(providers=["aws", "lambda"])
    offers, _ = usable_offers(tables, c)
    for w in fleet.workloads[:2]:
        kept = generate(w, c, tables, offers)
        import gpuplan.optimizer.planning.candidate_gen as mod

        original = mod.prune, mod._undominated  # candidates (percentile SLOs) and points (mean SLOs)
        try:
            mod.prune, mod._undominated = (lambda cands: sorted(cands, key=lambda x: x.id)), (lambda ps: ps)
            everything = generate(w, c, tables, offers)
        finally:
            mod.prune, mod._undominated = original
        assert len(everything.candidates) > len(kept.candidates)
        assert prune(everything.candidates) == kept.candidates
        full = solve(Problem([w], everything.candidates, c.tier))
        pruned = solve(Problem([w], kept.candidates, c.tier))
        assert pruned.objective_value == pytest.approx(full.objective_value)
