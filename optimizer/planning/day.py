"""Demand over the day: the daily model (``day_model``) solved over every candidate, as a ``DayPlan``.

Stages (``plan_day``): the full model (HiGHS); a polish keeping its base and re-solving every hour; a start from
the hours' own plans when no plan is within FALLBACK_GAP of the bound; the commitment bound; the tie-break
(``day_search`` has the hour-level pieces). Every candidate of every offer is in the model (no shortlist, no
offer pruning by one blended price); the status and gap refer to this full model. Solves are deterministic as in
``solver``.
"""

from __future__ import annotations

import math
import time

from gpuplan.optimizer.errors import InfeasibleError
from gpuplan.optimizer.launch.daily import DayDeployment, tier_deployments
from gpuplan.optimizer.planning.candidate_gen import Candidate, allowed_providers, generate, prefetch
from gpuplan.optimizer.planning.day_model import (
    DayInputs,
    build_day,
    cost_units,
    hour_cover_bound,
    rate_units,
    to_units,
)
from gpuplan.optimizer.planning.day_search import base_from_hours, commitment_bound, hour_bounds, polish, with_base
from gpuplan.optimizer.planning.engines import run as run_stage
from gpuplan.optimizer.planning.model.objective import fix_stage
from gpuplan.optimizer.planning.model.problem import PRICE_SCALE, Problem, group_by_offer
from gpuplan.optimizer.planning.model.start import greedy, instances_for
from gpuplan.optimizer.planning.planner import explain_empty
from gpuplan.optimizer.planning.solver import DET_PER_S, TIE_BREAK_SHARE, WALL_NOTE
from gpuplan.optimizer.planning.workload import HOURS, Fleet, Workload
from gpuplan.optimizer.tables import Tables
from gpuplan.pricing.offers import Offer, filter_offers
from gpuplan.pricing.regions import cheapest_region, filter_place
from ortools.sat.python import cp_model
from pydantic import BaseModel

DAY_ENGINE = "highs"
# work budget (deterministic: HiGHS nodes, CP-SAT deterministic time), shares of DET_PER_S × time limit
HOUR_BOUND_SHARE = 0.05  # the hour-alone bounds (``day_search.hour_bounds``)
POLISH_SHARE = 0.05  # twice: every hour for the start's base, and for the plan's base (``day_search.with_base``)
BETA_SHARE = 0.1  # the commitment bound (``day_search.commitment_bound``)
BETA_STEPS_PER_S = 1.0  # its bisection steps per second of the time limit
BETA_MIN_DET = 0.4  # at least 20 HiGHS nodes per hour model of the commitment bound
# wall-clock safety net: each stage ends by these shares of the wall budget (then the plan says it may differ)
WALL_MAIN, WALL_POLISH, WALL_HOURS, WALL_START, WALL_BETA = 0.7, 0.8, 0.86, 0.9, 0.96
FALLBACK_GAP = 0.2  # above this gap after the full model, a start from the hours' own plans is tried
MAIN_FIRST_S, MAIN_AFTER = 8.0, 0.35  # the full model ends by min(0.7, 8 s + 0.35) of the wall: longer limits
# leave more to the commitment bound


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
    providers = allowed_providers(tables, c)
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


def _tier_prices(o: Offer, committed: str) -> dict[str, float | None]:
    return {t: o.price(t) for t in (committed, "on_demand", "spot")}


def _inputs(fleet: Fleet, tables: Tables, offers: list[Offer], cands: list[Candidate]) -> DayInputs:
    c = fleet.constraints
    by_key = {o.key: o for o in offers}
    groups = group_by_offer(cands)
    offer_of = {k: by_key[f"{k[0]}:{k[1]}"] for k in groups}
    prices = {k: _tier_prices(offer_of[k], c.committed_tier) for k in groups}
    cheapest = {k: min(p for p in prices[k].values() if p) for k in groups}
    rates = {w.name: (w.rate_profile or [w.rate_rps or 0.0] * HOURS) for w in fleet.workloads}
    return DayInputs(
        cands=cands, workloads=[w.name for w in fleet.workloads], groups=groups,
        gpus={k: o.gpus_per_instance for k, o in offer_of.items()}, gpu_of={k: o.gpu for k, o in offer_of.items()},
        max_instances={k: o.max_instances for k, o in offer_of.items()},
        prices={k: {t: to_units(v) for t, v in pr.items()} for k, pr in prices.items()},
        demand={w: [rate_units(x) for x in rates[w]] for w in rates},
        cap={x.id: rate_units(x.capacity_req_s) for x in cands},
        share={x.id: math.floor(cheapest[(x.provider, x.offer)] * PRICE_SCALE * x.tp / x.gpus_per_instance)
               for x in cands},
        committed=c.committed_tier, spot_share=c.spot_max_share,
        caps_gpu={tables.gpus.get(g).id: v for g, v in c.max_gpus.items()}, single_gpu_type=c.single_gpu_type,
        budget_usd_per_hour=c.budget_usd_per_hour)


