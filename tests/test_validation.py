"""The shipped published measurements, the default calibration's error, and the calibration fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from gpuplan.models.catalog import resolve
from gpuplan.optimizer.serving.validation import calibrate, compare, read_measurements, summarise
from gpuplan.optimizer.tables import Tables

MEASURED = Path(__file__).parent / "data" / "measured.csv"


def test_measured_set_is_broad_and_sourced() -> None:
    rows = read_measurements(MEASURED)
    assert len(rows) >= 40
    assert all(r.source and r.as_of for r in rows)
    batch1 = [r for r in rows if r.metric == "decode_tok_s_per_user"]
    at_load = [r for r in rows if r.metric in ("tpot_ms", "decode_tok_s") and r.batch > 1]
    assert len(batch1) >= 20 and len(at_load) >= 20
    assert {r.tp for r in at_load} >= {1, 2, 4, 8}
    assert len({r.model for r in rows} & {"mixtral-8x7b", "deepseek-r1", "deepseek-v3", "qwen3-30b-a3b"}) >= 2
    assert {r.gpu for r in batch1} & {"m2-ultra", "m3-max", "m4-max"} and {r.gpu for r in batch1} & {"rtx-4090"}


def test_default_calibration_meets_the_error_goals_on_dense_rows_at_moderate_load() -> None:
    # The shipped roofline calibration is held to its goals where issue 8 says it holds: dense models up to
    # batch / concurrency 256. MoE rows (DeepSeek-R1, gpt-oss, Qwen3 MoE, Llama 4) and saturated or
    # all-requests-at-once runs are what the step model and simulator of issue 8 must bring in; their error is
    # reported by `gpuplan validate`, not hidden here.
    rows = [r for r in read_measurements(MEASURED) if not resolve(r.model).arch.is_moe and r.batch <= 256]
    summary = {s.metric: s for s in summarise(compare(rows, Tables()))}
    assert summary["decode_tok_s_per_user"].median_ape_pct <= 15
    assert summary["decode_tok_s"].median_ape_pct <= 25
    assert summary["tpot_ms"].median_ape_pct <= 25


def test_calibration_fitted_on_half_improves_the_other_half() -> None:
    rows = [r for r in read_measurements(MEASURED) if r.engine == "llama.cpp"]
    train, held_out = rows[::2], rows[1::2]
    tables = Tables()
    fitted = tables.with_calibration(calibrate(train, tables, "train half"))

    def median_ape(t: Tables) -> float:
        return float(np.median([abs(c.error_pct) for c in compare(held_out, t)]))

    assert median_ape(fitted) < median_ape(tables)
