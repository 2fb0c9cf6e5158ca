"""Fleet-wide rows: the hourly budget, and the availability and GPU caps that bound instance counts.

  budget        Σ_o price_o · n_o ≤ B                                  (``add_budget``)
  availability  n_o ≤ max_instances_o                                  (an offer's stock; a variable bound)
  GPU caps      Σ_{o of g} g_o · n_o ≤ cap_g                           every capped GPU type g
                (``add_gpu_caps``; also tightens each n_o and r_c bound: ``instance_ub``, ``replica_ub``)
"""

from __future__ import annotations

import math

from gpuplan.optimizer.planning.candidate_gen import Candidate
from gpuplan.optimizer.planning.model.problem import PRICE_SCALE, Problem, cap_units, demand_units
from gpuplan.optimizer.planning.workload import Workload
from ortools.sat.python import cp_model


def replica_ub(c: Candidate, w: Workload, p: Problem) -> int:
    """More replicas of one candidate than its workload needs alone never help (min-cost), nor serve more than
    the demand (max-throughput, where demand is a ceiling); availability and GPU caps bound them too."""
    cap = cap_units(c, w)
    if cap <= 0:
        return 0
    ub = math.ceil(demand_units(w) / cap)
    per = c.gpus_per_instance // c.tp
    if c.offer_max_instances is not None:
        ub = min(ub, c.offer_max_instances * per)
    if c.gpu in p.max_gpus:
        ub = min(ub, p.max_gpus[c.gpu] // c.tp)
    return max(ub, 0)


def instance_ub(group: list[Candidate], ubs: dict[str, int], p: Problem) -> int:
    """Instances of one offer: enough for every candidate's replica bound, within availability and GPU caps."""
    c0 = group[0]
    ub = sum(math.ceil(ubs[c.id] / (c0.gpus_per_instance // c.tp)) for c in group)
    if c0.offer_max_instances is not None:
        ub = min(ub, c0.offer_max_instances)
    if c0.gpu in p.max_gpus:
        ub = min(ub, p.max_gpus[c0.gpu] // c0.gpus_per_instance)
    return ub


def add_gpu_caps(model: cp_model.CpModel, p: Problem, n: dict, offers: dict[tuple[str, str], list[Candidate]]) -> None:
    for gpu, cap in sorted(p.max_gpus.items()):
        terms = [group[0].gpus_per_instance * n[key] for key, group in offers.items() if group[0].gpu == gpu]
        if terms:
            model.Add(sum(terms) <= cap)


def add_budget(model: cp_model.CpModel, p: Problem, cost) -> None:
    if p.budget_usd_per_hour is not None:
        model.Add(cost <= math.floor(p.budget_usd_per_hour * PRICE_SCALE))
