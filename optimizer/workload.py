"""Workload files (YAML): what must be served, how fast, and the fleet's constraints."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from optimizer.errors import InputError
from pricing.offers import TIERS

DEFAULT_UTILIZATION = 0.8


class SLO(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ttft_ms: float = Field(gt=0)
    tpot_ms: float = Field(gt=0)


class Workload(BaseModel):
    """One model served to one traffic class."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    model: str
    weights: list[str] = Field(default_factory=lambda: ["bf16"], min_length=1)
    kv: list[str] = Field(default_factory=lambda: ["bf16"], min_length=1)
    input_tokens: int = Field(gt=0)
    output_tokens: int = Field(gt=0)
    max_context: int | None = Field(default=None, gt=0)
    rate_rps: float | None = Field(default=None, gt=0)
    concurrency: int | None = Field(default=None, gt=0)
    slo: SLO
    engine: str | None = None

    @field_validator("weights", "kv", mode="before")
    @classmethod
    def _listify(cls, v: object) -> object:
        return [v] if isinstance(v, str) else v

    @model_validator(mode="after")
    def _demand(self) -> Workload:
        if (self.rate_rps is None) == (self.concurrency is None):
            raise ValueError("give exactly one of rate_rps or concurrency")
        if self.max_context is None:
            self.max_context = self.input_tokens + self.output_tokens
        if self.max_context < self.input_tokens + self.output_tokens:
            raise ValueError(f"max_context ({self.max_context}) is below input_tokens + output_tokens")
        return self

    @property
    def output_tok_s(self) -> float | None:
        """Demand in output tokens/s (rate workloads)."""
        return self.rate_rps * self.output_tokens if self.rate_rps else None


class Constraints(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tier: Literal["on_demand", "spot", "reserved_1y", "reserved_3y", "owned"] = "on_demand"
    providers: list[str] | None = None
    max_gpus: dict[str, int] = Field(default_factory=dict)
    budget_usd_per_hour: float | None = Field(default=None, gt=0)
    single_gpu_type: bool = False  # one GPU type per workload (else a mix when cheaper)
    utilization: float = Field(default=DEFAULT_UTILIZATION, gt=0, le=1)
    gpus: list[str] | None = None  # only these GPU types

    @field_validator("max_gpus")
    @classmethod
    def _caps(cls, v: dict[str, int]) -> dict[str, int]:
        for gpu, cap in v.items():
            if cap < 0:
                raise ValueError(f"cap for '{gpu}' must be ≥ 0")
        return v


class Fleet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    workloads: list[Workload] = Field(min_length=1)
    constraints: Constraints = Field(default_factory=Constraints)

    @model_validator(mode="after")
    def _unique(self) -> Fleet:
        names = [w.name for w in self.workloads]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"workload name '{dup[0]}' is used twice")
        return self


def _where(fleet: dict, loc: tuple) -> str:
    """'workload chat, field slo.tpot_ms' from a pydantic error location."""
    if len(loc) >= 2 and loc[0] == "workloads" and isinstance(loc[1], int):
        items = fleet.get("workloads") or []
        name = items[loc[1]].get("name") if loc[1] < len(items) and isinstance(items[loc[1]], dict) else None
        label = f"workload '{name}'" if name else f"workload #{loc[1] + 1}"
        rest = ".".join(str(p) for p in loc[2:])
        return f"{label}, field '{rest}'" if rest else label
    return f"field '{'.'.join(str(p) for p in loc)}'"


def parse_fleet(data: object, source: str) -> Fleet:
    if not isinstance(data, dict):
        raise InputError(f"{source}: expected a mapping with 'workloads' (and optional 'constraints')")
    try:
        fleet = Fleet.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        msg = first["msg"].removeprefix("Value error, ")
        raise InputError(f"{source}: {_where(data, tuple(first['loc']))}: {msg}") from None
    if fleet.constraints.tier not in TIERS:
        raise InputError(f"{source}: constraints.tier must be one of {', '.join(TIERS)}")
    return fleet


def load_fleet(path: Path) -> Fleet:
    """Read and validate a workload file; errors name the file, workload and field."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark else ""
        raise InputError(f"{path}{where}: not valid YAML ({getattr(err, 'problem', err)})") from None
    return parse_fleet(data, str(path))
