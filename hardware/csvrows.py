"""Read a CSV into validated pydantic rows; a bad cell becomes one line naming file, row and column."""

from __future__ import annotations

from pathlib import Path

from gpuplan.hardware.errors import InputError

from gpuplan.rows import Row, read_cells, validate_row


def read_rows(path: Path, model: type[Row]) -> list[Row]:
    """Each CSV line (header excluded) → ``model``; empty cells become None. Row numbers are 1-based lines.
    A column the schema does not know is refused (a misspelt optional column would otherwise be dropped)."""
    fields = model.model_fields
    required = [n for n, f in fields.items() if f.is_required()]
    return [validate_row(model, path, line, cells, InputError)
            for line, cells in read_cells(path, required, InputError, known=fields)]
