"""Solving the fleet model (``planning.model``): staged, deterministic, never discarding a known plan.

Stages: (1) a starting plan without a solver (``model.start``); (2) bound-based elimination (``model.reduce``)
against the starting plan's cost or, on large models, the lower target Σ LB_w / (1 − PROVEN_GAP) (``_cut``);
(2b) on large separable models, the residue model (``model.residues``, ``_residues``): every plan up to a cost,
exactly, raising the cost while it proves none; (3) the primary solve (HiGHS for min-cost, skipped when the
plan is proven within PROVEN_GAP; CP-SAT for max-throughput's three lexicographic stages); (4) the tie-break
(``model.objective``). Large separable
fleets are solved in fixed groups (``_solve_in_groups``).
Determinism: every stage runs on a fixed number of workers with a fixed seed, limited by CP-SAT's
*deterministic* time or HiGHS's node count; wall time is only a safety net (reported when it bound). Whatever
plan a stage returns, optimal or not, the next stage fixes its objective and minimises a fixed rank (cheapest
$ per capacity, then id), so the same input gives the same plan.
"""

from __future__ import annotations

import math
import time

from gpuplan.optimizer.planning.bounds import lower_bound_units
from gpuplan.optimizer.planning.candidate_gen import Candidate
from gpuplan.optimizer.planning.engines import Stage
from gpuplan.optimizer.planning.engines import run as run_stage
from gpuplan.optimizer.planning.model.build import build
from gpuplan.optimizer.planning.model.global_constraints import replica_ub
from gpuplan.optimizer.planning.model.objective import fix_stage, rank_expr
from gpuplan.optimizer.planning.model.problem import (
    PHI_SCALE,
    PRICE_SCALE,
    RATE_SCALE,
    Problem,
    Solution,
    by_workload,
    cap_units,
    demand_units,
    price_units,
)
from gpuplan.optimizer.planning.model.reduce import bound_tables, eliminate
from gpuplan.optimizer.planning.model.residues import solve_residues
from gpuplan.optimizer.planning.model.start import cost_of, feasible_plan, greedy, hint_of, instances_for, share_cover
from ortools.sat.python import cp_model

__all__ = ["PRICE_SCALE", "RATE_SCALE", "Problem", "Solution", "solve"]

