"""Predict a measured benchmark row with the simulator: closed-loop, open-loop and percentile rows.

The analytical step model predicts means of isolated or saturated runs. Rows measured as
``benchmark_serving`` measures them are predicted by replaying the benchmark:

- ``mode = closed``: ``batch`` clients (``--max-concurrency``), each sending its next request when the
  last one ends, all starting at t = 0 and every request counted, as ``benchmark_serving`` / ``vllm bench
  serve`` and SGLang's ``bench_serving`` run it (``--request-rate inf``: every request task is created at
  once and a semaphore of ``max_concurrency`` lets them through; the warm-up requests both tools send
  first finish before the timed run starts, so they change nothing here); the row's ``requests``
  (``--num-prompts``) requests, else CLOSED_ROUNDS × batch (at least MIN_REQUESTS);
- ``mode = open``: Poisson arrivals at ``rate_rps`` (``--request-rate``), ``requests`` or OPEN_REQUESTS;
- ``mode = static``: one batch of ``batch`` requests submitted together (``benchmark_latency``);

with the row's length spread (``range_ratio`` about its mean lengths; ``dataset = sharegpt``: ShareGPT's
published length distribution as the benchmark samples it, scaled to the row's mean lengths, see
``dataset_lengths``; else fixed lengths), its parallel layout (``ep``, ``attn_dp``) and scheduler limits
(``max_seqs``, ``max_batched_tokens``; else the engine's defaults) and CUDA graphs (``cuda_graphs`` off: none),
seed 0. With fixed lengths a closed loop
stays in lockstep: every client's request ends at the same step, the next wave of prompts arrives together
and queues for prefill, so TTFT is about half a wave's prefill; spread lengths desynchronise the clients.
The row's ``percentile`` (mean, p50, p90, p99) selects the statistic; ``decode_tok_s`` is output tokens/s
over the run and ``decode_tok_s_per_user`` is 1000 / TPOT.

``gpuplan validate`` reports these for the rows ``needs_simulation`` picks (``simulated_values``); the
calibration fit stays analytical (a replay per row per fit iteration would be far too slow).
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np
from gpuplan.models.catalog import resolve
from gpuplan.optimizer.errors import INPUT_ERRORS, InputError, located
from gpuplan.optimizer.serving.simulation import SimReport, simulate, stats
from gpuplan.optimizer.tables import Tables

CLOSED_ROUNDS = 8
MIN_REQUESTS = 200
OPEN_REQUESTS = 1000
STATS = {"mean": None, "p50": 50, "p90": 90, "p99": 99}
LATENCY = {"ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"}


class Row(Protocol):
    """The fields of a measured row the simulator needs (``validation.Measurement`` has them; ``ep``,
    ``attn_dp``, ``engine_version`` and the benchmark settings of ``OPTIONAL`` are read when present)."""

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


OPTIONAL = ("ep", "attn_dp", "engine_version", "requests", "dataset", "range_ratio", "max_seqs", "max_batched_tokens",
            "cuda_graphs", "prompt_pool", "mem_fraction", "recv_interval")


def replayed_requests(clients: int) -> int:
    """Requests a closed-loop replay sends when the row states none: CLOSED_ROUNDS per client, at least
    MIN_REQUESTS."""
    return max(MIN_REQUESTS, CLOSED_ROUNDS * clients)


def _opt(row: Row, name: str) -> object:
    return getattr(row, name, 1 if name == "ep" else None)


def length_spread(row: Row) -> float:
    """The range ratio the replay draws lengths with: the row's, else 0 (fixed lengths; a ShareGPT row's
    lengths come from the dataset's distribution, ``length_dataset``)."""
    if length_dataset(row) is not None:
        return 0.0
    ratio = _opt(row, "range_ratio")
    return 0.0 if ratio is None else float(ratio)  # type: ignore[arg-type]


def length_dataset(row: Row) -> str | None:
    """The dataset whose length distribution the replay draws from: ``sharegpt`` rows', else None."""
    return "sharegpt" if _opt(row, "dataset") == "sharegpt" else None


def replay(row: Row, tables: Tables) -> SimReport:
    """Simulate the benchmark run the row was measured with."""
    common = dict(model=resolve(row.model), gpu=row.gpu, weights=row.weights, kv=row.kv, tp=row.tp,
                  input_tokens=max(1, row.input), output_tokens=max(1, row.output), engine=row.engine,
                  seed=0, tables=tables, ep=_opt(row, "ep"), attn_dp=_opt(row, "attn_dp"),
                  engine_version=_opt(row, "engine_version"), range_ratio=length_spread(row),
                  dataset=length_dataset(row),
                  max_num_seqs=_opt(row, "max_seqs"), max_batched_tokens=_opt(row, "max_batched_tokens"),
                  cuda_graphs=_opt(row, "cuda_graphs") is not False, prompt_pool=_opt(row, "prompt_pool"),
                  mem_fraction=_opt(row, "mem_fraction"), recv_interval=_opt(row, "recv_interval") or 1)
    n = _opt(row, "requests")
    if row.mode == "open":
        if row.rate_rps is None:
            raise InputError("an open-loop row needs rate_rps")
        return simulate(rate_rps=row.rate_rps, requests=n or OPEN_REQUESTS, **common)  # type: ignore[arg-type]
    if row.mode == "closed":
        n = n or replayed_requests(row.batch)
        return simulate(concurrency=row.batch, requests=n, **common)  # type: ignore[arg-type]
    return simulate(concurrency=row.batch, requests=row.batch, **common)  # type: ignore[arg-type]


