"""The fleet model (CP-SAT): integer replicas per candidate, whole instances per offer, exact packing.

  min  Σ_o price_o · n_o                                             (min-cost; = min $/Mtok for the demand)
  s.t. demand      Σ_{c ∈ w} cap_c · r_c ≥ demand_w                   every workload w
       packing     n_o = Σ_p x_{o,p};  (L) and (S) rows of ``packing`` every offer o (exact bin packing:
                   a replica sits inside one instance)
       lower bound Σ_{c ∈ w} share_c · r_c ≥ LB_w                     every workload (``bounds``; a valid cut)
       availability n_o ≤ max_instances_o;  GPU caps Σ_{o of g} g_o · n_o ≤ cap_g
       budget      Σ_o price_o · n_o ≤ B
       one GPU type per workload (optional): y_{w,g} ∈ {0,1}, Σ_g y_{w,g} ≤ 1, r_c ≤ ub_c · y_{w,gpu(c)}
       GPU types   (alternatives) z_g ≥ y-style link, Σ_g z_g ≤ K
  max-throughput within the budget: demand is a ceiling; served_w ≤ min(demand_w, Σ cap_c r_c) and
       weight-scaled fair shares served_w ≥ φ · ω_w · demand_w; maximise φ, then Σ_w out_tok_w · served_w,
       then minimise cost.
Units: $/h × 10⁴; req/s × 10⁶ (µreq/s; capacity and demand rounded to nearest: at 10⁻⁶ req/s per replica
the rounding cannot buy a replica); the share-cost cut uses $/h × 10⁴ per GPU share rounded down.
Determinism: every stage runs on a fixed number of workers with a fixed seed, limited by CP-SAT's
*deterministic* time; wall time is only a safety net (reported when it bound). Whatever plan a stage returns,
optimal or not, the next stage fixes its objective and minimises a fixed rank (cheapest $ per capacity,
then id), so the same input gives the same plan.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from gpuplan.optimizer.planning.bounds import bound_with, cover_choice, cover_table
from gpuplan.optimizer.planning.candidate_gen import Candidate
from gpuplan.optimizer.planning.engines import Stage
from gpuplan.optimizer.planning.engines import run as run_stage
from gpuplan.optimizer.planning.packing import is_chain_degree, layout, min_instances
from gpuplan.optimizer.planning.workload import Workload
from ortools.sat.python import cp_model

PRICE_SCALE = 10_000  # $/h → 1e-4 $/h units
RATE_SCALE = 1_000_000  # req/s → µreq/s
PHI_SCALE = 1_000  # served fraction in ‰
# deterministic work units per second of --time-limit: ~15-20 % of the limit here, so a 3x slower (busy)
# machine still stops by work, not by the clock
DET_PER_S = 0.25
TIE_BREAK_SHARE = 0.2  # of the wall budget kept for the tie-break
TIE_BREAK_DET_PER_S = 0.05  # single-worker deterministic seconds per second of time limit
TIE_BREAK_MIN_DET_S = 1.5  # small models: lets the tie-break settle whatever optimum it starts from
DEBUG = False
PROVEN_GAP = 1e-3  # a plan proven within 0.1 % of the bound is returned as is (status feasible, its gap)
GROUP_SIZE = 150  # workloads per independently solved group in large separable fleets (measured: 100 → 0.1 %)
PHASE1_MIN = 400  # candidates above which a reduced model first provides the incumbent
PHASE1_PER_WORKLOAD = 8
PHASE1_SHARE = 0.3  # of the wall budget
BUILD_S_PER_CANDIDATE = 1e-4  # measured: building and translating the model, ≈ 0.06 ms per candidate
PRIMARY_ENGINE = "highs"  # min-cost primary stage; chosen by measurement (README)


@dataclass
class Problem:
    workloads: list[Workload]
    candidates: list[Candidate]
    tier: str
    max_gpus: dict[str, int] = field(default_factory=dict)
    budget_usd_per_hour: float | None = None
    single_gpu_type: bool = False
    objective: str = "min-cost"
    max_gpu_types: int | None = None


@dataclass
class Solution:
    status: str  # optimal | feasible | infeasible | unknown
    replicas: dict[str, int]
    instances: dict[tuple[str, str], int]  # (provider, instance) → count
    objective_value: float
    bound: float
    gap: float
    solve_seconds: float
    variables: int
    constraints: int
    served: dict[str, float] = field(default_factory=dict)  # workload → served fraction of its demand
    notes: list[str] = field(default_factory=list)


def cap_units(c: Candidate, w: Workload) -> int:
    if w.rate_rps is not None:
        return round(c.capacity_req_s * RATE_SCALE)
    return c.capacity_sequences


def demand_units(w: Workload) -> int:
    return round(w.rate_rps * RATE_SCALE) if w.rate_rps is not None else int(w.concurrency or 0)


def _price(c: Candidate) -> int:
    return round(c.instance_usd_per_hour * PRICE_SCALE)


def share_units(c: Candidate) -> int:
    """A replica's share of its instance's price, rounded down (keeps the cut valid)."""
    return math.floor(c.instance_usd_per_hour * PRICE_SCALE * c.tp / c.gpus_per_instance)


def _rank(c: Candidate, w: Workload) -> tuple[float, str]:
    return (c.usd_per_hour / max(cap_units(c, w), 1), c.id)


def _replica_ub(c: Candidate, w: Workload, p: Problem) -> int:
    """More replicas of one candidate than its workload needs alone never help (min-cost), nor serve more than
    the demand (max-throughput, where demand is a ceiling)."""
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


@dataclass
class _Model:
    model: cp_model.CpModel
    r: dict[str, cp_model.IntVar]
    n: dict[tuple[str, str], cp_model.IntVar]
    offers: dict[tuple[str, str], list[Candidate]]
    cost: cp_model.LinearExpr
    cands: list[Candidate]
    phi: cp_model.IntVar | None = None
    served_tok: cp_model.LinearExpr | None = None
    served: dict[str, cp_model.IntVar] = field(default_factory=dict)
    aux: list[cp_model.IntVar] = field(default_factory=list)


def pack_offer(model: cp_model.CpModel, group: list[Candidate], r: dict, n_var, n_ub: int, aux: list) -> None:
    g = group[0].gpus_per_instance
    lay = layout(g, {c.tp for c in group})
    if len(lay.patterns) == 1:
        xs = [n_var]
    else:
        xs = [model.NewIntVar(0, n_ub, "") for _ in lay.patterns]
        aux.extend(xs)
        model.Add(n_var == sum(xs))
        for t in sorted({c.tp for c in group if not is_chain_degree(c.tp)}):
            model.Add(sum(r[c.id] for c in group if c.tp == t)
                      <= sum(dict(pat).get(t, 0) * x for pat, x in zip(lay.patterns, xs, strict=True)))
    for s in lay.rows:
        model.Add(sum(c.tp * r[c.id] for c in group if c.tp >= s and is_chain_degree(c.tp))
                  <= sum(lay.chain_capacity(pat, s) * x for pat, x in zip(lay.patterns, xs, strict=True)))


def _build(p: Problem, cands: list[Candidate], by_name: dict[str, Workload], lbs: dict[str, int]) -> _Model:
    model = cp_model.CpModel()
    ubs = {c.id: _replica_ub(c, by_name[c.workload], p) for c in cands}
    r = {c.id: model.NewIntVar(0, ubs[c.id], f"r[{c.id}]") for c in cands}
    offers = group_by_offer(cands)
    n, aux, n_ubs = {}, [], {}
    for key, group in sorted(offers.items()):
        c0 = group[0]
        ub = sum(math.ceil(ubs[c.id] / (c0.gpus_per_instance // c.tp)) for c in group)
        if c0.offer_max_instances is not None:
            ub = min(ub, c0.offer_max_instances)
        if c0.gpu in p.max_gpus:
            ub = min(ub, p.max_gpus[c0.gpu] // c0.gpus_per_instance)
        n[key] = model.NewIntVar(0, ub, f"n[{key[0]}:{key[1]}]")
        n_ubs[key] = ub
        pack_offer(model, group, r, n[key], ub, aux)
    mine_of = by_workload(p, cands)
    m = _Model(model, r, n, offers, 0, cands, aux=aux)
    for w in p.workloads:
        mine = mine_of[w.name]
        capacity = sum(cap_units(c, w) * r[c.id] for c in mine)
        if p.objective == "min-cost":
            model.Add(capacity >= demand_units(w))
            if lbs.get(w.name):
                model.Add(sum(share_units(c) * r[c.id] for c in mine) >= lbs[w.name])
        else:
            m.served[w.name] = model.NewIntVar(0, demand_units(w), f"s[{w.name}]")
            model.Add(m.served[w.name] <= capacity)
        if p.single_gpu_type:
            y = {g: model.NewBoolVar("") for g in sorted({c.gpu for c in mine})}
            aux.extend(y.values())
            for c in mine:
                model.Add(r[c.id] <= ubs[c.id] * y[c.gpu])
            model.Add(sum(y.values()) <= 1)
    if p.max_gpu_types is not None:
        z = {g: model.NewBoolVar("") for g in sorted({c.gpu for c in cands})}
        aux.extend(z.values())
        for key, group in offers.items():
            model.Add(n[key] <= n_ubs[key] * z[group[0].gpu])
        model.Add(sum(z.values()) <= p.max_gpu_types)
    for gpu, cap in sorted(p.max_gpus.items()):
        terms = [group[0].gpus_per_instance * n[key] for key, group in offers.items() if group[0].gpu == gpu]
        if terms:
            model.Add(sum(terms) <= cap)
    m.cost = sum(_price(group[0]) * n[key] for key, group in sorted(offers.items()))
    if p.budget_usd_per_hour is not None:
        model.Add(m.cost <= math.floor(p.budget_usd_per_hour * PRICE_SCALE))
    if p.objective == "max-throughput":
        top = max(w.weight for w in p.workloads)
        m.phi = model.NewIntVar(0, PHI_SCALE, "phi")
        for w in p.workloads:
            omega = max(1, round(PHI_SCALE * w.weight / top))
            # served_w / demand_w ≥ φ · ω_w, in ‰ · ‰
            model.Add(PHI_SCALE * PHI_SCALE * m.served[w.name] >= demand_units(w) * omega * m.phi)
        m.served_tok = sum(w.output_tokens * m.served[w.name] for w in p.workloads)
    return m


def _run(m: _Model, det_s: float, wall_s: float, hint: dict[int, int] | None, engine: str = "cp-sat") -> Stage:
    return run_stage(m.model, [v for _, v in _all_vars(m)], det_s, wall_s, hint, engine)


def _all_vars(m: _Model):
    for v in [*m.r.values(), *m.n.values(), *m.aux, *m.served.values(), *([m.phi] if m.phi is not None else [])]:
        yield v.Index(), v


def fix_stage(model: cp_model.CpModel, expr, stage: Stage, sense: str) -> None:
    """Keep what a stage reached: equal to its optimum, or at least as good as its incumbent."""
    value = round(stage.objective)
    if stage.status == cp_model.OPTIMAL:
        model.Add(expr == value)
    elif sense == "min":
        model.Add(expr <= value)
    else:
        model.Add(expr >= value)


def _rank_expr(m: _Model, by_name: dict[str, Workload]):
    order = sorted(m.cands, key=lambda c: _rank(c, by_name[c.workload]))
    return sum((i + 1) * m.r[c.id] for i, c in enumerate(order))


def greedy(p: Problem, cands: list[Candidate], by_name: dict[str, Workload]) -> dict[str, int]:
    """Each workload on the candidate that serves it alone in the cheapest whole instances (ties by rank)."""
    counts: dict[str, int] = {}
    groups = by_workload(p, cands)
    for w in p.workloads:
        mine = [c for c in groups[w.name] if cap_units(c, w) > 0]
        if mine:
            best = min(mine, key=lambda c: (_standalone_cost(c, w)[0], _rank(c, w)))
            counts[best.id] = _standalone_cost(best, w)[1]
    return counts


def instances_for(cands: list[Candidate], counts: dict[str, int]) -> dict[tuple[str, str], int]:
    """Fewest whole instances per offer that hold these replicas (exact packing)."""
    out = {}
    for key, group in sorted(group_by_offer([c for c in cands if counts.get(c.id)]).items()):
        per_tp: dict[int, int] = {}
        for c in group:
            per_tp[c.tp] = per_tp.get(c.tp, 0) + counts[c.id]
        out[key] = min_instances(group[0].gpus_per_instance, per_tp)
    return out


def _feasible_plan(p: Problem, cands: list[Candidate], counts: dict[str, int]) -> bool:
    inst = instances_for(cands, counts)
    first = {(c.provider, c.offer): c for c in cands}
    cost = sum(_price(first[k]) * v for k, v in inst.items())
    if p.budget_usd_per_hour is not None and cost > math.floor(p.budget_usd_per_hour * PRICE_SCALE):
        return False
    for gpu, cap in p.max_gpus.items():
        if sum(first[k].gpus_per_instance * v for k, v in inst.items() if first[k].gpu == gpu) > cap:
            return False
    return all(first[k].offer_max_instances is None or v <= first[k].offer_max_instances for k, v in inst.items())


def share_cover(p: Problem, cands: list[Candidate], tables) -> dict[str, int]:
    """A plan from the lower bound's own covers: each workload's least share-cost replicas (topped up where the
    table's rounding left it short), then whole instances per offer for all workloads together."""
    counts: dict[str, int] = {}
    groups = by_workload(p, cands)
    for w in p.workloads:
        mine = groups[w.name]
        if not mine:
            continue
        dp, unit = tables[w.name]
        caps = [cap_units(c, w) for c in mine]
        pick = cover_choice(dp, unit, caps, [share_units(c) for c in mine])
        supplied = sum(caps[i] * k for i, k in pick.items())
        best = min(range(len(mine)), key=lambda i: (share_units(mine[i]) / max(caps[i], 1), mine[i].id))
        if supplied < demand_units(w):
            pick[best] = pick.get(best, 0) + math.ceil((demand_units(w) - supplied) / caps[best])
        for i, k in pick.items():
            counts[mine[i].id] = counts.get(mine[i].id, 0) + k
    return counts


def _cost_of(cands: list[Candidate], counts: dict[str, int]) -> int:
    first = {(c.provider, c.offer): c for c in cands}
    return sum(_price(first[k]) * v for k, v in instances_for(cands, counts).items())


def _hint_of(m: _Model, counts: dict[str, int]) -> dict[int, int]:
    hint = {m.r[c.id].Index(): counts.get(c.id, 0) for c in m.cands}
    for key, v in instances_for(m.cands, counts).items():
        hint[m.n[key].Index()] = v
    return hint


def _bounds(p: Problem, cands: list[Candidate], by_name: dict[str, Workload]):
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


def _incumbent(p: Problem, cands: list[Candidate], by_name: dict[str, Workload], tables, lbs: dict[str, int],
               start_counts: dict[str, int], det_s: float, wall_s: float) -> dict[str, int] | None:
    """A good plan fast: the same model over the candidates that raise their workload's bound least
    (about PHASE1_PER_WORKLOAD each, plus the starting plan's). Its cost then eliminates candidates safely."""
    incs = _increments(cands, by_name, tables)
    theta = sorted(incs)[min(len(incs) - 1, PHASE1_PER_WORKLOAD * len(p.workloads))]
    subset = [c for c, inc in zip(cands, incs, strict=True) if inc <= theta or start_counts.get(c.id)]
    m = _build(p, subset, by_name, lbs)
    m.model.Minimize(m.cost)
    stage = _run(m, det_s, wall_s, _hint_of(m, start_counts), "highs")
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


def _separable(p: Problem) -> bool:
    """Nothing but shared instances couples the workloads: no fleet caps, budget, offer caps or type limits."""
    return (p.objective == "min-cost" and not p.max_gpus and p.budget_usd_per_hour is None
            and p.max_gpu_types is None and all(c.offer_max_instances is None for c in p.candidates))


def _solve_in_groups(p: Problem, time_limit_s: float, wall: float) -> Solution:
    """Large separable fleets: workloads in fixed groups of GROUP_SIZE (ordered by model, then name, so that
    groups share instance types), each group solved on its own, the union repacked per offer. Every group's
    plan is feasible alone, so the union is; its gap is to Σ_w LB_w of the whole fleet."""
    start = time.perf_counter()
    order = sorted(p.workloads, key=lambda w: (w.model, w.name))
    groups = [order[i:i + GROUP_SIZE] for i in range(0, len(order), GROUP_SIZE)]
    cands_of = by_workload(p, p.candidates)
    counts: dict[str, int] = {}
    lb_total = 0.0
    notes: list[str] = []
    statuses = []
    for i, ws in enumerate(groups):
        sub = Problem(ws, [c for w in ws for c in cands_of[w.name]], p.tier, single_gpu_type=p.single_gpu_type)
        sol = solve(sub, time_limit_s / len(groups), _remaining(start, wall) / (len(groups) - i))
        if sol.status not in ("optimal", "feasible"):
            return sol
        statuses.append(sol.status)
        counts.update(sol.replicas)
        lb_total += sol.bound * PRICE_SCALE
        notes += [n for n in sol.notes if n not in notes]
    cands = [c for c in p.candidates if counts.get(c.id)]
    instances = instances_for(cands, counts)
    first = {(c.provider, c.offer): c for c in cands}
    cost = sum(_price(first[k]) * v for k, v in instances.items())
    notes.append(f"{len(p.workloads):,} workloads planned in {len(groups)} groups of up to {GROUP_SIZE} (each "
                 "solved on its own, instances shared when repacked); the gap is to the whole fleet's bound")
    gap = max(cost - lb_total, 0) / max(cost, 1e-9)
    return Solution(status="optimal" if gap == 0 else "feasible", replicas=dict(sorted(counts.items())),
                    instances=instances, objective_value=cost / PRICE_SCALE, bound=lb_total / PRICE_SCALE, gap=gap,
                    solve_seconds=time.perf_counter() - start, variables=0, constraints=0,
                    served={w.name: 1.0 for w in p.workloads}, notes=notes)


def solve(p: Problem, time_limit_s: float = 10.0, wall_limit_s: float | None = None) -> Solution:
    """Solve within a deterministic budget of DET_PER_S × ``time_limit_s`` and a wall-clock safety net of
    ``wall_limit_s`` (default: the time limit). Returns the best plan found — optimal, or feasible with its
    gap to the best bound (the solver's, or Σ LB_w if higher) — and never discards a known feasible plan."""
    if len(p.workloads) > GROUP_SIZE and _separable(p):
        return _solve_in_groups(p, time_limit_s, time_limit_s if wall_limit_s is None else wall_limit_s)
    start = time.perf_counter()
    wall = time_limit_s if wall_limit_s is None else wall_limit_s
    by_name = {w.name: w for w in p.workloads}
    cands = sorted((c for c in p.candidates if _replica_ub(c, by_name[c.workload], p) > 0), key=lambda c: c.id)
    notes: list[str] = []
    lbs: dict[str, int] = {}
    start_counts = greedy(p, cands, by_name)
    start_ok = (len(start_counts) == len(p.workloads) and p.objective == "min-cost"
                and _feasible_plan(p, cands, start_counts))
    lb_total = 0.0
    upper = 0
    if p.objective == "min-cost" and all(by_workload(p, cands).values()):
        tables = _bounds(p, cands, by_name)
        lbs = {w: math.ceil(float(t[0][-1]) - 1e-6) for w, t in tables.items()}
        lb_total = sum(lbs.values())
        cover = share_cover(p, cands, tables)
        if _feasible_plan(p, cands, cover) and (not start_ok or _cost_of(cands, cover) < _cost_of(cands, start_counts)):
            start_counts, start_ok = cover, True
        if start_ok and len(cands) > PHASE1_MIN and _remaining(start, wall) > BUILD_S_PER_CANDIDATE * len(cands):
            better = _incumbent(p, cands, by_name, tables, lbs, start_counts, PHASE1_SHARE * DET_PER_S * time_limit_s,
                                PHASE1_SHARE * wall)
            if better is not None and _cost_of(cands, better) < _cost_of(cands, start_counts):
                start_counts = better
        upper = _cost_of(cands, start_counts) if start_ok else 0
        if start_ok:
            before = len(cands)
            cands = eliminate(p, cands, by_name, tables, upper)
            if DEBUG:
                print(f"LB {lb_total / PRICE_SCALE:.2f} start {upper / PRICE_SCALE:.2f}: kept {len(cands)} of {before}"
                      f" after {time.perf_counter() - start:.1f} s")
    if start_ok and p.objective == "min-cost" and _remaining(start, wall) < BUILD_S_PER_CANDIDATE * len(cands):
        notes.append("the time limit left no time to improve the starting plan")
        return _from_counts(p, cands, start_counts, lb_total, start, 0, 0, notes)
    m = _build(p, cands, by_name, lbs)
    variables, constraints = len(m.model.Proto().variables), len(m.model.Proto().constraints)
    det = DET_PER_S * time_limit_s

    def left() -> float:
        return wall * (1 - TIE_BREAK_SHARE) - (time.perf_counter() - start)

    hint = _hint_of(m, start_counts) if start_counts else None
    if p.objective == "min-cost":
        m.model.Minimize(m.cost)
        large = len(cands) > PHASE1_MIN
        if large and start_ok and (upper - lb_total) <= PROVEN_GAP * upper:
            # the starting plan is already within PROVEN_GAP of Σ LB_w: nothing left to prove
            first = Stage(cp_model.OPTIMAL if upper <= lb_total else cp_model.FEASIBLE, hint or {}, float(upper),
                          float(lb_total), False)
        else:
            first = run_stage(m.model, [v for _, v in _all_vars(m)], det * (1 - TIE_BREAK_SHARE), left(), hint,
                              PRIMARY_ENGINE, gap=PROVEN_GAP if large else 0.0)
        primary = first
        stages = [(m.cost, first, "min")]
    else:
        m.model.Maximize(m.phi)
        first = _run(m, det * (1 - TIE_BREAK_SHARE) / 2, left(), hint)
        primary = first
        stages = [(m.phi, first, "max")]
        if first.values:
            fix_stage(m.model, m.phi, first, "max")
            m.model.Maximize(m.served_tok)
            second = _run(m, det * (1 - TIE_BREAK_SHARE) / 4, left(), first.values)
            if second.values:
                stages.append((m.served_tok, second, "max"))
                fix_stage(m.model, m.served_tok, second, "max")
                m.model.Minimize(m.cost)
                third = _run(m, det * (1 - TIE_BREAK_SHARE) / 4, left(), second.values)
                if third.values:
                    stages.append((m.cost, third, "min"))
    if any(s.wall_bound for _, s, _ in stages):
        notes.append("the wall-clock limit bound before the deterministic limit: this plan may differ between runs")
    if not primary.values:
        if start_ok:
            return _from_counts(p, cands, start_counts, lb_total, start, variables, constraints, notes)
        name = "infeasible" if primary.status == cp_model.INFEASIBLE else "unknown"
        return Solution(status=name, replicas={}, instances={}, objective_value=math.nan, bound=math.nan,
                        gap=math.nan, solve_seconds=time.perf_counter() - start, variables=variables,
                        constraints=constraints, notes=notes)
    expr, last, sense = stages[-1]
    fix_stage(m.model, expr, last, sense)
    m.model.Minimize(_rank_expr(m, by_name))
    tie_det = TIE_BREAK_DET_PER_S * time_limit_s
    if len(cands) <= PHASE1_MIN:
        tie_det = max(tie_det, TIE_BREAK_MIN_DET_S)
    tie = run_stage(m.model, [v for _, v in _all_vars(m)], tie_det,
                    max(_remaining(start, wall), 0.05), last.values, "cp-sat", workers=1)
    # a tie-break cut short by the clock is dropped: the plan before it is reproducible
    values = tie.values if tie.values and not tie.wall_bound else last.values
    replicas = {c.id: values[m.r[c.id].Index()] for c in cands if values[m.r[c.id].Index()] > 0}
    instances = {key: values[var.Index()] for key, var in m.n.items() if values[var.Index()] > 0}
    optimal = all(s.status == cp_model.OPTIMAL for _, s, _ in stages)
    if p.objective == "min-cost":
        best = primary.objective
        bound = max(primary.bound, lb_total)
        gap = 0.0 if optimal else max(best - bound, 0.0) / max(abs(best), 1e-9)
        value, bound_out = best / PRICE_SCALE, bound / PRICE_SCALE
    else:
        gap = 0.0 if primary.status == cp_model.OPTIMAL else abs(primary.objective - primary.bound) / max(
            abs(primary.objective), 1e-9)
        value, bound_out = primary.objective / PHI_SCALE, primary.bound / PHI_SCALE
    by_id = {c.id: c for c in cands}
    supplied: dict[str, int] = {}
    for cid, k in replicas.items():
        c = by_id[cid]
        supplied[c.workload] = supplied.get(c.workload, 0) + cap_units(c, by_name[c.workload]) * k
    served = {w.name: min(1.0, supplied.get(w.name, 0) / max(demand_units(w), 1)) for w in p.workloads}
    return Solution(status="optimal" if optimal else "feasible", replicas=replicas, instances=instances,
                    objective_value=value, bound=bound_out, gap=gap, solve_seconds=time.perf_counter() - start,
                    variables=variables, constraints=constraints, served=served, notes=notes)


def _remaining(start: float, wall: float) -> float:
    return wall - (time.perf_counter() - start)


def _from_counts(p: Problem, cands: list[Candidate], counts: dict[str, int], lb_total: float, start: float,
                 variables: int, constraints: int, notes: list[str]) -> Solution:
    """The greedy plan, kept when the solver found nothing better in its budget."""
    inst = instances_for(cands, counts)
    first = {(c.provider, c.offer): c for c in cands}
    cost = sum(_price(first[k]) * v for k, v in inst.items())
    if not notes:
        notes.append("the solver found no better plan within the time limit")
    notes.append("this is the starting plan: the cheaper of each workload's cheapest standalone deployment and "
                 "the lower bound's covers, packed into whole instances")
    return Solution(status="feasible", replicas=dict(sorted(counts.items())), instances=inst,
                    objective_value=cost / PRICE_SCALE, bound=lb_total / PRICE_SCALE,
                    gap=max(cost - lb_total, 0) / max(cost, 1e-9), solve_seconds=time.perf_counter() - start,
                    variables=variables, constraints=constraints, served={w.name: 1.0 for w in p.workloads},
                    notes=notes)


def by_workload(p: Problem, cands: list[Candidate]) -> dict[str, list[Candidate]]:
    """Candidates per workload name, every workload present (in candidate order)."""
    out: dict[str, list[Candidate]] = {w.name: [] for w in p.workloads}
    for c in cands:
        out[c.workload].append(c)
    return out


def group_by_offer(cands: list[Candidate]) -> dict[tuple[str, str], list[Candidate]]:
    offers: dict[tuple[str, str], list[Candidate]] = {}
    for c in cands:
        offers.setdefault((c.provider, c.offer), []).append(c)
    return offers


def _standalone_cost(c: Candidate, w: Workload) -> tuple[float, int]:
    """(cost of whole instances, replicas) to serve ``w`` with ``c`` alone."""
    k = math.ceil(demand_units(w) / cap_units(c, w))
    per_instance = c.gpus_per_instance // c.tp
    return math.ceil(k / per_instance) * c.instance_usd_per_hour, k
