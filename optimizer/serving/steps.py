"""Step times for the simulator, built only from the public step-model functions.

The simulator needs two numbers, both taken from ``roofline`` so that any improvement of the step
model flows into the simulator without a change here:

- decode step at batch b and mean context s: ``decode_step_s(make_shape(..., context=s), b)``,
  tabulated on a geometric grid of contexts and interpolated linearly in s (exact wherever the step
  time is affine in s, as the memory-bound roofline is);
- a mixed step (a prefill chunk of k new tokens on top of c cached tokens, plus b decodes):
  ``t_mixed = t_decode(b, s) + P(c + k) − P(c)`` with ``P(n) = prefill_s(shape, arch, n)`` and P(0) = 0.
  The chunk costs what extending the prompt from c to c + k tokens costs, so the chunks of one prompt sum
  to the unchunked prefill, its per-request costs are paid once, and prefill time adds to decode time as in
  the analytical serving model (TPOT = t_step / (1 − r · t_prefill)).

KV capacity in tokens comes from the memory model: the KV budget left by weights, activations and
runtime overhead under the engine's memory cap, divided by the KV bytes per token at the workload's
context (sliding-window layers make the per-token figure depend on the context).
"""

from __future__ import annotations

import bisect
import csv
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
from gpuplan.hardware.formats import NumberFormat
from gpuplan.hardware.gpus import GPU
from gpuplan.models.arch import Architecture
from gpuplan.models.breakdown import fit, inference_breakdown
from gpuplan.models.memory import kv_cache_bytes
from gpuplan.optimizer.errors import InputError
from gpuplan.optimizer.serving.calibration import CalibrationRow
from gpuplan.optimizer.serving.layout import Layout, max_sequences_dp
from gpuplan.optimizer.serving.roofline import Shape, decode_step_s, make_shape, prefill_s

SCHEDULER_CSV = Path(__file__).with_name("scheduler.csv")
MIN_GRID_CONTEXT = 16
GRID_RATIO = 1.5


@dataclass(frozen=True)
class EngineDefaults:
    """Scheduler defaults of an engine on a GPU size (see scheduler.csv for the sources)."""

    engine: str
    max_num_seqs: int
    max_batched_tokens: int
    block_size: int


@cache
def _scheduler_rows(path: Path = SCHEDULER_CSV) -> tuple[tuple[str, float, EngineDefaults], ...]:
    with path.open(newline="", encoding="utf-8") as fh:
        return tuple((r["engine"], float(r["min_gpu_memory_gib"]),
                      EngineDefaults(r["engine"], int(r["max_num_seqs"]), int(r["max_batched_tokens"]),
                                     int(r["block_size"]))) for r in csv.DictReader(fh))


def engine_defaults(engine: str, gpu: GPU) -> EngineDefaults:
    """The row of ``engine`` with the largest memory threshold the GPU reaches (vLLM treats A100 as small)."""
    memory = 0.0 if engine == "vllm" and gpu.id.startswith("a100") else gpu.memory_gib
    rows = [(m, d) for e, m, d in _scheduler_rows() if e == engine and memory >= m]
    if not rows:
        raise InputError(f"no scheduler defaults for engine '{engine}' in {SCHEDULER_CSV.name}")
    return max(rows, key=lambda t: t[0])[1]