# deterministic work units per second of --time-limit: ~15-20 % of the limit here, so a 3x slower (busy)
# machine still stops by work, not by the clock
DET_PER_S = 0.25
TIE_BREAK_SHARE = 0.2  # of the wall budget kept for the tie-break
TIE_BREAK_DET_PER_S = 0.05  # single-worker deterministic seconds per second of time limit
TIE_BREAK_MIN_DET_S = 1.5  # small models: lets the tie-break settle whatever optimum it starts from
DEBUG = False
PROVEN_GAP = 1e-3  # a plan proven within 0.1 % of the bound is returned as is (status feasible, its gap)
GROUPED_ABOVE = 150  # separable fleets of more workloads are planned in groups
GROUP_SIZE = 50  # workloads per group (measured on the 1,000-workload benchmark, README)
LARGE_MODEL = 400  # candidates above which the search stops at PROVEN_GAP and starts below the target (``_cut``)
BUILD_S_PER_CANDIDATE = 1e-4  # measured: building and translating the model, ≈ 0.06 ms per candidate
RESIDUE_SHARE = 0.4  # of the deterministic budget for the residue model (``model.residues``)
RESIDUE_WALL_SHARE = 0.6  # of the wall time left (its first level may use it all: on a busy machine it is the proof)
RESIDUE_LEVELS = 8  # costs U the residue model tries, the target first, the known plan's cost − 1 at most
RESIDUE_NODES_PER_DET = 200_000  # cover enumeration steps per deterministic unit of the residue share (≈ 1 s idle)
RESIDUE_GROWTH = 2.0  # the next level's slack over Σ LB_w, relative to the last one's (cubed when the last
RESIDUE_FAST = 8  # level's enumeration took less than 1/RESIDUE_FAST of its budget)
PRIMARY_ENGINE = "highs"  # min-cost primary stage; chosen by measurement (README)
WALL_NOTE = "the wall-clock limit bound before the deterministic limit: this plan may differ between runs"


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
        if DEBUG:
            print(f"group {i}: {sol.status} gap {sol.gap:.4%} ${sol.objective_value:,.2f}/h, {sol.solve_seconds:.1f} s")
        counts.update(sol.replicas)
        lb_total += sol.bound * PRICE_SCALE
        notes += [n for n in sol.notes if n not in notes]
    cands = [c for c in p.candidates if counts.get(c.id)]
    instances = instances_for(cands, counts)
    first = {(c.provider, c.offer): c for c in cands}
    cost = sum(price_units(first[k]) * v for k, v in instances.items())
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
    if len(p.workloads) > GROUPED_ABOVE and _separable(p):
        return _solve_in_groups(p, time_limit_s, time_limit_s if wall_limit_s is None else wall_limit_s)
    start = time.perf_counter()
    wall = time_limit_s if wall_limit_s is None else wall_limit_s
    by_name = {w.name: w for w in p.workloads}
    cands = sorted((c for c in p.candidates if replica_ub(c, by_name[c.workload], p) > 0), key=lambda c: c.id)
    all_cands = cands
    cut = upper = 0
    notes: list[str] = []
    lbs: dict[str, int] = {}
    start_counts = greedy(p, cands, by_name)
    start_ok = (len(start_counts) == len(p.workloads) and p.objective == "min-cost"
                and feasible_plan(p, cands, start_counts))
    lb_total = 0.0
    if p.objective == "min-cost" and all(by_workload(p, cands).values()):
        tables = bound_tables(p, cands)
        lbs = {w: lower_bound_units(t[0]) for w, t in tables.items()}
        lb_total = sum(lbs.values())
        cover = share_cover(p, cands, tables)
        if feasible_plan(p, cands, cover) and (not start_ok or cost_of(cands, cover) < cost_of(cands, start_counts)):
            start_counts, start_ok = cover, True
        upper = cost_of(cands, start_counts) if start_ok else 0
        if start_ok:
            before = len(cands)
            cut = _cut(lb_total, upper, len(cands))
            cands = eliminate(p, cands, by_name, tables, cut)
            if DEBUG:
                print(f"LB {lb_total / PRICE_SCALE:.2f} start {upper / PRICE_SCALE:.2f} cut {cut / PRICE_SCALE:.2f}: "
                      f"kept {len(cands)} of {before} after {time.perf_counter() - start:.1f} s")
            if len(all_cands) > LARGE_MODEL and _separable(p):
                lb_total, start_counts, upper, cands, cut = _residues(
                    p, cands, all_cands, tables, cut, lb_total, start_counts, upper,
                    RESIDUE_SHARE * DET_PER_S * time_limit_s, _remaining(start, wall) * RESIDUE_WALL_SHARE, notes)
                used = set(start_counts)  # the model below holds the known plan (hint, tie-break)
                kept = {c.id for c in cands}
                cands = sorted([*cands, *(c for c in all_cands if c.id in used and c.id not in kept)],
                               key=lambda c: c.id)
                if DEBUG:
                    print(f"residues: plan {upper / PRICE_SCALE:.4f} bound {lb_total / PRICE_SCALE:.4f} after "
                          f"{time.perf_counter() - start:.1f} s")
    if start_ok and p.objective == "min-cost" and _remaining(start, wall) < BUILD_S_PER_CANDIDATE * len(cands):
        notes.append("the time limit left no time to improve the starting plan")
        return _from_counts(p, all_cands, start_counts, lb_total, start, 0, 0, notes)
    m = build(p, cands, by_name, lbs)
    variables, constraints = len(m.model.Proto().variables), len(m.model.Proto().constraints)
    det = DET_PER_S * time_limit_s

    def left() -> float:
        return wall * (1 - TIE_BREAK_SHARE) - (time.perf_counter() - start)

    kept = {c.id for c in cands}
    hint = hint_of(m, start_counts) if start_counts and all(i in kept for i in start_counts) else None
    if p.objective == "min-cost":
        m.model.Minimize(m.cost)
        large = len(all_cands) > LARGE_MODEL  # as before elimination, like ``_cut``
        if large and start_ok and (upper - lb_total) <= PROVEN_GAP * upper:
            # the starting plan is already within PROVEN_GAP of Σ LB_w: nothing left to prove
            first = Stage(cp_model.OPTIMAL if upper <= lb_total else cp_model.FEASIBLE, hint or {}, float(upper),
                          float(lb_total), False)
        else:
            first = run_stage(m.model, m.variables(), det * (1 - TIE_BREAK_SHARE), left(), hint,
                              PRIMARY_ENGINE, gap=PROVEN_GAP if large else 0.0)
        primary = first
        stages = [(m.cost, first, "min")]
    else:
        m.model.Maximize(m.phi)
        first = run_stage(m.model, m.variables(), det * (1 - TIE_BREAK_SHARE) / 2, left(), hint)
        primary = first
        stages = [(m.phi, first, "max")]
        if first.values:
            fix_stage(m.model, m.phi, first, "max")
            m.model.Maximize(m.served_tok)
            second = run_stage(m.model, m.variables(), det * (1 - TIE_BREAK_SHARE) / 4, left(), first.values)
            if second.values:
                stages.append((m.served_tok, second, "max"))
                fix_stage(m.model, m.served_tok, second, "max")
                m.model.Minimize(m.cost)
                third = run_stage(m.model, m.variables(), det * (1 - TIE_BREAK_SHARE) / 4, left(), second.values)
                if third.values:
                    stages.append((m.cost, third, "min"))
    if any(s.wall_bound for _, s, _ in stages) and WALL_NOTE not in notes:
        notes.append(WALL_NOTE)
    restricted = start_ok and p.objective == "min-cost" and cut < upper
    if restricted:  # every plan outside the model costs more than ``cut``
        lb_total = max(lb_total, min(primary.bound if primary.status != cp_model.INFEASIBLE else math.inf, cut + 1))
    if not primary.values or (start_ok and p.objective == "min-cost" and primary.objective > upper):
        if start_ok:
            return _from_counts(p, all_cands, start_counts, lb_total, start, variables, constraints, notes)
        name = "infeasible" if primary.status == cp_model.INFEASIBLE else "unknown"
        return Solution(status=name, replicas={}, instances={}, objective_value=math.nan, bound=math.nan,
                        gap=math.nan, solve_seconds=time.perf_counter() - start, variables=variables,
                        constraints=constraints, notes=notes)
    expr, last, sense = stages[-1]
    fix_stage(m.model, expr, last, sense)
    m.model.Minimize(rank_expr(m, by_name))
    tie_det = TIE_BREAK_DET_PER_S * time_limit_s
    if len(all_cands) <= LARGE_MODEL:
        tie_det = max(tie_det, TIE_BREAK_MIN_DET_S)
    tie = run_stage(m.model, m.variables(), tie_det,
                    max(_remaining(start, wall), 0.05), last.values, "cp-sat", workers=1)
    # a tie-break cut short by the clock is dropped: the plan before it is reproducible
    values = tie.values if tie.values and not tie.wall_bound else last.values
    replicas = {c.id: values[m.r[c.id].Index()] for c in cands if values[m.r[c.id].Index()] > 0}
    instances = {key: values[var.Index()] for key, var in m.n.items() if values[var.Index()] > 0}
    optimal = all(s.status == cp_model.OPTIMAL for _, s, _ in stages)
    if p.objective == "min-cost":
        best = primary.objective
        bound = lb_total if restricted else max(primary.bound, lb_total)
        optimal = best - bound < 1  # integer objective: within one unit is a proof
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


