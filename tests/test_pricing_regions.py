"""Regions → jurisdictions, the place constraint in plans, the price check and reserved-price refusal."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from gpuplan.optimizer.tables import Tables
from gpuplan.pricing.regions import admitted_jurisdictions, load_regions

EXAMPLES = Path(__file__).parents[1] / "examples"


@pytest.mark.parametrize(("provider", "region", "country", "jurisdiction"), [
    ("gcp", "europe-west4", "NL", "EU"), ("aws", "eu-central-2", "CH", "CH"),  # Zurich: eu-* but not EU
    ("azure", "uksouth", "GB", "UK"), ("lambda", "us-south-2", "US", "US"), ("verda", "FIN-03", "FI", "EU"),
    ("runpod", "IS", "IS", "EEA"), ("vast", "Oslo, NO, EU", "NO", "EEA"),  # country read from the name
])
def test_region_table_places(provider: str, region: str, country: str, jurisdiction: str) -> None:
    place = load_regions().place(provider, region)
    assert place is not None and (place.country, place.jurisdiction) == (country, jurisdiction)


def test_eea_admits_eu_and_unknown_jurisdiction_is_refused() -> None:
    table = load_regions()
    assert admitted_jurisdictions(["EEA"], table) == {"EU", "EEA"}
    with pytest.raises(ValueError, match="unknown jurisdiction 'ATLANTIS'"):
        admitted_jurisdictions(["ATLANTIS"], table)


def test_eu_example_plans_only_in_the_eu(gpuplan) -> None:
    r = gpuplan("plan", str(EXAMPLES / "eu_sovereign.yaml"), "--format", "json")
    assert r.code == 0, r.err
    deployments = [d for w in r.json()["workloads"] for d in w["deployments"]]
    table = load_regions()
    assert deployments and all(table.place(d["provider"], d["region"]).jurisdiction == "EU" for d in deployments)


def _fleet(tmp_path: Path, **constraints: object) -> Path:
    fleet = yaml.safe_load((EXAMPLES / "eu_sovereign.yaml").read_text())
    fleet["constraints"] = {"tier": "on_demand", **constraints}
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(fleet))
    return path


def test_infeasible_place_is_named_and_bad_place_is_input_error(gpuplan, tmp_path: Path) -> None:
    # AWS rows in the shipped table are all in US regions: no AWS offer in the EU
    r = gpuplan("plan", str(_fleet(tmp_path, providers=["aws"], jurisdictions=["EU", "CH"])))
    assert r.code == 3 and "in jurisdictions EU, CH" in r.err
    r = gpuplan("plan", str(_fleet(tmp_path, jurisdictions=["XX"])))
    assert r.code == 2 and "unknown jurisdiction 'XX'" in r.err
    r = gpuplan("plan", str(_fleet(tmp_path, regions=["mars-*"])))
    assert r.code == 2 and "'mars-*' matches no region" in r.err
    r = gpuplan("plan", str(_fleet(tmp_path, regions=["europe-west4", "europe-west1*"], providers=["gcp"])),
                "--format", "json")
    regions = {d["region"] for w in r.json()["workloads"] for d in w["deployments"]}
    assert r.code == 0 and regions <= {"europe-west4", "europe-west1"}


def test_shipped_tables_pass_the_check(gpuplan) -> None:
    # newest shipped row 2026-09-27; oldest 2025-03-06 (GCP list prices): 570 days before 2026-09-27
    r = gpuplan("prices", "--check", "--max-age-days", "600", "--as-of", "2026-09-27", "--format", "json")
    assert r.code == 0, r.out
    assert r.json()["findings"] == []
    r = gpuplan("prices", "--check", "--max-age-days", "365", "--as-of", "2026-12-01", "--format", "json")
    stale = {(f["provider"], f["instance"]) for f in r.json()["findings"]}
    assert r.code == 2 and ("gcp", "a3-megagpu-8g") in stale and all(f["rule"] == "stale" for f in r.json()["findings"])


def test_check_reports_spot_above_on_demand(gpuplan, tmp_path: Path) -> None:
    offers = tmp_path / "offers.csv"
    offers.write_text("provider,instance,region,gpu,gpus_per_instance,on_demand_usd_per_hour,spot_usd_per_hour,"
                      "as_of,source\nx,h1,us-east-1,h100-sxm,3,2.0,2.5,2026-01-01,test\n")
    r = gpuplan("--pricing", str(offers), "prices", "--check", "--format", "json")
    rules = {f["rule"] for f in r.json()["findings"]} - {"reserved_unmatched"}  # shipped reserved.csv, other offers
    assert r.code == 2 and rules == {"spot_above_on_demand", "gpus_per_instance"}


def test_reserved_above_on_demand_is_refused(gpuplan, tmp_path: Path) -> None:
    reserved = tmp_path / "reserved.csv"
    # GCP a3-highgpu-8g us-central1 lists at 88.49/h; a 1-year price of 90 would make reserved dearer
    reserved.write_text("provider,instance,region,reserved_1y_usd_per_hour,reserved_3y_usd_per_hour,source,as_of\n"
                        "gcp,a3-highgpu-8g,us-central1,90.0,38.86,test,2026-09-27\n")
    r = gpuplan("--reserved", str(reserved), "prices", "--gpu", "h100-sxm")
    assert r.code == 2 and "row 2, column 'reserved_1y_usd_per_hour'" in r.err and "88.49" in r.err


def test_duplicate_offer_rows_with_different_prices_are_refused(gpuplan, tmp_path: Path) -> None:
    offers = tmp_path / "offers.csv"
    row = "x,h1,us-east-1,h100-sxm,8,{},,2026-01-01,test\n"
    offers.write_text("provider,instance,region,gpu,gpus_per_instance,on_demand_usd_per_hour,spot_usd_per_hour,"
                      "as_of,source\n" + row.format(20) + row.format(21))
    r = gpuplan("--pricing", str(offers), "prices")
    assert r.code == 2 and "row 3" in r.err and "duplicate of row 2" in r.err


def test_year_only_dates_are_refused(gpuplan, tmp_path: Path) -> None:
    offers = tmp_path / "offers.csv"
    offers.write_text("provider,instance,region,gpu,gpus_per_instance,on_demand_usd_per_hour,as_of,source\n"
                      "x,h1,us-east-1,h100-sxm,8,20,2025,test\n")
    r = gpuplan("--pricing", str(offers), "prices")
    assert r.code == 2 and "row 2, column 'as_of'" in r.err


def test_check_reports_reserved_rows_that_attach_to_nothing(gpuplan, tmp_path: Path) -> None:
    # the old table's p5en.48xlarge mismatch: a us-east-1 commitment against a us-east-2 offer
    reserved = tmp_path / "reserved.csv"
    reserved.write_text("provider,instance,region,reserved_1y_usd_per_hour,reserved_3y_usd_per_hour,source,as_of\n"
                        "aws,p5en.48xlarge,us-east-2,39.87648,27.34387,test,2026-09-27\n")
    r = gpuplan("--reserved", str(reserved), "prices", "--check", "--format", "json")
    (finding,) = r.json()["findings"]
    assert r.code == 2 and finding["rule"] == "reserved_unmatched" and finding["region"] == "us-east-2"


@pytest.mark.parametrize("bad", ["nan", "inf", "-3", "0"])
def test_non_finite_or_non_positive_prices_are_refused(gpuplan, tmp_path: Path, bad: str) -> None:
    offers = tmp_path / "offers.csv"
    offers.write_text("provider,instance,region,gpu,gpus_per_instance,on_demand_usd_per_hour,as_of,source\n"
                      f"x,h1,us-east-1,h100-sxm,8,{bad},2026-01-01,test\n")
    r = gpuplan("--pricing", str(offers), "prices")
    assert r.code == 2 and "row 2, column 'on_demand_usd_per_hour'" in r.err


def test_reserved_options_are_compared_with_the_same_instances_on_demand(gpuplan) -> None:
    r = gpuplan("procure", str(EXAMPLES / "steady.yaml"), "--format", "json")
    options = {o["tier"]: o for o in r.json()["options"]}
    one_year = options["reserved_1y"]
    # The fleet depends on the step model; its on-demand price is Σ count × on-demand $/h of the same offers
    # in the same regions (with the shipped tables: p5.48xlarge $55.04 + p5en.48xlarge $63.296, us-east-1).
    on_demand = {(o.provider, o.instance, o.region): o.on_demand_usd_per_hour for o in Tables().offers}
    plan = one_year["plan"]
    regions = {(d["provider"], d["offer"]): d["region"] for w in plan["workloads"] for d in w["deployments"]}
    expected = sum(i["count"] * on_demand[(i["provider"], i["offer"], regions[(i["provider"], i["offer"])])]
                   for i in plan["instances"])
    assert one_year["same_fleet_on_demand_usd_per_hour"] == pytest.approx(expected, rel=1e-4)
    for tier in ("reserved_1y", "reserved_3y"):
        assert options[tier]["usd_per_hour"] <= options[tier]["same_fleet_on_demand_usd_per_hour"]
    assert any(n.startswith("prices as of") for n in r.json()["notes"])
