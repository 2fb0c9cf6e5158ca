"""Requests for the simulator: when they arrive and how long they are.

Arrivals: open loop, Poisson at ``rate_rps`` (exponential gaps, first request at t = 0, as
``benchmark_serving --request-rate`` sends them) or the times of a trace CSV; closed loop with
``concurrency`` clients (``benchmark_serving --max-concurrency``), whose arrival times the simulator
sets. Lengths: fixed; uniform integers in [L·(1 − r), L·(1 + r)] (at least 1) for a range ratio r in [0, 1]
about the mean L (vLLM's random dataset, ``--random-range-ratio``, r < 1 there; r = 1 gives lengths from 1 to
2L, the spread of SGLang's ``bench_serving`` and older vLLM at their default ratio 0, whose lengths are
uniform in [1, N] around a mean N/2; ``[ρN, N]`` at ratio ρ is r = (1 − ρ)/(1 + ρ) about the mean
N(1 + ρ)/2); drawn from an empirical histogram CSV of (input_tokens,
output_tokens, probability) rows whose probabilities sum to 1; or shaped as a named dataset's sampled pairs
(``dataset_lengths``: ShareGPT as ``benchmark_serving`` samples it) scaled to the given means.

Lengths and gaps use separate random streams of the seed, so the same seed gives the same lengths at
every rate and arrival times that only scale with 1 / rate (common random numbers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gpuplan.optimizer.errors import InputError
from gpuplan.optimizer.serving.dataset_lengths import dataset_request_lengths

from gpuplan.rows import read_cells

PROBABILITY_TOLERANCE = 1e-6
MAX_TOKENS = 100_000_000  # per request, as workload files and the CLI's --input / --output
MAX_ARRIVAL_S = 1e9  # about 32 years: later arrival times overflow nothing, but no trace is that long
MAX_RATE_RPS = 1e6  # as a workload's rate_rps
MAX_POOL = 10_000_000  # distinct prompts a client can cycle through


HISTOGRAM_COLUMNS = ("input_tokens", "output_tokens", "probability")
TRACE_COLUMNS = ("arrival_s", "input_tokens", "output_tokens")


@dataclass(frozen=True)
class Requests:
    input_tokens: list[int]
    output_tokens: list[int]
    arrivals: list[float] | None  # None: closed loop
    concurrency: int | None
    prompt_ids: list[int] | None = None  # which of a pool of distinct prompts each request sends (None: all distinct)


def _rows(path: Path, required: tuple[str, ...], known: tuple[str, ...]) -> list[tuple[int, dict[str, str | None]]]:
    """The rows of a trace or histogram CSV, read as every user table is (regular file, bounded, UTF-8, no
    column twice, no row longer than the header); a missing or unknown column (a misspelt ``input_tokens``
    would otherwise be ignored) or no rows is one line naming the file."""
    rows = list(read_cells(path, required, InputError, known=known))
    if not rows:
        raise InputError(f"{path}: no rows")
    return rows


def _number(path: Path, line: int, row: dict[str, str | None], column: str, kind: type) -> float:
    """A cell as ``kind``: integers (token counts) in [1, MAX_TOKENS], floats (times, probabilities) finite
    and ≥ 0."""
    try:
        cell = row[column]
        if cell is not None and not cell.isascii():  # Python reads '١٠٠' (Arabic-Indic digits) as 100
            raise ValueError(cell)
        value = kind(cell)
    except (TypeError, ValueError):
        raise InputError(f"{path}, row {line}, column '{column}': not a number ({row[column]!r:.60})") from None
    if kind is int and not 1 <= value <= MAX_TOKENS:
        raise InputError(f"{path}, row {line}, column '{column}': must be an integer in [1, {MAX_TOKENS:,}], "
                         f"got {value}")
    if not (math.isfinite(value) and value >= 0):
        raise InputError(f"{path}, row {line}, column '{column}': must be a finite number ≥ 0, got {value}")
    return value


def read_histogram(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(input_tokens, output_tokens, probability) columns; probabilities must sum to 1 (± 1e-6)."""
    rows = _rows(path, HISTOGRAM_COLUMNS, HISTOGRAM_COLUMNS)
    inp, out, prob = [], [], []
    for line, row in rows:
        inp.append(int(_number(path, line, row, "input_tokens", int)))
        out.append(int(_number(path, line, row, "output_tokens", int)))
        p = _number(path, line, row, "probability", float)
        if p > 1:
            raise InputError(f"{path}, row {line}, column 'probability': must be in [0, 1], got {p}")
        prob.append(p)
    total = sum(prob)
    if abs(total - 1.0) > PROBABILITY_TOLERANCE:
        raise InputError(f"{path}: probabilities sum to {total:.6g}, not 1")
    return np.array(inp), np.array(out), np.array(prob) / total


def read_trace(path: Path) -> tuple[list[float], list[int] | None, list[int] | None]:
    """arrival_s column (sorted, ≥ 0) and optional input_tokens / output_tokens columns."""
    rows = _rows(path, ("arrival_s",), TRACE_COLUMNS)
    times: list[float] = []
    lengths: dict[str, list[int]] = {c: [] for c in ("input_tokens", "output_tokens") if c in rows[0][1]}
    for line, row in rows:
        t = _number(path, line, row, "arrival_s", float)
        if t > MAX_ARRIVAL_S:
            raise InputError(f"{path}, row {line}, column 'arrival_s': {t:g} s is beyond {MAX_ARRIVAL_S:g} s")
        if times and t < times[-1]:
            raise InputError(f"{path}, row {line}: arrival_s {t:g} is earlier than the row before "
                             f"({times[-1]:g}); the trace must be sorted by arrival time")
        times.append(t)
        for c, values in lengths.items():
            values.append(int(_number(path, line, row, c, int)))
    return times, lengths.get("input_tokens"), lengths.get("output_tokens")


