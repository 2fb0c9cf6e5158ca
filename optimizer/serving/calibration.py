"""Efficiencies and fixed latencies per (engine, GPU): the calibratable part of the roofline.

A row applies to an engine and a GPU selector: an exact GPU id, ``vendor:<name>`` (e.g.
``vendor:apple``) or ``*``. The most specific matching row wins (id > vendor > *).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from gpuplan.hardware.csvrows import read_rows
from gpuplan.optimizer.errors import InputError
from pydantic import BaseModel, ConfigDict, Field

CALIBRATION_CSV = Path(__file__).with_name("calibration.csv")
ENGINES = ("vllm", "sglang", "trtllm", "llama.cpp")


class CalibrationRow(BaseModel):
    """η_mem: achieved / peak DRAM bandwidth in decode; η_cmp, η_prefill: achieved / peak dense FLOP/s;
    t_fixed_ms: per-step latency not explained by bytes or FLOPs (kernel launches, scheduler, sampler);
    comm_latency_us: fixed cost per all-reduce; runtime_overhead_gib: per-GPU memory outside weights,
    KV and activations; mem_util: fraction of GPU memory the engine may use."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    engine: str
    gpu: str
    eta_mem: float = Field(gt=0, le=1)
    eta_cmp: float = Field(gt=0, le=1)
    eta_prefill: float = Field(gt=0, le=1)
    t_fixed_ms: float = Field(ge=0, le=1e6)
    comm_latency_us: float = Field(ge=0, le=1e9)
    runtime_overhead_gib: float = Field(ge=0, le=1e5)
    mem_util: float = Field(gt=0, le=1)
    source: str
    as_of: str
    notes: str | None = None


class Calibration(BaseModel):
    rows: tuple[CalibrationRow, ...]
    path: str

    def lookup(self, engine: str, gpu_id: str, vendor: str) -> CalibrationRow:
        """Most specific row for (engine, GPU): exact id, then vendor:<name>, then *."""
        engine = engine.lower()
        if engine not in {r.engine for r in self.rows}:
            known = ", ".join(sorted({r.engine for r in self.rows}))
            raise InputError(f"unknown engine '{engine}' in {self.path} (known: {known})")
        for selector in (gpu_id.lower(), f"vendor:{vendor.lower()}", "*"):
            for row in self.rows:
                if row.engine == engine and row.gpu == selector:
                    return row
        raise InputError(f"{self.path}: no calibration row for engine '{engine}' and GPU '{gpu_id}' (add a '*' row)")


@cache
def load_calibration(path: Path = CALIBRATION_CSV) -> Calibration:
    rows = tuple(read_rows(path, CalibrationRow))
    seen: set[tuple[str, str]] = set()
    for i, row in enumerate(rows, start=2):
        key = (row.engine, row.gpu)
        if key in seen:
            raise InputError(f"{path}, row {i}: duplicate calibration for engine '{row.engine}', GPU '{row.gpu}'")
        seen.add(key)
    return Calibration(rows=rows, path=str(path))
