"""The inverse questions, answered for a whole catalog at once: what fits, how long, how many, how few.

Serving (vLLM memory model, see models/breakdown.py) for a model m on a TP group of t GPUs of capacity C:
  usable(m, t, g) = C_g × t × cap − (weights_m + t × (activation peak + runtime constant))
  fits            = usable ≥ bytes of one sequence (attention KV × replication + SSM/linear state)
  max sequences   = ⌊usable / bytes per sequence⌋
evaluated as numpy arrays over models × TP degrees × GPUs. Training uses the training framework's
memory (no serving cap): per GPU, model states under ZeRO (optionally offloaded) + activations +
the runtime constant must fit the GPU's whole capacity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from gpuplan.hardware.formats import NumberFormat
from gpuplan.hardware.gpus import GPU
from gpuplan.models.breakdown import (
    DEFAULT_MEM_UTIL,
    DEFAULT_PREFILL_CHUNK,
    DEFAULT_RUNTIME_OVERHEAD_GIB,
    kv_bytes_all_ranks,
)
from gpuplan.models.catalog import Model
from gpuplan.models.memory import GIB, prefill_activation_bytes, weights_bytes
from gpuplan.models.params import count_params
from gpuplan.models.training import (
    ADAPTER_BYTES_PER_PARAM,
    Offload,
    Optimizer,
    largest_layer_params,
    lora_params,
    offload_state_bytes,
    trainable_state_bytes,
    training_activation_bytes,
)
from gpuplan.optimizer.planning.candidate_gen import TP_DEGREES
from gpuplan.optimizer.serving.deployment import max_tp
from gpuplan.pricing.offers import Offer

CONTEXT_STEPS = (2048, 8192, 32768, 131072)
MAX_TRAIN_GPUS = 4096
SEARCH_LIMIT = 2**27  # longest context searched (tokens)
GPUS_PER_NODE = 8


def tp_allowed(model: Model, tp: int) -> bool:
    """TP divides the attention heads, and GQA KV heads and TP divide one another (MLA: heads only)."""
    a = model.arch
    if a.heads % tp:
        return False
    return a.mla is not None or a.kv_heads % tp == 0 or tp % a.kv_heads == 0


@dataclass(frozen=True)
class ServingGrid:
    """Per (model, TP) fixed bytes and bytes per sequence, per GPU capacity; all in bytes."""

    models: list[Model]
    gpus: list[GPU]
    context: int
    tps: np.ndarray  # (T,)
    fixed: np.ndarray  # (M, T) weights + activations + runtime constant, all ranks
    per_seq: np.ndarray  # (M, T) one sequence's KV + state, all ranks
    valid: np.ndarray  # (M, T, G) TP allowed by the model and by the GPU's NVLink domain
    capacity: np.ndarray  # (G,) usable bytes of one GPU after the engine cap

    def usable(self) -> np.ndarray:
        """(M, T, G) bytes left for sequences."""
        return self.capacity[None, None, :] * self.tps[None, :, None] - self.fixed[:, :, None]

    def max_sequences(self) -> np.ndarray:
        """(M, T, G) concurrent sequences; −1 where the TP degree is not allowed."""
        seqs = np.floor(np.maximum(self.usable(), 0) / self.per_seq[:, :, None]).astype(np.int64)
        return np.where(self.valid, seqs, -1)

    def smallest_tp(self) -> np.ndarray:
        """(M, G) index into ``tps`` of the smallest TP that holds one sequence, −1 if none."""
        ok = self.max_sequences() >= 1
        first = ok.argmax(axis=1)
        return np.where(ok.any(axis=1), first, -1)


def fixed_bytes(model: Model, weights: int, context: int, tp: int, textbook: float | None) -> int:
    """Weights + TP × (prefill activation peak + runtime constant); textbook: weights × (1 + F)."""
    if textbook is not None:
        return round(weights * (1 + textbook))
    act = prefill_activation_bytes(model.arch, min(DEFAULT_PREFILL_CHUNK, context), tp, 1)
    return weights + tp * (act + round(DEFAULT_RUNTIME_OVERHEAD_GIB * GIB))


def serving_grid(models: list[Model], gpus: list[GPU], wfmt: NumberFormat, kvfmt: NumberFormat, context: int,
                 textbook: float | None = None, tps: tuple[int, ...] = TP_DEGREES) -> ServingGrid:
    tp_arr = np.array(tps, dtype=np.int64)
    fixed = np.zeros((len(models), len(tps)))
    per_seq = np.ones((len(models), len(tps)))
    allowed = np.zeros((len(models), len(tps)), dtype=bool)
    for i, m in enumerate(models):
        w = weights_bytes(m.arch, wfmt)
        for j, tp in enumerate(tps):
            allowed[i, j] = tp_allowed(m, tp)
            fixed[i, j] = fixed_bytes(m, w, context, tp, textbook)
            per_seq[i, j] = kv_bytes_all_ranks(m.arch, kvfmt, context, 1, tp)
    gpu_tp = np.array([max_tp(g) for g in gpus])
    valid = allowed[:, :, None] & (tp_arr[None, :, None] <= gpu_tp[None, None, :])
    util = 1.0 if textbook is not None else DEFAULT_MEM_UTIL
    capacity = np.array([g.memory_bytes * util for g in gpus])
    return ServingGrid(models=models, gpus=gpus, context=context, tps=tp_arr, fixed=fixed, per_seq=per_seq, valid=valid,
                       capacity=capacity)


def longest_context(model: Model, gpu: GPU, wfmt: NumberFormat, kvfmt: NumberFormat, tp: int,
                    textbook: float | None = None, limit: int = SEARCH_LIMIT) -> int:
    """Largest context ≤ ``limit`` one sequence can hold on a TP group (bisection: memory never falls as
    context grows); 0 if nothing fits."""
    w = weights_bytes(model.arch, wfmt)
    cap = gpu.memory_bytes * tp * (1.0 if textbook is not None else DEFAULT_MEM_UTIL)

    def fits(ctx: int) -> bool:
        return fixed_bytes(model, w, ctx, tp, textbook) + kv_bytes_all_ranks(model.arch, kvfmt, ctx, 1, tp) <= cap

    if not fits(1):
        return 0
    if fits(limit):
        return limit
    lo, hi = 1, limit
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


@dataclass(frozen=True)
class TrainingNeed:
    gpus: int | None  # fewest GPUs, None if even MAX_TRAIN_GPUS do not suffice
    gpu_bytes: int  # per GPU at that count (or at MAX_TRAIN_GPUS)
    host_bytes_per_node: int  # CPU (or NVMe) bytes per node for offloaded states


@dataclass(frozen=True)
class TrainingCase:
    """Everything of a model that training memory needs, computed once."""

    params: int
    trainable: int
    base_bytes: int
    largest: int
    activation_bytes: int


def training_case(model: Model, mode: str, base: NumberFormat, context: int, micro_batch: int,
                  checkpointing: bool, lora_rank: int) -> TrainingCase:
    params = count_params(model.arch).total
    trainable = params if mode == "train" else lora_params(model.arch, lora_rank)
    return TrainingCase(params=params, trainable=trainable,
                        base_bytes=0 if mode == "train" else weights_bytes(model.arch, base),
                        largest=largest_layer_params(model.arch),
                        activation_bytes=training_activation_bytes(model.arch, context, micro_batch, checkpointing))


def training_gpu_bytes(case: TrainingCase, mode: str, gpus: int, zero_stage: int, optimizer: Optimizer,
                       offload: Offload) -> tuple[int, int]:
    """(bytes per GPU, host bytes per node) for ``gpus`` data-parallel GPUs."""
    runtime = round(DEFAULT_RUNTIME_OVERHEAD_GIB * GIB)
    host = 0
    if mode == "train" and offload != "none":
        states, host = offload_state_bytes(case.params, case.largest, zero_stage, gpus,
                                           min(gpus, GPUS_PER_NODE), offload)
    elif mode == "train":
        states = sum(trainable_state_bytes(case.params, optimizer, zero_stage, gpus).values())
    else:
        states = (math.ceil(case.base_bytes / gpus) if zero_stage >= 3 else case.base_bytes) \
            + case.trainable * ADAPTER_BYTES_PER_PARAM
    return states + case.activation_bytes + runtime, host


def fewest_training_gpus(case: TrainingCase, mode: str, gpu: GPU, zero_stage: int, optimizer: Optimizer,
                         offload: Offload, exactly: int | None = None) -> TrainingNeed:
    """Smallest N ≤ MAX_TRAIN_GPUS whose per-GPU bytes fit the GPU (per-GPU bytes never rise with N);
    with ``exactly``, that N if it fits, else None with the bytes it would need."""
    def need(n: int) -> tuple[int, int]:
        return training_gpu_bytes(case, mode, n, zero_stage, optimizer, offload)

    if exactly is not None:
        gpu_b, host_b = need(exactly)
        return TrainingNeed(gpus=exactly if gpu_b <= gpu.memory_bytes else None, gpu_bytes=gpu_b,
                            host_bytes_per_node=host_b)

    top = need(MAX_TRAIN_GPUS)
    if top[0] > gpu.memory_bytes:
        return TrainingNeed(gpus=None, gpu_bytes=top[0], host_bytes_per_node=top[1])
    lo, hi = 0, MAX_TRAIN_GPUS  # need(hi) fits; need(lo) does not (lo = 0 is a sentinel)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if need(mid)[0] <= gpu.memory_bytes else (mid, hi)
    best = need(hi)
    return TrainingNeed(gpus=hi, gpu_bytes=best[0], host_bytes_per_node=best[1])


def cheapest(offers: list[Offer], gpu: str, gpus: int, tier: str,
             per_instance: int) -> tuple[str | None, float | None]:
    """(offer key, $/h) of the cheapest way to rent ``gpus`` GPUs of a type in whole instances of at
    least ``per_instance`` GPUs each (a TP group inside one instance; training nodes of 8)."""
    best: tuple[str | None, float | None] = (None, None)
    for o in offers:
        price = o.price(tier)
        if o.gpu != gpu or price is None or o.gpus_per_instance < per_instance:
            continue
        cost = math.ceil(gpus / o.gpus_per_instance) * price
        if best[1] is None or cost < best[1]:
            best = (o.key, cost)
    return best


def grid_rows(grid: ServingGrid, offers: list[Offer], tier: str) -> list[dict]:
    """One row per (model, GPU): the smallest TP group holding one sequence, its sequences, headroom and
    the cheapest offer; a context beyond the model's max_position_embeddings never fits."""
    seqs, first = grid.max_sequences(), grid.smallest_tp()
    out = []
    for i, m in enumerate(grid.models):
        too_long = bool(m.arch.max_context) and grid.context > m.arch.max_context
        for g, gpu in enumerate(grid.gpus):
            j = -1 if too_long else int(first[i, g])
            tp = int(grid.tps[j]) if j >= 0 else None
            offer, usd = cheapest(offers, gpu.id, tp, tier, tp) if tp else (None, None)
            why = f"context > the model's {m.arch.max_context:,}" if too_long else None if tp else "memory"
            out.append({"model": m.id, "gpu": gpu.id, "fits": tp is not None, "why_not": why, "gpus": tp, "tp": tp,
                        "max_sequences": int(seqs[i, j, g]) if tp else 0,
                        "headroom_gib": (grid.usable()[i, j, g] - grid.per_seq[i, j]) / GIB if tp else None,
                        "offer": offer, "usd_per_hour": usd})
    return out
