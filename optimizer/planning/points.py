"""Operating points: the best batch of each (GPU, weight format, KV format, TP, EP) for a workload.

A point's batch maximises the replica's capacity while TPOT and TTFT meet the targets at the target
utilisation (rate workloads), or is the largest batch that meets them saturated (concurrency workloads). It
must hold ``batch`` sequences of input + output tokens and at least one of ``max_context``.

All points a workload asks for are evaluated at once: the memory checks and the step model's constants
(``curve_shape``) per point, then ``serving_curves`` over every (point, batch 1..limit) in one vectorised
pass, then the per-point choice by segment reductions. The arithmetic is ``serving_curve``'s, element by
element. Points are memoised per table set: workloads that differ only in name and demand share them.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from gpuplan.hardware.gpus import GPU
from gpuplan.models.catalog import Model
from gpuplan.optimizer.errors import InputError
from gpuplan.optimizer.planning.workload import Workload
from gpuplan.optimizer.serving.curves import curve_shape, serving_curves
from gpuplan.optimizer.serving.deployment import default_engine, max_batch_in_memory
from gpuplan.optimizer.serving.layout import make_layout
from gpuplan.optimizer.serving.roofline import decode_step_s
from gpuplan.optimizer.serving.scheduler import engine_defaults
from gpuplan.optimizer.serving.shape import Shape, compute_path
from gpuplan.optimizer.tables import Tables
from pydantic import BaseModel

Miss = tuple[int, float, str]  # (rank, miss, reason): lower (rank, miss) = closer to feasible


class OperatingPoint(BaseModel):
    """Best operating point of one (GPU, formats, TP, EP) for a workload, independent of the offer."""

    weights: str
    kv: str
    tp: int
    ep: int = 1  # expert-parallel ranks (with as many data-parallel attention ranks); 1 = plain TP
    engine: str
    batch: int
    tpot_ms: float
    ttft_ms: float
    bound: str
    capacity_req_s: float
    capacity_sequences: int
    latency: str = "mean model"  # how tpot_ms / ttft_ms were obtained (percentile SLOs: the simulator)


@dataclass(frozen=True)
class Spec:
    """One point to evaluate: a GPU, the weight and KV format names, TP and EP."""

    gpu: GPU
    weights: str
    kv: str
    tp: int
    ep: int = 1


@dataclass(frozen=True)
class _Pending:
    spec: Spec
    engine: str
    shape: np.ndarray  # the step model's constants: the Shape's fields in order (compact, stacks fast)
    limit: int  # sequences of input + output tokens the KV budget holds (the batch grid's end)
    prefill_first: bool  # the engine runs prompts alone while decodes wait (scheduler.csv)
    overlap: bool  # the engine plans step k + 1 while step k runs: one step more of TTFT (scheduler.csv)


Result = tuple[OperatingPoint | None, Miss | None]

# a point depends on its own formats, not on the workload's lists of them, nor on the demand's size
_POINT_FIELDS_IGNORED = {"name", "rate_rps", "concurrency", "rate_profile", "rate_profile_csv", "weight", "weights",
                         "kv"}
_CACHE_LIMIT = 200_000


def _prepare(m: Model, w: Workload, spec: Spec, tables: Tables) -> _Pending | Miss:
    """The scalar part of a point: native-format check, memory at max_context and at input + output tokens,
    the step model's constants (memoised per table set: it reads only these fields of the workload)."""
    cache = tables.__dict__.setdefault("_prepared_points", {})
    key = (m.id, spec.gpu.id, spec.weights, spec.kv, spec.tp, spec.ep, w.engine, w.max_context, w.input_tokens,
           w.output_tokens)
    if key not in cache:
        if len(cache) > _CACHE_LIMIT:
            cache.clear()
        cache[key] = _prepare_now(m, w, spec, tables)
    return cache[key]


