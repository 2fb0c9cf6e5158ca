"""The held-out published measurements (tests/data/holdout.csv, sources in tests/data/HOLDOUT.md).

The rows come from publishers, pages and repositories that tests/data/measured.csv does not use, and no
calibration may be fitted on them: they exist to measure how the model does on runs it has not seen.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest
from gpuplan.optimizer.tables import Tables
from published_rows import check_row, duplicate_keys, origins, read_rows, shipped_files

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).parent.parent
HOLDOUT = read_rows(DATA / "holdout.csv")
MEASURED = read_rows(DATA / "measured.csv")


def _origins(rows: list[dict[str, str]]) -> set[str]:
    return set().union(*(origins(r["source"]) for r in rows))


def _claimed_rows() -> dict[str, int]:
    """Rows per source as HOLDOUT.md's Sources table states them, keyed by the origin of the cell's first link."""
    section = (DATA / "HOLDOUT.md").read_text(encoding="utf-8").split("## Sources", 1)[1].split("\n## ", 1)[0]
    claimed: dict[str, int] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        link = re.search(r"\]\((https?://[^)\s]+)\)", cells[1]) if len(cells) >= 5 else None
        if link and cells[3].isdigit():
            (origin,) = origins(link.group(1))
            claimed[origin] = int(cells[3])
    return claimed


@pytest.mark.parametrize("row", HOLDOUT, ids=lambda r: f"{r['model']}-{r['gpu']}-{r['metric']}-{r['batch']}")
def test_row_is_well_formed(row: dict[str, str]) -> None:
    check_row(row, Tables())


def test_no_row_is_listed_twice() -> None:
    assert duplicate_keys(HOLDOUT) == []


def test_every_row_names_where_it_was_read() -> None:
    assert all(origins(r["source"]) for r in HOLDOUT)


def test_no_holdout_source_is_a_measured_source() -> None:
    # Normalised to the repository (github.com/owner/repo) or the host of every URL in the source.
    assert all(origins(r["source"]) for r in MEASURED)
    assert _origins(HOLDOUT) & _origins(MEASURED) == set()


def test_the_origin_normaliser_sees_through_url_and_repo_forms() -> None:
    same = {"github.com/nvidia/tensorrt-llm"}
    assert origins("NVIDIA/TensorRT-LLM@docs/source/performance.md (commit 138f96d)") == same
    assert origins("https://github.com/NVIDIA/TensorRT-LLM/issues/5929 table row 'x'") == same
    assert origins("a/b@_posts/x.md ('T', https://www.blog.example.org/2026/x.html)") == {"github.com/a/b",
                                                                                          "blog.example.org"}


def test_size_and_dates() -> None:
    # 426 rows after the 2026-12-01 additions (LightLLM blog, Model Optimizer reference, IOG benchmarks, more cookbook
    # pages); the bound only catches a truncated or duplicated file.
    assert 60 <= len(HOLDOUT) <= 600
    assert all(date.fromisoformat(r["as_of"]) >= date(2025, 1, 1) for r in HOLDOUT)


def test_sources_are_listed_in_holdout_md() -> None:
    text = (DATA / "HOLDOUT.md").read_text(encoding="utf-8").lower()
    assert "never used for fitting" in text
    for origin in _origins(HOLDOUT):
        assert origin.removeprefix("github.com/") in text, origin


def test_sources_table_counts_match_the_file() -> None:
    # Every row belongs to a listed source and each source's stated row count is the file's (rows added or
    # removed without updating HOLDOUT.md fail here).
    claimed = _claimed_rows()
    assert len(claimed) >= 3
    counted = {o: sum(o in origins(r["source"]) for r in HOLDOUT) for o in claimed}
    assert counted == claimed
    assert sum(claimed.values()) == len(HOLDOUT)


def test_no_shipped_table_or_module_is_fitted_on_the_holdout() -> None:
    # No shipped module or table may read the held-out file, and no serving-model file (step model,
    # calibration tables and their fitting) may cite one of its sources: that is where fitted constants live.
    shipped = shipped_files()
    serving = [p for p in shipped if "serving" in p.parts or "calib" in p.name]
    assert len(shipped) > 10 and serving
    assert [str(p.relative_to(ROOT)) for p in shipped if "holdout" in p.read_text(encoding="utf-8").lower()] == []
    sources = {origin.removeprefix("github.com/") for origin in _origins(HOLDOUT)}
    texts = {p: p.read_text(encoding="utf-8").lower() for p in serving}
    assert [str(p.relative_to(ROOT)) for p, text in texts.items() if any(s in text for s in sources)] == []
