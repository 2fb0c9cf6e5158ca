"""Physical priors of the calibration fit: per fitted constant a lower and upper bound and the width of a
log-normal prior (calibration_priors.csv; every row sourced).

``sigma_log`` is the prior width of the value the serving engines share (or of an engine without a shared
level) around its hand-set default (calibration_defaults.csv); ``cell_sigma_log`` is the width of one
engine / GPU / version cell's deviation from the level above it. A row applies to one engine or to every
engine (``*``); the engine's own row wins.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
from gpuplan.hardware.csvrows import read_rows
from gpuplan.optimizer.errors import InputError
from pydantic import BaseModel, ConfigDict, Field, model_validator

from gpuplan.rows import Sourced

PRIORS_CSV = Path(__file__).with_name("calibration_priors.csv")
# The constants `gpuplan calibrate` fits, in the order of the fit's parameter vector.
PARAMS = ("eta_mem", "eta_cmp", "eta_prefill", "layer_us", "request_ms", "t_fixed_ms", "seq_us", "moe_layer_us",
          "eta_moe")


class PriorRow(Sourced):
    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    param: str
    engine: str
    lower: float = Field(gt=0)
    upper: float = Field(gt=0)
    sigma_log: float = Field(gt=0, le=10)
    cell_sigma_log: float = Field(gt=0, le=10)

    @model_validator(mode="after")
    def _check(self) -> PriorRow:
        if self.param not in PARAMS:
            raise ValueError(f"unknown param '{self.param}' (known: {', '.join(PARAMS)})")
        if self.lower >= self.upper:
            raise ValueError(f"lower {self.lower} is not below upper {self.upper}")
        return self


class Priors(BaseModel):
    """Bounds and prior widths per (engine, constant) as arrays in PARAMS order."""

    rows: tuple[PriorRow, ...]
    path: str

    def row(self, engine: str, param: str) -> PriorRow:
        for key in (engine, "*"):
            for r in self.rows:
                if r.param == param and r.engine == key:
                    return r
        raise InputError(f"{self.path}: no prior for '{param}' (add a row with engine '*')")

    def array(self, engine: str, field: str) -> np.ndarray:
        """``field`` (lower, upper, sigma_log, cell_sigma_log) of every constant for ``engine``."""
        return np.array([getattr(self.row(engine, p), field) for p in PARAMS], dtype=float)


@cache
def load_priors(path: Path = PRIORS_CSV) -> Priors:
    priors = Priors(rows=tuple(read_rows(path, PriorRow)), path=str(path))
    for p in PARAMS:
        priors.row("*", p)
    return priors
