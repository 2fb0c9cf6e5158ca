"""KV capacity as the engines count it (optimizer/serving/kv_capacity.py) and its validation against their logs
(tests/data/kv_capacity.csv, `gpuplan validate-kv`)."""

from __future__ import annotations

import math

import pytest
from gpuplan.models.catalog import resolve
from gpuplan.models.memory import GIB
from gpuplan.optimizer.serving import kv_capacity as kc
from gpuplan.optimizer.serving.engine_capacity import profile_activation_bytes, sampler_bytes_per_logit
from gpuplan.optimizer.serving.kv_validation import check_all, read_kv_rows, summarise_kv
from gpuplan.optimizer.tables import DEFAULT as T
from hypothesis import given, settings
from hypothesis import strategies as st

BF16 = T.formats.kv_format("bf16")


def test_vllm_counts_sliding_layers_as_full_in_its_logged_tokens() -> None:
    # gpt-oss-120b: 36 layers (18 sliding, window 128; 18 full), 8 KV heads of 64, bf16: b = 2·8·64·2 = 2048 B per
    # token and layer. vLLM groups them into 2 groups of 18, pages of 16 tokens (32 KiB); the pool of 5.38 GiB
    # holds ⌊5.38·2^30 / (32768·18)⌋ = 9,793 blocks, logged as 9,793 // 2 · 16 = 78,336 tokens, i.e. 72 KiB a
    # token (alvarobartt/hf-mem issue 60 quotes vLLM's 'GPU KV cache size: 78,384 tokens' for 5.38 GiB, the
    # GiB figure being rounded in the log).
    arch = resolve("gpt-oss-120b").arch
    pool = 5.38 * GIB
    assert math.floor(pool / (32768 * 18)) == 9793
    assert kc.reported_tokens(arch, BF16, "vllm", pool, 1) == 9793 // 2 * 16 == 78336
    # SGLang sizes its window pool at 0.8 of the full pool's tokens: pool / (2048 · (18 + 0.8 · 18))
    assert kc.reported_tokens(arch, BF16, "sglang", pool, 1) == math.floor(pool / (2048 * 18 * 1.8))


def test_vllm_concurrency_counts_window_plus_one_step() -> None:
    # vLLM's 'Maximum concurrency' for 2,000-token requests with an 8,192-token step: full layers ⌈2000/16⌉ = 125
    # blocks, window layers ⌈min(127 + 8192, 2000)/16⌉ + 1 = 126: 251 blocks a request
    arch = resolve("gpt-oss-120b").arch
    g = kc.vllm_groups(arch, BF16, 1)
    assert (g.size, g.n, g.block) == (18, 2, 16)
    assert kc.vllm_request_blocks(arch, g, 2000, 8192) == 125 + 126
    # at 100k tokens the window group holds 8,319 tokens (521 + 1 blocks) while the full group holds 6,250 blocks
    assert kc.vllm_request_blocks(arch, g, 100_000, 8192) == 6250 + 521


def test_dense_gqa_and_mla_token_bytes_per_gpu() -> None:
    # Llama-3.1-8B: 32 layers × 2·8·128·2 B = 128 KiB per token; TP 2 halves it; beyond 8 KV heads they replicate
    llama = resolve("llama-3.1-8b").arch
    assert kc.cell_bytes(llama, BF16, 1, "trtllm") == 32 * 4096
    assert kc.cell_bytes(llama, BF16, 2, "trtllm") == 32 * 2048
    assert kc.token_layer_bytes(llama, BF16, 16) == kc.token_layer_bytes(llama, BF16, 8) == 512
    # DeepSeek-R1 MLA: 61 layers × (512 + 64) × 2 B = 70,272 B, whole on every TP rank
    r1 = resolve("deepseek-r1").arch
    assert kc.cell_bytes(r1, BF16, 8, "sglang") == 61 * 576 * 2
    # TensorRT-LLM allocates in blocks of 32 tokens
    assert kc.reported_tokens(llama, BF16, "trtllm", 1000 * 32 * 4096 + 5, 1) == 992


