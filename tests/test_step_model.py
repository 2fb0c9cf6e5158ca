"""The step model's terms beyond the roofline: hand-computed values, the FP4 regression, EP layouts and
invariants (hypothesis)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from gpuplan.hardware.gpus import load_gpus
from gpuplan.models.catalog import resolve
from gpuplan.optimizer.errors import InputError
from gpuplan.optimizer.serving import terms
from gpuplan.optimizer.serving.calibration import Calibration, CalibrationRow
from gpuplan.optimizer.serving.deployment import perf
from gpuplan.optimizer.serving.layout import expert_bytes_per_gpu, make_layout, weights_bytes_per_gpu
from gpuplan.optimizer.serving.links import alpha_s, link_row, load_links
from gpuplan.optimizer.serving.roofline import decode_step_s, mixed_step_s, prefill_s
from gpuplan.optimizer.serving.shape import make_shape
from gpuplan.optimizer.tables import Tables
from hypothesis import given, settings
from hypothesis import strategies as st

IDEAL = CalibrationRow(engine="vllm", gpu="*", eta_mem=1.0, eta_cmp=1.0, eta_prefill=1.0, t_fixed_ms=0.0,
                       comm_latency_us=0.0, runtime_overhead_gib=1.0, mem_util=0.9, seq_us=0.0, layer_us=0.0,
                       moe_layer_us=0.0, mla_layer_us=0.0, gemm_tile_m=1.0, attn_ctx_half_tokens=0.0,
                       request_ms=0.0, source="test", as_of="2026-01-01")
IDEAL_TABLES = Tables().with_calibration(Calibration(rows=(IDEAL,), path="ideal"))


def _shape(model: str, gpu: str, weights: str, tp: int = 1, ep: int = 1, cal: CalibrationRow = IDEAL,
           kv: str = "bf16", context: float = 1024):
    t = Tables()
    m = resolve(model)
    lay = make_layout(m.arch, tp, ep)
    return make_shape(m.arch, t.gpus.get(gpu), tp, t.formats.weight(weights), t.formats.kv_format(kv), context,
                      cal, ep=lay.ep, attn_dp=lay.attn_dp)


# ---------------- native FP4 (regression) ----------------

def test_nvfp4_on_b200_computes_at_the_fp4_tensor_rate() -> None:
    # B200 dense tensor rates (hardware table): FP4 9000, FP8 4500, BF16 2250 TFLOP/s. Before the fix the
    # format's compute path 'fp4' was looked up among the GPU's native *formats* (nvfp4, mxfp4), missed,
    # and fell back to BF16: nvfp4 prefill ran at 2250 TFLOP/s, slower than fp8.
    shape, warning = _shape("llama-3.1-70b", "b200", "nvfp4", tp=2)
    assert warning is None and shape.flops_w_peak == pytest.approx(9000e12)
    fp4 = perf("llama-3.1-70b", "b200", "nvfp4", tp=2, input_tokens=16384, output_tokens=1, tables=IDEAL_TABLES)
    fp8 = perf("llama-3.1-70b", "b200", "fp8", tp=2, input_tokens=16384, output_tokens=1, tables=IDEAL_TABLES)
    assert fp4.ttft_ms < fp8.ttft_ms


def test_mxfp4_native_only_where_the_gpu_runs_it() -> None:
    # MI355X lists mxfp4 (not nvfp4); H100 lists neither.
    assert _shape("gpt-oss-120b", "mi355x", "mxfp4")[0].flops_w_peak == pytest.approx(10066.3e12)
    shape, warning = _shape("gpt-oss-120b", "mi355x", "nvfp4")
    assert shape.flops_w_peak == pytest.approx(2516.6e12) and "not native" in warning
    assert _shape("gpt-oss-120b", "h100-sxm", "mxfp4")[0].flops_w_peak == pytest.approx(989.5e12)


# ---------------- hand-computed terms ----------------

def test_allreduce_alpha_beta_on_nvlink_matches_the_published_kernel() -> None:
    # nvlink4 row: α(n) = 3 + 1 · log2(n) µs → 6 µs at TP 8 (SGLang PR 2904: 5.9 µs for 512 B).
    row = load_links()["nvlink4"]
    assert alpha_s(row, 8) == pytest.approx(6e-6)
    # 1 MiB over 8 H100s (450 GB/s one way): η = 0.15 + 0.65 · 1/(1 + 16) = 0.18824;
    # 6 µs + 2 · 7/8 · 1,048,576 B / (450e9 · 0.18824) = 27.66 µs (PR 2904 measured 33.8 µs).
    size = 1_048_576
    eta = terms.link_efficiency(size, row.eta_small, row.eta_large, row.knee_mib * 2**20)
    assert eta == pytest.approx(0.15 + 0.65 / 17)
    t = terms.allreduce_s(size, 8, alpha_s(row, 8), 450e9, eta)
    assert t == pytest.approx(6e-6 + 1.75 * size / (450e9 * eta)) and t == pytest.approx(27.66e-6, rel=1e-3)
    assert terms.allreduce_s(size, 1, alpha_s(row, 1), 450e9, eta) == 0.0


def test_collective_latency_grows_with_group_and_is_worst_on_pcie() -> None:
    gpus = load_gpus()
    h100, l40s, mi300x = gpus.get("h100-sxm"), gpus.get("l40s"), gpus.get("mi300x")
    nv = [alpha_s(link_row(h100, n), n) for n in (2, 4, 8)]
    assert nv[0] < nv[1] < nv[2]
    assert alpha_s(link_row(l40s, 8), 8) > alpha_s(link_row(mi300x, 8), 8) > alpha_s(link_row(h100, 8), 8)
    # 8 × PCIe: 15 + 4 · 3 = 27 µs; 8 × MI300X xGMI: 8 + 2 · 3 = 14 µs.
    assert alpha_s(link_row(l40s, 8), 8) == pytest.approx(27e-6)
    assert alpha_s(link_row(mi300x, 8), 8) == pytest.approx(14e-6)


def test_layer_floor_of_deepseek_r1() -> None:
    # 61 layers (all MLA), 58 MoE: 61·20 + 58·40 + 61·25 µs = 5065 µs.
    assert terms.layer_floor_s(61, 58, 61, 20.0, 40.0, 25.0) == pytest.approx(5065e-6)


def test_moe_terms_by_hand() -> None:
    # DeepSeek: 256 experts, top-8. One token touches 8; 1000 tokens touch 256 · (1 − (31/32)^1000) ≈ 256.
    assert terms.experts_touched(256, 8, 1.0) == pytest.approx(8.0)
    assert terms.experts_touched(256, 8, 1000.0) == pytest.approx(256 * (1 - (31 / 32) ** 1000))
    assert terms.experts_touched(0, 0, 5.0) == 0.0
    # One token: 8 expert rows padded to a 64-row tile each → 512 rows; 4096 tokens: 32768 rows plus half a
    # tile per touched expert (the last tile's expected emptiness) = 32768 + 256 · 32 = 40960.
    assert terms.expert_gemm_rows(1.0, 8, 8.0, 64) == 512
    assert terms.expert_gemm_rows(4096.0, 8, 256.0, 64) == 40960
    # 8 experts over 8 EP ranks: mean 1, busiest 1 + √(2 ln 8) · √(7/8) = 2.907.
    assert terms.busiest_rank_experts(8.0, 256, 8) == pytest.approx(1 + math.sqrt(2 * math.log(8)) * math.sqrt(7 / 8))
    assert terms.busiest_rank_experts(8.0, 256, 1) == pytest.approx(8.0)


def test_attention_efficiency_and_chunks() -> None:
    assert terms.attention_efficiency(131072.0, 131072.0) == pytest.approx(0.5)
    assert terms.attention_efficiency(10**6, 0.0) == 1.0
    assert terms.prefill_chunks(8193.0, 8192.0) == 2 and terms.prefill_chunks(1.0, 8192.0) == 1


def test_deepseek_r1_batch1_on_8_gpus_has_the_published_per_layer_time() -> None:
    # Published batch-1 decode of DeepSeek-R1 on 8 GPUs runs 70–180 µs per layer (issue 8); the roofline alone
    # gave ~25 µs (all 37 B active parameters read in ~1.5 ms). vLLM rows of DeepSeek-R1 in the measured set
    # (gpustack, tenstorrent) are slower: the shipped vLLM calibration gives ~290 µs.
    for gpu, weights, engine in (("h200", "fp8", "sglang"), ("b200", "nvfp4", "trtllm"), ("h200", "fp8", "trtllm")):
        r = perf("deepseek-r1", gpu, weights, "fp8", tp=8, input_tokens=1024, output_tokens=1024, engine=engine)
        assert 70 <= r.tpot_ms * 1e3 / 61 <= 200, (gpu, r.tpot_ms)  # 70–180 µs published, +10 % for refits


def test_prefill_of_a_short_prompt_reads_the_touched_experts() -> None:
    # MoE weight-read floor: 16 prompt tokens of DeepSeek touch 256 · (1 − (31/32)^16) ≈ 102 distinct experts
    # per layer under uniform routing, ≈ 79 with the published routing skew (terms.experts_touched); prefill
    # cannot beat reading them once.
    s, _ = _shape("deepseek-r1", "h200", "fp8", tp=8)
    touched = float(terms.experts_touched(256, 8, 16.0, s.expert_load_cv))
    floor = (s.dense_bytes + touched * s.expert_bytes * s.moe_layers) / 8 / s.bw_peak
    assert prefill_s(s, None, 16) >= floor


def test_chunked_prefill_pays_a_step_per_chunk() -> None:
    cal = IDEAL.model_copy(update={"layer_us": 20.0, "chunk_tokens": 1024.0})
    s, _ = _shape("llama-3.1-8b", "h100-sxm", "bf16", cal=cal)
    # 32 layers · 20 µs per chunk: 4 chunks of 1024 cost at least 3 floors more than one chunk would, and at
    # most 3 floors plus 3 more reads of the weights (each chunk's weight stream overlaps its math imperfectly).
    one = prefill_s(s.__class__(**{**s.__dict__, "chunk_tokens": 4096.0}), None, 4096)
    four = prefill_s(s, None, 4096)
    floors = 3 * 32 * 20e-6
    assert floors * (1 - 1e-9) <= four - one <= floors + 3 * s.dense_bytes / s.bw_peak


def test_mixed_step_equals_decode_step_without_prefill_and_grows_with_it() -> None:
    s, _ = _shape("llama-3.1-70b", "h100-sxm", "fp8", tp=4, cal=IDEAL.model_copy(update={"layer_us": 20.0}))
    d = decode_step_s(s, np.array([32.0]))[0][0]
    assert mixed_step_s(s, 32.0, s.context, 0.0) == pytest.approx(d)
    assert mixed_step_s(s, 32.0, s.context, 512.0) > mixed_step_s(s, 32.0, s.context, 256.0) > d


# ---------------- expert parallelism ----------------

def test_attention_dp_removes_mla_kv_replication() -> None:
    # MLA's latent cache is replicated on every TP rank; with DP attention each rank keeps its own sequences,
    # so 8-way EP + DP attention holds far more sequences than TP 8 on the same GPUs.
    tp = perf("deepseek-r1", "h200", "fp8", "fp8", tp=8, input_tokens=2048, output_tokens=2048)
    ep = perf("deepseek-r1", "h200", "fp8", "fp8", tp=8, input_tokens=2048, output_tokens=2048, ep=8)
    assert (ep.ep, ep.attn_dp) == (8, 8)
    assert ep.max_batch > 3 * tp.max_batch
    assert ep.weights_gib_per_gpu > tp.weights_gib_per_gpu  # dense weights replicated per DP rank


def test_bad_ep_is_refused(gpuplan) -> None:
    with pytest.raises(InputError, match="does not divide the model's 8 routed experts"):
        perf("mixtral-8x7b", "h100-sxm", tp=6, ep=6)
    with pytest.raises(InputError, match="must divide --tp"):
        perf("mixtral-8x7b", "h100-sxm", tp=4, ep=8)
    r = gpuplan("perf", "--model", "deepseek-r1", "--gpu", "h200", "--tp", "8", "--ep", "3")
    assert r.code == 2 and "--ep 3" in r.err and "Traceback" not in r.err


MOE = ["mixtral-8x7b", "qwen3-30b-a3b", "deepseek-v3", "gpt-oss-120b", "qwen3-235b-a22b"]


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(MOE), st.sampled_from(["bf16", "fp8", "nvfp4"]),
       st.sampled_from([(1, 2), (2, 4), (4, 8), (2, 8)]))
def test_more_ep_never_more_expert_memory_per_gpu(model, fmt, eps) -> None:
    arch = resolve(model).arch
    wfmt = Tables().formats.weight(fmt)
    lo, hi = eps
    if arch.moe.num_experts % hi:
        return
    a, b = make_layout(arch, 8, lo), make_layout(arch, 8, hi)
    assert expert_bytes_per_gpu(arch, wfmt, b) <= expert_bytes_per_gpu(arch, wfmt, a) * (1 + 1e-12)
    assert weights_bytes_per_gpu(arch, wfmt, make_layout(arch, 8, hi, 1)) <= weights_bytes_per_gpu(arch, wfmt, b)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(MOE), st.sampled_from(["h100-sxm", "h200", "b200", "mi300x"]), st.sampled_from([1, 2, 4, 8]),
       st.integers(1, 1024), st.integers(1, 16384))
def test_step_time_with_ep_is_monotone_in_batch_and_respects_bandwidth(model, gpu, ep, batch, context) -> None:
    arch = resolve(model).arch
    if arch.moe.num_experts % ep:
        return
    s, _ = _shape(model, gpu, "fp8", tp=8, ep=ep, cal=Tables().calibration.lookup("vllm", gpu, "x"),
                  context=context)
    t = decode_step_s(s, np.array([batch, batch + 1, 2 * batch], dtype=float))[0]
    assert t[0] <= t[1] <= t[2]
    # Batch 1 can never beat reading one GPU's share of the dense weights at peak bandwidth.
    t1 = decode_step_s(s, np.array([1.0]))[0][0]
    assert t1 >= s.dense_bytes / (8 / s.attn_dp) / s.bw_peak


@pytest.mark.parametrize("lam", [0.05, 0.3, 0.75, 1.5, 5.0, 40.0])
def test_poisson_nodes_reproduce_the_first_two_moments(lam: float) -> None:
    # E[N] = λ and E[N²] = λ + λ² for N ~ Poisson(λ) (k = 0 contributes nothing to either); the exact nodes
    # drop a tail of P(N ≥ 4) < 0.7 % (folded into k = 3), the Gauss–Hermite rule is exact for both.
    from gpuplan.optimizer.serving.terms import poisson_weights

    k, w, _ = poisson_weights(np.array([lam]))
    assert float(np.sum(w * k)) == pytest.approx(lam, rel=0.02)
    assert float(np.sum(w * k**2)) == pytest.approx(lam + lam**2, rel=0.03)


def test_mla_prompts_attend_as_multi_head_attention() -> None:
    # DeepSeek-R1 (config.json: 128 heads, qk_nope 128, qk_rope 64, v 128, kv_lora_rank 512): prefill runs
    # MHA over decompressed K/V, 2·128·(128 + 64 + 128) = 81,920 FLOPs per query-key pair and layer, against
    # the absorbed decode form's 2·128·(2·512 + 64) = 278,528.
    shape, _ = _shape("deepseek-r1", "h200", "fp8", tp=8)
    assert shape.prefill_attn_ratio == pytest.approx(81_920 / 278_528)
    assert _shape("llama-3.1-8b", "h100-sxm", "bf16")[0].prefill_attn_ratio == 1.0
