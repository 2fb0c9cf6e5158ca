"""The daily model: a committed base plus on-demand and spot instances per hour, over every candidate.

  min  |H| · Σ_o price_commit,o · base_o + Σ_{h ∈ H} Σ_o (price_od,o · od_o,h + price_spot,o · spot_o,h)
  s.t. packing      t_o,h = base_o + od_o,h + spot_o,h whole instances hold hour h's replicas of offer o
                    (exact packing, ``model.constraints.pack_offer``)                 every hour h, offer o
       demand       Σ_{c ∈ w} cap_c · r_c,h ≥ rate_w,h                                 every hour, workload
       lower bound  Σ_{c ∈ w} share_c · r_c,h ≥ LB_w,h (share at the offer's cheapest tier; a valid cut)
       spot share   Σ_o g_o · spot_o,h ≤ share · Σ_o g_o · t_o,h                       every hour
       availability t_o,h ≤ max_instances_o;  GPU caps Σ_{o of g} g_o · t_o,h ≤ cap_g   every hour
       one GPU type per workload for all hours in H (optional);  budget ≤ |H| × budget_usd_per_hour
H is the whole day (24 hours) for the plan; one hour alone gives that hour's relaxation (the base then costs
one hour of its committed price) and, with the base fixed, that hour's best on-demand and spot additions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from gpuplan.optimizer.planning.bounds import cover_table, lower_bound_units
from gpuplan.optimizer.planning.candidate_gen import Candidate
from gpuplan.optimizer.planning.model.constraints import add_demand, add_single_gpu_type, pack_offer
from gpuplan.optimizer.planning.model.problem import PRICE_SCALE, RATE_SCALE
from ortools.sat.python import cp_model

SHARE_SCALE = 1000


@dataclass
class DayInputs:
    """Everything the daily model reads, on the solver's integer scales."""

    cands: list[Candidate]  # sorted by id
    workloads: list[str]
    groups: dict[tuple[str, str], list[Candidate]]  # offer → its candidates
    gpus: dict[tuple[str, str], int]  # GPUs per instance
    gpu_of: dict[tuple[str, str], str]
    max_instances: dict[tuple[str, str], int | None]
    prices: dict[tuple[str, str], dict[str, int | None]]  # offer → tier → $/h × 10⁴ (None: not priced)
    demand: dict[str, list[int]]  # workload → µreq/s per hour
    cap: dict[str, int]  # candidate → µreq/s per replica
    share: dict[str, int]  # candidate → GPU share at the offer's cheapest tier, $/h × 10⁴ (rounded down)
    committed: str
    spot_share: float
    caps_gpu: dict[str, int]
    single_gpu_type: bool
    budget_usd_per_hour: float | None
    mine: dict[str, list[Candidate]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.mine = {w: [] for w in self.workloads}
        for x in self.cands:
            self.mine[x.workload].append(x)


@dataclass
class DayModel:
    model: cp_model.CpModel
    hours: list[int]
    r: dict[tuple[str, int], cp_model.IntVar]
    base: dict[tuple[str, str], cp_model.IntVar]
    od: dict[tuple[tuple[str, str], int], cp_model.IntVar]
    spot: dict[tuple[tuple[str, str], int], cp_model.IntVar]
    total: dict[tuple[tuple[str, str], int], cp_model.IntVar]
    aux: list[cp_model.IntVar]
    cost: cp_model.LinearExpr
    pack_aux: dict[tuple[tuple[str, str], int], list[cp_model.IntVar]]  # packing pattern counts per offer, hour

    def variables(self) -> list[cp_model.IntVar]:
        return [*self.base.values(), *self.od.values(), *self.spot.values(), *self.total.values(),
                *self.r.values(), *self.aux]


def replica_ub(d: DayInputs, x: Candidate, h: int) -> int:
    return math.ceil(d.demand[x.workload][h] / d.cap[x.id]) if d.cap[x.id] else 0


def hour_cover_bound(d: DayInputs, w: str, h: int) -> int:
    """LB_w,h: the cheapest GPU-share cover of workload w's demand in hour h (``bounds``)."""
    if not d.demand[w][h]:
        return 0
    dp, _ = cover_table(d.demand[w][h], [d.cap[x.id] for x in d.mine[w]], [d.share[x.id] for x in d.mine[w]])
    return lower_bound_units(dp)


def build_day(d: DayInputs, hours: list[int], lbs: dict[tuple[str, int], int],
              fixed_base: dict[tuple[str, str], int] | None = None, with_budget: bool = True) -> DayModel:
    """The daily model over ``hours`` (see module doc); ``lbs``: (workload, hour) → LB_w,h; ``fixed_base``
    pins the committed base (then only the hourly additions are decided). The budget holds for the day, not
    for each hour: models of single hours leave it out (``with_budget=False``)."""
    m = cp_model.CpModel()
    ub_r = {(x.id, h): replica_ub(d, x, h) for x in d.cands for h in hours}
    r = {key: m.NewIntVar(0, ub, "") for key, ub in ub_r.items()}
    base, od, spot, total, aux, pack_aux = {}, {}, {}, {}, [], {}
    cost_terms = []
    gpus_h: dict[int, list] = {h: [] for h in hours}
    spot_h: dict[int, list] = {h: [] for h in hours}
    for key, group in sorted(d.groups.items()):
        g = d.gpus[key]
        ub = max(sum(math.ceil(ub_r[x.id, h] / (g // x.tp)) for x in group) for h in hours)
        if d.max_instances[key] is not None:
            ub = min(ub, d.max_instances[key])
        if d.gpu_of[key] in d.caps_gpu:
            ub = min(ub, d.caps_gpu[d.gpu_of[key]] // g)
        pr = d.prices[key]
        if fixed_base is None:
            base[key] = m.NewIntVar(0, ub if pr[d.committed] else 0, "")
        else:
            ub = max(ub, fixed_base.get(key, 0))
            base[key] = m.NewIntVar(fixed_base.get(key, 0), fixed_base.get(key, 0), "")
        cost_terms.append(len(hours) * (pr[d.committed] or 0) * base[key])
        for h in hours:
            od[key, h] = m.NewIntVar(0, ub if pr["on_demand"] else 0, "")
            spot[key, h] = m.NewIntVar(0, ub if pr["spot"] else 0, "")
            total[key, h] = m.NewIntVar(0, ub, "")
            m.Add(total[key, h] == base[key] + od[key, h] + spot[key, h])
            cost_terms.append((pr["on_demand"] or 0) * od[key, h])
            cost_terms.append((pr["spot"] or 0) * spot[key, h])
            packed: list[cp_model.IntVar] = []
            pack_offer(m, group, {x.id: r[x.id, h] for x in group}, total[key, h], ub, packed)
            pack_aux[key, h] = packed
            aux.extend(packed)
            gpus_h[h].append(g * total[key, h])
            spot_h[h].append(g * spot[key, h])
    spot_share = round(d.spot_share * SHARE_SCALE)
    for w in d.workloads:
        mine = d.mine[w]
        for h in hours:
            add_demand(m, sum(d.cap[x.id] * r[x.id, h] for x in mine), d.demand[w][h])
            if lbs.get((w, h)):
                m.Add(sum(d.share[x.id] * r[x.id, h] for x in mine) >= lbs[w, h])
        if d.single_gpu_type:
            add_single_gpu_type(m, mine, [{x.id: r[x.id, h] for x in mine} for h in hours],
                                [{x.id: ub_r[x.id, h] for x in mine} for h in hours], aux)
    for h in hours:
        m.Add(SHARE_SCALE * sum(spot_h[h]) <= spot_share * sum(gpus_h[h]))
        for gid, limit in sorted(d.caps_gpu.items()):
            terms = [d.gpus[k] * total[k, h] for k in sorted(d.groups) if d.gpu_of[k] == gid]
            if terms:
                m.Add(sum(terms) <= limit)
    cost = sum(cost_terms)
    if with_budget and d.budget_usd_per_hour is not None:
        m.Add(cost <= math.floor(d.budget_usd_per_hour * len(hours) * PRICE_SCALE))
    return DayModel(m, hours, r, base, od, spot, total, aux, cost, pack_aux)


def cost_units(d: DayInputs, dm: DayModel, values: dict[int, int]) -> int:
    """The model's cost, $ × 10⁴ over its hours, of a solution (variable index → value)."""
    total = 0
    for k in d.groups:
        pr = d.prices[k]
        total += len(dm.hours) * (pr[d.committed] or 0) * values[dm.base[k].Index()]
        for h in dm.hours:
            total += (pr["on_demand"] or 0) * values[dm.od[k, h].Index()] + (pr["spot"] or 0) * values[
                dm.spot[k, h].Index()]
    return total


def to_units(usd_per_hour: float | None) -> int | None:
    return round(usd_per_hour * PRICE_SCALE) if usd_per_hour else None


def rate_units(rps: float) -> int:
    return round(rps * RATE_SCALE)
