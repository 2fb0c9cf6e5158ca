"""Shrinking large models with the per-workload bounds (``bounds``): safe elimination.

  elimination  candidate c of workload w is dropped when Σ_{w' ≠ w} LB_{w'} + share_c + dp_w[demand_w − cap_c]
               exceeds a cost U: no plan that uses c costs U or less. U is a known plan's cost, or a target
               below it (``solver._cut``): then the model holds every plan costing ≤ U
"""

from __future__ import annotations

from gpuplan.optimizer.planning.bounds import FLEET_RESOLUTION, bound_with, cover_table, lower_bound
from gpuplan.optimizer.planning.candidate_gen import Candidate
from gpuplan.optimizer.planning.model.problem import Problem, by_workload, cap_units, demand_units, share_units
from gpuplan.optimizer.planning.workload import Workload


def bound_tables(p: Problem, cands: list[Candidate]):
    """workload → (dp, unit): its cheapest GPU-share cover table."""
    tables = {}
    groups = by_workload(p, cands)
    for w in p.workloads:
        mine = groups[w.name]
        tables[w.name] = cover_table(demand_units(w), [cap_units(c, w) for c in mine], [share_units(c) for c in mine],
                                     FLEET_RESOLUTION)
    return tables


def eliminate(p: Problem, cands: list[Candidate], by_name: dict[str, Workload], tables, upper: int) -> list[Candidate]:
    """Drop candidates that no plan costing ≤ ``upper`` can use (see ``bounds``): their forced bound exceeds it."""
    lbs = {w: lower_bound(t[0]) for w, t in tables.items()}
    total = sum(lbs.values())
    keep = []
    for c in cands:
        w = by_name[c.workload]
        dp, unit = tables[w.name]
        if total - lbs[w.name] + bound_with(dp, unit, demand_units(w), cap_units(c, w), share_units(c)) <= upper:
            keep.append(c)
    return keep
