"""The step model of one replica: roofline phases plus the terms the roofline lacks (terms.py).

A replica has G = ``tp`` GPUs. MoE layers run expert-parallel over ``ep`` ranks (each rank's experts
tensor-parallel over G/ep GPUs); attention runs data-parallel over d = ``attn_dp`` ranks, each a
tensor-parallel group of a = G/d GPUs (d = 1: plain TP; d = ep = G: DeepSeek-style DP attention + EP).

One engine step with b decoding sequences at context s and p prefill tokens (times in seconds):
  t_linear = ‖dense / a / (BW · η_mem) + experts / (BW · η_mem · η_slice(w)),
              FLOPs_dense / (F_w · η) + FLOPs_experts / (F_e · min(η · η_moe, η_k))‖_p   (p = 3: imperfect
             overlap at the ridge); experts: bytes the busiest rank reads; η_slice(w) = w / (w + w₀): grouped-GEMM
             bandwidth on expert slices of w = intermediate · ep / G columns; η_moe: grouped vs dense GEMM
             throughput; η_k: the measured ceiling of the engine's expert kernel (terms.moe_kernel_flops_eta); F_e:
             the experts' tensor path, F_w but for MXFP4 experts with 8-bit activations (terms.mxfp4_expert_compute)
  t_attn   = max(b/d · KV(s) · rep / a / (BW · η_mem · η_ctx(s)), FLOPs_decode / (F_16 · η) + FLOPs_prompt / R),
             R = min(F_16 · η, I · BW) where the engine's prefill kernel re-reads K and V per small query tile of
             I FLOP/B (prefill_tiles.py: vLLM's unified Triton attention on ROCm), R = F_16 · η elsewhere
  t_comm   = all-reduces over a (α–β) + MoE dispatch/combine all-to-all over ep (α–β) when attention is
             data-parallel (with attention TP, EP ranks sum their partial outputs by all-reduce instead)
  t_moe_act = L_moe · pairs · hidden · (n_in · b_in + 2 · b_out) / (BW · η_mem): the token copies' permute and
             finalize passes (terms.moe_activation_bytes; pairs = token-expert pairs the busiest GPU computes)
  t_step   = t_linear + t_moe_act + t_attn + t_comm + Σ_layers τ(kind) + t_fixed + b · t_seq
             or, for a decode step replayed from piecewise CUDA graphs (vLLM V1 before 0.11, graphs.csv), at least
             the host's launches of the eager attention ops plus its per-step time (terms.piecewise_launch_s):
             t_step = max(t_step, t_launch + t_fixed + b · t_seq), reported as ``host_bound``; likewise a step
             with prompt tokens on an engine that runs them as eager Python (SGLang; TensorRT-LLM < 1.0 for MLA
             models) takes at least its host time, t_step = max(t_step, t_host + t_fixed + b · t_seq)
             (prompt_host.py: DeepSeek-R1 FP8 137 ms, so its batch-1 TTFT hardly grows with the prompt)
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

import numpy as np
from gpuplan.models.arch import Architecture
from gpuplan.optimizer.serving import terms
from gpuplan.optimizer.serving.shape import ACTIVATION_BYTES, Shape, with_calibration


def kv_bytes_at(s: Shape, context: float | np.ndarray) -> np.ndarray:
    """KV bytes per sequence at another context, linear around the shape's context (≥ 0)."""
    return np.maximum(s.kv_bytes_per_seq + s.kv_bytes_slope * (context - s.context), 0.0)


def _attention_flops(s: Shape, context: float | np.ndarray) -> np.ndarray:
    """Attention FLOPs of one query at another context, linear around the shape's context (≥ 0)."""
    return np.maximum(s.attn_flops_at_ctx + s.attn_flops_slope * (context - s.context), 0.0)


