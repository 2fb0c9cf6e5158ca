"""The step model's terms beyond the roofline, each a small pure function (numpy element-wise).

All times in seconds, sizes in bytes, token counts as floats. Every function works on scalars and on
numpy arrays of equal shape (the calibration fit evaluates all measured rows at once).
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln

ArrayLike = float | np.ndarray


def layer_floor_s(dense_layers: ArrayLike, moe_layers: ArrayLike, mla_layers: ArrayLike, dense_us: ArrayLike,
                  moe_us: ArrayLike, mla_us: ArrayLike) -> ArrayLike:
    """Fixed time per step from kernel launches and tiny kernels that no batch size amortises:
    t = L · τ_layer + L_moe · τ_moe + L_mla · τ_mla, where every layer pays τ_layer (norms, QKV/O, MLP
    launches), MoE layers add τ_moe (router, top-k, permute, grouped-GEMM launches) and MLA layers add
    τ_mla (q/kv down- and up-projections, absorb, RoPE split)."""
    return (dense_layers * dense_us + moe_layers * moe_us + mla_layers * mla_us) * 1e-6


def link_efficiency(size_bytes: ArrayLike, eta_small: ArrayLike, eta_large: ArrayLike,
                    knee_bytes: ArrayLike) -> ArrayLike:
    """η(S) = η_small + (η_large − η_small) · S / (S + knee): small messages run latency-optimised kernels
    far below link bandwidth, large ones approach the ring's bus bandwidth."""
    return eta_small + (eta_large - eta_small) * size_bytes / (size_bytes + knee_bytes)


def allreduce_s(size_bytes: ArrayLike, group: ArrayLike, alpha: ArrayLike, link_bytes_s: ArrayLike,
                eta: ArrayLike) -> ArrayLike:
    """α–β all-reduce over ``group`` GPUs: α(n) + 2(n − 1)/n · S / (B · η); 0 when n = 1."""
    share = 2.0 * (group - 1.0) / np.maximum(group, 1.0)
    return np.where(group > 1, alpha + share * size_bytes / (link_bytes_s * eta), 0.0)


def all_to_all_s(size_bytes: ArrayLike, group: ArrayLike, alpha: ArrayLike, link_bytes_s: ArrayLike,
                 eta: ArrayLike) -> ArrayLike:
    """α–β all-to-all (MoE dispatch or combine) over ``group`` GPUs: α(n) + (n − 1)/n · S / (B · η),
    S = bytes one GPU sends in total; 0 when n = 1."""
    share = (group - 1.0) / np.maximum(group, 1.0)
    return np.where(group > 1, alpha + share * size_bytes / (link_bytes_s * eta), 0.0)


def experts_touched(num_experts: ArrayLike, top_k: ArrayLike, tokens: ArrayLike,
                    load_cv: ArrayLike = 0.0) -> ArrayLike:
    """Distinct experts hit by T tokens each routed to k of E (0 without MoE).

    Uniform routing (``load_cv`` = 0): E · (1 − (1 − k/E)^T). Real routers favour some experts: expert e is
    picked by a token with probability p_e, mean p̄ = k/E and coefficient of variation c across experts
    (``load_cv``). With p ~ Beta(a, b), a + b = (1 − p̄) / (c² p̄) − 1, a = p̄ (a + b):
    E · (1 − E[(1 − p)^T]), E[(1 − p)^T] = B(a, b + T) / B(a, b) = Γ(b + T) Γ(a + b) / (Γ(b) Γ(a + b + T)).
    One token still hits exactly k experts; a skewed batch re-hits popular experts and leaves rare ones
    unread, so fewer distinct experts are read than under uniform routing (Jensen: (1 − p)^T is convex).
    a + b is floored at 10⁻³ (c beyond √((1 − p̄)/p̄), the most skew a mean of p̄ allows: the same k experts
    every time); 0 for T = 0 and clipped to [0, E] (the Γ ratio rounds a hair off 1 near T = 0)."""
    moe = np.asarray(num_experts) > 0
    if not np.any(moe):  # dense models: nothing to count (and no Γ to evaluate)
        return np.where(moe, np.asarray(tokens, dtype=float), 0.0)
    e = np.maximum(num_experts, 1.0)
    p = np.clip(top_k / e, 0.0, 1.0)
    c2 = np.square(load_cv)
    if not np.any(c2 > 0):
        return np.where(moe, e * (1.0 - (1.0 - p) ** tokens), 0.0)
    total = np.maximum((1.0 - p) / np.maximum(c2 * p, 1e-12) - 1.0, 1e-3)
    b = (1.0 - p) * total
    untouched = np.exp(gammaln(b + tokens) + gammaln(total) - gammaln(b) - gammaln(total + tokens))
    if not np.all(c2 > 0):
        untouched = np.where(c2 > 0, untouched, (1.0 - p) ** tokens)
    touched = np.clip(e * (1.0 - untouched), 0.0, e)
    return np.where(moe & (np.asarray(tokens) > 0), touched, 0.0)


