"""Demand over the day: a committed base plus on-demand and spot capacity per hour (CP-SAT).

  min  24 · Σ_o price_commit,o · base_o + Σ_h Σ_o (price_od,o · od_o,h + price_spot,o · spot_o,h)
  s.t. Σ_{c on o} tp_c · r_c,h ≤ gpi_o · (base_o + od_o,h + spot_o,h)        every hour h, offer o
       Σ_{c ∈ w} cap_c · r_c,h ≥ rate_w,h                                     every hour, workload
       Σ_o gpi_o · spot_o,h ≤ share · Σ_o gpi_o · (base_o + od_o,h + spot_o,h) spot share per hour
       per-GPU-type caps every hour; daily budget = 24 × budget_usd_per_hour
The committed base is paid every hour (reserved 1y/3y or owned); on-demand and spot only when used.
To stay tractable the daily model chooses among a shortlist of candidates per workload (the best by
$ per capacity and by whole-instance cost at peak); status and gap refer to that model.
"""

from __future__ import annotations

import math
import time

from gpuplan.optimizer.errors import InfeasibleError
from gpuplan.optimizer.launch.daily import DayDeployment, tier_deployments
from gpuplan.optimizer.planning.candidate_gen import Candidate, generate, prune_offers
from gpuplan.optimizer.planning.interrupt import solve_interruptibly
from gpuplan.optimizer.planning.planner import explain_empty
from gpuplan.optimizer.planning.solver import (
    PRICE_SCALE,
    RATE_SCALE,
    TIE_BREAK_DETERMINISTIC_S,
    WORKERS,
    Problem,
    shortlist,
)
from gpuplan.optimizer.planning.workload import HOURS, Fleet
from gpuplan.optimizer.tables import Tables
from gpuplan.pricing.offers import Offer, filter_offers
from gpuplan.pricing.regions import cheapest_region, filter_place
from ortools.sat.python import cp_model
from pydantic import BaseModel

SHARE_SCALE = 1000
DAY_SHORTLIST = 4  # candidates per workload and ranking: the daily model is 24 × larger than a plan


class HourRow(BaseModel):
    hour: int
    demand_rps: dict[str, float]
    base_gpus: int
    on_demand_gpus: int
    spot_gpus: int
    usd: float  # this hour's cost (base share included)


class InstanceLine(BaseModel):
    provider: str
    offer: str
    gpu: str
    pricing: str  # committed tier | on_demand | spot
    count: int  # base: always; hourly tiers: peak count
    usd_per_hour: float  # per instance


class DayPlan(BaseModel):
    status: str
    solve_seconds: float
    gap: float
    daily_usd: float
    committed_tier: str
    committed_usd_per_day: float
    usd_per_mtok_output: float
    hours: list[HourRow]
    instances: list[InstanceLine]
    candidates: int
    notes: list[str] = []
    deployments: list[DayDeployment] = []  # per tier block, with launch configs

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame([{**h.model_dump(exclude={"demand_rps"}),
                              **{f"rps_{k}": v for k, v in h.demand_rps.items()}} for h in self.hours])


def _day_offers(tables: Tables, fleet: Fleet) -> list[Offer]:
    c = fleet.constraints
    providers = [*c.providers, "owned"] if c.providers else None
    allowed = {tables.gpus.get(g).id for g in c.gpus} if c.gpus else None
    out = []
    placed = cheapest_region(filter_place(filter_offers(tables.offers, provider=providers), c.regions,
                                          c.jurisdictions), c.committed_tier)
    for o in placed:
        if o.gpu not in tables.gpus.gpus or (allowed and o.gpu not in allowed):
            continue
        if any(o.price(t) for t in (c.committed_tier, "on_demand", "spot")):
            out.append(o)
    return out


