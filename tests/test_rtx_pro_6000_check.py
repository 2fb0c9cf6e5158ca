"""NVIDIA's RTX PRO 6000 Blackwell Server Edition throughput runs (tests/data/rtx_pro_6000_check.csv).

TensorRT-LLM 1.0's perf overview (commit 00f3768, the same document as the fitted B200 / H200 / H100 rows of
measured.csv) gives this GPU its own tables. Its rows came after the GPU row was written and are scored, never
fitted; README's figures are pinned here with a margin.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from gpuplan.optimizer.tables import Tables
from published_rows import check_row, duplicate_keys, read_rows, shipped_files

DATA = Path(__file__).parent / "data"
CHECK = read_rows(DATA / "rtx_pro_6000_check.csv")
DOC = "NVIDIA/TensorRT-LLM@docs/source/performance/perf-overview.md (commit 00f3768)"


@pytest.mark.parametrize("row", CHECK, ids=lambda r: f"{r['model']}-tp{r['tp']}-{r['input']}-{r['output']}")
def test_row_is_well_formed(row: dict[str, str]) -> None:
    check_row(row, Tables())


def test_rows_are_the_pipeline_parallel_1_columns_at_the_fitted_lengths() -> None:
    # Llama 3.3 70B: 1 GPU; Qwen3-30B-A3B: 1, 2, 4, 8 GPUs (TP, PP1); lengths 1000/1000, 1000/2000, 5000/500,
    # as measured.csv takes from the other GPUs' tables. 1000/1000 single GPU: 1,787 and 9,910 tokens/s.
    assert len(CHECK) == 15 and duplicate_keys(CHECK) == []
    assert all(r["source"].startswith(DOC) and r["gpu"] == "rtx-pro-6000" for r in CHECK)
    one = {(r["model"], r["tp"]): float(r["value"]) for r in CHECK if (r["input"], r["output"]) == ("1000", "1000")}
    assert one[("llama-3.3-70b", "1")] == 1787 and one[("qwen3-30b-a3b", "1")] == 9910
    assert one[("qwen3-30b-a3b", "8")] == 31785


def test_nothing_shipped_reads_the_file() -> None:
    shipped = shipped_files()
    assert [p for p in shipped if "rtx_pro_6000_check" in p.read_text(encoding="utf-8")] == []


def test_scores_stay_at_readme_figures(gpuplan) -> None:
    # README "RTX PRO 6000 check": shipped calibration, median |error| % 26.1 (dense 16.4, MoE 26.9); margin 3.
    run = gpuplan("validate", str(DATA / "rtx_pro_6000_check.csv"), "--summary-only", "--no-loso", "--format", "json")
    assert run.code == 0, run.err
    got = {s["scope"]: s["median_ape_pct"] for s in run.json()["summary"] if s["group"] == "throughput at load"}
    for scope, figure in {"all": 26.1, "dense": 16.4, "moe": 26.9}.items():
        assert got[scope] <= figure + 3.0, (scope, got[scope])
