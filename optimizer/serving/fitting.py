"""Fitting the calibration to measurements (``gpuplan calibrate``) and leave-one-source-out validation.

Measured rows are grouped by the calibration row (cell) they resolve to. Nine constants (priors.PARAMS) are
fitted in log space relative to their starting values: η_mem, η_cmp, η_prefill, τ_layer, the per-request
time, the per-step engine time, the host time per running sequence, τ_moe (τ_mla moves with it) and η_moe.
Each fit is a MAP estimate: Σ wᵢ² ρ(log(predictedᵢ / measuredᵢ)) + Σ ((θ − centre) / σ)² with ρ soft-L1
at ROBUST_SCALE, wᵢ = n_s^−SOURCE_WEIGHT (n_s: rows of the row's source) and per-constant bounds and prior
widths σ from calibration_priors.csv. A constant moves only where rows of MIN_SOURCES sources depend on it
(``identified``; when all rows come from one source, rows weigh 1 and one source suffices); the per-layer
floors are fitted on latency-bound rows only (``_solve``). Levels
(``fit_calibration``): one adjustment shared by the serving engines (efficiencies and floors), each engine's
'*' row, then GPU-specific rows and version ranges, each centred on the level above. Each is a small scipy
least-squares problem whose Jacobian is evaluated for all perturbed parameter sets in one vectorised call.

Leave-one-source-out: for every source key (validation.source_key), fit on all rows of other sources,
starting from the hand-set defaults (calibration_defaults.csv), and predict the held-out rows. No row is
ever predicted by constants fitted on its own source. With ``simulated``, the rows
``simulated_rows.needs_simulation`` picks are then reported by replaying their benchmark in the simulator
with the fold's fitted calibration (the fit itself stays analytical).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np
from gpuplan.optimizer.parallel import in_processes
from gpuplan.optimizer.serving import fold_cache
from gpuplan.optimizer.serving.calibration import DEFAULTS_CSV, Calibration, CalibrationRow, load_calibration
from gpuplan.optimizer.serving.measurements import source_key
from gpuplan.optimizer.serving.priors import PARAMS, Priors, load_priors
from gpuplan.optimizer.serving.shape import Shape, stack, with_calibration
from gpuplan.optimizer.serving.simulated_rows import simulated_values, tables_key
from gpuplan.optimizer.serving.validation import (
    Case,
    Comparison,
    RowArrays,
    comparisons,
    metric_values,
    predict_cases,
    prepare,
    row_arrays,
)
from gpuplan.optimizer.tables import Tables

MIN_ROWS = 2
# A constant is fitted only where rows of at least MIN_SOURCES sources depend on it (a unit change of its log
# moves their prediction by SENSITIVE or more): one publisher's rows share one harness and one setup, so a
# constant only they see is that setup's, not the engine's; such a constant keeps its prior.
MIN_SOURCES = 2
SENSITIVE = 0.1
# Each source's rows weigh n_s^-SOURCE_WEIGHT in the loss: rows of one publisher are not independent, so
# the data term grows with √rows per source and with the number of sources.
SOURCE_WEIGHT = 0.5
# Engines whose GPU kernels (CUDA graphs, FlashAttention/FlashInfer, grouped GEMMs) share the global level;
# llama.cpp's kernels are a different stack and keep their own centre.
SHARED_ENGINES = ("vllm", "sglang", "trtllm")
# PARAMS the global level adjusts: the hardware efficiencies and the per-layer floors; the engine-specific
# times (per request, per step, per sequence) are each engine's own.
SHARED = tuple(PARAMS.index(p) for p in ("eta_mem", "eta_cmp", "eta_prefill", "layer_us", "moe_layer_us",
                                         "eta_moe"))
# The floors are fitted (with η_mem) on rows with at most LATENCY_BATCH running sequences only.
FLOORS = (PARAMS.index("layer_us"), PARAMS.index("moe_layer_us"))
ETA_MEM = PARAMS.index("eta_mem")
LATENCY_BATCH = 4
PINNED = 1e3  # prior weight of a constant held at its centre
FLOOR = 1e-3  # per-step, per-request and per-sequence times are fitted in log space: keep them above 0
# Robust loss: a row's log error counts quadratically up to ~ROBUST_SCALE and linearly beyond (soft-L1), so
# rows whose load the analytical model cannot represent (bursts of 1000 requests, streaming artefacts) do not
# drag the constants; the prior stays Gaussian.
ROBUST_SCALE = 0.25
JAC_STEP = 1e-3
MAX_NFEV = 30


def _start(row: CalibrationRow) -> np.ndarray:
    return np.array([max(getattr(row, p), FLOOR) for p in PARAMS])


def _bounds(row: CalibrationRow, priors: Priors) -> tuple[np.ndarray, np.ndarray]:
    """The physical bounds of ``row``'s constants, widened to include its own starting value (a calibration
    the user wrote outside them is kept as a possibility, not clipped)."""
    start = _start(row)
    return (np.minimum(priors.array(row.engine, "lower"), start),
            np.maximum(priors.array(row.engine, "upper"), start))


def _evaluate(base, arrays, mla_ratio: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Predictions of stacked cases with PARAMS ``values`` (one row of values per case, or one for all); the
    MLA floor moves with the MoE floor (``mla_ratio`` = each case's mla_layer_us / moe_layer_us)."""
    v = np.broadcast_to(values, (mla_ratio.shape[0], len(PARAMS)))
    s = with_calibration(base, eta_mem=v[:, 0], eta_cmp=v[:, 1], eta_prefill=v[:, 2], layer_us=v[:, 3],
                         moe_layer_us=v[:, 7], mla_layer_us=v[:, 7] * mla_ratio, request_s=v[:, 4] * 1e-3,
                         t_fixed_s=v[:, 5] * 1e-3, seq_s=v[:, 6] * 1e-6, eta_moe=v[:, 8])
    return metric_values(s, arrays)


