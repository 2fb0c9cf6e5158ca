"""Predict a measured benchmark row with the simulator: closed-loop, open-loop and percentile rows.

The analytical step model predicts means of isolated or saturated runs. Rows measured as
``benchmark_serving`` measures them are predicted by replaying the benchmark:

- ``mode = closed``: ``batch`` clients (``--max-concurrency``), each sending its next request when the
  last one ends, all starting at t = 0, CLOSED_ROUNDS × batch requests (at least MIN_REQUESTS);
- ``mode = open``: Poisson arrivals at ``rate_rps`` (``--request-rate``), OPEN_REQUESTS requests;
- ``mode = static``: one batch of ``batch`` requests submitted together (``benchmark_latency``);

with fixed lengths (the random dataset at range ratio 0), seed 0 and the engine's scheduler defaults.
The row's ``percentile`` (mean, p50, p90, p99) selects the statistic; ``decode_tok_s`` is output tokens/s
over the run and ``decode_tok_s_per_user`` is 1000 / TPOT.
"""

from __future__ import annotations

import math
from typing import Protocol

from gpuplan.models.catalog import resolve
from gpuplan.optimizer.errors import InputError
from gpuplan.optimizer.serving.simulation import SimReport, simulate
from gpuplan.optimizer.tables import Tables

CLOSED_ROUNDS = 8
MIN_REQUESTS = 200
OPEN_REQUESTS = 1000
STATS = {"mean": None, "p50": 50, "p90": 90, "p99": 99}
LATENCY = {"ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"}


class Row(Protocol):
    """The fields of a measured row the simulator needs (``validation.Measurement`` has them)."""

    model: str
    gpu: str
    tp: int
    weights: str
    kv: str
    input: int
    output: int
    batch: int
    engine: str
    metric: str
    mode: str
    rate_rps: float | None
    percentile: str


def replay(row: Row, tables: Tables) -> SimReport:
    """Simulate the benchmark run the row was measured with."""
    common = dict(model=resolve(row.model), gpu=row.gpu, weights=row.weights, kv=row.kv, tp=row.tp,
                  input_tokens=max(1, row.input), output_tokens=max(1, row.output), engine=row.engine,
                  seed=0, tables=tables, ep=getattr(row, "ep", 1))
    if row.mode == "open":
        if row.rate_rps is None:
            raise InputError("an open-loop row needs rate_rps")
        return simulate(rate_rps=row.rate_rps, requests=OPEN_REQUESTS, **common)  # type: ignore[arg-type]
    if row.mode == "closed":
        n = max(MIN_REQUESTS, CLOSED_ROUNDS * row.batch)
        return simulate(concurrency=row.batch, requests=n, **common)  # type: ignore[arg-type]
    return simulate(concurrency=row.batch, requests=row.batch, **common)  # type: ignore[arg-type]


def predict_simulated(row: Row, tables: Tables) -> float:
    """The simulator's value for the row's metric and statistic (NaN when the run does not fit in KV)."""
    try:
        r = replay(row, tables)
    except InputError as err:
        if "does not fit in the KV cache" in str(err):
            return math.nan
        raise
    q = STATS[row.percentile]
    if row.metric in LATENCY:
        return r.metric(row.metric, q)
    if row.metric == "decode_tok_s":
        return r.output_tok_s
    if row.metric == "decode_tok_s_per_user":
        return 1e3 / r.metric("tpot_ms", q)
    if row.metric == "prefill_tok_s":
        return row.input * row.batch / (r.metric("ttft_ms", q) / 1e3) if row.mode == "static" else math.nan
    raise InputError(f"metric '{row.metric}' cannot be simulated")
