"""Objectives of the fleet model and the tie-break that makes the returned plan unique.

  min-cost        min Σ_o price_o · n_o                                 (= min $/Mtok for the demand)
  max-throughput  demand is a ceiling: served_w ≤ demand_w (bound), served_w ≤ Σ_{c ∈ w} cap_c · r_c, and the
                  weight-scaled fair share served_w ≥ φ · ω_w · demand_w (ω_w = weight_w / max weight, in ‰);
                  maximise φ, then Σ_w out_tok_w · served_w, then minimise cost
  tie-break       with the last stage's objective fixed (``fix_stage``), min Σ_c rank(c) · r_c, rank = position in
                  cheapest $ per capacity, then id (``rank_expr``)
"""

from __future__ import annotations

from gpuplan.optimizer.planning.engines import Stage
from gpuplan.optimizer.planning.model.problem import PHI_SCALE, Problem, demand_units, price_units, rank
from gpuplan.optimizer.planning.model.variables import FleetModel
from gpuplan.optimizer.planning.workload import Workload
from ortools.sat.python import cp_model


def cost_expr(m: FleetModel):
    """Σ_o price_o · n_o in $/h × 10⁴."""
    return sum(price_units(group[0]) * m.n[key] for key, group in sorted(m.offers.items()))


def add_served(m: FleetModel, w: Workload, capacity) -> None:
    """max-throughput: served_w ∈ [0, demand_w] and served_w ≤ the capacity of w's replicas."""
    m.served[w.name] = m.model.NewIntVar(0, demand_units(w), f"s[{w.name}]")
    m.model.Add(m.served[w.name] <= capacity)


def add_fair_share(m: FleetModel, p: Problem) -> None:
    """φ ∈ [0, 1000 ‰] with served_w / demand_w ≥ φ · ω_w (‰ · ‰), and the served output tokens expression."""
    top = max(w.weight for w in p.workloads)
    m.phi = m.model.NewIntVar(0, PHI_SCALE, "phi")
    for w in p.workloads:
        omega = max(1, round(PHI_SCALE * w.weight / top))
        m.model.Add(PHI_SCALE * PHI_SCALE * m.served[w.name] >= demand_units(w) * omega * m.phi)
    m.served_tok = sum(w.output_tokens * m.served[w.name] for w in p.workloads)


def fix_stage(model: cp_model.CpModel, expr, stage: Stage, sense: str) -> None:
    """Keep what a stage reached: equal to its optimum, or at least as good as its incumbent."""
    value = round(stage.objective)
    if stage.status == cp_model.OPTIMAL:
        model.Add(expr == value)
    elif sense == "min":
        model.Add(expr <= value)
    else:
        model.Add(expr >= value)


def rank_expr(m: FleetModel, by_name: dict[str, Workload]):
    order = sorted(m.cands, key=lambda c: rank(c, by_name[c.workload]))
    return sum((i + 1) * m.r[c.id] for i, c in enumerate(order))
