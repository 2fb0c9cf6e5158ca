"""``simulate``: one deployment, one request stream, through the continuous-batching simulator.

Latency metrics follow ``benchmark_serving``: TTFT = first token − arrival; TPOT = (E2E − TTFT) /
(output − 1) per request (requests of one output token have none); ITL = every gap between two
tokens of a request, weighted by token; E2E = finish − arrival. Throughput counts every request from
the first arrival to the last completion.
"""

from __future__ import annotations

import math
import operator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from gpuplan.models.catalog import Model, resolve
from gpuplan.optimizer.errors import InputError
from gpuplan.optimizer.serving.arrivals import Requests, make_requests
from gpuplan.optimizer.serving.calibration import checked_version
from gpuplan.optimizer.serving.deployment import MAX_BATCH, Frame, check_tp, chosen_engine
from gpuplan.optimizer.serving.dp_attention import dp_attention_defaults
from gpuplan.optimizer.serving.engine_capacity import state_running_cap
from gpuplan.optimizer.serving.graphs import graph_limit
from gpuplan.optimizer.serving.layout import make_layout
from gpuplan.optimizer.serving.scheduler import engine_defaults
from gpuplan.optimizer.serving.simulator import SchedulerConfig, Trace, simulate_trace
from gpuplan.optimizer.serving.steps import StepModel, build_steps
from gpuplan.optimizer.tables import DEFAULT, Tables
from pydantic import BaseModel, PrivateAttr

PERCENTILES = (50, 90, 99)
LATENCY_METRICS = ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms")
TIMELINE_POINTS = 200
MAX_RECV_INTERVAL = 10_000  # SGLang --scheduler-recv-interval: decode steps between polls (the measured rows' bound)
V0_MIN_BATCHED_TOKENS = 2048


class Stats(BaseModel):
    mean: float
    p50: float
    p90: float
    p99: float

    def at(self, percentile: float | None) -> float:
        """The mean (None) or a stored percentile (50, 90 or 99)."""
        if percentile is None:
            return self.mean
        if percentile not in PERCENTILES:
            raise InputError(f"percentile {percentile:g} is not stored (only {', '.join(map(str, PERCENTILES))})")
        return float(getattr(self, f"p{percentile:g}"))


class TimelinePoint(BaseModel):
    t_s: float
    kv_fraction: float
    running: int
    waiting: int


class SimReport(Frame):
    model: str
    gpu: str
    tp: int
    ep: int = 1
    weights: str
    kv: str
    engine: str
    engine_version: str | None = None  # the engine release the calibration and defaults were read for (None: current)
    mode: str  # open | closed | trace
    rate_rps: float | None
    concurrency: int | None
    requests: int
    seed: int
    input_tokens: int
    output_tokens: int
    max_num_seqs: int
    max_batched_tokens: int
    prompt_pool: int | None = None  # distinct prompts the client draws from (None: every prompt distinct)
    mem_fraction: float | None = None  # the server's memory fraction (None: the engine's default)
    recv_interval: int = 1  # SGLang --scheduler-recv-interval: decode steps between polls for new requests
    schedule: str = "mixed"  # mixed (prefill chunks share steps with decodes) | prefill-first (decodes wait)
    ttft_ms: Stats
    tpot_ms: Stats
    itl_ms: Stats
    e2e_ms: Stats
    duration_s: float
    output_tok_s: float
    req_s: float
    mean_running: float  # time-averaged sequences admitted
    mean_in_system: float  # time-averaged requests waiting or running (Little's L)
    kv_capacity_tokens: int
    kv_mean_fraction: float
    kv_peak_fraction: float
    preemptions: int
    prompt_cache_hits: int = 0  # admissions that found their pooled prompt in the prefix cache (--prompt-pool)
    steps: int
    isolated_ttft_ms: float  # one request alone: host time + prefill of the mean prompt
    isolated_tpot_ms: float  # one request alone: decode step at batch 1, mean context
    kv_timeline: list[TimelinePoint]
    _samples: dict[str, np.ndarray] = PrivateAttr(default_factory=dict)  # per-request ms, for plots

    @property
    def samples(self) -> dict[str, np.ndarray]:
        """Per-request TTFT, TPOT and E2E in ms (not serialised)."""
        return self._samples

    def row(self) -> dict[str, object]:
        """One flat row: identity, every latency metric as <metric>_<stat>, then the summary figures."""
        data = self.model_dump(mode="json", exclude={"kv_timeline"})
        flat = {k: v for k, v in data.items() if not isinstance(v, dict)}
        for key in LATENCY_METRICS:
            flat.update({f"{key}_{stat}": value for stat, value in data[key].items()})
        return flat

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([self.row()])

    def metric(self, name: str, percentile: float | None = None) -> float:
        """e.g. ``metric('ttft_ms', 90)``; percentile None is the mean."""
        return getattr(self, name).at(percentile)