def _tile(x, reps: int):
    """``reps`` copies of a stacked Shape or RowArrays, one after another (row arrays repeated)."""
    return type(x)(**{f.name: np.tile(getattr(x, f.name), reps) for f in fields(x)})


def _robust(r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Soft-L1 as a residual: g(r) with g² = 2(√(1 + (r/c)²) − 1), c = ROBUST_SCALE (≈ r/c when small,
    √(2|r|/c) when large), and dg/dr."""
    u = r / ROBUST_SCALE
    root = np.sqrt(1 + u * u)
    g = np.sign(u) * np.sqrt(2 * (root - 1))
    safe = np.where(g == 0, 1.0, g)
    return g, np.where(g == 0, 1.0, u / (safe * root)) / ROBUST_SCALE


@dataclass(frozen=True)
class Fold:
    """The stacked cases of one fit with their bounds, starts and row weights."""

    cases: list[Case]
    starts: np.ndarray  # (n, k)
    lower: np.ndarray  # (n, k)
    upper: np.ndarray  # (n, k)
    weights: np.ndarray  # (n,)
    min_sources: int  # sources whose rows must depend on a constant for it to move
    shape: Shape  # the cases' shapes, stacked
    arrays: RowArrays
    mla_ratio: np.ndarray  # (n,) mla_layer_us / moe_layer_us of each case's start
    measured: np.ndarray  # (n,)
    sources: np.ndarray  # (n,) each case's source key (validation.source_key)


def _fold(cases: list[Case], starts, lower, upper, weights, min_sources: int,
          sources: np.ndarray | None = None) -> Fold:
    ratio = np.array([c.shape.mla_layer_us / c.shape.moe_layer_us if c.shape.moe_layer_us else 0.0 for c in cases])
    keys = np.array([source_key(c.m.source) for c in cases]) if sources is None else sources
    return Fold(cases=cases, starts=starts, lower=lower, upper=upper, weights=weights, min_sources=min_sources,
                shape=stack([c.shape for c in cases]), arrays=row_arrays(cases), mla_ratio=ratio,
                measured=np.array([c.m.value for c in cases]), sources=keys)


def make_fold(cases: list[Case], rows: dict, priors: Priors, one_source: bool = False) -> Fold:
    """``one_source``: every measurement of the fit comes from one source (a user calibrating to their own
    runs): there is nothing to generalise across, so rows weigh 1 and one source identifies a constant."""
    keys = np.array([source_key(c.m.source) for c in cases])
    counts = Counter(keys.tolist())
    power = 0.0 if one_source else SOURCE_WEIGHT
    bounds = [_bounds(rows[c.cal_key], priors) for c in cases]
    return _fold(cases, np.array([_start(rows[c.cal_key]) for c in cases]), np.array([b[0] for b in bounds]),
                 np.array([b[1] for b in bounds]), np.array([counts[k] ** -power for k in keys.tolist()]),
                 1 if one_source else MIN_SOURCES, keys)


def _log_errors(fold: Fold, thetas: np.ndarray) -> np.ndarray:
    """log(predicted / measured) of every case for each θ in ``thetas`` (m, k) → (m, n)."""
    k, m, n = len(PARAMS), thetas.shape[0], len(fold.cases)
    base, arrays = (fold.shape, fold.arrays) if m == 1 else (_tile(fold.shape, m), _tile(fold.arrays, m))
    values = np.clip(fold.starts[None] * np.exp(thetas[:, None, :]), fold.lower[None], fold.upper[None])
    predicted = _evaluate(base, arrays, np.tile(fold.mla_ratio, m), values.reshape(-1, k))
    return np.log(predicted / np.tile(fold.measured, m)).reshape(m, n)


def _differences(fold: Fold, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(log errors (n,), ∂ log(predicted) / ∂θ (n, k)) of every case at ``theta``: forward differences, all
    perturbed θ evaluated in one vectorised call."""
    logs = _log_errors(fold, np.vstack([theta, theta + JAC_STEP * np.eye(len(PARAMS))]))
    return logs[0], ((logs[1:] - logs[0]) / JAC_STEP).T


def identified(fold: Fold, theta: np.ndarray) -> np.ndarray:
    """Which constants the fold's rows identify: rows of at least ``fold.min_sources`` sources depend on them."""
    jac = np.abs(_differences(fold, theta)[1])
    return np.array([len(set(fold.sources[jac[:, j] >= SENSITIVE])) >= fold.min_sources
                     for j in range(len(PARAMS))])


def _map(fold: Fold, centre: np.ndarray, sigma: np.ndarray, free: np.ndarray) -> np.ndarray:
    """MAP estimate θ (values = starts · exp(θ), clipped to the bounds): minimise
    Σ w_i² ρ(log(pred_i/meas_i)) + Σ ((θ_j − centre_j) / σ_j)², ρ soft-L1 at ROBUST_SCALE; constants not
    ``free`` or not identified by the rows (``identified``) are held at their centre (``_differences`` gives
    the Jacobian)."""
    weight = np.where(free & identified(fold, centre), 1.0 / sigma, PINNED)

    def residuals(theta: np.ndarray) -> np.ndarray:
        g, _ = _robust(_log_errors(fold, theta[None])[0])
        return np.concatenate([fold.weights * g, weight * (theta - centre)])

    def jacobian(theta: np.ndarray) -> np.ndarray:
        errors, sensitivity = _differences(fold, theta)
        _, slope = _robust(errors)
        return np.vstack([sensitivity * (fold.weights * slope)[:, None], np.diag(weight)])

    from scipy.optimize import least_squares  # here: every command imports this module, only calibrate fits

    return least_squares(residuals, centre.copy(), jac=jacobian, method="trf", max_nfev=MAX_NFEV).x


def _subset(fold: Fold, keep: np.ndarray) -> Fold:
    return _fold([c for c, k in zip(fold.cases, keep, strict=True) if k], fold.starts[keep], fold.lower[keep],
                 fold.upper[keep], fold.weights[keep], fold.min_sources, fold.sources[keep])


def _solve(fold: Fold, centre: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Two stages. (1) The per-layer floors (with η_mem) on the latency-bound rows only (at most
    LATENCY_BATCH sequences running), where they are a large share of the step; (2) every other constant on
    all rows with the floors held. At load the floors would absorb whatever else the model misses (queueing,
    host work, scheduling); without latency-bound rows of MIN_SOURCES sources they keep their prior."""
    floors = np.isin(np.arange(len(PARAMS)), FLOORS)
    latency = np.array([c.running <= LATENCY_BATCH for c in fold.cases])
    centre = centre.copy()
    if latency.any():
        stage1 = _map(_subset(fold, latency), centre, sigma, floors | (np.arange(len(PARAMS)) == ETA_MEM))
        centre[floors] = stage1[floors]
    return _map(fold, centre, sigma, ~floors)


def fit_global(fold: Fold, priors: Priors) -> np.ndarray:
    """One log-space adjustment θ_g shared by every cell of the serving engines: what they have in common,
    the hardware efficiencies and the per-layer floors. The engine-specific times are held at each cell's
    value."""
    sigma = priors.array("*", "sigma_log")
    shared = np.isin(np.arange(len(PARAMS)), SHARED)
    return _solve(fold, np.zeros(len(PARAMS)), np.where(shared, sigma, 1.0 / PINNED))


def _fitted_row(row: CalibrationRow, values: np.ndarray, rows: int, label: str, as_of: str) -> CalibrationRow:
    v = dict(zip(PARAMS, (float(x) for x in values), strict=True))
    mla = row.mla_layer_us * v["moe_layer_us"] / row.moe_layer_us if row.moe_layer_us else row.mla_layer_us
    return row.model_copy(update={
        **{p: round(v[p], 4) for p in ("eta_mem", "eta_cmp", "eta_prefill", "eta_moe", "t_fixed_ms")},
        "layer_us": round(v["layer_us"], 2), "moe_layer_us": round(v["moe_layer_us"], 2), "mla_layer_us": round(mla, 2),
        "request_ms": round(v["request_ms"], 3), "seq_us": round(v["seq_us"], 3),
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


def _parent(key: tuple[str, str, str | None], theta: dict, theta_g: np.ndarray) -> np.ndarray:
    """The centre of a cell's prior: its engine and GPU selector without version range, else the engine's
    '*' row, else the serving engines' shared θ_g (zero: the defaults, for other engines)."""
    engine, gpu, versions = key
    if versions is not None and (engine, gpu, None) in theta:
        return theta[(engine, gpu, None)]
    if gpu != "*" and (engine, "*", None) in theta:
        return theta[(engine, "*", None)]
    return theta_g if engine in SHARED_ENGINES else np.zeros(len(PARAMS))


def _level(key: tuple[str, str, str | None]) -> int:
    return (key[1] != "*") + 2 * (key[2] is not None)


def fit_calibration(cases: list[Case], base: Calibration, label: str, priors: Priors | None = None) -> Calibration:
    """A MAP fit in log space relative to ``base`` with the physical priors (calibration_priors.csv) in
    levels. (1) θ_g over all rows of the serving engines (SHARED_ENGINES): their shared efficiencies and
    floors. (2) Each engine's '*' row on its rows, centred on θ_g (serving engines, prior width
    cell_sigma_log for the shared constants, sigma_log for the engine's own times) or on the defaults
    (others, sigma_log). (3) GPU-specific rows centred on their engine's '*' row (cell_sigma_log), then
    version ranges centred on their row without range with the wide prior (sigma_log), rows weighing 1 and
    one source identifying a constant (early builds: few builds, one or two publishers). A row with fewer
    than MIN_ROWS rows takes its centre (serving engines and ranged rows) or keeps its values (others). Row
    order is kept."""
    priors = priors or load_priors()
    by_key = {(r.engine, r.gpu, r.versions): r for r in base.rows}
    cells = _cells(cases, fit_only=True)
    train = [c for members in cells.values() for c in members]
    if not train:
        return base
    shared = [c for c in train if c.m.engine in SHARED_ENGINES]
    one = len({source_key(c.m.source) for c in train}) == 1
    theta_g = fit_global(make_fold(shared, by_key, priors, one), priors) if shared else np.zeros(len(PARAMS))
    theta: dict[tuple[str, str, str | None], np.ndarray] = {}
    counts: dict[tuple[str, str, str | None], int] = {}
    for key in sorted(by_key, key=lambda k: (_level(k), k[0], k[1], k[2] or "")):
        engine = key[0]
        members = cells.get(key, [])
        centre = _parent(key, theta, theta_g)
        cell_sigma = priors.array(engine, "cell_sigma_log")
        own = priors.array(engine, "sigma_log")
        if _level(key) == 0:
            shared_part = np.isin(np.arange(len(PARAMS)), SHARED) & (engine in SHARED_ENGINES)
            sigma = np.where(shared_part, cell_sigma, own)
        else:
            # A version range (early builds) may sit far from its engine's current row: the engine's wide prior.
            sigma = own if key[2] is not None else cell_sigma if engine in SHARED_ENGINES else own
        if len(members) >= MIN_ROWS:
            # A version range holds a few builds from one or two publishers: as for one source, its rows weigh 1
            # and one publisher identifies a constant (leave-one-source-out predicts each from the other).
            theta[key] = _solve(make_fold(members, by_key, priors, one or key[2] is not None), centre, sigma)
            counts[key] = len(members)
        elif engine in SHARED_ENGINES or key[2] is not None:
            theta[key], counts[key] = centre, 0
    as_of = max(c.m.as_of for c in train)
    fitted = {}
    for key, t in theta.items():
        row = by_key[key]
        lower, upper = _bounds(row, priors)
        values = np.clip(_start(row) * np.exp(t), lower, upper)
        members = cells.get(key, [])
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


_FOLDS: dict[tuple, Calibration] = {}  # fitted fold calibrations of this process (a fit is a pure function)
MAX_FOLDS = 1024


def _remember(key: tuple, calibration: Calibration) -> None:
    """Keep a fitted fold calibration for this process (``_FOLDS``, emptied when it reaches MAX_FOLDS)."""
    if len(_FOLDS) >= MAX_FOLDS:
        _FOLDS.clear()
    _FOLDS[key] = calibration


def leave_one_source_out(rows, tables: Tables, start: Calibration | None = None, simulated: bool = False,
                         workers: int = 1, progress: Callable[[int, int], None] | None = None) -> list[Comparison]:
    """Every row predicted by a calibration fitted, from ``start`` (default: the shipped hand-set
    defaults, calibration_defaults.csv), without any row of its source; ``simulated``: serving-benchmark
    rows replayed in the simulator with that calibration. The folds are fitted in up to ``workers``
    processes (parallel.in_processes; a fit is a pure function, so the result is the same) and memoised per
    process by the rows' content, the start calibration and the hardware and format tables: `validate` with
    and without --analytical, or twice in one session, fits each fold once; with ``GPUPLAN_FOLD_CACHE`` set (and
    one worker), processes share the folds through that folder (fold_cache). ``progress(done, total)`` counts
    the folds fitted."""
    tables = tables.with_calibration(start or load_calibration(DEFAULTS_CSV))
    cases = [prepare(m, tables) for m in rows]
    keys = [source_key(c.m.source) for c in cases]
    sources = sorted(set(keys))
    data = (tuple(m.model_dump_json() for m in rows), tables_key(tables))  # content: not where a row was read
    folds = {key: _FOLDS[(data, key)] for key in sources if (data, key) in _FOLDS}
    todo = [key for key in sources if key not in folds]

    def fold(key: str) -> Calibration:
        train = [c for c, k in zip(cases, keys, strict=True) if k != key]
        return fit_calibration(train, tables.calibration, f"all sources but {key}")

    fitted = fold_cache.folds_from_env(data, todo, fold, progress) if workers == 1 else {}
    rest = [key for key in todo if key not in fitted]
    fitted.update(zip(rest, in_processes(fold, rest, workers, progress), strict=True))
    for key in todo:
        folds[key] = fitted[key]
        _remember((data, key), fitted[key])
    predicted = np.empty(len(cases))
    for key in sources:
        held = [i for i, k in enumerate(keys) if k == key]
        predicted[held] = _predict_with([cases[i] for i in held], folds[key])
        if simulated:
            predicted[held] = simulated_values([cases[i].m for i in held], predicted[held],
                                               tables.with_calibration(folds[key]))
    return comparisons(cases, predicted)


def in_sample(rows, tables: Tables, simulated: bool = False) -> list[Comparison]:
    """Every row predicted with ``tables``' calibration; ``simulated``: serving-benchmark rows replayed in
    the simulator."""
    cases = [prepare(m, tables) for m in rows]
    predicted = predict_cases(cases)
    if simulated:
        predicted = simulated_values([c.m for c in cases], predicted, tables)
    return comparisons(cases, predicted)
