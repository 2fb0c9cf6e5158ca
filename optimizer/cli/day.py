"""Rendering of a daily plan (workloads with an hourly rate profile) for ``gpuplan plan``."""

from __future__ import annotations

from gpuplan.optimizer.launch.specs import spec_files
from gpuplan.optimizer.output import Result, View
from gpuplan.optimizer.planning.day import DayPlan
from gpuplan.optimizer.planning.workload import Fleet
from gpuplan.optimizer.tables import Tables


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
        View(title="Deployments per tier block (replicas: the most in any hour) and what one instance runs",
             columns=[("block", "block"), ("workload", "workload"), ("gpu", "gpu"), ("offer", "offer"),
                      ("weights", "weights"), ("kv", "kv"), ("tp", "tp"), ("replicas", "replicas"),
                      ("launch", "command")], rows=[d.model_dump() for d in p.deployments]),
    ]
    return Result(payload=p.model_dump(mode="json"), csv_rows=hour_rows, views=views, notes=p.notes)


def day_specs(p: DayPlan, fleet: Fleet, tables: Tables, target: str) -> tuple[dict[str, str], list[str]]:
    """Launch specs per tier block. Every block's services scale between the fewest and the most replicas the
    block runs in any hour: the committed base is a billing commitment (reserved instances discount any
    matching usage; owned servers host whatever the cluster schedules), so at every hour the services of
    a block use at most the instances the plan committed or bought for that hour."""
    workloads = {w.name: w for w in fleet.workloads}
    files: dict[str, str] = {}
    notes: list[str] = []
    for block in dict.fromkeys(d.block for d in p.deployments):
        deps = [(workloads[d.workload], d) for d in p.deployments if d.block == block]
        got, more = spec_files(deps, tables, block, target, block=block.replace("_", "-"),
                               autoscale=True)
        files.update(got)
        notes += more
    return files, notes
