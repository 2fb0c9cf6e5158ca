"""Step times for the simulator, built only from the public step-model functions.

The simulator needs the time of one engine step, taken from ``roofline.step_s`` so that any improvement of
the step model flows into the simulator without a change here. A step carries b decodes at mean context s
and prefill chunks (c_i cached, k_i new tokens), K = Σ k_i:

  t = t_decode(b, s) + [M(b, K) − M(b, 0)] + Σ_i k_i · τ_attn(c_i + k_i / 2)
  (on an engine that runs prompt steps eagerly, at least t_host + t_fixed + (b + 1) · t_seq: prompt_host.py)

- t_decode(b, s) = ``decode_step_s``, tabulated on a geometric grid of contexts and interpolated linearly
  in s (exact wherever the step time is affine in s, as the memory-bound roofline is);
- M(b, K) = ``step_s(b, K)`` with no attention context and η_prefill: the weights read once for the whole
  step, the GEMMs of b + K tokens, the collectives, the per-layer floors and host time. It is
  tabulated on a grid of (b, K) and interpolated bilinearly. One step reads the weights and pays its
  floors once, however many prompts' chunks and decodes share it (a burst of short prompts batched into
  one step costs one MoE weight read, not one per prompt);
- τ_attn(x) = attention FLOPs of a query at context x / (16-bit tensor rate · η_prefill) on one attention
  rank: the causal attention of the chunk, so the chunks of one prompt sum to its I² / 2 attention.

With b = 0 and one chunk this is ``step_s`` of that chunk exactly; an isolated prompt costs P(I) =
``prefill_s`` (its per-request time is paid once, before the scheduler). ``prefill_first`` records the
engine's order of work (scheduler.csv): prefill batches run alone and pause the decodes (SGLang, vLLM V0), or
prefill chunks share a step with the decodes (vLLM V1, TensorRT-LLM).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

import numpy as np
from gpuplan.hardware.formats import NumberFormat
from gpuplan.hardware.gpus import GPU
from gpuplan.models.arch import Architecture
from gpuplan.optimizer.serving import terms
from gpuplan.optimizer.serving.admission import NO_RESERVATION, Reservation
from gpuplan.optimizer.serving.calibration import CalibrationRow
from gpuplan.optimizer.serving.engine_capacity import kv_capacity_tokens
from gpuplan.optimizer.serving.layout import Layout
from gpuplan.optimizer.serving.roofline import decode_step_s, prefill_s, step_s
from gpuplan.optimizer.serving.shape import Shape, make_shape, with_calibration

MIN_GRID_CONTEXT = 16
GRID_RATIO = 1.5
TOKEN_GRID_RATIO = 1.25  # prefill tokens per step: 1, 2, … 16, then ×1.25 (linear interpolation between)
EXACT_BELOW = 16
MAX_GRID_TOKENS = 1 << 17  # beyond: linear extrapolation


def context_grid(max_context: float) -> list[float]:
    """MIN_GRID_CONTEXT, ×GRID_RATIO …, up to and including ``max_context``."""
    grid = [float(MIN_GRID_CONTEXT)]
    while grid[-1] < max_context:
        grid.append(min(grid[-1] * GRID_RATIO, float(max_context)))
    if len(grid) == 1:
        grid.append(grid[0] * GRID_RATIO)
    return grid


def token_grid(limit: float) -> list[float]:
    """0, 1, 2, … EXACT_BELOW, then ×TOKEN_GRID_RATIO up to and including ``limit``."""
    grid = [float(k) for k in range(int(min(limit, EXACT_BELOW)) + 1)]
    while grid[-1] < limit:
        grid.append(min(math.ceil(grid[-1] * TOKEN_GRID_RATIO), float(limit)))
    return grid


def _interp(grid: list[float], x: float) -> tuple[int, float]:
    """(j, w): x lies between grid[j] and grid[j + 1] at weight w (w > 1 beyond the last point)."""
    j = bisect.bisect_right(grid, x, 1, len(grid) - 1) - 1  # searching grid[1:-1] clamps j to [0, len − 2]
    g = grid[j]
    return j, (x - g) / (grid[j + 1] - g)


@dataclass
class StepModel:
    """Step times of one deployment: decode(b, s) and the non-attention time M(b, K) of a step carrying K
    prefill tokens from tables, prefill attention per chunk from the shape (module docstring)."""

    contexts: list[float]
    decode_table: list[list[float]]  # [context index][batch] seconds; batch 0 unused
    prefill_shape: Shape
    arch: Architecture
    kv_capacity_tokens: int
    request_s: float = 0.0  # per-request host time before scheduling (the step model's, when it has one)
    prefill_first: bool = False  # the engine runs prefill batches alone (decodes wait)
    reservation: Reservation = NO_RESERVATION  # KV the engine holds back for future outputs at admission
    overlap: bool = False  # overlap scheduler: a request arriving during step k runs in step k + 2
    rank_chunk_tokens: int = 0  # data-parallel attention: one rank's chunk C_r, a request's most tokens per step
    batch_grid: list[float] = field(default_factory=list)  # decodes b of the M table
    token_grid: list[float] = field(default_factory=list)  # prefill tokens K of the M table (first 0)
    step_table: list[list[float]] = field(default_factory=list)  # M[b index][K index] seconds
    attn_s_per_token: tuple[float, float] = (0.0, 0.0)  # τ_attn(x) = max(a0 + a1 · x, 0)
    prompt_host_s: float = 0.0  # host time of an eager prompt step (prompt_host.py; 0: none)
    host_s: tuple[float, float] = (0.0, 0.0)  # the engine's per-step and per-sequence host time
    _prefill_cache: dict[int, float] = field(default_factory=lambda: {0: 0.0})
    _solo_cache: dict[int, float] = field(default_factory=dict)
    _last_context: int = field(init=False)  # len(contexts) − 1
    _batch_at: list[tuple[list[float], list[float], float, float]] = field(init=False)  # per b: _batch_rows
    _tokens_at: dict[int, tuple[int, float]] = field(init=False, default_factory=dict)  # _interp(token_grid, K)

    def __post_init__(self) -> None:
        self._last_context = len(self.contexts) - 1
        self._batch_at = [self._batch_rows(b) for b in range(self.max_batch + 1)] if self.batch_grid else []

    def _batch_rows(self, batch: int) -> tuple[list[float], list[float], float, float]:
        """The M rows around ``batch`` decodes, its weight u between them and M(b, 0) (0 for b = 0)."""
        i, u = _interp(self.batch_grid, batch)
        lo, hi = self.step_table[i], self.step_table[i + 1]
        return lo, hi, u, (lo[0] + (hi[0] - lo[0]) * u if batch else 0.0)

    @property
    def max_batch(self) -> int:
        return len(self.decode_table[0]) - 1

    def decode_s(self, batch: int, context: float) -> float:
        """One decode step of ``batch`` sequences at mean context ``context``, linear in context between
        grid points (and beyond the last two); ``_interp`` written out (the simulator's hottest call)."""
        grid = self.contexts
        j = bisect.bisect_right(grid, context, 1, self._last_context) - 1
        g = grid[j]
        lo = self.decode_table[j][batch]
        return lo + (self.decode_table[j + 1][batch] - lo) * ((context - g) / (grid[j + 1] - g))

    def prompt_s(self, tokens: int) -> float:
        """P(n): the step model's prefill of an n-token prompt alone (0 for n = 0), cached."""
        t = self._prefill_cache.get(tokens)
        if t is None:
            t = prefill_s(self.prefill_shape, self.arch, tokens)
            self._prefill_cache[tokens] = t
        return t

    def batch_s(self, batch: int, tokens: int) -> float:
        """M(b, K) − M(b, 0): what K prefill tokens add to a step of b > 0 decodes, attention aside; M(0, K)
        (the whole step, floors included) without decodes."""
        if tokens <= 0:
            return 0.0
        below, above, u, base = self._batch_at[batch]
        at = self._tokens_at.get(tokens)
        if at is None:
            at = self._tokens_at[tokens] = _interp(self.token_grid, tokens)
        j, w = at
        lo = below[j] + (above[j] - below[j]) * u
        hi = below[j + 1] + (above[j + 1] - below[j + 1]) * u
        return lo + (hi - lo) * w - base

    def attention_s(self, cached: int, new: int) -> float:
        """Causal attention of a chunk of ``new`` tokens after ``cached`` ones: new · τ_attn(cached + new / 2)."""
        a0, a1 = self.attn_s_per_token
        return new * max(a0 + a1 * (cached + new / 2), 0.0)

    def solo_s(self, tokens: int) -> float:
        """M(0, K) evaluated exactly (cached): a step that carries one prompt's chunk and nothing else."""
        t = self._solo_cache.get(tokens)
        if t is None:
            t = float(step_s(_bare(self.prefill_shape), 0.0, float(tokens))[0])
            self._solo_cache[tokens] = t
        return t

    def mixed_s(self, batch: int, context: float, chunks: list[tuple[int, int]]) -> float:
        """A step with ``batch`` decodes at mean context ``context`` and prefill chunks (cached, new); a lone
        chunk is priced exactly (so an isolated request costs ``prefill_s``), others from the table."""
        if not batch and len(chunks) == 1 and self.step_table:
            c, k = chunks[0]
            t = self.solo_s(k) + self.attention_s(c, k)
        else:
            a0, a1 = self.attn_s_per_token
            tokens, attn = 0, 0.0
            for c, k in chunks:  # Σ attention_s(c, k), written out
                tokens += k
                x = a0 + a1 * (c + k / 2)
                if x > 0.0:
                    attn += k * x
            t = self.decode_s(batch, context) if batch else 0.0
            t += self.batch_s(batch, tokens) + attn
        if chunks and self.prompt_host_s:  # an eager prompt step takes at least the host's time (prompt_host.py)
            t = max(t, self.prompt_host_s + self.host_s[0] + self.host_s[1] * (batch + 1))
        return t


def _bare(shape: Shape) -> Shape:
    """The shape without attention (no KV read, no attention FLOPs) and with the prefill efficiency for every
    row: M(b, K) − M(b, 0) is then what K prompt tokens add at η_prefill while the decodes keep η_cmp (in
    t_decode). Without the eager prompt step's host floor, which ``StepModel.mixed_s`` applies to the whole step
    (attention included), as roofline.step_terms_s does."""
    return with_calibration(shape, attn_flops_at_ctx=0.0, attn_flops_slope=0.0, kv_bytes_per_seq=0.0,
                            kv_bytes_slope=0.0, eta_cmp=shape.eta_prefill, prompt_host_s=0.0)


def _step_table(shape: Shape, batches: list[float], tokens: list[float]) -> list[list[float]]:
    """M(b, K) = step_s(b, K) of the bare shape (``_bare``) on a grid, in one vectorised call."""
    b, k = np.meshgrid(np.array(batches), np.array(tokens), indexing="ij")
    t, _ = step_s(_bare(shape), b.ravel(), k.ravel())
    return t.reshape(b.shape).tolist()


def _attention_coefficients(s: Shape) -> tuple[float, float]:
    """τ_attn(x) = max(a0 + a1 · x, 0) seconds per prompt token whose query sees x keys: the step model's
    attention FLOPs (affine around the shape's context) / attention TP / the prompt tokens' attention rate
    (16-bit rate · η_prefill, or the K/V streaming rate of a small-tile kernel:
    terms.prefill_attention_rate_flops_s)."""
    per_gpu = float(terms.prefill_attention_rate_flops_s(s.flops_attn_peak, s.eta_prefill,
                                                          s.prefill_tile_flops_per_byte, s.bw_peak))
    rate = per_gpu * float(s.tp / s.attn_dp) / float(s.prefill_attn_ratio)
    a1 = float(s.attn_flops_slope) / rate
    return float(s.attn_flops_at_ctx - s.attn_flops_slope * s.context) / rate, a1


def build_steps(arch: Architecture, gpu: GPU, tp: int, wfmt: NumberFormat, kvfmt: NumberFormat,
                cal: CalibrationRow, max_batch: int, max_context: float, mean_context: float,
                kv_context: int, block_size: int = 1, layout: Layout | None = None,
                prefill_first: bool = False, reservation: Reservation = NO_RESERVATION,
                overlap: bool = False, graph_max_batch: int = 0, version: str | None = None,
                rank_chunk_tokens: int = 0, mem_fraction: float | None = None) -> StepModel:
    """Tabulate decode steps for batches 0..max_batch on a context grid up to ``max_context`` and M(b, K); the
    prefill shape is the one ``perf`` uses (at ``mean_context``), so an isolated request matches ``perf``.
    The KV capacity is rounded down to whole blocks of ``block_size`` tokens; decode batches above
    ``graph_max_batch`` per attention rank run without a CUDA graph (0: no limit); ``version`` (the engine's)
    selects its memory cap (engine_capacity.engine_cap), ``mem_fraction`` replaces it (the server's
    memory-fraction flag); ``rank_chunk_tokens``: one DP-attention rank's chunk (dp_attention)."""
    grid = context_grid(max_context)
    batches = np.arange(0, max_batch + 1, dtype=float)
    table = []
    par = {"ep": layout.ep, "attn_dp": layout.attn_dp} if layout is not None else {}
    par["graph_max_batch"] = graph_max_batch
    for s in grid:
        shape, _ = make_shape(arch, gpu, tp, wfmt, kvfmt, s, cal, **par, version=version)
        table.append(decode_step_s(shape, batches)[0].tolist())
    pshape, _ = make_shape(arch, gpu, tp, wfmt, kvfmt, mean_context, cal, **par, version=version)
    if rank_chunk_tokens:  # an isolated prompt is chunked as its rank chunks it (prompt_s)
        pshape = with_calibration(pshape, chunk_tokens=min(float(pshape.chunk_tokens), float(rank_chunk_tokens)))
    capacity = kv_capacity_tokens(arch, gpu, wfmt, kvfmt, tp, kv_context, cal, layout, version, mem_fraction)
    capacity = capacity // block_size * block_size
    bgrid, kgrid = token_grid(max(max_batch, 1)), token_grid(MAX_GRID_TOKENS)  # decodes b (≥ 2 points), tokens K
    return StepModel(contexts=grid, decode_table=table, prefill_shape=pshape, arch=arch,
                     kv_capacity_tokens=capacity, request_s=float(getattr(pshape, "request_s", 0.0)),
                     prefill_first=prefill_first, reservation=reservation, overlap=overlap, batch_grid=bgrid,
                     token_grid=kgrid, rank_chunk_tokens=rank_chunk_tokens,
                     step_table=_step_table(pshape, bgrid, kgrid), attn_s_per_token=_attention_coefficients(pshape),
                     prompt_host_s=float(pshape.prompt_host_s), host_s=(float(pshape.t_fixed_s), float(pshape.seq_s)))
