"""Run every benchmark and print its figures (``make bench``)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import catalog_bench
import perf_bench
import sim_bench
import solver_bench
import sweep_bench

if __name__ == "__main__":
    r = perf_bench.run()
    print(f"perf model: {r['deployments']:,} deployments × 256 batch sizes = {r['evaluations']:,} evaluations "
          f"in {r['seconds']:.3f} s → {r['evals_per_s']:,.0f} evaluations/s")
    for row in sim_bench.run():
        print(sim_bench.describe(row))
    for s in solver_bench.run():
        print(solver_bench.describe(s))
    print(sweep_bench.report(sweep_bench.run()))
    c = catalog_bench.run()
    print(f"SkyPilot catalog: {c['rows']:,} rows → {c['offers']:,} offers in {c['seconds']:.2f} s "
          f"({c['cpu_seconds']:.2f} s CPU)")
