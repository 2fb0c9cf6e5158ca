"""Schema and coverage of the shipped published measurements (tests/data/measured.csv).

Every row names a deployment the tables know, one metric of one run, the run's load (static batch,
closed loop of `batch` clients, or open loop at `rate_rps`), and where the number was read.
"""

from __future__ import annotations

import csv
import math
import re
from datetime import date
from pathlib import Path

import pytest
from gpuplan.models.catalog import resolve
from gpuplan.optimizer.tables import Tables

MEASURED = Path(__file__).parent / "data" / "measured.csv"
HEADER = ["model", "gpu", "tp", "ep", "weights", "kv", "input", "output", "batch", "mode", "rate_rps", "engine",
          "engine_version", "metric", "percentile", "value", "source", "as_of", "notes"]
METRICS = {"decode_tok_s_per_user", "tpot_ms", "ttft_ms", "itl_ms", "e2e_ms", "decode_tok_s", "prefill_tok_s"}
ENGINES = {"vllm", "sglang", "trtllm", "llama.cpp"}
RECENT = date(2025, 1, 1)


def _rows() -> list[dict[str, str]]:
    with MEASURED.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == HEADER
        return list(reader)


ROWS = _rows()


def _version(text: str) -> tuple[int, ...]:
    """Leading numeric release of a version string: '0.4.3.post2' → (0, 4, 3), '1.0' → (1, 0)."""
    m = re.match(r"\d+(?:\.\d+)*", text)
    assert m, f"unparseable engine_version {text!r}"
    return tuple(int(p) for p in m.group(0).split("."))


def _recent(engine: str | None = None) -> list[dict[str, str]]:
    return [r for r in ROWS if date.fromisoformat(r["as_of"]) >= RECENT and (engine is None or r["engine"] == engine)]


@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r['model']}-{r['gpu']}-{r['metric']}")
def test_row_is_well_formed(row: dict[str, str]) -> None:
    tables = Tables()
    assert resolve(row["model"]).id == row["model"]
    assert tables.gpus.get(row["gpu"]).id == row["gpu"]
    assert row["weights"] in tables.formats.weights and row["kv"] in tables.formats.kv
    assert row["engine"] in ENGINES and row["metric"] in METRICS
    assert row["mode"] in {"static", "closed", "open"} and row["percentile"] in {"mean", "p50", "p90", "p99"}
    assert int(row["tp"]) >= 1 and int(row["ep"]) >= 1 and int(row["batch"]) >= 1
    assert int(row["input"]) >= 0 and int(row["output"]) >= 0 and int(row["input"]) + int(row["output"]) > 0
    value = float(row["value"])
    assert math.isfinite(value) and value > 0
    assert (row["mode"] == "open") == (row["rate_rps"] != "")
    if row["rate_rps"]:
        assert float(row["rate_rps"]) > 0
    assert date(2023, 1, 1) <= date.fromisoformat(row["as_of"]) <= date(2026, 12, 31)
    assert row["source"].strip() and row["notes"].strip()
    if row["engine_version"]:
        _version(row["engine_version"])


def test_no_row_is_listed_twice() -> None:
    keys = [tuple(v for k, v in r.items() if k != "notes") for r in ROWS]
    assert len(keys) == len(set(keys))


def test_size_and_recent_share() -> None:
    assert len(ROWS) >= 250
    assert len(_recent()) >= 100


def test_recent_rows_cover_todays_engines() -> None:
    def versions(engine: str) -> set[tuple[int, ...]]:
        return {_version(r["engine_version"]) for r in _recent(engine) if r["engine_version"]}

    assert any(v >= (0, 8) for v in versions("vllm"))
    assert any(v >= (0, 4) for v in versions("sglang"))
    assert any(v >= (0, 17) for v in versions("trtllm"))
    assert any("trtllm-serve" in r["notes"] for r in _recent("trtllm"))


def test_recent_rows_cover_moe_and_dense_models() -> None:
    models = {r["model"] for r in _recent()}
    assert models & {"deepseek-r1", "deepseek-v3"}
    assert models & {"gpt-oss-120b", "gpt-oss-20b"}
    assert models & {"qwen3-235b-a22b", "qwen3-30b-a3b"}
    assert models & {"llama-4-scout", "llama-4-maverick"}
    assert models & {"llama-3.1-8b", "llama-3.1-70b"}
    assert "mixtral-8x7b" in {r["model"] for r in ROWS}


def test_recent_rows_cover_the_gpus() -> None:
    gpus = {r["gpu"] for r in _recent()}
    assert {"h100-sxm", "h200", "b200"} <= gpus
    assert gpus & {"mi300x", "mi325x", "mi355x"}
    assert gpus & {"l40s", "l4", "a100-80gb", "a100-40gb"}


def test_load_spans_batch_one_to_high_concurrency_with_latency_percentiles() -> None:
    recent = _recent()
    assert any(int(r["batch"]) == 1 and r["mode"] == "static" for r in recent)
    assert any(int(r["batch"]) >= 256 and r["mode"] == "closed" for r in recent)
    assert {r["mode"] for r in ROWS} == {"static", "closed", "open"}
    at_load = [r for r in recent if int(r["batch"]) > 1]
    for metric in ("ttft_ms", "tpot_ms"):
        percentiles = {r["percentile"] for r in at_load if r["metric"] == metric}
        assert "mean" in percentiles and percentiles & {"p90", "p99"}, metric
