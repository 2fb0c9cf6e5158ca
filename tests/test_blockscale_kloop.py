"""The K-loop floor of block-scale FP8 GEMMs on ROCm (blockscale.py, terms.blockscale_kloop_s): the block steps
are counted by hand from the checkpoints' shapes, the constant is the published untuned kernel time over its block
steps, and the term applies where, and only where, block-scaled FP8 linear layers run on an AMD GPU."""

from __future__ import annotations

import math

import pytest
from gpuplan.models.catalog import resolve
from gpuplan.optimizer.serving import terms
from gpuplan.optimizer.serving.blockscale import block_scaled_fp8, kblocks_per_step
from gpuplan.optimizer.serving.roofline import step_terms_s
from gpuplan.optimizer.serving.shape import make_shape
from gpuplan.optimizer.tables import Tables
from hypothesis import given, settings
from hypothesis import strategies as st

# ROCm/aiter pull request 1232 (2025-10-21): Triton gemm_a8w8_blockscale, default config, M = 64 / 128 / 256,
# N = 2112, K = 7168 (DeepSeek's fused q_a + kv_a projection): 0.128799 / 0.127317 / 0.117496 ms.
UNTUNED_US = (128.799, 127.317, 117.496)


def test_deepseek_block_steps_by_hand() -> None:
    # DeepSeek-R1 config.json: hidden 7168, q_lora_rank 1536, 128 heads x v_head_dim 128, shared expert and MoE
    # intermediate 2048, dense intermediate 18432, 61 layers of which the first 3 dense. TP 8, 128-wide K blocks:
    # attention q_a + kv_a (K 7168) 56, q_b (1536) 12, o (16384 / 8) 16; shared expert gate_up 56 + down
    # (2048 / 8 = 256) 2; dense gate_up 56 + down (18432 / 8 = 2304) 18.
    per_layer_attn = 7168 // 128 + 1536 // 128 + 16384 // 8 // 128
    by_hand = 61 * per_layer_attn + 58 * (56 + 2) + 3 * (56 + 18)
    assert by_hand == 8710
    assert kblocks_per_step(resolve("deepseek-r1").arch, 8, 8) == by_hand


def test_minimax_block_steps_by_hand() -> None:
    # MiniMax-M2.5: hidden 3072, 48 query heads x 128 = 6144, 62 layers, experts in the fused MoE kernel (not
    # counted). TP 4: fused q/k/v (K 3072) 24, o (6144 / 4 = 1536) 12.
    assert kblocks_per_step(resolve("minimax-m2.5").arch, 4, 4) == 62 * (24 + 12)


def test_the_constant_is_the_untuned_kernel_time_per_block_step() -> None:
    # 56 block steps of K = 7168 take 117-129 us whatever M up to 256: 2.1-2.3 us each, recorded as 2.3 for the
    # default-config (untuned) kernels; the kernel's bytes (2112 x 7168 FP8 = 15.1 MB) at 5.3 TB/s take 2.9 us.
    steps = 7168 / 128
    per_step = [t / steps for t in UNTUNED_US]
    assert max(per_step) == pytest.approx(2.3, abs=0.01)
    assert min(per_step) > 2.0
    t = Tables()
    cal = t.calibration.lookup("sglang", "mi300x", "amd", "", "0.4.2")
    assert cal.blockfp8_kblock_us == pytest.approx(2.3)
    # DeepSeek-R1 on 8 x MI300X with SGLang 0.4.2: 8,710 x 2.3 us = 20.0 ms per decode step
    assert terms.blockscale_kloop_s(8710.0, cal.blockfp8_kblock_us) == pytest.approx(0.020033, rel=1e-4)


def _terms(model: str, gpu: str, engine: str, version: str | None, batch: float):
    t = Tables()
    g = t.gpus.get(gpu)
    cal = t.calibration.lookup(engine, g.id, g.vendor, g.arch, version)
    m = resolve(model)
    s, _ = make_shape(m.arch, g, 8, t.formats.weight("fp8"), t.formats.kv_format("bf16"), 2048, cal,
                      version=version)
    return step_terms_s(s, batch), cal


