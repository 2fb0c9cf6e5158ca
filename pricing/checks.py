"""Consistency and freshness of offer tables: what ``gpuplan prices --check`` reports.

Rules (one finding per offer and rule):
  - spot ≤ on-demand, reserved_3y ≤ reserved_1y ≤ on-demand (same provider, instance and region);
  - the GPU is in the GPU table and GPUs per instance divide, or are a multiple of, its NVLink domain;
  - every reserved row attaches to an offer of the same provider, instance and region;
  - as_of no older than ``max_age_days`` before the reference date (an option, so the check is
    reproducible: by default the newest as_of in the table, never the clock).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

from gpuplan.pricing.offers import Offer
from gpuplan.pricing.ownership import ReservedRow
from pydantic import BaseModel


class Finding(BaseModel):
    rule: str
    provider: str
    instance: str
    region: str | None
    message: str


def _price_findings(o: Offer) -> list[tuple[str, str]]:
    od, spot = o.on_demand_usd_per_hour, o.spot_usd_per_hour
    r1, r3 = o.reserved_1y_usd_per_hour, o.reserved_3y_usd_per_hour
    out = []
    if od and spot and spot > od:
        out.append(("spot_above_on_demand", f"spot {spot:g} > on-demand {od:g}"))
    for name, price in (("reserved_1y", r1), ("reserved_3y", r3)):
        if od and price and price > od:
            out.append((f"{name}_above_on_demand", f"{name} {price:g} > on-demand {od:g}"))
    if r1 and r3 and r3 > r1:
        out.append(("reserved_3y_above_1y", f"reserved_3y {r3:g} > reserved_1y {r1:g}"))
    return out


def _shape_findings(o: Offer, domains: Mapping[str, int]) -> list[tuple[str, str]]:
    if o.gpu not in domains:
        return [("unknown_gpu", f"GPU '{o.gpu}' is not in the GPU table")]
    domain, n = domains[o.gpu], o.gpus_per_instance
    if domain > 1 and domain % n and n % domain:
        return [("gpus_per_instance", f"{n} GPUs per instance neither divides nor fills the {o.gpu} "
                                      f"NVLink domain of {domain}")]
    return []


def check_offers(offers: Iterable[Offer], domains: Mapping[str, int], max_age_days: int | None = None,
                 as_of: dt.date | None = None) -> tuple[list[Finding], dt.date]:
    """Findings for every offer (owned servers are priced by formula and skipped), and the reference date."""
    cloud = [o for o in offers if o.provider != "owned"]
    ref = as_of or max((o.as_of_date for o in cloud), default=dt.date(1970, 1, 1))
    found = []
    for o in cloud:
        items = _price_findings(o) + _shape_findings(o, domains)
        age = (ref - o.as_of_date).days
        if max_age_days is not None and age > max_age_days:
            items.append(("stale", f"as_of {o.as_of} is {age} days before {ref} (limit {max_age_days})"))
        found += [Finding(rule=r, provider=o.provider, instance=o.instance, region=o.region, message=m)
                  for r, m in items]
    return found, ref



def age_note(used: Iterable[str], table: Iterable[str]) -> tuple[str | None, str | None]:
    """(oldest as_of among the prices a result used, one line saying how old they are). The age is counted
    against the newest as_of in the loaded tables, not the clock, so the same input says the same thing."""
    used_dates = sorted({dt.date.fromisoformat(d) for d in used})
    if not used_dates:
        return None, None
    newest = max(dt.date.fromisoformat(d) for d in table)
    oldest = used_dates[0]
    span = str(oldest) if len(used_dates) == 1 else f"{oldest} … {used_dates[-1]}"
    days = (newest - oldest).days
    months = f", about {days / 30.44:.0f} months" if days >= 61 else ""
    return str(oldest), (f"prices as of {span}: the oldest is {days} days{months} older than the newest row of "
                         f"the price tables ({newest}); check them with 'gpuplan prices --check'")


def unmatched_reserved(reserved: Iterable[ReservedRow], offers: Iterable[Offer]) -> list[Finding]:
    """Reserved rows that attach to no offer (a region or instance mismatch leaves them unused)."""
    keys = {(o.provider, o.instance, o.region or "") for o in offers}
    instances = {(o.provider, o.instance) for o in offers}
    out = []
    for r in reserved:
        hit = (r.provider, r.instance) in instances if not r.region else (r.provider, r.instance, r.region) in keys
        if not hit:
            out.append(Finding(rule="reserved_unmatched", provider=r.provider, instance=r.instance, region=r.region,
                               message=f"reserved row {r.row} matches no offer of the same provider, instance "
                                       f"and region"))
    return out
