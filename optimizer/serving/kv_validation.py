"""The KV capacity the memory model predicts against what the engines log at startup (tests/data/kv_capacity.csv).

Each row is one number an engine printed: ``kv_tokens`` (vLLM 'GPU KV cache size: N tokens', SGLang
'max_total_num_tokens' / 'KV Cache is allocated. #tokens', TensorRT-LLM 'tokens in paged KV cache') or
``kv_gib`` (vLLM 'Available KV cache memory', SGLang K + V size, per GPU), with the settings the log states
(``mem_fraction`` = --gpu-memory-utilization / --mem-fraction-static / kv_cache_free_gpu_mem_fraction,
``max_model_len``, ``max_num_seqs``, ``max_batched_tokens``; empty = the engine's default). Two checks:

- end to end (rows with a GPU): the pool from the memory model (engine_capacity.tp_pool_bytes) and, for ``kv_tokens``,
  the engine's count of it (kv_capacity.reported_tokens);
- accounting (``kv_tokens`` rows with ``logged_kv_gib``): the engine's count of the pool it logged, which
  isolates the per-token arithmetic (layers, heads, sliding windows, latent width, page size) from the budget.

Error = (predicted − logged) / |logged| in %; ``kv_gib`` rows near zero (a model that barely fits) are
scored against the GPU's memory instead, so that −2.14 GiB predicted as −1 GiB is a 1.4 % miss of an 80 GB
card, not 53 %.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from gpuplan.hardware.csvrows import read_rows
from gpuplan.models.catalog import resolve
from gpuplan.models.memory import GIB
from gpuplan.optimizer.errors import InputError
from gpuplan.optimizer.serving.calibration import checked_version, version_in_range
from gpuplan.optimizer.serving.engine_capacity import VLLM_V1, tp_pool_bytes
from gpuplan.optimizer.serving.kv_capacity import reported_tokens
from gpuplan.optimizer.serving.releases import release_on
from gpuplan.optimizer.tables import DEFAULT, Tables
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from gpuplan.rows import Sourced

KV_CAPACITY_CSV = Path(__file__).resolve().parents[2] / "tests" / "data" / "kv_capacity.csv"
# vLLM V0 (before 0.8) profiles max(max_model_len, 2048) tokens, or 512-token chunks when chunked prefill is
# switched on by default above a 32k context (vllm/engine/arg_utils.py, 0.6)
V0_MIN_BATCHED_TOKENS, V0_CHUNKED_ABOVE, V0_CHUNK_TOKENS = 2048, 32768, 512
SMALL_POOL_SHARE = 0.05  # a kv_gib row below 5 % of the GPU's memory is scored against the GPU's memory


class KvRow(Sourced):
    """One logged KV capacity figure and the deployment it came from (module docstring)."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False, extra="forbid")

    model: str = Field(min_length=1)
    gpu: str | None = None
    tp: int = Field(ge=1)
    weights: str
    kv: str
    engine: Literal["vllm", "sglang", "trtllm"]
    engine_version: Annotated[str | None, AfterValidator(checked_version)] = None
    mem_fraction: float | None = Field(default=None, gt=0, le=1)
    max_model_len: int | None = Field(default=None, ge=1)
    max_num_seqs: int | None = Field(default=None, ge=1)
    max_batched_tokens: int | None = Field(default=None, ge=1)
    metric: Literal["kv_tokens", "kv_gib"]
    value: float
    logged_kv_gib: float | None = None

    @model_validator(mode="after")
    def _checkable(self) -> KvRow:
        """A row needs a GPU (end to end) or, for kv_tokens, the pool it logged (accounting)."""
        if not self.gpu and (self.metric == "kv_gib" or self.logged_kv_gib is None):
            raise ValueError("a row without 'gpu' needs metric kv_tokens and logged_kv_gib (nothing to check)")
        return self


class KvCheck(BaseModel):
    check: Literal["end-to-end", "accounting"]
    model: str
    gpu: str | None
    tp: int
    engine: str
    metric: str
    logged: float
    predicted: float
    error_pct: float
    source: str


