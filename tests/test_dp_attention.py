"""SGLang's server settings under data-parallel attention (dp_attention.csv), checked against the ServerArgs code
of the releases the table cites."""

from __future__ import annotations

import pytest
from gpuplan.models.catalog import resolve
from gpuplan.optimizer.serving.dp_attention import (
    dp_attention_defaults,
    dp_attention_row,
    rank_chunk_tokens,
)
from gpuplan.optimizer.serving.scheduler import engine_defaults
from gpuplan.optimizer.serving.simulation import deployment_steps
from gpuplan.optimizer.serving.simulator import SchedulerConfig, simulate_trace
from gpuplan.optimizer.tables import DEFAULT
from hypothesis import given
from hypothesis import strategies as st


@pytest.mark.parametrize(("version", "gpu", "dp", "chunk"), [
    # 0.4.1 to 0.4.4 (ServerArgs.__post_init__): chunked_prefill_size // 2 whatever the DP size;
    # H200 (141 GB) has chunked_prefill_size 8192 in 0.4.x, so each rank prefills 4096 tokens per step
    ("0.4.1", "h200", 8, 4096),
    ("0.4.3.post2", "h200", 8, 4096),
    ("0.4.4", "h200", 4, 4096),
    # 0.4.5 on: chunked_prefill_size // dp_size: 8192 // 8 = 1024 on H200 (0.5.3 _handle_gpu_memory_settings
    # gives 8192 for 60-160 GiB), 16384 // 8 = 2048 on B200 (>= 160 GiB), 16384 // 4 = 4096 at DP 4
    ("0.4.5", "h200", 8, 1024),
    ("0.5.3", "h200", 8, 1024),
    ("0.5.6", "b200", 8, 2048),
    ("0.5.6.post1", "b200", 4, 4096),
    (None, "mi300x", 8, 2048),
])
def test_rank_chunked_prefill_by_version(version: str | None, gpu: str, dp: int, chunk: int) -> None:
    base = engine_defaults("sglang", DEFAULT.gpus.get(gpu), version)
    d = dp_attention_defaults(base, dp, version)
    assert d.rank_chunk_tokens == chunk
    assert d.max_batched_tokens == base.max_batched_tokens  # the replay's step budget stays the engine's


def test_conservativeness_scales_the_running_reservation() -> None:
    # schedule_conservativeness x 0.3 in every release: init_new_token_ratio 0.7 x 0.3 = 0.21, its floor
    # 0.21 x 0.14 = 0.0294 (scheduler.py: min_new_token_ratio = init x default_min_new_token_ratio_factor)
    d = engine_defaults("sglang", DEFAULT.gpus.get("h200"), "0.5.3")
    r = dp_attention_defaults(d, 8, "0.5.3").reservation
    assert r.running_init == pytest.approx(0.21)
    assert r.running_min == pytest.approx(0.0294)
    assert r.new == d.reservation.new and r.clip_tokens == 4096  # the new request's own output is not scaled


def test_other_engines_and_dp_1_keep_their_defaults() -> None:
    g = DEFAULT.gpus.get("h200")
    assert dp_attention_row("vllm") is None
    for engine, dp in (("vllm", 8), ("trtllm", 8), ("sglang", 1)):
        d = engine_defaults(engine, g, None)
        assert dp_attention_defaults(d, dp) == d


def test_simulator_takes_the_rank_chunk() -> None:
    # DeepSeek-R1 on 8 x H200, SGLang 0.5.3 --tp 8 --enable-dp-attention --dp 8: each rank's chunk 8192 // 8
    steps, _, _, tokens = deployment_steps(resolve("deepseek-r1"), "h200", "fp8", "fp8", 8, "sglang", 1000, 200,
                                           None, 1200, DEFAULT, attn_dp=8, engine_version="0.5.3")
    assert (steps.rank_chunk_tokens, tokens) == (1024, 8192)
    assert steps.reservation.running_init == pytest.approx(0.21)
    steps, _, _, tokens = deployment_steps(resolve("deepseek-r1"), "h200", "fp8", "fp8", 8, "sglang", 1000, 200,
                                           None, 1200, DEFAULT, engine_version="0.5.3")
    assert (steps.rank_chunk_tokens, tokens) == (0, 8192)


