"""Terms of a step with prompt tokens: MoE token-copy traffic, the logits GEMM only at sampled positions and
MLA's down-projections held whole on every attention-TP rank. Expected values are computed by hand from the
model configs (DeepSeek-R1: hidden 7168, 61 layers of which 58 MoE, 256 experts top-8, q_lora_rank 1536,
kv_lora_rank 512 + 64 RoPE dims; Llama 3.1 8B: hidden 4096, vocab 128,256) and the hardware table."""

from __future__ import annotations

import numpy as np
import pytest
from gpuplan.models.catalog import resolve
from gpuplan.optimizer.serving import terms
from gpuplan.optimizer.serving.calibration import CalibrationRow
from gpuplan.optimizer.serving.layout import make_layout
from gpuplan.optimizer.serving.roofline import step_terms_s
from gpuplan.optimizer.serving.shape import make_shape
from gpuplan.optimizer.tables import Tables
from hypothesis import given
from hypothesis import strategies as st


def _ideal(engine: str) -> CalibrationRow:
    return CalibrationRow(engine=engine, gpu="*", eta_mem=1.0, eta_cmp=1.0, eta_prefill=1.0, t_fixed_ms=0.0,
                          comm_latency_us=0.0, runtime_overhead_gib=1.0, mem_util=0.9, seq_us=0.0, layer_us=0.0,
                          moe_layer_us=0.0, mla_layer_us=0.0, gemm_tile_m=1.0, attn_ctx_half_tokens=0.0,
                          request_ms=0.0, source="test", as_of="2026-01-01")


def _shape(model: str, gpu: str, weights: str, tp: int, engine: str, ep: int = 1, attn_dp: int | None = None):
    t = Tables()
    m = resolve(model)
    lay = make_layout(m.arch, tp, ep, attn_dp)
    s, _ = make_shape(m.arch, t.gpus.get(gpu), tp, t.formats.weight(weights), t.formats.kv_format("bf16"), 1024,
                      _ideal(engine), ep=lay.ep, attn_dp=lay.attn_dp)
    return s


def test_token_copy_bytes_of_deepseek_r1_at_tp8() -> None:
    # One token, top-8: 8 rows of 7168. FP8 inputs written in expert order and read (2 x 1 B), BF16 outputs
    # written and read back by the reduction (2 x 2 B): 8 * 7168 * 6 = 344,064 B per MoE layer; gathered
    # once instead (vLLM's Triton kernel): 8 * 7168 * 5 = 286,720 B. Over 58 MoE layers: 19,955,712 B.
    assert terms.moe_activation_bytes(8.0, 7168.0, 1.0, 2.0) == pytest.approx(344_064)
    assert terms.moe_activation_bytes(8.0, 7168.0, 1.0, 2.0, 1.0) == pytest.approx(286_720)
    assert 58 * terms.moe_activation_bytes(8.0, 7168.0, 1.0, 2.0) == pytest.approx(19_955_712)


def test_input_passes_by_expert_kernel() -> None:
    assert terms.moe_input_passes("vllm", "Hopper (GH100)", 1) == 1.0  # Triton fused_moe gathers
    assert terms.moe_input_passes("sglang", "CDNA 3", 1) == 1.0
    assert terms.moe_input_passes("trtllm", "Hopper (GH100)", 1) == 2.0  # CUTLASS MoE permutes first
    assert terms.moe_input_passes("sglang", "Blackwell (GB100, 2 dies)", 1) == 2.0  # FlashInfer MoE
    assert terms.moe_input_passes("vllm", "Hopper (GH100)", 8) == 2.0  # DeepEP receive buffers


