"""Owned hardware as an offer: purchase price, lifetime, power, hosting and cost of capital → $/h.

  capital $/month = P · i / (1 − (1 + i)^−n)          annuity, i = annual cost of capital / 12, n = lifetime
  power   $/month = W/1000 · u · PUE · $/kWh · 730     W = server max power, u = average power utilisation
  owned   $/h     = (capital + power + hosting $/month) / 730
Reserved (committed-use) prices are a separate table merged onto the cloud offers by provider + instance + region.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from gpuplan.pricing.errors import InputError
from gpuplan.pricing.offers import MAX_GPUS_PER_INSTANCE, MAX_USD_PER_HOUR, Offer
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from gpuplan.rows import Sourced, read_cells, validate_row

OWNERSHIP_CSV = Path(__file__).with_name("ownership.csv")
ENERGY_CSV = Path(__file__).with_name("energy.csv")
RESERVED_CSV = Path(__file__).with_name("reserved.csv")
HOURS_PER_MONTH = 730.0  # 8,760 h / 12
DEFAULT_POWER_UTILIZATION = 0.7  # average draw / max power of a busy inference server (assumption, override it)


class OwnershipRow(Sourced):
    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    gpu: str
    server: str
    gpus_per_server: int = Field(ge=1, le=MAX_GPUS_PER_INSTANCE)
    server_price_usd: float = Field(gt=0, le=1e9)
    lifetime_months: int = Field(gt=0, le=1200)
    server_power_w: float = Field(gt=0, le=1e7)
    hosting_usd_per_month: float = Field(ge=0, le=1e9)


# The rows of the energy table the owned-cost formula reads, and the range each value must lie in.
ENERGY_LIMITS: dict[str, tuple[float, float]] = {
    "pue": (1, 10), "electricity_usd_per_kwh": (0, 1000), "cost_of_capital_annual": (0, 10)}


class EnergyRow(Sourced):
    """One row of ``pricing/energy.csv``: a named value with its unit and provenance. Rows the formula reads
    (``ENERGY_LIMITS``) must lie in their range; the others are context (colocation rates, server lives)."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    name: str = Field(min_length=1)
    value: float = Field(ge=-1e12, le=1e12)
    unit: str = Field(min_length=1)

    @field_validator("value")
    @classmethod
    def _in_range(cls, v: float, info: ValidationInfo) -> float:
        lo, hi = ENERGY_LIMITS.get(info.data.get("name") or "", (-1e12, 1e12))
        if not lo <= v <= hi:
            raise ValueError(f"{info.data.get('name')} must be between {lo:g} and {hi:g}")
        return v


class Energy(BaseModel):
    """The three values the owned-cost formula reads, and where each comes from."""

    model_config = ConfigDict(frozen=True)

    pue: float
    electricity_usd_per_kwh: float
    cost_of_capital_annual: float
    source: str


class ReservedRow(Sourced):
    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    provider: str
    instance: str
    region: str | None = None
    reserved_1y_usd_per_hour: float | None = Field(default=None, gt=0, le=MAX_USD_PER_HOUR)
    reserved_3y_usd_per_hour: float | None = Field(default=None, gt=0, le=MAX_USD_PER_HOUR)
    row: int | None = None  # line in its CSV, for error messages


@cache
def load_ownership(path: Path = OWNERSHIP_CSV) -> tuple[tuple[OwnershipRow, ...], tuple[str, ...]]:
    """Rows with a sourced, dated price; rows without one are skipped with a note."""
    rows, skipped = [], []
    for line, cells in read_cells(path, ("gpu", "gpus_per_server", "server_price_usd", "as_of"), InputError,
                                  known=OwnershipRow.model_fields):
        if cells.get("server_price_usd") is None or cells.get("as_of") is None:
            skipped.append(f"{cells.get('gpu')}: no sourced, dated server price in {path.name} (row {line})")
            continue
        rows.append(validate_row(OwnershipRow, path, line, cells, InputError))
    return tuple(rows), tuple(skipped)  # type: ignore[return-value]


@cache
def load_energy(path: Path = ENERGY_CSV) -> Energy:
    """PUE, $/kWh and cost of capital from the energy table; every row is validated (``EnergyRow``)."""
    values: dict[str, float] = {}
    sources = []
    for line, cells in read_cells(path, ("name", "value"), InputError,
                                  known=[*EnergyRow.model_fields, "unit"]):
        row = validate_row(EnergyRow, path, line, cells, InputError)
        if row.name in ENERGY_LIMITS:
            values[row.name] = row.value
            sources.append(f"{row.name}: {row.source}")
    missing = sorted(set(ENERGY_LIMITS) - set(values))
    if missing:
        raise InputError(f"{path}: missing row '{missing[0]}'")
    return Energy(**values, source="; ".join(sources))


