"""Render a command's result as a rich table, JSON or CSV, to stdout or atomically to a file."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict
from rich.console import Console
from rich.table import Table

FORMATS = ("table", "json", "csv")


class View(BaseModel):
    """One rich table: a title, column keys with headers, and rows of plain values."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    title: str
    columns: list[tuple[str, str]]  # (key, header)
    rows: list[dict[str, Any]]
    caption: str | None = None


class Result(BaseModel):
    """What a command produced: the JSON payload, flat CSV rows, and the views for people."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    payload: Any
    csv_rows: list[dict[str, Any]]
    views: list[View]
    notes: list[str] = []


def clean(value: Any) -> Any:
    """JSON-safe, deterministic values: floats rounded to 6 significant digits, NaN → None."""
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return None
        return float(f"{value:.6g}")
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 100:
            return f"{value:.1f}"
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def render_text(result: Result, width: int | None = None) -> str:
    buf = io.StringIO()
    console = Console(file=buf, width=width or 160, force_terminal=False, color_system=None)
    for view in result.views:
        console.print(view.title, style="bold", highlight=False)
        table = Table(caption=view.caption)
        for _, header in view.columns:
            table.add_column(header, overflow="fold")
        for row in view.rows:
            table.add_row(*(_fmt(row.get(key)) for key, _ in view.columns))
        console.print(table)
    for note in result.notes:
        console.print(note)
    return buf.getvalue()


def render(result: Result, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(clean(result.payload), indent=2, ensure_ascii=False) + "\n"
    if fmt == "csv":
        rows = [clean(r) for r in result.csv_rows]
        buf = io.StringIO()
        keys: list[str] = []
        for r in rows:
            keys += [k for k in r if k not in keys]
        writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: _csv_cell(v) for k, v in r.items()})
        return buf.getvalue()
    width = None if sys.stdout.isatty() else 200
    return render_text(result, width)


def _csv_cell(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return ";".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return value


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder and rename: never a half-written output."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def emit(result: Result, fmt: str, out: Path | None) -> None:
    text = render(result, fmt)
    if out is None:
        sys.stdout.write(text)
    else:
        write_atomic(out, text)

