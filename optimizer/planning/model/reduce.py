"""Shrinking large models with the per-workload bounds (``bounds``): a fast incumbent, then safe elimination.

  incumbent    the model over the ~PHASE1_PER_WORKLOAD candidates per workload that raise its bound least
               (plus the starting plan's): a feasible plan of the full problem
  elimination  candidate c of workload w is dropped when Σ_{w' ≠ w} LB_{w'} + share_c + dp_w[demand_w − cap_c]
               exceeds a known plan's cost: no plan that uses c can be cheaper
"""

from __future__ import annotations

from gpuplan.optimizer.planning.bounds import bound_with, cover_table
from gpuplan.optimizer.planning.candidate_gen import Candidate
from gpuplan.optimizer.planning.engines import run as run_stage
from gpuplan.optimizer.planning.model.build import build
from gpuplan.optimizer.planning.model.problem import Problem, by_workload, cap_units, demand_units, share_units
from gpuplan.optimizer.planning.model.start import hint_of
from gpuplan.optimizer.planning.workload import Workload

PHASE1_PER_WORKLOAD = 8


def bound_tables(p: Problem, cands: list[Candidate]):
    """workload → (dp, unit): its cheapest GPU-share cover table."""
    tables = {}
    groups = by_workload(p, cands)
    for w in p.workloads:
        mine = groups[w.name]
        tables[w.name] = cover_table(demand_units(w), [cap_units(c, w) for c in mine], [share_units(c) for c in mine])
    return tables


def _increments(cands: list[Candidate], by_name: dict[str, Workload], tables) -> list[float]:
    """How much using each candidate raises its workload's lower bound."""
    out = []
    for c in cands:
        w = by_name[c.workload]
        dp, unit = tables[w.name]
        out.append(bound_with(dp, unit, demand_units(w), cap_units(c, w), share_units(c)) - float(dp[-1]))
    return out


def incumbent(p: Problem, cands: list[Candidate], by_name: dict[str, Workload], tables, lbs: dict[str, int],
              start_counts: dict[str, int], det_s: float, wall_s: float) -> dict[str, int] | None:
    """A good plan fast: the same model over the candidates that raise their workload's bound least
    (about PHASE1_PER_WORKLOAD each, plus the starting plan's). Its cost then eliminates candidates safely."""
    incs = _increments(cands, by_name, tables)
    theta = sorted(incs)[min(len(incs) - 1, PHASE1_PER_WORKLOAD * len(p.workloads))]
    subset = [c for c, inc in zip(cands, incs, strict=True) if inc <= theta or start_counts.get(c.id)]
    m = build(p, subset, by_name, lbs)
    m.model.Minimize(m.cost)
    stage = run_stage(m.model, m.variables(), det_s, wall_s, hint_of(m, start_counts), "highs")
    if not stage.values:
        return None
    return {c.id: stage.values[m.r[c.id].Index()] for c in subset if stage.values[m.r[c.id].Index()] > 0}


def eliminate(p: Problem, cands: list[Candidate], by_name: dict[str, Workload], tables, upper: int) -> list[Candidate]:
    """Drop candidates that no plan costing ≤ ``upper`` can use (see ``bounds``)."""
    lbs = {w: float(t[0][-1]) for w, t in tables.items()}
    total = sum(lbs.values())
    keep = []
    for c in cands:
        w = by_name[c.workload]
        dp, unit = tables[w.name]
        if total - lbs[w.name] + bound_with(dp, unit, demand_units(w), cap_units(c, w), share_units(c)) <= upper:
            keep.append(c)
    return keep
