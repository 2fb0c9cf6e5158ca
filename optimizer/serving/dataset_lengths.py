"""Request lengths of a named benchmark dataset (datasets.csv): ShareGPT as ``benchmark_serving`` samples it.

A dataset row gives the published mean and standard deviation of its prompt and output lengths and the
filter the benchmark applies when sampling it (both sides at least ``min_tokens``, the prompt at most
``max_input_tokens``, prompt + output at most ``max_total_tokens``). Each side is drawn from the lognormal with
the published moments, the two sides independently (no source gives their correlation), pairs the filter
drops are dropped, and each side is then scaled so the run's mean equals the mean the benchmark reported
(its tokenizer and the tokens the model generated), the integer lengths keeping the exact total.
"""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path

import numpy as np
from gpuplan.hardware.csvrows import read_rows
from gpuplan.optimizer.errors import InputError
from pydantic import ConfigDict, Field, model_validator

from gpuplan.rows import Sourced

DATASETS_CSV = Path(__file__).with_name("datasets.csv")
DRAW_BATCH = 4096
MAX_DRAWS = 1000  # batches: a filter keeping under ~1/4000 of the draws is refused rather than looped on


class DatasetLengths(Sourced):
    """Published length moments of one dataset and the filter its benchmark samples it with."""

    model_config = ConfigDict(frozen=True)

    dataset: str = Field(min_length=1)
    input_mean_tokens: float = Field(gt=0)
    input_std_tokens: float = Field(ge=0)
    output_mean_tokens: float = Field(gt=0)
    output_std_tokens: float = Field(ge=0)
    min_tokens: int = Field(ge=1)
    max_input_tokens: int = Field(ge=1)
    max_total_tokens: int = Field(ge=2)

    @model_validator(mode="after")
    def _filter_admits_pairs(self) -> DatasetLengths:
        if self.max_input_tokens < self.min_tokens or self.max_total_tokens < 2 * self.min_tokens:
            raise ValueError("the filter admits no pair (max_input_tokens < min_tokens or max_total_tokens < "
                             "2 × min_tokens)")
        return self


@cache
def _rows(path: Path = DATASETS_CSV) -> dict[str, DatasetLengths]:
    return {r.dataset: r for r in read_rows(path, DatasetLengths)}


def dataset_names() -> tuple[str, ...]:
    return tuple(sorted(_rows()))


def dataset_lengths(name: str) -> DatasetLengths:
    rows = _rows()
    if name not in rows:
        raise InputError(f"unknown dataset '{name}' (known: {', '.join(sorted(rows))})")
    return rows[name]


def lognormal_params(mean_tokens: float, std_tokens: float) -> tuple[float, float]:
    """(μ, σ) of the lognormal with the given mean and standard deviation:
    σ² = ln(1 + (std / mean)²), μ = ln(mean) − σ² / 2 (so the median is exp(μ) = mean / exp(σ² / 2))."""
    sigma2 = math.log1p((std_tokens / mean_tokens) ** 2)
    return math.log(mean_tokens) - sigma2 / 2, math.sqrt(sigma2)


def filtered_pairs(spec: DatasetLengths, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` (prompt, output) pairs in the source's tokens: independent lognormal draws rounded to integers,
    kept when the benchmark's filter keeps them, in draw order."""
    mu_i, s_i = lognormal_params(spec.input_mean_tokens, spec.input_std_tokens)
    mu_o, s_o = lognormal_params(spec.output_mean_tokens, spec.output_std_tokens)
    inp: list[np.ndarray] = []
    out: list[np.ndarray] = []
    kept = 0
    for _ in range(MAX_DRAWS * max(1, -(-n // DRAW_BATCH))):
        if kept >= n:
            break
        a = np.rint(rng.lognormal(mu_i, s_i, DRAW_BATCH)).astype(np.int64)
        b = np.rint(rng.lognormal(mu_o, s_o, DRAW_BATCH)).astype(np.int64)
        ok = (a >= spec.min_tokens) & (b >= spec.min_tokens) & (a <= spec.max_input_tokens) & \
            (a + b <= spec.max_total_tokens)
        inp.append(a[ok])
        out.append(b[ok])
        kept += int(ok.sum())
    if kept < n:
        raise InputError(f"dataset '{spec.dataset}': its length filter keeps almost none of the draws "
                         f"({kept} of {n} pairs kept); check min_tokens, max_input_tokens and max_total_tokens")
    return np.concatenate(inp)[:n], np.concatenate(out)[:n]


def scale_to_mean(lengths: np.ndarray, mean_tokens: int) -> np.ndarray:
    """Integers summing to exactly ``mean_tokens`` × n, each 1 + its share of the tokens above that floor:
    yᵢ = 1 + (mean·n − n)·Lᵢ / ΣL, floored, the tokens the floors leave given to the largest fractional parts
    (largest remainder), so the run's mean is the row's mean to the token."""
    n = len(lengths)
    total = mean_tokens * n
    if total < n:
        raise InputError(f"a mean of {mean_tokens} tokens cannot give every request at least 1 token")
    exact = (lengths / lengths.sum()) * (total - n)  # spread what is above the 1-token floor
    base = np.floor(exact).astype(np.int64)
    short = int(total - n - base.sum())
    order = np.argsort(-(exact - base), kind="stable")
    base[order[:short]] += 1
    return base + 1


def dataset_request_lengths(name: str, input_tokens: int, output_tokens: int, n: int,
                            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` (prompt, output) lengths shaped as ``name``'s sampled pairs, scaled to the means
    ``input_tokens`` / ``output_tokens`` (each run total exactly mean × n)."""
    a, b = filtered_pairs(dataset_lengths(name), n, rng)
    return scale_to_mean(a, input_tokens), scale_to_mean(b, output_tokens)