def _expert_phase(s: Shape, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(weight bytes, FLOPs, token-expert pairs) of routed experts on the busiest GPU for ``tokens`` tokens
    entering each MoE layer (pairs: the unpadded rows its grouped GEMMs compute, per MoE layer)."""
    touched = terms.experts_touched(s.num_experts, s.top_k, tokens, s.expert_load_cv)
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


STEP_TERMS = ("linear", "moe_activations", "attention", "all_reduce", "all_to_all", "blockscale_kloop",
              "layer_floors", "host", "host_bound")


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
    attn16_flops = rank_tokens * (s.attn16_flops_per_token + (attn_tp - 1.0) * s.attn16_replicated_flops) / attn_tp
    low_gemm = (dense_flops - attn16_flops) / (s.flops_w_peak * eta)  # the dense GEMMs in the weight format
    gemm = (low_gemm + attn16_flops / (s.flops_attn_peak * eta)
            + expert_flops / (np.where(s.flops_expert_peak > 0, s.flops_expert_peak, s.flops_w_peak) * expert_eta))
    kv_read = b / s.attn_dp * kv_bytes_at(s, ctx) * s.kv_rep / attn_tp / (bw * terms.attention_efficiency(
        ctx, s.attn_ctx_half_tokens))
    decode_attn_flops = b / s.attn_dp * _attention_flops(s, ctx) / attn_tp
    prefill_attn_flops = p * _attention_flops(s, p_ctx) * s.prefill_attn_ratio / attn_tp
    prefill_rate = terms.prefill_attention_rate_flops_s(s.flops_attn_peak, eta, s.prefill_tile_flops_per_byte,
                                                        s.bw_peak)
    attn_compute = decode_attn_flops / (s.flops_attn_peak * eta) + prefill_attn_flops / prefill_rate
    all_reduce, all_to_all = _comm_s(s, rank_tokens, b / s.tp + p / attn_tp, b + p_all)
    eager = terms.eager_scale(p_all, s.eager_floor_scale, b / s.attn_dp, s.graph_max_batch)
    linear = terms.overlapped_s(dense_read + expert_read, gemm, s.overlap_p)
    # The block-scale GEMMs (the dense linear layers in the weight format) are kernels of their own: their
    # weight reads, then max(K-loop, compute); the other GEMMs keep their overlapped reads and compute. Split
    # linear phase less the joint one: ≥ 0 (Minkowski), and each part never falls as the batch grows.
    kloop = terms.blockscale_kloop_s(s.blockfp8_kblocks, s.blockfp8_kblock_us)
    blockscale = 0.0  # no block-scale K-loop floor on this GPU (most rows): no split to price
    if np.any(kloop > 0):
        split = (terms.overlapped_s(expert_read, gemm - low_gemm, s.overlap_p) + dense_read
                 + np.maximum(kloop, low_gemm))
        blockscale = np.where(kloop > 0, np.maximum(split - linear, 0.0), 0.0)
    out = {
        "dense_read": dense_read, "expert_read": expert_read, "gemm_compute": gemm,
        "linear": linear,
        "moe_activations": s.moe_layers * terms.moe_activation_bytes(pairs, s.hidden, s.dispatch_bytes,
                                                                      ACTIVATION_BYTES, s.moe_input_passes) / bw,
        "kv_read": kv_read,
        "attention_compute": attn_compute,
        "attention": np.maximum(kv_read, attn_compute), "all_reduce": all_reduce, "all_to_all": all_to_all,
        "blockscale_kloop": blockscale + np.zeros_like(b),
        "layer_floors": terms.layer_floor_s(s.layers, s.moe_layers, s.mla_layers, s.layer_us,
                                            terms.moe_floor_us(s.moe_layer_us, s.moe_kernel_floor_us), s.mla_layer_us)
                        * eager + np.zeros_like(b),
        "host": s.t_fixed_s + s.seq_s * (b + np.where(p > 0, 1.0, 0.0)),
    }
    launch = terms.piecewise_launch_s(s.layers, s.mla_layers, s.layer_us, s.mla_layer_us, s.eager_floor_scale)
    graphed = sum(out[k] for k in STEP_TERMS[:-1])
    # The host's launches bound a step where they outlast the GPU's work: a decode step replayed from piecewise
    # graphs (the attention ops launched eagerly) or, on engines that run prompt steps eagerly, a prompt step.
    host_launch = np.where(p_all > 0, s.prompt_host_s, np.where((s.piecewise > 0) & (eager == 1.0), launch, 0.0))
    out["host_bound"] = np.where(host_launch > 0, np.maximum(host_launch + out["host"] - graphed, 0.0),
                                 0.0) + np.zeros_like(b)
    out["step"] = graphed + out["host_bound"]
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
