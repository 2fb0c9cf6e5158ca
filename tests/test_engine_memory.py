"""SGLang's default --mem-fraction-static (from 0.5.3, sgl-project/sglang PR #10975): weights + KV pool only,
activations and CUDA graphs in the reserve. Hand-computed from ServerArgs._handle_gpu_memory_settings."""

from __future__ import annotations

import math

import pytest
from gpuplan.models.catalog import resolve
from gpuplan.models.memory import GIB, kv_cache_bytes, weights_bytes
from gpuplan.optimizer.serving import engine_memory as em
from gpuplan.optimizer.serving.engine_capacity import engine_cap, kv_capacity_tokens
from gpuplan.optimizer.serving.scheduler import engine_defaults
from gpuplan.optimizer.tables import Tables
from hypothesis import given, settings
from hypothesis import strategies as st

T = Tables()


def test_h100_tp1_reserve_and_fraction() -> None:
    # H100 80GB = 79.65 GiB = 81,561.6 MiB; chunked_prefill_size 8192, cuda_graph_max_bs 256 (TP < 4):
    # R = 512 + 1.5 · 8192 + 2 · 256 + 1024 · 1/8 = 13,440 MiB; f = round(68,121.6 / 81,561.6, 3) = 0.835.
    assert em.sglang_reserved_mib(81561.6, 8192, 256, 1) == pytest.approx(13440)
    assert em.sglang_mem_fraction_static(81561.6, 8192, 256, 1) == 0.835
    assert engine_cap(T.calibration.lookup("sglang", "h100-sxm", "nvidia"), T.gpus.get("h100-sxm"), 1, 1,
                      "0.5.5.post1") == 0.835


def test_sglang_chunk_by_gpu_memory_band() -> None:
    # ServerArgs._handle_gpu_memory_settings (0.5.3 on, sgl-project/sglang PR #10372): chunked_prefill_size 2048
    # below 35 GiB, 4096 below 60 GiB ('A100 (40GB), L40'), 8192 below 160 GiB, 16384 above; before 0.5.3 the
    # 35-160 GiB band was one (8192). L40S = 44.99 GiB = 46,069.76 MiB, cuda_graph_max_bs 32 (graphs.csv):
    # R = 512 + 1.5 · 4096 + 2 · 32 + 1024 · 1/8 = 6,848 MiB (no 10 GiB floor at or below 60 GiB);
    # f = round(39,221.76 / 46,069.76, 3) = 0.851 (with the 8192 of the older table: R = 12,992, f = 0.718).
    chunk = {g: [engine_defaults("sglang", T.gpus.get(g), v).max_batched_tokens for v in (None, "0.5.6", "0.5.2")]
             for g in ("l4", "l40s", "a100-40gb", "h100-sxm", "h200", "b200")}
    assert chunk == {"l4": [2048] * 3, "l40s": [4096, 4096, 8192], "a100-40gb": [4096, 4096, 8192],
                     "h100-sxm": [8192] * 3, "h200": [8192] * 3, "b200": [16384] * 3}
    l40s = T.gpus.get("l40s")
    assert em.sglang_reserved_mib(46069.76, 4096, 32, 1) == pytest.approx(6848)
    assert engine_cap(T.calibration.lookup("sglang", "l40s", "nvidia"), l40s, 1, 1, "0.5.6") == 0.851


def test_h200_dp_attention_reserve() -> None:
    # H200 140.4 GiB = 143,769.6 MiB, TP 8 with DP attention over 8 ranks, cuda_graph_max_bs 512 (> 300):
    # R = 512 + 12,288 + 1,024 + 1,024 + 3·512·8 + 1.5·512·8 = 33,280 MiB; f = round(110,489.6 / 143,769.6, 3).
    assert em.sglang_reserved_mib(143769.6, 8192, 512, 8, 8) == pytest.approx(33280)
    assert em.sglang_mem_fraction_static(143769.6, 8192, 512, 8, 8) == 0.769


def test_small_reserve_is_raised_to_ten_gib_on_large_gpus() -> None:
    # chunk 2048, no graphs, TP 1: R = 512 + 3072 + 0 + 128 = 3,712 MiB, raised to 10,240 above 60 GiB only.
    assert em.sglang_reserved_mib(50 * 1024, 2048, 0, 1) == pytest.approx(3712)
    assert em.sglang_reserved_mib(80 * 1024, 2048, 0, 1) == pytest.approx(10240)


def test_early_sglang_fraction_by_tp_and_the_releases_between() -> None:
    # SGLang 0.4.2/0.4.3 ServerArgs.__post_init__: 0.79 from TP 16, 0.81 from TP 8, 0.85 from TP 4, 0.87 at TP 2,
    # 0.88 at TP 1; 0.4.4-0.5.2 are not modelled (the calibration's mem_util); vLLM never.
    g = T.gpus.get("h200")
    assert [em.weights_kv_cap("sglang", "0.4.3.post2", g, tp, 1, 8192, 160) for tp in (1, 2, 4, 8, 16)] == [
        0.88, 0.87, 0.85, 0.81, 0.79]
    assert em.weights_kv_cap("sglang", "0.5.0", g, 8, 1, 8192, 512) is None
    assert em.weights_kv_cap("vllm", "0.11.0", g, 1, 1, 8192, 512) is None
    assert em.effective_mem_util(0.9, None, 5e9, 80e9) == 0.9