def stats(values: np.ndarray, weights: np.ndarray | None = None) -> Stats:
    """Mean and p50/p90/p99; with weights, the inverted-CDF percentile of the weighted samples."""
    if values.size == 0:
        return Stats(mean=float("nan"), p50=float("nan"), p90=float("nan"), p99=float("nan"))
    if weights is None:
        p = np.percentile(values, PERCENTILES)
        return Stats(mean=float(values.mean()), p50=float(p[0]), p90=float(p[1]), p99=float(p[2]))
    order = np.argsort(values, kind="stable")
    v, cum = values[order], np.cumsum(weights[order])
    idx = np.searchsorted(cum, np.array(PERCENTILES) / 100 * cum[-1])
    p = v[np.minimum(idx, v.size - 1)]
    return Stats(mean=float(np.average(values, weights=weights)), p50=float(p[0]), p90=float(p[1]),
                 p99=float(p[2]))


def _timeline(tr: Trace) -> list[TimelinePoint]:
    """At most TIMELINE_POINTS evenly spaced samples of the event timeline."""
    points = tr.timeline
    if not points:
        return []
    idx = np.unique(np.linspace(0, len(points) - 1, min(TIMELINE_POINTS, len(points))).astype(int))
    cap = max(tr.kv_capacity_tokens, 1)
    return [TimelinePoint(t_s=t, kv_fraction=kv / cap, running=run, waiting=wait)
            for t, kv, run, wait in (points[i] for i in idx)]


def samples_ms(tr: Trace, skip: int = 0) -> dict[str, np.ndarray]:
    """Per-request TTFT, TPOT (requests with more than one output token), E2E and E2E per output token
    (E2E / O, LLMPerf's "inter-token latency") in ms, of the requests after the first ``skip``."""
    arrive, first, finish = (np.array(x[skip:]) for x in (tr.arrive, tr.first, tr.finish))
    out = np.array(tr.output_tokens[skip:])
    multi = out > 1
    return {"ttft_ms": (first - arrive) * 1e3, "tpot_ms": (finish - first)[multi] / (out[multi] - 1) * 1e3,
            "e2e_ms": (finish - arrive) * 1e3, "e2e_per_token_ms": (finish - arrive) / out * 1e3}


def summarise(tr: Trace, samples: dict[str, np.ndarray]) -> dict[str, object]:
    """Latency statistics, throughput and KV use of a finished trace."""
    duration = max(tr.finish) - min(tr.arrive)
    return dict(
        ttft_ms=stats(samples["ttft_ms"]), tpot_ms=stats(samples["tpot_ms"]), e2e_ms=stats(samples["e2e_ms"]),
        itl_ms=stats(np.array(tr.itl_s) * 1e3, np.array(tr.itl_weight, dtype=float)),
        duration_s=duration, output_tok_s=sum(tr.output_tokens) / duration, req_s=len(tr.output_tokens) / duration,
        mean_running=tr.running_integral / duration, mean_in_system=tr.occupancy_integral / duration,
        kv_mean_fraction=tr.kv_integral / duration / max(tr.kv_capacity_tokens, 1),
        kv_peak_fraction=tr.kv_peak_tokens / max(tr.kv_capacity_tokens, 1), preemptions=tr.preemptions,
        prompt_cache_hits=tr.prompt_cache_hits,
        steps=tr.steps,
        kv_capacity_tokens=tr.kv_capacity_tokens, kv_timeline=_timeline(tr))


