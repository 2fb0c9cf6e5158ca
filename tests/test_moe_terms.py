"""MoE and collective terms of the step model: hand-computed facts from published kernel figures, the
per-term breakdown, and invariants of expert-slice bandwidth and the EP communication pattern."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from gpuplan.models.catalog import resolve
from gpuplan.optimizer.serving import terms
from gpuplan.optimizer.serving.calibration import CalibrationRow
from gpuplan.optimizer.serving.deployment import perf
from gpuplan.optimizer.serving.kernels import kernel_constant, load_kernel_constants
from gpuplan.optimizer.serving.layout import make_layout
from gpuplan.optimizer.serving.roofline import STEP_TERMS, step_terms_s
from gpuplan.optimizer.serving.shape import make_shape
from gpuplan.optimizer.tables import Tables
from hypothesis import given, settings
from hypothesis import strategies as st

IDEAL = CalibrationRow(engine="vllm", gpu="*", eta_mem=1.0, eta_cmp=1.0, eta_prefill=1.0, t_fixed_ms=0.0,
                       comm_latency_us=0.0, runtime_overhead_gib=1.0, mem_util=0.9, seq_us=0.0, layer_us=0.0,
                       moe_layer_us=0.0, mla_layer_us=0.0, gemm_tile_m=1.0, attn_ctx_half_tokens=0.0,
                       request_ms=0.0, source="test", as_of="2026-01-01")
MOE = ["deepseek-r1", "gpt-oss-120b", "qwen3-235b-a22b", "mixtral-8x7b"]


def _shape(model: str, gpu: str, weights: str, tp: int, ep: int = 1, attn_dp: int | None = None,
           cal: CalibrationRow = IDEAL, context: float = 1024):
    t = Tables()
    m = resolve(model)
    lay = make_layout(m.arch, tp, ep, attn_dp)
    s, _ = make_shape(m.arch, t.gpus.get(gpu), tp, t.formats.weight(weights), t.formats.kv_format("bf16"),
                      context, cal, ep=lay.ep, attn_dp=lay.attn_dp)
    return s


def test_expert_slice_efficiency_reproduces_the_published_grouped_vs_dense_ratio() -> None:
    # TensorRT-LLM blog 'MoE as Dense GEMM' (B200, TP8, DeepSeek-V3 NVFP4): 3 x 7168 x 256 weights per
    # expert slice, ~3.1 MB with block scales. At 128 tokens the grouped GEMM reads the ~252 touched experts
    # (780 MB) in 161.87 - 24 us and the dense GEMM all 256 (793 MB) in 144.50 - 24 us (24 us: router,
    # top-k and launches, from the 1-token time): 5.65 / 6.58 TB/s = 0.86.
    assert kernel_constant("expert_slice_ramp_cols") == 42
    grouped = 780e6 / (161.87e-6 - 24e-6)
    dense = 793e6 / (144.50e-6 - 24e-6)
    assert terms.expert_slice_efficiency(256.0, 42.0) == pytest.approx(grouped / dense, abs=0.01)
    # DeepSeek-R1 (expert intermediate 2048) on 8 GPUs: TP-sharded 256-column slices reach 256/298, whole
    # experts under EP8 2048/2090; no experts: 1.
    assert _shape("deepseek-r1", "h200", "fp8", 8).expert_cols == 256
    assert _shape("deepseek-r1", "h200", "fp8", 8, 8).expert_cols == 2048
    assert terms.expert_slice_efficiency(2048.0, 42.0) == pytest.approx(2048 / 2090)
    assert terms.expert_slice_efficiency(0.0, 42.0) == 1.0


def test_kernel_constants_carry_a_source_and_date() -> None:
    for row in load_kernel_constants().values():
        assert row.source and len(row.as_of) == 10 and row.value > 0


def test_all_to_all_matches_deepep_low_latency_dispatch_and_combine() -> None:
    # DeepEP README (legacy V1 table, H800, 128 tokens, hidden 7168, top-8, FP8 dispatch with one 4-byte
    # scale per 128 values, BF16 combine): EP256 dispatch 194 us at 39 GB/s, combine 360 us at 40 GB/s.
    # One rank sends 128 x 8 token copies: 7168 + 224 bytes each in FP8, 7168 x 2 in BF16; the latency is
    # the bytes over the bandwidth (alpha ~ 0): 255/256 x 7.57 MB / 39 GB/s = 193 us.
    dispatch = terms.all_to_all_s(128 * 8 * (7168 + 224), 256, 0.0, 39e9, 1.0)
    combine = terms.all_to_all_s(128 * 8 * 7168 * 2, 256, 0.0, 40e9, 1.0)
    assert dispatch == pytest.approx(194e-6, rel=0.01)
    assert combine == pytest.approx(360e-6, rel=0.03)
    assert terms.all_to_all_s(1e6, 1, 5e-6, 39e9, 1.0) == 0.0


def test_ep_with_attention_tp_all_reduces_instead_of_all_to_all() -> None:
    assert terms.moe_all_to_all(8, 8) == 1.0 and terms.moe_all_to_all(8, 1) == 0.0
    assert terms.moe_all_to_all(1, 1) == 0.0
    dp = step_terms_s(_shape("deepseek-r1", "h200", "fp8", 8, 8), 64.0)
    tp_attn = step_terms_s(_shape("deepseek-r1", "h200", "fp8", 8, 8, attn_dp=1), 64.0)
    tp_only = step_terms_s(_shape("deepseek-r1", "h200", "fp8", 8), 64.0)
    assert dp["all_to_all"] > 0 and dp["all_reduce"] == 0  # attention DP 8 has no TP group left
    assert tp_attn["all_to_all"] == 0
    # EP with attention TP all-reduces as often as plain TP (61 layers: 61 + 3 dense MLPs + 58 MoE).
    assert tp_attn["all_reduce"] == pytest.approx(tp_only["all_reduce"])


def test_breakdown_sums_to_the_step_and_perf_reports_it() -> None:
    s = _shape("deepseek-r1", "b200", "nvfp4", 8, cal=Tables().calibration.lookup("trtllm", "b200", "nvidia"))
    t = step_terms_s(s, np.array([1.0, 64.0, 256.0]))
    assert np.allclose(t["step"], sum(t[k] for k in STEP_TERMS))
    assert np.allclose(t["linear"], terms.overlapped_s(t["dense_read"] + t["expert_read"], t["gemm_compute"], 3.0))
    r = perf("deepseek-r1", "h200", "fp8", tp=8, ep=8, batch=64, engine="sglang")
    assert r.step_terms_ms["step"] == pytest.approx(r.step_ms, rel=1e-5)
    assert r.step_terms_ms["all_to_all"] > 0 and r.step_terms_ms["expert_read"] > 0


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(MOE), st.sampled_from(["h200", "b200"]), st.integers(1, 512))
def test_whole_experts_stream_at_least_as_fast_as_slices(model, gpu, batch) -> None:
    # The same experts split over more GPUs per EP rank never stream faster per byte, and expert reads
    # never beat the peak bandwidth.
    arch = resolve(model).arch
    eps = [e for e in (1, 2, 4, 8) if arch.moe.num_experts % e == 0]
    effs = [float(terms.expert_slice_efficiency(_shape(model, gpu, "fp8", 8, e).expert_cols, 42.0)) for e in eps]
    assert effs == sorted(effs)
    s = _shape(model, gpu, "fp8", 8)
    t = step_terms_s(s, float(batch))
    touched = terms.experts_touched(s.num_experts, s.top_k, float(batch), s.expert_load_cv)
    assert t["expert_read"] >= touched * s.expert_bytes * s.moe_layers / 8 / s.bw_peak * (1 - 1e-9)


def test_skewed_routing_touches_fewer_experts_by_hand() -> None:
    # Qwen3-30B-A3B (128 experts, top-8) at 10 decodes with the published load CV 1.28 (kernels.csv: TensorRT-LLM
    # blog 4, DeepSeek-R1 without EPLB, 164.1 / 128): p̄ = 1/16, a + b = (15/16) / (1.28² / 16) − 1 = 8.1553,
    # b = (15/16)(a + b); E[(1 − p)^10] = Π_{i<10} (b + i) / (a + b + i) = 0.6468 → 128 · 0.3532 = 45.2 experts,
    # against 128 · (1 − (15/16)^10) = 60.9 under uniform routing.
    total = (15 / 16) / (1.28**2 / 16) - 1
    b = 15 / 16 * total
    untouched = float(np.prod([(b + i) / (total + i) for i in range(10)]))
    assert terms.experts_touched(128, 8, 10.0, 1.28) == pytest.approx(128 * (1 - untouched), rel=1e-9)
    assert terms.experts_touched(128, 8, 10.0, 1.28) == pytest.approx(45.2, abs=0.05)
    assert terms.experts_touched(128, 8, 10.0) == pytest.approx(128 * (1 - (15 / 16) ** 10))
    # One token picks exactly k experts however skewed the router; the most skew a mean of k/E allows (CV beyond
    # √((1 − p̄)/p̄) = √15) is the same k experts for every token.
    assert terms.experts_touched(128, 8, 1.0, 1.28) == pytest.approx(8.0)
    assert terms.experts_touched(128, 8, 10_000.0, 100.0) == pytest.approx(8.0, rel=1e-2)
    assert terms.experts_touched(0, 0, 5.0, 1.28) == 0.0
    # No token touches nothing: exactly 0, never a rounding hair below it (the busiest EP rank takes its root).
    assert all(float(terms.experts_touched(e, k, 0.0, 1.28)) == 0.0 for e, k in ((256, 8), (128, 4), (384, 8)))


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([(256, 8), (128, 8), (128, 4), (8, 2), (16, 1), (512, 10)]), st.floats(1.0, 1e5),
       st.floats(0.01, 3.0))
def test_skewed_routing_bounds(experts, tokens, cv) -> None:
    # Skew never touches more experts than uniform routing (Jensen), never fewer than one token's k, never more
    # than E, and more tokens never touch fewer experts.
    e, k = experts
    skewed = float(terms.experts_touched(e, k, tokens, cv))
    assert k * (1 - 1e-6) <= skewed <= float(terms.experts_touched(e, k, tokens)) * (1 + 1e-6) <= e * (1 + 1e-6)
    assert float(terms.experts_touched(e, k, tokens * 2, cv)) >= skewed * (1 - 1e-6)


def test_nvlink_all_to_all_matches_tensorrt_llm_one_sided_kernels() -> None:
    # TensorRT-LLM blog 18 (GB200 NVL72, DeepSeek-V3: hidden 7168, top-8, BF16): at EP 8 one token per rank
    # takes 18.9 us to dispatch and 31.0 us to combine (mean 25 us = alpha(8) = 20 + 1.67 x 3); 2048 tokens
    # 311.8 / 322.6 us. One rank sends 2048 x min(8, 8) x 14336 B = 235 MB, 7/8 of it over NVLink at
    # 0.7 x 900 GB/s: 25 + 326 = 351 us.
    from gpuplan.optimizer.serving.links import a2a_alpha_s, load_links

    row = load_links()["nvlink5"]
    alpha = a2a_alpha_s(row, 8)
    assert alpha == pytest.approx(25e-6, rel=0.01)
    assert 2 * alpha == pytest.approx((18.9 + 31.0) * 1e-6, rel=0.02)
    big = terms.all_to_all_s(2048 * 8 * 14336, 8, alpha, 900e9, row.a2a_eta)
    assert big == pytest.approx((311.8 + 322.6) / 2 * 1e-6, rel=0.15)
    assert a2a_alpha_s(row, 64) == pytest.approx((27.8 + 32.6) / 2 * 1e-6, rel=0.02)
    # Links without published dispatch kernels fall back to twice the all-reduce latency.
    pcie = load_links()["pcie"]
    assert a2a_alpha_s(pcie, 8) == pytest.approx(2 * (15 + 4 * 3) * 1e-6)


def test_overlap_of_memory_and_compute_matches_deepgemm_at_the_ridge() -> None:
    # DeepGEMM README (H800, FP8): masked grouped GEMM, 4 groups x 256 rows, N = 4096, K = 7168: 932 TFLOPS.
    # FLOPs 4 x 2 x 256 x 4096 x 7168 = 60.1 G -> 64.5 us measured. Bytes: 4 x 4096 x 7168 weights + 1024 x
    # (7168 + 2 x 4096) activations ~ 133 MB at the 2.5 TB/s memory-bound GEMMs reach = 53.2 us; compute at the
    # large-M rate 1,290 TFLOPS = 46.6 us. max = 53.2 us (-18 %); p = 3: (53.2^3 + 46.6^3)^(1/3) = 63.1 us.
    assert kernel_constant("roofline_overlap_p") == 3
    flops = 4 * 2 * 256 * 4096 * 7168
    measured = flops / 932e12
    t_mem, t_cmp = 133e6 / 2.5e12, flops / 1290e12
    assert max(t_mem, t_cmp) < 0.85 * measured
    assert terms.overlapped_s(t_mem, t_cmp, 3.0) == pytest.approx(measured, rel=0.05)
    # Far from the ridge it is the roofline: within 0.1 % when one side is 10x the other.
    assert terms.overlapped_s(1.0, 0.1, 3.0) == pytest.approx(1.0, rel=1e-3)
    assert terms.overlapped_s(0.0, 0.0, 3.0) == 0.0


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(MOE), st.sampled_from(["h100-sxm", "h200", "b200", "mi300x"]), st.sampled_from([1, 2, 4, 8]),
       st.booleans(), st.integers(1, 1024))
def test_step_with_attention_tp_or_dp_is_monotone_and_bandwidth_bound(model, gpu, ep, dp_attention, batch) -> None:
    # Whatever the layout (EP with attention TP or DP), a step never gets cheaper with more sequences and
    # never beats reading its GPU's share of the dense weights plus the experts it touches at peak bandwidth.
    arch = resolve(model).arch
    if arch.moe.num_experts % ep:
        return
    dp = ep if dp_attention else 1
    s = _shape(model, gpu, "fp8", 8, ep, attn_dp=dp, cal=Tables().calibration.lookup("sglang", gpu, "x"))
    t = step_terms_s(s, np.array([batch, batch + 1, 2 * batch], dtype=float))["step"]
    assert t[0] <= t[1] <= t[2]
    one = step_terms_s(s, 1.0)
    floor_s = (s.dense_bytes / (8 / dp) + s.top_k * s.expert_bytes * s.moe_layers / 8) / s.bw_peak
    assert one["step"] >= floor_s * (1 - 1e-9)


def test_a_step_with_prompt_tokens_pays_eager_floors() -> None:
    """Decode steps replay captured CUDA graphs; a step with prompt tokens launches its kernels from the host. The
    shipped serving engines scale the per-layer floors by eager_floor_scale = 6 (an eager Llama 3.1 8B decode step
    on H100 is 8.4 ms against 5.1 ms captured, cloudai.pt: ~100 µs more per layer than the ~20 µs graphed floor),
    so the floors term of a one-token prompt step is exactly 6 × the decode step's."""
    from gpuplan.optimizer.serving.roofline import step_terms_s
    from gpuplan.optimizer.serving.terms import eager_scale
    from gpuplan.optimizer.tables import DEFAULT

    assert float(eager_scale(0.0, 6.0)) == 1.0 and float(eager_scale(1.0, 6.0)) == 6.0
    cal = DEFAULT.calibration.lookup("vllm", "h100-sxm", "nvidia", "hopper")
    assert cal.eager_floor_scale == 6.0
    s = _shape("llama-3.1-8b", "h100-sxm", "bf16", 1, cal=cal)
    decode = step_terms_s(s, 1.0)["layer_floors"]
    prompt = step_terms_s(s, 0.0, 1.0)["layer_floors"]
    assert float(prompt) == pytest.approx(6.0 * float(decode), rel=1e-12)
    assert float(decode) == pytest.approx(32 * cal.layer_us * 1e-6, rel=1e-12)


