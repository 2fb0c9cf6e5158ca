"""The constants of one deployment for the step model (``roofline``): a ``Shape`` holds, as plain numbers, the
bytes, FLOPs, link and calibration figures of one replica (model × GPU × formats × layout × engine), so that many
deployments stack into arrays and evaluate at once. ``make_shape`` builds it: weights and experts per GPU, KV and
attention FLOPs linear around a context, the GPU's peak rates on the compute path of the weight format, the links'
α–β figures and the engine's calibration row."""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields, replace

import numpy as np
from gpuplan.hardware.formats import NumberFormat
from gpuplan.hardware.gpus import GPU
from gpuplan.models.arch import Architecture
from gpuplan.models.breakdown import kv_replication
from gpuplan.models.memory import (
    active_weights_bytes,
    attention_16bit,
    decode_state_bytes,
    matrices_bytes,
    tokens_attended,
)
from gpuplan.models.params import Kind, tensor_groups
from gpuplan.optimizer.errors import InputError
from gpuplan.optimizer.serving import terms
from gpuplan.optimizer.serving.blockscale import block_scaled_fp8, kblocks_per_step
from gpuplan.optimizer.serving.calibration import CalibrationRow
from gpuplan.optimizer.serving.expert_layout import expert_padding
from gpuplan.optimizer.serving.graphs import piecewise_attention
from gpuplan.optimizer.serving.kernels import kernel_constant
from gpuplan.optimizer.serving.links import MIB, a2a_alpha_s, alpha_s, link_row
from gpuplan.optimizer.serving.prefill_tiles import tile_block_m, tile_flops_per_byte, tile_query_rows
from gpuplan.optimizer.serving.prompt_host import prompt_host_s

ACTIVATION_BYTES = 2  # 16-bit activations in all-reduces and MoE combine
# MLA's down-projections (q_a, kv_a with the RoPE key): the engines keep them whole on every attention-TP rank
# (vLLM's and SGLang's DeepSeek attention build them as ReplicatedLinear), so each rank reads and computes them
# in full; the up-projections, o_proj and the MLPs are split over the rank's GPUs.
TP_REPLICATED = ("attn.q_a", "attn.kv_a")