def deployment_steps(m: Model, gpu: str, weights: str, kv: str, tp: int, engine: str | None,
                     input_tokens: int, output_tokens: int, max_num_seqs: int | None, max_context: int,
                     tables: Tables, ep: int = 1, attn_dp: int | None = None,
                     engine_version: str | None = None, cuda_graphs: bool = True,
                     mem_fraction: float | None = None,
                     max_batched_tokens: int | None = None) -> tuple[StepModel, str, int, int]:
    """(step model, engine, max_num_seqs, max_batched_tokens) of a deployment; engine defaults fill gaps.
    ``ep`` > 1: MoE layers expert-parallel over ep ranks, attention data-parallel (default attn_dp = ep);
    ``cuda_graphs`` False: the server runs every decode step without CUDA graphs (graphs.graph_limit);
    ``mem_fraction``: the server's memory fraction in place of the engine's default (engine_capacity.max_sequences);
    ``max_batched_tokens``: the server's own token budget C, which a data-parallel attention rank's chunk
    C_r = C // k divides as the engine default would be (dp_attention); the returned budget stays the default."""
    g = tables.gpus.get(gpu)
    wfmt, kvfmt = tables.formats.weight(weights), tables.formats.kv_format(kv)
    layout = make_layout(m.arch, tp, ep, attn_dp)
    check_tp(m.arch, g, layout.attn_tp if layout.attn_dp > 1 else tp, m.id)
    eng = chosen_engine(engine, g, wfmt)
    cal = tables.calibration.lookup(eng, g.id, g.vendor, g.arch, engine_version)
    base = engine_defaults(eng, g, engine_version)
    d = dp_attention_defaults(replace(base, max_batched_tokens=max_batched_tokens) if max_batched_tokens else base,
                              layout.attn_dp, engine_version)
    seqs = max_num_seqs or d.max_num_seqs
    if not 1 <= seqs <= MAX_BATCH:
        raise InputError(f"--max-num-seqs must be in [1, {MAX_BATCH}], got {seqs}")
    if layout.ep == 1 and layout.attn_dp == 1:  # SGLang's state slots cap a hybrid model's running requests
        seqs = max(1, min(seqs, state_running_cap(m.arch, g, wfmt, kvfmt, tp, input_tokens + output_tokens, cal,
                                                  engine_version) or seqs))
    steps = build_steps(m.arch, g, tp, wfmt, kvfmt, cal, seqs, max_context,
                        input_tokens + output_tokens / 2, input_tokens + output_tokens, d.block_size, layout,
                        d.prefill_first, d.reservation, d.overlap,
                        graph_limit(eng, g, tp, engine_version, cuda_graphs),
                        engine_version, d.rank_chunk_tokens, mem_fraction)
    # 0: the whole context fits one step (vLLM V0 without chunked prefill: max(max_model_len, 2048)).
    tokens = base.max_batched_tokens or max(m.arch.max_context or 0, int(max_context), V0_MIN_BATCHED_TOKENS)
    return steps, eng, seqs, tokens