def read_kv_rows(path: Path = KV_CAPACITY_CSV) -> list[KvRow]:
    rows = read_rows(path, KvRow)
    if not rows:
        raise InputError(f"{path}: no rows to check")
    return rows


def _error_pct(row: KvRow, predicted: float, gpu_gib: float | None) -> float:
    scale = abs(row.value)
    if row.metric == "kv_gib" and gpu_gib is not None and scale < SMALL_POOL_SHARE * gpu_gib:
        scale = gpu_gib
    return 100.0 * (predicted - row.value) / scale if scale else 0.0


def check_row(row: KvRow, tables: Tables = DEFAULT) -> list[KvCheck]:
    """The row's end-to-end and accounting checks (those its columns allow), at the engine release the row
    states, else at its date's (releases.release_on: a log published on ``as_of`` came from a release out by then)."""
    if row.engine_version is None:
        row = row.model_copy(update={"engine_version": release_on(row.engine, row.as_of)})
    m = resolve(row.model)
    kvfmt = tables.formats.kv_format(row.kv)
    out: list[KvCheck] = []
    base = dict(model=m.id, gpu=row.gpu, tp=row.tp, engine=row.engine, metric=row.metric, logged=row.value,
                source=row.source)
    if row.gpu:
        g = tables.gpus.get(row.gpu)
        cal = tables.calibration.lookup(row.engine, g.id, g.vendor, g.arch, row.engine_version)
        context = row.max_model_len or m.arch.max_context
        tokens = row.max_batched_tokens
        if tokens is None and row.engine == "vllm" and row.engine_version and not version_in_range(
                row.engine_version, VLLM_V1):
            tokens = max(context, V0_MIN_BATCHED_TOKENS) if context <= V0_CHUNKED_ABOVE else V0_CHUNK_TOKENS
        pool = tp_pool_bytes(m.arch, g, tables.formats.weight(row.weights), row.tp, context, cal, row.engine_version,
                             fraction=row.mem_fraction, max_num_seqs=row.max_num_seqs,
                             batched_tokens=tokens)
        pred = pool / GIB if row.metric == "kv_gib" else float(reported_tokens(m.arch, kvfmt, row.engine, pool, row.tp))
        out.append(KvCheck(check="end-to-end", predicted=round(pred, 4),
                           error_pct=round(_error_pct(row, pred, g.memory_gib), 2), **base))
    if row.metric == "kv_tokens" and row.logged_kv_gib is not None:
        pred = float(reported_tokens(m.arch, kvfmt, row.engine, row.logged_kv_gib * GIB, row.tp))
        out.append(KvCheck(check="accounting", predicted=pred, error_pct=round(_error_pct(row, pred, None), 2),
                           **base))
    return out


def check_all(rows: list[KvRow], tables: Tables = DEFAULT) -> list[KvCheck]:
    return [c for r in rows for c in check_row(r, tables)]


class KvSummary(BaseModel):
    check: str
    group: str
    rows: int
    median_ape_pct: float
    p90_ape_pct: float


def summarise_kv(checks: list[KvCheck]) -> list[KvSummary]:
    """Median and 90th percentile absolute % error per check, over all rows, per metric and per engine."""
    out = []
    for check in ("end-to-end", "accounting"):
        mine = [c for c in checks if c.check == check]
        groups = [("all", mine)] + [(k, [c for c in mine if c.metric == k]) for k in ("kv_tokens", "kv_gib")]
        groups += [(e, [c for c in mine if c.engine == e]) for e in ("vllm", "sglang", "trtllm")]
        for name, cs in groups:
            if cs:
                ape = np.abs([c.error_pct for c in cs])
                out.append(KvSummary(check=check, group=name, rows=len(cs),
                                     median_ape_pct=round(float(np.median(ape)), 2),
                                     p90_ape_pct=round(float(np.percentile(ape, 90)), 2)))
    return out
