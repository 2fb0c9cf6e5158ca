"""Predicted vs measured: the rows behind ``gpuplan validate`` and ``gpuplan calibrate``.

Each measured row names a deployment, a benchmark mode and one metric:
- ``static``: ``batch`` requests start together (trtllm-bench offline, batch-1 latency runs): TPOT is one
  decode step at that batch plus, on average, half the wave's other prefills spread over the output
  (t_step + (b − 1)/2 · t_prefill,replica / (O − 1)); mean TTFT = t_request + t_prefill
  + (b − 1)/2 · t_prefill,replica (+ t_step if b > 1) (prefills queue; t_prefill,replica is the replica's
  GPU time per prompt with all DP ranks busy; the burst reaches an idle engine, so an overlap scheduler
  adds nothing);
  requests beyond the engine's running slots wait for one (``queue_wait_s``);
- ``closed``: ``batch`` clients (benchmark_serving --max-concurrency) keep the replica saturated. The
  clients start together and, with equal lengths, stay in lockstep: each wave of b prompts is prefilled
  while the wave's earlier requests decode, so TPOT and TTFT are the static ones (plus the wait for a slot
  when the clients outnumber the engine's running sequences), except that a client's next request reaches a
  busy engine: an overlap-scheduling engine (scheduler.csv ``overlap``) admits it one decode step later
  (TTFT + t_step when b > 1, roofline.busy_wait_s). With spread lengths (ShareGPT, or a random range ratio
  > 0) the clients drift apart within a few requests, as the simulator replays them: prompts then arrive
  one by one at the saturated rate, so TTFT is the open-loop one at that rate (roofline.serving: the M/D/1
  wait for the prefill server; ``drifting_closed_loop``) and each of the b − 1 other clients' prompts lands
  once in a request's decode (TPOT = t_step + (b − 1) · t_prefill,replica / (O − 1)). A closed loop whose
  clients send no more requests than there are clients is one burst (``load_mode``);
- ``open``: Poisson arrivals at ``rate_rps``. The engine runs as many sequences as are in flight (``batch`` = 1
  records no client cap; the engine's slot cap bounds them): their mean number b is Little's law,
  b = rate · O · TPOT(b) with TPOT(b) = t_step(b) / (1 − rate · t_prefill,replica) (``open_loop_batch``);
  utilisation = rate / the replica's limit at that b (roofline.serving, with the engine's overlap step),
  held below OPEN_UTILIZATION_CAP when the rate exceeds what the slot cap serves.
Whole-replica output tokens/s = O · b / (O · t_step + b · t_prefill) in static and closed modes, rate · O
when open. The median inter-token latency (itl_ms p50) is one plain decode step (steps that carry a
prefill chunk are the tail). ``e2e_per_token_ms`` is a request's end-to-end latency over its output tokens,
(TTFT + (O − 1) · TPOT) / O: what LLMPerf (ray-project/llmperf) reports as "inter-token latency" (its client
sums every gap between streamed chunks, the first one being the TTFT, and divides by the chunks received).
Other percentile rows (p90/p99) are predicted by the mean model for now
(``predict`` is the single place a simulator can take them over).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

import numpy as np
from gpuplan.hardware.gpus import GPU
from gpuplan.models.catalog import resolve
from gpuplan.optimizer.errors import INPUT_ERRORS, located
from gpuplan.optimizer.serving.deployment import check_tp, max_batch_in_memory
from gpuplan.optimizer.serving.graphs import NO_GRAPHS, capture_limit
from gpuplan.optimizer.serving.layout import make_layout
from gpuplan.optimizer.serving.measurements import (
    GROUP_ORDER,
    METRICS,
    Measurement,
    clients_of,
    dated,
    group_of,
    load_mode,
    source_key,
)
from gpuplan.optimizer.serving.roofline import busy_wait_s, decode_step_s, prefill_s, serving
from gpuplan.optimizer.serving.scheduler import engine_defaults
from gpuplan.optimizer.serving.shape import Shape, make_shape, stack
from gpuplan.optimizer.tables import Tables
from pydantic import BaseModel

OPEN_UTILIZATION_CAP = 0.98


@dataclass(frozen=True)
class Case:
    """A measured row with its deployment's step-model shape (built with the row's calibration row)."""

    m: Measurement
    shape: Shape
    cal_key: tuple[str, str, str | None]
    moe: bool
    running: int  # sequences that run at once: min(batch, KV capacity at input + output, scheduler cap)
    overlap: bool  # the engine at the row's version has an overlap scheduler (scheduler.csv)
    version_assumed: bool = False  # the row states no engine version: m.engine_version is its date's release


def row_capture_limit(m: Measurement, g: GPU) -> int:
    """The engine's CUDA-graph capture limit for a served row (graphs.csv at the row's version); 0 (no limit)
    for offline ``static`` rows, whose benchmark tools set their own graph sizes (TensorRT-LLM's perf overview
    runs trtllm-bench with cuda_graph_config batch_sizes up to 8192; the other offline rows stay below every
    limit); NO_GRAPHS for a row whose server ran without CUDA graphs (``cuda_graphs`` off)."""
    if m.cuda_graphs is False:
        return NO_GRAPHS
    return 0 if m.mode == "static" else capture_limit(m.engine, g, m.tp, m.engine_version)


def prepare(m: Measurement, tables: Tables) -> Case:
    """The row's deployment shape and load at the engine release it ran (``dated``); a deployment the models
    refuse is an error naming the row (``located``)."""
    try:
        return _prepare(m, tables)
    except INPUT_ERRORS as err:
        raise located(m, err) from None


def _prepare(m: Measurement, tables: Tables) -> Case:
    assumed = m.engine_version is None
    m = dated(m)
    model = resolve(m.model)
    g = tables.gpus.get(m.gpu)
    wfmt, kvfmt = tables.formats.weight(m.weights), tables.formats.kv_format(m.kv)
    layout = make_layout(model.arch, m.tp, m.ep, m.attn_dp)
    check_tp(model.arch, g, layout.attn_tp if layout.attn_dp > 1 else m.tp, model.id)
    cal = tables.calibration.lookup(m.engine, g.id, g.vendor, g.arch, m.engine_version)
    context = max(1, m.input) + max(1, m.output) / 2
    shape, _ = make_shape(model.arch, g, m.tp, wfmt, kvfmt, context, cal, ep=layout.ep, attn_dp=layout.attn_dp,
                          graph_max_batch=row_capture_limit(m, g), version=m.engine_version)
    capacity = max_batch_in_memory(model, g, wfmt, kvfmt, m.tp, max(1, m.input) + max(1, m.output), cal, layout,
                                   m.engine_version, m.mem_fraction)
    running = max(1, min(clients_of(m), capacity, m.max_seqs or cal.max_seqs))
    return Case(m=m, shape=shape, cal_key=(cal.engine, cal.gpu, cal.versions), moe=model.arch.moe is not None,
                running=running, overlap=engine_defaults(m.engine, g, m.engine_version).overlap,
                version_assumed=assumed and m.engine_version is not None)


@dataclass(frozen=True)
class RowArrays:
    """The per-row numbers ``metric_values`` needs, as arrays over rows."""

    batch: np.ndarray
    input: np.ndarray
    output: np.ndarray
    rate: np.ndarray
    mode: np.ndarray  # 0 static, 1 closed, 2 open
    metric: np.ndarray  # index into METRICS
    median: np.ndarray  # the row is a p50 figure
    clients: np.ndarray  # requests the benchmark keeps in flight (``batch``), ≥ running sequences
    overlap: np.ndarray  # the engine's overlap scheduler (bool)
    spread: np.ndarray  # request lengths vary (ShareGPT, or a random range ratio > 0)


def row_arrays(cases: list[Case]) -> RowArrays:
    modes = {"static": 0, "closed": 1, "open": 2}
    ms = [c.m for c in cases]
    return RowArrays(batch=np.array([c.running for c in cases], dtype=float),
                     input=np.array([max(1, m.input) for m in ms], dtype=float),
                     output=np.array([max(1, m.output) for m in ms], dtype=float),
                     rate=np.array([m.rate_rps or 0.0 for m in ms], dtype=float),
                     mode=np.array([modes[load_mode(m)] for m in ms]),
                     metric=np.array([METRICS.index(m.metric) for m in ms]),
                     median=np.array([m.percentile == "p50" for m in ms]),
                     clients=np.array([clients_of(m) for m in ms], dtype=float),
                     overlap=np.array([c.overlap for c in cases], dtype=bool),
                     spread=np.array([m.dataset == "sharegpt" or (m.range_ratio or 0.0) > 0 for m in ms], dtype=bool))


def queue_wait_s(clients: np.ndarray, running: np.ndarray, service_s: np.ndarray, mode: np.ndarray) -> np.ndarray:
    """Wait for a running slot when a benchmark keeps more requests in flight than the engine runs
    (KV capacity or its sequence cap). Closed loop of N clients on S slots, by Little's law:
    W = (N − S) / S · service; a burst of N requests at once (static) drains in waves: W = (N − S) / (2S)
    · service on average; open loops are held below saturation (no such wait)."""
    excess = np.maximum(clients - running, 0.0) / running
    return np.where(mode == 1, excess, np.where(mode == 0, excess / 2, 0.0)) * service_s


def drifting_closed_loop(mode: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """Closed-loop rows (mode 1) whose request lengths vary: their clients do not stay in lockstep waves. A
    client's next request starts when its last one ends; with unequal lengths the ends spread out, so after a
    few requests the b clients' prompts arrive one by one rather than b at once, as the simulator's replay
    shows (tests/test_replay_columns.py). Fixed lengths keep the lockstep; static bursts start together."""
    return (np.asarray(mode) == 1) & np.asarray(spread, dtype=bool)


OPEN_BATCH_ITERATIONS = 60
OPEN_BATCH_TOLERANCE = 1e-10


def open_loop_batch(s: Shape, rate_rps: np.ndarray, output: np.ndarray, t_prefill_s: np.ndarray,
                    slots: np.ndarray) -> np.ndarray:
    """Mean running sequences of a Poisson open loop, by Little's law: b = λ · O · TPOT(b), TPOT(b) =
    t_step(b) / (1 − λ · t_prefill) (the prefill share of GPU time stretches every token), solved by
    fixed-point iteration from b = 1 (t_step grows with b, so the iterates rise monotonically to the least
    fixed point), within [1, slots]; a rate the slots cannot serve runs into the slot cap. The iteration stops
    when no row's batch moves by more than OPEN_BATCH_TOLERANCE (relative), at most OPEN_BATCH_ITERATIONS times."""
    stretch = 1.0 / (1.0 - np.minimum(rate_rps * t_prefill_s, 0.999))
    b = np.ones_like(np.asarray(rate_rps, dtype=float))
    for _ in range(OPEN_BATCH_ITERATIONS):
        nxt = np.clip(rate_rps * output * decode_step_s(s, b)[0] * stretch, 1.0, slots)
        done = np.all(np.abs(nxt - b) <= OPEN_BATCH_TOLERANCE * nxt)
        b = nxt
        if done:
            break
    return b