def test_sampler_reserve_follows_the_release() -> None:
    # 0.10.1 sorts the profiled logits (38 B each): gpt-oss's 1024 rows × 201,088 × 38 B = 7.28 GiB; the current
    # release samples with FlashInfer (4 B a logit) and its 8192-token forward pass is the larger peak
    oss = resolve("gpt-oss-120b").arch
    h100 = T.gpus.get("h100-sxm")
    assert sampler_bytes_per_logit("0.10.1") == 38 and sampler_bytes_per_logit("0.10.2") == 4
    assert sampler_bytes_per_logit("0.11.1") == 38 and sampler_bytes_per_logit(None) == 4
    assert profile_activation_bytes(oss, "vllm", h100, 1, "0.10.1") == 1024 * 201088 * 38
    assert profile_activation_bytes(oss, "vllm", h100, 1, "0.10.2") == 8192 * 102_400 + 201088 * 4


@settings(max_examples=40, deadline=None)
@given(pool_gib=st.floats(0.5, 200), ctx=st.integers(128, 200_000), tp=st.sampled_from([1, 2, 4, 8]))
def test_more_pool_never_fewer_tokens_or_sequences(pool_gib: float, ctx: int, tp: int) -> None:
    for mid in ("gpt-oss-120b", "llama-3.1-70b", "qwen3.5-27b", "deepseek-r1"):
        arch = resolve(mid).arch
        for engine in ("vllm", "sglang", "trtllm"):
            a, b = pool_gib * GIB, pool_gib * 1.5 * GIB
            assert kc.reported_tokens(arch, BF16, engine, b, tp) >= kc.reported_tokens(arch, BF16, engine, a, tp)
            assert kc.pool_sequences(arch, BF16, engine, b, tp, ctx, 8192) >= kc.pool_sequences(
                arch, BF16, engine, a, tp, ctx, 8192)


@pytest.fixture(scope="module")
def checks():
    return check_all(read_kv_rows())


def test_kv_table_covers_the_engines_and_kinds() -> None:
    rows = read_kv_rows()
    assert len(rows) >= 15
    assert {r.engine for r in rows} == {"vllm", "sglang", "trtllm"}
    assert all(r.source and r.as_of for r in rows)
    kinds = {resolve(r.model).arch.attention_kind for r in rows} | {
        "sliding" for r in rows if resolve(r.model).arch.sliding_window}
    assert {"gqa", "mha", "mla", "sliding"} <= kinds


def test_accounting_matches_the_logs(checks) -> None:
    # The engine's token count of the pool it logged: within 1 % on median, 6 % at p90 (the misses: SGLang's
    # FP8 latent with scales for DeepSeek-V3.2, and GiB rounded to two decimals in the logs)
    s = {(x.check, x.group): x for x in summarise_kv(checks)}
    acc = s[("accounting", "all")]
    assert acc.rows >= 7 and acc.median_ape_pct <= 1.0 and acc.p90_ape_pct <= 6.0
    assert s[("accounting", "vllm")].p90_ape_pct <= 1.5


def test_end_to_end_error_is_pinned(checks) -> None:
    # Pool from the memory model then the engine's count, against 13 logged figures (README "KV capacity against
    # the engines' logs"): median 16.0 %, p90 27.3 % when written; a change that loses ground fails here
    e2e = {x.group: x for x in summarise_kv(checks) if x.check == "end-to-end"}
    assert e2e["all"].rows >= 13
    assert e2e["all"].median_ape_pct <= 17.0 and e2e["all"].p90_ape_pct <= 30.0
    oss = [c for c in checks if c.check == "end-to-end" and c.model == "gpt-oss-120b" and c.logged < 0]
    assert oss and oss[0].predicted < 0  # vLLM 0.10.1 cannot hold gpt-oss-120b on one H100 at 0.9, nor can we


def test_bad_kv_rows_are_one_line_errors(tmp_path, gpuplan) -> None:
    head = "model,gpu,tp,weights,kv,engine,metric,value,source,as_of\n"
    for body, needle in (("llama-3.1-8b,h100-sxm,1,bf16,bf16,vllm,kv_tokens,abc,x,2025-01-01\n", "'value'"),
                         ("llama-3.1-8b,,1,bf16,bf16,vllm,kv_gib,4,x,2025-01-01\n", "logged_kv_gib"),
                         ("llama-3.1-8b,h100-sxm,1,bf16,bf16,tgi,kv_tokens,4,x,2025-01-01\n", "'engine'")):
        path = tmp_path / "kv.csv"
        path.write_text(head + body)
        r = gpuplan("validate-kv", str(path))
        assert r.code == 2 and needle in r.err and len(r.err.strip().splitlines()) == 1
