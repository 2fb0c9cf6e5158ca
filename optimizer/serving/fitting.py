"""Fitting the calibration to measurements (``gpuplan calibrate``) and leave-one-source-out validation.

Measured rows are grouped by the calibration row (cell) they resolve to. Nine constants are fitted in log
space relative to their starting values (PARAMS): η_mem, η_cmp, η_prefill, a scale on the per-layer floor
τ_layer, the per-request time, the per-step engine time, the host time per running sequence, a scale on the
MoE and MLA floors (τ_moe, τ_mla) and η_moe. The loss is Σ ρ(log(predicted / measured)) (ρ: scipy's
soft-L1, quadratic up to ~30 % error, linear beyond) plus a ridge λ² · |θ − centre|² (λ = ``PRIOR``) that
keeps constants the rows say little about near their centre. Three levels (``fit_calibration``): a shared
adjustment of the serving engines' hardware efficiencies and dense floor, then each engine and GPU
selector, then each engine version range. Each is a small scipy least-squares problem whose Jacobian is
evaluated for all perturbed parameter sets in one vectorised call.

Leave-one-source-out: for every source key (validation.source_key), fit on all rows of other sources,
starting from the hand-set defaults (calibration_defaults.csv), and predict the held-out rows. No row is
ever predicted by constants fitted on its own source. With ``simulated``, the rows
``simulated_rows.needs_simulation`` picks are then reported by replaying their benchmark in the simulator
with the fold's fitted calibration (the fit itself stays analytical).
"""

from __future__ import annotations

from dataclasses import fields

import numpy as np
from gpuplan.optimizer.serving.calibration import DEFAULTS_CSV, Calibration, CalibrationRow, load_calibration
from gpuplan.optimizer.serving.roofline import stack, with_calibration
from gpuplan.optimizer.serving.simulated_rows import simulated_values
from gpuplan.optimizer.serving.validation import (
    Case,
    Comparison,
    comparisons,
    metric_values,
    predict_cases,
    prepare,
    row_arrays,
    source_key,
)
from gpuplan.optimizer.tables import Tables

MIN_ROWS = 2
PRIOR = 1.0
PARAMS = ("eta_mem", "eta_cmp", "eta_prefill", "layer_scale", "request_ms", "t_fixed_ms", "seq_us", "moe_scale",
          "eta_moe")
# Engines whose GPU kernels (CUDA graphs, FlashAttention/FlashInfer, grouped GEMMs) share the global level;
# llama.cpp's kernels are a different stack and keep their own centre.
SHARED_ENGINES = ("vllm", "sglang", "trtllm")
SHARED = (0, 1, 2, 3)  # PARAMS the global level adjusts: η_mem, η_cmp, η_prefill, the dense floor scale
LAYER_SCALE, MOE_SCALE = 3, 7  # indices in PARAMS
LATENCY_BATCH = 4
MIN_LATENCY_ROWS = 3
PINNED = 1e3
ETA_MIN = 0.05
FLOOR_MS = 1e-3  # per-step and per-request times are fitted in log space: keep them above 1 µs


def _start(row: CalibrationRow) -> np.ndarray:
    return np.array([row.eta_mem, row.eta_cmp, row.eta_prefill, 1.0, max(row.request_ms, FLOOR_MS),
                     max(row.t_fixed_ms, FLOOR_MS), max(row.seq_us, FLOOR_MS), 1.0, row.eta_moe])


LOWER = np.array([ETA_MIN, ETA_MIN, ETA_MIN, 0.05, FLOOR_MS, FLOOR_MS, FLOOR_MS, 0.05, ETA_MIN])
# Physical ceilings: DRAM streams reach ~95 % of peak bandwidth at best; tuned FP8 GEMMs reach ~0.7 of the
# dense tensor peak (DeepGEMM README: up to 1358 TFLOPS on H800, whose dense FP8 peak is 1979), so η_cmp and
# η_prefill stop at 0.85.
UPPER = np.array([0.95, 0.85, 0.85, 5.0, 300.0, 100.0, 200.0, 5.0, 1.0])
# Robust loss: residuals beyond ~30 % (0.25 in log) count linearly, not quadratically, so rows whose load the
# analytical model cannot represent (bursts of 1000 requests, streaming artefacts) do not drag the constants.
ROBUST_SCALE = 0.25
JAC_STEP = 1e-3
MAX_NFEV = 30


