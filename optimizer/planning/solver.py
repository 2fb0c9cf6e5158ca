"""The CP-SAT model: integer replicas per candidate, whole instances per offer.

  min  Σ_o price_o · n_o                                  (min-cost; = min $/Mtok for the demand)
  or   max Σ_c tok_c · r_c  s.t.  Σ_o price_o · n_o ≤ B   (max-throughput within a budget)
  s.t. Σ_{c ∈ w} cap_c · r_c ≥ demand_w                   every workload's demand
       Σ_{c on o} tp_c · r_c ≤ gpi_o · n_o                 replicas packed into whole instances
       Σ_{c on o, tp_c = t} r_c ≤ ⌊gpi_o / t⌋ · n_o         when t does not divide gpi_o
       n_o ≤ max_instances_o;  Σ_{o of g} gpi_o · n_o ≤ cap_g;  Σ price_o · n_o ≤ B
       optional: one GPU type per workload (y_{w,g} ∈ {0,1}, Σ_g y_{w,g} ≤ 1)
Coefficients are integers: $/h × 10⁴, req/s × 10³ (capacities rounded down, demand up).
Ties are broken deterministically: a second single-worker solve fixes the optimum and minimises
the candidates' rank (cheapest $ per capacity first, then id).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from gpuplan.optimizer.planning.candidate_gen import Candidate
from gpuplan.optimizer.planning.interrupt import solve_interruptibly
from gpuplan.optimizer.planning.workload import Workload
from ortools.sat.python import cp_model

PRICE_SCALE = 10_000  # $/h → 1e-4 $/h units
RATE_SCALE = 1_000  # req/s → mreq/s
TOK_SCALE = 10  # tok/s → 0.1 tok/s


@dataclass
class Problem:
    workloads: list[Workload]
    candidates: list[Candidate]
    tier: str
    max_gpus: dict[str, int] = field(default_factory=dict)
    budget_usd_per_hour: float | None = None
    single_gpu_type: bool = False
    objective: str = "min-cost"


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


def _cap(c: Candidate, w: Workload) -> int:
    if w.rate_rps is not None:
        return math.floor(c.capacity_req_s * RATE_SCALE)
    return c.capacity_sequences


def _demand(w: Workload) -> int:
    return math.ceil(w.rate_rps * RATE_SCALE) if w.rate_rps is not None else int(w.concurrency or 0)


def _price(c: Candidate) -> int:
    return round(c.instance_usd_per_hour * PRICE_SCALE)


def _upper_bound(c: Candidate, w: Workload, p: Problem) -> int:
    cap = _cap(c, w)
    if cap <= 0:
        return 0
    ub = math.ceil(_demand(w) / cap)
    if p.objective == "max-throughput" and p.budget_usd_per_hour:
        affordable = math.floor(p.budget_usd_per_hour / c.instance_usd_per_hour)
        ub = max(ub, affordable * (c.gpus_per_instance // c.tp))
    if c.offer_max_instances is not None:
        ub = min(ub, c.offer_max_instances * (c.gpus_per_instance // c.tp))
    if c.gpu in p.max_gpus:
        ub = min(ub, p.max_gpus[c.gpu] // c.tp)
    return max(ub, 0)


def _rank(c: Candidate, w: Workload) -> tuple[float, str]:
    cap = max(_cap(c, w), 1)
    return (c.usd_per_hour / cap, c.id)


WORKERS = 8  # CP-SAT's portfolio needs its bound-raising subsolvers (max_lp, core, lb search) even on 2 cores
TIE_BREAK_DETERMINISTIC_S = 1.5  # lets the tie-break settle whatever optimum it starts from
LARGE_MODEL = 2000  # candidates above which a shortlist solve provides the incumbent
SHORTLIST = 10
SHORTLIST_TIME_SHARE = 0.5


@dataclass
class _Model:
    model: cp_model.CpModel
    r: dict[str, cp_model.IntVar]
    n: dict[tuple[str, str], cp_model.IntVar]
    offers: dict[tuple[str, str], list[Candidate]]
    objective: cp_model.LinearExpr
    cands: list[Candidate]


def _build(p: Problem, cands: list[Candidate], by_name: dict[str, Workload]) -> _Model:
    model = cp_model.CpModel()
    ubs = {c.id: _upper_bound(c, by_name[c.workload], p) for c in cands}
    r = {c.id: model.NewIntVar(0, ubs[c.id], f"r[{c.id}]") for c in cands}
    offers = _group_by_offer(cands)
    n = {}
    for key, group in sorted(offers.items()):
        c0 = group[0]
        ub = sum(math.ceil(ubs[c.id] / (c.gpus_per_instance // c.tp)) for c in group)
        if c0.offer_max_instances is not None:
            ub = min(ub, c0.offer_max_instances)
        n[key] = model.NewIntVar(0, ub, f"n[{key[0]}:{key[1]}]")
        model.Add(sum(c.tp * r[c.id] for c in group) <= c0.gpus_per_instance * n[key])
        for tp in sorted({c.tp for c in group}):
            if c0.gpus_per_instance % tp:
                model.Add(sum(r[c.id] for c in group if c.tp == tp) <= (c0.gpus_per_instance // tp) * n[key])
    for w in p.workloads:
        mine = [c for c in cands if c.workload == w.name]
        model.Add(sum(_cap(c, w) * r[c.id] for c in mine) >= _demand(w))
        if p.single_gpu_type:
            gpus = sorted({c.gpu for c in mine})
            y = {g: model.NewBoolVar(f"y[{w.name},{g}]") for g in gpus}
            for c in mine:
                model.Add(r[c.id] == 0).OnlyEnforceIf(y[c.gpu].Not())
            model.Add(sum(y.values()) <= 1)
    for gpu, cap in sorted(p.max_gpus.items()):
        terms = [group[0].gpus_per_instance * n[key] for key, group in offers.items() if group[0].gpu == gpu]
        if terms:
            model.Add(sum(terms) <= cap)
    cost = sum(_price(group[0]) * n[key] for key, group in offers.items())
    if p.budget_usd_per_hour is not None:
        model.Add(cost <= math.floor(p.budget_usd_per_hour * PRICE_SCALE))
    if p.objective == "max-throughput":
        objective = sum(round(c.capacity_tok_s * TOK_SCALE) * r[c.id] for c in cands)
        model.Maximize(objective)
    else:
        objective = cost
        model.Minimize(objective)
    return _Model(model, r, n, offers, objective, cands)


def _run(m: _Model, time_limit_s: float, workers: int) -> tuple[int, cp_model.CpSolver]:
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = max(time_limit_s, 0.1)
    solver.parameters.num_workers = workers
    solver.parameters.relative_gap_limit = 0.0
    return solve_interruptibly(solver, m.model), solver


def _hint(m: _Model, replicas: dict[str, int]) -> None:
    for c in m.cands:
        m.model.AddHint(m.r[c.id], replicas.get(c.id, 0))
    for key, group in m.offers.items():
        m.model.AddHint(m.n[key], _instances_for(group, replicas))


def shortlist(p: Problem, cands: list[Candidate], size: int = 0) -> list[Candidate]:
    """Per workload, the ``size`` best candidates by standalone whole-instance cost and by $ per capacity."""
    size = size or SHORTLIST
    keep: set[str] = set()
    for w in p.workloads:
        mine = [c for c in cands if c.workload == w.name]
        keep |= {c.id for c in sorted(mine, key=lambda c: (_standalone_cost(c, w)[0], _rank(c, w)))[:size]}
        keep |= {c.id for c in sorted(mine, key=lambda c: _rank(c, w))[:size]}
    return [c for c in cands if c.id in keep]


def solve(p: Problem, time_limit_s: float = 10.0, workers: int = WORKERS, hint: bool = True) -> Solution:
    """Solve to optimality (or the time limit). Large models first solve a shortlist of candidates per
    workload for a good incumbent, which then hints the full model; the bound is always the full model's."""
    start = time.perf_counter()
    by_name = {w.name: w for w in p.workloads}
    cands = [c for c in p.candidates if _cap(c, by_name[c.workload]) > 0]
    start_values = _greedy(p, cands, by_name) if hint else {}
    if hint and len(cands) > LARGE_MODEL and p.objective == "min-cost" and not p.max_gpus:
        small = _build(p, shortlist(p, cands), by_name)
        _hint(small, start_values)
        status, solver = _run(small, SHORTLIST_TIME_SHARE * time_limit_s, workers)
        if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            start_values = {c.id: solver.Value(small.r[c.id]) for c in small.cands}
    m = _build(p, cands, by_name)
    if hint:
        _hint(m, start_values)
    status, solver = _run(m, time_limit_s - (time.perf_counter() - start), workers)
    variables, constraints = len(m.model.Proto().variables), len(m.model.Proto().constraints)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        name = "infeasible" if status == cp_model.INFEASIBLE else "unknown"
        return Solution(status=name, replicas={}, instances={}, objective_value=math.nan, bound=math.nan,
                        gap=math.nan, solve_seconds=time.perf_counter() - start, variables=variables,
                        constraints=constraints)
    best, bound = solver.ObjectiveValue(), solver.BestObjectiveBound()
    optimal = status == cp_model.OPTIMAL
    values = {v.Name(): solver.Value(v) for v in [*m.r.values(), *m.n.values()]}
    if optimal:
        values = _tie_break(m.model, m.objective, round(best), cands, m.r, m.n, values, by_name, time_limit_s)
    replicas = {c.id: values[m.r[c.id].Name()] for c in cands if values[m.r[c.id].Name()] > 0}
    instances = {key: values[var.Name()] for key, var in m.n.items() if values[var.Name()] > 0}
    scale = PRICE_SCALE if p.objective == "min-cost" else TOK_SCALE
    gap = 0.0 if optimal else abs(best - bound) / max(abs(best), 1e-9)
    return Solution(status="optimal" if optimal else "feasible", replicas=replicas, instances=instances,
                    objective_value=best / scale, bound=bound / scale, gap=gap,
                    solve_seconds=time.perf_counter() - start, variables=variables, constraints=constraints)