def _residues(p: Problem, cands: list[Candidate], all_cands: list[Candidate], tables, cut: int, lb_total: float,
              counts: dict[str, int], upper: int, det_s: float, wall_s: float, notes: list[str]
              ) -> tuple[float, dict[str, int], int, list[Candidate], int]:
    """The residue model (``model.residues``) of every plan costing ≤ U, U = ``cut`` first: its plan kept when
    cheaper than ``counts`` (cost ``upper``), the bound max(Σ LB_w, min(its bound, U + 1)). While it proves that no
    plan costs ≤ U, U moves up (its slack over Σ LB_w × RESIDUE_GROWTH, cubed after a cheap enumeration and taken
    back when that does not fit; at most the known plan's cost − 1) as long as the enumeration fits its steps.
    The search after it runs over the candidates of the last level and its U as the cut (plans outside it cost
    more than U). Returns (bound, plan, its cost, candidates, cut)."""
    start = time.perf_counter()
    by_name = {w.name: w for w in p.workloads}
    level_cands, level, base = cands, cut, lb_total
    nodes = max(1, int(RESIDUE_NODES_PER_DET * det_s))
    by_id = {c.id: c for c in all_cands}
    growth = 1.0
    for k in range(RESIDUE_LEVELS):
        res = solve_residues(p, level_cands, tables, level, det_s / 2 ** (k + 1),
                             (wall_s - (time.perf_counter() - start)) / (2 if k else 1),
                             [(by_id[i], n) for i, n in counts.items()],
                             max_nodes=nodes)
        if DEBUG:
            print(f"  residues ≤ {level}: {len(level_cands)} candidates, "
                  + (f"{res.options} options, bound {res.bound}, optimal {res.optimal}" if res else "too many covers"))
        if res is None and growth > RESIDUE_GROWTH:  # too far after a cheap level: the smaller step instead
            growth = RESIDUE_GROWTH
            level = min(upper - 1, math.floor(base + growth * (cut - base)))
            level_cands = eliminate(p, all_cands, by_name, tables, level)
            continue
        if res is None:
            break
        if res.wall_bound and WALL_NOTE not in notes:
            notes.append(WALL_NOTE)
        cands, cut = level_cands, level
        counts, upper = _cheaper(p, all_cands, res.counts, counts, upper)
        lb_total = max(lb_total, res.bound)
        if res.bound <= level or upper - 1 <= level:  # a plan costs ≤ U, or nothing is left between
            break
        growth = RESIDUE_GROWTH if res.nodes * RESIDUE_FAST > nodes else RESIDUE_GROWTH ** 3  # cheap: faster
        level = min(upper - 1, math.floor(base + growth * (level - base)))
        level_cands = eliminate(p, all_cands, by_name, tables, level)
    return lb_total, counts, upper, cands, cut


