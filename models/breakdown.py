"""Compose the memory model into one breakdown per deployment, and check it against GPU capacity.

Inference on ``gpus`` GPUs in one tensor-parallel group:
  per GPU usable = capacity × engine cap (vLLM ``gpu_memory_utilization``, default 0.9);
  KV budget per GPU = usable − weights / tp − activation peak − runtime constant;
  sequences = ⌊KV budget × tp / replication ÷ KV bytes per sequence⌋, where GQA KV heads
  are replicated when tp > kv_heads and MLA's latent cache is replicated on every rank.
With ``overhead_fraction`` F the textbook rule replaces all of that: overhead = F × weights,
no engine cap, no activation term.
"""

from __future__ import annotations

import math
from typing import Literal

from gpuplan.models.arch import Architecture
from gpuplan.models.memory import (
    GIB,
    Encoding,
    held_state_bytes,
    max_sequences,
    prefill_activation_bytes,
    weights_bytes,
)
from gpuplan.models.params import count_params
from gpuplan.models.training import (
    ADAPTER_BYTES_PER_PARAM,
    Optimizer,
    lora_params,
    trainable_state_bytes,
    training_activation_bytes,
)
from pydantic import BaseModel

Mode = Literal["inference", "train", "lora", "qlora"]
DEFAULT_RUNTIME_OVERHEAD_GIB = 1.0  # CUDA context + engine buffers + CUDA graphs, per GPU
DEFAULT_MEM_UTIL = 0.9  # vLLM --gpu-memory-utilization default
DEFAULT_PREFILL_CHUNK = 8192  # tokens per engine step (vLLM max_num_batched_tokens for serving)


class Breakdown(BaseModel):
    """Bytes summed over every GPU of the deployment (``per_gpu`` divides by the GPU count)."""

    mode: Mode
    gpus: int
    weights_bytes: int
    kv_cache_bytes: int
    activation_bytes: int
    overhead_bytes: int
    gradient_bytes: int = 0
    optimizer_bytes: int = 0
    adapter_bytes: int = 0
    total_bytes: int
    trainable_params: int = 0


def kv_replication(arch: Architecture, tp: int) -> float:
    """How many ranks hold the same KV bytes: MLA → tp; GQA → tp / min(tp, kv_heads)."""
    if arch.mla is not None:
        return float(tp)
    return tp / min(tp, arch.kv_heads)


def kv_bytes_all_ranks(arch: Architecture, kv: Encoding, context: int, sequences: int, tp: int) -> int:
    """sequences × (attention KV × replication + SSM/linear state): the state is split by head over the
    TP ranks, so only the attention KV is replicated."""
    rep = kv_replication(arch, tp)
    return math.ceil(held_state_bytes(arch, kv, context, rep) * rep * sequences)


def _total(**parts: int) -> int:
    return sum(parts.values())


def inference_breakdown(arch: Architecture, weights: Encoding, kv: Encoding, context: int, batch: int,
                        tp: int = 1, overhead_fraction: float | None = None,
                        runtime_overhead_gib: float = DEFAULT_RUNTIME_OVERHEAD_GIB,
                        prefill_chunk: int = DEFAULT_PREFILL_CHUNK) -> Breakdown:
    """weights + KV(batch sequences of ``context``) × replication + activations + overhead."""
    w = weights_bytes(arch, weights)
    kv_b = kv_bytes_all_ranks(arch, kv, context, batch, tp)
    if overhead_fraction is not None:
        act, over = 0, round(overhead_fraction * w)
    else:
        act = prefill_activation_bytes(arch, min(prefill_chunk, context * batch), tp, batch) * tp
        over = round(runtime_overhead_gib * GIB) * tp
    return Breakdown(mode="inference", gpus=tp, weights_bytes=w, kv_cache_bytes=kv_b, activation_bytes=act,
                     overhead_bytes=over, total_bytes=_total(w=w, k=kv_b, a=act, o=over))


def training_breakdown(arch: Architecture, mode: Mode, base: Encoding, context: int, batch: int, gpus: int = 1,
                       optimizer: Optimizer = "adamw", zero_stage: int = 0, checkpointing: bool = True,
                       lora_rank: int = 16, overhead_fraction: float | None = None,
                       runtime_overhead_gib: float = DEFAULT_RUNTIME_OVERHEAD_GIB) -> Breakdown:
    """Full training: 16 (AdamW) or 12 (SGD) bytes/param sharded by ZeRO; LoRA/QLoRA: frozen base at its
    format (replicated, or sharded under ZeRO-3) + adapters at 16 bytes/param. Activations per GPU
    for ``batch`` sequences of ``context`` tokens; totals are summed over ``gpus``."""
    act = training_activation_bytes(arch, context, batch, checkpointing) * gpus
    if mode == "train":
        params = count_params(arch).total
        parts = trainable_state_bytes(params, optimizer, zero_stage, gpus)
        w, g, o, a = parts["weights"] * gpus, parts["gradients"] * gpus, parts["optimizer"] * gpus, 0
        trainable = params
    else:
        trainable = lora_params(arch, lora_rank)
        base_bytes = weights_bytes(arch, base)
        w = base_bytes if zero_stage >= 3 else base_bytes * gpus
        g = o = 0
        a = trainable * ADAPTER_BYTES_PER_PARAM * gpus
    over = round(overhead_fraction * w) if overhead_fraction is not None else round(runtime_overhead_gib * GIB) * gpus
    return Breakdown(mode=mode, gpus=gpus, weights_bytes=w, kv_cache_bytes=0, activation_bytes=act,
                     overhead_bytes=over, gradient_bytes=g, optimizer_bytes=o, adapter_bytes=a,
                     total_bytes=_total(w=w, a=act, o=over, g=g, p=o, d=a), trainable_params=trainable)


class Fit(BaseModel):
    fits: bool
    capacity_bytes: int  # usable bytes over all GPUs (after the engine cap)
    kv_budget_bytes: int  # bytes left for KV cache over all GPUs (after replication)
    max_sequences: int | None  # concurrent sequences of ``context`` tokens (inference only)


def fit(b: Breakdown, arch: Architecture, kv: Encoding | None, context: int, gpu_memory_bytes: int,
        mem_util: float = DEFAULT_MEM_UTIL, textbook: bool = False) -> Fit:
    """Does the breakdown fit on ``b.gpus`` GPUs of ``gpu_memory_bytes`` each, and how many sequences?
    Serving is held to the engine's cap (``mem_util``); training frameworks use the whole GPU."""
    cap = gpu_memory_bytes * b.gpus * (1.0 if textbook or b.mode != "inference" else mem_util)
    fixed = b.total_bytes - b.kv_cache_bytes
    if b.mode != "inference" or kv is None:
        return Fit(fits=b.total_bytes <= cap, capacity_bytes=int(cap), kv_budget_bytes=0, max_sequences=None)
    budget = (cap - fixed) / kv_replication(arch, b.gpus)
    seqs = max_sequences(cap - fixed, kv_bytes_all_ranks(arch, kv, context, 1, b.gpus))
    return Fit(fits=b.total_bytes <= cap, capacity_bytes=int(cap), kv_budget_bytes=max(0, int(budget)),
               max_sequences=seqs)
