"""The measured fixed time per MoE layer of the TRTLLM-Gen FP4 MoE kernels (kernels.csv
trtllm_gen_fp4_moe_fixed_us): the constant is the published 1-token MoE module time less its expert reads, it
replaces the fitted τ_moe where, and only where, an engine runs those kernels by default (on data-centre Blackwell:
SGLang with FP4 experts, vLLM with MXFP4 experts), and the step's floors add up by hand."""

from __future__ import annotations

import pytest
from gpuplan.models.catalog import resolve
from gpuplan.optimizer.serving import terms
from gpuplan.optimizer.serving.kernels import kernel_constant
from gpuplan.optimizer.serving.layout import make_layout
from gpuplan.optimizer.serving.roofline import step_terms_s
from gpuplan.optimizer.serving.shape import make_shape
from gpuplan.optimizer.tables import Tables

# NVIDIA/TensorRT-LLM blog24 'MoE as Dense GEMM', table 'Per-Rank MoE Module Latency': DeepSeek-V3 NVFP4
# routed MoE, TP8, one B200 rank, TRTLLM-Gen grouped GEMM at 1 token.
MODULE_1_TOKEN_US = 26.78
# One rank's slice of one expert: gate, up and down projections of 7168 x (2048 / 8) NVFP4 weights (half a byte
# each) plus one E4M3 scale per 16 weights.
SLICE_BYTES = 3 * 7168 * 256 * (0.5 + 1 / 16)
B200_READ_BYTES_S = 6.0e12  # what the same table's 64- and 128-token rows reach (5.9 and 5.7 TB/s grouped)


def _shape(engine: str, gpu: str, weights: str, model: str = "deepseek-r1", tp: int = 8):
    t = Tables()
    m = resolve(model)
    lay = make_layout(m.arch, tp, 1, None)
    g = t.gpus.get(gpu)
    cal = t.calibration.lookup(engine, g.id, g.vendor, g.arch, None)
    s, _ = make_shape(m.arch, g, tp, t.formats.weight(weights), t.formats.kv_format("bf16"), 2048, cal,
                      ep=lay.ep, attn_dp=lay.attn_dp)
    return s, cal, m.arch


def test_the_constant_is_the_published_module_time_less_its_expert_reads() -> None:
    # 8 routed experts x 3.08 MB = 24.7 MB at 6 TB/s = 4.1 us; 26.78 - 4.1 = 22.7 us, recorded as ~24.
    read_us = 8 * SLICE_BYTES / B200_READ_BYTES_S * 1e6
    assert read_us == pytest.approx(4.1, abs=0.1)
    assert kernel_constant("trtllm_gen_fp4_moe_fixed_us") == pytest.approx(MODULE_1_TOKEN_US - read_us, abs=1.5)


def test_the_kernel_path() -> None:
    # SGLang's default MoE runner on SM100 for FP4 experts (flashinfer_trtllm, flashinfer_mxfp4).
    assert terms.trtllm_gen_fp4_moe("sglang", "NVIDIA", "Blackwell (GB100, 2 dies)", "fp4")
    assert terms.trtllm_gen_fp4_moe("sglang", "NVIDIA", "Blackwell Ultra (2 dies)", "fp4")
    assert not terms.trtllm_gen_fp4_moe("sglang", "NVIDIA", "Blackwell (GB202)", "fp4")  # consumer die
    assert not terms.trtllm_gen_fp4_moe("sglang", "NVIDIA", "Blackwell (GB100, 2 dies)", "fp8")
    assert not terms.trtllm_gen_fp4_moe("sglang", "NVIDIA", "Hopper (GH100)", "fp8")
    assert not terms.trtllm_gen_fp4_moe("sglang", "AMD", "CDNA 3 (MI300X)", "fp8")
    # TensorRT-LLM's MoE backend defaulted to CUTLASS; vLLM's nvfp4 MoE runs its own CUTLASS kernel by default.
    assert not terms.trtllm_gen_fp4_moe("trtllm", "NVIDIA", "Blackwell (GB100, 2 dies)", "fp4", "mxfp4")
    assert not terms.trtllm_gen_fp4_moe("vllm", "NVIDIA", "Blackwell (GB100, 2 dies)", "fp4", "nvfp4")
    # vLLM's mxfp4.py picks SM100_FI_MXFP4_BF16 (FlashInfer TRTLLM-Gen MXFP4 MoE) on SM100 by default.
    assert terms.trtllm_gen_fp4_moe("vllm", "NVIDIA", "Blackwell (GB100, 2 dies)", "fp4", "mxfp4")
    assert not terms.trtllm_gen_fp4_moe("vllm", "NVIDIA", "Hopper (GH100)", "bf16", "mxfp4")  # triton_kernels


