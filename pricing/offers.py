"""Offer tables: our CSV (one row per provider × instance) and SkyPilot catalog ``vms.csv`` files.

An offer is one rentable (or owned) instance: a GPU type, how many per instance, and $/h per
pricing tier. Instances are paid whole.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Literal, TypeVar

from gpuplan.pricing.errors import InputError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gpuplan.safeio import read_csv_dicts

OFFERS_CSV = Path(__file__).with_name("offers.csv")
Row = TypeVar("Row", bound=BaseModel)
# Ceilings far above any real offer; they keep the solver's integer scaling inside int64.
MAX_USD_PER_HOUR = 1e6
MAX_GPUS_PER_INSTANCE = 1024
Tier = Literal["on_demand", "spot", "reserved_1y", "reserved_3y", "owned"]
TIERS: tuple[str, ...] = ("on_demand", "spot", "reserved_1y", "reserved_3y", "owned")


class Offer(BaseModel):
    """One instance type of one provider, priced per instance-hour."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    provider: str
    instance: str
    region: str | None = None
    gpu: str
    gpus_per_instance: int = Field(ge=1, le=MAX_GPUS_PER_INSTANCE)
    on_demand_usd_per_hour: float | None = Field(default=None, gt=0, le=MAX_USD_PER_HOUR)
    spot_usd_per_hour: float | None = Field(default=None, gt=0, le=MAX_USD_PER_HOUR)
    reserved_1y_usd_per_hour: float | None = Field(default=None, gt=0, le=MAX_USD_PER_HOUR)
    reserved_3y_usd_per_hour: float | None = Field(default=None, gt=0, le=MAX_USD_PER_HOUR)
    owned_usd_per_hour: float | None = Field(default=None, gt=0, le=MAX_USD_PER_HOUR)
    max_instances: int | None = Field(default=None, ge=0, le=10_000_000)
    source: str
    as_of: str
    notes: str | None = None

    @property
    def key(self) -> str:
        return f"{self.provider}:{self.instance}"

    def price(self, tier: str) -> float | None:
        """$/h of one instance in ``tier``, None when the provider has no such price."""
        return getattr(self, f"{tier}_usd_per_hour", None)


_OUR_COLUMNS = {"provider", "instance", "gpu", "gpus_per_instance", "source", "as_of"}
_SKY_COLUMNS = {"InstanceType", "AcceleratorName", "AcceleratorCount", "Price"}

# SkyPilot accelerator names → our GPU ids (form factor per the catalog conventions of each cloud).
SKYPILOT_GPU = {
    "a100": "a100-40gb", "a100-80gb": "a100-80gb", "h100": "h100-sxm", "h100-sxm": "h100-sxm",
    "h100-mega": "h100-sxm", "h200": "h200", "b200": "b200", "b300": "b300", "gh200": "gh200-96gb",
    "l4": "l4", "l40s": "l40s", "a10g": "a10g", "a10": "a10", "rtx4090": "rtx-4090", "rtx3090": "rtx-3090",
    "rtx5090": "rtx-5090", "rtxa6000": "rtx-a6000", "rtx6000ada": "rtx-6000-ada", "mi300x": "mi300x",
}


def _cell(raw: dict[str, str | None], key: str) -> str | None:
    value = raw.get(key)
    return value.strip() if isinstance(value, str) and value.strip() else None


def validate_row(model: type[Row], path: Path, line: int, cells: dict[str, object]) -> Row:
    """``model`` from one CSV row; a bad cell becomes one line naming the file, row and column."""
    try:
        return model.model_validate(cells)
    except ValidationError as err:
        first = err.errors()[0]
        column = str(first["loc"][0]) if first["loc"] else "?"
        raise InputError(f"{path}, row {line}, column '{column}': {first['msg']} "
                         f"(got {cells.get(column)!r:.60})") from None


def _read_ours(path: Path, rows: list[dict[str, str | None]]) -> list[Offer]:
    offers: list[Offer] = []
    seen: dict[str, Offer] = {}
    for line, raw in enumerate(rows, start=2):
        if None in raw:
            raise InputError(f"{path}, row {line}: more cells than header columns")
        cells = {k: _cell(raw, k) for k in Offer.model_fields if _cell(raw, k) is not None}
        if "gpu" in cells:
            cells["gpu"] = str(cells["gpu"]).lower()
        offer = validate_row(Offer, path, line, cells)
        if not any(offer.price(t) for t in TIERS):
            raise InputError(f"{path}, row {line}: offer '{offer.key}' has no price in any tier")
        earlier = seen.get(offer.key)
        provenance = {"source": offer.source, "as_of": offer.as_of, "notes": offer.notes}
        if earlier is not None and earlier.model_copy(update=provenance) != offer:
            raise InputError(f"{path}, row {line}: offer '{offer.key}' is listed twice with different values")
        seen[offer.key] = offer
        offers.append(offer)
    return offers