def test_applies_only_to_block_scaled_fp8_on_amd() -> None:
    amd, cal = _terms("deepseek-r1", "mi300x", "sglang", "0.4.2", 4.0)
    # The block-scaled dense GEMMs run as kernels of their own: reads, then max(K-loop, compute). At 4 tokens
    # their compute is microseconds, so the step gains the 20 ms K-loop (and the split phase's tiny gap).
    kloop_s = 8710 * cal.blockfp8_kblock_us * 1e-6
    assert float(amd["blockscale_kloop"]) == pytest.approx(kloop_s, rel=0.02)
    assert float(amd["blockscale_kloop"]) <= kloop_s * 1.001
    nvidia, _ = _terms("deepseek-r1", "h200", "sglang", "0.4.2", 4.0)
    assert float(nvidia["blockscale_kloop"]) == 0.0  # CUDA kernels: the fitted floors hold
    per_channel, _ = _terms("llama-3.1-70b", "mi300x", "sglang", "0.4.2", 4.0)
    assert float(per_channel["blockscale_kloop"]) == 0.0  # per-channel FP8 checkpoint: no block-scale GEMM
    arch = resolve("deepseek-r1").arch
    assert block_scaled_fp8(arch, "AMD", "fp8") and not block_scaled_fp8(arch, "amd", "bf16")


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=1, max_value=8).map(lambda k: 2 ** (k - 1)), st.sampled_from([1, 2, 4, 8]))
def test_more_tp_never_more_block_steps(tp: int, factor: int) -> None:
    # Splitting K of the row-parallel matrices over more GPUs never adds block steps; the column-parallel ones
    # keep their whole K.
    arch = resolve("deepseek-r1").arch
    small, big = kblocks_per_step(arch, tp, tp), kblocks_per_step(arch, tp * factor, tp * factor)
    assert big <= small
    assert big >= 61 * (56 + 12) + 58 * 56 + 3 * 56  # the column-parallel block steps stay
    assert math.isfinite(small)


def test_the_floor_is_the_k_loop_at_decode_and_fades_where_the_gemms_are_compute_bound() -> None:
    # A floor, not an extra: the kernels take max(K-loop, compute), so the term is what the K-loop adds over the
    # block-scaled GEMMs' compute time. At decode sizes it is nearly flat in the batch (aiter PR 1232: flat to
    # M = 256); a 16,384-token prompt step's 8-bit GEMMs (about 3.5 GFLOP per token per GPU at TP 8) take far
    # longer than 20 ms at MI300X's FP8 rate, so nothing is added there.
    a, _ = _terms("deepseek-r1", "mi300x", "sglang", "0.4.2", 1.0)
    b, _ = _terms("deepseek-r1", "mi300x", "sglang", "0.4.2", 128.0)
    assert float(b["blockscale_kloop"]) == pytest.approx(float(a["blockscale_kloop"]), rel=0.05)
    assert float(b["blockscale_kloop"]) <= float(a["blockscale_kloop"])
    t = Tables()
    g = t.gpus.get("mi300x")
    cal = t.calibration.lookup("sglang", g.id, g.vendor, g.arch, "0.4.2")
    s, _ = make_shape(resolve("deepseek-r1").arch, g, 8, t.formats.weight("fp8"), t.formats.kv_format("bf16"), 2048,
                      cal, version="0.4.2")
    prompt = step_terms_s(s, 0.0, prefill_tokens=16384.0)
    # compute-bound: the K-loop is hidden; what remains is the split linear phase's gap to the joint one
    assert float(prompt["blockscale_kloop"]) < 0.01 * float(prompt["step"])
    assert float(prompt["gemm_compute"]) > 8710 * cal.blockfp8_kblock_us * 1e-6


def test_qwen3_fp8_block_comes_from_the_checkpoint_table() -> None:
    # Qwen3's catalog config.json is the BF16 release (no quantization_config); its official FP8 checkpoints are
    # "fine-grained fp8 quantization with block size of 128" (Qwen's model cards), recorded in
    # models/checkpoints.csv column fp8_weight_block. RedHatAI's Llama FP8 scales per channel: no block.
    qwen = resolve("qwen3-235b-a22b").arch
    assert qwen.fp8_weight_block == (128, 128)
    assert block_scaled_fp8(qwen, "AMD", "fp8") and not block_scaled_fp8(qwen, "AMD", "bf16")
    assert resolve("llama-3.1-70b").arch.fp8_weight_block == ()
    # Qwen3-235B-A22B at TP 8: 94 layers, hidden 4096, 64 query heads x 128 = 8192, no shared expert, every layer
    # MoE: qkv (K 4096) 32 block steps + o (8192 / 8 = 1024) 8 = 40 per layer, experts in the fused MoE kernel.
    assert kblocks_per_step(qwen, 8, 8) == 94 * (4096 // 128 + 8192 // 8 // 128)
