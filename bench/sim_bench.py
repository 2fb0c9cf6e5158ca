"""Benchmark: simulated requests per second of wall time (one core, pure Python event loop).

Wall time on a shared machine is noisy, so CPU time of this process is printed too. Three streams on one
replica: open loop at 80 % of the step model's limit at batch 256, a closed loop of 256 clients, and an
overloaded closed loop whose KV cache fills (preemptions). Each is timed end to end through ``simulate``
(step tables, request generation, the event loop and the statistics)."""

from __future__ import annotations

import time

from gpuplan.optimizer.serving.deployment import perf
from gpuplan.optimizer.serving.simulation import simulate

OPEN_BATCH, OPEN_LOAD = 256, 0.8


def _open_rate() -> float:
    """80 % of the step model's request-rate limit of Llama 3.1 8B on an H100 at batch 256."""
    p = perf("llama-3.1-8b", "h100-sxm", input_tokens=1000, output_tokens=200, batch=OPEN_BATCH, utilization=1.0)
    return OPEN_LOAD * p.decode_tok_s / 200


CASES = (
    ("open at 80 % of the limit, llama-3.1-8b h100-sxm, 1000→200 ±50 %", dict(
        model="llama-3.1-8b", gpu="h100-sxm", input_tokens=1000, output_tokens=200, rate_rps=None,
        range_ratio=0.5, requests=50_000, max_num_seqs=OPEN_BATCH)),
    ("closed 256 clients, llama-3.1-70b fp8 4 × h100-sxm, 1500→300", dict(
        model="llama-3.1-70b", gpu="h100-sxm", tp=4, weights="fp8", kv="fp8", input_tokens=1500,
        output_tokens=300, concurrency=256, requests=50_000)),
    ("closed 128 clients, KV-bound qwen3-8b l4, 6000→2000 (preempting)", dict(
        model="qwen3-8b", gpu="l4", input_tokens=6000, output_tokens=2000, concurrency=128, requests=20_000)),
)


def run() -> list[dict[str, object]]:
    rows = []
    for label, kw in CASES:
        if "rate_rps" in kw:
            kw = {**kw, "rate_rps": _open_rate()}
            label = label.replace("80 % of the limit", f"{kw['rate_rps']:.1f} req/s (80 % of the limit)")
        start, cpu = time.perf_counter(), time.process_time()
        r = simulate(**kw)  # type: ignore[arg-type]
        seconds, cpu_s = time.perf_counter() - start, time.process_time() - cpu
        rows.append({"case": label, "requests": r.requests, "steps": r.steps, "preemptions": r.preemptions,
                     "seconds": seconds, "cpu_s": cpu_s,
                     "req_per_s": r.requests / seconds, "req_per_cpu_s": r.requests / cpu_s,
                     "ttft_p99_ms": r.ttft_ms.p99, "tpot_p99_ms": r.tpot_ms.p99})
    return rows


def describe(row: dict[str, object]) -> str:
    return (f"simulator: {row['case']}: {row['requests']:,} requests, {row['steps']:,} engine steps, "
            f"{row['preemptions']:,} preemptions in {row['seconds']:.2f} s wall, {row['cpu_s']:.2f} s CPU → "
            f"{row['req_per_s']:,.0f} simulated requests/s wall, {row['req_per_cpu_s']:,.0f} per CPU second")


if __name__ == "__main__":
    for row in run():
        print(describe(row))
