"""Render a command's result as a rich table, JSON or CSV, to stdout or atomically to a file."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import math
import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gpuplan.optimizer.errors import InputError
from pydantic import BaseModel, ConfigDict
from rich.console import Console
from rich.table import Table
from rich.text import Text

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


# C0/C1 controls (ESC starts ANSI sequences) and bidirectional overrides that reorder what a terminal shows.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_UNSAFE_KEEP_LINES = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text: str, keep_newlines: bool = False) -> str:
    """``text`` with control characters (ANSI escapes, NUL, bidi overrides) shown as ``\\xNN`` escapes."""
    pattern = _UNSAFE_KEEP_LINES if keep_newlines else _UNSAFE
    return pattern.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 256
                       else f"\\u{ord(m.group()):04x}", text)


def _text(value: str, style: str = "") -> Text:
    """A rich Text (never parsed as markup) with control characters escaped."""
    return Text(terminal_safe(value, keep_newlines=True), style=style)


def _pack(widths: list[int], budget: int) -> list[list[int]]:
    groups: list[list[int]] = []
    current, used = [0], widths[0] + 3
    for i in range(1, len(widths)):
        need = widths[i] + 3
        if used + need > budget and len(current) > 1:
            groups.append(current)
            current, used = [0], widths[0] + 3
        current.append(i)
        used += need
    groups.append(current)
    return groups


def column_groups(widths: list[int], width: int) -> list[list[int]]:
    """Fold a table wider than ``width`` into stacked tables: each group repeats column 0 (the row's
    identity) and takes the next columns while their natural widths (cell + 3 for padding and border)
    fit; a single column wider than the screen folds its cells instead. The groups are balanced: the
    fewest groups that fit, each about as wide as the others (no last table with one lonely column)."""
    if not widths:
        return [[]]
    budget = width - 1
    fewest = len(_pack(widths, budget))
    if fewest == 1:
        return [list(range(len(widths)))]
    rest = sum(w + 3 for w in widths[1:])
    for narrower in range(widths[0] + 3 + rest // fewest, budget + 1):
        groups = _pack(widths, narrower)
        if len(groups) == fewest:
            return groups
    return _pack(widths, budget)


def _table(view: View, cells: list[list[str]], columns: list[int], caption: str | None) -> Table:
    table = Table(caption=_text(caption) if caption else None)
    for i in columns:
        table.add_column(_text(view.columns[i][1]), overflow="fold")
    for row in cells:
        table.add_row(*(_text(row[i]) for i in columns))
    return table


def render_text(result: Result, width: int | None = None) -> str:
    """Rich tables at ``width`` columns (160 when None); wide tables fold into stacked tables."""
    width = width or 160
    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=False, color_system=None, highlight=False)
    for view in result.views:
        console.print(_text(view.title, style="bold"))
        cells = [[_fmt(row.get(key)) for key, _ in view.columns] for row in view.rows]
        widths = [max([len(header), *(len(r[i]) for r in cells)]) for i, (_, header) in enumerate(view.columns)]
        groups = column_groups(widths, width)
        for columns in groups:
            console.print(_table(view, cells, columns, view.caption if len(groups) == 1 else None))
        if len(groups) > 1 and view.caption:
            console.print(_text(view.caption))
    for note in result.notes:
        console.print(_text(note))
    return buf.getvalue()


def terminal_width() -> int:
    """The terminal's width when stdout is one (COLUMNS honoured), else 200 for files and pipes."""
    if sys.stdout.isatty():
        return max(40, shutil.get_terminal_size((80, 24)).columns)
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() and 40 <= int(columns) <= 1000 else 200


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
    return render_text(result, terminal_width())


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what spreadsheets read as a formula (OWASP, CSV injection)


def _csv_cell(value: Any) -> Any:
    """A CSV cell: lists joined with ';', mappings as JSON, and text a spreadsheet would run as a formula (a
    workload named '=HYPERLINK(…)' or '+cmd|…') prefixed with a quote, which shows the text as written; numbers
    stay numbers (a negative number is written as such)."""
    if isinstance(value, list | tuple):
        value = ";".join(str(v) for v in value)
    elif isinstance(value, dict):
        value = json.dumps(value, sort_keys=True)
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class OutputError(InputError):
    """An ``-o`` target the tool must not or cannot write (exit 2)."""


def check_target(path: Path) -> None:
    """A new file, or an existing regular file to replace; never a device, symlink, FIFO or folder."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as err:
        raise OutputError(f"{path}: cannot write there ({err.strerror})") from None
    if stat.S_ISLNK(info.st_mode):
        raise OutputError(f"{path}: is a symbolic link; give the real file or a new name")
    if stat.S_ISDIR(info.st_mode):
        raise OutputError(f"{path}: is a folder; end the name with '/' to write into it")
    if not stat.S_ISREG(info.st_mode):
        raise OutputError(f"{path}: exists and is not a regular file (device, FIFO or socket)")


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder and rename: never a half-written output, never a
    device or symlink replaced; the file gets the usual 0666 & ~umask mode (not mkstemp's 0600). A folder
    that cannot be created or written is one ``OutputError`` naming ``path`` (not the temporary file)."""
    write_files({path: text})


def write_files(texts: dict[Path, str]) -> None:
    """Write several files as ``write_atomic`` does, all temporary files first and the renames last, so an
    error or Ctrl-C while writing leaves none of them (only a failing rename itself can split the set)."""
    with contextlib.ExitStack() as stack:
        for path, text in texts.items():
            tmp = stack.enter_context(atomic_target(path))
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.chmod(tmp, 0o666 & ~_current_umask())


@contextlib.contextmanager
def atomic_target(path: Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A fresh temporary file next to ``path`` for the caller to fill; renamed onto ``path`` when the block
    ends, removed when it raises (Ctrl-C included). OSErrors become one line naming ``path``."""
    check_target(path)
    if path.parent.exists() and not path.parent.is_dir():
        raise OutputError(f"{path.parent}: is not a folder")
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:60]}.", suffix=suffix)
        os.close(fd)
        tmp = Path(name)
        yield tmp
        os.chmod(tmp, 0o666 & ~_current_umask())  # the usual mode of a new file, not mkstemp's 0600 (as write_atomic)
        os.replace(tmp, path)
    except OSError as err:
        raise OutputError(f"{path}: cannot write ({err.strerror or err})") from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


_NOT_FILENAME = re.compile(r"[^A-Za-z0-9._+-]+")


def safe_filename(name: str, max_chars: int = 96) -> str:
    """A portable file name from a user string: letters, digits, ``._+-`` only, no leading dot, at most
    ``max_chars`` characters; a changed name keeps its start plus a hash of the original, so two names
    never collide."""
    clean_name = _NOT_FILENAME.sub("_", name).strip("._") or "unnamed"
    if len(clean_name) <= max_chars and clean_name == name:
        return clean_name
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{clean_name[: max_chars - 11]}-{digest}"


def output_file(out: str | Path, command: str, fmt: str) -> Path:
    """The file ``-o`` names: a trailing '/' (or the platform separator) means a folder to write
    ``<command>.<ext>`` into; anything else is the file itself."""
    raw = str(out)
    if raw.endswith(("/", os.sep)):
        return Path(raw) / f"{command}.{'txt' if fmt == 'table' else fmt}"
    return Path(raw)


def emit(result: Result, fmt: str, out: Path | None) -> None:
    text = render(result, fmt)
    if out is None:
        sys.stdout.write(text)
    else:
        write_atomic(out, text)