@dataclass(frozen=True)
class Shape:
    """Per-deployment constants of the step model. Every field is a number, so shapes of many
    deployments stack into arrays (``stack``) and evaluate at once."""

    tp: float  # GPUs of the replica
    ep: float
    attn_dp: float
    dense_bytes: float  # weights read every step except routed experts
    expert_bytes: float  # one routed expert of one MoE layer
    expert_cols: float  # columns of one expert slice on one GPU (intermediate / GPUs per EP rank)
    slice_ramp_cols: float  # grouped-GEMM start-up per expert slice, in columns (kernels.csv)
    overlap_p: float  # memory / compute overlap exponent of the linear phase (kernels.csv)
    moe_layers: float
    num_experts: float
    top_k: float
    dense_flops_per_token: float  # 2 × active non-expert matmul parameters
    expert_flops_per_row: float  # 2 × parameters of one expert summed over MoE layers
    kv_bytes_per_seq: float  # at ``context``, per sequence, before TP replication
    kv_bytes_slope: float  # d KV bytes / d context around ``context``
    kv_rep: float  # replication of KV inside one attention TP group
    attn_flops_at_ctx: float  # attention FLOPs of one query token at ``context``
    attn_flops_slope: float  # d attention FLOPs / d context around ``context``
    context: float  # mean decode context
    layers: float
    mla_layers: float
    hidden: float
    bw_peak: float  # bytes/s
    flops_w_peak: float  # FLOP/s of the weight format's tensor path
    flops_attn_peak: float  # FLOP/s of the 16-bit path (attention)
    eta_mem: float
    eta_cmp: float
    eta_prefill: float
    eta_moe: float  # grouped-GEMM throughput relative to a dense GEMM of the same FLOPs
    link_bytes_s: float  # one direction
    alpha_ar_s: float  # all-reduce latency over the attention TP group
    alpha_a2a_s: float  # dispatch / combine latency over the EP group
    alpha_moe_ar_s: float  # latency of a MoE layer's all-reduce over all tp GPUs (the experts' group)
    expert_load_cv: float  # coefficient of variation of routed tokens per expert (kernels.csv)
    ep_excess_scale: float  # busiest EP rank's excess in √(2 ln ep) rank standard deviations (kernels.csv)
    eta_a2a: float  # flat dispatch / combine bandwidth efficiency (0: the all-reduce curve)
    eta_link_small: float
    eta_link_large: float
    link_knee_bytes: float
    dispatch_bytes: float  # bytes per element of MoE dispatch (FP8 dispatch when computing in FP8/FP4)
    t_fixed_s: float
    seq_s: float  # host time per running sequence per step
    layer_us: float
    moe_layer_us: float
    mla_layer_us: float
    gemm_tile_m: float
    attn_ctx_half_tokens: float
    request_s: float
    chunk_tokens: float
    prefill_attn_ratio: float = 1.0  # prompt tokens' attention FLOPs / the decode form's (MLA prefill runs as MHA)
    eager_floor_scale: float = 1.0  # per-layer floors of a step with prompt tokens / a (graph-captured) decode step's
    graph_max_batch: float = 0.0  # largest decode batch per attention rank captured in a CUDA graph (0: no limit,
    # negative: no graphs at all, graphs.NO_GRAPHS)
    moe_kernel_eta: float = 1.0  # ceiling on the grouped expert GEMMs' share of F_w (terms.moe_kernel_flops_eta)
    skipped_head_flops: float = 0.0  # lm_head FLOPs per prompt token the engine skips (logits at sampled positions)
    moe_input_passes: float = 2.0  # HBM passes over each token copy's input row (terms.moe_input_passes)
    replicated_bytes: float = 0.0  # part of dense_bytes every attention-TP rank holds whole (MLA down-projections)
    replicated_flops_per_token: float = 0.0  # their FLOPs per token (part of dense_flops_per_token)
    moe_kernel_floor_us: float = 0.0  # measured fixed time per MoE layer of the expert kernel path (0: τ_moe fitted)
    attn16_flops_per_token: float = 0.0  # part of dense_flops_per_token in attention matrices the checkpoint keeps in
    # 16 bits while the rest computes in a lower format: they run at flops_attn_peak (attention_16bit_flops)
    attn16_replicated_flops: float = 0.0  # the replicated part of them (TP_REPLICATED matrices kept in 16 bits)
    piecewise: float = 0.0  # 1: decode graphs leave the attention ops out (graphs.piecewise_attention)
    flops_expert_peak: float = 0.0  # FLOP/s of the routed experts' tensor path where it differs from flops_w_peak
    # (0: flops_w_peak; terms.mxfp4_expert_compute)
    blockfp8_kblocks: float = 0.0  # K-block steps of latency-bound block-scale FP8 GEMMs per step (blockscale.py)
    blockfp8_kblock_us: float = 0.0  # time of one such step, µs (calibration)
    prompt_host_s: float = 0.0  # host time of an eager prompt step (prompt_host.py; 0: not host-bound)
    prefill_tile_flops_per_byte: float = 0.0  # FLOP/B of a prefill attention kernel that re-reads K and V per small
    # query tile (prefill_tiles.py; 0: flash tiles, compute-bound)

    @property
    def bw(self) -> float:
        return self.bw_peak * self.eta_mem


def stack(shapes: list[Shape]) -> Shape:
    """One Shape whose fields are arrays over ``shapes`` (for vectorised evaluation)."""
    return Shape(**{f.name: np.array([getattr(s, f.name) for s in shapes], dtype=float) for f in fields(Shape)})


def with_calibration(s: Shape, **values: float | np.ndarray) -> Shape:
    """A copy of ``s`` with calibration fields replaced (η's, floors, per-request time)."""
    return Shape(**{**{f.name: getattr(s, f.name) for f in fields(Shape)}, **values})


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


def attention_flops_per_context_token(arch: Architecture) -> float:
    """Attention FLOPs per query token per key it reads, one layer: QKᵀ and AV cost 4 · heads · head_dim;
    MLA absorbed 2 · heads · (2·r_kv + r_rope)."""
    if arch.mla is not None:
        per = 2 * arch.heads * (2 * arch.mla.kv_lora_rank + arch.mla.qk_rope_head_dim)
    else:
        per = 4 * arch.heads * arch.head_dim
    return float(per)


def attention_flops_per_token(arch: Architecture, context: float) -> float:
    """Attention FLOPs of one query token at ``context``: per-key FLOPs × keys read summed over attention
    layers (windows, chunks and sparse indexers cap the keys; SSM and linear layers read none)."""
    return attention_flops_per_context_token(arch) * tokens_attended(arch, context)


def linear_flops_per_token(arch: Architecture) -> float:
    """2 FLOPs per multiply-add over every active matrix (lm_head included, embedding gather excluded)."""
    return 2.0 * sum(g.active_elements for g in tensor_groups(arch)
                     if g.is_matrix and g.kind not in (Kind.EMBED, Kind.VISION))


