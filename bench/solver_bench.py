"""Benchmark: a fleet of 100 workloads over the full catalog (every model, every offer, on-demand).
Prints candidates, variables, candidate-generation and solve time, status and gap."""

from __future__ import annotations

import random
import time

from gpuplan.models.catalog import load_catalog
from gpuplan.models.params import count_params
from gpuplan.optimizer.planning.planner import all_candidates, build_plan
from gpuplan.optimizer.planning.workload import Fleet
from gpuplan.optimizer.tables import Tables

MAX_PARAMS = 250e9  # bf16 weights of larger models fit no single node of the table (the workloads allow bf16)
SHAPES = [(1500, 300, 1500, 50), (800, 200, 500, 25), (4000, 500, 2000, 30), (3000, 400, 30000, 200),
          (200, 800, 800, 40), (8000, 1000, 5000, 80)]
FORMATS = [(["bf16", "fp8"], ["bf16", "fp8"]), (["bf16", "fp8", "awq"], ["fp8"]), (["bf16"], ["bf16"])]


def fleet(n: int = 100, seed: int = 7) -> Fleet:
    rng = random.Random(seed)
    catalog = load_catalog()
    models = sorted(m for m in catalog if not m.startswith(("deepseek", "llama-3.1-405b", "llama-4-mav", "llama-2"))
                    and count_params(catalog[m].arch).total <= MAX_PARAMS)
    workloads = []
    for i in range(n):
        inp, out, ttft, tpot = rng.choice(SHAPES)
        weights, kv = rng.choice(FORMATS)
        demand = {"rate_rps": round(rng.uniform(0.5, 30), 1)} if rng.random() < 0.8 else {
            "concurrency": rng.choice([32, 64, 128, 256])}
        model = rng.choice([m for m in models if (catalog[m].arch.max_context or inp + out) >= inp + out])
        limit = catalog[model].arch.max_context or 4 * (inp + out)  # 0: no context limit (pure SSM)
        workloads.append({"name": f"w{i:03d}", "model": model, "weights": weights, "kv": kv,
                          "input_tokens": inp, "output_tokens": out, "max_context": min(4 * (inp + out), limit),
                          "slo": {"ttft_ms": ttft, "tpot_ms": tpot}, **demand})
    return Fleet.model_validate({"workloads": workloads})


def run(n: int = 100, time_limit: float = 10.0) -> dict[str, float | str | int]:
    tables = Tables()
    f = fleet(n)
    start = time.perf_counter()
    sets, _ = all_candidates(f, tables)
    gen = time.perf_counter() - start
    report = build_plan(f, tables, time_limit_s=time_limit)
    return {"workloads": n, "candidates": sum(len(s.candidates) for s in sets), "variables": report.variables,
            "generation_s": gen, "solve_s": report.solve_seconds, "status": report.status, "gap": report.gap,
            "usd_per_hour": report.total_usd_per_hour}


if __name__ == "__main__":
    r = run()
    print(f"solver: {r['workloads']} workloads, {r['candidates']:,} candidates, {r['variables']:,} variables; "
          f"generation {r['generation_s']:.2f} s, solve {r['solve_s']:.2f} s, {r['status']}, gap {r['gap']:.3%}, "
          f"${r['usd_per_hour']:,.2f}/h")
