"""Benchmark: roofline evaluations per second over the whole catalog (every model × GPU × weight
format × TP, a batch grid of 1..256 each). Prints the problem size and the rate."""

from __future__ import annotations

import time

import numpy as np
from gpuplan.models.catalog import load_catalog
from gpuplan.optimizer.errors import InputError
from gpuplan.optimizer.serving.deployment import check_tp, default_engine, max_tp
from gpuplan.optimizer.serving.roofline import decode_step_s, prefill_s, serving
from gpuplan.optimizer.serving.shape import make_shape
from gpuplan.optimizer.tables import Tables

BATCHES = np.arange(1, 257, dtype=float)
WEIGHTS = ("bf16", "fp8", "awq", "nvfp4")


def run() -> dict[str, float]:
    tables = Tables()
    shapes = []
    for model in load_catalog().values():
        for gpu in tables.gpus:
            for w in WEIGHTS:
                wfmt = tables.formats.weight(w)
                for tp in (1, 2, 4, 8):
                    if tp > max_tp(gpu):
                        continue
                    try:
                        check_tp(model.arch, gpu, tp, model.id)
                    except InputError:
                        continue
                    cal = tables.calibration.lookup(default_engine(gpu, wfmt), gpu.id, gpu.vendor)
                    shape, _ = make_shape(model.arch, gpu, tp, wfmt, tables.formats.kv_format("bf16"), 1650, cal)
                    shapes.append((shape, model.arch))
    start = time.perf_counter()
    for shape, arch in shapes:
        t_pre = prefill_s(shape, arch, 1500)
        t_step, _ = decode_step_s(shape, BATCHES)
        serving(t_step, t_pre, BATCHES, 300, 0.85)
    elapsed = time.perf_counter() - start
    evals = len(shapes) * BATCHES.size
    return {"deployments": len(shapes), "evaluations": evals, "seconds": elapsed, "evals_per_s": evals / elapsed}


if __name__ == "__main__":
    r = run()
    print(f"perf model: {r['deployments']:,} deployments × {BATCHES.size} batch sizes = {r['evaluations']:,} "
          f"evaluations in {r['seconds']:.3f} s → {r['evals_per_s']:,.0f} evaluations/s")
