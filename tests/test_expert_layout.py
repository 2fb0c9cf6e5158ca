"""Engines store MoE experts padded to their kernels' tiles (serving/expert_layout.py) and checkpoints keep
the layers their quantization_config leaves unquantised (models/memory.py)."""

from __future__ import annotations

import pytest
from gpuplan.models.catalog import resolve
from gpuplan.models.memory import GIB, weights_bytes
from gpuplan.optimizer.serving import expert_layout as el
from gpuplan.optimizer.serving.deployment import memory, perf
from gpuplan.optimizer.serving.engine_capacity import kv_capacity_tokens
from gpuplan.optimizer.serving.shape import make_shape
from gpuplan.optimizer.tables import Tables
from hypothesis import given, settings
from hypothesis import strategies as st

T = Tables()
OSS = resolve("gpt-oss-120b")
MXFP4 = T.formats.weight("mxfp4")
# openai/gpt-oss-120b config.json: 36 layers, 128 experts of hidden 2880 × intermediate 2880 (gate, up, down),
# 116,829,156,672 parameters in all (model card: 116.8B); quantization_config quantises only the experts
# (modules_to_not_convert: self_attn, router, embed_tokens, lm_head).
EXPERT_ELEMENTS = 36 * 128 * 3 * 2880 * 2880
EXPERT_BYTES = EXPERT_ELEMENTS * 4.25 / 8  # MXFP4: 4-bit E2M1 + one 8-bit E8M0 scale per 32
DENSE_BYTES = (116_829_156_672 - EXPERT_ELEMENTS) * 2  # everything else in BF16
# Marlin (vLLM mxfp4.py create_weights): hidden 2880 → 3072 (multiple of 256), intermediate → 2944 (of 128)
MARLIN_F = 3072 * 2944 / (2880 * 2880)
# Triton on Hopper (triton_kernels HopperMXValueLayout): gate_up 2944 × 2·2944, down 3072 × 2944
TRITON_F = (2 * 2944 * 2944 + 3072 * 2944) / (3 * 2880 * 2880)


def test_gpt_oss_checkpoint_keeps_attention_in_bf16() -> None:
    # 65.25 GB: the size of the checkpoint's safetensors; counting attention at MXFP4 gave 1.4 GB less
    assert weights_bytes(OSS.arch, MXFP4) == pytest.approx(EXPERT_BYTES + DENSE_BYTES, abs=1)
    assert OSS.arch.attention_unquantized_in == "mxfp4"
    # another format of the same model quantises attention as the format says (fewer bytes than bf16 attention)
    assert resolve("llama-3.1-8b").arch.attention_unquantized_in is None


def test_padding_factors_from_the_kernels_tiles() -> None:
    h100, old = el.expert_layout("vllm", "mxfp4", "h100-sxm"), el.expert_layout("vllm", "mxfp4", "h100-sxm", "0.10.1")
    assert h100 is not None and h100.backend == "triton_kernels"
    assert old is not None and old.backend == "marlin"
    assert el.padding_factor(2880, 2880, old) == pytest.approx(MARLIN_F, rel=1e-12)
    assert el.padding_factor(2880, 2880, h100) == pytest.approx(TRITON_F, rel=1e-12)
    # B200 FlashInfer: both dims to 3072; TP 2 under Marlin: per-partition 1440 → 1536
    assert el.expert_padding(OSS.arch, "vllm", "mxfp4", "b200", 1) == pytest.approx((3072 / 2880) ** 2)
    assert el.expert_padding(OSS.arch, "vllm", "mxfp4", "a100-80gb", 2) == pytest.approx(3072 * 1536 / (2880 * 1440))
    # no row: engines and formats the table does not list store experts as the checkpoint does
    assert el.expert_padding(OSS.arch, "trtllm", "mxfp4", "h100-sxm", 1) == 1.0
    assert el.expert_padding(resolve("llama-3.1-8b").arch, "vllm", "mxfp4", "h100-sxm", 1) == 1.0


def test_gpt_oss_120b_on_h100_with_vllm_loads_what_vllm_logs() -> None:
    # vllm-project/vllm issue #23278 (0.10.1, Marlin): "Model loading took 65.97 GiB"; expected from the config:
    # dense 4.04 GiB + experts 56.73 GiB × 1.0904 = 65.90 GiB (expert biases padded alike: +7 MB)
    hand = (DENSE_BYTES + EXPERT_BYTES * MARLIN_F) / GIB
    assert hand == pytest.approx(65.89, abs=0.01)
    assert hand == pytest.approx(65.97, rel=0.002)
    a100 = memory(OSS, "mxfp4", context=4096, gpu="a100-80gb", engine="vllm")  # Marlin in every release
    assert a100.weights_gib == pytest.approx(hand, abs=0.01)
    # vllm-project/vllm issue #33155 (0.14.1, Triton backend): "Model loading took 64.38 GiB"
    h100 = memory(OSS, "mxfp4", context=4096, gpu="h100-sxm", engine="vllm")
    assert h100.weights_gib == pytest.approx((DENSE_BYTES + EXPERT_BYTES * TRITON_F) / GIB, abs=0.01)
    assert h100.weights_gib == pytest.approx(64.38, rel=0.005)
    assert any("padded" in w for w in h100.warnings)
    assert perf(OSS, "h100-sxm", "mxfp4", engine="vllm").weights_gib_per_gpu == pytest.approx(h100.weights_gib)


def test_padding_shrinks_kv_and_slows_the_expert_read() -> None:
    # on an H200 (one H100 holds no KV for gpt-oss-120b beside vLLM 0.10.1's or 0.14.1's sampler reserve)
    g = T.gpus.get("h200")
    kv = T.formats.kv_format("bf16")
    vllm = T.calibration.lookup("vllm", g.id, g.vendor, g.arch, "0.10.1")
    old = kv_capacity_tokens(OSS.arch, g, MXFP4, kv, 1, 4096, vllm, None, "0.10.1")
    new = kv_capacity_tokens(OSS.arch, g, MXFP4, kv, 1, 4096, vllm, None, "0.14.1")
    assert old < new  # Marlin's padding takes 1.7 GiB more than Triton's
    s_old, _ = make_shape(OSS.arch, g, 1, MXFP4, kv, 1000.0, vllm, version="0.10.1")
    s_new, _ = make_shape(OSS.arch, g, 1, MXFP4, kv, 1000.0, vllm, version="0.14.1")
    assert s_old.expert_bytes / s_new.expert_bytes == pytest.approx(MARLIN_F / TRITON_F)
    assert s_old.dense_bytes == s_new.dense_bytes


@settings(max_examples=80, deadline=None)
@given(h=st.integers(64, 16384), i=st.integers(32, 16384), a=st.sampled_from([1, 64, 128, 256]),
       b=st.sampled_from([1, 64, 128, 256]))
def test_padding_never_shrinks_and_vanishes_on_aligned_shapes(h: int, i: int, a: int, b: int) -> None:
    row = el.ExpertLayout(engine="x", weights="mxfp4", gpus="g", backend="k", up_hidden_align=a,
                          up_intermediate_align=b, down_hidden_align=a, down_intermediate_align=b,
                          source="test", as_of="2026-01-01")
    f = el.padding_factor(h, i, row)
    assert f >= 1.0
    assert f < (1 + a / h) * (1 + b / i) + 1e-12
    assert el.padding_factor(h * a, i * b, row) == pytest.approx(1.0)
