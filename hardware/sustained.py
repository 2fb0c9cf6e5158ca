"""Sustained dense tensor rates (sustained_flops.csv): what a GPU's large GEMMs reach against its data-sheet peak.

Data-sheet peaks assume a clock. NVIDIA states its tensor peaks at the boost clock its GPUs hold under dense
tensor load; AMD states the Instinct peaks at the 2,100 MHz peak engine clock, while dense matrix work runs
an MI300X at about 1,200 MHz (AMD's own max-achievable-FLOPs measurements). The step model's efficiencies are
fitted shares of data-sheet peaks, learnt mostly on NVIDIA rows, so a GPU whose sustained share differs from
the reference GPU's computes at

    F_eff = F_peak · s(gpu, format) / s_ref,   s = achievable / peak,

s_ref the reference row's share (H100 SXM, BF16). A GPU without a row computes at its data-sheet peak
(factor 1); a format without its own row on a GPU that has rows takes the GPU's BF16 row (the clock under
dense load is set by the power limit, not by the format).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from gpuplan.hardware.csvrows import read_rows
from gpuplan.hardware.errors import InputError
from pydantic import ConfigDict, Field

from gpuplan.rows import Sourced

SUSTAINED_CSV = Path(__file__).with_name("sustained_flops.csv")
REFERENCE = ("h100-sxm", "bf16")


class SustainedRate(Sourced):
    """One measured dense-GEMM rate of one GPU and tensor format, with the data-sheet peak it is a share of."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    gpu: str
    format: str
    achievable_tflops: float = Field(gt=0, le=1e6)
    peak_tflops: float = Field(gt=0, le=1e6)
    clock_mhz: float | None = Field(default=None, gt=0, le=1e5)

    @property
    def share(self) -> float:
        return self.achievable_tflops / self.peak_tflops


@cache
def load_sustained(path: Path = SUSTAINED_CSV) -> dict[tuple[str, str], SustainedRate]:
    """The table keyed by (GPU id, format), lower case; it must hold the reference row."""
    table = {(r.gpu.lower(), r.format.lower()): r for r in read_rows(path, SustainedRate)}
    if REFERENCE not in table:
        raise InputError(f"{path.name}: no reference row for GPU '{REFERENCE[0]}' format '{REFERENCE[1]}'")
    return table


def sustained_factor(gpu_id: str, compute: str, path: Path = SUSTAINED_CSV) -> float:
    """s(gpu, format) / s_ref: the factor on the data-sheet tensor peak of ``compute`` on ``gpu_id``
    (module docstring); 1 for a GPU without rows."""
    table = load_sustained(path)
    gid = gpu_id.lower()
    row = table.get((gid, compute.lower())) or table.get((gid, "bf16"))
    if row is None:
        return 1.0
    return row.share / table[REFERENCE].share