def _rows_of(s: Shape, keep: np.ndarray) -> Shape:
    """The rows ``keep`` of a stacked Shape."""
    def pick(v: float | np.ndarray) -> float | np.ndarray:
        a = np.asarray(v)
        return a[keep] if a.ndim else v

    return Shape(**{f.name: pick(getattr(s, f.name)) for f in fields(Shape)})


def metric_values(s: Shape, r: RowArrays) -> np.ndarray:
    """Predicted value of every row's metric (see module docstring), vectorised over rows."""
    i, o = r.input, r.output
    t_iso = np.asarray(prefill_s(s, None, i), dtype=float)
    t_pre = np.asarray(prefill_s(s, None, i, spread=True), dtype=float)
    is_open = r.mode == 2
    b = r.batch.copy()
    if is_open.any():
        b[is_open] = open_loop_batch(_rows_of(s, is_open), r.rate[is_open], o[is_open], t_pre[is_open],
                                     r.batch[is_open])
    t_step = decode_step_s(s, b)[0]
    rate_max = b / (o * t_step + b * t_pre)
    saturated = b >= r.batch
    open_util = np.minimum(r.rate / rate_max, np.where(saturated, OPEN_UTILIZATION_CAP, 1.0))
    util = np.where(is_open, open_util, np.where(b > 1, 1.0, 0.0))
    op = serving(t_step, t_pre, b, o, util, request_s=s.request_s, ttft_prefill_s=t_iso, overlap=r.overlap)
    # A wave of b prompts: on average half of the others' prefill work lands before a request's first token
    # (TTFT) and half during its decode (TPOT); clients that drift apart put all of it in the decode. The
    # cycle adds up to O · t_step + b · t_prefill either way.
    drift = drifting_closed_loop(r.mode, r.spread)
    tpot = np.where(r.mode == 2, op["tpot"],
                    t_step + (b - 1) * np.where(drift, 1.0, 0.5) * t_pre / np.maximum(o - 1, 1.0))
    # A static burst reaches an idle engine; a closed loop's next request reaches a busy one (overlap step).
    lockstep = s.request_s + t_iso + (b - 1) / 2 * t_pre + busy_wait_s(t_step, b, r.overlap & (r.mode == 1))
    ttft = np.where((r.mode == 2) | drift, op["ttft"], lockstep)
    ttft = ttft + queue_wait_s(r.clients, b, ttft + (o - 1) * tpot, r.mode)
    throughput = np.where(r.mode == 2, util * rate_max * o, np.where(b > 1, o * b / (o * t_step + b * t_pre), b / tpot))
    # The median gap between tokens is a plain decode step: steps carrying a prefill chunk are the tail.
    itl = np.where(r.median, t_step, tpot)
    by_metric = {"decode_tok_s_per_user": 1.0 / tpot, "tpot_ms": tpot * 1e3, "itl_ms": itl * 1e3,
                 "ttft_ms": ttft * 1e3, "e2e_ms": (ttft + (o - 1) * tpot) * 1e3, "decode_tok_s": throughput,
                 "e2e_per_token_ms": (ttft + (o - 1) * tpot) / o * 1e3,
                 "prefill_tok_s": i / t_iso}
    out = np.zeros_like(b)
    for k, name in enumerate(METRICS):
        out = np.where(r.metric == k, by_metric[name], out)
    return out


