"""Assemble the fleet model from its parts, in a fixed order (variables, then rows, so indices never move)."""

from __future__ import annotations

from gpuplan.optimizer.planning.candidate_gen import Candidate
from gpuplan.optimizer.planning.model.constraints import (
    add_demand,
    add_gpu_type_limit,
    add_lower_bound,
    add_single_gpu_type,
    pack_offer,
)
from gpuplan.optimizer.planning.model.global_constraints import add_budget, add_gpu_caps
from gpuplan.optimizer.planning.model.objective import add_fair_share, add_served, cost_expr
from gpuplan.optimizer.planning.model.problem import (
    Problem,
    by_workload,
    cap_units,
    demand_units,
    group_by_offer,
    share_units,
)
from gpuplan.optimizer.planning.model.variables import FleetModel, add_instances, add_replicas
from gpuplan.optimizer.planning.workload import Workload
from ortools.sat.python import cp_model


def build(p: Problem, cands: list[Candidate], by_name: dict[str, Workload], lbs: dict[str, int]) -> FleetModel:
    """The model of ``p`` over ``cands``; ``lbs``: workload → LB_w for the lower-bound cut (min-cost)."""
    model = cp_model.CpModel()
    r, ubs = add_replicas(model, p, cands, by_name)
    offers = group_by_offer(cands)
    m = FleetModel(model, r, {}, offers, 0, cands, replica_ubs=ubs)
    for key, group in sorted(offers.items()):
        m.n[key], m.instance_ubs[key] = add_instances(model, p, key, group, ubs)
        pack_offer(model, group, r, m.n[key], m.instance_ubs[key], m.aux)
    mine_of = by_workload(p, cands)
    shares = {c.id: share_units(c) for c in cands}
    for w in p.workloads:
        mine = mine_of[w.name]
        capacity = sum(cap_units(c, w) * r[c.id] for c in mine)
        if p.objective == "min-cost":
            add_demand(model, capacity, demand_units(w))
            add_lower_bound(model, mine, r, shares, lbs.get(w.name, 0))
        else:
            add_served(m, w, capacity)
        if p.single_gpu_type:
            add_single_gpu_type(model, mine, [r], [ubs], m.aux)
    if p.max_gpu_types is not None:
        add_gpu_type_limit(model, cands, m.n, m.instance_ubs, offers, p.max_gpu_types, m.aux)
    add_gpu_caps(model, p, m.n, offers)
    m.cost = cost_expr(m)
    add_budget(model, p, m.cost)
    if p.objective == "max-throughput":
        add_fair_share(m, p)
    return m
