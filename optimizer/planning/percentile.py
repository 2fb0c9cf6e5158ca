"""Percentile SLOs: replica capacity from the serving simulator, for the candidates that can win.

The analytical model works with means. When a workload's SLO names a percentile q, candidate
generation first proposes operating points with it (GPU, formats, TP, capacity at the target
utilisation), then the simulator decides the capacity at the largest batch L the replica's KV holds:

- rate workloads: the highest Poisson rate per replica, at most utilisation × r_sat with
  r_sat = L / (O · t_step(L) + L · t_prefill) the step model's saturation rate, at which the q-th
  percentiles of TTFT and of per-request TPOT meet the targets (max_num_seqs = L; the ceiling is tried
  first, then bisection on [0, ceiling] in BISECTION_STEPS halvings);
- concurrency workloads: the most closed-loop clients per replica, at most L (bisection on integers),
  percentiles taken after the first round of requests (the cold start of all clients at once);
- ``sim_requests(q)`` requests per run (enough for TAIL_SAMPLES above the percentile, at least
  MIN_SIM_REQUESTS), fixed lengths (the workload's means), seed 0: the same input always gives the same
  capacity.

Operating points are simulated in order of analytical $/h per unit of capacity (their cheapest offer)
until PASSING_POINTS have passed or MAX_SIMULATED have run; the rest keep the analytical capacity
scaled by the smallest simulated / analytical ratio among the simulated points of the workload (a
per-workload fitted correction) and are labelled so. Results are cached per deployment, workload shape
and targets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from gpuplan.models.catalog import resolve
from gpuplan.optimizer.planning.workload import Workload
from gpuplan.optimizer.serving.arrivals import make_requests
from gpuplan.optimizer.serving.deployment import max_batch_in_memory
from gpuplan.optimizer.serving.simulation import deployment_steps, samples_ms
from gpuplan.optimizer.serving.simulator import SchedulerConfig, Trace, simulate_trace
from gpuplan.optimizer.serving.steps import StepModel
from gpuplan.optimizer.tables import Tables

if TYPE_CHECKING:
    from gpuplan.optimizer.planning.candidate_gen import Candidate

MIN_SIM_REQUESTS = 400
MAX_SIM_REQUESTS = 5000
TAIL_SAMPLES = 10
BISECTION_STEPS = 5
PASSING_POINTS = 6
MAX_SIMULATED = 16
SEED = 0


def sim_requests(q: float) -> int:
    """Requests per simulation: TAIL_SAMPLES beyond the q-th percentile (p99: 1000), within the bounds."""
    return min(MAX_SIM_REQUESTS, max(MIN_SIM_REQUESTS, math.ceil(TAIL_SAMPLES / (1 - q / 100))))


@dataclass(frozen=True)
class Verdict:
    """What the simulator says one replica sustains within the percentile targets."""

    capacity_req_s: float
    sequences: int  # max_num_seqs (rate) or clients (concurrency)
    ttft_ms: float  # q-th percentiles at that load
    tpot_ms: float


_CACHE: dict[tuple, tuple[Tables, Verdict | None]] = {}
_ORIGINAL: dict[tuple[int, str], Candidate] = {}  # (tables, candidate id) → before scaling


def trace_percentiles(tr: Trace, q: float, skip: int = 0) -> tuple[float, float, float]:
    """(TTFT, TPOT) q-th percentiles in ms and req/s, over the requests after the first ``skip``."""
    ms = samples_ms(tr, skip)
    tpot_p = float(np.percentile(ms["tpot_ms"], q)) if ms["tpot_ms"].size else 0.0
    span_s = max(tr.finish[skip:]) - min(tr.arrive[skip:])
    return float(np.percentile(ms["ttft_ms"], q)), tpot_p, len(ms["ttft_ms"]) / span_s


def _meets(w: Workload, ttft_ms: float, tpot_ms: float) -> bool:
    return ttft_ms <= w.slo.ttft_ms and tpot_ms <= w.slo.tpot_ms


def max_rate(steps: StepModel, cfg: SchedulerConfig, w: Workload, q: float, ceiling: float) -> Verdict | None:
    """Highest Poisson rate ≤ ceiling whose q-th percentiles meet the SLO (arrivals scale as 1 / rate)."""
    reqs = make_requests(w.input_tokens, w.output_tokens, sim_requests(q), SEED, rate_rps=1.0)
    assert reqs.arrivals is not None

    def run(rate: float) -> tuple[float, float, float]:
        return trace_percentiles(simulate_trace(steps, reqs.input_tokens, reqs.output_tokens, cfg,
                                                arrivals=[t / rate for t in reqs.arrivals]), q)

    best = None
    ttft, tpot, _ = run(ceiling)
    if _meets(w, ttft, tpot):
        best = (ceiling, ttft, tpot)
    else:
        lo, hi = 0.0, ceiling
        for _ in range(BISECTION_STEPS):
            mid = (lo + hi) / 2
            ttft, tpot, _ = run(mid)
            if _meets(w, ttft, tpot):
                lo, best = mid, (mid, ttft, tpot)
            else:
                hi = mid
    if best is None:
        return None
    return Verdict(capacity_req_s=best[0], sequences=cfg.max_num_seqs, ttft_ms=best[1], tpot_ms=best[2])


def max_clients(steps: StepModel, tokens: int, w: Workload, q: float, ceiling: int) -> Verdict | None:
    """Most closed-loop clients ≤ ceiling whose q-th percentiles (after the first round) meet the SLO."""
    def run(n: int) -> tuple[float, float, float]:
        reqs = make_requests(w.input_tokens, w.output_tokens, max(sim_requests(q), 2 * n), SEED, concurrency=n)
        tr = simulate_trace(steps, reqs.input_tokens, reqs.output_tokens, SchedulerConfig(n, max(tokens, n)),
                            concurrency=n)
        return trace_percentiles(tr, q, skip=n)

    ttft, tpot, req_s = run(ceiling)
    if _meets(w, ttft, tpot):
        return Verdict(capacity_req_s=req_s, sequences=ceiling, ttft_ms=ttft, tpot_ms=tpot)
    lo, hi, best = 0, ceiling, None  # hi fails; 0 clients trivially pass
    while hi - lo > 1:
        mid = (lo + hi) // 2
        ttft, tpot, req_s = run(mid)
        if _meets(w, ttft, tpot):
            lo, best = mid, Verdict(capacity_req_s=req_s, sequences=mid, ttft_ms=ttft, tpot_ms=tpot)
        else:
            hi = mid
    return best


def largest_batch(c: Candidate, w: Workload, tables: Tables) -> int:
    """The most sequences of input + output tokens the replica's KV cache holds (the memory model)."""
    g = tables.gpus.get(c.gpu)
    cal = tables.calibration.lookup(c.engine, g.id, g.vendor)
    return max_batch_in_memory(resolve(c.model), g, tables.formats.weight(c.weights), tables.formats.kv_format(c.kv),
                               c.tp, w.input_tokens + w.output_tokens, cal)