def plan_day(fleet: Fleet, tables: Tables, time_limit_s: float = 20.0) -> DayPlan:
    start = time.perf_counter()
    c = fleet.constraints
    offers = _day_offers(tables, fleet)
    by_key = {o.key: o for o in offers}
    peak = [w.model_copy(update={"rate_rps": w.peak_rate_rps, "rate_profile": None}) if w.rate_profile else w
            for w in fleet.workloads]
    gen = c.model_copy(update={"tier": "on_demand"})
    sets = [generate(w, gen, tables, offers, price_any=(c.committed_tier, "on_demand", "spot")) for w in peak]
    empty = explain_empty(sets, fleet)
    if empty:
        raise InfeasibleError(empty)
    cands: list[Candidate] = prune_offers([x for s in sets for x in s.candidates], set(c.max_gpus), False)
    cands = shortlist(Problem(peak, cands, "on_demand"), cands, DAY_SHORTLIST)
    rates = {w.name: (w.rate_profile or [w.rate_rps or 0.0] * HOURS) for w in fleet.workloads}
    for w in fleet.workloads:
        if w.concurrency is not None:
            raise InfeasibleError(f"workload '{w.name}': a daily plan needs rate_rps or rate_profile, not concurrency")
    m = cp_model.CpModel()
    groups: dict[str, list[Candidate]] = {}
    for cand in cands:
        groups.setdefault(f"{cand.provider}:{cand.offer}", []).append(cand)
    demand = {w: [math.ceil(x * RATE_SCALE) for x in rates[w]] for w in rates}
    cap = {cand.id: math.floor(cand.capacity_req_s * RATE_SCALE) for cand in cands}
    ub_r = {cand.id: max(math.ceil(max(demand[cand.workload]) / cap[cand.id]), 0) if cap[cand.id] else 0
            for cand in cands}
    r = {(cid, h): m.NewIntVar(0, ub_r[cid], "") for cid in ub_r for h in range(HOURS)}
    base, od, spot = {}, {}, {}
    cost_terms = []
    gpus_h: dict[int, list] = {h: [] for h in range(HOURS)}
    spot_h: dict[int, list] = {h: [] for h in range(HOURS)}
    for key, group in sorted(groups.items()):
        o = by_key[key]
        ub = sum(math.ceil(ub_r[g.id] / (o.gpus_per_instance // g.tp)) for g in group)
        prices = {t: o.price(t) for t in (c.committed_tier, "on_demand", "spot")}
        base[key] = m.NewIntVar(0, ub if prices[c.committed_tier] else 0, "")
        cost_terms.append(HOURS * round((prices[c.committed_tier] or 0) * PRICE_SCALE) * base[key])
        for h in range(HOURS):
            od[key, h] = m.NewIntVar(0, ub if prices["on_demand"] else 0, "")
            spot[key, h] = m.NewIntVar(0, ub if prices["spot"] else 0, "")
            cost_terms.append(round((prices["on_demand"] or 0) * PRICE_SCALE) * od[key, h])
            cost_terms.append(round((prices["spot"] or 0) * PRICE_SCALE) * spot[key, h])
            total = base[key] + od[key, h] + spot[key, h]
            m.Add(sum(g.tp * r[g.id, h] for g in group) <= o.gpus_per_instance * total)
            for tp in {g.tp for g in group if o.gpus_per_instance % g.tp}:
                m.Add(sum(r[g.id, h] for g in group if g.tp == tp) <= (o.gpus_per_instance // tp) * total)
            gpus_h[h].append(o.gpus_per_instance * total)
            spot_h[h].append(o.gpus_per_instance * spot[key, h])
    share = round(c.spot_max_share * SHARE_SCALE)
    for h in range(HOURS):
        for w in fleet.workloads:
            m.Add(sum(cap[g.id] * r[g.id, h] for g in cands if g.workload == w.name) >= demand[w.name][h])
        m.Add(SHARE_SCALE * sum(spot_h[h]) <= share * sum(gpus_h[h]))
        for gpu, limit in c.max_gpus.items():
            gid = tables.gpus.get(gpu).id
            terms = [by_key[k].gpus_per_instance * (base[k] + od[k, h] + spot[k, h]) for k in groups
                     if by_key[k].gpu == gid]
            if terms:
                m.Add(sum(terms) <= limit)
    cost = sum(cost_terms)
    if c.budget_usd_per_hour is not None:
        m.Add(cost <= math.floor(c.budget_usd_per_hour * HOURS * PRICE_SCALE))
    m.Minimize(cost)
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = time_limit_s
    solver.parameters.num_workers = WORKERS
    status = solve_interruptibly(solver, m)
    if status == cp_model.OPTIMAL:
        solver = _tie_break(m, cost, round(solver.ObjectiveValue()), solver, [*base.values(), *od.values(),
                                                                              *spot.values(), *r.values()],
                            [base[k] for k in sorted(groups)]) or solver
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        raise InfeasibleError("no daily fleet meets every hour's demand within the caps, spot share and budget"
                              if status == cp_model.INFEASIBLE else f"no daily plan found in {time_limit_s:g} s")
    hours = []
    for h in range(HOURS):
        b = sum(by_key[k].gpus_per_instance * solver.Value(base[k]) for k in groups)
        d = sum(by_key[k].gpus_per_instance * solver.Value(od[k, h]) for k in groups)
        s = sum(by_key[k].gpus_per_instance * solver.Value(spot[k, h]) for k in groups)
        usd = sum(solver.Value(base[k]) * (by_key[k].price(c.committed_tier) or 0)
                  + solver.Value(od[k, h]) * (by_key[k].price("on_demand") or 0)
                  + solver.Value(spot[k, h]) * (by_key[k].price("spot") or 0) for k in groups)
        hours.append(HourRow(hour=h, demand_rps={w: rates[w][h] for w in rates}, base_gpus=b, on_demand_gpus=d,
                             spot_gpus=s, usd=usd))
    lines = []
    for k in sorted(groups):
        o = by_key[k]
        for tier, count in ((c.committed_tier, solver.Value(base[k])),
                            ("on_demand", max(solver.Value(od[k, h]) for h in range(HOURS))),
                            ("spot", max(solver.Value(spot[k, h]) for h in range(HOURS)))):
            if count:
                lines.append(InstanceLine(provider=o.provider, offer=o.instance, gpu=o.gpu, pricing=tier, count=count,
                                          usd_per_hour=o.price(tier) or 0.0))
    daily = sum(h.usd for h in hours)
    tokens = sum(rates[w.name][h] * w.output_tokens * 3600 for w in fleet.workloads for h in range(HOURS))
    committed = sum(line.count * line.usd_per_hour * HOURS for line in lines if line.pricing == c.committed_tier)
    deployments = tier_deployments(
        fleet, tables, cands, {g.id: [solver.Value(r[g.id, h]) for h in range(HOURS)] for g in cands},
        {k: (solver.Value(base[k]), [solver.Value(od[k, h]) for h in range(HOURS)],
             [solver.Value(spot[k, h]) for h in range(HOURS)]) for k in groups}, c.committed_tier)
    best, bound = solver.ObjectiveValue(), solver.BestObjectiveBound()
    return DayPlan(status="optimal" if status == cp_model.OPTIMAL else "feasible",
                   solve_seconds=time.perf_counter() - start,
                   gap=0.0 if status == cp_model.OPTIMAL else abs(best - bound) / max(best, 1e-9), daily_usd=daily,
                   committed_tier=c.committed_tier, committed_usd_per_day=committed,
                   usd_per_mtok_output=daily / tokens * 1e6 if tokens else math.nan, hours=hours, instances=lines,
                   candidates=len(cands), deployments=deployments)


def _tie_break(m: cp_model.CpModel, cost: cp_model.LinearExpr, best: int, first: cp_model.CpSolver,
               variables: list[cp_model.IntVar], ranked: list[cp_model.IntVar]) -> cp_model.CpSolver | None:
    """Same cost, then the fewest committed instances in a fixed offer order, on one worker within a
    deterministic-time budget: the same file gives the same daily plan."""
    m.Add(cost == best)
    m.ClearObjective()
    m.ClearHints()
    for v in variables:
        m.AddHint(v, first.Value(v))
    m.Minimize(sum((i + 1) * v for i, v in enumerate(ranked)))
    second = cp_model.CpSolver()
    second.parameters.num_workers = 1
    second.parameters.max_deterministic_time = TIE_BREAK_DETERMINISTIC_S
    status = solve_interruptibly(second, m)
    return second if status in (cp_model.OPTIMAL, cp_model.FEASIBLE) else None

