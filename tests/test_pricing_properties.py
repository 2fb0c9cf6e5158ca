"""Invariants of the catalog reader and the place filter, over generated inputs."""

from __future__ import annotations

import tempfile
from pathlib import Path

from gpuplan.pricing.offers import Offer, read_table
from gpuplan.pricing.regions import admitted_jurisdictions, cheapest_region, filter_place, load_regions
from hypothesis import given, settings
from hypothesis import strategies as st

REGIONS = ["us-east-1", "eu-central-1", "eu-central-2", "eu-west-2", "ap-northeast-1"]
price = st.decimals(min_value="0.01", max_value="200", places=4).map(float)
zone_rows = st.lists(st.tuples(st.sampled_from(REGIONS), price, st.none() | price), min_size=1, max_size=12)


@settings(max_examples=40, deadline=None)
@given(zone_rows)
def test_each_region_gets_its_cheapest_zone_prices(rows: list[tuple[str, float, float | None]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        vms = Path(tmp) / "catalogs" / "v8" / "aws" / "vms.csv"
        vms.parent.mkdir(parents=True)
        lines = ["InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuInfo,Price,SpotPrice,Region,"
                 "AvailabilityZone"]
        lines += [f"p5.48xlarge,H100,8.0,192.0,2048.0,,{p},{'' if s is None else s},{r},{r}-az{i}"
                  for i, (r, p, s) in enumerate(rows)]
        vms.write_text("\n".join(lines) + "\n")
        offers = {o.region: o for o in read_table(vms).offers}
    assert set(offers) == {r for r, _, _ in rows}
    for region, o in offers.items():
        od = min(p for r, p, _ in rows if r == region)
        # a zone whose SpotPrice equals its Price has no spot market (RunPod repeats the price)
        spots = [s for r, p, s in rows if r == region and s is not None and s != p]
        spot = min(spots) if spots else None
        assert o.on_demand_usd_per_hour == od
        assert o.spot_usd_per_hour == (None if spot == od else spot)


def _offer(provider: str, region: str, usd: float) -> Offer:
    return Offer(provider=provider, instance="x", region=region, gpu="h100-sxm", gpus_per_instance=8,
                 on_demand_usd_per_hour=usd, source="test", as_of="2026-01-01")


places = st.lists(st.tuples(st.sampled_from(["aws", "gcp", "azure"]),
                            st.sampled_from(["us-east-1", "eu-central-2", "europe-west4", "westeurope", "uksouth",
                                             "eu-west-1", "us-central1"]), price), min_size=1, max_size=15)


@settings(max_examples=60, deadline=None)
@given(places, st.sets(st.sampled_from(["EU", "EEA", "CH", "UK", "US"]), min_size=1))
def test_place_filter_keeps_only_admitted_jurisdictions(rows, wanted) -> None:
    table = load_regions()
    offers = [_offer(p, r, u) for p, r, u in rows]
    kept = filter_place(offers, None, sorted(wanted), table)
    admitted = admitted_jurisdictions(wanted, table)
    assert all(table.place(o.provider, o.region).jurisdiction in admitted for o in kept)
    assert len(kept) == sum(1 for o in offers if table.place(o.provider, o.region) and
                            table.place(o.provider, o.region).jurisdiction in admitted)
    cheapest = cheapest_region(kept, "on_demand")
    assert len({(o.provider, o.instance) for o in cheapest}) == len(cheapest)
    for o in cheapest:
        assert o.on_demand_usd_per_hour == min(k.on_demand_usd_per_hour for k in kept if k.provider == o.provider)
