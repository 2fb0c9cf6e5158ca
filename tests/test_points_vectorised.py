"""Vectorised operating points: the same choice, bit for bit, as evaluating one deployment at a time.

The reference below is the scalar path candidate generation used before: ``serving_curve`` of one
deployment over every batch 1..limit (the KV limit at input + output tokens), then the first batch of
highest rate meeting TPOT and TTFT (rate workloads) or the largest batch meeting them (concurrency).
"""

from __future__ import annotations

import numpy as np
import pytest
from gpuplan.models.catalog import resolve
from gpuplan.optimizer.errors import InputError
from gpuplan.optimizer.planning.candidate_gen import TP_DEGREES, layouts
from gpuplan.optimizer.planning.points import Spec, best_points, tpot_reach
from gpuplan.optimizer.planning.workload import Workload
from gpuplan.optimizer.serving.curves import curve_shape, serving_curve
from gpuplan.optimizer.serving.deployment import check_tp, default_engine, max_batch_in_memory, max_tp
from gpuplan.optimizer.serving.layout import make_layout
from gpuplan.optimizer.serving.roofline import decode_step_s
from gpuplan.optimizer.serving.shape import compute_path, stack
from gpuplan.optimizer.tables import Tables
from hypothesis import example, given, settings
from hypothesis import strategies as st

TABLES = Tables()
GPUS = ["h100-sxm", "a100-40gb", "l4", "mi300x", "b200", "rtx-4090", "gh200", "h100-nvl"]
UTILIZATION = 0.8
# (model, weights, kv, input, output, max_context, TTFT ms, TPOT ms, demand): dense, GQA, MoE with EP, MLA-free
# long context, tight and loose targets, rate and concurrency demands
SAMPLE = [
    ("llama-3.1-8b", ["bf16", "fp8", "awq"], ["bf16", "fp8"], 1500, 300, 7200, 1500, 50, {"rate_rps": 5.0}),
    ("llama-3.1-70b", ["bf16", "fp8"], ["fp8"], 4000, 500, 18000, 2000, 30, {"rate_rps": 12.0}),
    ("qwen3-30b-a3b", ["bf16", "fp8"], ["bf16"], 800, 200, 4000, 500, 25, {"concurrency": 64}),
    ("mixtral-8x7b", ["bf16", "fp8"], ["bf16", "fp8"], 3000, 400, 13600, 30000, 200, {"rate_rps": 3.0}),
    ("gpt-oss-20b", ["mxfp4"], ["bf16"], 200, 800, 4000, 800, 40, {"concurrency": 256}),
    ("qwen3-8b", ["bf16"], ["bf16"], 8000, 1000, 36000, 5000, 80, {"rate_rps": 20.0}),
    # an overlap-scheduling, prefill-first engine (scheduler.csv): its per-deployment columns in serving_curves
    ("llama-3.1-8b", ["bf16", "fp8"], ["bf16"], 1500, 300, 7200, 60, 50, {"rate_rps": 5.0, "engine": "sglang"}),
]


def _workload(row: tuple) -> Workload:
    model, weights, kv, i, o, ctx, ttft, tpot, demand = row
    return Workload(name="w", model=model, weights=weights, kv=kv, input_tokens=i, output_tokens=o,
                    max_context=ctx, slo={"ttft_ms": ttft, "tpot_ms": tpot}, **demand)


