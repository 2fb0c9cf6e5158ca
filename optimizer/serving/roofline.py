"""The step model of one replica: roofline phases plus the terms the roofline lacks (terms.py).

A replica has G = ``tp`` GPUs. MoE layers run expert-parallel over ``ep`` ranks (each rank's experts
tensor-parallel over G/ep GPUs); attention runs data-parallel over d = ``attn_dp`` ranks, each a
tensor-parallel group of a = G/d GPUs (d = 1: plain TP; d = ep = G: DeepSeek-style DP attention + EP).

One engine step with b decoding sequences at context s and p prefill tokens (times in seconds):
  t_linear = ‖dense / a / (BW · η_mem) + experts / (BW · η_mem · η_slice(w)),
              FLOPs_dense / (F_w · η) + FLOPs_experts / (F_w · min(η · η_moe, η_k))‖_p   (p = 3: imperfect
             overlap at the ridge); experts: bytes the busiest rank reads; η_slice(w) = w / (w + w₀): grouped-GEMM
             bandwidth on expert slices of w = intermediate · ep / G columns; η_moe: grouped vs dense GEMM
             throughput; η_k: the measured ceiling of the engine's expert kernel (terms.moe_kernel_flops_eta)
  t_attn   = max(b/d · KV(s) · rep / a / (BW · η_mem · η_ctx(s)), FLOPs_attn / (F_16 · η))
  t_comm   = all-reduces over a (α–β) + MoE dispatch/combine all-to-all over ep (α–β) when attention is
             data-parallel (with attention TP, EP ranks sum their partial outputs by all-reduce instead)
  t_moe_act = L_moe · pairs · hidden · (n_in · b_in + 2 · b_out) / (BW · η_mem): the token copies' permute and
             finalize passes (terms.moe_activation_bytes; pairs = token-expert pairs the busiest GPU computes)
  t_step   = t_linear + t_moe_act + t_attn + t_comm + Σ_layers τ(kind) + t_fixed + b · t_seq
η is η_cmp in decode steps and η_prefill in steps with prefill tokens. Prompt tokens skip the lm_head GEMM
(logits only at sampled positions); MLA's down-projections (TP_REPLICATED) are read and computed whole on every
attention-TP rank. The floors Σ τ are scaled by the eager
factor in steps the engine runs without a CUDA graph: steps with prompt tokens, and decode steps of more than
the engine's largest captured batch per attention rank (graphs.csv, terms.eager_scale). Expert FLOPs count padded
grouped-GEMM rows (terms.expert_gemm_rows); experts read are the expected distinct experts the step's
tokens touch. A prompt of I tokens runs in ⌈I / C⌉ chunks, each one step (so MoE prefill reads the
touched experts once per chunk: the weight-read floor).
Serving at request rate r with chunked prefill: a share f = r · t_prefill of GPU time goes to
prefill, so TPOT = t_step / (1 − f) and the replica's limit is r_max = b / (O · t_step + b · t_prefill).
TTFT = t_request + t_prefill · (1 + ρ / (2(1 − ρ))) (+ t_step when other sequences decode: the prompt's
chunk shares a step with them; + t_step more on an engine with an overlap scheduler, scheduler.csv
``overlap``: SGLang, TensorRT-LLM ≥ 0.20, whose CPU plans step k + 1 while step k runs, so a request arriving
at a busy engine is admitted one step later) with ρ = f (M/D/1 wait for the prefill server). The first token
is sampled by the last prefill step itself.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from gpuplan.hardware.formats import NumberFormat
from gpuplan.hardware.gpus import GPU
from gpuplan.models.arch import Architecture
from gpuplan.models.breakdown import kv_replication
from gpuplan.models.memory import active_weights_bytes, decode_state_bytes, matrices_bytes, tokens_attended
from gpuplan.models.params import Kind, tensor_groups
from gpuplan.optimizer.errors import InputError
from gpuplan.optimizer.serving import terms
from gpuplan.optimizer.serving.calibration import CalibrationRow
from gpuplan.optimizer.serving.expert_layout import expert_padding
from gpuplan.optimizer.serving.kernels import kernel_constant
from gpuplan.optimizer.serving.links import MIB, a2a_alpha_s, alpha_s, link_row

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
    compute, warning = compute_path(gpu, wfmt)
    dense = active_weights_bytes(arch, wfmt, experts_touched=0)
    moe_layers = sum(arch.moe_layers) if arch.moe else 0
    per_expert = 0.0
    if arch.moe and moe_layers:
        per_expert = (active_weights_bytes(arch, wfmt, experts_touched=1) - dense) / moe_layers
        per_expert *= expert_padding(arch, cal.engine, wfmt.id, gpu.id, tp, ep, version)
    attn_tp = tp // attn_dp
    kv_rep = kv_replication(arch, attn_tp)
    kv_now = kv_read_bytes_per_seq(arch, kvfmt, context, kv_rep)
    kv_slope = (kv_read_bytes_per_seq(arch, kvfmt, 2 * context + 1, kv_rep) - kv_now) / (context + 1)
    attn_now = attention_flops_per_token(arch, context)
    attn_slope = (attention_flops_per_token(arch, 2 * context + 1) - attn_now) / (context + 1)
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
        expert_flops_per_row=expert_flops_per_row(arch), kv_bytes_per_seq=kv_now, kv_bytes_slope=max(kv_slope, 0.0),
        kv_rep=kv_rep, attn_flops_at_ctx=attn_now, attn_flops_slope=max(attn_slope, 0.0),
        context=context, layers=arch.layers,
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
        replicated_flops_per_token=2.0 * sum(g.active_elements for g in tensor_groups(arch)
                                             if g.is_matrix and g.name in TP_REPLICATED),
    )
    return shape, warning


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


def _prefill_attention_ratio(arch: Architecture) -> float:
    """Prompt tokens' attention FLOPs per key relative to ``attention_flops_per_context_token`` (1 but for MLA,
    whose prefill runs as multi-head attention: terms.mla_prefill_attention_ratio)."""
    if arch.mla is None:
        return 1.0
    m = arch.mla
    return float(terms.mla_prefill_attention_ratio(arch.heads, m.qk_nope_head_dim, m.qk_rope_head_dim, m.v_head_dim,
                                                   m.kv_lora_rank))


def kv_bytes_at(s: Shape, context: float | np.ndarray) -> np.ndarray:
    """KV bytes per sequence at another context, linear around the shape's context (≥ 0)."""
    return np.maximum(s.kv_bytes_per_seq + s.kv_bytes_slope * (context - s.context), 0.0)


