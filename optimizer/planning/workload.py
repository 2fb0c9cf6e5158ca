"""Workload files (YAML): what must be served, how fast, and the fleet's constraints."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from gpuplan.optimizer.errors import InputError
from gpuplan.pricing.offers import TIERS
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DEFAULT_UTILIZATION = 0.8
HOURS = 24


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
    rate_profile: list[float] | None = None  # 24 hourly request rates (req/s), hour 0 first
    rate_profile_csv: str | None = None  # or a CSV with columns hour,rate (path relative to the file)
    slo: SLO
    engine: str | None = None  # vllm | sglang | trtllm | llama.cpp (default: by GPU and format)
    checkpoint: str | None = None  # repo id org/name or a local path; else models/checkpoints.csv
    weight: float = Field(default=1.0, gt=0, allow_inf_nan=False)  # share of a limited budget (max-throughput)

    @field_validator("name")
    @classmethod
    def _printable(cls, v: str) -> str:
        if any(not ch.isprintable() for ch in v):
            raise ValueError("name must be printable (no newlines or control characters)")
        return v

    @field_validator("engine")
    @classmethod
    def _engine(cls, v: str | None) -> str | None:
        from gpuplan.optimizer.serving.calibration import ENGINES

        if v is not None and v.lower() not in ENGINES:
            raise ValueError(f"unknown engine '{v}' (one of {', '.join(ENGINES)})")
        return v.lower() if v else v

    @field_validator("checkpoint")
    @classmethod
    def _checkpoint(cls, v: str | None) -> str | None:
        from gpuplan.optimizer.launch.checkpoints import check_override

        return check_override(v) if v is not None else v

    @field_validator("weights", "kv", mode="before")
    @classmethod
    def _listify(cls, v: object) -> object:
        return [v] if isinstance(v, str) else v

    @field_validator("rate_profile")
    @classmethod
    def _profile(cls, v: list[float] | None) -> list[float] | None:
        if v is None:
            return v
        if len(v) != HOURS:
            raise ValueError(f"rate_profile needs {HOURS} hourly values, got {len(v)}")
        if any(x < 0 for x in v) or not any(x > 0 for x in v):
            raise ValueError("rate_profile values must be ≥ 0 and not all 0")
        return v

    @model_validator(mode="after")
    def _demand(self) -> Workload:
        given = [self.rate_rps is not None, self.concurrency is not None, self.rate_profile is not None]
        if sum(given) != 1:
            raise ValueError("give exactly one of rate_rps, concurrency or rate_profile (or rate_profile_csv)")
        if self.max_context is None:
            self.max_context = self.input_tokens + self.output_tokens
        if self.max_context < self.input_tokens + self.output_tokens:
            raise ValueError(f"max_context ({self.max_context}) is below input_tokens + output_tokens")
        return self

    @property
    def peak_rate_rps(self) -> float | None:
        return max(self.rate_profile) if self.rate_profile else self.rate_rps

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
    committed_tier: Literal["reserved_1y", "reserved_3y", "owned"] = "reserved_1y"  # base of a daily profile
    spot_max_share: float = Field(default=0.3, ge=0, le=1)  # spot GPUs ≤ this share of each hour's GPUs
    regions: list[str] | None = None  # region names or globs (europe-west4, eu-*); see pricing/regions.csv
    jurisdictions: list[str] | None = None  # EU, EEA, UK, CH, US, … (pricing/countries.csv)

    @field_validator("regions", "jurisdictions", mode="before")
    @classmethod
    def _place_list(cls, v: object) -> object:
        return [v] if isinstance(v, str) else v

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


def _read_profile_csv(path: Path, where: str) -> list[float]:
    """hour,rate rows for hours 0..23 → 24 rates; errors name the file and row."""
    import csv

    try:
        rows = list(csv.DictReader(path.open(newline="", encoding="utf-8")))
    except FileNotFoundError:
        raise InputError(f"{where}: rate_profile_csv '{path}' not found") from None
    if not rows or {"hour", "rate"} - set(rows[0]):
        raise InputError(f"{path}: needs columns hour,rate")
    rates: dict[int, float] = {}
    for line, row in enumerate(rows, start=2):
        try:
            hour, rate = int(row["hour"]), float(row["rate"])
        except (TypeError, ValueError):
            raise InputError(f"{path}, row {line}: hour must be an integer and rate a number") from None
        if not 0 <= hour < HOURS or hour in rates or rate < 0:
            raise InputError(f"{path}, row {line}: hour must be 0-23, once each, and rate ≥ 0")
        rates[hour] = rate
    if len(rates) != HOURS:
        raise InputError(f"{path}: needs {HOURS} hours (0-23), got {len(rates)}")
    return [rates[h] for h in range(HOURS)]


def _inline_profiles(data: dict, base: Path | None, source: str) -> dict:
    for i, w in enumerate(data.get("workloads") or []):
        if isinstance(w, dict) and w.get("rate_profile_csv") and "rate_profile" not in w:
            path = Path(w["rate_profile_csv"])
            if base is not None and not path.is_absolute():
                path = base / path
            w["rate_profile"] = _read_profile_csv(path, f"{source}: workload '{w.get('name', i + 1)}'")
    return data


def parse_fleet(data: object, source: str, base: Path | None = None) -> Fleet:
    if isinstance(data, dict):
        data = _inline_profiles(data, base, source)
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
    return parse_fleet(data, str(path), path.parent)
