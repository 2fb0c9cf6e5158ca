"""InferenceX's dashboard runs of DeepSeek-R1 (tests/data/inferencex_check.csv, read as INFERENCEX_CHECK.md says).

The rows are scored and never fitted: no shipped table or module reads the file, and README reports what the
shipped model scores on it. The guard below pins those figures plus a margin, so a change that makes the model
worse on today's serving runs fails here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from gpuplan.optimizer.serving.measurements import read_measurements
from gpuplan.optimizer.tables import Tables
from published_rows import check_row, duplicate_keys, read_rows, shipped_files

DATA = Path(__file__).parent / "data"
CHECK = read_rows(DATA / "inferencex_check.csv")
MEASURED = read_rows(DATA / "measured.csv")
# The capture every row was read from (InferenceX-app pull request 458).
CAPTURE = ("SemiAnalysisAI/InferenceX-app@528c4146b8f502fcbce8df7870a935a970cbae25 "
           "packages/app/cypress/fixtures/api/benchmarks.json")


@pytest.mark.parametrize("row", CHECK, ids=lambda r: f"{r['gpu']}-{r['engine']}-{r['metric']}-{r['batch']}")
def test_row_is_well_formed(row: dict[str, str]) -> None:
    check_row(row, Tables())


def test_every_row_names_its_run_in_the_capture() -> None:
    assert len(CHECK) == 160
    assert all(r["source"].startswith(CAPTURE) and "actions/runs/" in r["source"] for r in CHECK)
    assert duplicate_keys(CHECK) == []


def test_no_row_repeats_a_measured_row() -> None:
    key = ("model", "gpu", "tp", "ep", "weights", "engine", "engine_version", "input", "output", "batch", "metric",
           "value")
    fitted = {tuple(r[k] for k in key) for r in MEASURED}
    assert [r for r in CHECK if tuple(r[k] for k in key) in fitted] == []


def test_nothing_shipped_reads_the_file() -> None:
    shipped = shipped_files()
    assert [p for p in shipped if "inferencex_check" in p.read_text(encoding="utf-8")] == []


def test_scores_stay_at_readme_figures(gpuplan) -> None:
    # README "Validation", table "InferenceX dashboard check": shipped calibration, simulated, median |error| %.
    # Margin 3 points (a model change that helps elsewhere may cost a little here; more than that fails).
    run = gpuplan("validate", str(DATA / "inferencex_check.csv"), "--summary-only", "--no-loso", "--format", "json")
    assert run.code == 0, run.err
    got = {s["group"]: s["median_ape_pct"] for s in run.json()["summary"] if s["scope"] == "all"}
    readme = {"batch-1 decode": 19.7, "TPOT at load": 21.1, "throughput at load": 16.5, "TTFT": 41.0}
    for group, figure in readme.items():
        assert got[group] <= figure + 3.0, (group, got[group])
    assert len(read_measurements(DATA / "inferencex_check.csv")) == len(CHECK)
