"""Engine releases and their dates (releases.csv): which release a measurement dated D ran when it names none.

A published run states its engine version or not. One that does not still ran a release that existed on
the day it was published, not the release gpuplan models as current (engine version None everywhere:
calibration version ranges, CUDA-graph modes, scheduler defaults, SGLang's hybrid state slots …). Validation
and the calibration fit therefore model a row without ``engine_version`` as ``release_on(engine, as_of)``:
the highest final release of the engine published on or before the row's date, which is what
``pip install ENGINE`` installed that day (pip takes the highest version that is neither a pre-release nor
yanked). MEASURED.md dates a row by its source's publication, so the run itself may be older: the rule gives
the newest release the run can have used, an upper bound.

releases.csv holds every final release (X.Y.Z and X.Y.Z.postN; no rc, dev or yanked upload) of vLLM, SGLang
and TensorRT-LLM on PyPI, dated by the UTC upload time of the release's first file (the PyPI JSON API's
``upload_time``); the GitHub release notes of a version often follow its upload by a day or more. llama.cpp
has no entry: its builds (bNNNN) are not on PyPI, and none of gpuplan's engine tables depends on its version.
A date after the last day an engine's history was read (the rows' ``as_of``) maps to None, the current
release, since a newer release than the table knows may have been out.
"""

from __future__ import annotations

import datetime as dt
import re
from functools import cache
from pathlib import Path

from gpuplan.hardware.csvrows import read_rows
from gpuplan.optimizer.serving.calibration import ENGINES
from pydantic import ConfigDict, Field, field_validator

from gpuplan.rows import Sourced

RELEASES_CSV = Path(__file__).with_name("releases.csv")
FINAL_VERSION = r"\d+(\.\d+){1,3}(\.post\d+)?"  # 0.5.6, 0.9.0.1, 0.5.6.post2; no rc, dev or local label


class Release(Sourced):
    """One final release of an engine and the date it was published (YYYY-MM-DD, UTC)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    engine: str
    version: str = Field(pattern=f"^{FINAL_VERSION}$")
    released: dt.date

    @field_validator("engine")
    @classmethod
    def _known_engine(cls, v: str) -> str:
        if v not in ENGINES:
            raise ValueError(f"unknown engine '{v}' (known: {', '.join(ENGINES)})")
        return v


def version_key(version: str) -> tuple[int, ...]:
    """Order of final releases: every number in turn (0.5.6 < 0.5.6.post1 < 0.5.10 < 0.9.0.1 < 0.10.0)."""
    return tuple(int(p) for p in re.findall(r"\d+", version))


@cache
def load_releases(path: Path = RELEASES_CSV) -> tuple[Release, ...]:
    return tuple(read_rows(path, Release))


def release_on(engine: str, date: str, releases: tuple[Release, ...] | None = None) -> str | None:
    """The engine release a run published on ``date`` (YYYY-MM-DD) is modelled with: the highest version among
    the engine's releases dated on or before ``date`` (the earliest release when ``date`` precedes them all);
    None (the current release) for an engine without releases in the table and for a date after the day its
    history was read (the rows' latest ``as_of``)."""
    rows = [r for r in (load_releases() if releases is None else releases) if r.engine == engine.lower()]
    if not rows or date > max(r.as_of for r in rows):
        return None
    day = dt.date.fromisoformat(date)
    out = [r for r in rows if r.released <= day] or [min(rows, key=lambda r: r.released)]
    return max(out, key=lambda r: version_key(r.version)).version
