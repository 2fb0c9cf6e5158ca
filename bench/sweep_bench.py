"""``gpuplan sweep --workers N``: wall time of an 8-point sweep with 1 and 2 worker processes.

Each run is a fresh CLI process (no warm caches shared between the runs); the points are the four-workload
example fleet at eight TPOT targets, so every point does real candidate generation and a real solve.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GRID = "slo.tpot_ms=25,30,35,40,50,60,80,100"


def _sweep(workers: int) -> tuple[float, list[dict]]:
    exe = Path(sys.executable).with_name("gpuplan")
    start = time.perf_counter()
    out = subprocess.run([str(exe), "sweep", "examples/fleet.yaml", "--vary", GRID, "--workers", str(workers),
                          "--format", "json"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return time.perf_counter() - start, json.loads(out)


def run() -> dict[str, float]:
    serial_s, serial = _sweep(1)
    parallel_s, parallel = _sweep(2)
    same = [p["total_usd_per_hour"] for p in serial] == [p["total_usd_per_hour"] for p in parallel]
    return {"points": len(serial), "cores": os.cpu_count() or 1, "serial_s": serial_s, "parallel_s": parallel_s,
            "speedup": serial_s / parallel_s, "same_costs": same}


def report(r: dict[str, float]) -> str:
    return (f"sweep: {r['points']} points on {r['cores']} cores; --workers 1 {r['serial_s']:.1f} s, --workers 2 "
            f"{r['parallel_s']:.1f} s → {r['speedup']:.2f}×, same costs: {r['same_costs']}")


if __name__ == "__main__":
    print(report(run()))
