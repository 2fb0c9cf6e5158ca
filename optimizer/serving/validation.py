"""Predicted vs measured: ``gpuplan validate`` and the fit behind ``gpuplan calibrate``.

Each measured row names a deployment and one metric. Batch-1 rows are isolated requests; rows at
batch > 1 are a saturated closed loop of ``batch`` concurrent requests (utilisation 1): output
tokens/s = O · b / (O · t_step + b · t_prefill), TPOT = t_step / (1 − f), TTFT with the M/D/1 wait.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import numpy as np
from gpuplan.hardware.csvrows import read_rows
from gpuplan.models.catalog import resolve
from gpuplan.optimizer.errors import InputError
from gpuplan.optimizer.serving.calibration import Calibration, CalibrationRow
from gpuplan.optimizer.serving.deployment import perf
from gpuplan.optimizer.tables import Tables
from pydantic import BaseModel, ConfigDict, Field

Metric = Literal["decode_tok_s_per_user", "tpot_ms", "ttft_ms", "itl_ms", "e2e_ms", "decode_tok_s", "prefill_tok_s"]
GROUPS = {"decode_tok_s_per_user": "batch-1 decode", "tpot_ms": "at load", "decode_tok_s": "at load",
          "ttft_ms": "TTFT", "prefill_tok_s": "prefill"}
# Rows the analytical step model predicts: its outputs are means, so p50/p90/p99 rows and the ITL and
# end-to-end latency rows are left to the simulator.
PREDICTED_METRICS = frozenset(GROUPS)


class Measurement(BaseModel):
    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    model: str
    gpu: str
    tp: int = Field(ge=1, le=4096)
    weights: str
    kv: str
    input: int = Field(ge=0, le=100_000_000)
    output: int = Field(ge=0, le=100_000_000)
    batch: int = Field(ge=1, le=1_000_000)
    engine: str
    metric: Metric
    value: float = Field(gt=0, le=1e12)
    source: str
    as_of: str
    notes: str | None = None
    ep: int = Field(default=1, ge=1, le=4096)
    mode: Literal["static", "closed", "open"] = "static"
    rate_rps: float | None = Field(default=None, gt=0, le=1e6)
    engine_version: str | None = None
    percentile: Literal["mean", "p50", "p90", "p99"] = "mean"

    @property
    def predicted_by_step_model(self) -> bool:
        return self.percentile == "mean" and self.metric in PREDICTED_METRICS


def read_measurements(path: Path) -> list[Measurement]:
    rows = read_rows(path, Measurement)
    if not rows:
        raise InputError(f"{path}: no measurement rows")
    return rows


def predict(m: Measurement, tables: Tables) -> float:
    """The model's value for the row's metric, with the row's engine calibration."""
    load = 0.0 if m.batch == 1 else 1.0
    r = perf(resolve(m.model), m.gpu, m.weights, m.kv, m.tp, max(1, m.input), max(1, m.output), m.batch,
             m.engine, utilization=load, tables=tables)
    if m.metric == "decode_tok_s_per_user":
        return r.decode_tok_s_per_user
    if m.metric == "tpot_ms":
        return r.tpot_ms
    if m.metric == "ttft_ms":
        return r.ttft_ms
    if m.metric == "prefill_tok_s":
        return r.prefill_tok_s
    if m.batch == 1 or m.input == 0:
        return r.decode_tok_s
    return m.output * m.batch / (m.output * r.step_ms / 1e3 + m.batch * r.prefill_ms / 1e3)


class Comparison(BaseModel):
    model: str
    gpu: str
    tp: int
    weights: str
    batch: int
    engine: str
    metric: str
    group: str
    measured: float
    predicted: float
    error_pct: float  # (predicted − measured) / measured × 100
    source: str


class Summary(BaseModel):
    group: str
    metric: str
    rows: int
    median_ape_pct: float
    p90_ape_pct: float


