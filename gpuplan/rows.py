"""Rows of the swappable data tables: their provenance, and the one line a bad cell becomes.

Every row of a table the user can swap (GPUs, number formats, offers, ownership, reserved prices,
calibration, priors, links, kernel constants, measurements, checkpoints, engine flags, accelerator names)
says where its numbers come from (``source``, never empty) and when they were read (``as_of``, an exact
date ``YYYY-MM-DD`` that exists in the calendar), with optional ``notes``. Every table schema inherits these
three columns from ``Sourced``; a month (``2024-07``) or a year alone is refused everywhere. A row whose source
is dated to the month only carries the month's first day and says so in its notes.

The layers below the decision layer (``models``, ``hardware``, ``pricing``) import nothing of each other,
so this module lives at the package root, next to ``safeio``, where all of them may import it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, Field, ValidationError, field_validator

from gpuplan.safeio import read_csv_dicts

EXACT_DATE = r"^\d{4}-\d{2}-\d{2}$"
MAX_NAME_CHARS = 200


def printable_name(v: str) -> str:
    """An identifier cell (provider, instance, region, GPU id …): printable text of at most MAX_NAME_CHARS
    characters, so no newline, ANSI escape or bidi override reaches a terminal, a launch file or a file name."""
    if len(v) > MAX_NAME_CHARS or any(not ch.isprintable() for ch in v):
        raise ValueError(f"must be printable text (no control characters or newlines) of at most {MAX_NAME_CHARS} "
                         "characters")
    return v


Name = Annotated[str, AfterValidator(printable_name)]
PROVENANCE = ("source", "as_of", "notes")
Row = TypeVar("Row", bound=BaseModel)


class Sourced(BaseModel):
    """``source`` (not empty), ``as_of`` (exact date YYYY-MM-DD) and ``notes`` of one table row.

    The three columns come after a schema's own columns (pydantic puts inherited fields first; see
    ``__pydantic_init_subclass__``), so dumps, CSV headers written from ``model_fields`` and the first
    error of a row with several bad cells are what they would be with the columns declared last.
    """

    source: str = Field(min_length=1)
    as_of: str = Field(pattern=EXACT_DATE, description="exact date YYYY-MM-DD")
    notes: str | None = None

    @field_validator("as_of")
    @classmethod
    def _calendar_date(cls, v: str) -> str:
        """A date the calendar has (2025-02-30 and month 13 are refused)."""
        dt.date.fromisoformat(v)
        return v

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        fields = cls.model_fields  # the subclass's own mapping: reordered in place, then the schema rebuilt from it
        if tuple(fields)[-len(PROVENANCE):] != PROVENANCE:
            for name in PROVENANCE:
                fields[name] = fields.pop(name)
            cls.model_rebuild(force=True)


def validate_row(model: type[Row], path: Path | str, line: int, cells: dict[str, Any],
                 error: type[Exception]) -> Row:
    """``model`` from one CSV row; the first bad cell becomes ``error`` with one line naming the file, the row,
    the column, pydantic's message and the cell (each layer passes its own ``InputError``)."""
    try:
        return model.model_validate(cells)
    except ValidationError as err:
        first = err.errors()[0]
        column = ".".join(str(p) for p in first["loc"]) or "?"
        value = cells.get(str(first["loc"][0])) if first["loc"] else None
        raise error(f"{path}, row {line}, column '{column}': {first['msg']} (got {value!r:.60})") from None


def check_columns(path: Path | str, header: Iterable[str], known: Iterable[str] | None,
                  error: type[Exception]) -> None:
    """``error`` naming the first header column that is not in ``known`` (None: any column is accepted)."""
    if known is None:
        return
    names = list(known)
    unknown = [c for c in header if c not in names]
    if unknown:
        raise error(f"{path}: unknown column {unknown[0]!r:.80} (known: {', '.join(names)})")


def read_cells(path: Path, required: Iterable[str], error: type[Exception],
               known: Iterable[str] | None = None) -> Iterator[tuple[int, dict[str, str | None]]]:
    """(line, cells) of each CSV row below the header, cells stripped and empty ones None. A missing required
    column, a column not in ``known`` (when given: a misspelt optional column would otherwise be dropped
    silently), or a row with more cells than the header, is ``error`` with one line naming the file (and row)."""
    header, rows = read_csv_dicts(path)
    missing = [c for c in required if c not in header]
    if missing:
        raise error(f"{path}: missing column '{missing[0]}'")
    check_columns(path, header, known, error)
    for line, raw in enumerate(rows, start=2):
        if None in raw:
            raise error(f"{path}, row {line}: more cells than header columns")
        yield line, {k: (v.strip() if isinstance(v, str) and v.strip() != "" else None) for k, v in raw.items()}
