"""What an engine's memory holds: its cap on weights + KV, the KV pool per GPU, the KV capacity in tokens and the
running sequences it admits (the plan's batch limit, the simulator's KV pool, ``gpuplan validate``'s slots).

KV capacity in tokens comes from the memory model: the KV budget left by weights, activations and
runtime overhead under the engine's memory cap, divided by the KV bytes per token at the workload's
context (sliding-window layers make the per-token figure depend on the context).
"""

from __future__ import annotations

import math

from gpuplan.hardware.formats import NumberFormat
from gpuplan.hardware.gpus import GPU
from gpuplan.models.arch import Architecture
from gpuplan.models.breakdown import Breakdown, Fit, fit, inference_breakdown, kv_replication
from gpuplan.models.memory import (
    kv_bytes_per_token_layer,
    kv_cache_bytes,
    prefill_activation_bytes,
    state_bytes_per_sequence,
    tokens_held,
)
from gpuplan.optimizer.serving.calibration import CalibrationRow, version_in_range
from gpuplan.optimizer.serving.engine_memory import effective_mem_util, weights_kv_cap
from gpuplan.optimizer.serving.expert_layout import expert_padding, padded_breakdown
from gpuplan.optimizer.serving.graphs import capture_limit
from gpuplan.optimizer.serving.hybrid_state import StateSplit, sglang_state_split
from gpuplan.optimizer.serving.kv_capacity import pool_sequences
from gpuplan.optimizer.serving.layout import Layout, max_sequences_dp
from gpuplan.optimizer.serving.scheduler import engine_defaults


def engine_cap(cal: CalibrationRow, gpu: GPU, tp: int, attn_dp: int = 1, version: str | None = None) -> float | None:
    """The engine's cap on weights + KV as a fraction of GPU memory where it keeps activations outside it
    (engine_memory.weights_kv_cap, with the engine's chunked-prefill size and CUDA-graph limit); None where the
    calibration's ``mem_util`` caps everything."""
    chunk = engine_defaults(cal.engine, gpu, version).max_batched_tokens or cal.chunk_tokens
    return weights_kv_cap(cal.engine, version, gpu, tp, attn_dp, chunk, capture_limit(cal.engine, gpu, tp, version))


def memory_cap(cal: CalibrationRow, cap: float | None, fraction: float | None) -> tuple[CalibrationRow, float | None]:
    """(calibration, engine cap) with the server's memory ``fraction`` in place of the engine's default: where the
    engine keeps activations outside its cap (``cap`` not None: SGLang's weights + KV fraction) the fraction is
    that cap, else it is the calibration's ``mem_util`` (vLLM --gpu-memory-utilization); None keeps both."""
    if fraction is None:
        return cal, cap
    return (cal, fraction) if cap is not None else (cal.model_copy(update={"mem_util": fraction}), None)


VLLM_V1 = ">=0.8"  # the V1 engine (default from 0.8) profiles with the scheduler's token budget
# The dummy sampler run of vLLM's profile (gpu_model_runner._dummy_sampler_run) asks for top_p 0.9 and top_k =
# vocab − 1. Where the PyTorch-native sampler runs it, it sorts every row of logits over the whole vocabulary
# (topk_topp_sampler.py apply_top_k_top_p). Live at the sort, per logit: the model's bf16 logits 2 B and the
# sampler's fp32 copy 4 B; torch.sort's outputs, fp32 values 4 B and int64 indices 8 B; the int64 index iota it
# sorts along 8 B; and the radix sort's alternate key and value buffers 4 + 8 B (CUB DoubleBuffer).
SAMPLER_SORT_BYTES_PER_LOGIT = 2 + 4 + (4 + 8) + 8 + (4 + 8)
SAMPLER_LOGIT_BYTES = 4  # FlashInfer's top-k/top-p kernel samples from the fp32 logits without sorting them
# Releases whose profile sorts: FlashInfer's sampler was off by default from FlashInfer 0.2.3 (vllm-project/vllm
# pull request 14815, 2025-03-14) until flashinfer-python became a default CUDA dependency (taken as 0.10.2),
# off again from pull request 26859 (2025-10-15, 'Disable FlashInfer sampler by default', first in 0.11.1) until
# pull request 40376 (2026-04-20, 'Enable FlashInfer top-k/top-p sampler by default', taken as 0.20).
SAMPLER_SORT_VERSIONS = (">=0.8,<0.10.2", ">=0.11.1,<0.20")


