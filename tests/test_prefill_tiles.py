"""The K/V streaming floor of small-tile prefill attention (prefill_tiles.py, terms.prefill_attention_rate_flops_s):
the tile is vLLM's unified Triton kernel's (BLOCK_M = 16 query rows, each program re-reading the prefix's K and V),
the floor is bandwidth × intensity, and it applies where, and only where, that kernel runs prompts: vLLM V1 on
ROCm from 0.9.1 to 0.18, models with standard (not MLA) attention."""

from __future__ import annotations

import numpy as np
import pytest
from gpuplan.models.catalog import resolve
from gpuplan.optimizer.serving import terms
from gpuplan.optimizer.serving.prefill_tiles import tile_block_m, tile_flops_per_byte, tile_query_rows
from gpuplan.optimizer.serving.roofline import prefill_s, step_terms_s
from gpuplan.optimizer.serving.shape import make_shape, with_calibration
from gpuplan.optimizer.tables import Tables
from hypothesis import given, settings
from hypothesis import strategies as st


def test_tile_rows_by_hand() -> None:
    # vllm/v1/attention/ops/triton_unified_attention.py: BLOCK_M = 16 if g <= 16 else next_power_of_2(g),
    # BLOCK_Q = BLOCK_M // g. Llama-3.1-70B at TP 8: 64 / 8 = 8 query heads and 8 / 8 = 1 KV head per GPU,
    # g = 8: 2 tokens x 8 heads = 16 rows; g = 7 (Qwen2.5-7B, 28 / 4): 2 x 7 = 14; g = 32: BLOCK_M 32, 1 token.
    assert tile_query_rows(16, 8) == 16
    assert tile_query_rows(16, 7) == 14
    assert tile_query_rows(16, 1) == 16
    assert tile_query_rows(16, 32) == 32
    assert tile_query_rows(16, 20) == 20  # BLOCK_M 32, BLOCK_Q 1
    # Per key: K and V, 2 x 128 x 2 bytes at 16 bits; QK^T and PV for 16 rows, 4 x 128 x 16 FLOPs: 16 FLOP/B.
    assert tile_flops_per_byte(16, 2.0) == pytest.approx(4 * 128 * 16 / (2 * 128 * 2))
    assert tile_flops_per_byte(16, 1.0) == pytest.approx(32.0)  # FP8 KV cache: half the bytes


def test_the_rate_on_mi355x_by_hand() -> None:
    # AMD Instinct MI355X data sheet: 8 TB/s HBM3E, 2,516.6 dense BF16 TFLOP/s. 16 FLOP/B x 8 TB/s = 128 TFLOP/s,
    # below 2,516.6 x any eta above 0.051; with no tile (0) the compute rate stands.
    assert float(terms.prefill_attention_rate_flops_s(2516.6e12, 0.43, 16.0, 8.0e12)) == pytest.approx(128e12)
    assert float(terms.prefill_attention_rate_flops_s(2516.6e12, 0.43, 0.0, 8.0e12)) == pytest.approx(2516.6e12 * 0.43)
    assert float(terms.prefill_attention_rate_flops_s(2516.6e12, 0.04, 16.0, 8.0e12)) == pytest.approx(2516.6e12 * 0.04)


def test_which_engines_run_the_small_tile() -> None:
    assert tile_block_m("vllm", "AMD", "0.15.1") == 16
    assert tile_block_m("vllm", "amd", "0.9.1") == 16
    assert tile_block_m("vllm", "amd", "0.19.0") == 0  # ROCM_ATTN default from 0.19 (vllm-omni PR 2340)
    assert tile_block_m("vllm", "amd", "0.7.3") == 0  # V0: Triton / CK flash attention
    assert tile_block_m("vllm", "amd", None) == 0
    assert tile_block_m("vllm", "nvidia", "0.15.1") == 0  # FlashAttention on CUDA
    assert tile_block_m("sglang", "amd", "0.5.9") == 0


