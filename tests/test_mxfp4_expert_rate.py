"""MXFP4 experts with 8-bit or 16-bit activations (gpt-oss's checkpoint) never run at the E2M1 x E2M1 FP4 rate:
the engines' default MoE kernels on Blackwell compute them at the FP8 rate at best (terms.mxfp4_expert_compute),
while the format's own path (and so the rest of the step) is unchanged. Expected figures by hand from the
published config.json and NVIDIA's B200 rates (HGX B200: 4,500 dense FP8 TFLOPS, 9,000 dense FP4)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from gpuplan.models.catalog import resolve
from gpuplan.optimizer.serving import terms
from gpuplan.optimizer.serving.roofline import step_terms_s
from gpuplan.optimizer.serving.shape import make_shape
from gpuplan.optimizer.tables import Tables

B200_FP8_FLOPS = 4500e12
B200_FP4_FLOPS = 9000e12
# gpt-oss-120b config.json: hidden 2880, intermediate 2880 (gate and up fused: 2 x 2880 rows, down 2880), 36 layers.
EXPERT_FLOPS_PER_ROW = 2 * (2880 * 2 * 2880 + 2880 * 2880) * 36


def _shape(engine: str, gpu: str, weights: str = "mxfp4", model: str = "gpt-oss-120b"):
    t = Tables()
    g = t.gpus.get(gpu)
    cal = t.calibration.lookup(engine, g.id, g.vendor, g.arch, None)
    s, _ = make_shape(resolve(model).arch, g, 1, t.formats.weight(weights), t.formats.kv_format("bf16"), 2048, cal)
    return s


def test_the_engines_default_paths() -> None:
    assert {e: terms.mxfp4_expert_compute(e) for e in ("sglang", "vllm", "trtllm")} == dict.fromkeys(
        ("sglang", "vllm", "trtllm"), "fp8")
    assert terms.mxfp4_expert_compute("llama.cpp") == ""  # its own kernels: not measured, the format's path stands


def test_only_mxfp4_experts_on_a_native_gpu_move() -> None:
    for engine in ("sglang", "vllm", "trtllm"):
        s = _shape(engine, "b200")
        assert s.flops_w_peak == B200_FP4_FLOPS  # lm_head and router GEMMs keep the format's path
        assert s.flops_expert_peak == B200_FP8_FLOPS
    assert _shape("vllm", "h100-sxm").flops_expert_peak == 0.0  # Hopper: weight-only, BF16 already
    assert _shape("sglang", "b200", "nvfp4", "deepseek-r1").flops_expert_peak == 0.0  # NVFP4 W4A4: the FP4 rate
    assert _shape("vllm", "b200", "bf16").flops_expert_peak == 0.0


def test_prefill_expert_compute_by_hand() -> None:
    # 8,192 prompt tokens on one B200: every one of the 128 experts is touched, each expert's rows are padded to
    # the calibration's grouped-GEMM tile, rows = max(T k + E M / 2, E M); the expert GEMMs' time at the FP8 rate
    # is twice the FP4 rate's, and nothing else in the step changes.
    s = _shape("vllm", "b200")
    tokens = 8192.0
    rows = max(tokens * 4 + 128 * s.gemm_tile_m / 2, 128 * s.gemm_tile_m)
    assert s.expert_flops_per_row == pytest.approx(EXPERT_FLOPS_PER_ROW, rel=1e-9)
    eta = min(s.eta_prefill * s.eta_moe, s.moe_kernel_eta)
    expert_fp8_s = rows * EXPERT_FLOPS_PER_ROW / (B200_FP8_FLOPS * eta)
    fp4 = step_terms_s(replace(s, flops_expert_peak=0.0), 0.0, tokens)["gemm_compute"]
    fp8 = step_terms_s(s, 0.0, tokens)["gemm_compute"]
    assert float(fp8 - fp4) == pytest.approx(expert_fp8_s / 2, rel=1e-3)
    assert expert_fp8_s == pytest.approx(33_792 * 1.7916e9 / (4.5e15 * eta), rel=1e-3)  # ~6.05e13 FLOP
