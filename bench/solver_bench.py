"""Benchmark: fleets of 1, 100 and 1,000 workloads over the full catalog (every model, every offer, on-demand),
planned by the whole ``gpuplan plan`` command in a fresh process (start-up, table loading, candidate
generation, solve and output included). Prints wall and CPU seconds, status, gap and $/h per fleet;
``python bench/solver_bench.py --repeat 3`` runs each fleet three times and adds min / median / max."""

from __future__ import annotations

import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from gpuplan.models.catalog import load_catalog
from gpuplan.optimizer.planning.workload import Fleet

SHAPES = [(1500, 300, 1500, 50), (800, 200, 500, 25), (4000, 500, 2000, 30), (3000, 400, 30000, 200),
          (200, 800, 800, 40), (8000, 1000, 5000, 80)]
FORMATS = [(["bf16", "fp8"], ["bf16", "fp8"]), (["bf16", "fp8", "awq"], ["fp8"]), (["bf16"], ["bf16"])]


MAX_PARAMS = 250e9  # bf16 fits one 8-GPU node: the catalog's trillion-parameter models would only add misses


def fleet(n: int = 100, seed: int = 7) -> Fleet:
    rng = random.Random(seed)
    catalog = load_catalog()
    longest = max(i + o for i, o, _, _ in SHAPES)
    models = sorted(m for m in catalog if not m.startswith(("deepseek", "llama-3.1-405b", "llama-4-mav", "llama-2"))
                    and (catalog[m].arch.max_context or longest) >= longest
                    and catalog[m].params.total <= MAX_PARAMS)
    workloads = []
    for i in range(n):
        inp, out, ttft, tpot = rng.choice(SHAPES)
        weights, kv = rng.choice(FORMATS)
        demand = {"rate_rps": round(rng.uniform(0.5, 30), 1)} if rng.random() < 0.8 else {
            "concurrency": rng.choice([32, 64, 128, 256])}
        model = rng.choice(models)
        limit = catalog[model].arch.max_context or 10**9
        workloads.append({"name": f"w{i:03d}", "model": model, "weights": weights, "kv": kv,
                          "input_tokens": inp, "output_tokens": out,
                          "max_context": min(4 * (inp + out), limit),
                          "slo": {"ttft_ms": ttft, "tpot_ms": tpot}, **demand})
    return Fleet.model_validate({"workloads": workloads})


SIZES = ((1, 10.0), (100, 10.0), (1000, 60.0))  # (workloads, --time-limit s): the targets of README


def write_fleet(n: int, folder: Path) -> Path:
    path = folder / f"fleet{n}.yaml"
    path.write_text(yaml.safe_dump(fleet(n).model_dump(mode="json", exclude_none=True)))
    return path


def run_one(n: int, time_limit: float) -> dict[str, float | str | int]:
    """One whole command in a fresh process; wall seconds measured around it, and the CPU seconds it used
    (user + system) with the 1-minute load average before it: on a shared machine the wall time depends on
    what else runs, the CPU time much less."""
    with tempfile.TemporaryDirectory() as tmp:
        path = write_fleet(n, Path(tmp))
        load = os.getloadavg()[0]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "gpuplan", "plan", str(path), "--format", "json",
                              "--time-limit", f"{time_limit:g}"], capture_output=True, text=True)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    common = {"workloads": n, "time_limit": time_limit, "wall_s": wall, "cpu_s": cpu, "load": load}
    if out.returncode:
        return {**common, "status": f"exit {out.returncode}", "gap": float("nan"), "usd_per_hour": float("nan"),
                "candidates": 0, "message": out.stderr.strip()[:200]}
    plan = json.loads(out.stdout)
    return {**common, "status": plan["status"], "gap": plan["gap"], "usd_per_hour": plan["total_usd_per_hour"],
            "candidates": plan["candidates"], "bound_usd_per_hour": plan["bound_usd_per_hour"], "message": ""}


def run(sizes=SIZES) -> list[dict[str, float | str | int]]:
    return [run_one(n, limit) for n, limit in sizes]


def describe(r: dict[str, float | str | int]) -> str:
    return (f"plan: {r['workloads']:>5} workloads, --time-limit {r['time_limit']:g}: whole command {r['wall_s']:.1f} s "
            f"wall ({r['cpu_s']:.1f} s CPU, load {r['load']:.1f}), {r['candidates']:,} candidates, {r['status']}, "
            f"gap {r['gap']:.3%}, ${r['usd_per_hour']:,.2f}/h {r['message']}")


def summary(rows: list[dict[str, float | str | int]]) -> str:
    """min / median / max of wall time, CPU time and gap over repeated runs of one fleet."""
    def spread(key: str, fmt: str) -> str:
        values = sorted(float(r[key]) for r in rows)
        return "/".join(format(v, fmt) for v in (values[0], statistics.median(values), values[-1]))

    r0 = rows[0]
    return (f"{r0['workloads']:>5} workloads, --time-limit {r0['time_limit']:g}, {len(rows)} runs (min/median/max): "
            f"wall {spread('wall_s', '.1f')} s, CPU {spread('cpu_s', '.1f')} s, gap {spread('gap', '.3%')}, "
            f"load {spread('load', '.1f')}; statuses {sorted({str(r['status']) for r in rows})}")


if __name__ == "__main__":
    args = sys.argv[1:]
    if args and args[0] != "--repeat":  # write the fleet files only, for timing with an external tool
        for n in map(int, args[1:]):
            print(write_fleet(n, Path(args[0])))
        sys.exit(0)
    repeat = int(args[1]) if args else 1
    for n, limit in SIZES:
        rows = [run_one(n, limit) for _ in range(repeat)]
        for r in rows:
            print(describe(r))
        if repeat > 1:
            print(summary(rows))
