"""Offer tables: our CSV (one row per provider × instance × region) and SkyPilot catalog ``vms.csv`` files.

An offer is one rentable (or owned) instance: a GPU type, how many per instance, and $/h per
pricing tier. Instances are paid whole.
"""

from __future__ import annotations

import datetime as dt
import difflib
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

from gpuplan.pricing.errors import InputError
from gpuplan.pricing.skypilot import read_skypilot
from pydantic import ConfigDict, Field

from gpuplan.rows import Name, Sourced, check_columns, validate_row
from gpuplan.safeio import read_csv_dicts

OFFERS_CSV = Path(__file__).with_name("offers.csv")
# Ceilings far above any real offer; they keep the solver's integer scaling inside int64.
MAX_USD_PER_HOUR = 1e6
MAX_GPUS_PER_INSTANCE = 1024
Tier = Literal["on_demand", "spot", "reserved_1y", "reserved_3y", "owned"]
TIERS: tuple[str, ...] = ("on_demand", "spot", "reserved_1y", "reserved_3y", "owned")


class Offer(Sourced):
    """One instance type of one provider, priced per instance-hour."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    provider: Name
    instance: Name
    region: Name | None = None
    gpu: Name
    gpus_per_instance: int = Field(ge=1, le=MAX_GPUS_PER_INSTANCE)
    on_demand_usd_per_hour: float | None = Field(default=None, gt=0, le=MAX_USD_PER_HOUR)
    spot_usd_per_hour: float | None = Field(default=None, gt=0, le=MAX_USD_PER_HOUR)
    reserved_1y_usd_per_hour: float | None = Field(default=None, gt=0, le=MAX_USD_PER_HOUR)
    reserved_3y_usd_per_hour: float | None = Field(default=None, gt=0, le=MAX_USD_PER_HOUR)
    owned_usd_per_hour: float | None = Field(default=None, gt=0, le=MAX_USD_PER_HOUR)
    max_instances: int | None = Field(default=None, ge=0, le=10_000_000)

    @property
    def key(self) -> str:
        return f"{self.provider}:{self.instance}"

    @property
    def region_key(self) -> tuple[str, str, str]:
        return (self.provider, self.instance, self.region or "")

    @property
    def as_of_date(self) -> dt.date:
        return dt.date.fromisoformat(self.as_of)

    def price(self, tier: str) -> float | None:
        """$/h of one instance in ``tier``, None when the provider has no such price."""
        return getattr(self, f"{tier}_usd_per_hour", None)


PROVIDER_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
INSTANCE_FACTS = ("vcpus", "host_memory_gb")  # columns of the shipped table the planner does not read (the host)
_OUR_COLUMNS = {"provider", "instance", "gpu", "gpus_per_instance", "source", "as_of"}
_PRICES = tuple(f"{t}_usd_per_hour" for t in TIERS)


def _cell(raw: dict[str, str | None], key: str) -> str | None:
    value = raw.get(key)
    return value.strip() if isinstance(value, str) and value.strip() else None


def _positive_number(text: str) -> bool:
    """A finite number > 0 written in ASCII (Python also reads Arabic-Indic digits and 'nan')."""
    try:
        value = float(text)
    except ValueError:
        return False
    return text.isascii() and math.isfinite(value) and value > 0


def _read_ours(path: Path, rows: list[dict[str, str | None]]) -> list[Offer]:
    offers: list[Offer] = []
    seen: dict[tuple[str, str, str], tuple[int, Offer]] = {}
    for line, raw in enumerate(rows, start=2):
        if None in raw:
            raise InputError(f"{path}, row {line}: more cells than header columns")
        cells = {k: _cell(raw, k) for k in Offer.model_fields if _cell(raw, k) is not None}
        if "gpu" in cells:
            cells["gpu"] = str(cells["gpu"]).lower()
        offer = validate_row(Offer, path, line, cells, InputError)
        for fact in INSTANCE_FACTS:  # not read by the planner, but a table with garbage in them is not trusted
            text = _cell(raw, fact)
            if text is not None and not _positive_number(text):
                raise InputError(f"{path}, row {line}, column '{fact}': not a positive number ({text!a:.40})")
        if not any(offer.price(t) for t in TIERS):
            raise InputError(f"{path}, row {line}: offer '{offer.key}' has no price in any tier")
        first = seen.get(offer.region_key)
        if first is not None:
            differ = next((c for c in _PRICES if getattr(first[1], c) != getattr(offer, c)), None)
            if differ:
                raise InputError(f"{path}, row {line}, column '{differ}': duplicate of row {first[0]} "
                                 f"({offer.region_key}) with a different price")
        seen[offer.region_key] = (line, offer)
        offers.append(offer)
    return offers


@dataclass(frozen=True)
class OfferTable:
    """One pricing file read: its offers and, for a SkyPilot catalog, what was skipped and why."""

    path: Path
    offers: tuple[Offer, ...]
    summary: str | None = None
    skipped_rows: tuple[tuple[int, str], ...] = ()


def read_table(path: Path = OFFERS_CSV, provider: str | None = None) -> OfferTable:
    """Read one pricing file, detecting our schema or SkyPilot's ``vms.csv`` by its header (cached until
    the file changes)."""
    try:
        stat = Path(path).stat()
    except (OSError, ValueError):  # missing, loop, bad name: read_csv_dicts says which, in one line
        read_csv_dicts(path)
        raise
    return _read_table(Path(path), provider, stat.st_mtime_ns, stat.st_size)


@cache
def _read_table(path: Path, provider: str | None, _mtime_ns: int, _size: int) -> OfferTable:
    header, rows = read_csv_dicts(path)
    if "InstanceType" in header or path.name == "vms.csv":
        cat = read_skypilot(path, header, rows, provider)
        offers = [validate_row(Offer, path, int(c.pop("_line")), c, InputError) for c in cat.rows]  # type: ignore[arg-type]
        return OfferTable(path, tuple(offers), cat.summary(path), tuple(cat.skipped_rows))
    missing = sorted(_OUR_COLUMNS - set(header))
    if missing:
        raise InputError(f"{path}: missing column '{missing[0]}' (neither gpuplan nor SkyPilot vms.csv format)")
    check_columns(path, header, [*Offer.model_fields, *INSTANCE_FACTS], InputError)  # a misspelt price column is
    # refused, not dropped
    offers = _read_ours(path, rows)
    if not offers:
        raise InputError(f"{path}: no offer rows")
    return OfferTable(path, tuple(offers))


def load_offers(path: Path = OFFERS_CSV, provider: str | None = None) -> tuple[Offer, ...]:
    return read_table(path, provider).offers


def sky_catalogs(home: Path | None = None) -> list[Path]:
    """The newest ``~/.sky/catalogs/vN/<cloud>/vms.csv`` per cloud (as SkyPilot downloads them)."""
    root = (home or Path.home()) / ".sky" / "catalogs"
    newest: dict[str, tuple[int, Path]] = {}
    for f in root.glob("v*/*/vms.csv"):
        version = f.parent.parent.name[1:]
        if version.isdigit() and (f.parent.name not in newest or int(version) > newest[f.parent.name][0]):
            newest[f.parent.name] = (int(version), f)
    if not newest:
        raise InputError(f"--pricing skypilot: no catalogs under {root} (SkyPilot downloads them on first use, "
                         f"e.g. 'sky show-gpus')")
    return [newest[c][1] for c in sorted(newest)]


def expand_pricing(sources: Iterable[Path], default_provider: str | None = None) -> list[tuple[Path, str | None]]:
    """--pricing values → (file, provider): ``skypilot`` = the user's SkyPilot catalogs, ``PROVIDER=PATH``
    names the provider of a catalog outside SkyPilot's layout."""
    out: list[tuple[Path, str | None]] = []
    for src in sources:
        text = str(src)
        if text == "skypilot":
            out.extend((p, None) for p in sky_catalogs())
        elif "=" in text and not Path(text).exists():
            provider, _, path = text.partition("=")
            provider = provider.strip().lower()
            if provider and not PROVIDER_NAME.fullmatch(provider):
                raise InputError(f"--pricing {provider!r:.80}={path}: a provider name is lower-case letters, digits "
                                 "and '._-' (e.g. lambda)")
            out.append((Path(path), provider or None))
        else:
            out.append((Path(text), default_provider))
    return out


def merge_offers(tables: Iterable[tuple[Offer, ...]]) -> list[Offer]:
    """Concatenate tables; a later table's row replaces an earlier one with the same provider, instance, region."""
    merged: dict[tuple[str, str, str], Offer] = {}
    for table in tables:
        for offer in table:
            merged[offer.region_key] = offer
    return sorted(merged.values(), key=lambda o: (o.provider, o.gpu, o.gpus_per_instance, o.instance, o.region or ""))


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


def check_providers(offers: Iterable[Offer], names: Iterable[str] | None, where: str) -> None:
    """Every name in ``names`` is a provider of ``offers`` (any tier, case-insensitive), else one line naming
    ``where``, the first unknown name and the known ones: a typo ('gpc') must not plan silently without it."""
    known = sorted({o.provider for o in offers})
    for name in names or ():
        if name.lower() not in known:
            close = difflib.get_close_matches(name.lower(), known, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise InputError(f"{where}: unknown provider '{name}' (the price tables have {', '.join(known)}){hint}")


def usd_per_gpu_hour(offer: Offer, tier: str) -> float:
    """Instance price / GPUs per instance (NaN if the tier has no price)."""
    price = offer.price(tier)
    return price / offer.gpus_per_instance if price else math.nan
