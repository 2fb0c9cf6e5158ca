"""The serving curve of a deployment: TPOT, TTFT, request-rate limit and prefill share at each batch, from the
step model (decode steps at the mean context, a prompt's prefill alone and its share at load) through
``roofline.serving``. ``serving_curve`` evaluates one deployment (``gpuplan perf``), ``serving_curves`` many at
once (candidate generation); both apply the same operations element by element."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
from gpuplan.hardware.formats import NumberFormat
from gpuplan.hardware.gpus import GPU
from gpuplan.models.catalog import Model
from gpuplan.optimizer.serving.calibration import CalibrationRow
from gpuplan.optimizer.serving.graphs import graph_limit
from gpuplan.optimizer.serving.layout import Layout
from gpuplan.optimizer.serving.roofline import decode_step_s, prefill_s, serving
from gpuplan.optimizer.serving.scheduler import engine_defaults
from gpuplan.optimizer.serving.shape import Shape, make_shape


@dataclass(frozen=True)
class Curve:
    """The step model of one deployment evaluated at each batch: what ``perf`` reports and candidate
    generation searches. ``op`` holds serving()'s arrays (tpot, ttft, rate, rate_max, prefill_share, in s
    and req/s)."""

    shape: Shape
    warning: str | None
    batches: np.ndarray
    step_s: np.ndarray
    memory_bound: np.ndarray
    ttft_prefill_s: float  # one prompt alone (its TTFT share)
    op: dict[str, np.ndarray]


def curve_shape(m: Model, g: GPU, wfmt: NumberFormat, kvfmt: NumberFormat, layout: Layout, cal: CalibrationRow,
                input_tokens: int, output_tokens: int, engine_version: str | None = None,
                cuda_graphs: bool = True) -> tuple[Shape, str | None]:
    """The step model's constants of one deployment at the mean decode context I + O/2, with the engine's CUDA-graph
    capture limit (graphs.csv; the current engine's when ``engine_version`` is None), or none at all when the
    server runs without CUDA graphs (``cuda_graphs`` False, graphs.graph_limit)."""
    return make_shape(m.arch, g, layout.tp, wfmt, kvfmt, input_tokens + output_tokens / 2, cal,
                      ep=layout.ep, attn_dp=layout.attn_dp,
                      graph_max_batch=graph_limit(cal.engine, g, layout.tp, engine_version, cuda_graphs),
                      version=engine_version)


def serving_curve(m: Model, g: GPU, wfmt: NumberFormat, kvfmt: NumberFormat, layout: Layout, cal: CalibrationRow,
                  input_tokens: int, output_tokens: int, batches: Sequence[float] | np.ndarray,
                  utilization: float, engine_version: str | None = None, cuda_graphs: bool = True) -> Curve:
    """One call sequence of the step model for ``perf`` and the planner: decode steps at the mean context
    I + O/2, the replica's GPU time per prompt spread over the attention-DP ranks (t_share, prefill_s with
    spread) for the rate limit and prefill share, one prompt's own prefill time and the per-request time
    for TTFT: serving(t_step, t_share, b, O, u, request_s, ttft_prefill_s = t_prefill, overlap = the engine's
    overlap scheduler at ``engine_version``, scheduler.csv). The prompt length goes in
    as a one-element array, so that numpy evaluates the prefill with its array routines, as ``serving_curves``
    does for many deployments at once (numpy's scalar ``**`` may differ from its array ``**`` in the last bit)."""
    shape, warning = curve_shape(m, g, wfmt, kvfmt, layout, cal, input_tokens, output_tokens, engine_version,
                                 cuda_graphs)
    prompt = np.array([input_tokens], dtype=float)
    t_pre = float(prefill_s(shape, m.arch, prompt)[0])
    b = np.asarray(batches, dtype=float)
    # At load a prompt costs what its tokens add to the decode steps it shares (mixed-step engines), or its
    # own prefill steps while the decodes wait (prefill-first engines: SGLang); scheduler.csv says which.
    sched = engine_defaults(cal.engine, g, engine_version)
    t_share = share_s(shape, prompt, np.asarray(output_tokens, dtype=float), b, np.array(sched.prefill_first))
    t_step, mem_bound = decode_step_s(shape, b)
    op = serving(t_step, t_share, b, output_tokens, utilization, request_s=shape.request_s, ttft_prefill_s=t_pre,
                 overlap=sched.overlap)
    return Curve(shape=shape, warning=warning, batches=b, step_s=t_step, memory_bound=mem_bound,
                 ttft_prefill_s=t_pre, op=op)


def share_s(s: Shape, input_tokens: np.ndarray, output_tokens: np.ndarray, batches: np.ndarray,
            prefill_first: np.ndarray) -> np.ndarray:
    """The replica's GPU time per prompt at load (``prefill_s`` with spread): what the prompt's tokens add to
    decode steps of b sequences that run anyway, with b / O prompts joining each step (mixed-step engines),
    or its own prefill steps while the decodes wait (``prefill_first`` engines: SGLang; scheduler.csv says
    which). Broadcasts deployments (rows of ``s`` and ``input_tokens``) against ``batches``. The mixed-step
    cost is evaluated at the batches 1, 2, 4, … (``share_nodes``) and interpolated linearly in b between them:
    it is smooth in b, and a grid of every batch would cost a Poisson-weighted step per (deployment, batch)."""
    alone = prefill_s(s, None, input_tokens, spread=True)
    b = np.asarray(batches, dtype=float)
    nodes = share_nodes(float(np.max(b)))
    at_nodes = prefill_s(s, None, input_tokens, spread=True, decode_batch=nodes, prompts_per_step=nodes / output_tokens)
    flat = b.reshape(-1)
    j = np.floor(np.log2(np.maximum(flat, 1.0))).astype(np.int64)
    w = (flat - nodes[j]) / nodes[j]
    mixed = at_nodes[..., j] + w * (at_nodes[..., j + 1] - at_nodes[..., j])
    return np.where(prefill_first, alone, mixed)


def share_nodes(top_batch: float) -> np.ndarray:
    """1, 2, 4, …, 2^(k+1) with 2^k ≥ ``top_batch``: every batch up to it lies between two nodes, and a
    batch's two nodes do not depend on how far the grid goes (one deployment or a bucket of them)."""
    k = int(np.ceil(np.log2(max(top_batch, 1.0))))
    return 2.0 ** np.arange(k + 2)


@dataclass(frozen=True)
class Curves:
    """``serving_curve`` of n deployments at batches 1..L, L = the largest of their limits: ``op``'s arrays and
    ``memory_bound`` are (n, L); a row's entries beyond its own limit are evaluated but not part of its
    curve (``valid`` is False there)."""

    batches: np.ndarray  # (L,)
    valid: np.ndarray  # (n, L)
    memory_bound: np.ndarray
    op: dict[str, np.ndarray]


def serving_curves(s: Shape, input_tokens: np.ndarray, output_tokens: np.ndarray, limits: np.ndarray,
                   utilization: np.ndarray, prefill_first: np.ndarray, overlap: np.ndarray) -> Curves:
    """``serving_curve`` of many deployments at batches 1..limits[i], in one pass. ``s`` is their shapes
    (``curve_shape`` of each) stacked (``shape.stack``); both prefill times are evaluated once per
    deployment and the decode step on the (deployment × batch) grid by broadcasting. Every operation is the
    one ``serving_curve`` applies, element by element; ``input_tokens``, ``output_tokens`` and
    ``utilization``, ``prefill_first`` (the engine's schedule, ``share_s``) and ``overlap`` (its overlap
    scheduler, ``serving``) are per deployment. Rows of
    similar limits waste least of the grid."""
    col = Shape(**{f.name: getattr(s, f.name)[:, None] for f in fields(Shape)})
    i_tok = np.asarray(input_tokens, dtype=float)[:, None]
    t_pre = prefill_s(col, None, i_tok)
    lim = np.asarray(limits, dtype=np.int64)[:, None]
    b = np.arange(1, int(lim.max()) + 1, dtype=float)
    o_tok = np.asarray(output_tokens, dtype=float)[:, None]
    t_share = share_s(col, i_tok, o_tok, b[None, :], np.asarray(prefill_first, dtype=bool)[:, None])
    t_step, mem_bound = decode_step_s(col, b[None, :])
    op = serving(t_step, t_share, b, o_tok,
                 np.asarray(utilization, dtype=float)[:, None], request_s=col.request_s, ttft_prefill_s=t_pre,
                 overlap=np.asarray(overlap, dtype=bool)[:, None])
    return Curves(batches=b, valid=b[None, :] <= lim, memory_bound=mem_bound, op=op)