def busiest_rank_experts(touched: ArrayLike, num_experts: ArrayLike, ep: ArrayLike) -> ArrayLike:
    """Experts the busiest of ``ep`` expert-parallel ranks reads: mean μ = touched / ep plus a Gaussian
    max-of-ep excess √(2 ln ep) · √(μ (1 − 1/ep)), capped by the rank's E/ep experts and by ``touched``.
    With ep = 1 it is ``touched``."""
    mu = touched / ep
    excess = np.sqrt(2.0 * np.log(np.maximum(ep, 1.0))) * np.sqrt(mu * (1.0 - 1.0 / ep))
    return np.minimum(np.minimum(mu + excess, num_experts / ep), touched)


def ep_load_excess(ep: ArrayLike, num_experts: ArrayLike, expert_cv: ArrayLike, scale: ArrayLike) -> ArrayLike:
    """Routed-token excess of the busiest of ``ep`` expert-parallel ranks over the mean, as a fraction, from
    real routing skew: δ = scale · √(2 ln ep) · cv · √(ep / E). Experts' loads vary with coefficient of
    variation ``cv`` and add independently within a rank of E/ep experts; the busiest of ep ranks sits
    ``scale`` · √(2 ln ep) rank standard deviations above the mean (kernels.csv: TensorRT-LLM's DeepSeek-R1
    routing statistics at EP 32, 1.564 without EPLB). 0 without expert parallelism or experts."""
    ep_f = np.maximum(np.asarray(ep, dtype=float), 1.0)
    e = np.maximum(np.asarray(num_experts, dtype=float), 1.0)
    return np.where((ep_f > 1) & (np.asarray(num_experts) > 0),
                    scale * np.sqrt(2.0 * np.log(ep_f)) * expert_cv * np.sqrt(ep_f / e), 0.0)


def expert_gemm_rows(tokens: ArrayLike, top_k: ArrayLike, touched: ArrayLike, tile_m: ArrayLike) -> ArrayLike:
    """Token rows the grouped GEMM computes. Each touched expert gets m = T · k / touched rows in tiles of
    M = tile_m rows (tensor-core tiles are 64 or 128 rows): an expert with m < M still costs one whole tile,
    and with m ≥ M its last tile is on average half empty, so
    rows = max(T · k + touched · M / 2, touched · M). Small m wastes compute: it is bandwidth- and
    launch-bound."""
    return np.maximum(tokens * top_k + touched * tile_m / 2, touched * tile_m)


def attention_efficiency(context: ArrayLike, half_tokens: ArrayLike) -> ArrayLike:
    """Fraction of the memory efficiency decode attention reaches at ``context`` tokens:
    1 / (1 + s / s_half) (s_half = 0 turns the term off). Long-context decode kernels split the KV across
    blocks and reduce the partial results, which costs extra passes."""
    inv = np.where(half_tokens > 0, 1.0 / np.maximum(half_tokens, 1e-9), 0.0)
    return 1.0 / (1.0 + context * inv)


def prefill_chunks(input_tokens: ArrayLike, chunk_tokens: ArrayLike) -> ArrayLike:
    """⌈I / C⌉ engine steps for a prompt of I tokens with chunked prefill of C tokens per step (≥ 1)."""
    return np.maximum(np.ceil(input_tokens / chunk_tokens), 1.0)