def sampler_bytes_per_logit(version: str | None) -> int:
    """Bytes per logit of vLLM's profiled sampler: 38 where the release sorts (SAMPLER_SORT_VERSIONS), else 4;
    the current release (None) samples with FlashInfer."""
    sorts = version is not None and any(version_in_range(version, r) for r in SAMPLER_SORT_VERSIONS)
    return SAMPLER_SORT_BYTES_PER_LOGIT if sorts else SAMPLER_LOGIT_BYTES


def profile_activation_bytes(arch: Architecture, engine: str, gpu: GPU, attn_tp: int,
                             version: str | None = None, *, tokens: int | None = None,
                             rows: int | None = None) -> int | None:
    """The activation peak vLLM V1 keeps out of the KV cache, bytes per GPU; None for other engines (and vLLM V0),
    where the memory model's prefill-chunk activations stand.

    vLLM sizes the KV cache after a profile run (vllm/v1/worker/gpu_worker.py determine_available_memory:
    KV = gpu_memory_utilization · M − weights − torch activation peak − non-torch memory): GPUModelRunner.profile_run
    runs ``_dummy_run(max_num_tokens)`` with max_num_tokens = max_num_batched_tokens T, the tokens spread over
    min(T, max_num_seqs S) requests, then (``_dummy_sampler_run``) the sampler on one logits row per request,
    with top-k and top-p on, so that it sorts each row: SAMPLER_BYTES_PER_LOGIT = 38 B per logit live at the
    sort. The two run one after the other, so the torch peak is the larger of the forward pass's activations over
    T tokens and the sampler's min(T, S) · vocab · 38 B, whatever prompts the deployment serves (T and S:
    scheduler.csv, 2048 / 256 on A100 and GPUs under 70 GiB, 8192 / 1024 on H100, H200, MI300X with the API
    server; ``tokens`` and ``rows`` override them). gpt-oss-120b on one H100 (vocab 201,088): 1024 rows × 201,088
    × 38 B = 7.28 GiB, the bulk of the 7.9 GiB beside 65.97 GiB of weights that vLLM 0.10.1 logs as 'Available KV
    cache memory: -2.14 GiB' at the default 0.9 (vllm-project/vllm issue 23278; tests/data/kv_capacity.csv)."""
    if engine.lower() != "vllm":
        return None
    if version is not None and not version_in_range(version, VLLM_V1):
        # V0 profiles one forward pass over its token budget (max_model_len without chunked prefill); only
        # when that budget is given, else the memory model's prefill-chunk activations stand
        return prefill_activation_bytes(arch, tokens, attn_tp, 1) if tokens else None
    d = engine_defaults("vllm", gpu, version)
    tokens = tokens or d.max_batched_tokens
    if tokens <= 0:
        return None
    sampled = min(tokens, rows or d.max_num_seqs)
    return max(prefill_activation_bytes(arch, tokens, attn_tp, 1),
               sampled * arch.vocab * sampler_bytes_per_logit(version))


def with_activation(b: Breakdown, activation_bytes_per_gpu: int | None) -> Breakdown:
    """The breakdown with its activations replaced by the engine's reserve (per GPU × GPUs), if it has one."""
    if activation_bytes_per_gpu is None:
        return b
    act = activation_bytes_per_gpu * b.gpus
    return b.model_copy(update={"activation_bytes": act, "total_bytes": b.total_bytes - b.activation_bytes + act})


def kv_capacity_tokens(arch: Architecture, gpu: GPU, wfmt: NumberFormat, kvfmt: NumberFormat, tp: int,
                       context: int, cal: CalibrationRow, layout: Layout | None = None,
                       version: str | None = None, fraction: float | None = None) -> int:
    """KV budget of the TP group (memory model, engine cap) / KV bytes per token at ``context``; with expert
    parallelism and attention DP, the sequences of ``context`` tokens the layout holds × ``context``;
    ``fraction`` replaces the engine's memory cap (``max_sequences``)."""
    return max_sequences(arch, gpu, wfmt, kvfmt, tp, context, cal, layout, version, tokens=True, fraction=fraction)