def _tie_break(model: cp_model.CpModel, objective: cp_model.LinearExpr, best: int, cands: list[Candidate],
               r: dict[str, cp_model.IntVar], n: dict, values: dict[str, int], by_name: dict[str, Workload],
               time_limit_s: float) -> dict[str, int]:
    """Fix the optimum, then minimise Σ rank_c · r_c on one worker within a deterministic-time budget,
    starting from the first optimum: the same input gives the same plan."""
    model.Add(objective == best)
    order = sorted(cands, key=lambda c: _rank(c, by_name[c.workload]))
    model.ClearObjective()
    model.ClearHints()
    for var in [*r.values(), *n.values()]:
        model.AddHint(var, values[var.Name()])
    model.Minimize(sum((i + 1) * r[c.id] for i, c in enumerate(order)))
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    solver.parameters.max_time_in_seconds = max(10.0, time_limit_s)
    solver.parameters.max_deterministic_time = TIE_BREAK_DETERMINISTIC_S  # reproducible, unlike wall time
    status = solve_interruptibly(solver, model)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return values
    return {var.Name(): solver.Value(var) for var in [*r.values(), *n.values()]}


def _greedy(p: Problem, cands: list[Candidate], by_name: dict[str, Workload]) -> dict[str, int]:
    """Replicas per candidate: each workload on the candidate that serves it alone in the cheapest whole
    instances (ties by rank)."""
    counts: dict[str, int] = {}
    for w in p.workloads:
        mine = [c for c in cands if c.workload == w.name]
        if mine:
            best = min(mine, key=lambda c: (_standalone_cost(c, w)[0], _rank(c, w)))
            counts[best.id] = _standalone_cost(best, w)[1]
    return counts


def _instances_for(group: list[Candidate], counts: dict[str, int]) -> int:
    """Fewest whole instances of one offer that pack these replicas (GPU count and per-TP slots)."""
    gpi = group[0].gpus_per_instance
    need = math.ceil(sum(counts.get(c.id, 0) * c.tp for c in group) / gpi)
    for tp in {c.tp for c in group if gpi % c.tp}:
        need = max(need, math.ceil(sum(counts.get(c.id, 0) for c in group if c.tp == tp) / (gpi // tp)))
    return need


def _group_by_offer(cands: list[Candidate]) -> dict[tuple[str, str], list[Candidate]]:
    offers: dict[tuple[str, str], list[Candidate]] = {}
    for c in cands:
        offers.setdefault((c.provider, c.offer), []).append(c)
    return offers


def _standalone_cost(c: Candidate, w: Workload) -> tuple[float, int]:
    """(cost of whole instances, replicas) to serve ``w`` with ``c`` alone."""
    k = math.ceil(_demand(w) / _cap(c, w))
    per_instance = c.gpus_per_instance // c.tp
    return math.ceil(k / per_instance) * c.instance_usd_per_hour, k