def verify(c: Candidate, w: Workload, tables: Tables, utilization: float) -> Verdict | None:
    """Simulated capacity of a candidate's deployment at its largest batch L (cached): rate workloads search
    [0, utilization × r_sat] with r_sat = L / (O · t_step(L) + L · t_prefill), the step model's saturation
    rate; concurrency workloads search [1, L] clients."""
    q = w.slo.percentile
    assert q is not None
    rate_mode = w.concurrency is None
    key = (id(tables), c.model, c.gpu, c.weights, c.kv, c.tp, c.engine, w.input_tokens, w.output_tokens,
           q, w.slo.ttft_ms, w.slo.tpot_ms, rate_mode, utilization)
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is tables:
        return hit[1]
    limit = largest_batch(c, w, tables)
    steps, _, seqs, tokens = deployment_steps(resolve(c.model), c.gpu, c.weights, c.kv, c.tp, c.engine,
                                              w.input_tokens, w.output_tokens, limit,
                                              w.input_tokens + w.output_tokens, tables)
    if rate_mode:
        t_step = steps.decode_s(seqs, w.input_tokens + w.output_tokens / 2)
        r_sat = seqs / (w.output_tokens * t_step + seqs * steps.prompt_s(w.input_tokens))
        verdict = max_rate(steps, SchedulerConfig(seqs, max(tokens, seqs)), w, q, utilization * r_sat)
    else:
        verdict = max_clients(steps, tokens, w, q, seqs)
    _CACHE[key] = (tables, verdict)
    return verdict