def _evaluate(base, arrays, layers: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Predictions of stacked cases with PARAMS ``values`` (one row of values per case, or one for all).
    ``layers`` holds each case's (layer_us, moe_layer_us, mla_layer_us) before scaling."""
    v = np.broadcast_to(values, (layers.shape[0], len(PARAMS)))
    s = with_calibration(base, eta_mem=v[:, 0], eta_cmp=v[:, 1], eta_prefill=v[:, 2],
                         layer_us=layers[:, 0] * v[:, 3], moe_layer_us=layers[:, 1] * v[:, 7],
                         mla_layer_us=layers[:, 2] * v[:, 7], request_s=v[:, 4] * 1e-3, t_fixed_s=v[:, 5] * 1e-3,
                         seq_s=v[:, 6] * 1e-6, eta_moe=v[:, 8])
    return metric_values(s, arrays)


def _tile(x, reps: int):
    """``reps`` copies of a stacked Shape or RowArrays, one after another (row arrays repeated)."""
    return type(x)(**{f.name: np.tile(getattr(x, f.name), reps) for f in fields(x)})


def _solve(cases: list[Case], starts: np.ndarray, centre: np.ndarray, prior: np.ndarray | float = PRIOR) -> np.ndarray:
    """θ minimising Σ ρ(log(pred/meas)) + prior² · |θ − centre|², values = starts · exp(θ) (clipped to bounds).
    The forward-difference Jacobian evaluates all perturbed θ in one vectorised call."""
    n, k = len(cases), len(PARAMS)
    base = stack([c.shape for c in cases])
    arrays = row_arrays(cases)
    layers = np.array([[c.shape.layer_us, c.shape.moe_layer_us, c.shape.mla_layer_us] for c in cases])
    measured = np.array([c.m.value for c in cases])
    wide_base, wide_arrays = _tile(base, k + 1), _tile(arrays, k + 1)
    wide_layers, wide_measured = np.tile(layers, (k + 1, 1)), np.tile(measured, k + 1)
    starts = np.broadcast_to(starts, (n, k))

    def fit_part(theta: np.ndarray) -> np.ndarray:
        values = np.clip(starts * np.exp(theta), LOWER, UPPER)
        return np.log(_evaluate(base, arrays, layers, values) / measured)

    def residuals(theta: np.ndarray) -> np.ndarray:
        return np.concatenate([fit_part(theta), prior * (theta - centre)])

    def jacobian(theta: np.ndarray) -> np.ndarray:
        thetas = np.vstack([theta, theta + JAC_STEP * np.eye(k)])  # (k + 1, k)
        values = np.clip(starts[None, :, :] * np.exp(thetas[:, None, :]), LOWER, UPPER).reshape(-1, k)
        logs = np.log(_evaluate(wide_base, wide_arrays, wide_layers, values) / wide_measured).reshape(k + 1, n)
        jac = ((logs[1:] - logs[0]) / JAC_STEP).T  # (n, k)
        return np.vstack([jac, np.diag(np.broadcast_to(prior, (k,)).astype(float))])

    from scipy.optimize import least_squares  # here: every command imports this module, only calibrate fits

    fit = least_squares(residuals, centre.copy(), jac=jacobian, method="trf", loss="soft_l1",
                        f_scale=ROBUST_SCALE, max_nfev=MAX_NFEV)
    return fit.x


def _prior(cases: list[Case]) -> np.ndarray:
    """Ridge weights: PRIOR for every constant, except that the per-layer floors stay at their centre unless
    the cell has latency-bound rows (batch ≤ LATENCY_BATCH; MoE rows for the MoE/MLA floors) to identify
    them: at load the floors are confounded with the η's and the per-sequence time."""
    latency_bound = [c for c in cases if c.running <= LATENCY_BATCH]
    prior = np.full(len(PARAMS), PRIOR)
    if len(latency_bound) < MIN_LATENCY_ROWS:
        prior[LAYER_SCALE] = PINNED
    if sum(c.moe for c in latency_bound) < MIN_LATENCY_ROWS:
        prior[MOE_SCALE] = PINNED
    return prior


def fit_global(cases: list[Case], rows: dict[tuple[str, str, str | None], CalibrationRow]) -> np.ndarray:
    """One log-space adjustment θ_g shared by every cell: what all engines have in common, the hardware
    efficiencies and the per-layer floors. The engine- and harness-specific times (per request, per step,
    per sequence) are held at each cell's value (a stiff prior)."""
    starts = np.array([_start(rows[c.cal_key]) for c in cases])
    prior = np.where(np.isin(np.arange(len(PARAMS)), SHARED), PRIOR, PINNED)
    return _solve(cases, starts, np.zeros(len(PARAMS)), prior)


def _fitted_row(row: CalibrationRow, values: np.ndarray, rows: int, label: str, as_of: str) -> CalibrationRow:
    eta_mem, eta_cmp, eta_pre, scale, request_ms, fixed_ms, seq_us, moe_scale, eta_moe = (float(x) for x in values)
    return row.model_copy(update={
        "eta_mem": round(eta_mem, 4), "eta_cmp": round(eta_cmp, 4), "eta_prefill": round(eta_pre, 4),
        "layer_us": round(row.layer_us * scale, 2), "moe_layer_us": round(row.moe_layer_us * moe_scale, 2),
        "mla_layer_us": round(row.mla_layer_us * moe_scale, 2), "request_ms": round(request_ms, 3),
        "t_fixed_ms": round(fixed_ms, 4), "seq_us": round(seq_us, 3), "eta_moe": round(eta_moe, 4),
        "source": (f"fitted by gpuplan calibrate on {rows} rows of {label} (start: {row.source})" if rows else
                   f"global adjustment fitted by gpuplan calibrate on {label} (start: {row.source})"),
        "as_of": as_of})


def _cells(cases: list[Case], fit_only: bool = False) -> dict[tuple[str, str, str | None], list[Case]]:
    """Cases grouped by calibration row; with ``fit_only``, only the rows the mean model should fit
    (mean and p50: the tail percentiles are left to the simulator)."""
    cells: dict[tuple[str, str, str | None], list[Case]] = {}
    for c in cases:
        if fit_only and c.m.percentile not in ("mean", "p50"):
            continue
        cells.setdefault(c.cal_key, []).append(c)
    return cells


def fit_calibration(cases: list[Case], base: Calibration, label: str) -> Calibration:
    """Three levels. (1) θ_g over the rows of the serving engines (SHARED_ENGINES). (2) Every row without a
    version range: θ fitted on all rows of its engine and GPU selector, whatever their version, with a ridge
    towards θ_g (towards its own values for other engines). (3) Every row with a version range: θ fitted on
    its own rows with a ridge towards level 2. A row with fewer than MIN_ROWS rows takes its centre
    (serving engines) or keeps its values (others). Row order is kept."""
    by_key = {(r.engine, r.gpu, r.versions): r for r in base.rows}
    cells = _cells(cases, fit_only=True)
    train = [c for members in cells.values() for c in members]
    if not train:
        return base
    shared = [c for c in train if c.m.engine in SHARED_ENGINES]
    zero = np.zeros(len(PARAMS))
    theta_g = fit_global(shared, by_key) if shared else zero
    theta: dict[tuple[str, str, str | None], np.ndarray] = {}
    counts: dict[tuple[str, str, str | None], int] = {}
    for level in (2, 3):
        for key, row in by_key.items():
            if (row.versions is None) != (level == 2):
                continue
            if level == 2:
                members = [c for k, mem in cells.items() if k[:2] == key[:2] for c in mem]
                centre = theta_g if row.engine in SHARED_ENGINES else zero
            else:
                members = cells.get(key, [])
                centre = theta.get((row.engine, row.gpu, None), theta_g if row.engine in SHARED_ENGINES else zero)
            if len(members) >= MIN_ROWS:
                starts = np.array([_start(by_key[c.cal_key]) for c in members])
                theta[key], counts[key] = _solve(members, starts, centre, _prior(members)), len(members)
            elif row.engine in SHARED_ENGINES or level == 3:
                theta[key], counts[key] = centre, 0
    as_of = max(c.m.as_of for c in train)
    fitted = {}
    for key, t in theta.items():
        row = by_key[key]
        members = cells.get(key, [])
        values = np.clip(_start(row) * np.exp(t), LOWER, UPPER)
        fitted[key] = _fitted_row(row, values, counts[key], label, max((c.m.as_of for c in members), default=as_of))
    return Calibration(rows=tuple(fitted.get((r.engine, r.gpu, r.versions), r) for r in base.rows), path=base.path)


def calibrate(rows, tables: Tables, label: str) -> Calibration:
    """Fit the calibration of ``tables`` to measured rows (see module docstring)."""
    return fit_calibration([prepare(m, tables) for m in rows], tables.calibration, label)


def _predict_with(cases: list[Case], calibration: Calibration) -> np.ndarray:
    """Predictions for ``cases`` with each case's cell constants taken from ``calibration``."""
    by_key = {(r.engine, r.gpu, r.versions): r for r in calibration.rows}
    out = np.empty(len(cases))
    for key, members in _cells(cases).items():
        idx = [i for i, c in enumerate(cases) if c.cal_key == key]
        row = by_key[key]
        s = with_calibration(stack([c.shape for c in members]), eta_mem=row.eta_mem, eta_cmp=row.eta_cmp,
                             eta_prefill=row.eta_prefill, layer_us=row.layer_us, moe_layer_us=row.moe_layer_us,
                             mla_layer_us=row.mla_layer_us, request_s=row.request_ms * 1e-3,
                             t_fixed_s=row.t_fixed_ms * 1e-3, seq_s=row.seq_us * 1e-6, eta_moe=row.eta_moe)
        out[idx] = metric_values(s, row_arrays(members))
    return out


def leave_one_source_out(rows, tables: Tables, start: Calibration | None = None,
                         simulated: bool = False) -> list[Comparison]:
    """Every row predicted by a calibration fitted, from ``start`` (default: the shipped hand-set
    defaults, calibration_defaults.csv), without any row of its source; ``simulated``: serving-benchmark
    rows replayed in the simulator with that calibration."""
    tables = tables.with_calibration(start or load_calibration(DEFAULTS_CSV))
    cases = [prepare(m, tables) for m in rows]
    keys = [source_key(c.m.source) for c in cases]
    predicted = np.empty(len(cases))
    for key in sorted(set(keys)):
        train = [c for c, k in zip(cases, keys, strict=True) if k != key]
        held = [i for i, k in enumerate(keys) if k == key]
        cal = fit_calibration(train, tables.calibration, f"all sources but {key}")
        predicted[held] = _predict_with([cases[i] for i in held], cal)
        if simulated:
            predicted[held] = simulated_values([cases[i].m for i in held], predicted[held],
                                               tables.with_calibration(cal))
    return comparisons(cases, predicted)


def in_sample(rows, tables: Tables, simulated: bool = False) -> list[Comparison]:
    """Every row predicted with ``tables``' calibration; ``simulated``: serving-benchmark rows replayed in
    the simulator."""
    cases = [prepare(m, tables) for m in rows]
    predicted = predict_cases(cases)
    if simulated:
        predicted = simulated_values([c.m for c in cases], predicted, tables)
    return comparisons(cases, predicted)