def test_dp_attention_with_tp_experts_all_reduces_every_token_over_all_gpus() -> None:
    # SGLang --enable-dp-attention without --ep (DeepSeek-R1 on 8 x H200, attention DP 8, experts TP over the 8):
    # the attention ranks have no TP group left, but each of the 58 MoE layers gathers every rank's tokens to
    # all 8 GPUs and sums the partial outputs back: one all-reduce of the step's tokens over 8 GPUs per MoE
    # layer. NVLink 4 (links.csv): alpha(8) = 3 + 1 x log2(8) = 6 us; 64 tokens x 7168 x 2 B = 917,504 B at
    # eta(S) = 0.15 + 0.65 x S / (S + 16 MiB); H200 NVLink 450 GB/s one direction.
    t = step_terms_s(_shape("deepseek-r1", "h200", "fp8", 8, attn_dp=8), 64.0)
    size = 64 * 7168 * 2
    eta = 0.15 + 0.65 * size / (size + 16 * 2**20)
    one = 6e-6 + 2 * 7 / 8 * size / (450e9 * eta)
    assert t["all_to_all"] == 0
    assert t["all_reduce"] == pytest.approx(58 * one, rel=1e-6)
    # More tokens per step never make the gathered all-reduce cheaper.
    more = step_terms_s(_shape("deepseek-r1", "h200", "fp8", 8, attn_dp=8), np.array([64.0, 512.0, 4096.0]))
    assert np.all(np.diff(more["all_reduce"]) > 0)