def _capacity(c: Candidate, rate_mode: bool) -> float:
    return c.capacity_req_s if rate_mode else float(c.capacity_sequences)


def refine(w: Workload, cands: list[Candidate], tables: Tables,
           utilization: float) -> tuple[list[Candidate], dict[str, str]]:
    """Candidates with simulator capacities for a percentile SLO (unchanged for a mean SLO), and why GPU
    types lost all their candidates."""
    q = w.slo.percentile
    if q is None or not cands:
        return cands, {}
    rate_mode = w.concurrency is None
    groups: dict[tuple[str, str, str, int], list[Candidate]] = {}
    for c in cands:
        groups.setdefault((c.gpu, c.weights, c.kv, c.tp), []).append(c)

    def cost(key: tuple[str, str, str, int]) -> tuple[float, tuple[str, str, str, int]]:
        return min(c.usd_per_hour / max(_capacity(c, rate_mode), 1e-12) for c in groups[key]), key

    verdicts: dict[tuple[str, str, str, int], Verdict | None] = {}
    ratios: list[float] = []
    for key in sorted(groups, key=cost):
        if len(ratios) >= PASSING_POINTS or len(verdicts) >= MAX_SIMULATED:
            break
        c0 = groups[key][0]
        v = verify(c0, w, tables, utilization)
        verdicts[key] = v
        if v is not None:
            ratios.append((v.capacity_req_s if rate_mode else v.sequences) / max(_capacity(c0, rate_mode), 1e-12))
    factor = min(ratios) if ratios else 0.0
    out: list[Candidate] = []
    reasons: dict[str, str] = {}
    for key, group in groups.items():
        if key in verdicts:
            v = verdicts[key]
            if v is None:
                reasons[key[0]] = _miss(w, key)
                continue
            out += [_simulated(c, v, w) for c in group]
        elif factor > 0:
            for c in group:
                _ORIGINAL[(id(tables), c.id)] = c
            out += [c.model_copy(update=dict(
                capacity_req_s=c.capacity_req_s * factor, capacity_tok_s=c.capacity_tok_s * factor,
                capacity_sequences=max(1, int(c.capacity_sequences * factor)) if not rate_mode
                else c.capacity_sequences, latency=f"p{q:g} ≈ mean model, capacity × {factor:.2f}"))
                for c in group]
    return out, reasons


def _miss(w: Workload, key: tuple[str, str, str, int]) -> str:
    return (f"simulated p{w.slo.percentile:g} TTFT/TPOT miss {w.slo.ttft_ms:g}/{w.slo.tpot_ms:g} ms even at a "
            f"light load ({key[1]}/{key[2]}, TP {key[3]})")


def _simulated(c: Candidate, v: Verdict, w: Workload) -> Candidate:
    """The candidate with the simulator's capacity and its percentile latencies at that load."""
    return c.model_copy(update=dict(
        batch=v.sequences, ttft_ms=v.ttft_ms, tpot_ms=v.tpot_ms, capacity_req_s=v.capacity_req_s,
        capacity_sequences=v.sequences,
        capacity_tok_s=v.capacity_req_s * w.output_tokens, latency=f"p{w.slo.percentile:g} simulated"))


def confirm(workloads: list[Workload], cands: list[Candidate], chosen: set[str], tables: Tables,
            utilization: float) -> list[Candidate] | None:
    """Simulate the chosen candidates that still carry scaled model capacities; the updated candidate list
    (their operating points replaced, or dropped when they miss the SLO), or None when nothing changed."""
    todo = {(c.workload, c.gpu, c.weights, c.kv, c.tp) for c in cands
            if c.id in chosen and (id(tables), c.id) in _ORIGINAL and "≈ mean model" in c.latency}
    if not todo:
        return None
    by_name = {w.name: w for w in workloads}
    out = []
    for c in cands:
        key = (c.workload, c.gpu, c.weights, c.kv, c.tp)
        original = _ORIGINAL.get((id(tables), c.id))
        if key not in todo or original is None:
            out.append(c)
            continue
        w = by_name[c.workload]
        v = verify(original, w, tables, utilization)
        if v is not None:
            out.append(_simulated(original, v, w))
    return out