def plan_day(fleet: Fleet, tables: Tables, time_limit_s: float = 20.0, wall_limit_s: float | None = None,
             engine: str = DAY_ENGINE) -> DayPlan:
    start = time.perf_counter()
    wall = time_limit_s if wall_limit_s is None else wall_limit_s
    c = fleet.constraints
    for w in fleet.workloads:
        if w.concurrency is not None:
            raise InfeasibleError(f"workload '{w.name}': a daily plan needs rate_rps or rate_profile, not concurrency")
    offers = _day_offers(tables, fleet)
    by_key = {o.key: o for o in offers}
    peak = [w.model_copy(update={"rate_rps": w.peak_rate_rps, "rate_profile": None}) if w.rate_profile else w
            for w in fleet.workloads]
    gen = c.model_copy(update={"tier": "on_demand"})
    prefetch(peak, gen, tables, offers)
    sets = [generate(w, gen, tables, offers, price_any=(c.committed_tier, "on_demand", "spot")) for w in peak]
    empty = explain_empty(sets, fleet)
    if empty:
        raise InfeasibleError(empty)
    cands: list[Candidate] = sorted((x for s in sets for x in s.candidates), key=lambda x: x.id)
    d = _inputs(fleet, tables, offers, cands)
    rates = {w.name: (w.rate_profile or [w.rate_rps or 0.0] * HOURS) for w in fleet.workloads}
    groups = d.groups
    okey = {k: f"{k[0]}:{k[1]}" for k in groups}
    lbs = {(w, h): hour_cover_bound(d, w, h) for w in d.workloads for h in range(HOURS)}
    det = DET_PER_S * time_limit_s
    distinct = len({tuple(d.demand[w][h] for w in d.workloads) for h in range(HOURS)})

    def left(share: float = 1.0) -> float:
        """Wall seconds left for a stage that may use up to ``share`` of the whole wall budget."""
        return max(wall * share - (time.perf_counter() - start), 0.05)

    dm = build_day(d, list(range(HOURS)), lbs)
    m, r, base, od, spot, total, cost = dm.model, dm.r, dm.base, dm.od, dm.spot, dm.total, dm.cost
    m.Minimize(cost)
    variables = dm.variables()
    prices = {k: _tier_prices(by_key[okey[k]], c.committed_tier) for k in groups}
    hint = _on_demand_hint(cands, rates, groups, prices, r, od, total)
    main_share = 1 - TIE_BREAK_SHARE - BETA_SHARE - (0 if c.single_gpu_type else HOUR_BOUND_SHARE + 2 * POLISH_SHARE)
    first = run_stage(m, variables, det * main_share, left(min(WALL_MAIN, MAIN_FIRST_S / wall + MAIN_AFTER)), hint,
                      engine)
    tried = [first if first.values else None]
    timed_out = first.wall_bound
    hour_bound = 0
    per_hour = det * POLISH_SHARE / distinct
    if first.status not in (cp_model.OPTIMAL, cp_model.INFEASIBLE) and engine == "highs":
        if first.values and not c.single_gpu_type:  # its base kept, every hour re-solved
            tried.append(polish(d, dm, first, lbs, per_hour, lambda: left(WALL_POLISH), engine))
        found = [t.objective for t in tried if t is not None]
        if not c.single_gpu_type and (not found or min(found) - first.bound > FALLBACK_GAP * min(found)):
            # a poor or no plan so far: the base the hours' own plans suggest, every hour re-solved for it
            hb, fleets = hour_bounds(d, list(range(HOURS)), lbs, det * HOUR_BOUND_SHARE / distinct,
                                     lambda: left(WALL_HOURS), engine)
            hour_bound = sum(hb.values()) if len(hb) == HOURS else 0
            if len(fleets) == HOURS:
                tried.append(with_base(d, dm, base_from_hours(d, fleets), lbs, per_hour, lambda: left(WALL_START),
                                       engine))
            timed_out = timed_out or len(hb) < HOURS or left(WALL_START) <= 0.1
    tried = [t for t in tried if t is not None]
    if not tried:
        raise InfeasibleError("no daily fleet meets every hour's demand within the caps, spot share and budget"
                              if first.status == cp_model.INFEASIBLE else
                              f"the time limit of {time_limit_s:g} s bound before a daily plan was found "
                              "(raise --time-limit)")
    best = min(tried, key=lambda t: t.objective)  # ties: the full model's plan first
    bound = max(first.bound if first.values else 0, hour_bound)
    if best.objective - bound >= 1 and engine == "highs":
        beta, clock = commitment_bound(d, lbs, round(best.objective), int(BETA_STEPS_PER_S * time_limit_s),
                                max(det * BETA_SHARE / (distinct * (1 + BETA_STEPS_PER_S * time_limit_s)),
                                    BETA_MIN_DET), lambda: left(WALL_BETA), engine)
        timed_out = timed_out or clock
        bound = max(bound, beta or 0)
    fix_stage(m, cost, best, "min")
    cap = d.cap
    ranked = [base[k] for k in sorted(groups)]
    order = {x.id: i for i, x in enumerate(sorted(cands, key=lambda x: (x.usd_per_hour / max(cap[x.id], 1), x.id)))}
    m.Minimize(sum((i + 1) * v for i, v in enumerate(ranked))
               + sum((order[cid] + 1) * v for (cid, _h), v in sorted(r.items())))
    tie = run_stage(m, variables, det * TIE_BREAK_SHARE, left(), best.values)
    values = tie.values if tie.values and not tie.wall_bound else best.values
    notes = []
    if timed_out or tie.wall_bound:
        notes.append(WALL_NOTE)

    def val(v) -> int:
        return values[v.Index()]
    hours = []
    for h in range(HOURS):
        b = sum(by_key[okey[k]].gpus_per_instance * val(base[k]) for k in groups)
        dg = sum(by_key[okey[k]].gpus_per_instance * val(od[k, h]) for k in groups)
        sg = sum(by_key[okey[k]].gpus_per_instance * val(spot[k, h]) for k in groups)
        usd = sum(val(base[k]) * (by_key[okey[k]].price(c.committed_tier) or 0)
                  + val(od[k, h]) * (by_key[okey[k]].price("on_demand") or 0)
                  + val(spot[k, h]) * (by_key[okey[k]].price("spot") or 0) for k in groups)
        hours.append(HourRow(hour=h, demand_rps={w: rates[w][h] for w in rates}, base_gpus=b, on_demand_gpus=dg,
                             spot_gpus=sg, usd=usd))
    lines = []
    for k in sorted(groups):
        o = by_key[okey[k]]
        for tier, count in ((c.committed_tier, val(base[k])),
                            ("on_demand", max(val(od[k, h]) for h in range(HOURS))),
                            ("spot", max(val(spot[k, h]) for h in range(HOURS)))):
            if count:
                lines.append(InstanceLine(provider=o.provider, offer=o.instance, gpu=o.gpu, pricing=tier, count=count,
                                          usd_per_hour=o.price(tier) or 0.0))
    daily = sum(h.usd for h in hours)
    tokens = sum(rates[w.name][h] * w.output_tokens * 3600 for w in fleet.workloads for h in range(HOURS))
    committed = sum(line.count * line.usd_per_hour * HOURS for line in lines if line.pricing == c.committed_tier)
    deployments = tier_deployments(
        fleet, tables, cands, {g.id: [val(r[g.id, h]) for h in range(HOURS)] for g in cands},
        {okey[k]: (val(base[k]), [val(od[k, h]) for h in range(HOURS)], [val(spot[k, h]) for h in range(HOURS)])
         for k in groups}, c.committed_tier)
    units = cost_units(d, dm, values)
    optimal = first.status == cp_model.OPTIMAL or units - bound < 1  # integer costs: a gap below one unit is a proof
    return DayPlan(status="optimal" if optimal else "feasible", solve_seconds=time.perf_counter() - start,
                   gap=0.0 if optimal else max(units - bound, 0.0) / max(units, 1e-9),
                   daily_usd=daily,
                   committed_tier=c.committed_tier, committed_usd_per_day=committed,
                   usd_per_mtok_output=daily / tokens * 1e6 if tokens else math.nan, hours=hours, instances=lines,
                   candidates=len(cands), notes=notes, deployments=deployments)


def _on_demand_hint(cands: list[Candidate], rates, groups, prices, r, od, total) -> dict[int, int]:
    """Each hour, each workload on its cheapest standalone candidate, bought on demand (a start for the search)."""
    hint: dict[int, int] = {}
    usable = [x for x in cands if prices[(x.provider, x.offer)]["on_demand"]]
    for h in range(HOURS):
        ws = [Workload(name=n, model="hint", input_tokens=1, output_tokens=1, rate_rps=rates[n][h],
                       slo={"ttft_ms": 1, "tpot_ms": 1}) for n in sorted(rates) if rates[n][h] > 0]
        live = [x for x in usable if x.workload in {w.name for w in ws}]  # an idle hour's workloads buy nothing
        counts = greedy(Problem(ws, live, "on_demand"), live, {w.name: w for w in ws}) if ws else {}
        for x in cands:
            hint[r[x.id, h].Index()] = counts.get(x.id, 0)
        bought = instances_for(live, counts)
        for key in groups:
            hint[od[key, h].Index()] = bought.get(key, 0)
            hint[total[key, h].Index()] = bought.get(key, 0)
    return hint