def test_moe_token_copy_term_of_an_8k_prompt_on_h200() -> None:
    # DeepSeek-R1 FP8 on 8 x H200 at TP 8 with TensorRT-LLM: all 256 experts are touched and every GPU
    # computes a slice of all 8192 * 8 token-expert pairs, so it moves 58 * 65,536 * 7168 * 6 B = 163.5 GB
    # at 4.8 TB/s (eta_mem 1): 34.1 ms.
    s = _shape("deepseek-r1", "h200", "fp8", 8, "trtllm")
    t = step_terms_s(s, 0.0, 8192.0)
    expected = 58 * 8192 * 8 * 7168 * 6 / 4.8e12
    assert float(t["moe_activations"]) == pytest.approx(expected, rel=1e-6)
    assert expected == pytest.approx(0.0341, rel=1e-2)
    # With EP 8 each rank computes only the pairs routed to its 32 experts: at 8192 tokens all of them are
    # touched, so the mean rank's share is 32 / 256, and the busiest rank's is that raised by the routing skew
    # (terms.ep_load_excess: 1.31 * sqrt(2 ln 8) * 1.28 * sqrt(8 / 256) = +60 %).
    ep_shape = _shape("deepseek-r1", "h200", "fp8", 8, "trtllm", ep=8, attn_dp=1)
    ep = step_terms_s(ep_shape, 0.0, 8192.0)
    skew = 1 + float(terms.ep_load_excess(8, 256, ep_shape.expert_load_cv, ep_shape.ep_excess_scale))
    assert skew == pytest.approx(1 + 1.31 * np.sqrt(2 * np.log(8)) * 1.28 * np.sqrt(8 / 256))
    assert float(ep["moe_activations"]) == pytest.approx(expected / 8 * skew, rel=1e-6)
    # A dense model has no MoE layers and no such term.
    assert float(step_terms_s(_shape("llama-3.1-8b", "h100-sxm", "bf16", 1, "vllm"), 0.0, 8192.0)
                 ["moe_activations"]) == 0.0


def test_prompt_tokens_skip_the_logits_gemm_but_decoded_tokens_pay_it() -> None:
    # Llama 3.1 8B: lm_head 128,256 x 4096, 2 * 525,336,576 = 1,050,673,152 FLOPs per token. vLLM computes
    # logits only at the positions it samples, so 1000 prompt tokens cost 1000 * that less than 1000 decoded
    # tokens at the same rate; llama.cpp (rows from before its pull request 6122) computes them all.
    head = 2 * 128_256 * 4096
    s = _shape("llama-3.1-8b", "h100-sxm", "bf16", 1, "vllm")
    prompt = float(step_terms_s(s, 0.0, 1000.0)["gemm_compute"])
    decode = float(step_terms_s(s, 1000.0, 0.0)["gemm_compute"])
    assert decode - prompt == pytest.approx(1000 * head / 989.5e12, rel=1e-9)
    s = _shape("llama-3.1-8b", "h100-sxm", "bf16", 1, "llama.cpp")
    assert float(step_terms_s(s, 0.0, 1000.0)["gemm_compute"]) == pytest.approx(
        float(step_terms_s(s, 1000.0, 0.0)["gemm_compute"]), rel=1e-12)


def test_mla_down_projections_are_whole_on_every_attention_tp_rank() -> None:
    # DeepSeek-R1's q_a (7168 -> 1536) and kv_a (7168 -> 512 + 64) in 61 layers: 2 * 61 * 7168 * 2112 =
    # 1,846,935,552 FLOPs per token, which each of the 8 TP ranks computes in full; the rest of the dense
    # weights is split 8 ways.
    s = _shape("deepseek-r1", "h200", "fp8", 8, "trtllm")
    assert s.replicated_flops_per_token == pytest.approx(2 * 61 * 7168 * 2112)
    read = float(step_terms_s(s, 1.0)["dense_read"])
    assert read * 8 * 4.8e12 == pytest.approx(s.dense_bytes + 7 * s.replicated_bytes, rel=1e-9)
    # With attention data-parallel over the 8 GPUs (attention TP 1) nothing is replicated beyond the rank.
    dp = _shape("deepseek-r1", "h200", "fp8", 8, "trtllm", ep=8, attn_dp=8)
    assert float(step_terms_s(dp, 1.0)["dense_read"]) * 4.8e12 == pytest.approx(dp.dense_bytes, rel=1e-9)
    # Models without MLA have none.
    assert _shape("llama-3.1-70b", "h100-sxm", "fp8", 4, "vllm").replicated_bytes == 0.0


@given(st.floats(1.0, 16384.0), st.sampled_from([1, 2, 4, 8]))
def test_more_prompt_tokens_never_take_less_time(tokens: float, ep: int) -> None:
    s = _shape("deepseek-r1", "h200", "fp8", 8, "trtllm", ep=ep, attn_dp=1)
    t = step_terms_s(s, 0.0, tokens)
    more = step_terms_s(s, 0.0, tokens * 1.5)
    assert float(more["moe_activations"]) >= float(t["moe_activations"])
    assert float(more["step"]) >= float(t["step"])