def _cheaper(p: Problem, cands: list[Candidate], found: dict[str, int], counts: dict[str, int], upper: int
             ) -> tuple[dict[str, int], int]:
    """The cheaper of a model's plan (when it is one) and the known plan."""
    if found and feasible_plan(p, cands, found):
        cost = cost_of(cands, found)
        if cost < upper:
            return found, cost
    return counts, upper


def _cut(lb_total: float, upper: int, candidates: int) -> int:
    """The cost above which candidates are eliminated: the starting plan's, or on large models the target
    Σ LB_w / (1 − PROVEN_GAP) when that is lower. Below the target the search is then exact — every plan costing
    ≤ target uses only candidates whose forced bound is ≤ target, so the model keeps them all — and any plan it
    finds within the target is proven within PROVEN_GAP of Σ LB_w; plans outside it cost more than the target,
    which bounds them (the returned bound is min(the model's bound, target + 1), never below Σ LB_w)."""
    target = math.floor(lb_total / (1 - PROVEN_GAP))
    return min(upper, target) if candidates > LARGE_MODEL else upper


def _remaining(start: float, wall: float) -> float:
    return wall - (time.perf_counter() - start)


def _from_counts(p: Problem, cands: list[Candidate], counts: dict[str, int], lb_total: float, start: float,
                 variables: int, constraints: int, notes: list[str]) -> Solution:
    """The greedy plan, kept when the solver found nothing better in its budget."""
    inst = instances_for(cands, counts)
    first = {(c.provider, c.offer): c for c in cands}
    cost = sum(price_units(first[k]) * v for k, v in inst.items())
    if not notes:
        notes.append("the solver found no better plan within the time limit")
    notes.append("this is the starting plan: the cheaper of each workload's cheapest standalone deployment and "
                 "the lower bound's covers, packed into whole instances")
    return Solution(status="feasible", replicas=dict(sorted(counts.items())), instances=inst,
                    objective_value=cost / PRICE_SCALE, bound=lb_total / PRICE_SCALE,
                    gap=max(cost - lb_total, 0) / max(cost, 1e-9), solve_seconds=time.perf_counter() - start,
                    variables=variables, constraints=constraints, served={w.name: 1.0 for w in p.workloads},
                    notes=notes)