def predict_cases(cases: list[Case]) -> np.ndarray:
    return metric_values(stack([c.shape for c in cases]), row_arrays(cases))


def predict(m: Measurement, tables: Tables) -> float:
    """The model's value for the row's metric, with the row's engine calibration."""
    return float(predict_cases([prepare(m, tables)])[0])


class Comparison(BaseModel):
    model: str
    gpu: str
    tp: int
    ep: int
    weights: str
    batch: int
    mode: str
    engine: str
    engine_version: str | None  # the release modelled: the row's, else its date's (engine_version_assumed)
    engine_version_assumed: bool
    metric: str
    percentile: str
    group: str
    model_class: Literal["dense", "moe"]
    measured: float
    predicted: float
    error_pct: float  # (predicted − measured) / measured × 100
    source: str
    source_key: str


class Summary(BaseModel):
    calibration: str  # "shipped" (in-sample) or "leave-one-source-out"
    scope: str  # "all", "dense", "moe" or an engine
    group: str
    rows: int
    median_ape_pct: float
    p90_ape_pct: float
    median_signed_pct: float  # median of (predicted − measured) / measured: > 0 the model predicts above the runs


def comparisons(cases: list[Case], predicted: np.ndarray) -> list[Comparison]:
    out = []
    for c, p in zip(cases, predicted, strict=True):
        m = c.m
        out.append(Comparison(model=m.model, gpu=m.gpu, tp=m.tp, ep=m.ep, weights=m.weights, batch=m.batch,
                              mode=m.mode or "closed", engine=m.engine, engine_version=m.engine_version,
                              engine_version_assumed=c.version_assumed, metric=m.metric, percentile=m.percentile,
                              group=group_of(m), model_class="moe" if c.moe else "dense", measured=m.value,
                              predicted=float(p), error_pct=(float(p) - m.value) / m.value * 100, source=m.source,
                              source_key=source_key(m.source)))
    return out


