"""The GPU table: capacity, bandwidth, dense tensor throughput, interconnect, native formats."""

from __future__ import annotations

import difflib
import re
from functools import cache
from pathlib import Path

from gpuplan.hardware.csvrows import read_rows
from gpuplan.hardware.errors import InputError
from pydantic import BaseModel, ConfigDict, Field, field_validator

from gpuplan.rows import Name, Sourced

GPUS_CSV = Path(__file__).with_name("gpus.csv")
GIB = 2**30


# Leading words of the device names drivers and engines print ("NVIDIA H100 80GB HBM3", "AMD Instinct MI300X",
# vLLM's tuned-config file names "device_name=NVIDIA_H200"), dropped before a name is looked up again.
VENDOR_WORDS = ("nvidia", "amd", "instinct", "geforce", "tesla")


def normalised_gpu_name(name: str) -> str:
    """A device name as the table spells ids: lower case, words joined by '-', leading vendor words dropped
    ("NVIDIA_H100_80GB_HBM3" → "h100-80gb-hbm3", "AMD Instinct MI300X" → "mi300x")."""
    words = [w for w in re.split(r"[\s_-]+", name.strip().lower()) if w]
    while len(words) > 1 and words[0] in VENDOR_WORDS:
        words.pop(0)
    return "-".join(words)


# Formats whose native support implies the tensor path (hardware table lists formats such as nvfp4, mxfp4).
COMPUTE_PATH_FORMATS: dict[str, tuple[str, ...]] = {"fp4": ("nvfp4", "mxfp4")}


class GPU(Sourced):
    """One accelerator row. Throughputs are dense (no sparsity), per GPU."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    id: Name
    name: Name
    vendor: Name
    arch: Name | None = None
    form_factor: Name | None = None
    aliases: tuple[str, ...] = ()
    memory_gib: float = Field(ge=0.1, le=1e5)  # bounds here and below: physical, so no ratio overflows
    memory_bw_gb_s: float = Field(ge=1, le=1e6)
    bf16_tflops: float | None = Field(default=None, ge=1e-3, le=1e6)
    fp16_tflops: float | None = Field(default=None, ge=1e-3, le=1e6)
    fp8_tflops: float | None = Field(default=None, ge=1e-3, le=1e6)
    int8_tops: float | None = Field(default=None, ge=1e-3, le=1e6)
    fp4_tflops: float | None = Field(default=None, ge=1e-3, le=1e6)
    link: str = "pcie"
    link_gb_s: float = Field(default=0, ge=0, le=1e6)  # GPU-to-GPU, per GPU, bidirectional total
    nvlink_domain: int = Field(default=1, ge=1, le=100_000)
    pcie_gb_s: float | None = Field(default=None, ge=0, le=1e6)  # host x16, one direction
    tdp_w: float | None = Field(default=None, ge=1, le=1e6)
    native_formats: frozenset[str] = frozenset()

    @field_validator("aliases", mode="before")
    @classmethod
    def _split_aliases(cls, v: object) -> object:
        if v is None:
            return ()
        if isinstance(v, str):
            return tuple(a.strip().lower() for a in v.split(";") if a.strip())
        return v

    @field_validator("native_formats", mode="before")
    @classmethod
    def _split_formats(cls, v: object) -> object:
        if v is None:
            return frozenset()
        if isinstance(v, str):
            return frozenset(a.strip().lower() for a in v.split(";") if a.strip())
        return v

    @property
    def memory_bytes(self) -> int:
        return int(self.memory_gib * GIB)

    @property
    def memory_bw_bytes_s(self) -> float:
        return self.memory_bw_gb_s * 1e9

    @property
    def has_fast_link(self) -> bool:
        """NVLink / Infinity Fabric / bridge rather than PCIe only."""
        return self.nvlink_domain > 1 and self.link != "pcie"

    def runs_natively(self, fmt: str) -> bool:
        return fmt in self.native_formats

    def runs_compute_path(self, compute: str) -> bool:
        """The tensor path ``compute`` exists natively: the path itself or a format that runs on it is listed
        (``fp4`` is native when the GPU runs ``nvfp4`` or ``mxfp4``; the table lists formats, not paths)."""
        return self.runs_natively(compute) or any(self.runs_natively(f) for f in COMPUTE_PATH_FORMATS.get(compute, ()))

    def peak_flops(self, compute: str) -> float:
        """Dense FLOP/s of the tensor path; falls back to the 16-bit rate where the path is missing."""
        table = {"bf16": self.bf16_tflops or self.fp16_tflops, "fp16": self.fp16_tflops or self.bf16_tflops,
                 "fp8": self.fp8_tflops, "int8": self.int8_tops, "fp4": self.fp4_tflops}
        value = table.get(compute) if self.runs_compute_path(compute) or compute in ("bf16", "fp16") else None
        value = value or self.bf16_tflops or self.fp16_tflops
        if not value:
            raise InputError(f"GPU '{self.id}' has no tensor throughput in the hardware table")
        return value * 1e12

    def link_bytes_s(self, tp: int) -> float:
        """One-direction GPU-to-GPU bandwidth used by a TP group: fast link inside its domain, else PCIe."""
        if self.has_fast_link and tp <= self.nvlink_domain and self.link_gb_s > 0:
            return self.link_gb_s / 2 * 1e9
        return (self.pcie_gb_s or 32.0) * 1e9


class GpuTable(BaseModel):
    gpus: dict[str, GPU]
    aliases: dict[str, str]
    path: str

    def get(self, name: str) -> GPU:
        """The GPU of an id or alias, as typed or as a device name (``normalised_gpu_name``)."""
        device = normalised_gpu_name(name)
        for spelled in (name.strip().lower(), device):
            gid = self.aliases.get(spelled, spelled)
            if gid in self.gpus:
                return self.gpus[gid]
        close = difflib.get_close_matches(device, [*self.gpus, *self.aliases], n=1)
        hint = f"; did you mean '{self.aliases.get(close[0], close[0])}'?" if close else ""
        raise InputError(f"unknown GPU '{name}' in {self.path}{hint}")

    def __iter__(self):  # type: ignore[override]
        return iter(self.gpus.values())


@cache
def load_gpus(path: Path = GPUS_CSV) -> GpuTable:
    """Load and index the GPU table by id and alias (case-insensitive)."""
    gpus: dict[str, GPU] = {}
    aliases: dict[str, str] = {}
    for i, row in enumerate(read_rows(path, GPU), start=2):
        gid = row.id.lower()
        if gid in gpus or gid in aliases:
            raise InputError(f"{path}, row {i}, column 'id': duplicate GPU id '{row.id}'")
        gpus[gid] = row
        for alias in row.aliases:
            if alias in gpus or (alias in aliases and aliases[alias] != gid):
                raise InputError(f"{path}, row {i}, column 'aliases': alias '{alias}' is used twice")
            aliases[alias] = gid
    if not gpus:
        raise InputError(f"{path}: no GPU rows")
    return GpuTable(gpus=gpus, aliases=aliases, path=str(path))
