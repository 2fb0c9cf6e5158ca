"""Roofline decode and prefill for one replica, vectorised over batch size.

Decode step at batch b, mean context s, TP degree t (all times in seconds):
  t_mem  = (W(b) / t + b · KV(s) · rep / t) / (BW · η_mem)      W(b): weights read, MoE experts touched by b tokens
  t_cmp  = (2 · P_active · b + b · A(s)) / t / (F · η_cmp)        A(s): attention FLOPs per token at context s
  t_comm = 2 · L · (2(t−1)/t · b · hidden · 2 B / link + latency)  two all-reduces per layer, ring algorithm
  t_step = max(t_mem, t_cmp) + t_comm + t_fixed
Prefill of I tokens: max(compute at η_prefill, one weight read) + comm for I tokens + t_fixed.
Serving at request rate r with chunked prefill: a share f = r · t_prefill of GPU time goes to
prefill, so TPOT = t_step / (1 − f) and the replica's limit is r_max = b / (O · t_step + b · t_prefill).
TTFT = t_prefill · (1 + ρ / (2(1 − ρ))) + t_step with ρ = f (M/D/1 wait for the prefill server).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from gpuplan.hardware.formats import NumberFormat
from gpuplan.hardware.gpus import GPU
from gpuplan.models.arch import Architecture
from gpuplan.models.breakdown import kv_replication
from gpuplan.models.memory import (
    active_weights_bytes,
    decode_state_bytes,
    expected_experts_touched,
    tokens_attended,
)
from gpuplan.models.params import Kind, tensor_groups
from gpuplan.optimizer.errors import InputError
from gpuplan.optimizer.serving.calibration import CalibrationRow

ALLREDUCE_BYTES_PER_ELEMENT = 2  # 16-bit activations


@dataclass(frozen=True)
class Shape:
    """Per-deployment constants of the roofline (everything that does not depend on batch)."""

    dense_bytes: float  # weights read every step except routed experts
    expert_bytes_per_layer_expert: float  # one routed expert of one MoE layer
    moe_layers: int
    num_experts: int
    top_k: int
    kv_bytes_per_seq: float  # at the mean decode context, per sequence, before TP replication
    kv_rep: float
    linear_flops_per_token: float  # 2 × active parameters (matmuls)
    attn_flops_per_token: float  # at the mean decode context
    layers: int
    hidden: int
    tp: int
    bw: float  # bytes/s × η_mem
    flops: float  # FLOP/s × η_cmp
    prefill_flops: float  # FLOP/s × η_prefill
    link: float  # bytes/s one direction
    comm_latency_s: float
    t_fixed_s: float


def compute_path(gpu: GPU, fmt: NumberFormat) -> tuple[str, str | None]:
    """(compute format, warning): low-precision tensor rates only where the GPU runs the format natively."""
    if fmt.weight_only:
        return ("bf16" if gpu.runs_natively("bf16") else "fp16"), None
    if fmt.native and gpu.runs_natively(fmt.native):
        return fmt.compute, None
    if fmt.if_not_native == "error":
        raise InputError(f"weight format '{fmt.id}' cannot run on {gpu.id} (needs native {fmt.native})")
    fallback = "bf16" if gpu.runs_natively("bf16") else "fp16"
    return fallback, (f"{fmt.id} is not native on {gpu.id}: runs weight-only (dequantised, "
                      f"computes at {fallback})")


def attention_flops_per_token(arch: Architecture, context: float) -> float:
    """QKᵀ and AV: 4 · s_eff · heads · head_dim per layer (MLA absorbed: 2 · s · heads · (2·r_kv + r_rope))."""
    total = 0.0
    if arch.mla is not None:
        per = 2 * arch.heads * (2 * arch.mla.kv_lora_rank + arch.mla.qk_rope_head_dim)
    else:
        per = 4 * arch.heads * arch.head_dim
    total = per * tokens_attended(arch, context)
    return float(total)


def linear_flops_per_token(arch: Architecture) -> float:
    """2 FLOPs per multiply-add over every active matrix (lm_head included, embedding gather excluded)."""
    return 2.0 * sum(g.active_elements for g in tensor_groups(arch)
                     if g.is_matrix and g.kind not in (Kind.EMBED, Kind.VISION))


def make_shape(arch: Architecture, gpu: GPU, tp: int, wfmt: NumberFormat, kvfmt: NumberFormat,
               context: float, cal: CalibrationRow) -> tuple[Shape, str | None]:
    compute, warning = compute_path(gpu, wfmt)
    dense = active_weights_bytes(arch, wfmt, experts_touched=0)
    moe_layers = sum(arch.moe_layers) if arch.moe else 0
    per_expert = 0.0
    if arch.moe and moe_layers:
        per_expert = (active_weights_bytes(arch, wfmt, experts_touched=1) - dense) / moe_layers
    shape = Shape(
        dense_bytes=dense, expert_bytes_per_layer_expert=per_expert, moe_layers=moe_layers,
        num_experts=arch.moe.num_experts if arch.moe else 0, top_k=arch.moe.top_k if arch.moe else 0,
        kv_bytes_per_seq=decode_state_bytes(arch, kvfmt, context, kv_replication(arch, tp)),
        kv_rep=kv_replication(arch, tp), linear_flops_per_token=linear_flops_per_token(arch),
        attn_flops_per_token=attention_flops_per_token(arch, context), layers=arch.layers, hidden=arch.hidden,
        tp=tp, bw=gpu.memory_bw_bytes_s * cal.eta_mem, flops=gpu.peak_flops(compute) * cal.eta_cmp,
        prefill_flops=gpu.peak_flops(compute) * cal.eta_prefill, link=gpu.link_bytes_s(tp),
        comm_latency_s=cal.comm_latency_us * 1e-6, t_fixed_s=cal.t_fixed_ms * 1e-3,
    )
    return shape, warning


def weight_bytes_read(s: Shape, tokens: np.ndarray) -> np.ndarray:
    """Dense bytes + experts touched: E · (1 − (1 − k/E)^tokens) distinct experts per MoE layer."""
    if not s.moe_layers:
        return np.full_like(tokens, s.dense_bytes, dtype=float)
    touched = expected_experts_touched(s.num_experts, s.top_k, tokens)
    return s.dense_bytes + s.moe_layers * s.expert_bytes_per_layer_expert * touched


def comm_s(s: Shape, tokens: np.ndarray) -> np.ndarray:
    """2 all-reduces per layer of tokens × hidden × 2 B, ring cost 2(t−1)/t × size / link + latency."""
    if s.tp == 1:
        return np.zeros_like(tokens, dtype=float)
    size = tokens * s.hidden * ALLREDUCE_BYTES_PER_ELEMENT
    return 2 * s.layers * (2 * (s.tp - 1) / s.tp * size / s.link + s.comm_latency_s)


def decode_step_s(s: Shape, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(t_step, memory-bound flag) for each batch size."""
    b = np.asarray(batch, dtype=float)
    t_mem = (weight_bytes_read(s, b) + b * s.kv_bytes_per_seq * s.kv_rep) / s.tp / s.bw
    t_cmp = b * (s.linear_flops_per_token + s.attn_flops_per_token) / s.tp / s.flops
    return np.maximum(t_mem, t_cmp) + comm_s(s, b) + s.t_fixed_s, t_mem >= t_cmp


