"""Tables fit the terminal: at 80 columns wide tables fold into stacked tables that repeat the identity
column; at 200 columns the same table is one piece. Every header and every value is still shown."""

from __future__ import annotations

import json

import pytest
from gpuplan.optimizer.output import column_groups


@pytest.mark.parametrize("width", [80, 200])
def test_gpus_table_fits(width: int, gpuplan, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", str(width))
    r = gpuplan("gpus", "--gpu", "h100-sxm", "--gpu", "mi300x")
    assert r.code == 0
    lines = r.out.splitlines()
    assert max(len(line) for line in lines) <= width
    headers = ["id", "GiB", "GB/s", "BF16 TF", "FP8 TF", "FP4 TF", "INT8 TOPS", "link", "link GB/s", "domain",
               "TDP W", "as of"]
    header_lines = [line for line in lines if line.startswith("┃")]
    for h in headers:
        assert any(f" {h} " in line for line in header_lines), h
    # one table at 200 columns, folded into two at 80, each repeating the id column
    assert len(header_lines) == (1 if width == 200 else 2)
    assert all(line.startswith("┃ id ") for line in header_lines)
    for value in ("79.65", "3,350", "nvlink4", "infinity-fabric", "2023-12"):
        assert value in r.out


def test_plan_table_fits_80_columns(gpuplan, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    r = gpuplan("plan", "examples/steady.yaml")
    assert r.code == 0
    assert max(len(line) for line in r.out.splitlines()) <= 80
    plan = gpuplan("plan", "examples/steady.yaml", "--format", "json").json()
    for d in plan["workloads"][0]["deployments"]:
        assert d["offer"] in r.out  # nothing dropped by folding
    assert "total $" in r.out


def test_column_groups_pack_greedily_and_repeat_the_first_column() -> None:
    # widths + 3 per column: 10+3, 20+3, 30+3, 40+3 → budget 79 at width 80
    assert column_groups([10, 20, 30, 40], 80) == [[0, 1, 2], [0, 3]]
    assert column_groups([10, 20, 30, 40], 200) == [[0, 1, 2, 3]]
    assert column_groups([10, 500], 80) == [[0, 1]]  # one over-wide column folds its cells instead
    # balanced: greedy packing would leave [0, 3] (a lonely 5-wide column); two even groups instead
    assert column_groups([8, 30, 30, 5], 80) == [[0, 1], [0, 2, 3]]
    assert json.dumps(column_groups([], 80)) == "[[]]"
