"""Deployments of a daily plan, per tier block: the committed base, the hourly on-demand and spot additions.

The daily model decides, per hour, replicas per candidate and instances per offer in each tier, but not
which replica runs on which tier's instance. Each hour the replicas on an offer are placed by GPUs on
its committed instances first, then on-demand, then spot, the candidates that run all day first (the
tiers' GPUs of that hour always hold them: the model's capacity constraint). A block's deployment runs
between the fewest and the most replicas it held in any hour: its launch spec is a SkyServe service
autoscaled in that range on request rate (fixed when the two are equal). The base block may host
different workloads at different hours (the model lets committed capacity follow the curves), which
autoscaled services reproduce as long as each tracks its own load.
"""

from __future__ import annotations

from gpuplan.optimizer.launch.commands import launch_fields
from gpuplan.optimizer.planning.candidate_gen import Candidate
from gpuplan.optimizer.planning.records import LaunchSpec, Placement, placement_of
from gpuplan.optimizer.planning.workload import Fleet
from gpuplan.optimizer.tables import Tables
from pydantic import BaseModel

HOURS = 24


class _Block(BaseModel):
    block: str  # committed tier (reserved_1y, reserved_3y, owned), on_demand or spot
    workload: str


class _HourlyCapacity(BaseModel):
    batch: int
    engine: str
    capacity_req_s: float  # one replica
    replicas: int  # the most this block runs in any hour
    replicas_by_hour: list[int]


class DayDeployment(LaunchSpec, _HourlyCapacity, Placement, _Block):
    """One candidate's replicas in one tier block (JSON: block, placement, hourly capacity, launch fields)."""


def _split_hour(group: list[Candidate], counts: dict[str, int], tiers: list[tuple[str, int]]) -> dict[tuple[str, str],
                                                                                                      int]:
    """(block, candidate) → replicas this hour: GPUs of each tier filled in ``group`` order."""
    out: dict[tuple[str, str], int] = {}
    room = [(name, gpus) for name, gpus in tiers]
    i = 0
    for c in group:
        for _ in range(counts.get(c.id, 0)):
            while i < len(room) and room[i][1] < c.tp:
                i += 1
            name = room[min(i, len(room) - 1)][0]
            if i < len(room):
                room[i] = (name, room[i][1] - c.tp)
            out[(name, c.id)] = out.get((name, c.id), 0) + 1
    return out


def tier_deployments(fleet: Fleet, tables: Tables, cands: list[Candidate], replicas: dict[str, list[int]],
                     instances: dict[str, tuple[int, list[int], list[int]]], committed: str) -> list[DayDeployment]:
    """``replicas``: candidate id → replicas per hour; ``instances``: offer key → (committed count,
    on-demand per hour, spot per hour)."""
    by_offer: dict[str, list[Candidate]] = {}
    for c in cands:
        by_offer.setdefault(f"{c.provider}:{c.offer}", []).append(c)
    hourly: dict[tuple[str, str], list[int]] = {}
    for key, group in by_offer.items():
        # candidates running all day first: the committed base then holds the steadiest replicas
        group = sorted(group, key=lambda c: (-min(replicas[c.id]), -sum(replicas[c.id]), c.id))
        base, od, spot = instances[key]
        gpi = group[0].gpus_per_instance
        for h in range(HOURS):
            tiers = [(committed, base * gpi), ("on_demand", od[h] * gpi), ("spot", spot[h] * gpi)]
            for k, n in _split_hour(group, {c.id: replicas[c.id][h] for c in group}, tiers).items():
                hourly.setdefault(k, [0] * HOURS)[h] = n
    workloads = {w.name: w for w in fleet.workloads}
    by_id = {c.id: c for c in cands}
    order = {committed: 0, "on_demand": 1, "spot": 2}
    out = []
    for (block, cid), hours in sorted(hourly.items(), key=lambda t: (order[t[0][0]], t[0][1])):
        c = by_id[cid]
        peak = max(hours)
        if not peak:
            continue
        w = workloads[c.workload]
        out.append(DayDeployment(
            block=block, workload=c.workload, **placement_of(c), batch=c.batch, engine=c.engine,
            capacity_req_s=c.capacity_req_s, replicas=peak, replicas_by_hour=hours,
            **launch_fields(w, c, tables, peak)))
    return out
