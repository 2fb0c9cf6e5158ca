"""Host-bound eager prompt steps (prompt_host.csv): SGLang, and TensorRT-LLM before 1.0 for MLA models, run steps
that carry prompt tokens as eager PyTorch, so such a step takes max(GPU time, host time). NVIDIA's TensorRT-LLM 0.21
perf overview (docs/source/performance/perf-overview.md) times DeepSeek-R1's batch-1 TTFT at 1,600 prompt tokens
at 165 ms on 8 × H200 (FP8) and 161 ms on 8 × B200 (NVFP4), although the B200 has 1.7× the H200's bandwidth."""

from __future__ import annotations

import numpy as np
import pytest
from gpuplan.models.catalog import resolve
from gpuplan.optimizer.serving.calibration import CalibrationRow
from gpuplan.optimizer.serving.prompt_host import prompt_host_s, quantised_activations
from gpuplan.optimizer.serving.roofline import STEP_TERMS, prefill_s, step_terms_s
from gpuplan.optimizer.serving.shape import compute_path, make_shape
from gpuplan.optimizer.tables import Tables
from hypothesis import given, settings
from hypothesis import strategies as st

T = Tables()
DSR1 = resolve("deepseek-r1").arch  # 61 layers, 58 MoE (3 dense first), MLA in every layer
# The per-layer host times of prompt_host.csv (SGLang's row; TensorRT-LLM < 1.0 the same for MLA models), µs.
DENSE_US, MOE_US, MLA_US, QUANTISED = 216.0, 432.0, 270.0, 2.5
DSR1_HOST_S = (61 * DENSE_US + 58 * MOE_US + 61 * MLA_US) * 1e-6  # 54.702 ms before the quantised factor


def _cal(engine: str) -> CalibrationRow:
    return CalibrationRow(engine=engine, gpu="*", eta_mem=0.75, eta_cmp=0.55, eta_prefill=0.55, t_fixed_ms=0.3,
                          comm_latency_us=2.0, runtime_overhead_gib=1.0, mem_util=0.9, seq_us=8.0, layer_us=20.0,
                          moe_layer_us=40.0, mla_layer_us=25.0, eager_floor_scale=6.0, source="test",
                          as_of="2026-01-01")


def _shape(engine: str, version: str | None, weights: str = "fp8", gpu: str = "b200", model: str = "deepseek-r1"):
    arch = resolve(model).arch
    s, _ = make_shape(arch, T.gpus.get(gpu), 8, T.formats.weight(weights), T.formats.kv_format("bf16"), 1000.0,
                      _cal(engine), version=version)
    return s


def test_deepseek_r1_host_time_by_hand() -> None:
    # FP8 block-scaled checkpoint computing in FP8 on a B200: (61·216 + 58·432 + 61·270) µs · 2.5 = 136.8 ms.
    compute, _ = compute_path(T.gpus.get("b200"), T.formats.weight("fp8"))
    assert quantised_activations(DSR1, "fp8", compute)
    assert prompt_host_s(DSR1, "sglang", "0.5.12", "fp8", compute) == pytest.approx(DSR1_HOST_S * QUANTISED)
    assert prompt_host_s(DSR1, "trtllm", "0.21.0rc2", "nvfp4", "fp4") == pytest.approx(DSR1_HOST_S * QUANTISED)
    # 16-bit weights quantise no activations: the per-layer times alone; nor do NVFP4 weights dequantised on a
    # GPU without FP4 (an H200 computes them in BF16).
    assert prompt_host_s(DSR1, "sglang", None, "bf16", "bf16") == pytest.approx(DSR1_HOST_S)
    assert not quantised_activations(DSR1, "nvfp4", compute_path(T.gpus.get("h200"), T.formats.weight("nvfp4"))[0])


def test_qwen3_moe_without_mla_by_hand() -> None:
    # Qwen3-235B-A22B: 94 layers, all MoE, GQA: 94 · (216 + 432) µs = 60.9 ms in BF16.
    arch = resolve("qwen3-235b-a22b").arch
    assert prompt_host_s(arch, "sglang", "0.5.6", "bf16", "bf16") == pytest.approx(94 * 648e-6)


@pytest.mark.parametrize(("engine", "version", "model"), [
    ("vllm", None, "deepseek-r1"),  # V1 compiles the forward: no eager prompt floor
    ("vllm", "0.9.2", "deepseek-r1"),
    ("trtllm", None, "deepseek-r1"),  # 1.0 and later: not modelled (prompt_host.csv)
    ("trtllm", "1.2.0rc6", "deepseek-r1"),
    ("trtllm", "0.21.0rc2", "llama-3.1-8b"),  # TensorRT engines before 1.0: MLA models only ran eagerly
])
def test_engines_without_an_eager_prompt_floor(engine: str, version: str | None, model: str) -> None:
    assert prompt_host_s(resolve(model).arch, engine, version, "fp8", "fp8") == 0.0


def test_short_prompt_step_is_the_host_time() -> None:
    # 1,600 prompt tokens of DeepSeek-R1 on 8 × B200 take less GPU time than the host's 136.8 ms: the step is
    # the host time plus the engine's per-step and per-sequence time (0.3 ms + 8 µs).
    s = _shape("sglang", "0.5.12")
    t = step_terms_s(s, 0.0, 1600.0)
    graphed = sum(float(t[k]) for k in STEP_TERMS[:-1])
    assert graphed < DSR1_HOST_S * QUANTISED
    assert float(t["step"]) == pytest.approx(DSR1_HOST_S * QUANTISED + 0.3e-3 + 8e-6, rel=1e-9)
    # vLLM's prompt step of the same size is the roofline with eager floors, well below.
    assert float(step_terms_s(_shape("vllm", None), 0.0, 1600.0)["step"]) < 0.5 * float(t["step"])


def test_batch1_ttft_hardly_grows_with_the_prompt() -> None:
    # NVIDIA's rows: 161 ms at 1,600 tokens on 8 × B200. The modelled prompt GPU time stays under the host time
    # up to a few thousand tokens, so the prefill time of 600 and 1,600 tokens is the same.
    s = _shape("sglang", "0.5.12", weights="nvfp4")
    assert prefill_s(s, input_tokens=600.0) == pytest.approx(prefill_s(s, input_tokens=1600.0), rel=1e-9)


def test_decode_steps_keep_their_graphs() -> None:
    s = _shape("sglang", "0.5.12")
    assert float(step_terms_s(s, 1.0)["host_bound"]) == 0.0
    assert float(step_terms_s(s, 64.0)["host_bound"]) == 0.0


def test_long_prompt_hides_the_host() -> None:
    # 16,384 prompt tokens of DeepSeek-R1 on 8 × H100 take longer on the GPU than 136.8 ms: nothing to add.
    s = _shape("sglang", "0.5.12", gpu="h100-sxm")
    t = step_terms_s(s, 0.0, 16384.0)
    assert float(t["host_bound"]) == 0.0


@settings(max_examples=30, deadline=None)
@given(st.floats(1.0, 32768.0), st.floats(0.0, 256.0))
def test_prompt_step_is_the_max_of_gpu_and_host(prompt: float, batch: float) -> None:
    s = _shape("sglang", "0.5.12")
    t = step_terms_s(s, batch, prompt)
    graphed = sum(float(t[k]) for k in STEP_TERMS[:-1])
    assert float(t["step"]) == pytest.approx(max(graphed, s.prompt_host_s + float(t["host"])), rel=1e-9)
    assert np.isfinite(float(t["step"]))
