"""Rendering of a daily plan (workloads with an hourly rate profile) for ``gpuplan plan``."""

from __future__ import annotations

from gpuplan.optimizer.output import Result, View
from gpuplan.optimizer.planning.day import DayPlan


def day_result(p: DayPlan) -> Result:
    names = list(p.hours[0].demand_rps) if p.hours else []
    hour_rows = [{**h.model_dump(exclude={"demand_rps"}), **{f"rps:{n}": h.demand_rps[n] for n in names}}
                 for h in p.hours]
    views = [
        View(title=f"Daily plan · ${p.daily_usd:,.2f}/day (committed {p.committed_tier}: "
                   f"${p.committed_usd_per_day:,.2f}/day) · ${p.usd_per_mtok_output:,.3f}/Mtok output · {p.status}, "
                   f"gap {p.gap:.2%}, {p.solve_seconds:.2f} s",
             columns=[("hour", "hour"), *((f"rps:{n}", f"{n} req/s") for n in names), ("base_gpus", "base GPUs"),
                      ("on_demand_gpus", "on-demand GPUs"), ("spot_gpus", "spot GPUs"), ("usd", "$ this hour")],
             rows=hour_rows),
        View(title="Instances (hourly tiers: peak count)", columns=[
            ("provider", "provider"), ("offer", "offer"), ("gpu", "gpu"), ("pricing", "pricing"), ("count", "count"),
            ("usd_per_hour", "$/h each")], rows=[i.model_dump() for i in p.instances]),
    ]
    return Result(payload=p.model_dump(mode="json"), csv_rows=hour_rows, views=views, notes=p.notes)