def capital_usd_per_month(price_usd: float, lifetime_months: int, annual_rate: float) -> float:
    """Annuity: P · i / (1 − (1 + i)^−n), i = annual rate / 12 (straight line when the rate is 0)."""
    i = annual_rate / 12
    if i == 0:
        return price_usd / lifetime_months
    return price_usd * i / (1 - (1 + i) ** -lifetime_months)


def power_usd_per_month(power_w: float, utilization: float, pue: float, usd_per_kwh: float) -> float:
    """W / 1000 · utilisation · PUE · $/kWh · 730 h."""
    return power_w / 1000 * utilization * pue * usd_per_kwh * HOURS_PER_MONTH


def owned_usd_per_hour(row: OwnershipRow, energy: Energy, utilization: float = DEFAULT_POWER_UTILIZATION) -> float:
    monthly = (capital_usd_per_month(row.server_price_usd, row.lifetime_months, energy.cost_of_capital_annual)
               + power_usd_per_month(row.server_power_w, utilization, energy.pue, energy.electricity_usd_per_kwh)
               + row.hosting_usd_per_month)
    return monthly / HOURS_PER_MONTH


def owned_offers(rows: tuple[OwnershipRow, ...], energy: Energy,
                 utilization: float = DEFAULT_POWER_UTILIZATION) -> list[Offer]:
    """One 'owned' offer per server type, priced by ``owned_usd_per_hour``."""
    if not 0 < utilization <= 1:
        raise InputError(f"power utilisation must be in (0, 1], got {utilization}")
    return [Offer(provider="owned", instance=f"{r.gpu}-server", region=None, gpu=r.gpu,
                  gpus_per_instance=r.gpus_per_server, owned_usd_per_hour=owned_usd_per_hour(r, energy, utilization),
                  source=f"{r.server}: {r.source}; {energy.source}", as_of=r.as_of, notes=r.notes)
            for r in rows]


@cache
def load_reserved(path: Path = RESERVED_CSV) -> tuple[ReservedRow, ...]:
    rows = []
    for line, cells in read_cells(path, ("provider", "instance"), InputError,
                                  known=[f for f in ReservedRow.model_fields if f != "row"]):
        row = validate_row(ReservedRow, path, line, cells, InputError)
        if row.reserved_1y_usd_per_hour and row.reserved_3y_usd_per_hour and \
                row.reserved_3y_usd_per_hour > row.reserved_1y_usd_per_hour:
            raise InputError(f"{path}, row {line}, column 'reserved_3y_usd_per_hour': {row.reserved_3y_usd_per_hour} "
                             f"is above the 1-year price {row.reserved_1y_usd_per_hour}")
        rows.append(row.model_copy(update={"row": line}))
    return tuple(rows)


def apply_reserved(offers: list[Offer], reserved: tuple[ReservedRow, ...], path: Path = RESERVED_CSV) -> list[Offer]:
    """Fill reserved_1y/3y of offers of the same provider, instance and region (an empty region in the
    reserved table means every region). A commitment above the same offer's on-demand price is refused:
    buy-vs-rent must compare like with like."""
    by_key = {(r.provider, r.instance, r.region or "*"): r for r in reserved}
    out = []
    for o in offers:
        r = by_key.get((o.provider, o.instance, o.region or "")) or by_key.get((o.provider, o.instance, "*"))
        if r is None:
            out.append(o)
            continue
        above = [t for t in ("reserved_1y", "reserved_3y") if getattr(r, f"{t}_usd_per_hour") and
                 o.on_demand_usd_per_hour and getattr(r, f"{t}_usd_per_hour") > o.on_demand_usd_per_hour]
        if above and o.source.startswith("SkyPilot catalog"):
            # a user's catalog, priced on another day than our commitments: keep its offer, without them
            out.append(o.model_copy(update={"notes": "; ".join(x for x in (o.notes, (
                f"reserved prices of {path.name} row {r.row} not applied: above this catalog's on-demand")) if x)}))
            continue
        if above:
            tier = above[0]
            raise InputError(f"{path}, row {r.row}, column '{tier}_usd_per_hour': {getattr(r, f'{tier}_usd_per_hour')} "
                             f"is above the on-demand price {o.on_demand_usd_per_hour} of {o.provider}:{o.instance} "
                             f"in {o.region}")
        out.append(o.model_copy(update={
            "reserved_1y_usd_per_hour": r.reserved_1y_usd_per_hour or o.reserved_1y_usd_per_hour,
            "reserved_3y_usd_per_hour": r.reserved_3y_usd_per_hour or o.reserved_3y_usd_per_hour,
            "notes": "; ".join(x for x in (o.notes, f"reserved: {r.source} ({r.as_of})") if x)}))
    return out