def expert_flops_per_row(arch: Architecture) -> float:
    """2 × the matrix parameters of one routed expert summed over MoE layers (one token through one expert)."""
    if not arch.moe:
        return 0.0
    total = sum(g.count * g.rows * g.cols for g in tensor_groups(arch) if g.kind is Kind.EXPERT and g.is_matrix)
    return 2.0 * total / arch.moe.num_experts


def kv_read_bytes_per_seq(arch: Architecture, kvfmt: NumberFormat, context: float, replication: float = 1.0) -> float:
    """KV (and per-sequence SSM / linear-attention state) bytes one decode step reads for one sequence at
    ``context`` tokens, per KV replica (models.memory.decode_state_bytes)."""
    return float(decode_state_bytes(arch, kvfmt, context, replication))


def make_shape(arch: Architecture, gpu: GPU, tp: int, wfmt: NumberFormat, kvfmt: NumberFormat,
               context: float, cal: CalibrationRow, *, ep: int = 1, attn_dp: int = 1,
               graph_max_batch: int = 0, version: str | None = None) -> tuple[Shape, str | None]:
    """The step model's constants of one deployment; routed experts are read at the size the engine stores
    them (``version`` of ``cal.engine``, the current release when None; expert_layout.expert_padding)."""
    shape, warning = _shape_without_context(arch, gpu, tp, wfmt, cal, ep, attn_dp, graph_max_batch, version)
    kv_rep = shape.kv_rep
    kv_now = kv_read_bytes_per_seq(arch, kvfmt, context, kv_rep)
    kv_slope = (kv_read_bytes_per_seq(arch, kvfmt, 2 * context + 1, kv_rep) - kv_now) / (context + 1)
    attn_now = attention_flops_per_token(arch, context)
    attn_slope = (attention_flops_per_token(arch, 2 * context + 1) - attn_now) / (context + 1)
    return replace(shape, kv_bytes_per_seq=kv_now, kv_bytes_slope=max(kv_slope, 0.0), attn_flops_at_ctx=attn_now,
                   attn_flops_slope=max(attn_slope, 0.0), context=context,
                   prefill_tile_flops_per_byte=_prefill_tile_intensity(arch, gpu, kvfmt, cal.engine, tp // attn_dp,
                                                                       version)), warning


def _prefill_tile_intensity(arch: Architecture, gpu: GPU, kvfmt: NumberFormat, engine: str, attn_tp: int,
                            version: str | None) -> float:
    """FLOP per K/V byte of the engine's prefill attention kernel where it re-reads the keys per small query tile
    (prefill_tiles.py: vLLM's unified Triton kernel on ROCm), else 0. Query heads per KV head on one GPU:
    g = (heads / a) / max(kv_heads / a, 1) over the a attention-TP GPUs (KV heads replicate below one per GPU).
    MLA models run other kernels (TRITON_MLA): 0."""
    block_m = tile_block_m(engine, gpu.vendor, version)
    if not block_m or arch.mla is not None or arch.kv_heads <= 0:
        return 0.0
    g = max(round((arch.heads / attn_tp) / max(arch.kv_heads / attn_tp, 1.0)), 1)
    return tile_flops_per_byte(tile_query_rows(block_m, g), kvfmt.bits / 8.0)


