"""Training and fine-tuning memory: optimizer states, gradients, ZeRO sharding, activations, LoRA.

Mixed-precision AdamW keeps 16 bytes per trainable parameter (bf16 weights 2 + fp32 master 4 +
bf16 grads 2 + fp32 m 4 + fp32 v 4); SGD with momentum 12 (no v). ZeRO over N GPUs shards the
fp32 states (stage ≥ 1), the gradients (≥ 2) and the 16-bit weights (3).
"""

from __future__ import annotations

import math
from typing import Literal

from gpuplan.models.arch import Architecture
from gpuplan.models.memory import ACT_BYTES
from gpuplan.models.params import Kind, tensor_groups

Optimizer = Literal["adamw", "sgd"]
WEIGHT_BYTES = 2  # bf16 working copy
GRAD_BYTES = 2  # bf16 gradients
STATE_BYTES = {"adamw": 12, "sgd": 8}  # fp32 master + moments
ADAPTER_BYTES_PER_PARAM = 16  # LoRA adapters are trained with mixed-precision AdamW
LOGIT_BYTES = 6  # bf16 logits + fp32 copy for the loss


def trainable_state_bytes(params: int, optimizer: Optimizer, zero_stage: int, gpus: int) -> dict[str, int]:
    """Per-GPU bytes of weights, gradients and optimizer states under ZeRO ``zero_stage`` over ``gpus``."""
    if zero_stage not in (0, 1, 2, 3):
        raise ValueError("zero_stage must be 0, 1, 2 or 3")
    shard = max(1, gpus)
    return {
        "weights": math.ceil(params * WEIGHT_BYTES / (shard if zero_stage >= 3 else 1)),
        "gradients": math.ceil(params * GRAD_BYTES / (shard if zero_stage >= 2 else 1)),
        "optimizer": math.ceil(params * STATE_BYTES[optimizer] / (shard if zero_stage >= 1 else 1)),
    }


def _mixer_width(arch: Architecture, mixer: str) -> int:
    """Elements a sequence mixer saves per token for backward (flash attention, no dropout), with its
    2·hidden of norm input and residual: attention q + 2·kv + output q; Mamba in_proj output + conv and
    scan outputs (d_inner each); DeltaNet q/k/v/z/b/a projections + conv output + recurrent output."""
    if mixer == "none":
        return 0
    h = arch.hidden
    if mixer == "mamba" and arch.mamba is not None:
        m = arch.mamba
        proj = 2 * m.d_inner + (2 * m.groups * m.d_state + m.heads if m.version == 2 else 0)
        return 2 * h + proj + 2 * m.d_inner
    if mixer == "linear" and arch.linear is not None:
        la = arch.linear
        key, value = la.k_heads * la.k_head_dim, la.v_heads * la.v_head_dim
        return 2 * h + (2 * key + 2 * value + 2 * la.v_heads) + (2 * key + value) + value
    q_dim, kv_dim = arch.heads * arch.head_dim, arch.kv_heads * arch.head_dim
    return 2 * h + q_dim + 2 * kv_dim + q_dim


def _ffn_width(arch: Architecture, ffn: str) -> int:
    """2·hidden + (gate, up, activation) = 3·I for gated MLPs, (up, activation) = 2·I otherwise; MoE: the
    top-k experts' widths plus the shared expert's."""
    if ffn == "none":
        return 0
    if ffn == "moe" and arch.moe is not None:
        width, gated = arch.moe.top_k * arch.moe.expert_intermediate + arch.moe.shared_intermediate, arch.moe.gated
    else:
        width, gated = arch.intermediate, arch.mlp_gated
    return 2 * arch.hidden + (3 if gated else 2) * width


def _stored_widths_per_token(arch: Architecture) -> list[int]:
    """Per layer: elements saved per token for backward = mixer width + feed-forward width (for an
    attention + SwiGLU layer 4·hidden + 2·q + 2·kv + 3·I)."""
    return [_mixer_width(arch, m) + _ffn_width(arch, f) for m, f in zip(arch.mixers, arch.ffn, strict=True)]


def training_activation_bytes(arch: Architecture, seq_len: int, micro_batch: int, checkpointing: bool) -> int:
    """Without checkpointing: tokens × Σ layers' stored widths × 2 B; with full per-layer checkpointing:
    tokens × (layers × hidden + the widest layer's stored width) × 2 B. Plus tokens × vocab × 6 B of logits."""
    tokens = seq_len * micro_batch
    widths = _stored_widths_per_token(arch)
    width = arch.layers * arch.hidden + max(widths) if checkpointing else sum(widths)
    return tokens * (width * ACT_BYTES + arch.vocab * LOGIT_BYTES)


def lora_params(arch: Architecture, rank: int) -> int:
    """rank × (rows + cols) per adapted matrix; every linear layer (attention, MLP, experts) is adapted."""
    if rank <= 0:
        raise ValueError("LoRA rank must be positive")
    kinds = (Kind.LINEAR, Kind.EXPERT, Kind.SHARED)
    return sum(rank * (g.rows + g.cols) * g.count for g in tensor_groups(arch) if g.kind in kinds)


Offload = Literal["none", "optimizer", "optimizer+params"]
OFFLOAD_BUFFER = 1.5  # DeepSpeed's additional_buffer_factor for pinned host buffers


def largest_layer_params(arch: Architecture) -> int:
    """Elements of the largest single weight matrix (ZeRO-3 gathers one layer's weights at a time)."""
    return max(g.rows * g.cols for g in tensor_groups(arch) if g.is_matrix)


def offload_state_bytes(params: int, largest_layer: int, zero_stage: int, gpus: int, gpus_per_node: int,
                        offload: Offload) -> tuple[int, int]:
    """(GPU bytes per GPU, host bytes per node) of model states with ZeRO-Offload / ZeRO-Infinity, as
    DeepSpeed's estimate_zero{2,3}_model_states_mem_needs (zero_init, buffer factor 1.5):
      stage 3, optimizer+params on host: GPU 4·L;            host 18·P / nodes × 1.5
      stage 3, optimizer on host:        GPU 4·L + 2·P / N;  host 16·P / nodes × 1.5
      stage 1-2, optimizer on host:      GPU 2·P;            host max(2·N, 16)·P × 1.5
    where P = parameters, L = largest layer's parameters, N = GPUs. ZeRO-Infinity puts the host share
    on NVMe instead of CPU memory."""
    if offload == "none":
        raise ValueError("offload_state_bytes needs an offload target")
    if offload == "optimizer+params" and zero_stage != 3:
        raise ValueError("parameter offload needs ZeRO stage 3")
    if zero_stage == 0:
        raise ValueError("optimizer offload needs ZeRO stage 1, 2 or 3")
    nodes = max(1, math.ceil(gpus / gpus_per_node))
    if zero_stage == 3:
        if offload == "optimizer+params":
            return 4 * largest_layer, math.ceil(18 * params / nodes * OFFLOAD_BUFFER)
        return 4 * largest_layer + math.ceil(2 * params / gpus), math.ceil(16 * params / nodes * OFFLOAD_BUFFER)
    return 2 * params, math.ceil(max(2 * gpus, 16) * params * OFFLOAD_BUFFER)