def tp_pool_bytes(arch: Architecture, gpu: GPU, wfmt: NumberFormat, tp: int, context: int, cal: CalibrationRow,
                  version: str | None = None, *, fraction: float | None = None, max_num_seqs: int | None = None,
                  batched_tokens: int | None = None) -> float:
    """The KV pool on each GPU of a TP group: the engine's cap × M − weights (experts padded as the engine stores
    them) − activations (vLLM V1: its profile reserve) − runtime, with the cap ``mem_util`` (vLLM
    gpu_memory_utilization, TensorRT-LLM's and llama.cpp's share) or SGLang's weights + KV fraction
    (engine_cap; activations outside it). ``fraction`` replaces the engine's cap (--gpu-memory-utilization,
    --mem-fraction-static), ``max_num_seqs`` / ``batched_tokens`` the scheduler defaults vLLM profiles with."""
    cal, cap = memory_cap(cal, engine_cap(cal, gpu, tp, 1, version), fraction)
    padding = expert_padding(arch, cal.engine, wfmt.id, gpu.id, tp, 1, version)
    reserve = profile_activation_bytes(arch, cal.engine, gpu, tp, version, tokens=batched_tokens, rows=max_num_seqs)
    return _pool_bytes(_tp_breakdown(arch, gpu, wfmt, wfmt, tp, context, cal, padding, reserve), gpu, cal, cap, tp)


def _tp_breakdown(arch: Architecture, gpu: GPU, wfmt: NumberFormat, kvfmt: NumberFormat, tp: int, context: int,
                  cal: CalibrationRow, padding: float, reserve: int | None) -> Breakdown:
    """The TP group's memory at one sequence of ``context`` tokens: experts × the engine's padding, activations
    replaced by the engine's profile reserve where it has one."""
    b = inference_breakdown(arch, wfmt, kvfmt, context, 1, tp, None, cal.runtime_overhead_gib)
    return with_activation(padded_breakdown(b, arch, wfmt, padding), reserve)


def _pool_bytes(b: Breakdown, gpu: GPU, cal: CalibrationRow, cap: float | None, tp: int) -> float:
    """The KV pool per GPU of the breakdown ``b``: the engine's usable share × M − everything but the KV / tp."""
    util = effective_mem_util(cal.mem_util, cap, b.activation_bytes / b.gpus, gpu.memory_bytes)
    return util * gpu.memory_bytes - (b.total_bytes - b.kv_cache_bytes) / tp