def kv_capacity_tokens(arch: Architecture, gpu: GPU, wfmt: NumberFormat, kvfmt: NumberFormat, tp: int,
                       context: int, cal: CalibrationRow, layout: Layout | None = None) -> int:
    """KV budget of the TP group (memory model, engine cap) / KV bytes per token at ``context``; with expert
    parallelism and attention DP, the sequences of ``context`` tokens the layout holds × ``context``."""
    if layout is not None and (layout.ep > 1 or layout.attn_dp > 1):
        n = max_sequences_dp(arch, wfmt, kvfmt, layout, context, gpu.memory_bytes, cal.mem_util,
                             cal.runtime_overhead_gib, int(cal.chunk_tokens))
        return int(n * context)
    b = inference_breakdown(arch, wfmt, kvfmt, context, 1, tp, None, cal.runtime_overhead_gib)
    budget = fit(b, arch, kvfmt, context, gpu.memory_bytes, cal.mem_util).kv_budget_bytes
    per_token = kv_cache_bytes(arch, kvfmt, context, 1) / context
    return int(budget // per_token) if per_token > 0 else 0


def context_grid(max_context: float) -> list[float]:
    """MIN_GRID_CONTEXT, ×GRID_RATIO …, up to and including ``max_context``."""
    grid = [float(MIN_GRID_CONTEXT)]
    while grid[-1] < max_context:
        grid.append(min(grid[-1] * GRID_RATIO, float(max_context)))
    if len(grid) == 1:
        grid.append(grid[0] * GRID_RATIO)
    return grid


@dataclass
class StepModel:
    """Step times of one deployment: decode(b, s) from a table, prefill increments from a cache."""

    contexts: list[float]
    decode_table: list[list[float]]  # [context index][batch] seconds; batch 0 unused
    prefill_shape: Shape
    arch: Architecture
    kv_capacity_tokens: int
    request_s: float = 0.0  # per-request host time before scheduling (the step model's, when it has one)
    _prefill_cache: dict[int, float] = field(default_factory=lambda: {0: 0.0})

    @property
    def max_batch(self) -> int:
        return len(self.decode_table[0]) - 1

    def decode_s(self, batch: int, context: float) -> float:
        """One decode step of ``batch`` sequences at mean context ``context``, linear in context between
        grid points (and beyond the last two)."""
        ctx = self.contexts
        j = min(max(bisect.bisect_right(ctx, context) - 1, 0), len(ctx) - 2)
        lo, hi = self.decode_table[j][batch], self.decode_table[j + 1][batch]
        return lo + (hi - lo) * (context - ctx[j]) / (ctx[j + 1] - ctx[j])

    def prompt_s(self, tokens: int) -> float:
        """P(n): the step model's prefill of an n-token prompt (0 for n = 0), cached."""
        t = self._prefill_cache.get(tokens)
        if t is None:
            t = prefill_s(self.prefill_shape, self.arch, tokens)
            self._prefill_cache[tokens] = t
        return t

    def chunk_s(self, cached: int, new: int) -> float:
        """P(cached + new) − P(cached): what a prefill chunk adds to a step."""
        return self.prompt_s(cached + new) - self.prompt_s(cached)

    def mixed_s(self, batch: int, context: float, chunks: list[tuple[int, int]]) -> float:
        """A step with ``batch`` decodes at mean context ``context`` and prefill chunks (cached, new)."""
        t = self.decode_s(batch, context) if batch else 0.0
        return t + sum(self.chunk_s(c, k) for c, k in chunks)


def build_steps(arch: Architecture, gpu: GPU, tp: int, wfmt: NumberFormat, kvfmt: NumberFormat,
                cal: CalibrationRow, max_batch: int, max_context: float, mean_context: float,
                kv_context: int, block_size: int = 1, layout: Layout | None = None) -> StepModel:
    """Tabulate decode steps for batches 0..max_batch on a context grid up to ``max_context``; the prefill
    shape is the one ``perf`` uses (at ``mean_context``), so an isolated request matches ``perf``. The KV
    capacity is rounded down to whole blocks of ``block_size`` tokens."""
    grid = context_grid(max_context)
    batches = np.arange(0, max_batch + 1, dtype=float)
    table = []
    par = {"ep": layout.ep, "attn_dp": layout.attn_dp} if layout is not None else {}
    for s in grid:
        shape, _ = make_shape(arch, gpu, tp, wfmt, kvfmt, s, cal, **par)
        table.append(decode_step_s(shape, batches)[0].tolist())
    pshape, _ = make_shape(arch, gpu, tp, wfmt, kvfmt, mean_context, cal, **par)
    capacity = kv_capacity_tokens(arch, gpu, wfmt, kvfmt, tp, kv_context, cal, layout) // block_size * block_size
    return StepModel(contexts=grid, decode_table=table, prefill_shape=pshape, arch=arch,
                     kv_capacity_tokens=capacity, request_s=float(getattr(pshape, "request_s", 0.0)))
