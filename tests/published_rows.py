"""Schema of a published-measurement table (tests/data/measured.csv, tests/data/holdout.csv).

Shared by the tests of both tables: one row names a deployment the shipped tables know, one metric of one run,
the run's load (static batch, closed loop of `batch` clients, or open loop at `rate_rps`) and where the number
was read.
"""

from __future__ import annotations

import csv
import math
import re
from datetime import date
from pathlib import Path
from urllib.parse import urlparse

from gpuplan.models.catalog import resolve
from gpuplan.optimizer.tables import Tables

HEADER = ["model", "gpu", "tp", "ep", "attn_dp", "weights", "kv", "input", "output", "batch", "mode", "rate_rps",
          "requests", "dataset", "range_ratio", "engine", "engine_version", "max_seqs", "max_batched_tokens",
          "cuda_graphs", "prompt_pool", "mem_fraction", "recv_interval", "metric", "percentile", "value", "source",
          "as_of", "notes"]
METRICS = {"decode_tok_s_per_user", "tpot_ms", "ttft_ms", "itl_ms", "e2e_ms", "decode_tok_s", "prefill_tok_s",
           "e2e_per_token_ms"}
ENGINES = {"vllm", "sglang", "trtllm", "llama.cpp"}

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_FOLDERS = ("models", "optimizer", "hardware", "pricing", "gpuplan")


def shipped_files() -> list[Path]:
    """Every module and table the package ships: where a constant fitted on a check file could live."""
    return [p for d in SHIPPED_FOLDERS for p in (ROOT / d).rglob("*") if p.suffix in {".py", ".csv", ".json", ".yaml"}]


_REPO_PREFIX = re.compile(r"^([A-Za-z0-9][\w.-]*/[\w.-]+)@")
_URL = re.compile(r"https?://[^\s,;()'\"]+")


def read_rows(path: Path) -> list[dict[str, str]]:
    """Rows of a published-measurement CSV; the header must be exactly HEADER."""
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == HEADER, path
        return list(reader)


def version(text: str) -> tuple[int, ...]:
    """Leading numeric release of a version string: '0.4.3.post2' → (0, 4, 3), '1.0' → (1, 0)."""
    m = re.match(r"\d+(?:\.\d+)*", text)
    assert m, f"unparseable engine_version {text!r}"
    return tuple(int(p) for p in m.group(0).split("."))


def check_row(row: dict[str, str], tables: Tables) -> None:
    """Assert one row is well formed: known ids, consistent load columns, a finite positive value, a source."""
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
    assert row["cuda_graphs"] in {"", "on", "off"}
    if row["rate_rps"]:
        assert float(row["rate_rps"]) > 0
    assert date(2023, 1, 1) <= date.fromisoformat(row["as_of"]) <= date(2026, 12, 31)
    assert row["source"].strip() and row["notes"].strip()
    if row["engine_version"]:
        version(row["engine_version"])


def duplicate_keys(rows: list[dict[str, str]]) -> list[tuple[str, ...]]:
    """Rows (without their notes) that occur more than once."""
    keys = [tuple(v for k, v in r.items() if k != "notes") for r in rows]
    return sorted({k for k in keys if keys.count(k) > 1})


def origins(source: str) -> set[str]:
    """Where a source lives, normalised to the repository or the host.

    'owner/repo@path …' and 'https://github.com/owner/repo/…' both give 'github.com/owner/repo'; any other URL
    gives its host without 'www.'. A source naming a repository and a page yields both.
    """
    found: set[str] = set()
    m = _REPO_PREFIX.match(source.strip())
    if m:
        found.add(f"github.com/{m.group(1)}".lower())
    for url in _URL.findall(source):
        parsed = urlparse(url)
        host = parsed.netloc.lower().removeprefix("www.")
        parts = [p for p in parsed.path.split("/") if p]
        if host == "github.com" and len(parts) >= 2:
            found.add(f"github.com/{parts[0]}/{parts[1]}".lower())
        else:
            found.add(host)
    return found
