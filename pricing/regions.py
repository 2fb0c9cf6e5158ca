"""Where an offer runs: provider regions → country → jurisdiction, and the region/jurisdiction filter.

Two data tables, both swappable: ``countries.csv`` (ISO 3166-1 code → jurisdiction: EU member states
are ``EU``, the other EEA states ``EEA``, then ``UK``, ``CH``, ``US`` and every other country under its
own code) and ``regions.csv`` (provider, region or glob → country). A constraint ``EEA`` admits ``EU``
rows too, since every EU state is in the EEA. Marketplace regions that carry their country in the name
(Vast's ``"Oslo, NO, EU"``) are read from the name when the table has no row.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Protocol, TypeVar

from gpuplan.pricing.errors import InputError

from gpuplan.rows import Sourced, validate_row
from gpuplan.safeio import read_csv_dicts

COUNTRIES_CSV = Path(__file__).with_name("countries.csv")
REGIONS_CSV = Path(__file__).with_name("regions.csv")
IMPLIED = {"EEA": {"EU", "EEA"}}  # a constraint → the jurisdictions it admits
_COUNTRY_IN_NAME = re.compile(r"(?:^|,\s*)([A-Z]{2})(?:\s*,\s*[A-Z]{2,3})?\s*$")


class _HasPlace(Protocol):
    provider: str
    instance: str
    region: str | None

    def price(self, tier: str) -> float | None: ...


OfferLike = TypeVar("OfferLike", bound=_HasPlace)


@dataclass(frozen=True)
class Place:
    country: str
    jurisdiction: str


def _read(path: Path, columns: set[str]) -> list[tuple[int, dict[str, str]]]:
    header, rows = read_csv_dicts(path)
    missing = sorted(columns - set(header))
    if missing:
        raise InputError(f"{path}: missing column '{missing[0]}'")
    return [(n, {k: (v or "").strip() for k, v in row.items() if k}) for n, row in enumerate(rows, 2)]


class RegionTable:
    """Country of a (provider, region) and the jurisdiction of a country."""

    def __init__(self, countries: Path = COUNTRIES_CSV, regions: Path = REGIONS_CSV) -> None:
        self.jurisdiction_of: dict[str, str] = {}
        for line, row in _read(countries, {"country", "jurisdiction", "source", "as_of"}):
            validate_row(Sourced, countries, line, row, InputError)
            if not row["country"] or not row["jurisdiction"]:
                raise InputError(f"{countries}, row {line}: country and jurisdiction are required")
            self.jurisdiction_of[row["country"].upper()] = row["jurisdiction"].upper()
        self.exact: dict[tuple[str, str], str] = {}
        self.globs: list[tuple[str, str, str]] = []
        for line, row in _read(regions, {"provider", "region", "country", "source", "as_of"}):
            validate_row(Sourced, regions, line, row, InputError)
            country = row["country"].upper()
            if country not in self.jurisdiction_of:
                raise InputError(f"{regions}, row {line}, column 'country': "
                                 f"'{row['country']}' is not in {countries.name}")
            key = (row["provider"].lower(), row["region"].lower())
            if any(ch in key[1] for ch in "*?["):
                self.globs.append((*key, country))
            else:
                self.exact[key] = country

    @property
    def jurisdictions(self) -> set[str]:
        return set(self.jurisdiction_of.values()) | set(IMPLIED)

    def place(self, provider: str, region: str | None) -> Place | None:
        """Country and jurisdiction of a provider's region; None when neither table nor name tells."""
        if not region:
            return None
        p, r = provider.lower(), region.lower()
        country = self.exact.get((p, r))
        if country is None:
            country = next((c for gp, gr, c in self.globs if gp == p and fnmatch.fnmatchcase(r, gr)), None)
        if country is None:
            m = _COUNTRY_IN_NAME.search(region.strip())
            country = m.group(1) if m and m.group(1) in self.jurisdiction_of else None
        return Place(country, self.jurisdiction_of[country]) if country else None


@cache
def load_regions(countries: Path = COUNTRIES_CSV, regions: Path = REGIONS_CSV) -> RegionTable:
    return RegionTable(countries, regions)


def admitted_jurisdictions(wanted: Iterable[str], table: RegionTable) -> set[str]:
    """Jurisdictions a constraint admits (EEA → EU + EEA); an unknown name is bad input."""
    out: set[str] = set()
    for j in wanted:
        key = j.strip().upper()
        if key not in table.jurisdictions:
            raise InputError(f"unknown jurisdiction '{j}' in constraints.jurisdictions "
                             f"(known: {', '.join(sorted(table.jurisdictions))})")
        out |= IMPLIED.get(key, {key})
    return out


def region_matches(region: str | None, patterns: Sequence[str]) -> bool:
    """True when the region equals or glob-matches one pattern (case-insensitive)."""
    return bool(region) and any(fnmatch.fnmatchcase(region.lower(), p.lower()) for p in patterns)


def describe_place(regions: Sequence[str] | None, jurisdictions: Sequence[str] | None) -> str:
    """'in jurisdictions EU, CH and regions europe-*' — the place part of a message, '' when unconstrained."""
    parts = []
    if jurisdictions:
        parts.append(f"jurisdictions {', '.join(j.upper() for j in jurisdictions)}")
    if regions:
        parts.append(f"regions {', '.join(regions)}")
    return f"in {' and '.join(parts)}" if parts else ""


def filter_place(offers: Iterable[OfferLike], regions: Sequence[str] | None, jurisdictions: Sequence[str] | None,
                 table: RegionTable | None = None) -> list[OfferLike]:
    """Offers whose region matches a pattern and lies in an admitted jurisdiction. Owned servers (no
    provider region) stay: they are wherever you put them. A pattern matching no offer's region is bad
    input, as is an unknown jurisdiction."""
    offers = list(offers)
    if not regions and not jurisdictions:
        return offers
    table = table or load_regions()
    admitted = admitted_jurisdictions(jurisdictions, table) if jurisdictions else None
    for pattern in regions or ():
        if not any(region_matches(o.region, [pattern]) for o in offers):
            raise InputError(f"constraints.regions: '{pattern}' matches no region of any offer")
    out = []
    for o in offers:
        if o.provider == "owned":
            out.append(o)
            continue
        if regions and not region_matches(o.region, regions):
            continue
        if admitted is not None:
            place = table.place(o.provider, o.region)
            if place is None or place.jurisdiction not in admitted:
                continue
        out.append(o)
    return out


def cheapest_region(offers: Iterable[OfferLike], tier: str) -> list[OfferLike]:
    """One offer per (provider, instance): the region cheapest in ``tier`` (ties: region name)."""
    best: dict[tuple[str, str], OfferLike] = {}
    for o in offers:
        key = (o.provider, o.instance)
        price = o.price(tier) or float("inf")
        cur = best.get(key)
        if cur is None or (price, o.region or "") < (cur.price(tier) or float("inf"), cur.region or ""):
            best[key] = o
    return list(best.values())