def compare(rows: list[Measurement], tables: Tables) -> list[Comparison]:
    """Predicted vs measured for the rows the step model predicts (mean TTFT/TPOT/throughput)."""
    out = []
    for m in rows:
        if not m.predicted_by_step_model:
            continue
        p = predict(m, tables)
        out.append(Comparison(model=m.model, gpu=m.gpu, tp=m.tp, weights=m.weights, batch=m.batch, engine=m.engine,
                              metric=m.metric, group=GROUPS[m.metric], measured=m.value, predicted=p,
                              error_pct=(p - m.value) / m.value * 100, source=m.source))
    return out


def summarise(comparisons: list[Comparison]) -> list[Summary]:
    """Median and 90th-percentile absolute percentage error per metric."""
    out = []
    for metric in sorted({c.metric for c in comparisons}):
        errs = np.array([abs(c.error_pct) for c in comparisons if c.metric == metric])
        out.append(Summary(group=GROUPS[metric], metric=metric, rows=int(errs.size),
                           median_ape_pct=float(np.median(errs)), p90_ape_pct=float(np.percentile(errs, 90))))
    return out


# ---------------- calibration fit ----------------

SEARCH = {
    "eta_mem": np.linspace(0.3, 0.95, 27),
    "t_fixed_ms": np.array([0.0, 0.2, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0]),
    "eta_cmp": np.linspace(0.15, 0.9, 16),
    "eta_prefill": np.linspace(0.1, 0.9, 17),
}
MIN_ROWS_PER_GPU = 2


def _loss(rows: list[Measurement], tables: Tables) -> float:
    """Mean squared log error: symmetric in over- and under-prediction."""
    errs = [math.log(predict(m, tables) / m.value) for m in rows]
    return float(np.mean(np.square(errs)))


def _with_row(base: Calibration, row: CalibrationRow) -> Calibration:
    rest = [r for r in base.rows if (r.engine, r.gpu) != (row.engine, row.gpu)]
    return Calibration(rows=(row, *rest), path=base.path)


def fit_row(rows: list[Measurement], start: CalibrationRow, tables: Tables, sweeps: int = 2) -> CalibrationRow:
    """Coordinate descent over the η's and t_fixed on a grid, minimising mean squared log error."""
    best = start
    for _ in range(sweeps):
        for field, grid in SEARCH.items():
            scores = []
            for value in grid:
                trial = best.model_copy(update={field: float(value)})
                trial_tables = tables.with_calibration(_with_row(tables.calibration, trial))
                scores.append(_loss(rows, trial_tables))
            best = best.model_copy(update={field: float(grid[int(np.argmin(scores))])})
    return best


def calibrate(rows: list[Measurement], tables: Tables, source: str) -> Calibration:
    """One fitted row per (engine, GPU) with ≥ 2 measurements; other rows keep their defaults."""
    fitted: list[CalibrationRow] = []
    groups: dict[tuple[str, str], list[Measurement]] = {}
    for m in (r for r in rows if r.predicted_by_step_model):
        gid = tables.gpus.get(m.gpu).id
        groups.setdefault((m.engine, gid), []).append(m)
    for (engine, gid), members in sorted(groups.items()):
        if len(members) < MIN_ROWS_PER_GPU:
            continue
        gpu = tables.gpus.get(gid)
        start = tables.calibration.lookup(engine, gid, gpu.vendor).model_copy(update={"gpu": gid, "engine": engine})
        row = fit_row(members, start, tables)
        as_of = max(m.as_of for m in members)
        fitted.append(row.model_copy(update={
            "source": f"fitted by gpuplan calibrate on {len(members)} rows of {source}", "as_of": as_of,
            "notes": f"metrics: {', '.join(sorted({m.metric for m in members}))}"}))
    keep = [r for r in tables.calibration.rows if (r.engine, r.gpu) not in {(f.engine, f.gpu) for f in fitted}]
    return Calibration(rows=(*fitted, *keep), path=tables.calibration.path)
