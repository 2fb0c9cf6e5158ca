"""Measured rows: the published or user-measured figures ``gpuplan validate`` and ``gpuplan calibrate`` read,
their CSV reading, the publisher each comes from (leave-one-source-out), the error-table group each falls in,
and the load and engine release each ran at."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from gpuplan.hardware.csvrows import read_rows
from gpuplan.optimizer.errors import InputError
from gpuplan.optimizer.serving.calibration import checked_version, engine_id
from gpuplan.optimizer.serving.releases import release_on
from pydantic import ConfigDict, Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from gpuplan.rows import Sourced

Metric = Literal["decode_tok_s_per_user", "tpot_ms", "ttft_ms", "itl_ms", "e2e_ms", "decode_tok_s", "prefill_tok_s",
                 "e2e_per_token_ms"]
METRICS: tuple[str, ...] = Metric.__args__  # type: ignore[attr-defined]
GROUP_ORDER = ("batch-1 decode", "TPOT at load", "throughput at load", "TTFT", "E2E", "prefill")


Dataset = Literal["random", "sharegpt"]


class Measurement(Sourced):
    """One published or measured figure. ``ep`` (default 1), ``mode`` (default: static at batch 1, closed
    above), ``rate_rps`` (open mode), ``engine_version`` and ``percentile`` (default mean) are optional.

    How the benchmark ran, also optional (empty = the engine's or the replay's default): ``attn_dp``
    data-parallel attention ranks (must divide ``tp``; empty = ``make_layout``'s default, ep when ep > 1);
    ``dataset`` (``random`` or ``sharegpt``) and ``range_ratio`` r, the spread of request lengths about the
    row's mean lengths L (uniform in [L(1 − r), L(1 + r)], r in [0, 1], random dataset only); ``requests``
    the benchmark's ``--num-prompts``; ``max_seqs`` / ``max_batched_tokens`` the server's running-sequence
    and per-step token limits; ``cuda_graphs`` ``off`` when the server ran decode steps without CUDA graphs
    (empty: the engine's capture defaults, graphs.csv); ``prompt_pool`` the number of distinct prompts the client
    drew its requests from (AIPerf / GenAI-Perf synthetic data reuse a pool of 100 by default; empty: every
    prompt distinct), whose repeats hit the server's prefix cache; the simulator's replay of the row draws them
    (simulated_rows), while the analytical model, and so the calibration fit, reads every prompt as new;
    ``mem_fraction`` the server's memory fraction (vLLM --gpu-memory-utilization, SGLang --mem-fraction-static;
    empty: the engine's default), which sets the KV capacity in the fit and the replay alike; ``recv_interval``
    SGLang's ``--scheduler-recv-interval`` (decode steps between the scheduler's polls for new requests; empty:
    1), which the replay runs and the analytical model, and so the fit, does not."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False, extra="forbid")  # a misspelt column is refused
    _where: str = PrivateAttr(default="")  # "file, row N" when read from a CSV (read_measurements)

    model: str
    gpu: str
    tp: int = Field(ge=1, le=4096)
    ep: int = Field(default=1, ge=1, le=4096)
    attn_dp: int | None = Field(default=None, ge=1, le=4096)
    weights: str
    kv: str
    input: int = Field(ge=0, le=100_000_000)
    output: int = Field(ge=0, le=100_000_000)
    batch: int = Field(ge=1, le=1_000_000)
    mode: Literal["static", "closed", "open"] | None = None
    rate_rps: float | None = Field(default=None, gt=0, le=1e6)
    requests: int | None = Field(default=None, ge=1, le=10_000_000)
    dataset: Dataset | None = None
    range_ratio: float | None = Field(default=None, ge=0, le=1)
    engine: str
    engine_version: str | None = None
    max_seqs: int | None = Field(default=None, ge=1, le=1_000_000)
    max_batched_tokens: int | None = Field(default=None, ge=1, le=100_000_000)
    cuda_graphs: bool | None = None
    prompt_pool: int | None = Field(default=None, ge=1, le=10_000_000)
    mem_fraction: float | None = Field(default=None, gt=0, le=1)
    recv_interval: int | None = Field(default=None, ge=1, le=10_000)
    metric: Metric
    percentile: Literal["mean", "p50", "p90", "p99"] = "mean"
    value: float = Field(ge=1e-6, le=1e12)  # above 0 by more than a subnormal: a ratio of it must stay finite

    @model_validator(mode="after")
    def _mode(self) -> Measurement:
        if self.mode is None:
            object.__setattr__(self, "mode", "static" if self.batch == 1 else "closed")
        if self.mode == "open" and self.rate_rps is None:
            raise ValueError("open-loop rows need rate_rps")
        return self

    @field_validator("engine")
    @classmethod
    def _engine_id(cls, v: str) -> str:
        return engine_id(v)

    @field_validator("engine_version")
    @classmethod
    def _version_like(cls, v: str | None) -> str | None:
        checked_version(v)  # its InputError is a ValueError: pydantic names the row and column
        return v

    @field_validator("attn_dp")
    @classmethod
    def _attn_dp_divides_tp(cls, v: int | None, info: ValidationInfo) -> int | None:
        tp = info.data.get("tp")
        if v is not None and tp and tp % v:
            raise ValueError(f"attention DP {v} must divide tp {tp}")
        return v

    @field_validator("range_ratio")
    @classmethod
    def _ratio_is_for_random(cls, v: float | None, info: ValidationInfo) -> float | None:
        if v is not None and info.data.get("dataset") == "sharegpt":
            raise ValueError("range_ratio applies to the random dataset only (sharegpt lengths are the dataset's)")
        return v

    @field_validator("max_batched_tokens")
    @classmethod
    def _tokens_cover_seqs(cls, v: int | None, info: ValidationInfo) -> int | None:
        seqs = info.data.get("max_seqs")
        if v is not None and seqs and v < seqs:
            raise ValueError(f"must be ≥ max_seqs ({seqs}): every running sequence decodes a token per step")
        return v


def read_measurements(path: Path) -> list[Measurement]:
    """The rows of a measured CSV, each remembering its file and row for later errors (``located``)."""
    rows = read_rows(path, Measurement)
    if not rows:
        raise InputError(f"{path}: no measurement rows")
    seen: dict[str, int] = {}
    for line, m in enumerate(rows, start=2):  # read_rows numbers rows the same way
        m._where = f"{path}, row {line}"
        key = m.model_dump_json()  # every column: a row given twice would weigh twice in the fit
        if key in seen:
            raise InputError(f"{path}, row {line}: repeats row {seen[key]} (every column the same)")
        seen[key] = line
    return rows


def source_key(source: str) -> str:
    """The publisher a row comes from, for leave-one-source-out: a github.com URL's owner/repo, another
    URL's host, else the text up to the first ' ' or '@' (e.g. 'owner/repo@file' → 'owner/repo', the same
    key as 'https://github.com/owner/repo/issues/1')."""
    s = source.strip()
    url = re.match(r"https?://([^/\s]+)((?:/[^/\s@]+){0,2})", s)
    if url:
        host = url.group(1).lower().removeprefix("www.")
        return url.group(2).lstrip("/") if host == "github.com" and url.group(2).count("/") == 2 else host
    return re.split(r"[ @]", s, maxsplit=1)[0]


def group_of(m: Measurement) -> str:
    """Metric group used in the error tables (p90 / p99 rows in their own groups: the analytical model
    predicts means; the tail is the simulator's job)."""
    base = _base_group(m)
    return base if m.percentile in ("mean", "p50") else f"{base} {m.percentile}"


def _base_group(m: Measurement) -> str:
    if m.metric == "ttft_ms":
        return "TTFT"
    if m.metric == "prefill_tok_s":
        return "prefill"
    if m.metric == "e2e_ms":
        return "E2E"
    at_load = m.batch > 1 or m.mode == "open"
    if m.metric == "decode_tok_s":
        return "throughput at load" if at_load else "batch-1 decode"
    return "TPOT at load" if at_load else "batch-1 decode"


OPEN_UNCAPPED_CLIENTS = 1_000_000  # an open loop without a client cap: the engine's slot cap binds


def clients_of(m: Measurement) -> int:
    """Requests the benchmark has in flight at once: ``batch`` clients, but no more than the run's requests
    (``--num-prompts``) when fewer were sent. An open loop whose ``batch`` is 1 sets no concurrency cap
    (MEASURED.md): its arrivals are limited only by the run's requests."""
    if m.mode == "open" and m.batch == 1:
        return m.requests or OPEN_UNCAPPED_CLIENTS
    return min(m.batch, m.requests or m.batch)


def load_mode(m: Measurement) -> str:
    """How the analytical model reads the row's load: its ``mode``, except that a closed loop whose clients
    send no more requests than there are clients (``requests`` ≤ ``batch``: each client sends one request,
    as gpustack's 1,000 prompts at --max-concurrency 1000) is one burst, every request at t = 0 and none
    after: ``static``, as the simulator replays it (a steady closed loop would make each request wait
    (N − S)/S services for a slot; a burst drains in waves, (N − S)/(2S) on average: ``queue_wait_s``)."""
    if m.mode == "closed" and m.requests is not None and m.requests <= m.batch:
        return "static"
    return m.mode or "closed"


def dated(m: Measurement) -> Measurement:
    """The row as it is modelled: one that states no ``engine_version`` ran the engine's release of its date
    (releases.release_on at ``as_of``, the newest release the run can have used; None, the current release,
    where the release table has no answer)."""
    if m.engine_version is not None:
        return m
    return m.model_copy(update={"engine_version": release_on(m.engine, m.as_of)})
