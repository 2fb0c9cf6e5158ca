"""Read a CSV into validated pydantic rows; a bad cell becomes one line naming file, row and column."""

from __future__ import annotations

from pathlib import Path

from gpuplan.hardware.errors import InputError

from gpuplan.rows import Row, validate_row
from gpuplan.safeio import read_csv_dicts


def read_rows(path: Path, model: type[Row]) -> list[Row]:
    """Each CSV line (header excluded) → ``model``; empty cells become None. Row numbers are 1-based lines."""
    header, raw_rows = read_csv_dicts(path)
    required = [n for n, f in model.model_fields.items() if f.is_required()]
    missing = [c for c in required if c not in header]
    if missing:
        raise InputError(f"{path}: missing column '{missing[0]}'")
    rows = []
    for line_no, raw in enumerate(raw_rows, start=2):
        if None in raw:
            raise InputError(f"{path}, row {line_no}: more cells than header columns")
        cells = {k: (v.strip() if isinstance(v, str) and v.strip() != "" else None)
                 for k, v in raw.items() if k in model.model_fields}
        rows.append(validate_row(model, path, line_no, cells, InputError))
    return rows
