"""Published per-kernel constants of the step model (kernels.csv): each a named number with its source.

Unlike the calibration table these are not fitted: they come from kernel-level measurements (one
kernel, one shape) and shape how a term scales, not how fast an engine is.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from gpuplan.hardware.csvrows import read_rows
from gpuplan.optimizer.errors import InputError
from pydantic import ConfigDict, Field

from gpuplan.rows import Sourced

KERNELS_CSV = Path(__file__).with_name("kernels.csv")


class KernelConstant(Sourced):
    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    name: str
    value: float = Field(ge=0)
    unit: str


@cache
def load_kernel_constants(path: Path = KERNELS_CSV) -> dict[str, KernelConstant]:
    rows = read_rows(path, KernelConstant)
    return {r.name: r for r in rows}


def kernel_constant(name: str, path: Path = KERNELS_CSV) -> float:
    """The value of one named constant; a missing name is an input error naming the file."""
    table = load_kernel_constants(path)
    if name not in table:
        raise InputError(f"{path.name}: no row named '{name}'")
    return table[name].value
