"""The measured throughput ceiling of the Triton FP8 fused-MoE kernel (kernels.csv triton_fp8_fused_moe_eta):
the constant is the published marginal rate, the step model's expert phase reproduces the published kernel
times with it, and it applies where, and only where, that kernel runs."""

from __future__ import annotations

import pytest
from gpuplan.models.catalog import resolve
from gpuplan.optimizer.serving import terms
from gpuplan.optimizer.serving.calibration import CalibrationRow
from gpuplan.optimizer.serving.kernels import kernel_constant
from gpuplan.optimizer.serving.layout import make_layout
from gpuplan.optimizer.serving.roofline import prefill_s, step_terms_s
from gpuplan.optimizer.serving.shape import make_shape, with_calibration
from gpuplan.optimizer.tables import Tables

# vllm-project/vllm pull request 24700 (2025-09-11), H100 80GB HBM3, benchmarks/kernels/benchmark_moe.py
# --model=Qwen/Qwen3-30B-A3B -tp=1 --dtype=fp8_w8a8, 'Main' kernel times (us) by batch size.
QWEN3_KERNEL_US = {1024: 536.33, 2048: 911.64, 4096: 1647.57}
# Qwen3-30B-A3B: 128 experts, top-8, hidden 2048, expert intermediate 768 (gate, up and down projections).
E, TOP_K, HIDDEN, COLS = 128, 8, 2048, 768
EXPERT_PARAMS = 3 * HIDDEN * COLS  # 4,718,592 weights, one byte each in FP8
H100_FP8_FLOPS, H100_BW = 1979e12, 3350e9  # dense FP8 tensor peak, HBM3 bandwidth (hardware/gpus.csv)


def test_the_constant_is_the_published_marginal_rate() -> None:
    # 2048 more tokens add 2048 x 8 rows x 2 x 4.72 M FLOPs = 154.6 GFLOP in 1647.57 - 911.64 = 735.93 us:
    # 210.1 TFLOPS = 0.106 of 1,979.
    flops = 2048 * TOP_K * 2 * EXPERT_PARAMS
    rate = flops / ((QWEN3_KERNEL_US[4096] - QWEN3_KERNEL_US[2048]) * 1e-6)
    assert rate == pytest.approx(210.1e12, rel=0.002)
    assert kernel_constant("triton_fp8_fused_moe_eta") == pytest.approx(rate / H100_FP8_FLOPS, abs=0.001)


@pytest.mark.parametrize("tokens", sorted(QWEN3_KERNEL_US))
def test_expert_phase_reproduces_the_published_kernel_times(tokens: int) -> None:
    # The step model's expert phase for one MoE layer: read the touched experts (0.75 of peak bandwidth, the
    # vLLM default eta_mem, times the 768-column slice efficiency 768 / 810) overlapped (p = 3) with the
    # padded grouped-GEMM rows (16-row tiles) at the kernel's ceiling. At 4096 tokens: 33,792 rows x 9.44 MFLOP
    # = 318.9 GFLOP / 209.8 TFLOPS = 1,520 us; 604 MB / 2.38 TB/s = 254 us; overlapped 1,527 us (-7 %).
    # At 1024 tokens: 444 us (-17 %); at the other published sizes from 64 to 3072 tokens -4 to -25 %. Without
    # the ceiling (eta_prefill x eta_moe = 0.55 x 0.75) it is 2-4x too fast from 1024 tokens on.
    eta_k = kernel_constant("triton_fp8_fused_moe_eta")
    touched = terms.experts_touched(E, TOP_K, float(tokens))
    rows = terms.expert_gemm_rows(float(tokens), TOP_K, touched, 16.0)
    read_s = touched * EXPERT_PARAMS / (H100_BW * 0.75 * terms.expert_slice_efficiency(COLS, 42.0))
    flops = rows * 2 * EXPERT_PARAMS
    capped = terms.overlapped_s(read_s, flops / (H100_FP8_FLOPS * eta_k), 3.0)
    uncapped = terms.overlapped_s(read_s, flops / (H100_FP8_FLOPS * 0.55 * 0.75), 3.0)
    measured = QWEN3_KERNEL_US[tokens] * 1e-6
    assert capped == pytest.approx(measured, rel=0.2)
    assert uncapped < measured / 1.9


def _shape(engine: str, gpu: str = "h200", weights: str = "fp8", model: str = "deepseek-r1", tp: int = 8,
           ep: int = 1, attn_dp: int | None = None):
    t = Tables()
    m = resolve(model)
    lay = make_layout(m.arch, tp, ep, attn_dp)
    g = t.gpus.get(gpu)
    cal: CalibrationRow = t.calibration.lookup(engine, g.id, g.vendor, g.arch, None)
    s, _ = make_shape(m.arch, g, tp, t.formats.weight(weights), t.formats.kv_format("bf16"), 4096, cal,
                      ep=lay.ep, attn_dp=lay.attn_dp)
    return s


def test_the_ceiling_applies_only_on_the_triton_fp8_path() -> None:
    eta_k = kernel_constant("triton_fp8_fused_moe_eta")
    # vLLM and SGLang run DeepSeek-R1's TP-sharded FP8 experts through the Triton kernel on Hopper.
    assert _shape("vllm").moe_kernel_eta == eta_k
    assert _shape("sglang", gpu="h100-sxm", tp=8).moe_kernel_eta == eta_k
    # TensorRT-LLM's CUTLASS MoE, DP attention + EP (DeepEP / DeepGEMM), Blackwell, AMD, BF16 and dense models
    # are not that kernel.
    assert _shape("trtllm").moe_kernel_eta == 1.0
    assert _shape("sglang", ep=8, attn_dp=8).moe_kernel_eta == 1.0
    assert _shape("sglang", gpu="b200").moe_kernel_eta == 1.0
    assert _shape("vllm", gpu="mi300x").moe_kernel_eta == 1.0
    assert _shape("vllm", model="mixtral-8x7b", weights="bf16", tp=2).moe_kernel_eta == 1.0
    assert _shape("vllm", model="llama-3.1-70b", tp=4).moe_kernel_eta == 1.0
    assert terms.triton_fused_moe_path("vllm", "NVIDIA", "Hopper (GH100)", "fp8", 1)
    assert not terms.triton_fused_moe_path("vllm", "NVIDIA", "Hopper (GH100)", "fp8", 8)


def test_prefill_slows_where_the_kernel_binds_and_batch_one_decode_does_not_move() -> None:
    s = _shape("vllm")
    free = with_calibration(s, moe_kernel_eta=1.0)
    # An 8192-token DeepSeek-R1 prompt on 8 x H200: the routed experts' 8192 x 8 rows x 2 x 3 x 7168 x 256
    # FLOPs per GPU and layer run at 0.106 of the FP8 peak instead of eta_prefill x eta_moe (~0.38): the
    # prompt takes over 1.45x longer (1.5x before the token-copy traffic, ~39 ms that no kernel ceiling moves,
    # joined both sides: test_prefill_terms).
    assert prefill_s(s, None, 8192.0) > 1.45 * prefill_s(free, None, 8192.0)
    # Batch-1 decode reads the 8 touched experts (memory-bound): within 0.1 %.
    assert float(step_terms_s(s, 1.0)["step"]) == pytest.approx(float(step_terms_s(free, 1.0)["step"]), rel=1e-3)