def prefill_s(s: Shape, arch: Architecture, input_tokens: int) -> float:
    """One request's prompt: max(FLOPs at η_prefill, one weight read) + comm + t_fixed.
    Causal attention costs half of 4 · I² · heads · head_dim per layer."""
    i = float(input_tokens)
    attn = attention_flops_per_token(arch, i) * i / 2
    t_cmp = (s.linear_flops_per_token * i + attn) / s.tp / s.prefill_flops
    t_mem = float(weight_bytes_read(s, np.array([i]))[0]) / s.tp / s.bw
    return max(t_cmp, t_mem) + float(comm_s(s, np.array([i]))[0]) + s.t_fixed_s


def serving(t_step: np.ndarray, t_prefill: float, batch: np.ndarray, output_tokens: int,
            utilization: float) -> dict[str, np.ndarray]:
    """Operating point at ``utilization`` × the replica's request-rate limit (see module docstring)."""
    b = np.asarray(batch, dtype=float)
    rate_max = b / (output_tokens * t_step + b * t_prefill)
    rate = utilization * rate_max
    share = np.minimum(rate * t_prefill, 0.999)
    tpot = t_step / (1.0 - share)
    wait = np.where(share > 0, share / (2.0 * (1.0 - share)), 0.0)
    ttft = t_prefill * (1.0 + wait) + t_step
    return {"rate_max": rate_max, "rate": rate, "tpot": tpot, "ttft": ttft, "prefill_share": share}