def _attention_flops(s: Shape, context: float | np.ndarray) -> np.ndarray:
    """Attention FLOPs of one query at another context, linear around the shape's context (≥ 0)."""
    return np.maximum(s.attn_flops_at_ctx + s.attn_flops_slope * (context - s.context), 0.0)


def _expert_phase(s: Shape, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(weight bytes, FLOPs, token-expert pairs) of routed experts on the busiest GPU for ``tokens`` tokens
    entering each MoE layer (pairs: the unpadded rows its grouped GEMMs compute, per MoE layer)."""
    touched = terms.experts_touched(s.num_experts, s.top_k, tokens)
    busiest = terms.busiest_rank_experts(touched, s.num_experts, s.ep)
    gpus_per_rank = s.tp / s.ep
    expert_bytes = busiest * s.expert_bytes * s.moe_layers / gpus_per_rank
    rows = terms.expert_gemm_rows(tokens, s.top_k, touched, s.gemm_tile_m)
    # The busiest rank's share of the expert rows: its share of the touched experts (sampling) or, when
    # routing skew weighs more, the mean 1/ep raised by the busiest rank's excess (terms.ep_load_excess).
    skew = np.minimum(1.0, (1.0 + terms.ep_load_excess(s.ep, s.num_experts, s.expert_load_cv,
                                                         s.ep_excess_scale)) / s.ep)
    share = np.where(touched > 0, np.maximum(busiest / np.maximum(touched, 1e-12), skew), 0.0)
    return expert_bytes, rows * share * s.expert_flops_per_row / gpus_per_rank, tokens * s.top_k * share


def _allreduce_s(s: Shape, tokens: np.ndarray, group: float, alpha_s: float) -> np.ndarray:
    """One all-reduce of ``tokens`` activations over ``group`` GPUs (terms.allreduce_s with η(S))."""
    size = tokens * s.hidden * ACTIVATION_BYTES
    eta = terms.link_efficiency(size, s.eta_link_small, s.eta_link_large, s.link_knee_bytes)
    return terms.allreduce_s(size, group, alpha_s, s.link_bytes_s, eta)


def _comm_s(s: Shape, rank_tokens: np.ndarray, gpu_tokens: np.ndarray,
            step_tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(all-reduce, all-to-all) seconds of one step. All-reduces over the attention TP group after attention
    in every layer and after the MLP in dense layers; MoE dispatch + combine all-to-alls over the EP group
    where MoE layers exchange tokens (terms.moe_all_to_all); otherwise one all-reduce of the MoE output over
    the GPUs that shard the experts, all ``tp`` of them, carrying every token of the step
    (terms.moe_gather_tokens)."""
    attn_tp = s.tp / s.attn_dp
    one_ar = _allreduce_s(s, rank_tokens, attn_tp, s.alpha_ar_s)
    a2a_on = terms.moe_all_to_all(s.ep, s.attn_dp)
    moe_ar = _allreduce_s(s, terms.moe_gather_tokens(rank_tokens, step_tokens, s.attn_dp), s.tp, s.alpha_moe_ar_s)
    n_ar = s.layers + (s.layers - s.moe_layers)
    copies = np.minimum(s.top_k, s.ep)
    a2a_size = gpu_tokens * copies * s.hidden
    eta_a2a = np.where(s.eta_a2a > 0, s.eta_a2a,
                       terms.link_efficiency(a2a_size, s.eta_link_small, s.eta_link_large, s.link_knee_bytes))
    dispatch = terms.all_to_all_s(a2a_size * s.dispatch_bytes, s.ep, s.alpha_a2a_s, s.link_bytes_s, eta_a2a)
    combine = terms.all_to_all_s(a2a_size * ACTIVATION_BYTES, s.ep, s.alpha_a2a_s, s.link_bytes_s, eta_a2a)
    return n_ar * one_ar + s.moe_layers * (1.0 - a2a_on) * moe_ar, a2a_on * s.moe_layers * (dispatch + combine)


STEP_TERMS = ("linear", "moe_activations", "attention", "all_reduce", "all_to_all", "layer_floors", "host")


def step_terms_s(s: Shape, decode_batch: float | np.ndarray, prefill_tokens: float | np.ndarray = 0.0,
                 prefill_context: float | np.ndarray | None = None,
                 context: float | np.ndarray | None = None, spread: bool = False) -> dict[str, np.ndarray]:
    """Every term of one engine step, in seconds: ``decode_batch`` sequences decoding one token at ``context``
    (default: the shape's mean context) plus ``prefill_tokens`` prompt tokens whose queries see
    ``prefill_context`` tokens on average (default: half the chunk). The prompt tokens sit on one attention
    rank (one request), or with ``spread`` evenly on all attention-DP ranks (many requests prefilling).
    The step is the sum of STEP_TERMS; ``linear`` = (reads^p + gemm_compute^p)^(1/p) (terms.overlapped_s) and
    ``attention`` = max(kv_read, attention_compute) are reported with their parts."""
    b = np.asarray(decode_batch, dtype=float)
    p_all = np.asarray(prefill_tokens, dtype=float)
    p = p_all / s.attn_dp if spread else p_all
    ctx = s.context if context is None else np.asarray(context, dtype=float)
    p_ctx = p_all / 2 if prefill_context is None else np.asarray(prefill_context, dtype=float)
    attn_tp = s.tp / s.attn_dp
    rank_tokens = b / s.attn_dp + p
    eta = np.where(p > 0, s.eta_prefill, s.eta_cmp)
    expert_bytes, expert_flops, pairs = _expert_phase(s, b + p_all)
    bw = s.bw_peak * s.eta_mem
    dense_read = (s.dense_bytes + (attn_tp - 1.0) * s.replicated_bytes) / attn_tp / bw
    expert_read = expert_bytes / (bw * terms.expert_slice_efficiency(s.expert_cols, s.slice_ramp_cols))
    dense_flops = (rank_tokens * (s.dense_flops_per_token + (attn_tp - 1.0) * s.replicated_flops_per_token)
                   - p * s.skipped_head_flops) / attn_tp
    expert_eta = np.minimum(eta * s.eta_moe, s.moe_kernel_eta)
    gemm = dense_flops / (s.flops_w_peak * eta) + expert_flops / (s.flops_w_peak * expert_eta)
    kv_read = b / s.attn_dp * kv_bytes_at(s, ctx) * s.kv_rep / attn_tp / (bw * terms.attention_efficiency(
        ctx, s.attn_ctx_half_tokens))
    attn_flops = (b / s.attn_dp * _attention_flops(s, ctx) + p * _attention_flops(s, p_ctx) * s.prefill_attn_ratio
                  ) / attn_tp
    attn_compute = attn_flops / (s.flops_attn_peak * eta)
    all_reduce, all_to_all = _comm_s(s, rank_tokens, b / s.tp + p / attn_tp, b + p_all)
    out = {
        "dense_read": dense_read, "expert_read": expert_read, "gemm_compute": gemm,
        "linear": terms.overlapped_s(dense_read + expert_read, gemm, s.overlap_p),
        "moe_activations": s.moe_layers * terms.moe_activation_bytes(pairs, s.hidden, s.dispatch_bytes,
                                                                      ACTIVATION_BYTES, s.moe_input_passes) / bw,
        "kv_read": kv_read,
        "attention_compute": attn_compute,
        "attention": np.maximum(kv_read, attn_compute), "all_reduce": all_reduce, "all_to_all": all_to_all,
        "layer_floors": terms.layer_floor_s(s.layers, s.moe_layers, s.mla_layers, s.layer_us, s.moe_layer_us,
                                            s.mla_layer_us)
                        * terms.eager_scale(p_all, s.eager_floor_scale, b / s.attn_dp, s.graph_max_batch)
                        + np.zeros_like(b),
        "host": s.t_fixed_s + s.seq_s * (b + np.where(p > 0, 1.0, 0.0)),
    }
    out["step"] = sum(out[k] for k in STEP_TERMS)
    return out


def step_s(s: Shape, decode_batch: float | np.ndarray, prefill_tokens: float | np.ndarray = 0.0,
           prefill_context: float | np.ndarray | None = None,
           context: float | np.ndarray | None = None, spread: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(t_step, memory-bound flag) of one engine step (step_terms_s)."""
    t = step_terms_s(s, decode_batch, prefill_tokens, prefill_context, context, spread)
    return t["step"], t["dense_read"] + t["expert_read"] >= t["gemm_compute"]


def decode_step_s(s: Shape, batch: np.ndarray, *, context: float | np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(t_step, memory-bound flag) for each batch size: a step with decodes only."""
    return step_s(s, batch, 0.0, context=context)


def mixed_step_s(s: Shape, decode_batch: float | np.ndarray, mean_context: float | np.ndarray,
                 prefill_tokens: float | np.ndarray, prefill_context: float | np.ndarray | None = None) -> np.ndarray:
    """One chunked-prefill step: ``decode_batch`` decodes at ``mean_context`` plus a prefill chunk."""
    return step_s(s, decode_batch, prefill_tokens, prefill_context, context=mean_context)[0]


def prefill_s(s: Shape, arch: Architecture | None = None, input_tokens: float | np.ndarray = 1.0, *,
              spread: bool = False, decode_batch: float | np.ndarray | None = None,
              prompts_per_step: float | np.ndarray | None = None) -> np.ndarray | float:
    """GPU time of one request's prompt alone: ⌈I / C⌉ chunk steps of I / n tokens whose queries see I / 2
    tokens on average (the causal total I² / 2 of a single pass). With ``spread`` (and attention DP), the
    replica's GPU time per prompt when many prompts fill all DP ranks at once: ``attn_dp`` prompts are
    processed by one such step sequence, so the time per prompt is divided by ``attn_dp``. With
    ``decode_batch`` b (and ``prompts_per_step``), the chunks ride on steps that decode b sequences anyway
    (continuous batching at load, mixed steps): a prompt costs what its tokens add at η_prefill,
    t(b, K) − t(b, 0) (its GEMM rows, attention and collectives; the weights are read and the floors paid by
    the decode step). Prompts that join the same step share it: with λ = ``prompts_per_step`` (b / O at
    saturation: sequences finish, and are replaced, at b / O per step), the prompts admitted in one step are
    Poisson(λ), and one prompt costs Σ_k P(k; λ) · (t(b, k · I / n) − t(b, 0)) · n / λ (convex in k:
    clustered arrivals cost more than a steady trickle). ``arch`` is unused (kept for callers)."""
    i = np.asarray(input_tokens, dtype=float)
    n = terms.prefill_chunks(i, s.chunk_tokens)
    ranks = s.attn_dp if spread else 1.0
    if decode_batch is None:
        t, _ = step_s(s, 0.0, i / n * ranks, prefill_context=i / 2, spread=spread)
    else:  # the prompt's tokens at η_prefill on top of the decodes (whose own time is the decode step's)
        if prompts_per_step is None:
            raise ValueError("prefill_s with decode_batch needs prompts_per_step")
        sp = with_calibration(s, eta_cmp=s.eta_prefill)
        k, w, lam = terms.poisson_weights(prompts_per_step)
        k = np.concatenate([np.zeros_like(k[:1]), k])  # node 0: the decodes alone
        t_k = step_s(sp, decode_batch, k * i / n * ranks, prefill_context=i / 2, spread=spread)[0]
        t = np.sum(w * (t_k[1:] - t_k[:1]), axis=0) / lam
    out = n * t / ranks
    return float(out) if np.ndim(out) == 0 else out


def serving(t_step: np.ndarray, t_prefill: float | np.ndarray, batch: np.ndarray, output_tokens: float | np.ndarray,
            utilization: float | np.ndarray, *, request_s: float | np.ndarray = 0.0,
            ttft_prefill_s: float | np.ndarray | None = None,
            overlap: bool | np.ndarray = False) -> dict[str, np.ndarray]:
    """Operating point at ``utilization`` × the replica's request-rate limit (see module docstring).
    ``t_prefill`` is the replica GPU time per prompt (prefill_s with spread=True); ``ttft_prefill_s`` the
    latency of one prompt (default: ``t_prefill``); ``overlap`` whether the engine schedules step k + 1 while
    step k runs (per deployment where the arrays stack deployments):
    TTFT = t_request + t_iso + t_prefill · ρ / (2(1 − ρ)) + [b > 1] · t_step · (1 + [overlap])."""
    b = np.asarray(batch, dtype=float)
    iso = t_prefill if ttft_prefill_s is None else ttft_prefill_s
    rate_max = b / (output_tokens * t_step + b * t_prefill)
    rate = utilization * rate_max
    share = np.minimum(rate * t_prefill, 0.999)
    tpot = t_step / (1.0 - share)
    wait = np.where(share > 0, share / (2.0 * (1.0 - share)), 0.0)
    ttft = request_s + iso + t_prefill * wait + busy_wait_s(t_step, b, overlap)
    return {"rate_max": rate_max, "rate": rate, "tpot": tpot, "ttft": ttft, "prefill_share": share}


def busy_wait_s(t_step: np.ndarray, batch: np.ndarray, overlap: bool | np.ndarray) -> np.ndarray:
    """Decode steps a prompt waits for when other sequences decode (b > 1), s: the step its chunk shares with
    them, and one more on an overlap-scheduling engine (the CPU planned the next step before the request
    was seen): [b > 1] · t_step · (1 + [overlap]). An idle engine (b = 1) takes the request at once."""
    return np.where(batch > 1, t_step * np.where(overlap, 2.0, 1.0), 0.0)