@functools.lru_cache(maxsize=4096)
def _shape_without_context(arch: Architecture, gpu: GPU, tp: int, wfmt: NumberFormat, cal: CalibrationRow, ep: int,
                           attn_dp: int, graph_max_batch: int, version: str | None) -> tuple[Shape, str | None]:
    """``make_shape``'s constants that do not depend on the context or the KV format (those fields 0),
    memoised: a planner evaluates the same deployment at many workloads' contexts."""
    compute, warning = compute_path(gpu, wfmt)
    dense = active_weights_bytes(arch, wfmt, experts_touched=0)
    moe_layers = sum(arch.moe_layers) if arch.moe else 0
    per_expert = 0.0
    if arch.moe and moe_layers:
        per_expert = (active_weights_bytes(arch, wfmt, experts_touched=1) - dense) / moe_layers
        per_expert *= expert_padding(arch, cal.engine, wfmt.id, gpu.id, tp, ep, version)
    attn_tp = tp // attn_dp
    kv_rep = kv_replication(arch, attn_tp)
    top_k = arch.moe.top_k if arch.moe else 0
    # η(S) of the all-reduces: the attention group's link, or with no attention TP group left (attention DP
    # over every GPU) the link of the whole replica, which the MoE layers' gathered all-reduce crosses.
    ar_link, a2a_link = link_row(gpu, attn_tp if attn_tp > 1 else tp), link_row(gpu, ep)
    expert_cols = arch.moe.expert_intermediate / (tp / ep) if arch.moe else 0.0
    engine_alpha = cal.comm_latency_us * 1e-6
    shape = Shape(
        tp=tp, ep=ep, attn_dp=attn_dp, dense_bytes=dense, expert_bytes=per_expert, expert_cols=expert_cols,
        slice_ramp_cols=kernel_constant("expert_slice_ramp_cols"), overlap_p=kernel_constant("roofline_overlap_p"),
        expert_load_cv=kernel_constant("expert_load_cv"), ep_excess_scale=kernel_constant("ep_busiest_excess_scale"),
        moe_layers=moe_layers,
        num_experts=arch.moe.num_experts if arch.moe else 0, top_k=top_k,
        dense_flops_per_token=linear_flops_per_token(arch) - top_k * expert_flops_per_row(arch),
        expert_flops_per_row=expert_flops_per_row(arch), kv_bytes_per_seq=0.0, kv_bytes_slope=0.0,
        kv_rep=kv_rep, attn_flops_at_ctx=0.0, attn_flops_slope=0.0, context=0.0, layers=arch.layers,
        mla_layers=arch.layers if arch.mla is not None else 0, hidden=arch.hidden,
        bw_peak=gpu.memory_bw_bytes_s, flops_w_peak=gpu.peak_flops(compute),
        flops_attn_peak=gpu.peak_flops("bf16" if gpu.runs_natively("bf16") else "fp16"),
        eta_mem=cal.eta_mem, eta_cmp=cal.eta_cmp, eta_prefill=cal.eta_prefill, eta_moe=cal.eta_moe,
        link_bytes_s=gpu.link_bytes_s(tp),
        alpha_ar_s=(alpha_s(ar_link, attn_tp) + engine_alpha) if attn_tp > 1 else 0.0,
        alpha_a2a_s=(a2a_alpha_s(a2a_link, ep) + engine_alpha) if ep > 1 else 0.0,
        alpha_moe_ar_s=(alpha_s(link_row(gpu, tp), tp) + engine_alpha) if tp > 1 else 0.0,
        eta_a2a=a2a_link.a2a_eta or 0.0,
        eta_link_small=ar_link.eta_small, eta_link_large=ar_link.eta_large, link_knee_bytes=ar_link.knee_mib * MIB,
        dispatch_bytes=1.0 if compute in ("fp8", "fp4") else float(ACTIVATION_BYTES),
        t_fixed_s=cal.t_fixed_ms * 1e-3, seq_s=cal.seq_us * 1e-6, layer_us=cal.layer_us, moe_layer_us=cal.moe_layer_us,
        mla_layer_us=cal.mla_layer_us, gemm_tile_m=cal.gemm_tile_m, attn_ctx_half_tokens=cal.attn_ctx_half_tokens,
        request_s=cal.request_ms * 1e-3, chunk_tokens=cal.chunk_tokens,
        prefill_attn_ratio=_prefill_attention_ratio(arch), eager_floor_scale=cal.eager_floor_scale,
        graph_max_batch=graph_max_batch,
        moe_kernel_eta=_moe_kernel_eta(arch, gpu, cal.engine, compute, attn_dp),
        skipped_head_flops=_skipped_head_flops(arch, cal.engine),
        moe_input_passes=terms.moe_input_passes(cal.engine, gpu.arch or "", attn_dp),
        replicated_bytes=matrices_bytes(arch, wfmt, TP_REPLICATED),
        moe_kernel_floor_us=_moe_kernel_floor_us(arch, gpu, compute, cal.engine, wfmt.id),
        piecewise=float(piecewise_attention(cal.engine, version)),
        flops_expert_peak=_expert_flops_peak(arch, gpu, wfmt, compute, cal.engine),
        blockfp8_kblocks=(kblocks_per_step(arch, attn_tp, tp) if block_scaled_fp8(arch, gpu.vendor, compute) else 0.0),
        blockfp8_kblock_us=cal.blockfp8_kblock_us,
        prompt_host_s=prompt_host_s(arch, cal.engine, version, wfmt.id, compute),
        replicated_flops_per_token=2.0 * sum(g.active_elements for g in tensor_groups(arch)
                                             if g.is_matrix and g.name in TP_REPLICATED),
    )
    attn16 = attention_16bit_flops(arch, wfmt, compute)
    if attn16[0] > 0:
        shape = replace(shape, attn16_flops_per_token=attn16[0], attn16_replicated_flops=attn16[1])
    return shape, warning


