"""Parallel layout of one replica: TP over G GPUs, expert parallel (EP) and data-parallel attention.

G = ``tp`` GPUs. MoE layers: ``ep`` expert-parallel ranks, each holding E / ep experts tensor-parallel over
G / ep GPUs, so routed-expert bytes per GPU = experts / G whatever ep is (ep changes who reads which
expert, not the bytes stored). Attention and the other dense weights: ``attn_dp`` data-parallel ranks of
a = G / attn_dp GPUs each, so dense bytes per GPU = dense / a and KV is replicated only inside a rank
(MLA's latent cache is replicated on every TP rank, which DP attention avoids: the reason DeepSeek-style
serving runs attention data-parallel).
"""

from __future__ import annotations

from gpuplan.hardware.formats import NumberFormat
from gpuplan.models.arch import Architecture
from gpuplan.models.breakdown import kv_replication
from gpuplan.models.memory import GIB, active_weights_bytes, kv_cache_bytes, prefill_activation_bytes, weights_bytes
from gpuplan.optimizer.errors import InputError
from pydantic import BaseModel, ConfigDict


class Layout(BaseModel):
    model_config = ConfigDict(frozen=True)

    tp: int
    ep: int = 1
    attn_dp: int = 1

    @property
    def attn_tp(self) -> int:
        return self.tp // self.attn_dp


def make_layout(arch: Architecture, tp: int, ep: int = 1, attn_dp: int | None = None) -> Layout:
    """Check and complete a layout; attention DP defaults to ep when ep > 1 (DeepSeek-style), else 1. DP
    attention with ep = 1 (SGLang ``--enable-dp-attention`` without ``--ep``) keeps the experts TP over
    all G GPUs."""
    if ep < 1 or tp % ep:
        raise InputError(f"--ep {ep} must divide --tp {tp} (EP ranks are GPUs of the replica)")
    if ep > 1 and not arch.moe:
        raise InputError(f"--ep {ep}: the model has no MoE layers to split over expert-parallel ranks")
    if ep > 1 and arch.moe and arch.moe.num_experts % ep:
        raise InputError(f"--ep {ep} does not divide the model's {arch.moe.num_experts} routed experts")
    dp = (ep if ep > 1 else 1) if attn_dp is None else attn_dp
    if dp < 1 or tp % dp:
        raise InputError(f"--attn-dp {dp} must divide --tp {tp}")
    if dp > 1 and not arch.moe:
        raise InputError("data-parallel attention needs MoE layers to gather its ranks' tokens (a dense model "
                         "runs data-parallel as separate replicas)")
    return Layout(tp=tp, ep=ep, attn_dp=dp)


def routed_expert_bytes(arch: Architecture, wfmt: NumberFormat) -> float:
    """All routed experts of all MoE layers, in the weight format."""
    if not arch.moe:
        return 0.0
    return active_weights_bytes(arch, wfmt, arch.moe.num_experts) - active_weights_bytes(arch, wfmt, 0)


def expert_bytes_per_gpu(arch: Architecture, wfmt: NumberFormat, layout: Layout, padding: float = 1.0) -> float:
    """Routed experts on one GPU: E / ep experts split over tp / ep GPUs = experts / tp, × the engine's
    storage padding f (expert_layout.expert_padding)."""
    return routed_expert_bytes(arch, wfmt) * padding / layout.ep / (layout.tp / layout.ep)


def weights_bytes_per_gpu(arch: Architecture, wfmt: NumberFormat, layout: Layout, padding: float = 1.0) -> float:
    """Dense (non-routed) weights / attention TP + routed experts × padding f / tp."""
    dense = weights_bytes(arch, wfmt) - routed_expert_bytes(arch, wfmt)
    return dense / layout.attn_tp + expert_bytes_per_gpu(arch, wfmt, layout, padding)


def kv_bytes_per_gpu_per_seq(arch: Architecture, kvfmt: NumberFormat, layout: Layout, context: int) -> float:
    """One sequence's KV on each GPU of its attention rank: KV × replication / attention TP."""
    return kv_cache_bytes(arch, kvfmt, context, 1) * kv_replication(arch, layout.attn_tp) / layout.attn_tp


def max_sequences_dp(arch: Architecture, wfmt: NumberFormat, kvfmt: NumberFormat, layout: Layout, context: int,
                     gpu_memory_bytes: int, mem_util: float, runtime_overhead_gib: float, chunk: int,
                     padding: float = 1.0, activation_bytes: float | None = None) -> int:
    """Sequences of ``context`` tokens a layout holds: per GPU, usable − weights (experts × padding f) −
    activations (the prefill chunk's, or the engine's ``activation_bytes`` reserve) − runtime, divided by the
    per-GPU KV of one sequence, times the attention DP ranks."""
    act = prefill_activation_bytes(arch, min(chunk, context), layout.attn_tp, 1)
    act = act if activation_bytes is None else activation_bytes
    budget = (gpu_memory_bytes * mem_util - weights_bytes_per_gpu(arch, wfmt, layout, padding) - act
              - runtime_overhead_gib * GIB)
    per_seq = kv_bytes_per_gpu_per_seq(arch, kvfmt, layout, context)
    return max(0, int(budget // per_seq)) * layout.attn_dp if per_seq > 0 else 0