def simulate(model: str | Model, gpu: str, weights: str = "bf16", kv: str = "bf16", tp: int = 1,
             input_tokens: int = 1024, output_tokens: int = 256, rate_rps: float | None = None,
             concurrency: int | None = None, trace: str | Path | None = None, requests: int | None = None,
             seed: int = 0, engine: str | None = None, max_num_seqs: int | None = None,
             max_batched_tokens: int | None = None, range_ratio: float = 0.0,
             lengths_csv: str | Path | None = None, tables: Tables = DEFAULT, ep: int = 1,
             attn_dp: int | None = None, engine_version: str | None = None,
             dataset: str | None = None, cuda_graphs: bool = True, prompt_pool: int | None = None,
             mem_fraction: float | None = None, recv_interval: int = 1) -> SimReport:
    """Simulate ``requests`` requests on one replica (``gpuplan simulate``; default 1000, or every row of a
    trace); same seed, same numbers. ``dataset`` (e.g. ``sharegpt``) shapes the lengths as that dataset's
    sampled pairs about the ``input_tokens`` / ``output_tokens`` means; ``cuda_graphs`` False models a server
    that runs without CUDA graphs (vLLM ``--enforce-eager``, SGLang ``--disable-cuda-graph``); ``prompt_pool``
    P: the client draws every prompt from P distinct prompts and repeats hit the engine's prefix cache;
    ``mem_fraction``: the server's memory fraction (vLLM --gpu-memory-utilization, SGLang --mem-fraction-static)
    in place of the engine's default, which sets the KV capacity; ``recv_interval``: SGLang's
    ``--scheduler-recv-interval``, the decode steps between its polls for new requests (simulator.py)."""
    if not 1 <= recv_interval <= MAX_RECV_INTERVAL:
        raise InputError(f"--recv-interval must be in [1, {MAX_RECV_INTERVAL}], got {recv_interval}")
    if mem_fraction is not None and not (0.0 < mem_fraction <= 1.0 and math.isfinite(mem_fraction)):
        raise InputError(f"--mem-fraction must be in (0, 1], got {mem_fraction}")
    m = model if isinstance(model, Model) else resolve(model)
    engine_version = checked_version(engine_version)
    reqs: Requests = make_requests(input_tokens, output_tokens, requests, seed, rate_rps, concurrency,
                                   Path(trace) if trace else None, range_ratio,
                                   Path(lengths_csv) if lengths_csv else None, dataset, prompt_pool)
    longest = max(map(operator.add, reqs.input_tokens, reqs.output_tokens))
    if m.arch.max_context and longest > m.arch.max_context:
        raise InputError(f"a request of {longest:,} tokens is beyond {m.id}'s limit of {m.arch.max_context:,} "
                         "tokens")
    steps, eng, seqs, default_tokens = deployment_steps(m, gpu, weights, kv, tp, engine, input_tokens,
                                                        output_tokens, max_num_seqs, longest, tables, ep, attn_dp,
                                                        engine_version, cuda_graphs, mem_fraction,
                                                        max_batched_tokens)
    tokens = max_batched_tokens or max(default_tokens, seqs)
    if tokens <= 0:
        raise InputError(f"--max-batched-tokens must be positive, got {tokens}")
    if tokens < seqs and eng == "vllm":
        raise InputError(f"max batched tokens ({tokens}) must be ≥ max sequences ({seqs}), as vLLM requires "
                         "(set --max-num-seqs too)")
    if tokens < seqs and not steps.prefill_first:
        # a token budget below the running cap on a mixed-step engine (TensorRT-LLM's max_num_tokens under its
        # max_batch_size 2048, which it accepts): no step carries more decodes than its token budget, so the
        # budget caps them. A prefill-first engine (SGLang) runs its decodes outside the prefill budget.
        seqs = tokens
    if recv_interval > 1 and eng != "sglang":
        raise InputError(f"--recv-interval is SGLang's --scheduler-recv-interval; engine {eng} polls every step")
    tr = simulate_trace(steps, reqs.input_tokens, reqs.output_tokens, SchedulerConfig(seqs, tokens, recv_interval),
                        reqs.arrivals, reqs.concurrency, reqs.prompt_ids)
    mode = "closed" if concurrency is not None else ("trace" if trace is not None else "open")
    samples = samples_ms(tr)
    report = SimReport(
        model=m.id, gpu=tables.gpus.get(gpu).id, tp=tp, ep=ep, weights=tables.formats.weight(weights).id,
        kv=tables.formats.kv_format(kv).id, engine=eng, engine_version=engine_version, mode=mode,
        rate_rps=rate_rps, concurrency=reqs.concurrency, requests=len(reqs.input_tokens), seed=seed,
        input_tokens=input_tokens, output_tokens=output_tokens, max_num_seqs=seqs, max_batched_tokens=tokens,
        prompt_pool=prompt_pool, mem_fraction=mem_fraction, recv_interval=recv_interval,
        schedule="prefill-first" if steps.prefill_first else "mixed",
        isolated_ttft_ms=(steps.request_s + steps.prompt_s(input_tokens)) * 1e3,
        isolated_tpot_ms=steps.decode_s(1, input_tokens + output_tokens / 2) * 1e3,
        **summarise(tr, samples))  # type: ignore[arg-type]
    report._samples = samples
    return report