def test_it_replaces_the_fitted_moe_floor_only_on_that_path() -> None:
    fixed = kernel_constant("trtllm_gen_fp4_moe_fixed_us")
    assert _shape("sglang", "b200", "nvfp4")[0].moe_kernel_floor_us == fixed
    assert _shape("sglang", "b200", "mxfp4", model="gpt-oss-120b", tp=4)[0].moe_kernel_floor_us == fixed
    assert _shape("sglang", "b200", "fp8")[0].moe_kernel_floor_us == 0.0  # FP8 experts: not the measured kernel
    assert _shape("sglang", "h200", "fp8")[0].moe_kernel_floor_us == 0.0
    assert _shape("sglang", "b200", "nvfp4", model="llama-3.1-70b")[0].moe_kernel_floor_us == 0.0  # no experts
    assert _shape("trtllm", "b200", "nvfp4")[0].moe_kernel_floor_us == 0.0
    assert _shape("vllm", "b200", "nvfp4")[0].moe_kernel_floor_us == 0.0
    assert _shape("vllm", "b200", "mxfp4", model="gpt-oss-120b", tp=1)[0].moe_kernel_floor_us == fixed
    assert _shape("vllm", "h200", "mxfp4", model="gpt-oss-120b", tp=1)[0].moe_kernel_floor_us == 0.0


def test_gpt_oss_120b_on_one_b200_with_vllm_floors_by_hand() -> None:
    # gpt-oss-120b: 36 layers, every one MoE (config.json num_hidden_layers 36, num_local_experts 128); vLLM's
    # default SM100 MXFP4 backend is the TRTLLM-Gen kernel, so each MoE layer pays its measured 24 us, not tau_moe.
    s, cal, arch = _shape("vllm", "b200", "mxfp4", model="gpt-oss-120b", tp=1)
    assert (arch.layers, sum(arch.moe_layers), arch.mla) == (36, 36, None)
    expected_us = 36 * cal.layer_us + 36 * 24.0
    assert float(step_terms_s(s, 1.0)["layer_floors"]) == pytest.approx(expected_us * 1e-6, rel=1e-9)


def test_batch_1_floors_of_deepseek_r1_on_8_b200_by_hand() -> None:
    # 61 layers pay tau_layer and tau_mla, the 58 MoE layers the kernel's 24 us instead of the fitted tau_moe.
    s, cal, arch = _shape("sglang", "b200", "nvfp4")
    assert (arch.layers, sum(arch.moe_layers)) == (61, 58)
    floors = step_terms_s(s, 1.0)["layer_floors"]
    expected_us = 61 * cal.layer_us + 58 * 24.0 + 61 * cal.mla_layer_us
    assert float(floors) == pytest.approx(expected_us * 1e-6, rel=1e-9)
    # The same deployment in FP8 keeps the fitted tau_moe, which is above the kernel's measured fixed time.
    s8, _, _ = _shape("sglang", "b200", "fp8")
    assert float(step_terms_s(s8, 1.0)["layer_floors"]) == pytest.approx(
        (61 * cal.layer_us + 58 * cal.moe_layer_us + 61 * cal.mla_layer_us) * 1e-6, rel=1e-9)
    assert cal.moe_layer_us > 24.0