def expert_slice_efficiency(slice_cols: ArrayLike, ramp_cols: ArrayLike) -> ArrayLike:
    """Share of the dense-GEMM weight bandwidth a grouped GEMM reaches on expert slices of w columns:
    w / (w + w₀). Each expert is its own GEMM problem whose N (or K) is the slice width w = the expert's
    intermediate size / the GPUs it is split over; the tile pipeline starts again for every problem, which
    costs about as much as streaming w₀ more columns (kernels.csv: w₀ = 42 from TensorRT-LLM's B200 TP8
    DeepSeek-V3 MoE, 256-column slices at 0.86 of the dense-concatenated GEMM). TP-sharded experts
    (thin slices) fall short of bandwidth; whole experts (EP) reach it. 1 without experts (w = 0)."""
    w = np.asarray(slice_cols, dtype=float)
    return np.where(w > 0, w / np.maximum(w + ramp_cols, 1e-12), 1.0)


TRITON_MOE_ENGINES = ("vllm", "sglang")


def moe_input_passes(engine: str, gpu_arch: str, attn_dp: int) -> float:
    """HBM passes over each token copy's input row in a MoE layer: 1 where the expert kernel gathers the rows
    it needs from the token-ordered activations (vLLM's and SGLang's Triton fused_moe, Marlin MoE and
    triton_kernels matmul_ogs on Hopper, Ampere and AMD, with tensor-parallel attention); 2 where a permute
    pass writes the copies in expert order first and the grouped GEMM reads them (TensorRT-LLM's CUTLASS and
    TRT-LLM-gen MoE, FlashInfer's Blackwell MoE, DeepEP's receive buffers under data-parallel attention)."""
    gathers = engine in TRITON_MOE_ENGINES and attn_dp <= 1 and not gpu_arch.lower().startswith("blackwell")
    return 1.0 if gathers else 2.0


def moe_activation_bytes(rows: ArrayLike, hidden: ArrayLike, in_bytes: ArrayLike, out_bytes: ArrayLike,
                         in_passes: ArrayLike = 2.0) -> ArrayLike:
    """Bytes one GPU moves through HBM for the token copies of one MoE layer, beside the expert weights:
    rows · hidden · 2 · (b_in + b_out), rows = the token-expert pairs the GPU computes (T · k with TP-sharded
    experts: every TP rank computes a slice of every pair; under EP its rank's share). Each pair's input row
    is written in expert order and read by the grouped GEMM (2 · b_in: TensorRT-LLM's expandInputRows,
    DeepEP's receive buffer; vLLM's Triton kernel gathers instead, one read), and each pair's output, a full
    hidden-width row (with TP-sharded experts a partial sum over the GPU's slice), is written by the second
    GEMM and read back by the reduction that sums a token's k rows (2 · b_out: finalizeMoeRouting, moe_sum).
    These are separate memory-bound passes (permute, finalize), so they add to the step rather than hiding
    under the GEMMs' math. DeepSeek-R1 at TP 8, FP8 inputs and BF16 outputs: 8 · 7,168 · 6 B = 344 kB per
    token per MoE layer on every GPU, 20 MB per token over its 58 MoE layers."""
    return rows * hidden * (in_passes * in_bytes + 2.0 * out_bytes)


def triton_fused_moe_path(engine: str, vendor: str, arch: str, compute: str, attn_dp: int) -> bool:
    """True where the routed experts run vLLM's Triton ``fused_moe`` kernel with FP8 inputs (SGLang runs the same
    kernel): vLLM or SGLang computing in FP8 on a Hopper GPU with tensor-parallel attention. With data-parallel
    attention these engines dispatch tokens to whole experts (DeepEP) and run DeepGEMM's grouped GEMMs instead;
    Blackwell and AMD GPUs run other MoE kernels (FlashInfer / TensorRT-LLM-gen, AITER), and TensorRT-LLM its
    own CUTLASS MoE, for which no such measurement is in kernels.csv."""
    return (engine in TRITON_MOE_ENGINES and vendor.lower() == "nvidia" and arch.lower().startswith("hopper")
            and compute == "fp8" and attn_dp <= 1)


