"""KV reservation at admission (admission.py): the engines' rules by hand, and in the simulator."""

from __future__ import annotations

import pytest
from gpuplan.optimizer.serving.admission import NO_RESERVATION, Reservation, admits, new_request_tokens, running_ratio
from gpuplan.optimizer.serving.scheduler import engine_defaults
from gpuplan.optimizer.serving.simulator import SchedulerConfig, simulate_trace
from gpuplan.optimizer.tables import DEFAULT
from hypothesis import given, settings
from hypothesis import strategies as st
from test_simulator import toy

# SGLang global_config: init_new_token_ratio 0.7, min factor 0.14, decay over 600 steps, clip 4096;
# TensorRT-LLM GUARANTEED_NO_EVICT reserves whole outputs (scheduler.csv).
SGLANG = Reservation(new=1.0, running_init=0.7, running_min=0.7 * 0.14, decay_steps=600, clip_tokens=4096)
TRTLLM = Reservation(new=1.0, running_init=1.0, running_min=1.0)


def test_sglang_ratio_decays_linearly_to_its_floor() -> None:
    assert running_ratio(SGLANG, 0) == pytest.approx(0.7)
    assert running_ratio(SGLANG, 300) == pytest.approx(0.7 - (0.7 - 0.098) / 2)  # half way: 0.399
    assert running_ratio(SGLANG, 600) == pytest.approx(0.098)
    assert running_ratio(SGLANG, 10_000) == pytest.approx(0.098)
    assert running_ratio(TRTLLM, 10_000) == 1.0


def test_new_request_reserves_its_clipped_output() -> None:
    assert new_request_tokens(SGLANG, 1000, 10_000) == 1000 + 4096  # CLIP_MAX_NEW_TOKENS
    assert new_request_tokens(TRTLLM, 1000, 10_000) == 11_000
    assert new_request_tokens(NO_RESERVATION, 1000, 10_000) == 1000


def test_admission_rule_by_hand() -> None:
    # 1,000 free tokens, running sequences with 800 tokens of output to go: SGLang at the start holds
    # 0.7 · 800 = 560, leaving 440 < 100 + 400; after 600 steps it holds 78.4, leaving 921.6 ≥ 500.
    assert not admits(SGLANG, 1000, 100, 400, 800, 0)
    assert admits(SGLANG, 1000, 100, 400, 800, 600)
    assert not admits(TRTLLM, 1000, 100, 400, 800, 10_000)  # 1000 − 800 = 200 < 500
    assert admits(NO_RESERVATION, 1000, 100, 400, 800, 0)


def _third_request_ttft(reservation: Reservation, capacity: int) -> float:
    model = toy(capacity)
    model.reservation = reservation
    tr = simulate_trace(model, [100, 100, 100], [400, 400, 400], SchedulerConfig(8, 8192), arrivals=[0.0] * 3)
    return tr.first[2] - tr.arrive[2]


def test_guaranteed_no_evict_holds_a_request_until_a_completion() -> None:
    # KV of 1,400 tokens; three requests of 100 in / 400 out arrive together (toy model: prompts 10 µs per
    # token, decode steps 10 ms). TensorRT-LLM admits A (100 + 400 ≤ 1400) and B (free 1300, A's 400 held:
    # 500 ≤ 900) but not C (free 1200, 800 held: 400 < 500). A and B prefill in one 2 ms step, decode their
    # other 399 tokens in 3.99 s and finish at 3.992 s; only then C prefills (1 ms): TTFT 3.993 s.
    assert _third_request_ttft(TRTLLM, 1400) == pytest.approx(3.993)
    # SGLang holds back 0.7 · 800 = 560 of the 1,200 free: 640 ≥ 500, so C joins the first step (3 ms), as
    # with vLLM, which reserves nothing.
    assert _third_request_ttft(SGLANG, 1400) == pytest.approx(0.003)
    assert _third_request_ttft(NO_RESERVATION, 1400) == pytest.approx(0.003)
    # With 1,000 tokens SGLang holds C back too: free 800 − 0.7 · 800 = 240 < 500 at the start, and decoding
    # uses KV faster than the decaying ratio frees it, so C waits for the completions as under TensorRT-LLM.
    assert _third_request_ttft(SGLANG, 1000) == pytest.approx(3.993)
    assert _third_request_ttft(NO_RESERVATION, 1000) == pytest.approx(0.003)


def test_engine_defaults_carry_the_reservation() -> None:
    h100 = DEFAULT.gpus.get("h100-sxm")
    assert engine_defaults("trtllm", h100).reservation == TRTLLM
    assert engine_defaults("sglang", h100).reservation == SGLANG
    assert engine_defaults("vllm", h100, "0.11.0").reservation == NO_RESERVATION


@settings(max_examples=40, deadline=None)
@given(lengths=st.lists(st.tuples(st.integers(1, 300), st.integers(1, 300)), min_size=1, max_size=30),
       gaps=st.lists(st.floats(0.0, 0.05), min_size=30, max_size=30))
def test_guaranteed_no_evict_never_preempts(lengths: list[tuple[int, int]], gaps: list[float]) -> None:
    # Whatever arrives, a scheduler that reserves every request's whole output never runs out of KV for the
    # next token (TensorRT-LLM's GUARANTEED_NO_EVICT), while every request still completes.
    model = toy(700)
    model.reservation = TRTLLM
    inp, out = [i for i, _ in lengths], [o for _, o in lengths]
    arrivals = [sum(gaps[: k + 1]) for k in range(len(lengths))]
    tr = simulate_trace(model, inp, out, SchedulerConfig(8, 8192), arrivals=arrivals)
    assert tr.preemptions == 0
    assert all(f >= a for f, a in zip(tr.finish, tr.arrive, strict=True))
