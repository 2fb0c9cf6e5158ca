"""Block-scaled FP8 GEMMs at decode sizes on ROCm: the K-loop floor (terms.blockscale_kloop_s).

A checkpoint with FP8 weights scaled per 128 × 128 block (DeepSeek-V3/R1, Kimi K2, MiniMax-M2.5:
``quantization_config.weight_block_size``) runs its linear layers as block-scale GEMMs (AITER's
``gemm_a8w8_blockscale``, the Triton ``w8a8_block_fp8_matmul``): the kernel walks K in 128-wide blocks, each
step loading a weight tile, the activation tile and both scales and rescaling the partial sum. At decode sizes
(M up to a few hundred tokens) the N / 128 output tiles occupy a few of the GPU's compute units, so the kernel
takes about K / 128 sequential block steps whatever M is, far above its bytes / bandwidth time. This module
counts those block steps per GPU and engine step: for every block-scaled GEMM of the model (kernels in order,
so the counts add), ⌈K_gpu / 128⌉ × the layers it runs in, where

- column-parallel matrices that share their input are one GEMM (q/k/v, MLA's q_a + kv_a, gate + up), their K
  the whole input width;
- row-parallel matrices (attention output, MLP down, mixer out_proj) split K over the tensor-parallel GPUs;
- MLA's kv_b is absorbed into the attention in 16 bits at decode (it runs no block-scale GEMM);
- routed experts run the fused MoE kernel, the router and lm_head 16-bit GEMMs: not counted.

DeepSeek-R1 at TP 8: per layer q_a + kv_a (K 7168) 56, q_b (1536) 12, o (16384 / 8) 16; shared expert
gate_up (7168) 56 and down (2048 / 8) 2 in its 58 MoE layers; dense MLP gate_up 56 and down (18432 / 8) 18 in
its 3 dense layers: 61 · 84 + 58 · 58 + 3 · 74 = 8,710 block steps per decode step.
"""

from __future__ import annotations

import math
from collections import defaultdict

from gpuplan.models.arch import Architecture
from gpuplan.models.params import Kind, tensor_groups

ROW_PARALLEL = ("o", "down", "out_proj")  # last name part of matrices whose input dimension is split over TP
ABSORBED = ("attn.kv_b",)  # MLA's kv_b: folded into the absorbed attention (16-bit) at decode
BLOCK_KINDS = (Kind.LINEAR, Kind.SHARED)


def block_scaled_fp8(arch: Architecture, vendor: str, compute: str) -> bool:
    """True where the step runs block-scale FP8 GEMMs on an AMD GPU: the checkpoint's FP8 weights carry block
    scales (``Architecture.fp8_weight_block``) and the GPU computes in FP8 natively."""
    return bool(arch.fp8_weight_block) and vendor.lower() == "amd" and compute == "fp8"


def kblocks_per_step(arch: Architecture, attn_tp: int, tp: int) -> float:
    """Sequential K-block steps of the block-scaled GEMMs of one decode step on one GPU (module docstring):
    Σ_GEMMs ⌈K_gpu / block_k⌉ × layers, attention matrices split over ``attn_tp`` GPUs and the rest over ``tp``."""
    block_k = arch.fp8_weight_block[-1] if arch.fp8_weight_block else 128
    fused: dict[tuple[str, int, int], int] = defaultdict(int)  # (module, K, layers) → column-parallel GEMMs
    total = 0.0
    for g in tensor_groups(arch):
        if not g.is_matrix or g.kind not in BLOCK_KINDS or g.name in ABSORBED or not g.active:
            continue
        module, _, part = g.name.rpartition(".")
        split = attn_tp if module == "attn" else tp
        if part in ROW_PARALLEL:
            total += math.ceil(g.cols / split / block_k) * g.active
        else:
            fused[(module, g.cols, g.active)] += 1
    total += sum(math.ceil(k / block_k) * layers for (_, k, layers) in fused)
    return float(total)