def _prepare_now(m: Model, w: Workload, spec: Spec, tables: Tables) -> _Pending | Miss:
    g, tp, ep = spec.gpu, spec.tp, spec.ep
    wfmt, kvfmt = tables.formats.weight(spec.weights), tables.formats.kv_format(spec.kv)
    try:
        compute_path(g, wfmt)
    except InputError as e:
        return (5, 0.0, str(e))
    engine = w.engine or default_engine(g, wfmt)
    cal = tables.calibration.lookup(engine, g.id, g.vendor)
    layout = make_layout(m.arch, tp, ep)
    assert w.max_context is not None
    if max_batch_in_memory(m, g, wfmt, kvfmt, tp, w.max_context, cal, layout) < 1:
        return (4, -tp, f"{spec.weights} weights + one {w.max_context:,}-token sequence do not fit on {tp} × {g.id}")
    limit = max_batch_in_memory(m, g, wfmt, kvfmt, tp, w.input_tokens + w.output_tokens, cal, layout)
    if limit < 1:
        return (4, -tp, f"{spec.weights} weights + one {w.input_tokens + w.output_tokens:,}-token sequence do not "
                        f"fit on {tp} × {g.id}")
    shape, _ = curve_shape(m, g, wfmt, kvfmt, layout, cal, w.input_tokens, w.output_tokens)
    sched = engine_defaults(cal.engine, g)
    return _Pending(spec, engine, np.array([getattr(shape, name) for name in _SHAPE_FIELDS], dtype=float), limit,
                    sched.prefill_first, sched.overlap)


_SHAPE_FIELDS = tuple(f.name for f in fields(Shape))


def _shape_name(spec: Spec) -> str:
    return f"TP {spec.tp}" + (f" EP {spec.ep}" if spec.ep > 1 else "")


GRID_ELEMENTS = 16_384  # (point × batch) entries per vectorised pass: the arrays stay in the CPU's cache


def _buckets(limits: list[int]) -> list[list[int]]:
    """Point indices in passes of similar limits (ascending), each within GRID_ELEMENTS entries (or one point)."""
    out: list[list[int]] = []
    for i in sorted(range(len(limits)), key=lambda i: limits[i]):
        if out and (len(out[-1]) + 1) * limits[i] <= GRID_ELEMENTS:
            out[-1].append(i)
        else:
            out.append([i])
    return out


TPOT_MARGIN = 1e-9  # relative: the reach search keeps every batch whose decode step is within it of the target


def tpot_reach(s: Shape, limits: np.ndarray, tpot_ms: float | np.ndarray) -> np.ndarray:
    """Per deployment of the stacked shapes ``s``, the largest batch b ≤ limit whose decode step t_step(b) ≤
    the TPOT target (0: none), by bisection on all deployments at once. Sound because TPOT = t_step / (1 −
    prefill share) ≥ t_step and t_step is nondecreasing in b (every term of ``roofline.step_s`` is: weights
    and experts touched, KV read, GEMM rows, collective sizes, host time per sequence; a property test guards
    it): no batch beyond the reach meets the target."""
    lo = np.zeros(len(limits), dtype=np.int64)  # meets the target (0 stands for "no batch")
    hi = np.asarray(limits, dtype=np.int64) + 1  # does not (limit + 1 is not a batch)
    target_s = tpot_ms * 1e-3 * (1 + TPOT_MARGIN)
    while np.any(hi - lo > 1):
        mid = (lo + hi) // 2
        meets = decode_step_s(s, np.maximum(mid, 1).astype(float))[0] <= target_s
        open_ = hi - lo > 1
        lo = np.where(open_ & meets, mid, lo)
        hi = np.where(open_ & ~meets, mid, hi)
    return lo


def _stacked(shapes: np.ndarray) -> Shape:
    """One Shape whose fields are arrays over the rows of ``shapes`` (as ``shape.stack``; each field
    contiguous)."""
    columns = np.ascontiguousarray(shapes.T)
    return Shape(**{name: columns[i] for i, name in enumerate(_SHAPE_FIELDS)})


def _choose(ws: list[Workload], pending: list[_Pending], utilization: float) -> list[Result]:
    """Every pending point's best batch for its workload (``ws``, one per point): the TPOT reach bounds each
    point's batch grid (1 at least, for the miss message), then ``serving_curves`` passes over buckets of
    points of similar grids, whatever workloads they serve (every operation is per point)."""
    shapes = np.array([p.shape for p in pending])
    s = _stacked(shapes)
    reach = tpot_reach(s, np.array([p.limit for p in pending]), np.array([w.slo.tpot_ms for w in ws]))
    ends = [max(1, min(p.limit, int(r))) for p, r in zip(pending, reach, strict=True)]
    out: list[Result | None] = [None] * len(pending)
    for bucket in _buckets(ends):
        results = _choose_bucket([ws[i] for i in bucket], [pending[i] for i in bucket], _stacked(shapes[bucket]),
                                 [ends[i] for i in bucket], utilization)
        for i, result in zip(bucket, results, strict=True):
            out[i] = result
    return out  # type: ignore[return-value]


