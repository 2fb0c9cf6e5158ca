"""LLMPerf's "inter-token latency" is a request's end-to-end latency over its output tokens (metric
``e2e_per_token_ms``), not the gap between tokens: ray-project/llmperf (commit f1d6bed, 2024-12-09) sums every gap
between streamed chunks, the first gap being the TTFT, and divides by the chunks received. TensorRT-LLM issue 5929
reports it for DeepSeek-R1 at 1,600 and 8,192 prompt tokens; its 8,192-token values exceed the 1,600-token ones by
about the TTFT difference over the 600 output tokens, which the gap between tokens would not show."""

from __future__ import annotations

from pathlib import Path

import pytest
from gpuplan.optimizer.serving.measurements import Measurement, read_measurements
from gpuplan.optimizer.serving.validation import predict
from gpuplan.optimizer.tables import Tables

MEASURED_CSV = Path(__file__).parent / "data" / "measured.csv"

ROW = dict(model="qwen3-8b", gpu="h100-sxm", tp=1, weights="bf16", kv="bf16", input=2000, output=100, batch=1,
           engine="vllm", engine_version="0.11.0", value=1.0, source="x", as_of="2025-11-01")


def _predict(metric: str) -> float:
    return predict(Measurement(**{**ROW, "metric": metric}), Tables())


def test_e2e_per_token_is_e2e_over_output_tokens() -> None:
    # (TTFT + (O - 1) * TPOT) / O: the E2E row's prediction over its 100 output tokens.
    assert _predict("e2e_per_token_ms") == pytest.approx(_predict("e2e_ms") / 100, rel=1e-9)


def test_e2e_per_token_carries_the_ttft_share() -> None:
    # Above the plain decode step by (TTFT - TPOT) / O; with a 2,000-token prompt that share is visible.
    tpot, ttft = _predict("tpot_ms"), _predict("ttft_ms")
    assert _predict("e2e_per_token_ms") == pytest.approx(tpot + (ttft - tpot) / 100, rel=1e-9)
    assert _predict("e2e_per_token_ms") > tpot


def test_issue_5929_rows_read_as_e2e_per_token() -> None:
    # Every LLMPerf row of the issue is read as E2E per output token, and the 8,192-token B200 EP=None value
    # exceeds the 1,600-token one by about (394.11 - 161.04) ms / 600 = 0.39 ms (published: 7.14 - 6.78 = 0.36).
    rows = [r for r in read_measurements(MEASURED_CSV) if "issues/5929" in r.source and r.metric != "ttft_ms"]
    assert rows and all(r.metric == "e2e_per_token_ms" for r in rows)
    b200 = {r.input: r.value for r in rows if r.gpu == "b200" and r.ep == 1}
    assert b200[8192] - b200[1600] == pytest.approx((394.11 - 161.04) / 600, abs=0.05)


def test_replay_reads_e2e_per_token_request_by_request() -> None:
    # LLMPerf divides each request's E2E by that request's output tokens and takes the statistic over requests
    # (token_benchmark_ray.py), so with spread lengths the replay's p50 is the median of E2E_i / O_i, not the
    # median E2E over the mean output.
    import numpy as np
    from gpuplan.optimizer.serving.arrivals import make_requests
    from gpuplan.optimizer.serving.simulated_rows import replay, row_value

    row = Measurement(**{**ROW, "batch": 4, "mode": "closed", "requests": 40, "range_ratio": 0.9,
                         "metric": "e2e_per_token_ms", "percentile": "p50"})
    r = replay(row, Tables())
    outs = np.array(make_requests(2000, 100, 40, seed=0, concurrency=4, range_ratio=0.9).output_tokens)
    per_request = float(np.percentile(r.samples["e2e_ms"] / outs, 50))
    assert row_value(row, r) == pytest.approx(per_request, rel=1e-9)
    assert abs(r.metric("e2e_ms", 50) / 100 / per_request - 1) > 0.01  # the two readings differ here (1.8 %)
