"""Read a CSV into validated pydantic rows; a bad cell becomes one line naming file, row and column."""

from __future__ import annotations

from pathlib import Path

from gpuplan.hardware.errors import InputError

from gpuplan.rows import Row, read_cells, validate_row


def read_rows(path: Path, model: type[Row]) -> list[Row]:
    """Each CSV line (header excluded) → ``model``; empty cells become None. Row numbers are 1-based lines.
    Columns the schema does not know are ignored, unless its config says ``extra="forbid"``."""
    fields = model.model_fields
    required = [n for n, f in fields.items() if f.is_required()]
    rows = []
    for line, cells in read_cells(path, required, InputError):
        if not rows and model.model_config.get("extra") == "forbid":  # a misspelt optional column is refused
            unknown = [k for k in cells if k not in fields]
            if unknown:
                raise InputError(f"{path}: unknown column '{unknown[0]}' (known: {', '.join(fields)})")
        rows.append(validate_row(model, path, line, {k: v for k, v in cells.items() if k in fields}, InputError))
    return rows
