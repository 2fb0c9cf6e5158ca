"""Workload files (YAML): what must be served, how fast, and the fleet's constraints."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from gpuplan.optimizer.errors import InputError
from gpuplan.pricing.offers import TIERS
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gpuplan.safeio import UnreadableInput, read_csv_dicts, read_yaml

DEFAULT_UTILIZATION = 0.8
HOURS = 24
LIMIT_PROFILE_BYTES = 2**20
MAX_NAME_CHARS = 120
MAX_WORKLOADS = 100_000


# Ceilings far above any real fleet, low enough that the solver's integer scaling cannot overflow.
MAX_TOKENS = 100_000_000  # tokens per request or context
MAX_RATE_RPS = 1_000_000.0
MIN_RATE_RPS = 1e-6  # one request in 11.6 days; below, a subnormal rate made the solver see no demand
MAX_CONCURRENCY = 100_000_000
MAX_MS = 86_400_000.0  # one day
MAX_BUDGET_USD_PER_HOUR = 1e9
MAX_GPU_CAP = 10_000_000
# Workload files are strict: no booleans or strings for numbers, no NaN or infinity.
STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class SLO(BaseModel):
    """Latency targets: means by default; with ``percentile`` (e.g. 90, also written ``p90``), that
    percentile of TTFT and of per-request TPOT, checked with the serving simulator."""

    model_config = STRICT

    ttft_ms: float = Field(gt=0, le=MAX_MS)
    tpot_ms: float = Field(gt=0, le=MAX_MS)
    percentile: float | None = None

    @field_validator("percentile", mode="before")
    @classmethod
    def _percentile(cls, v: object) -> object:
        if isinstance(v, str):
            text = v.strip().lower()
            if text == "mean":
                return None
            v = text.removeprefix("p")
            try:
                v = float(v)
            except ValueError:
                raise ValueError(f"percentile must be a number in (0, 100), 'pNN' or 'mean', got '{text}'") from None
        if isinstance(v, bool):
            raise ValueError("percentile must be a number in (0, 100), 'pNN' or 'mean'")
        if isinstance(v, int | float) and not 0 < v < 100:
            raise ValueError(f"percentile must be in (0, 100), got {v:g}")
        return float(v) if isinstance(v, int | float) else v


class Workload(BaseModel):
    """One model served to one traffic class."""

    model_config = STRICT

    name: str = Field(min_length=1, max_length=MAX_NAME_CHARS)
    model: str = Field(min_length=1, max_length=4096)
    weights: list[str] = Field(default_factory=lambda: ["bf16"], min_length=1, max_length=64)
    kv: list[str] = Field(default_factory=lambda: ["bf16"], min_length=1, max_length=64)
    input_tokens: int = Field(gt=0, le=MAX_TOKENS)
    output_tokens: int = Field(gt=0, le=MAX_TOKENS)
    max_context: int | None = Field(default=None, gt=0, le=MAX_TOKENS)
    rate_rps: float | None = Field(default=None, ge=MIN_RATE_RPS, le=MAX_RATE_RPS)
    concurrency: int | None = Field(default=None, gt=0, le=MAX_CONCURRENCY)
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
        from gpuplan.optimizer.serving.calibration import ENGINES, engine_id

        if v is not None and engine_id(v) not in ENGINES:
            raise ValueError(f"unknown engine '{v}' (one of {', '.join(ENGINES)})")
        return engine_id(v) if v else v

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
        if any(not (x == 0 or MIN_RATE_RPS <= x <= MAX_RATE_RPS) for x in v) or not any(x > 0 for x in v):
            raise ValueError(f"rate_profile values must be 0 or in [{MIN_RATE_RPS:g}, {MAX_RATE_RPS:g}], "
                             "not all 0")
        return [x + 0.0 for x in v]  # -0.0 (YAML allows it) is an idle hour, reported as 0

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
    model_config = STRICT

    tier: Literal["on_demand", "spot", "reserved_1y", "reserved_3y", "owned"] = "on_demand"
    providers: list[str] | None = None  # omitted: every provider ([] is refused, _not_empty)
    max_gpus: dict[str, Annotated[int, Field(ge=0, le=MAX_GPU_CAP)]] = Field(default_factory=dict)
    budget_usd_per_hour: float | None = Field(default=None, gt=0, le=MAX_BUDGET_USD_PER_HOUR)
    single_gpu_type: bool = False  # one GPU type per workload (else a mix when cheaper)
    utilization: float = Field(default=DEFAULT_UTILIZATION, ge=0.01, le=1)  # below 1 %: no capacity
    gpus: list[str] | None = None  # only these GPU types
    committed_tier: Literal["reserved_1y", "reserved_3y", "owned"] = "reserved_1y"  # base of a daily profile
    spot_max_share: float = Field(default=0.3, ge=0, le=1)  # spot GPUs ≤ this share of each hour's GPUs
    regions: list[str] | None = None  # region names or globs (europe-west4, eu-*); see pricing/regions.csv
    jurisdictions: list[str] | None = None  # EU, EEA, UK, CH, US, … (pricing/countries.csv)

    @field_validator("regions", "jurisdictions", mode="before")
    @classmethod
    def _place_list(cls, v: object) -> object:
        return [v] if isinstance(v, str) else v

    @field_validator("providers", "gpus", "regions", "jurisdictions")
    @classmethod
    def _not_empty(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and not v:  # an empty list used to mean "all", the opposite of what it says
            raise ValueError("an empty list allows nothing: omit the key to allow every one")
        return v


class Fleet(BaseModel):
    model_config = STRICT

    workloads: list[Workload] = Field(min_length=1, max_length=MAX_WORKLOADS)
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
    try:
        _, rows = read_csv_dicts(path, LIMIT_PROFILE_BYTES)
    except UnreadableInput as err:
        raise InputError(f"{where}: rate_profile_csv {err}") from None
    if not rows or {"hour", "rate"} - set(rows[0]):
        raise InputError(f"{path}: needs columns hour,rate")
    rates: dict[int, float] = {}
    for line, row in enumerate(rows, start=2):
        try:
            if not (row["hour"] or "").isascii() or not (row["rate"] or "").isascii():  # '١' reads as 1
                raise ValueError(row["hour"])
            hour, rate = int(row["hour"]), float(row["rate"])
        except (TypeError, ValueError):
            raise InputError(f"{path}, row {line}: hour must be an integer and rate a number") from None
        if not 0 <= hour < HOURS or hour in rates or not (rate == 0 or MIN_RATE_RPS <= rate <= MAX_RATE_RPS):
            raise InputError(f"{path}, row {line}: hour must be 0-23, once each, and rate 0 or a finite number in "
                             f"[{MIN_RATE_RPS:g}, {MAX_RATE_RPS:g}]")
        rates[hour] = rate
    if len(rates) != HOURS:
        raise InputError(f"{path}: needs {HOURS} hours (0-23), got {len(rates)}")
    return [rates[h] for h in range(HOURS)]


def _inline_profiles(data: dict, base: Path | None, source: str) -> dict:
    """A copy of ``data`` with each ``rate_profile_csv`` read into ``rate_profile``."""
    items = data.get("workloads")
    if not isinstance(items, list):
        return data
    data = {**data, "workloads": [dict(w) if isinstance(w, dict) else w for w in items]}
    for i, w in enumerate(data["workloads"]):
        if isinstance(w, dict) and "rate_profile_csv" in w and "rate_profile" in w:
            raise InputError(f"{source}: workload '{w.get('name', i + 1)}': give rate_profile or rate_profile_csv, "
                             "not both")
        if isinstance(w, dict) and isinstance(w.get("rate_profile_csv"), str):
            path = Path(w["rate_profile_csv"])
            if base is not None and not path.is_absolute():
                path = base / path
            w["rate_profile"] = _read_profile_csv(path, f"{source}: workload '{w.get('name', i + 1)}'")
    return data


def _number_hint(value: object) -> str:
    """For a value YAML read as text though it is written as a number (YAML 1.1 needs a dot in a float with an
    exponent: 1e-3 is text, 1.0e-3 a number), how to write it."""
    if isinstance(value, str) and re.fullmatch(r"[+-]?\d+[eE][+-]?\d+", value.strip()):
        mantissa, _, exponent = value.strip().lower().partition("e")
        return f" (YAML reads {value.strip()} as text: write {mantissa}.0e{exponent})"
    return ""


def parse_fleet(data: object, source: str, base: Path | None = None) -> Fleet:
    if isinstance(data, dict):
        data = _inline_profiles(data, base, source)
    if not isinstance(data, dict):
        raise InputError(f"{source}: expected a mapping with 'workloads' (and optional 'constraints')")
    try:
        fleet = Fleet.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        msg = first["msg"].removeprefix("Value error, ") + _number_hint(first.get("input"))
        raise InputError(f"{source}: {_where(data, tuple(first['loc']))}: {msg}") from None
    if fleet.constraints.tier not in TIERS:
        raise InputError(f"{source}: constraints.tier must be one of {', '.join(TIERS)}")
    return fleet


def load_fleet(path: Path) -> Fleet:
    """Read and validate a workload file; errors name the file, workload and field."""
    return parse_fleet(read_yaml(path), str(path), path.parent)