def _prefill_ms(model: str, gpu: str, version: str | None, tokens: int, kv: str = "bf16") -> float:
    t = Tables()
    g = t.gpus.get(gpu)
    cal = t.calibration.lookup("vllm", g.id, g.vendor, g.arch, version)
    s, _ = make_shape(resolve(model).arch, g, 8, t.formats.weight("fp8"), t.formats.kv_format(kv), tokens, cal,
                      version=version)
    return 1e3 * float(prefill_s(s, None, float(tokens)))


def test_llama_70b_long_prompt_on_mi355x_by_hand() -> None:
    # Llama-3.1-70B: 80 layers, 64 heads x 128. A 65,536-token prompt's causal attention: 4 x 64 x 128 x 80 x
    # I^2 / 2 = 5.63e15 FLOPs, 7.04e14 per GPU at TP 8. At 128 TFLOP/s (16 FLOP/B x 8 TB/s): 5.50 s; the
    # compute path it replaces: 7.04e14 / (2,516.6e12 x eta_prefill). llm-d's MI355X sweep measured 9.09 s mean
    # TTFT at 2 clients (both prompts queue), 7,959 total tok/s: about 8.2 s of GPU time per prompt.
    t = Tables()
    g = t.gpus.get("mi355x")
    eta = t.calibration.lookup("vllm", g.id, g.vendor, g.arch, "0.15.1").eta_prefill
    flops = 4 * 64 * 128 * 80 * 65536**2 / 2 / 8
    streamed, compute = flops / 128e12, flops / (2516.6e12 * eta)
    assert streamed == pytest.approx(5.50, abs=0.01)
    extra = _prefill_ms("llama-3.1-70b", "mi355x", "0.15.1", 65536) - _prefill_ms("llama-3.1-70b", "mi355x",
                                                                                   "0.19.0", 65536)
    assert extra == pytest.approx(1e3 * (streamed - compute), rel=1e-3)
    # the FP8 KV cache halves the bytes each tile streams
    fp8 = _prefill_ms("llama-3.1-70b", "mi355x", "0.15.1", 65536, "fp8")
    assert fp8 < _prefill_ms("llama-3.1-70b", "mi355x", "0.15.1", 65536)


def test_decode_steps_and_mla_models_keep_their_terms() -> None:
    t = Tables()
    g = t.gpus.get("mi300x")
    cal = t.calibration.lookup("vllm", g.id, g.vendor, g.arch, "0.15.1")
    shapes = {m: make_shape(resolve(m).arch, g, 8, t.formats.weight("fp8"), t.formats.kv_format("bf16"), 4096,
                            cal, version="0.15.1")[0] for m in ("llama-3.1-70b", "deepseek-r1")}
    assert shapes["deepseek-r1"].prefill_tile_flops_per_byte == 0.0  # MLA prefill: TRITON_MLA's kernels
    llama = shapes["llama-3.1-70b"]
    assert llama.prefill_tile_flops_per_byte == pytest.approx(16.0)
    flash = with_calibration(llama, prefill_tile_flops_per_byte=0.0)
    # decodes only: no prompt tokens, the same attention; with a prompt chunk the small tile costs more
    assert float(step_terms_s(llama, 64.0)["attention"]) == pytest.approx(float(step_terms_s(flash, 64.0)["attention"]))
    assert float(step_terms_s(llama, 64.0, 2048.0, 8192.0)["attention"]) > float(
        step_terms_s(flash, 64.0, 2048.0, 8192.0)["attention"])


@settings(max_examples=30, deadline=None)
@given(st.floats(min_value=1e12, max_value=1e16), st.floats(min_value=0.01, max_value=1.0),
       st.floats(min_value=0.0, max_value=1e3), st.floats(min_value=1e11, max_value=2e13))
def test_the_floor_never_speeds_prefill(peak: float, eta: float, tile: float, bw: float) -> None:
    rate = float(terms.prefill_attention_rate_flops_s(peak, eta, tile, bw))
    assert rate <= peak * eta * (1 + 1e-12)
    assert rate > 0
    assert np.isfinite(rate)