def moe_kernel_flops_eta(triton_fp8: ArrayLike, triton_fp8_eta: ArrayLike) -> ArrayLike:
    """Ceiling on the share of the tensor-core peak the routed-expert GEMMs reach, by kernel:
    η_k = ``triton_fp8_eta`` on the Triton FP8 fused-MoE path, else 1 (no ceiling beyond η · η_moe).
    The step model computes expert FLOPs at F_w · min(η · η_moe, η_k). kernels.csv: the Triton kernel, FP8 W8A8,
    runs Qwen3-30B-A3B's experts (128 experts, top-8, hidden 2048, 768 columns) at 210 TFLOPS between 2,048 and
    4,096 tokens on an H100 (0.106 of 1,979), where BF16 Mixtral experts (7,168 columns) run at 0.63 of the BF16
    peak on the same kernel: the FP8 path does not reach the large-M rate the dense FP8 GEMMs do."""
    return np.where(np.asarray(triton_fp8, dtype=bool), triton_fp8_eta, 1.0)


def moe_all_to_all(ep: ArrayLike, attn_dp: ArrayLike) -> ArrayLike:
    """1 where MoE layers exchange tokens by all-to-all dispatch/combine, 0 where they all-reduce.
    With data-parallel attention (attn_dp > 1) each rank holds different tokens, so they travel to the
    ranks of their experts and back (DeepEP, TensorRT-LLM's NVLink all-to-all). With tensor-parallel
    attention every GPU already holds every token after the attention all-reduce: each expert-parallel
    rank applies its own experts and one all-reduce sums the partial outputs, as for TP-sharded experts
    (TensorRT-LLM's default EP without attention DP)."""
    return np.where((np.asarray(ep) > 1) & (np.asarray(attn_dp) > 1), 1.0, 0.0)


def moe_gather_tokens(rank_tokens: ArrayLike, step_tokens: ArrayLike, attn_dp: ArrayLike) -> ArrayLike:
    """Tokens one all-reduce of a MoE layer's output carries when the layer does not exchange tokens by
    all-to-all: with tensor-parallel attention (attn_dp = 1) every GPU holds the attention rank's tokens; with
    data-parallel attention and experts sharded over all GPUs (SGLang ``--enable-dp-attention`` without
    ``--ep``, TensorRT-LLM attention DP with TP experts) each rank's tokens are gathered to every GPU before
    the experts and the partial outputs summed and scattered back after them, which moves what one all-reduce
    of every token of the step moves (SGLang's DP attention gathers into a zero-padded buffer of all ranks'
    tokens and all-reduces it, ``dp_gather``; an all-gather plus a reduce-scatter move the same 2(n − 1)/n · S)."""
    return np.where(np.asarray(attn_dp) > 1, step_tokens, rank_tokens)


def overlapped_s(memory_s: ArrayLike, compute_s: ArrayLike, p: ArrayLike) -> ArrayLike:
    """Time of a kernel that streams ``memory_s`` worth of bytes and issues ``compute_s`` worth of math:
    (t_mem^p + t_cmp^p)^(1/p), between the roofline's max (p → ∞) and the sum (p = 1). Near the ridge the
    two do not overlap perfectly: DeepGEMM's FP8 GEMMs on H800 (README tables) sit within ~7 % of p = 3
    from memory-bound (dense, M = 64) through the ridge (masked grouped GEMM, 256 rows per group: 64.5 µs
    where the max gives 53 µs) to compute-bound (M = 4096); the max under-predicts the ridge by ~18 %."""
    m = np.maximum(np.asarray(memory_s, dtype=float), 0.0)
    c = np.maximum(np.asarray(compute_s, dtype=float), 0.0)
    big = np.maximum(np.maximum(m, c), 1e-300)
    return big * ((m / big) ** p + (c / big) ** p) ** (1.0 / p)