def _choose_bucket(ws: list[Workload], pending: list[_Pending], s: Shape, ends: list[int],
                   utilization: float) -> list[Result]:
    by_rate = np.array([w.concurrency is None for w in ws])
    curves = serving_curves(s, np.array([w.input_tokens for w in ws]), np.array([w.output_tokens for w in ws]),
                            np.array(ends), np.where(by_rate, utilization, 1.0),
                            np.array([p.prefill_first for p in pending]), np.array([p.overlap for p in pending]))
    op = curves.op
    tpot, ttft = op["tpot"] * 1e3, op["ttft"] * 1e3
    tpot_ms = np.array([w.slo.tpot_ms for w in ws])[:, None]
    ttft_ms = np.array([w.slo.ttft_ms for w in ws])[:, None]
    ok = (tpot <= tpot_ms) & (ttft <= ttft_ms) & curves.valid
    chosen = np.where(by_rate,
                      np.argmax(np.where(ok, op["rate"], -1.0), axis=1),  # rate: the first batch of highest rate
                      ok.shape[1] - 1 - np.argmax(ok[:, ::-1], axis=1))  # concurrency: the largest batch
    out: list[Result] = []
    for k, (w, p) in enumerate(zip(ws, pending, strict=True)):
        spec, wname = p.spec, p.spec.weights
        if not ok[k].any():
            if tpot[k, 0] > w.slo.tpot_ms:
                msg = f"TPOT at batch 1 is {tpot[k, 0]:.1f} ms > {w.slo.tpot_ms:g} ms ({wname}, {_shape_name(spec)})"
                out.append((None, (2, float(tpot[k, 0]), msg)))
            else:
                msg = f"TTFT is {ttft[k, 0]:.0f} ms > {w.slo.ttft_ms:g} ms ({wname}, {_shape_name(spec)})"
                out.append((None, (1, float(ttft[k, 0]), msg)))
            continue
        i = int(chosen[k])
        batch = int(curves.batches[i])
        out.append((OperatingPoint(
            weights=wname, kv=spec.kv, tp=spec.tp, ep=spec.ep, engine=p.engine, batch=batch, tpot_ms=float(tpot[k, i]),
            ttft_ms=float(ttft[k, i]), bound="memory" if curves.memory_bound[k, i] else "compute",
            capacity_req_s=float(op["rate"][k, i] if by_rate[k] else op["rate_max"][k, i]),
            capacity_sequences=batch), None))
    return out


def best_points(m: Model, w: Workload, specs: list[Spec], tables: Tables, utilization: float) -> list[Result]:
    """(operating point, None) or (None, closest miss) for each spec, in order (memoised per table set)."""
    return best_points_many([(m, w, specs)], tables, utilization)[0]


def best_points_many(items: list[tuple[Model, Workload, list[Spec]]], tables: Tables,
                     utilization: float) -> list[list[Result]]:
    """``best_points`` of several workloads' specs, the points none of them has memoised evaluated together."""
    cache = tables.__dict__.setdefault("_operating_points", {})
    keyed = []
    for m, w, specs in items:
        shape_key = (m.id, utilization, w.concurrency is None, w.model_dump_json(exclude=_POINT_FIELDS_IGNORED))
        keyed.append([((s.gpu.id, s.weights, s.kv, s.tp, s.ep, shape_key), (m, w, s)) for s in specs])
    todo = dict(kv for row in keyed for kv in row if kv[0] not in cache)
    if len(cache) + len(todo) > _CACHE_LIMIT:
        cache.clear()
        todo = dict(kv for row in keyed for kv in row)
    if todo:
        prepared = {k: _prepare(m, w, s, tables) for k, (m, w, s) in todo.items()}
        pending = [k for k in todo if isinstance(prepared[k], _Pending)]
        for k in todo:
            if not isinstance(prepared[k], _Pending):
                cache[k] = (None, prepared[k])
        if pending:
            chosen = _choose([todo[k][1] for k in pending], [prepared[k] for k in pending],  # type: ignore[misc]
                             utilization)
            cache.update(zip(pending, chosen, strict=True))
    return [[cache[k] for k, _ in row] for row in keyed]
