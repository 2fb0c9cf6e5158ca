"""Sweeps, procurement, ownership costs and daily demand profiles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import corrupt_csv
from gpuplan.optimizer.planning.procurement import procure
from gpuplan.optimizer.planning.workload import load_fleet
from gpuplan.optimizer.tables import Tables
from gpuplan.pricing.ownership import (
    OwnershipRow,
    capital_usd_per_month,
    load_energy,
    owned_usd_per_hour,
    power_usd_per_month,
)

EXAMPLES = Path(__file__).parents[1] / "examples"
SMALL = {"workloads": [{"name": "chat", "model": "llama-3.1-8b", "weights": ["fp8"], "kv": ["fp8"],
                        "input_tokens": 1000, "output_tokens": 200, "max_context": 8192, "rate_rps": 10,
                        "slo": {"ttft_ms": 1000, "tpot_ms": 40}}],
         "constraints": {"providers": ["aws", "gcp", "lambda"]}}


def _write(tmp_path: Path, data: dict, name: str = "w.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_annuity_matches_hand_computation() -> None:
    # $296,644 HGX H100 server over 60 months at 9.5 %/year: i = 0.0079167,
    # P·i/(1−(1+i)^−60) = $6,230.0 per month (standard loan-payment formula).
    assert capital_usd_per_month(296_644, 60, 0.095) == pytest.approx(6230.0, rel=1e-3)
    assert capital_usd_per_month(120_000, 60, 0.0) == pytest.approx(2000.0)
    # 10.2 kW DGX H100 at 70 % draw = 7.14 kW × PUE 1.58 × $0.0806/kWh × 730 h = $663.8 per month
    assert power_usd_per_month(10_200, 0.7, 1.58, 0.0806) == pytest.approx(663.8, rel=1e-3)


def test_owned_offer_price_adds_capital_power_and_hosting() -> None:
    energy = load_energy()
    row = OwnershipRow(gpu="h100-sxm", server="x", gpus_per_server=8, server_price_usd=296_644, lifetime_months=60,
                       server_power_w=10_200, hosting_usd_per_month=1877.41, source="s", as_of="2024-01-01")
    expected = (capital_usd_per_month(296_644, 60, energy.cost_of_capital_annual)
                + power_usd_per_month(10_200, 0.7, energy.pue, energy.electricity_usd_per_kwh) + 1877.41) / 730
    assert owned_usd_per_hour(row, energy) == pytest.approx(expected)


def test_procure_compares_tiers_and_finds_break_even(gpuplan) -> None:
    r = gpuplan("procure", str(EXAMPLES / "steady.yaml"), "--months", "36", "--format", "json")
    assert r.code == 0, r.err
    data = r.json()
    tiers = {o["tier"]: o for o in data["options"]}
    assert set(tiers) == {"owned", "reserved_1y", "reserved_3y", "on_demand", "spot"}
    for o in data["options"]:
        assert {"tier", "monthly_usd", "total_usd"} <= set(o)
    assert data["months"] == 36
    od, owned = tiers["on_demand"], tiers["owned"]
    m = data["break_even_month"]
    if m is not None:  # owning has caught up by then and not before
        months_od = od["monthly_usd"] * m
        assert owned["upfront_usd"] < months_od
    assert data["owning_wins_above_utilization"] > 0


def test_procure_rejects_bad_horizon(gpuplan) -> None:
    r = gpuplan("procure", str(EXAMPLES / "steady.yaml"), "--months", "0")
    assert r.code == 2 and "--months" in r.err


def test_procure_with_no_feasible_tier_exits_3(gpuplan) -> None:
    # examples/tight.yaml asks a 1 ms TPOT that no GPU's batch-1 step meets: every tier is infeasible, so there is
    # nothing to compare and the command says why (it used to print a table of infeasible rows and exit 0)
    r = gpuplan("procure", str(EXAMPLES / "tight.yaml"))
    assert r.code == 3 and r.err.startswith("infeasible: no tier (owned, reserved_3y") and "TPOT" in r.err


def test_cheaper_owned_servers_break_even_sooner(tmp_path: Path) -> None:
    fleet = load_fleet(EXAMPLES / "steady.yaml")
    base = procure(fleet, Tables(), 60, 5)
    src = Path(__file__).parents[1] / "pricing" / "ownership.csv"
    cheap = tmp_path / "ownership.csv"
    lines = src.read_text().splitlines()
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO("\n".join(lines))))
    for row in rows:
        if row["server_price_usd"]:
            row["server_price_usd"] = str(float(row["server_price_usd"]) / 2)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    cheap.write_text(buf.getvalue())
    halved = procure(fleet, Tables(ownership=cheap), 60, 5)
    owned = {o.tier: o for o in halved.options}["owned"]
    assert owned.usd_per_hour <= {o.tier: o for o in base.options}["owned"].usd_per_hour
    assert (halved.break_even_month or 999) <= (base.break_even_month or 999)


def test_bad_ownership_lifetime_is_exit_2(gpuplan, tmp_path: Path) -> None:
    header = (Path(__file__).parents[1] / "pricing" / "ownership.csv").read_text().splitlines()[0]
    bad = tmp_path / "ownership.csv"
    bad.write_text("\n".join([header, "h100-sxm,x,8,1000,0,100,10,src,2024,"]) + "\n")
    r = gpuplan("--ownership", str(bad), "prices", "--tier", "owned")
    assert r.code == 2 and "row 2" in r.err and "lifetime_months" in r.err


ENERGY_HEADER = "name,value,unit,source,as_of,notes"
ENERGY_OK = ["pue,1.58,ratio,Uptime,2023-11-23,", "electricity_usd_per_kwh,0.0806,USD/kWh,EIA,2024-03-18,",
             "cost_of_capital_annual,0.095,fraction per year,CoreWeave,2025-06-30,"]


@pytest.mark.parametrize(("rows", "needle"), [
    (["pue,0.9,ratio,Uptime,2023-11-23,", *ENERGY_OK[1:]],
     "row 2, column 'value': Value error, pue must be between 1 and 10"),  # PUE below 1 is impossible
    ([*ENERGY_OK[:2], "cost_of_capital_annual,nine,fraction,CoreWeave,2025-06-30,"], "row 4, column 'value'"),
    ([*ENERGY_OK[:2], "cost_of_capital_annual,inf,fraction,CoreWeave,2025-06-30,"], "row 4, column 'value'"),
    ([ENERGY_OK[0], "electricity_usd_per_kwh,0.0806,USD/kWh,EIA,2023,", ENERGY_OK[2]], "row 3, column 'as_of'"),
    ([ENERGY_OK[0], "electricity_usd_per_kwh,0.0806,,EIA,2024-03-18,", ENERGY_OK[2]], "row 3, column 'unit'"),
    (ENERGY_OK[:2], "missing row 'cost_of_capital_annual'"),
])
def test_bad_energy_row_is_one_line_naming_row_and_column(gpuplan, tmp_path: Path, rows: list[str],
                                                           needle: str) -> None:
    bad = tmp_path / "energy.csv"
    bad.write_text("\n".join([ENERGY_HEADER, *rows]) + "\n")
    r = gpuplan("--energy", str(bad), "prices", "--tier", "owned", "--format", "json")
    assert r.code == 2 and r.out == "" and len(r.err.strip().splitlines()) == 1
    assert f"{bad}" in r.err and needle in r.err


def test_energy_rows_outside_the_formula_are_context_only(tmp_path: Path) -> None:
    # a colocation rate of 184.06 $/kW-month is a valid row even though no bound of the formula applies to it
    path = tmp_path / "energy.csv"
    path.write_text("\n".join([ENERGY_HEADER, *ENERGY_OK, "colocation_usd_per_kw_month,184.06,USD,CBRE,2025-02-26,"])
                    + "\n")
    e = load_energy(path)
    assert (e.pue, e.electricity_usd_per_kwh, e.cost_of_capital_annual) == (1.58, 0.0806, 0.095)
    assert e.source == "pue: Uptime; electricity_usd_per_kwh: EIA; cost_of_capital_annual: CoreWeave"


def test_negative_price_in_offer_table_is_exit_2(gpuplan, tmp_path: Path) -> None:
    src = Path(__file__).parents[1] / "pricing" / "offers.csv"
    bad = corrupt_csv(src, "on_demand_usd_per_hour", "-3", tmp_path / "offers.csv")
    r = gpuplan("--pricing", str(bad), "prices")
    assert r.code == 2 and "row 2" in r.err and "on_demand_usd_per_hour" in r.err


def test_sweep_writes_table_and_chart(gpuplan, tmp_path: Path) -> None:
    png = tmp_path / "s.png"
    r = gpuplan("sweep", str(_write(tmp_path, SMALL)), "--vary", "slo.tpot_ms=15,40", "--vary", "rate_rps=1,20",
                "--format", "json", "--plot", str(png))
    assert r.code == 0, r.err
    points = r.json()
    assert len(points) == 4 and png.stat().st_size > 10_000
    assert {"slo.tpot_ms", "rate_rps", "status", "total_usd_per_hour", "usd_per_mtok_output"} <= set(points[0])
    by = {(p["slo.tpot_ms"], p["rate_rps"]): p["total_usd_per_hour"] for p in points}
    assert by[(15, 20)] >= by[(40, 20)] and by[(40, 20)] >= by[(40, 1)]


def test_sweep_in_parallel_gives_the_same_points(gpuplan, tmp_path: Path) -> None:
    path = str(_write(tmp_path, SMALL))
    one = gpuplan("sweep", path, "--vary", "rate_rps=1,5,20", "--format", "json").json()
    two = gpuplan("sweep", path, "--vary", "rate_rps=1,5,20", "--workers", "2", "--format", "json").json()
    assert one == two


@pytest.mark.parametrize(("vary", "needle"), [("rate_rps", "expected KEY=v1,v2"),
                                             ("nobody/rate_rps=1", "no workload named 'nobody'"),
                                             ("rate_rps=-1", "rate_rps")])
def test_sweep_bad_vary_is_exit_2(gpuplan, tmp_path: Path, vary: str, needle: str) -> None:
    r = gpuplan("sweep", str(_write(tmp_path, SMALL)), "--vary", vary)
    assert r.code == 2 and needle in r.err


def test_daily_profile_plan_meets_every_hour(gpuplan) -> None:
    r = gpuplan("plan", str(EXAMPLES / "daily.yaml"), "--format", "json")
    assert r.code == 0, r.err
    day = r.json()
    assert len(day["hours"]) == 24 and day["daily_usd"] > 0
    assert day["daily_usd"] == pytest.approx(sum(h["usd"] for h in day["hours"]), rel=1e-5)  # JSON: 6 digits
    for h in day["hours"]:
        total = h["base_gpus"] + h["on_demand_gpus"] + h["spot_gpus"]
        assert h["spot_gpus"] <= 0.3 * total + 1e-9
    quiet = min(day["hours"], key=lambda h: h["demand_rps"]["chat"])
    busy = max(day["hours"], key=lambda h: h["demand_rps"]["chat"])
    assert quiet["usd"] <= busy["usd"]


def test_daily_profile_cheaper_than_peak_all_day(gpuplan, tmp_path: Path) -> None:
    profile = [2.0] * 20 + [20.0] * 4
    daily = json.loads(json.dumps(SMALL))
    daily["workloads"][0].pop("rate_rps")
    daily["workloads"][0]["rate_profile"] = profile
    peak = json.loads(json.dumps(SMALL))
    peak["workloads"][0]["rate_rps"] = 20
    d = gpuplan("plan", str(_write(tmp_path, daily, "d.yaml")), "--format", "json").json()
    p = gpuplan("plan", str(_write(tmp_path, peak, "p.yaml")), "--format", "json").json()
    assert d["daily_usd"] <= p["total_usd_per_hour"] * 24 + 1e-6


@pytest.mark.parametrize(("profile", "needle"), [([1.0] * 23, "24 hourly values"), ([-1.0] * 24, "0 or in [1e-06"),
                                                 ([1e-9] + [1.0] * 23, "0 or in [1e-06")])
def test_bad_profile_is_exit_2(gpuplan, tmp_path: Path, profile: list[float], needle: str) -> None:
    data = json.loads(json.dumps(SMALL))
    data["workloads"][0].pop("rate_rps")
    data["workloads"][0]["rate_profile"] = profile
    r = gpuplan("plan", str(_write(tmp_path, data)))
    assert r.code == 2 and needle in r.err and "workload 'chat'" in r.err


def test_profile_csv_with_missing_hours_is_exit_2(gpuplan, tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text("hour,rate\n0,1\n1,2\n")
    data = json.loads(json.dumps(SMALL))
    data["workloads"][0].pop("rate_rps")
    data["workloads"][0]["rate_profile_csv"] = "p.csv"
    r = gpuplan("plan", str(_write(tmp_path, data)))
    assert r.code == 2 and "needs 24 hours" in r.err


def test_python_api_returns_frames() -> None:
    from gpuplan.optimizer import candidates, memory, perf, plan

    report = plan(SMALL, time_limit_s=5)
    assert len(report.to_frame()) >= 1
    assert len(candidates(SMALL).to_frame()) >= 1
    assert memory("llama-3.1-8b", context=4096).to_frame().loc[0, "total_bytes"] > 0
    assert perf("llama-3.1-8b", "h100-sxm").to_frame().loc[0, "tpot_ms"] > 0