def compare(rows: list[Measurement], tables: Tables) -> list[Comparison]:
    cases = [prepare(m, tables) for m in rows]
    return comparisons(cases, predict_cases(cases))


def summarise(comps: list[Comparison], calibration: str = "shipped") -> list[Summary]:
    """Median and 90th-percentile absolute % error per metric group, and the median signed error (which way
    the model leans): over all rows, per model class and per engine."""
    out = []
    scopes: list[tuple[str, list[Comparison]]] = [("all", comps)]
    scopes += [(cls, [c for c in comps if c.model_class == cls]) for cls in ("dense", "moe")]
    scopes += [(e, [c for c in comps if c.engine == e]) for e in sorted({c.engine for c in comps})]
    for scope, members in scopes:
        present = {c.group for c in members}
        for group in [*GROUP_ORDER, *sorted(present - set(GROUP_ORDER))]:
            signed = np.array([c.error_pct for c in members if c.group == group])
            errs = np.abs(signed)
            if errs.size:
                out.append(Summary(calibration=calibration, scope=scope, group=group, rows=int(errs.size),
                                   median_ape_pct=round(float(np.median(errs)), 2),
                                   p90_ape_pct=round(float(np.percentile(errs, 90)), 2),
                                   median_signed_pct=round(float(np.median(signed)), 2)))
    return out