def uniform_lengths(mean: int, ratio: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """Integers uniform in [⌊L(1 − r)⌋, ⌊L(1 + r)⌋], at least 1 (vLLM random dataset; r = 1: 1 … 2L)."""
    if ratio == 0:
        return np.full(n, mean, dtype=np.int64)
    lo, hi = max(1, int(mean * (1 - ratio))), max(1, int(mean * (1 + ratio)))
    return rng.integers(lo, hi + 1, size=n)


DEFAULT_REQUESTS = 1000


def make_requests(input_tokens: int, output_tokens: int, requests: int | None, seed: int = 0,
                  rate_rps: float | None = None, concurrency: int | None = None, trace: Path | None = None,
                  range_ratio: float = 0.0, lengths_csv: Path | None = None, dataset: str | None = None,
                  prompt_pool: int | None = None) -> Requests:
    """The request stream of one simulation (exactly one of rate_rps, concurrency, trace); ``requests``
    None means every row of a trace, else DEFAULT_REQUESTS. ``prompt_pool`` P: the client sends prompts drawn
    uniformly, with replacement, from P distinct prompts (AIPerf and GenAI-Perf synthetic data: a pool of
    ``--num-dataset-entries`` conversations, default 100, each request a random choice from it); a prompt's
    length is the one drawn for its pool entry, so a repeat is the same prompt."""
    if sum(x is not None for x in (rate_rps, concurrency, trace)) != 1:
        raise InputError("give exactly one of --rate, --concurrency or --trace")
    if not 0 <= range_ratio <= 1:
        raise InputError(f"--input-range-ratio must be in [0, 1], got {range_ratio}")
    if sum(x not in (None, 0.0) for x in (range_ratio, lengths_csv, dataset)) > 1:
        raise InputError("give at most one of --input-range-ratio, --lengths or --dataset")
    if requests is None:
        requests = DEFAULT_REQUESTS if trace is None else 2**62
    for name, v in (("--input", input_tokens), ("--output", output_tokens), ("--requests", requests)):
        if v <= 0:
            raise InputError(f"{name} must be a positive integer, got {v}")
    if rate_rps is not None and not 0 < rate_rps <= MAX_RATE_RPS:
        raise InputError(f"--rate must be in (0, {MAX_RATE_RPS:g}] requests/s, got {rate_rps}")
    if seed < 0:
        raise InputError(f"--seed must be ≥ 0, got {seed}")
    if concurrency is not None and concurrency <= 0:
        raise InputError(f"--concurrency must be a positive integer, got {concurrency}")
    if prompt_pool is not None and not 1 <= prompt_pool <= MAX_POOL:
        raise InputError(f"--prompt-pool must be an integer in [1, {MAX_POOL:,}], got {prompt_pool}")
    if prompt_pool is not None and trace is not None:
        raise InputError("--prompt-pool applies to generated requests, not to a --trace (its rows are the prompts)")
    arrivals = None
    t_inp = t_out = None
    if trace is not None:
        arrivals, t_inp, t_out = read_trace(trace)
        requests = min(requests, len(arrivals))
        arrivals = arrivals[:requests]
    length_rng = np.random.default_rng([seed, 1])
    drawn = max(requests, prompt_pool or 0)  # a pool longer than the run draws a length for every entry
    if lengths_csv is not None:
        h_inp, h_out, prob = read_histogram(lengths_csv)
        pick = length_rng.choice(len(prob), size=drawn, p=prob)
        inp, out = h_inp[pick], h_out[pick]
    elif dataset is not None:
        inp, out = dataset_request_lengths(dataset, input_tokens, output_tokens, drawn, length_rng)
    else:
        inp = uniform_lengths(input_tokens, range_ratio, drawn, length_rng)
        out = uniform_lengths(output_tokens, range_ratio, drawn, length_rng)
    ids = None
    if prompt_pool is not None:
        ids = np.random.default_rng([seed, 3]).integers(0, prompt_pool, size=requests)
        inp = inp[ids]
    inp_l, out_l = inp[:requests].tolist(), out[:requests].tolist()
    if t_inp is not None:
        inp_l = t_inp[:requests]
    if t_out is not None:
        out_l = t_out[:requests]
    if rate_rps is not None:
        gaps = np.random.default_rng([seed, 2]).standard_exponential(requests) / rate_rps
        arrivals = np.concatenate([[0.0], np.cumsum(gaps[:-1])]).tolist()
        if arrivals[-1] > MAX_ARRIVAL_S:
            raise InputError(f"--rate {rate_rps:g} req/s spreads {requests:,} requests over {arrivals[-1]:.3g} s, "
                             f"beyond {MAX_ARRIVAL_S:g} s: give a higher rate or fewer requests")
    return Requests(input_tokens=inp_l, output_tokens=out_l, arrivals=arrivals,
                    concurrency=min(concurrency, requests) if concurrency else None,
                    prompt_ids=None if ids is None else ids.tolist())
