"""The calibration fit: physical priors, bounds and what a fold without a source may move."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest
from gpuplan.models.catalog import resolve
from gpuplan.optimizer.serving.calibration import DEFAULTS_CSV, load_calibration
from gpuplan.optimizer.serving.fitting import LATENCY_BATCH, calibrate
from gpuplan.optimizer.serving.measurements import Measurement, read_measurements, source_key
from gpuplan.optimizer.serving.priors import PARAMS, load_priors
from gpuplan.optimizer.serving.validation import prepare
from gpuplan.optimizer.tables import Tables
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

MEASURED = Path(__file__).parent / "data" / "measured.csv"
SERVING = ("vllm", "sglang", "trtllm")


@cache
def _rows() -> tuple[Measurement, ...]:
    return tuple(read_measurements(MEASURED))


def _defaults() -> Tables:
    return Tables().with_calibration(load_calibration(DEFAULTS_CSV))


def _fit(rows: list[Measurement]):
    start = _defaults()
    return start.calibration, calibrate(rows, start, "test rows")


def _latency_bound_moe(r: Measurement) -> bool:
    # At most 4 running sequences (fitting.LATENCY_BATCH): the rows that identify the floors. A batch ≤ 4 caps
    # them, and so does a KV pool that holds no more (gpustack's 32k-token gpt-oss-120b prompts on one H100:
    # vLLM's block count leaves room for 2), so the running count is the one the fit uses (validation.prepare).
    # Every MoE model of the catalog counts (a fixed list missed the Nemotron-3-Nano rows added on 2026-12-01).
    return resolve(r.model).arch.is_moe and prepare(r, _defaults()).running <= LATENCY_BATCH


def _moe_floors(cal) -> dict[tuple[str, str], tuple[float, float]]:
    return {(r.engine, r.gpu): (r.moe_layer_us, r.mla_layer_us) for r in cal.rows if r.engine in SERVING}


def test_without_latency_bound_moe_rows_the_moe_floors_keep_their_prior() -> None:
    # calibration_defaults.csv: moe_layer_us 40, mla_layer_us 25 for every serving engine. At load the floors are
    # confounded with η_moe and the host times, so a fold without batch ≤ 4 MoE rows must leave them there.
    rows = [r for r in _rows() if r.engine in SERVING and not _latency_bound_moe(r)]
    start, fitted = _fit(rows)
    assert _moe_floors(fitted) == _moe_floors(start)
    assert all(v == (40.0, 25.0) for v in _moe_floors(fitted).values())
    # ... while the constants the rows do identify move (the fit ran): the dense floor and η_mem.
    assert any(f.eta_mem != s.eta_mem for f, s in zip(fitted.rows, start.rows, strict=True))


def test_latency_bound_moe_rows_of_one_source_do_not_move_the_floors() -> None:
    # tenstorrent's twelve batch-1 DeepSeek-R1 rows (six decode, six TTFT) are the only latency-bound MoE rows
    # left: one publisher's setup is not the engine's, so the floors stay at the prior (MIN_SOURCES = 2).
    one = "tenstorrent/tt-inference-server"
    rows = [r for r in _rows() if r.engine in SERVING
            and (not _latency_bound_moe(r) or source_key(r.source) == one)]
    assert sum(_latency_bound_moe(r) for r in rows) == 12
    start, fitted = _fit(rows)
    assert _moe_floors(fitted) == _moe_floors(start)


def test_latency_bound_moe_rows_of_two_sources_do_move_the_floors() -> None:
    # The same fit with NVIDIA's batch-1 DeepSeek-R1 ITL rows added (TensorRT-LLM issue 5929) identifies them.
    keep = ("tenstorrent/tt-inference-server", "NVIDIA/TensorRT-LLM")
    rows = [r for r in _rows() if r.engine in SERVING
            and (not _latency_bound_moe(r) or source_key(r.source) in keep)]
    start, fitted = _fit(rows)
    assert _moe_floors(fitted) != _moe_floors(start)


def test_defaults_sit_inside_the_physical_bounds() -> None:
    priors = load_priors()
    assert all(r.source and r.as_of and r.lower < r.upper for r in priors.rows)
    for row in load_calibration(DEFAULTS_CSV).rows:
        lower, upper = priors.array(row.engine, "lower"), priors.array(row.engine, "upper")
        for p, lo, hi in zip(PARAMS, lower, upper, strict=True):
            value = max(getattr(row, p), 1e-3)
            assert lo <= value <= hi, (row.engine, row.gpu, p)


@cache
def _subset() -> tuple[Measurement, ...]:
    # Every 6th row: all engines and most sources, small enough for a property test.
    return _rows()[::6]


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(sorted({source_key(r.source) for r in _rows()[::6]})),
                       st.floats(min_value=0.02, max_value=50.0), min_size=1))
def test_the_fit_never_leaves_its_bounds(scale: dict[str, float]) -> None:
    # Whatever the measurements say (sources off by up to 50× either way), every fitted constant stays inside
    # calibration_priors.csv's physical bounds (rounding to the written decimals aside).
    rows = [r.model_copy(update={"value": r.value * scale.get(source_key(r.source), 1.0)}) for r in _subset()]
    _, fitted = _fit(rows)
    priors = load_priors()
    for row in fitted.rows:
        lower, upper = priors.array(row.engine, "lower"), priors.array(row.engine, "upper")
        for p, lo, hi in zip(PARAMS, lower, upper, strict=True):
            value = getattr(row, p)
            if p == "seq_us" and value == 0:
                continue  # a default of 0 that no row moves is written back unchanged
            assert lo - 1e-3 <= value <= hi + 1e-3, (row.engine, row.gpu, p, value)


def test_validate_rows_carry_the_leave_one_source_out_prediction(gpuplan, tmp_path: Path) -> None:
    lines = MEASURED.read_text().splitlines()
    header, body = lines[0], lines[1:]
    small = tmp_path / "m.csv"
    small.write_text("\n".join([header, *body[:30], *body[42:60]]) + "\n")  # four publishers
    args = ("validate", str(small), "--analytical", "--format", "json")
    first, second = gpuplan(*args), gpuplan(*args)
    assert first.code == 0 and first.out == second.out  # deterministic
    rows = first.json()["rows"]
    assert len(rows) == 48
    for r in rows:
        assert r["loso_error_pct"] == pytest.approx((r["loso_predicted"] - r["measured"]) / r["measured"] * 100,
                                                   rel=1e-4, abs=1e-3)  # JSON keeps 6 significant digits
    # ggml-org's rows fitted without ggml-org differ from the shipped (in-sample) prediction somewhere.
    assert any(r["loso_predicted"] != pytest.approx(r["predicted"], rel=1e-6) for r in rows)
    csv_out = gpuplan("validate", str(small), "--analytical", "--format", "csv")
    assert csv_out.out.splitlines()[0].endswith("loso_predicted,loso_error_pct")
    without = json.loads(gpuplan("validate", str(small), "--analytical", "--no-loso", "--format", "json").out)
    assert "loso_predicted" not in without["rows"][0]


@pytest.mark.parametrize("source", ["NVIDIA/TensorRT-LLM", "tenstorrent/tt-inference-server"])
def test_a_single_source_calibrates_its_own_setup(source: str) -> None:
    # A user calibrating to their own runs has one source: nothing to generalise across, so its rows identify
    # the constants (rows weigh 1). Fitted on half of the source's runs (every other run configuration; the
    # rows of one run stay together), the other half is predicted better than by the defaults (reached:
    # TensorRT-LLM's tables 16.9 → 13.7 %, tenstorrent's DeepSeek-R1 runs 102.5 → 12.3 % median; the defaults now
    # carry most of TensorRT-LLM's physics, so the fit's share of the gain is smaller than it was at 27.5 → 19.3).
    from gpuplan.optimizer.serving.validation import compare

    rows = [r for r in _rows() if source_key(r.source) == source and r.percentile in ("mean", "p50")]
    runs = sorted({(r.model, r.gpu, r.tp, r.ep, r.weights, r.input, r.output, r.batch) for r in rows})
    half = set(runs[::2])
    train = [r for r in rows if (r.model, r.gpu, r.tp, r.ep, r.weights, r.input, r.output, r.batch) in half]
    held_out = [r for r in rows if r not in train]
    start, fitted = _fit(train)

    def median_ape(cal) -> float:
        errs = sorted(abs(c.error_pct) for c in compare(held_out, Tables().with_calibration(cal)))
        return errs[len(errs) // 2]

    assert median_ape(fitted) < 0.85 * median_ape(start)


def test_a_start_outside_the_bounds_is_kept_where_no_row_moves_it() -> None:
    # A user's calibration may hold values outside the physical bounds (an eager engine at 100 µs per layer):
    # the fit widens the bounds to include them rather than clip what no row speaks about. Fitted on
    # llama.cpp rows only, vLLM's row keeps its 100 µs.
    from gpuplan.optimizer.serving.calibration import Calibration

    base = load_calibration(DEFAULTS_CSV)
    rows = tuple(r.model_copy(update={"layer_us": 100.0}) if r.engine == "vllm" and r.gpu == "*" else r
                 for r in base.rows)
    start = Tables().with_calibration(Calibration(rows=rows, path="test"))
    fitted = calibrate([r for r in _rows() if r.engine == "llama.cpp"], start, "llama.cpp rows")
    assert next(r for r in fitted.rows if r.engine == "vllm" and r.gpu == "*").layer_us == 100.0