def _specs(w: Workload) -> list[Spec]:
    m = resolve(w.model)
    out = []
    for gid in GPUS:
        g = TABLES.gpus.get(gid)
        for tp, ep in layouts(m):
            try:
                check_tp(m.arch, g, tp // ep, m.id)
            except InputError:
                continue
            if tp <= max_tp(g):
                out += [Spec(g, a, b, tp, ep) for a in w.weights for b in w.kv]
    return out


def _scalar(w: Workload, s: Spec) -> tuple | None:
    """One deployment at a time over its whole batch grid: (batch, TPOT, TTFT, capacity, bound) or None."""
    m, g = resolve(w.model), s.gpu
    wfmt, kvfmt = TABLES.formats.weight(s.weights), TABLES.formats.kv_format(s.kv)
    try:
        compute_path(g, wfmt)
    except InputError:
        return None
    cal = TABLES.calibration.lookup(w.engine or default_engine(g, wfmt), g.id, g.vendor)
    layout = make_layout(m.arch, s.tp, s.ep)
    if max_batch_in_memory(m, g, wfmt, kvfmt, s.tp, w.max_context, cal, layout) < 1:
        return None
    limit = max_batch_in_memory(m, g, wfmt, kvfmt, s.tp, w.input_tokens + w.output_tokens, cal, layout)
    rate_mode = w.concurrency is None
    curve = serving_curve(m, g, wfmt, kvfmt, layout, cal, w.input_tokens, w.output_tokens,
                          np.arange(1, limit + 1, dtype=float), UTILIZATION if rate_mode else 1.0)
    tpot, ttft = curve.op["tpot"] * 1e3, curve.op["ttft"] * 1e3
    ok = (tpot <= w.slo.tpot_ms) & (ttft <= w.slo.ttft_ms)
    if not ok.any():
        return None
    i = int(np.argmax(np.where(ok, curve.op["rate"], -1.0))) if rate_mode else int(np.nonzero(ok)[0][-1])
    capacity = curve.op["rate"][i] if rate_mode else curve.op["rate_max"][i]
    return (int(curve.batches[i]), float(tpot[i]), float(ttft[i]), float(capacity),
            "memory" if curve.memory_bound[i] else "compute")


@pytest.mark.parametrize("row", SAMPLE, ids=[r[0] + "-" + r[-1].get("engine", "default") for r in SAMPLE])
def test_vectorised_points_equal_the_scalar_path(row: tuple) -> None:
    w = _workload(row)
    specs = _specs(w)
    points = best_points(resolve(w.model), w, specs, Tables(), UTILIZATION)  # fresh tables: nothing memoised
    found = 0
    for s, (p, why) in zip(specs, points, strict=True):
        ref = _scalar(w, s)
        if ref is None:
            assert p is None and why is not None, (s.gpu.id, s.weights, s.kv, s.tp, s.ep)
            continue
        found += 1
        assert p is not None
        assert (p.batch, p.tpot_ms, p.ttft_ms, p.capacity_req_s, p.bound) == ref, (s.gpu.id, s.weights, s.tp, s.ep)
        assert p.capacity_sequences == p.batch
    assert found >= 5  # the sample exercises the choice, not only misses


def _shape(model: str, gpu: str, weights: str, tp: int, ep: int, i: int, o: int):
    m, g = resolve(model), TABLES.gpus.get(gpu)
    wfmt, kvfmt = TABLES.formats.weight(weights), TABLES.formats.kv_format("bf16")
    cal = TABLES.calibration.lookup(default_engine(g, wfmt), g.id, g.vendor)
    return curve_shape(m, g, wfmt, kvfmt, make_layout(m.arch, tp, ep), cal, i, o)[0]


@settings(max_examples=40, deadline=None)
@given(model=st.sampled_from(["llama-3.1-8b", "llama-3.1-70b", "qwen3-30b-a3b", "mixtral-8x7b", "deepseek-r1",
                              "gpt-oss-120b", "qwen3-8b"]),
       gpu=st.sampled_from(["h100-sxm", "l4", "mi300x", "b200", "a100-80gb-pcie"]),
       weights=st.sampled_from(["bf16", "fp8", "awq"]), tp=st.sampled_from(TP_DEGREES[:4]),
       use_ep=st.booleans(), i=st.integers(1, 32_000), o=st.integers(1, 8_000))
# found by a randomised run: the block-scale K-loop floor on ROCm, added as its excess over the GEMMs' compute,
# shrank faster than the joint linear phase grew, so the step fell with the batch
@example(model="deepseek-r1", gpu="mi300x", weights="fp8", tp=1, use_ep=False, i=1, o=1)
def test_decode_step_is_nondecreasing_in_batch(model: str, gpu: str, weights: str, tp: int, use_ep: bool, i: int,
                                               o: int) -> None:
    """What ``tpot_reach`` relies on: t_step(b) never falls as the batch grows (to rounding)."""
    m = resolve(model)
    ep = tp if use_ep and (tp, tp) in layouts(m) else 1
    s = _shape(model, gpu, weights, tp, ep, i, o)
    t, _ = decode_step_s(s, np.arange(1, 4097, dtype=float))
    assert np.all(np.diff(t) >= -1e-12 * t[1:])


@pytest.mark.parametrize("tpot_ms", [8.0, 25.0, 60.0, 400.0])
def test_tpot_reach_is_the_last_batch_within_the_target(tpot_ms: float) -> None:
    """The bisection finds what a scan of every batch finds: the largest b ≤ limit with t_step(b) ≤ target."""
    shapes = [_shape("llama-3.1-8b", "h100-sxm", "bf16", 1, 1, 1500, 300),
              _shape("mixtral-8x7b", "h100-sxm", "fp8", 4, 4, 800, 200),
              _shape("llama-3.1-70b", "l4", "awq", 4, 1, 4000, 500)]
    limits = np.array([4096, 1500, 37])
    reach = tpot_reach(stack(shapes), limits, tpot_ms)
    for s, limit, r in zip(shapes, limits, reach, strict=True):
        t = decode_step_s(s, np.arange(1, limit + 1, dtype=float))[0] * 1e3
        within = np.nonzero(t <= tpot_ms)[0]
        assert r == (within[-1] + 1 if within.size else 0)


def test_points_are_shared_by_workloads_of_one_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    """A workload that differs only in name, demand size and format lists reuses the memoised points, and its
    candidates are those a fresh table set gives it."""
    from gpuplan.optimizer.planning import points
    from gpuplan.optimizer.planning.candidate_gen import generate
    from gpuplan.optimizer.planning.workload import Constraints

    first = _workload(SAMPLE[0])
    second = first.model_copy(update={"name": "other", "rate_rps": 17.5, "weights": ["fp8"], "kv": ["bf16"]})
    tables, c = Tables(), Constraints(providers=["aws", "lambda"])
    generate(first, c, tables)
    calls = []
    real = points._choose
    monkeypatch.setattr(points, "_choose", lambda *a: calls.append(1) or real(*a))
    shared = generate(second, c, tables)
    assert calls == []
    fresh = generate(second, c, Tables())
    assert [x.model_dump() for x in shared.candidates] == [x.model_dump() for x in fresh.candidates]
    assert shared.candidates and (shared.considered, shared.pruned) == (fresh.considered, fresh.pruned)


def test_workloads_evaluated_together_match_one_at_a_time() -> None:
    """``all_candidates`` evaluates several workloads' points in shared passes (rows of different prompts,
    targets and demand kinds in one bucket); each workload's candidates equal those it gets alone, on a fresh
    table set."""
    from gpuplan.optimizer.planning.candidate_gen import generate
    from gpuplan.optimizer.planning.planner import all_candidates
    from gpuplan.optimizer.planning.workload import Constraints, Fleet

    c = Constraints(providers=["aws", "lambda"])
    workloads = [_workload(row).model_copy(update={"name": f"w{i}"}) for i, row in enumerate(SAMPLE)]
    together, _ = all_candidates(Fleet(workloads=workloads, constraints=c), Tables())
    for w, shared in zip(workloads, together, strict=True):
        alone = generate(w, c, Tables())
        assert [x.model_dump() for x in shared.candidates] == [x.model_dump() for x in alone.candidates]
        assert (shared.considered, shared.pruned, shared.reasons) == (alone.considered, alone.pruned, alone.reasons)
    assert sum(len(s.candidates) for s in together) > 0