def mla_prefill_attention_ratio(heads: ArrayLike, qk_nope_dim: ArrayLike, qk_rope_dim: ArrayLike, v_dim: ArrayLike,
                                kv_lora_rank: ArrayLike) -> ArrayLike:
    """Prefill attention FLOPs per query-key pair of an MLA layer relative to its absorbed (decode) form.
    Engines run MLA prefill as multi-head attention over keys and values decompressed from the latent
    (QKᵀ over d_nope + d_rope dims, AV over d_v: 2·h·(d_nope + d_rope + d_v) FLOPs) and decode in the
    absorbed form over the latent (2·h·(2·r_kv + d_rope)); the decompression itself is the kv_b_proj GEMM,
    counted with the linear layers. DeepSeek-R1 (h 128, 128 + 64, 128, r_kv 512): 81,920 / 278,528 = 0.294."""
    return 2.0 * heads * (qk_nope_dim + qk_rope_dim + v_dim) / (2.0 * heads * (2.0 * kv_lora_rank + qk_rope_dim))


POISSON_TERMS = 3  # nodes per law
POISSON_EXACT_MAX = 1.0
POISSON_GAUSS_MIN = 3.0


def poisson_weights(lam: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(k, w, λ): three nodes and weights along a new first axis (broadcasting over λ's shape) whose weighted
    sums approximate E[f(N)] − f(0) · P(0), N ~ Poisson(λ), for f with f(0) = 0, all nodes ≥ 0:
    λ ≤ 1: k = 1, 2 with w = P(k; λ) = e^−λ λ^k / k!, and the tail N ≥ 3 as one node at its conditional
    mean (so E[N] = λ exactly);
    1 < λ < 3: k = λ ± √λ, weights 1/2 (mean and variance of N);
    λ ≥ 3: N is nearly normal, the three-point Gauss–Hermite rule k = λ, λ ± √(3λ) with weights 2/3, 1/6,
    1/6 (exact for polynomials of degree 5 in a normal variable of variance λ)."""
    lam = np.maximum(np.asarray(lam, dtype=float), 1e-9)
    idx = np.arange(1, POISSON_TERMS + 1, dtype=float).reshape((-1,) + (1,) * lam.ndim)
    head = np.where(idx < POISSON_TERMS, np.exp(idx * np.log(lam) - lam - np.cumsum(np.log(idx), axis=0)), 0.0)
    tail = np.maximum(1.0 - np.exp(-lam) - np.sum(head, axis=0), 1e-300)  # P(N ≥ 3), at its conditional mean
    tail_mean = np.clip((lam - np.sum(head * idx, axis=0)) / tail, POISSON_TERMS, POISSON_TERMS + 2.0)  # ≤ 4.1 at λ = 1
    k = np.where(idx == POISSON_TERMS, tail_mean, idx)
    p = np.where(idx == POISSON_TERMS, tail, head)
    root = np.sqrt(lam)
    two_k = np.where(idx == 1, lam - root, np.where(idx == 2, lam + root, 0.0))
    two_w = np.where(idx <= 2, 0.5, 0.0)
    gh_k = np.where(idx == 1, lam, np.where(idx == 2, lam - np.sqrt(3.0) * root, lam + np.sqrt(3.0) * root))
    gh_w = np.where(idx == 1, 2.0 / 3.0, 1.0 / 6.0)
    nodes = np.where(lam <= POISSON_EXACT_MAX, k, np.where(lam < POISSON_GAUSS_MIN, two_k, gh_k))
    weights = np.where(lam <= POISSON_EXACT_MAX, p, np.where(lam < POISSON_GAUSS_MIN, two_w, gh_w))
    return nodes, weights, lam


def eager_scale(prefill_tokens: ArrayLike, scale: ArrayLike, rank_batch: ArrayLike = 0.0,
                graph_max_batch: ArrayLike = 0.0) -> ArrayLike:
    """Factor on a step's per-layer floors: ``scale`` for a step the engine runs without a CUDA graph, else 1.
    The serving engines replay decode steps from graphs captured for batches up to a limit (a few µs per
    kernel); a step carrying prompt tokens has a token count outside the captured sizes, and a decode step of
    more than ``graph_max_batch`` sequences per attention rank (``rank_batch``) is larger than any captured
    graph, so each launches every kernel from the host (graphs.csv: vLLM V1 captures up to 512, SGLang
    cuda_graph_max_bs 256 at TP < 4 on 80-160 GiB GPUs, TensorRT-LLM's PyTorch backend 128). The floors are the
    small kernels no batch amortises; launched one by one each costs about the host's launch time instead of its
    GPU time, while large kernels hide their launches behind their own run time, so the floors scale and the rest
    of the step does not. ``graph_max_batch`` 0: no capture limit; negative (graphs.NO_GRAPHS): the server
    captures no graphs, so every step pays ``scale``."""
    limit = np.asarray(graph_max_batch, dtype=float)
    beyond = (limit < 0) | ((limit > 0) & (np.asarray(rank_batch, dtype=float) > limit))
    return np.where((np.asarray(prefill_tokens) > 0) | beyond, scale, 1.0)


def trtllm_gen_fp4_moe(engine: str, vendor: str, arch: str, compute: str, weights: str = "") -> bool:
    """True where the routed experts run the TRTLLM-Gen FP4 MoE kernels (fused routing and grouped GEMMs) by the
    engine's default: FP4 experts computed natively on a data-centre Blackwell GPU (B200, B300, GB200: the two-die
    SM100 parts; the single-die GB20x parts run other kernels), with
    - SGLang and any FP4 format (nvfp4, mxfp4): ServerArgs picks FlashInfer's ``flashinfer_trtllm`` MoE runner on
      SM100 for DeepSeek-V3-architecture FP4 checkpoints and ``flashinfer_mxfp4`` (the MXFP4 variant) for gpt-oss;
    - vLLM and ``weights`` mxfp4: vllm/model_executor/layers/quantization/mxfp4.py selects SM100_FI_MXFP4_BF16 on
      SM100 when no switch is set (FlashInfer's TRTLLM-Gen MXFP4 MoE with 16-bit activations; the MXFP8-activation
      and CUTLASS variants need VLLM_USE_FLASHINFER_MOE_MXFP4_MXFP8*), the backend whose 256-alignment padding
      expert_layout.csv already counts. vLLM's nvfp4 MoE runs its own CUTLASS kernel unless FlashInfer is switched
      on, so not there.
    Not TensorRT-LLM, whose MoE backend defaulted to CUTLASS (``MoeConfig.backend``; TRTLLM-Gen only when a recipe
    asks for it)."""
    a = arch.lower()
    sm100 = vendor.lower() == "nvidia" and a.startswith("blackwell") and "2 dies" in a and compute == "fp4"
    return sm100 and (engine == "sglang" or (engine == "vllm" and weights == "mxfp4"))


MXFP4_EXPERT_PATH_ENGINES = ("sglang", "vllm", "trtllm")


def mxfp4_expert_compute(engine: str) -> str:
    """Tensor path of MXFP4 experts (gpt-oss's checkpoint: E2M1 weights, 16-bit activations) under the engine's
    default kernel on a GPU that runs MXFP4 natively; "" where the format's own path stands. The MMA's kind is
    set by both operands, and no serving engine quantises these activations to FP4 by default, so the experts
    never run at the E2M1 × E2M1 (FP4) rate; with 8-bit activations (E2M1 × E4M3, Blackwell's mixed f8f6f4
    kind) they run at the FP8 rate, the fastest they can reach:
    SGLang: ``flashinfer_mxfp4_moe_precision`` "default" quantises the activations to MXFP8 (mxfp8_quantize) before
    FlashInfer's TRTLLM-Gen MXFP4 MoE. vLLM: SM100_FI_MXFP4_BF16 hands that kernel BF16 activations, which it
    quantises inside its pipeline (SGLang's "bf16" precision comment) or computes in BF16, so the FP8 rate is an
    upper bound. TensorRT-LLM: W4A16_MXFP4 unless OVERRIDE_QUANT_ALGO=W4A8_MXFP4_MXFP8 (NVIDIA's gpt-oss recipes set
    it), the FP8 rate at best."""
    return "fp8" if engine in MXFP4_EXPERT_PATH_ENGINES else ""


def moe_floor_us(fitted_us: ArrayLike, kernel_us: ArrayLike) -> ArrayLike:
    """τ_moe of a step: the expert kernel path's measured fixed time per MoE layer where kernels.csv has one
    (``kernel_us`` > 0: the TRTLLM-Gen FP4 MoE's 24 µs, trtllm_gen_fp4_moe), else the calibration's fitted τ_moe."""
    return np.where(np.asarray(kernel_us) > 0, kernel_us, fitted_us)


def prefill_attention_rate_flops_s(flops_peak: ArrayLike, eta: ArrayLike, tile_flops_per_byte: ArrayLike,
                                   bw_peak: ArrayLike) -> ArrayLike:
    """Attention FLOP/s of prompt tokens: R = min(F_16 · η, I · BW_peak) where the engine's prefill kernel
    re-reads the prefix's K and V once per query tile of I FLOP per byte (prefill_tiles.tile_flops_per_byte),
    R = F_16 · η where I = 0 (flash-attention tiles, compute-bound). The streamed tiles are priced at the HBM
    peak, not at the decode η_mem: the programs of one KV head fetch the same key tiles close together, so
    L2 and Infinity Cache serve what a lone stream would lose (no fitted factor). vLLM's unified Triton
    kernel on an MI355X (8 TB/s), 16-bit KV, 8 query heads per KV head: I = 16, R = 128 TFLOP/s, 5 % of its
    2,517 dense BF16 TFLOP/s."""
    compute = np.asarray(flops_peak) * np.asarray(eta)
    tile = np.asarray(tile_flops_per_byte, dtype=float)
    return np.where(tile > 0, np.minimum(compute, tile * np.asarray(bw_peak)), compute)


def blockscale_kloop_s(kblocks: ArrayLike, us_per_kblock: ArrayLike) -> ArrayLike:
    """Time of the block-scale FP8 GEMMs of one step while they are latency-bound (decode sizes on ROCm):
    t = n_kb · τ_kb, n_kb = the sequential 128-wide K-block steps of the step's block-scaled GEMMs on one GPU
    (blockscale.kblocks_per_step) and τ_kb the time of one block step (calibration ``blockfp8_kblock_us``).
    The kernel's few output tiles walk K one block at a time, so its time is K / 128 steps whatever the tokens:
    AITER's Triton gemm_a8w8_blockscale at N = 2112, K = 7168 (DeepSeek's fused q_a + kv_a, 56 block steps) takes
    128.8 / 127.3 / 117.5 µs at M = 64 / 128 / 256 with its default config (ROCm/aiter pull request 1232):
    2.3 µs per block step, 20 times its bytes / bandwidth time. 0 where no block-scale GEMM runs. The kernels
    run as kernels of their own: where the term is on, the linear phase is split (roofline.step_terms_s) into
    ‖(R_experts, G_other)‖_p + R_dense + max(t, G_dense) in place of ‖(R, G)‖_p (at decode sizes the K-loop whole
    beside the weight reads, as the floor was fitted); the floor fades where a long prompt makes the GEMMs
    compute-bound, and the step never falls as the batch grows."""
    return kblocks * us_per_kblock * 1e-6


ATTENTION_SHARE_OF_LAYER_FLOOR = 0.2  # the attention kernel among ~5 per dense layer (calibration_defaults.csv notes)


def piecewise_launch_s(layers: ArrayLike, mla_layers: ArrayLike, layer_us: ArrayLike, mla_layer_us: ArrayLike,
                       eager_scale: ArrayLike) -> ArrayLike:
    """Host time to launch one decode step replayed from piecewise CUDA graphs, whose attention ops run eagerly
    between the captured pieces (vLLM V1 before 0.11, graphs.csv ``piecewise``): the attention op's kernels
    launched one by one from Python at the eager scale s of the floors (terms.eager_scale), per layer the
    attention's share of τ_layer (1 of ~5 kernels) and, in MLA layers, the whole MLA floor τ_mla, whose
    absorbed products (W_UK, W_UV) and decode kernel run inside vLLM's MLA attention op:
    t_launch = s · (L · τ_layer / 5 + L_mla · τ_mla). The GPU runs the pieces while the host launches the next
    ops, so a step takes max(GPU time, t_launch + host time): the launches cost time only where they exceed the
    GPU's work (batch-1 decode of an MLA model), not at load. DeepSeek-R1 with vLLM's fitted floors
    (calibration.csv: τ_layer 19.96 µs, τ_mla 31.83 µs, s = 6): 6 · 61 · (3.99 + 31.83) µs = 13.1 ms per step."""
    return eager_scale * (layers * layer_us * ATTENTION_SHARE_OF_LAYER_FLOOR + mla_layers * mla_layer_us) * 1e-6