def test_a_prompt_advances_one_rank_chunk_per_step() -> None:
    # SGLang 0.5.3, 8 x H200, DP 8: a lone 4,000-token prompt takes ⌈4000 / 1024⌉ = 4 prefill steps
    from test_simulator import toy

    steps = toy(10_000)
    steps.rank_chunk_tokens = 1024
    tr = simulate_trace(steps, [4000], [2], SchedulerConfig(8, 8192), arrivals=[0.0])
    assert tr.steps == 4 + 1  # four chunks (the last samples the first token) and one decode step
    steps.rank_chunk_tokens = 0
    assert simulate_trace(steps, [4000], [2], SchedulerConfig(8, 8192), arrivals=[0.0]).steps == 1 + 1


@given(st.integers(1, 1 << 20), st.integers(1, 64), st.integers(0, 8))
def test_rank_chunk_never_exceeds_the_chunk(chunk: int, dp: int, divisor: int) -> None:
    c = rank_chunk_tokens(chunk, dp, divisor)
    assert 1 <= c <= chunk
    assert c == max(1, chunk // (divisor or dp))


def test_isolated_prompt_is_chunked_by_its_rank_in_both_models() -> None:
    # 4,000 prompt tokens on SGLang 0.5.3, DP 8 on 8 x H200: 4 chunks of 1,024 in the replay and in the
    # isolated-request figure (prompt_s) alike, so the replay at vanishing load equals the isolated request;
    # 0.4.3.post2 (C_r 4,096) takes the prompt in one step.
    from gpuplan.optimizer.serving.simulation import simulate

    for version in ("0.5.3", "0.4.3.post2"):
        r = simulate("deepseek-r1", "h200", "fp8", "fp8", 8, input_tokens=4000, output_tokens=4, concurrency=1,
                     requests=2, engine="sglang", attn_dp=8, engine_version=version)
        assert r.ttft_ms.mean == pytest.approx(r.isolated_ttft_ms, rel=1e-3)
    for version, chunk in (("0.5.3", 1024), ("0.4.3.post2", 4096)):
        steps, _, _, _ = deployment_steps(resolve("deepseek-r1"), "h200", "fp8", "fp8", 8, "sglang", 4000, 4, None,
                                          4004, DEFAULT, attn_dp=8, engine_version=version)
        assert steps.prefill_shape.chunk_tokens == chunk


def test_rank_chunk_divides_the_servers_own_chunk_size() -> None:
    # SGLang ServerArgs._handle_data_parallelism divides chunked_prefill_size by dp_size after the command line
    # is read, so --chunked-prefill-size 32768 --dp 8 gives each rank 32768 // 8 = 4096 tokens (0.5.3), and
    # 0.4.3.post2's // 2 gives 16384; the engine default (8,192 on H200) would give 1024 and 4096.
    for version, chunk in (("0.5.3", 4096), ("0.4.3.post2", 16384)):
        steps, _, _, _ = deployment_steps(resolve("deepseek-r1"), "h200", "fp8", "fp8", 8, "sglang", 1000, 200,
                                          None, 1200, DEFAULT, attn_dp=8, engine_version=version,
                                          max_batched_tokens=32768)
        assert steps.rank_chunk_tokens == chunk


def test_simulate_chunks_a_dp_rank_prompt_by_the_given_budget() -> None:
    # 8,000 prompt tokens, SGLang 0.5.3, DP 8 on 8 x H200: --max-batched-tokens 65536 gives each rank 8,192
    # tokens, so the prompt takes one step instead of the default budget's ⌈8000 / 1024⌉ = 8.
    from gpuplan.optimizer.serving.simulation import simulate

    kw = dict(input_tokens=8000, output_tokens=2, concurrency=1, requests=1, engine="sglang", attn_dp=8,
              engine_version="0.5.3")
    default = simulate("deepseek-r1", "h200", "fp8", "fp8", 8, **kw)  # type: ignore[arg-type]
    wide = simulate("deepseek-r1", "h200", "fp8", "fp8", 8, max_batched_tokens=65536, **kw)  # type: ignore[arg-type]
    assert (default.steps, wide.steps) == (8 + 1, 1 + 1)  # prefill steps and one decode step
    assert wide.ttft_ms.mean == pytest.approx(wide.isolated_ttft_ms, rel=1e-3)
