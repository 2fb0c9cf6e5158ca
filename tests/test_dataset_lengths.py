"""Request lengths of a named dataset (datasets.csv, dataset_lengths): the shipped ShareGPT row reproduces its
source's published statistics, the benchmark's filter holds, and a replay's mean lengths are the row's."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from gpuplan.hardware.csvrows import read_rows
from gpuplan.optimizer.errors import INPUT_ERRORS
from gpuplan.optimizer.serving.arrivals import make_requests
from gpuplan.optimizer.serving.dataset_lengths import (
    DATASETS_CSV,
    DatasetLengths,
    dataset_lengths,
    filtered_pairs,
    lognormal_params,
    scale_to_mean,
)
from gpuplan.optimizer.serving.measurements import read_measurements
from hypothesis import given
from hypothesis import strategies as st

DATA = Path(__file__).parent / "data"


def test_sharegpt_row_is_the_published_table() -> None:
    # Zhu et al., NanoFlow, arXiv:2408.12757v2, Table 4 (section 6.1), ShareGPT: average input 246 (std 547),
    # average output 322 (std 244) tokens. vLLM's ShareGPTDataset.is_valid_sequence: both sides ≥ 4 tokens,
    # prompt ≤ 1024, prompt + output ≤ 2048.
    s = dataset_lengths("sharegpt")
    assert (s.input_mean_tokens, s.input_std_tokens, s.output_mean_tokens, s.output_std_tokens) == (246, 547, 322, 244)
    assert (s.min_tokens, s.max_input_tokens, s.max_total_tokens) == (4, 1024, 2048)
    assert "2408.12757" in s.source and s.as_of == "2025-05-25"


def test_lognormal_reproduces_the_published_moments() -> None:
    # By hand: input σ² = ln(1 + (547/246)²) = ln(5.9443) = 1.78244, σ = 1.33508, median = 246 / e^(σ²/2) = 100.90;
    # output σ² = ln(1 + (244/322)²) = ln(1.57420) = 0.45375, σ = 0.67361, median = 322 / e^0.22688 = 256.64.
    mu_i, s_i = lognormal_params(246, 547)
    mu_o, s_o = lognormal_params(322, 244)
    assert s_i == pytest.approx(1.33508, abs=1e-5) and math.exp(mu_i) == pytest.approx(100.90, abs=0.01)
    assert s_o == pytest.approx(0.67361, abs=1e-5) and math.exp(mu_o) == pytest.approx(256.64, abs=0.01)
    # and the lognormal's closed-form moments give back the published ones: mean e^(μ+σ²/2), std mean·√(e^σ² − 1)
    for (mu, s), (mean, std) in (((mu_i, s_i), (246, 547)), ((mu_o, s_o), (322, 244))):
        m = math.exp(mu + s * s / 2)
        assert m == pytest.approx(mean, rel=1e-12) and m * math.sqrt(math.expm1(s * s)) == pytest.approx(std, rel=1e-12)


def test_filtered_pairs_keep_the_benchmark_filter_and_the_heavy_tail() -> None:
    spec = dataset_lengths("sharegpt")
    a, b = filtered_pairs(spec, 20_000, np.random.default_rng(0))
    assert len(a) == len(b) == 20_000
    assert a.min() >= 4 and b.min() >= 4 and a.max() <= 1024 and (a + b).max() <= 2048
    # The filter only removes long pairs, so the median prompt stays near the lognormal's 100.9 tokens (the
    # 1024 cap cuts ≈ 4 % of prompts: P(ln L > ln 1024) = 1 − Φ((6.931 − 4.614) / 1.335) = 1 − Φ(1.736) = 0.041).
    assert 85 < float(np.median(a)) < 101
    # Heavy tail: a uniform spread about the mean (range ratio 1) never passes twice the mean; ShareGPT prompts
    # do (p99 / mean well above 2), and their median sits far below the mean.
    assert np.percentile(a, 99) / a.mean() > 4 and np.median(a) / a.mean() < 0.7


@given(st.lists(st.integers(1, 5000), min_size=1, max_size=300), st.integers(1, 3000))
def test_scaled_lengths_keep_the_mean_exactly(lengths: list[int], mean: int) -> None:
    y = scale_to_mean(np.array(lengths, dtype=float), mean)
    assert y.sum() == mean * len(lengths) and y.min() >= 1


def test_replayed_means_are_the_rows_means() -> None:
    # gpustack gpt-oss-20b on H100, vLLM 0.11.0, 1000 ShareGPT prompts: total input tokens 215312 and generated
    # tokens 193979 (measured.csv notes), i.e. mean lengths 215 and 194 as the row states them.
    (row,) = [r for r in read_measurements(DATA / "measured.csv") if r.dataset == "sharegpt" and
              r.model == "gpt-oss-20b" and r.gpu == "h100-sxm" and r.engine == "vllm" and r.batch == 1000 and
              r.metric == "decode_tok_s"]
    assert (row.input, row.output, row.requests) == (215, 194, 1000)
    req = make_requests(row.input, row.output, row.requests, seed=0, concurrency=row.batch, dataset="sharegpt")
    assert sum(req.input_tokens) == 215 * 1000 and sum(req.output_tokens) == 194 * 1000
    again = make_requests(row.input, row.output, row.requests, seed=0, concurrency=row.batch, dataset="sharegpt")
    assert (again.input_tokens, again.output_tokens) == (req.input_tokens, req.output_tokens)  # seeded
    other = make_requests(row.input, row.output, row.requests, seed=1, concurrency=row.batch, dataset="sharegpt")
    assert other.input_tokens != req.input_tokens


def test_dataset_lengths_move_a_burst_replay(gpuplan) -> None:
    args = ("simulate", "--model", "gpt-oss-20b", "--gpu", "h100-sxm", "--input", "215", "--output", "194",
            "--concurrency", "400", "--requests", "400", "--format", "json")
    uniform = gpuplan(*args, "--input-range-ratio", "0.99").json()
    sharegpt = gpuplan(*args, "--dataset", "sharegpt").json()
    assert sharegpt == gpuplan(*args, "--dataset", "sharegpt").json()  # same seed, same numbers
    # A burst lasts about as long as its longest output takes to decode: the uniform spread caps outputs at
    # 1.99 × 194 = 386 tokens, ShareGPT's tail reaches past 4 × the mean, so the run is longer and the output
    # rate (total tokens, equal in both runs, over the duration) lower.
    assert sharegpt["duration_s"] > 1.5 * uniform["duration_s"]
    assert sharegpt["output_tok_s"] < uniform["output_tok_s"] / 1.5


@pytest.mark.parametrize(("extra", "needle"), [
    (("--dataset", "sharegpt", "--input-range-ratio", "0.5"), "at most one of"),
    (("--dataset", "alpaca"), "alpaca"),
])
def test_bad_dataset_option_is_one_line(gpuplan, extra: tuple[str, ...], needle: str) -> None:
    r = gpuplan("simulate", "--model", "gpt-oss-20b", "--gpu", "h100-sxm", "--rate", "1", *extra)
    assert r.code == 2 and needle in r.err and "Traceback" not in r.err


def test_bad_datasets_row_names_the_row(tmp_path: Path) -> None:
    lines = DATASETS_CSV.read_text().splitlines()
    header, row = lines[0], lines[1]
    bad = tmp_path / "datasets.csv"
    bad.write_text(f"{header}\n{row.replace('sharegpt,246,547', 'sharegpt,-246,547', 1)}\n")
    with pytest.raises(INPUT_ERRORS, match=r"row 2, column 'input_mean_tokens'"):
        read_rows(bad, DatasetLengths)


def test_a_filter_that_keeps_almost_nothing_is_refused() -> None:
    # Prompt and output of 1 token each: P(L < 1.5) = Φ((0.405 − 4.614) / 1.335) = Φ(−3.15) ≈ 8e-4 for the
    # prompt, Φ((0.405 − 5.548) / 0.674) = Φ(−7.6) ≈ 1e-14 for the output: nothing is kept in 4M draws, refused.
    spec = dataset_lengths("sharegpt").model_copy(update={"min_tokens": 1, "max_input_tokens": 1,
                                                          "max_total_tokens": 2})
    with pytest.raises(INPUT_ERRORS, match="keeps almost none"):
        filtered_pairs(spec, 10, np.random.default_rng(0))