def test_routing_skew_reproduces_the_published_ep32_imbalance() -> None:
    # TensorRT-LLM blog 4, Table 1 (DeepSeek-R1, 256 experts, EP 32, no EPLB): per-expert-slot mean 128, std 164.1
    # (cv 1.28); the hottest rank receives 1.564x more routed tokens than the mean.
    cv, scale = kernel_constant("expert_load_cv"), kernel_constant("ep_busiest_excess_scale")
    assert cv == pytest.approx(164.1 / 128, abs=0.005)
    assert terms.ep_load_excess(32, 256, cv, scale) == pytest.approx(1.564, rel=0.01)
    assert terms.ep_load_excess(1, 256, cv, scale) == 0.0 and terms.ep_load_excess(8, 0, cv, scale) == 0.0
    # EP 8 over 256 experts: 1.31 * sqrt(2 ln 8) * 1.28 * sqrt(8 / 256) = 0.60 more than the mean.
    assert terms.ep_load_excess(8, 256, cv, scale) == pytest.approx(1.31 * np.sqrt(2 * np.log(8)) * 1.28 / np.sqrt(32))


def test_busiest_rank_computes_the_skewed_share_at_large_batch() -> None:
    # DeepSeek-R1 EP 8 with attention DP on 8 x H200 at 4096 decodes: the skewed router touches ~244 of the 256
    # experts, so sampling alone gives the busiest rank its 32 experts' share of the rows, 32/244 (> 1/8);
    # the skewed busiest rank computes (1 + 0.60)/8 of them.
    s = _shape("deepseek-r1", "h200", "fp8", 8, 8)
    skewed = step_terms_s(s, 4096.0)["gemm_compute"]
    even = step_terms_s(replace(s, ep_excess_scale=0.0), 4096.0)["gemm_compute"]
    delta = float(terms.ep_load_excess(8, 256, s.expert_load_cv, s.ep_excess_scale))
    touched = float(terms.experts_touched(256, 8, 4096.0, s.expert_load_cv))
    sampled = float(terms.busiest_rank_experts(touched, 256, 8)) / touched
    assert touched == pytest.approx(244, abs=1) and sampled == pytest.approx(32 / touched)
    dense_part = step_terms_s(replace(s, expert_flops_per_row=0.0), 4096.0)["gemm_compute"]
    assert (skewed - dense_part) == pytest.approx((even - dense_part) * (1 + delta) / 8 / sampled, rel=1e-6)