def max_sequences(arch: Architecture, gpu: GPU, wfmt: NumberFormat, kvfmt: NumberFormat, tp: int, context: int,
                  cal: CalibrationRow, layout: Layout | None = None, version: str | None = None,
                  tokens: bool = False, fraction: float | None = None) -> int:
    """Sequences of ``context`` tokens (with ``tokens``: KV tokens) the deployment's KV budget holds: the memory
    model under the engine's cap (``mem_util``, or engine_cap's weights + KV fraction, activations outside); vLLM
    counts its pool's blocks as it does itself (kv_capacity.pool_sequences: window layers hold up to the window
    plus one step's token budget). ``fraction`` replaces the engine's cap as the server's flag does (vLLM
    --gpu-memory-utilization: everything under it; SGLang --mem-fraction-static: weights + KV, activations
    outside; TensorRT-LLM's KV memory fraction read as vLLM's; ``memory_cap``)."""
    cal, cap = memory_cap(cal, engine_cap(cal, gpu, tp, layout.attn_dp if layout is not None else 1, version),
                          fraction)
    padding = expert_padding(arch, cal.engine, wfmt.id, gpu.id, tp, layout.ep if layout is not None else 1, version)
    attn_tp = layout.attn_tp if layout is not None else tp
    reserve = profile_activation_bytes(arch, cal.engine, gpu, attn_tp, version)
    if layout is not None and (layout.ep > 1 or layout.attn_dp > 1):
        act = prefill_activation_bytes(arch, min(int(cal.chunk_tokens), context), layout.attn_tp, 1)
        act = act if reserve is None else reserve
        n = max_sequences_dp(arch, wfmt, kvfmt, layout, context, gpu.memory_bytes,
                             effective_mem_util(cal.mem_util, cap, act, gpu.memory_bytes),
                             cal.runtime_overhead_gib, int(cal.chunk_tokens), padding, reserve)
        return int(n * context) if tokens else n
    if cal.engine == "vllm":
        pool = _pool_bytes(_tp_breakdown(arch, gpu, wfmt, wfmt, tp, context, cal, padding, reserve), gpu, cal, cap, tp)
        step_tokens = engine_defaults("vllm", gpu, version).max_batched_tokens or context
        seqs = pool_sequences(arch, kvfmt, "vllm", pool, tp, context, step_tokens)
        return int(seqs * context) if tokens else math.floor(seqs)
    b, f = _tp_fit(arch, gpu, wfmt, kvfmt, tp, context, cal, padding, reserve, cap)
    split = _state_split(arch, cal, version, b, f, gpu.vendor)
    if split is not None:
        return _split_sequences(arch, kvfmt, tp, context, split, tokens)
    if not tokens:
        return f.max_sequences or 0
    per_token = kv_cache_bytes(arch, kvfmt, context, 1) / context
    return int(f.kv_budget_bytes // per_token) if per_token > 0 else 0


def _tp_fit(arch: Architecture, gpu: GPU, wfmt: NumberFormat, kvfmt: NumberFormat, tp: int, context: int,
            cal: CalibrationRow, padding: float, reserve: int | None, cap: float | None) -> tuple[Breakdown, Fit]:
    """The TP group's breakdown at one sequence of ``context`` tokens and its fit under the engine's cap."""
    b = _tp_breakdown(arch, gpu, wfmt, kvfmt, tp, context, cal, padding, reserve)
    f = fit(b, arch, kvfmt, context, gpu.memory_bytes,
            effective_mem_util(cal.mem_util, cap, b.activation_bytes / b.gpus, gpu.memory_bytes))
    return b, f


def _state_split(arch: Architecture, cal: CalibrationRow, version: str | None, b: Breakdown,
                 f: Fit, vendor: str) -> StateSplit | None:
    """SGLang's recurrent-state / KV split of the memory left after weights (hybrid_state), for models with
    Mamba or linear-attention layers; None for other engines and models."""
    state = state_bytes_per_sequence(arch)
    if cal.engine != "sglang" or state <= 0:
        return None
    return sglang_state_split(f.capacity_bytes - (b.total_bytes - b.kv_cache_bytes), state, version,
                              vendor=vendor)


def _split_sequences(arch: Architecture, kvfmt: NumberFormat, tp: int, context: int, split: StateSplit,
                     tokens: bool) -> int:
    """Under SGLang's split: KV tokens of the attention pool (``tokens``), else the sequences of ``context``
    tokens it holds, at most the state slots' running cap."""
    per_seq = kv_bytes_per_token_layer(arch, kvfmt) * tokens_held(arch, context) * kv_replication(arch, tp)
    if per_seq <= 0:
        return split.max_running if not tokens else 0
    if tokens:
        return int(split.kv_pool_bytes // (per_seq / context))
    return min(math.floor(split.kv_pool_bytes / per_seq), split.max_running)


def state_running_cap(arch: Architecture, gpu: GPU, wfmt: NumberFormat, kvfmt: NumberFormat, tp: int,
                      context: int, cal: CalibrationRow, version: str | None = None) -> int | None:
    """SGLang's running-request cap from a hybrid model's state slots on a TP group (hybrid_state); None where
    the engine or model has none."""
    padding = expert_padding(arch, cal.engine, wfmt.id, gpu.id, tp, 1, version)
    b, f = _tp_fit(arch, gpu, wfmt, kvfmt, tp, context, cal, padding, None, engine_cap(cal, gpu, tp, 1, version))
    split = _state_split(arch, cal, version, b, f, gpu.vendor)
    return None if split is None else split.max_running