def _read_skypilot(path: Path, rows: list[dict[str, str | None]]) -> list[Offer]:
    """Cheapest row per instance type (as SkyPilot costs it); rows without a mapped GPU are skipped."""
    as_of = dt.date.fromtimestamp(path.stat().st_mtime).isoformat()
    best: dict[str, dict[str, object]] = {}
    for line, raw in enumerate(rows, start=2):
        name, inst = _cell(raw, "AcceleratorName"), _cell(raw, "InstanceType")
        gpu = SKYPILOT_GPU.get((name or "").lower())
        if not gpu or not inst:
            continue
        try:
            count = float(_cell(raw, "AcceleratorCount") or "nan")
            price = float(_cell(raw, "Price") or "nan")
            spot = float(_cell(raw, "SpotPrice") or "nan")
        except ValueError as err:
            raise InputError(f"{path}, row {line}: not a number ({err})") from None
        if not (math.isfinite(count) and math.isfinite(price)) or not count >= 1 or not price > 0 \
                or count != int(count):
            continue  # SkyPilot leaves cells empty for unknown values; non-finite ones are treated alike
        cells: dict[str, object] = {
            "provider": path.parent.name.lower() or "skypilot", "instance": inst,
            "region": _cell(raw, "Region"), "gpu": gpu, "gpus_per_instance": int(count),
            "on_demand_usd_per_hour": price, "spot_usd_per_hour": spot if spot > 0 and spot != price else None,
            "source": f"SkyPilot catalog {path}", "as_of": as_of, "_line": line,
        }
        if inst not in best or price < float(best[inst]["on_demand_usd_per_hour"]):  # type: ignore[arg-type]
            best[inst] = cells
    out = []
    for cells in best.values():
        line = int(cells.pop("_line"))  # type: ignore[arg-type]
        out.append(validate_row(Offer, path, line, cells))
    return out


@cache
def load_offers(path: Path = OFFERS_CSV) -> tuple[Offer, ...]:
    """Read one pricing file, detecting our schema or SkyPilot's ``vms.csv`` by its header."""
    columns, rows = read_csv_dicts(path)
    header = set(columns)
    if header >= _SKY_COLUMNS:
        offers = _read_skypilot(path, rows)
    else:
        missing = sorted(_OUR_COLUMNS - header)
        if missing:
            raise InputError(f"{path}: missing column '{missing[0]}' (neither gpuplan nor SkyPilot vms.csv format)")
        offers = _read_ours(path, rows)
    if not offers:
        raise InputError(f"{path}: no offer gpuplan can use ({len(rows)} rows; SkyPilot rows need a known "
                         "accelerator, a whole AcceleratorCount ≥ 1 and a finite Price > 0)")
    return tuple(offers)


def merge_offers(tables: Iterable[tuple[Offer, ...]]) -> list[Offer]:
    """Concatenate tables; a later table's row replaces an earlier one with the same provider:instance."""
    merged: dict[str, Offer] = {}
    for table in tables:
        for offer in table:
            merged[offer.key] = offer
    return sorted(merged.values(), key=lambda o: (o.provider, o.gpu, o.gpus_per_instance, o.instance))


def filter_offers(offers: Iterable[Offer], gpu: str | None = None, provider: Iterable[str] | None = None,
                  tier: str | None = None) -> list[Offer]:
    """Offers matching a GPU id, any of the providers, and having a price in ``tier``."""
    providers = {p.lower() for p in provider} if provider else None
    out = []
    for o in offers:
        if gpu and o.gpu != gpu:
            continue
        if providers and o.provider not in providers:
            continue
        if tier and o.price(tier) is None:
            continue
        out.append(o)
    return out


def usd_per_gpu_hour(offer: Offer, tier: str) -> float:
    """Instance price / GPUs per instance (NaN if the tier has no price)."""
    price = offer.price(tier)
    return price / offer.gpus_per_instance if price else math.nan
