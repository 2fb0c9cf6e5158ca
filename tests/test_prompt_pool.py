"""A client that draws its prompts from a pool of P distinct prompts (AIPerf / GenAI-Perf synthetic data,
``--num-dataset-entries``, default 100): a repeated prompt hits the server's prefix cache and prefills only its
last token (vLLM V1, SGLang and TensorRT-LLM recompute the last prompt token to sample the first output token)."""

from __future__ import annotations

import numpy as np
import pytest
from gpuplan.optimizer.serving.arrivals import make_requests
from gpuplan.optimizer.serving.simulation import simulate
from gpuplan.optimizer.serving.simulator import SchedulerConfig, pool_fits, simulate_trace
from test_simulator import GPU, MODEL, toy


def test_repeat_prefills_its_last_token() -> None:
    # Toy step model: a prompt of n tokens takes n × 10 µs, a decode step 10 ms. A (prompt 0, 100 tokens) at 0:
    # first token at 1 ms, 4 more decode steps → 41 ms. B repeats prompt 0 at 1 s: the cache holds 99 of its
    # tokens, it computes one (10 µs). C (prompt 1) at 2 s is new: 1 ms again.
    tr = simulate_trace(toy(10_000), [100] * 3, [5] * 3, SchedulerConfig(8, 8192), arrivals=[0.0, 1.0, 2.0],
                        prompt_ids=[0, 0, 1])
    assert tr.first == pytest.approx([0.001, 1.00001, 2.001])
    assert tr.finish == pytest.approx([0.041, 1.04001, 2.041])
    plain = simulate_trace(toy(10_000), [100] * 3, [5] * 3, SchedulerConfig(8, 8192), arrivals=[0.0, 1.0, 2.0])
    assert plain.first == pytest.approx([0.001, 1.001, 2.001])


def test_closed_loop_client_repeating_one_prompt() -> None:
    # One client, one prompt: the first request prefills 100 tokens (1 ms) and decodes 4 steps (41 ms); every
    # later one is sent when the last ends and prefills one token (10 µs).
    tr = simulate_trace(toy(10_000), [100] * 3, [5] * 3, SchedulerConfig(8, 8192), concurrency=1,
                        prompt_ids=[0, 0, 0])
    assert tr.first == pytest.approx([0.001, 0.04101, 0.08102])


def test_a_pool_larger_than_the_kv_cache_never_hits() -> None:
    # Three distinct 100-token prompts need 300 tokens of cache; with 250 the simulator lets none of them hit.
    assert pool_fits([0, 1, 2, 0], [100] * 4, 300) and not pool_fits([0, 1, 2, 0], [100] * 4, 250)
    args = (toy(250), [100] * 4, [5] * 4, SchedulerConfig(8, 8192))
    arrivals = [0.0, 1.0, 2.0, 3.0]
    assert simulate_trace(*args, arrivals=arrivals, prompt_ids=[0, 1, 2, 0]).first == \
        simulate_trace(*args, arrivals=arrivals).first
    # ... and says so: no hit at 250 tokens, the one repeat (request 4) hits at 300
    assert simulate_trace(*args, arrivals=arrivals, prompt_ids=[0, 1, 2, 0]).prompt_cache_hits == 0
    roomy = (toy(300), *args[1:])
    assert simulate_trace(*roomy, arrivals=arrivals, prompt_ids=[0, 1, 2, 0]).prompt_cache_hits == 1


def test_hits_are_the_repeated_draws() -> None:
    # Requests 20 s apart on average run alone: a repeat's TTFT is host time + one token, ms below host time + a
    # 1000-token prefill, so the fast requests are exactly those whose pool entry was drawn before (N − distinct).
    kw = dict(input_tokens=1000, output_tokens=20, rate_rps=0.05, requests=60, seed=4)
    ids = make_requests(**kw, prompt_pool=20).prompt_ids  # type: ignore[arg-type]
    r = simulate(MODEL, GPU, prompt_pool=20, **kw)  # type: ignore[arg-type]
    ttft = r.samples["ttft_ms"]
    repeat = np.array([ids[k] in ids[:k] for k in range(len(ids))])
    assert repeat.sum() == 60 - len(set(ids)) > 0
    assert (ttft < r.isolated_ttft_ms - 1.0).tolist() == repeat.tolist()
    assert r.prompt_pool == 20 and r.prompt_cache_hits == repeat.sum()


def test_a_pool_entry_keeps_its_length() -> None:
    req = make_requests(1000, 100, 500, seed=3, rate_rps=1.0, range_ratio=0.5, prompt_pool=10)
    length = {}
    for i, n in zip(req.prompt_ids, req.input_tokens, strict=True):  # type: ignore[arg-type]
        assert length.setdefault(i, n) == n
    assert len(length) == 10 and len(set(length.values())) > 1
    # Without a pool the stream is what it always was (same seed, same lengths).
    assert make_requests(1000, 100, 500, seed=3, rate_rps=1.0, range_ratio=0.5).prompt_ids is None


def test_pool_breaks_the_lockstep_of_a_fixed_length_closed_loop() -> None:
    # 32 clients with fixed lengths queue a whole wave of prompts for prefill each round; with a pool of 100
    # most prompts are repeats, so the mean TTFT falls, but never below a repeat alone (host + one-token step).
    kw = dict(input_tokens=1024, output_tokens=256, concurrency=32, requests=640)
    plain = simulate(MODEL, GPU, **kw)  # type: ignore[arg-type]
    pooled = simulate(MODEL, GPU, prompt_pool=100, **kw)  # type: ignore[arg-type]
    assert pooled.ttft_ms.mean < 0.6 * plain.ttft_ms.mean
    assert pooled.samples["ttft_ms"].min() > 0
    assert simulate(MODEL, GPU, prompt_pool=100, **kw).ttft_ms == pooled.ttft_ms  # type: ignore[arg-type]


@pytest.mark.parametrize(("args", "needle"), [
    (("--concurrency", "4", "--prompt-pool", "0"), "Invalid value for '--prompt-pool': 0 is not in the range x>=1"),
])
def test_bad_prompt_pool(gpuplan, args: tuple[str, ...], needle: str) -> None:
    r = gpuplan("simulate", "--model", MODEL, "--gpu", GPU, *args)
    assert r.code == 2 and needle in r.err and len(r.err.strip().splitlines()) == 1


def test_prompt_pool_with_a_trace_is_refused(gpuplan, tmp_path) -> None:
    trace = tmp_path / "trace.csv"
    trace.write_text("arrival_s,input_tokens,output_tokens\n0,100,5\n")
    r = gpuplan("simulate", "--model", MODEL, "--gpu", GPU, "--trace", str(trace), "--prompt-pool", "5")
    assert r.code == 2 and "--prompt-pool applies to generated requests" in r.err
    assert len(r.err.strip().splitlines()) == 1


def test_simulate_table_names_the_pool(gpuplan) -> None:
    # The pool changes every TTFT figure, so the table's title says it was used (the JSON has prompt_pool).
    args = ("simulate", "--model", MODEL, "--gpu", GPU, "--concurrency", "2", "--requests", "8")
    pooled = gpuplan(*args, "--prompt-pool", "3")
    assert pooled.code == 0 and "pool of 3 prompts" in pooled.out
    assert "pool of" not in gpuplan(*args).out