def _replay_or_none(row: Row, tables: Tables) -> SimReport | None:
    """The row's replay, None when its run does not fit in KV; other refusals name the row (``located``)."""
    try:
        return replay(row, tables)
    except INPUT_ERRORS as err:
        if "does not fit in the KV cache" in str(err):
            return None
        raise located(row, err) from None


def predict_simulated(row: Row, tables: Tables) -> float:
    """The simulator's value for the row's metric and statistic (NaN when the run does not fit in KV)."""
    r = _replay_or_none(row, tables)
    return math.nan if r is None else row_value(row, r)


def row_value(row: Row, r: SimReport) -> float:
    """The row's metric and statistic read from a replay of its benchmark."""
    q = STATS[row.percentile]
    if row.metric in LATENCY:
        return r.metric(row.metric, q)
    if row.metric == "e2e_per_token_ms":  # each request's E2E over its own output tokens, as LLMPerf reads it
        return stats(r.samples["e2e_per_token_ms"]).at(q)
    if row.metric == "decode_tok_s":
        return r.output_tok_s
    if row.metric == "decode_tok_s_per_user":
        return 1e3 / r.metric("tpot_ms", q)
    if row.metric == "prefill_tok_s":
        return row.input * row.batch / (r.metric("ttft_ms", q) / 1e3) if row.mode == "static" else math.nan
    raise InputError(f"metric '{row.metric}' cannot be simulated")


def needs_simulation(row: Row) -> bool:
    """Rows the analytical model cannot read well: benchmark_serving runs (closed or open loop), tail
    percentiles and the ITL / E2E (and E2E per output token) distributions. Static mean rows (batch-1 latency,
    offline waves) stay analytical."""
    return (row.mode in ("closed", "open") or row.percentile != "mean"
            or row.metric in ("itl_ms", "e2e_ms", "e2e_per_token_ms"))


def benchmark_key(row: Row) -> tuple:
    """The fields that define one benchmark run (rows reading other metrics of the same run share it)."""
    return (row.model, row.gpu, row.tp, row.weights, row.kv, row.input, row.output, row.batch, row.engine,
            row.mode, row.rate_rps, *(_opt(row, k) for k in OPTIONAL))


_VALUES: dict[tuple, float] = {}  # replayed row values of this process (a replay is a pure function of its key)
MAX_VALUES = 200_000


def tables_key(tables: Tables) -> tuple:
    """What a replay reads from ``tables``: the calibration (by content) and the hardware and format tables (by
    path and modification time; a rewritten file is a new key)."""
    def stamp(path) -> tuple[str, int]:
        try:
            return str(path), path.stat().st_mtime_ns
        except OSError:
            return str(path), -1
    return tables.calibration.model_dump_json(), stamp(tables.hardware_path), stamp(tables.formats_path)


def simulated_values(rows: list[Row], analytical: np.ndarray, tables: Tables) -> np.ndarray:
    """``analytical`` with every row ``needs_simulation`` picks replaced by its simulated value, one replay
    per distinct benchmark run (``benchmark_key``) under ``tables``' calibration. Rows the simulator cannot
    answer (the run does not fit in KV, a throughput in prefill tokens of a serving run) keep their
    analytical value. Values are memoised per process by run, metric, statistic and tables (``tables_key``):
    `validate` run twice in a session, or its in-sample and leave-one-source-out passes over the same
    calibration, replay each run once."""
    out = np.array(analytical, dtype=float)
    where = tables_key(tables)
    runs: dict[tuple, SimReport | None] = {}
    for i, row in enumerate(rows):
        if not needs_simulation(row):
            continue
        key = benchmark_key(row)
        memo = (key, row.metric, row.percentile, where)
        if memo not in _VALUES:
            if key not in runs:
                runs[key] = _replay_or_none(row, tables)
            report = runs[key]
            if len(_VALUES) >= MAX_VALUES:
                _VALUES.clear()
            _VALUES[memo] = math.nan if report is None else row_value(row, report)
        value = _VALUES[memo]
        if math.isfinite(value) and value > 0:
            out[i] = value
    return out
