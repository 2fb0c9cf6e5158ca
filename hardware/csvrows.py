"""Read a CSV into validated pydantic rows; a bad cell becomes one line naming file, row and column."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from gpuplan.hardware.errors import InputError
from pydantic import BaseModel, ValidationError

from gpuplan.safeio import read_csv_dicts

Row = TypeVar("Row", bound=BaseModel)


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
        try:
            rows.append(model.model_validate(cells))
        except ValidationError as err:
            first = err.errors()[0]
            column = ".".join(str(p) for p in first["loc"]) or "?"
            value = cells.get(str(first["loc"][0])) if first["loc"] else None
            raise InputError(
                f"{path}, row {line_no}, column '{column}': {first['msg']} (got {value!r:.60})"
            ) from None
    return rows