def attention_16bit_flops(arch: Architecture, wfmt: NumberFormat, compute: str) -> tuple[float, float]:
    """(FLOPs per token, of which TP-replicated) of the attention matrices, 2 × their active parameters, when the
    checkpoint of ``wfmt`` keeps them in 16 bits (models.memory.attention_16bit) while the step computes the other
    matrices in a lower format ``compute``: those GEMMs run at the 16-bit tensor rate, not the format's. (0, 0)
    otherwise. NVIDIA's DeepSeek-R1 NVFP4 checkpoint on a B200: 2 × 11.4 B = 22.8 GFLOP per token of q_a, q_b,
    kv_a, kv_b and o projections at 2,250 BF16 TFLOPS instead of 9,000 FP4 TFLOPS; gpt-oss's MXFP4 release the
    same where MXFP4 is native."""
    if compute in ("bf16", "fp16", "fp32") or not attention_16bit(arch, wfmt):
        return 0.0, 0.0
    groups = [g for g in tensor_groups(arch) if g.is_matrix and g.name.startswith("attn.")]
    return (2.0 * sum(g.active_elements for g in groups),
            2.0 * sum(g.active_elements for g in groups if g.name in TP_REPLICATED))


def _skipped_head_flops(arch: Architecture, engine: str) -> float:
    """lm_head FLOPs per prompt token that the engine does not compute, 2 × the lm_head's parameters: vLLM,
    SGLang and TensorRT-LLM compute logits only at the positions they sample (a prompt's last token), so the
    other prompt tokens skip the logits GEMM. llama.cpp computed it for every token of a batch until pull
    request 6122 (2024-03-17) and the measured llama-bench rows span 2023-2025: 0 there (counted)."""
    if engine == "llama.cpp":
        return 0.0
    return 2.0 * sum(g.active_elements for g in tensor_groups(arch) if g.kind is Kind.LM_HEAD and g.is_matrix)


def _moe_kernel_eta(arch: Architecture, gpu: GPU, engine: str, compute: str, attn_dp: int) -> float:
    """The measured large-M throughput ceiling of the engine's expert GEMM kernel as a share of the GPU's peak
    (terms.moe_kernel_flops_eta); 1 (no ceiling) where no kernel measurement applies."""
    if arch.moe is None:
        return 1.0
    return float(terms.moe_kernel_flops_eta(terms.triton_fused_moe_path(engine, gpu.vendor, gpu.arch or "", compute,
                                                                        attn_dp),
                                            kernel_constant("triton_fp8_fused_moe_eta")))


def _moe_kernel_floor_us(arch: Architecture, gpu: GPU, compute: str, engine: str, weights: str) -> float:
    """The measured fixed time per MoE layer of the routed-expert kernels, µs, where one is in kernels.csv
    (terms.trtllm_gen_fp4_moe: SGLang's TRTLLM-Gen FP4 MoE and vLLM's MXFP4 one on data-centre Blackwell), else 0
    (the fitted τ_moe)."""
    if arch.moe is None or not terms.trtllm_gen_fp4_moe(engine, gpu.vendor, gpu.arch or "", compute, weights):
        return 0.0
    return kernel_constant("trtllm_gen_fp4_moe_fixed_us")


def _expert_flops_peak(arch: Architecture, gpu: GPU, wfmt: NumberFormat, compute: str, engine: str) -> float:
    """FLOP/s of the routed experts' GEMMs where the engine's default kernel computes MXFP4 experts on another
    tensor path than the format's own FP4 one (terms.mxfp4_expert_compute), else 0 (flops_w_peak)."""
    if arch.moe is None or wfmt.id != "mxfp4" or compute != "fp4":
        return 0.0
    path = terms.mxfp4_expert_compute(engine)
    return gpu.peak_flops(path) if path else 0.0


def _prefill_attention_ratio(arch: Architecture) -> float:
    """Prompt tokens' attention FLOPs per key relative to ``attention_flops_per_context_token`` (1 but for MLA,
    whose prefill runs as multi-head attention: terms.mla_prefill_attention_ratio)."""
    if arch.mla is None:
        return 1.0
    m = arch.mla
    return float(terms.mla_prefill_attention_ratio(arch.heads, m.qk_nope_head_dim, m.qk_rope_head_dim, m.v_head_dim,
                                                   m.kv_lora_rank))