def test_sglang_kv_budget_excludes_activations() -> None:
    # Qwen3-32B bf16 on one H100 with SGLang 0.5.5: KV = 0.835 · M − weights − runtime overhead (1 GiB),
    # activations sit in SGLang's reserve; KV per token 64 layers · 2 · 8 heads · 128 · 2 B = 256 KiB.
    m = resolve("qwen3-32b")
    g = T.gpus.get("h100-sxm")
    cal = T.calibration.lookup("sglang", g.id, g.vendor, g.arch, "0.5.5.post1")
    wfmt, kvfmt = T.formats.weight("bf16"), T.formats.kv_format("bf16")
    per_token = kv_cache_bytes(m.arch, kvfmt, 400, 1) / 400
    assert per_token == 64 * 2 * 8 * 128 * 2
    budget = 0.835 * g.memory_bytes - weights_bytes(m.arch, wfmt) - cal.runtime_overhead_gib * GIB
    got = kv_capacity_tokens(m.arch, g, wfmt, kvfmt, 1, 400, cal, None, "0.5.5.post1")
    assert got == pytest.approx(budget / per_token, abs=2)
    older = kv_capacity_tokens(m.arch, g, wfmt, kvfmt, 1, 400, cal, None, "0.4.3")
    assert older > got  # the fixed 0.88 fraction of older releases leaves more KV for a model that nearly fills


@settings(max_examples=60, deadline=None)
@given(mem=st.floats(20 * 1024, 300 * 1024), chunk=st.integers(512, 32768), bs=st.integers(0, 1024),
       tp=st.sampled_from([1, 2, 4, 8]), dp=st.sampled_from([1, 2, 8]))
def test_reserve_grows_with_chunk_graphs_and_dp(mem: float, chunk: int, bs: int, tp: int, dp: int) -> None:
    r = em.sglang_reserved_mib(mem, chunk, bs, tp, dp)
    assert em.sglang_reserved_mib(mem, chunk * 2, bs, tp, dp) >= r
    assert em.sglang_reserved_mib(mem, chunk, bs + 64, tp, dp) >= r
    assert em.sglang_reserved_mib(mem, chunk, bs, tp, dp * 2) >= r
    assert em.sglang_mem_fraction_static(mem, chunk, bs, tp, dp) <= round((mem - 512) / mem, 3)


def test_vllm_reserves_its_profile_run_whatever_the_prompt() -> None:
    # vLLM V1 sizes KV after a profile run over max_num_batched_tokens tokens (2048 on A100, 8192 on H100;
    # vllm/engine/arg_utils.py) spread over min(tokens, max_num_seqs) requests, then the sampler on their logits
    # (vllm/v1/worker/gpu_model_runner.py profile_run). Qwen3-32B (hidden 5120, 64 q + 2·8 kv heads of 128,
    # intermediate 25600, vocab 151936): 2 B · (4·5120 + 80·128 + 3·25600) = 215,040 B per token.
    from gpuplan.optimizer.serving.engine_capacity import profile_activation_bytes
    m = resolve("qwen3-32b")
    a100, h100 = T.gpus.get("a100-80gb"), T.gpus.get("h100-sxm")
    one_row = 151936 * 4
    assert profile_activation_bytes(m.arch, "vllm", a100, 1) == 2048 * 215_040 + one_row
    assert profile_activation_bytes(m.arch, "vllm", h100, 1) == 8192 * 215_040 + one_row  # > 1024 logits rows
    # gpt-oss-120b (64 q + 2·8 kv heads of 64, top-4 of 2880-wide experts): 2 · (4·2880 + 80·64 + 3·4·2880)
    # = 102,400 B per token; the 1024 logits rows (201088 · 4 B each) are the smaller peak
    oss = resolve("gpt-oss-120b")
    assert profile_activation_bytes(oss.arch, "vllm", h100, 1) == max(8192 * 102_400 + 201088 * 4,
                                                                      1024 * 201088 * 4)
    assert profile_activation_bytes(m.arch, "vllm", h100, 1, "0.7.3") is None  # V0: the prefill-chunk rule
    assert profile_activation_bytes(m.arch, "sglang", h100, 1) is None
    # the KV budget on one A100: mem_util · M − weights − reserve − runtime, for a short prompt as for a long one
    cal = T.calibration.lookup("vllm", a100.id, a100.vendor, a100.arch, "0.11.0")
    wfmt, kvfmt = T.formats.weight("bf16"), T.formats.kv_format("bf16")
    budget = (cal.mem_util * a100.memory_bytes - weights_bytes(m.arch, wfmt) - (2048 * 215_040 + one_row)
              - cal.runtime_overhead_gib * GIB)
    # vLLM counts that pool in blocks of 16 tokens × 64 layers × 4 KiB and a request in ⌈context / 16⌉ blocks
    blocks = math.floor(budget / (16 * 4096 * 64))
    for context in (300, 20_000):
        got = kv_capacity_tokens(m.arch, a100, wfmt, kvfmt, 1, context, cal, None, "0.11.0")
        assert got == int(blocks / math.ceil(context / 16) * context)
        assert got == pytest.approx(budget / (64 * 2 * 8 * 128 * 2), rel=0.06)
