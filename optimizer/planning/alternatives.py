"""Near-optimal alternatives: beside the optimum, the cheapest plan of each kind procurement may prefer.

Kinds, in this order (each solved exactly as its own restricted problem, so each is the cheapest of its kind):
  other-vendor      no GPU of the vendor(s) the optimum uses (e.g. AMD instead of NVIDIA)
  other-provider    nothing from the provider the optimum spends most with
  no-spot           on-demand prices only (only when the plan's tier is spot)
  fewest-gpu-types  the fewest distinct GPU types any plan can use, when that is fewer than the optimum's
Each comes with its extra $/h over the optimum; ``within`` drops those costing more than that fraction extra.
"""

from __future__ import annotations

import time

from gpuplan.optimizer.planning.candidate_gen import prune_offers
from gpuplan.optimizer.planning.planner import Alternative, PlanReport, all_candidates, assemble
from gpuplan.optimizer.planning.solver import Problem, solve
from gpuplan.optimizer.planning.workload import Fleet
from gpuplan.optimizer.tables import Tables

KINDS = ("other-vendor", "other-provider", "no-spot", "fewest-gpu-types")


def _restrict(problem: Problem, keep) -> Problem:
    return Problem(problem.workloads, [c for c in problem.candidates if keep(c)], problem.tier, problem.max_gpus,
                   problem.budget_usd_per_hour, problem.single_gpu_type, problem.objective)


def _variants(fleet: Fleet, tables: Tables, problem: Problem, best: PlanReport):
    """(kind, description, restricted problem) per applicable kind."""
    gpus = sorted({i.gpu for i in best.instances})
    vendors = sorted({tables.gpus.get(g).vendor for g in gpus})
    yield ("other-vendor", f"no {', '.join(vendors)} GPUs",
           _restrict(problem, lambda c: tables.gpus.get(c.gpu).vendor not in vendors))
    spend: dict[str, float] = {}
    for i in best.instances:
        spend[i.provider] = spend.get(i.provider, 0.0) + i.usd_per_hour
    if spend:
        main = min(spend, key=lambda p: (-spend[p], p))
        yield "other-provider", f"nothing from {main}", _restrict(problem, lambda c: c.provider != main)
    if problem.tier == "spot":
        c = fleet.constraints.model_copy(update={"tier": "on_demand"})
        sets, _ = all_candidates(fleet.model_copy(update={"constraints": c}), tables)
        cands = prune_offers([x for s in sets for x in s.candidates], set(problem.max_gpus), c.single_gpu_type)
        yield "no-spot", "on-demand prices, no spot", Problem(
            problem.workloads, cands, "on_demand", problem.max_gpus, problem.budget_usd_per_hour,
            problem.single_gpu_type, problem.objective)
    for m in range(1, len(gpus)):
        p = _restrict(problem, lambda c: True)
        p.max_gpu_types = m
        yield "fewest-gpu-types", f"at most {m} GPU type{'s' if m > 1 else ''}", p


def near_optimal(fleet: Fleet, tables: Tables, problem: Problem, best: PlanReport, k: int, within: float | None,
                 time_limit_s: float, wall_s: float) -> list[Alternative]:
    """Up to ``k`` alternatives (see module doc), each the cheapest of its kind, with its extra cost, found
    within ``wall_s`` seconds (what is left of the command's time limit)."""
    out: list[Alternative] = []
    done: set[str] = set()
    deadline = time.perf_counter() + wall_s
    for kind, description, p in _variants(fleet, tables, problem, best):
        if len(out) >= k or kind in done or time.perf_counter() > deadline:
            break
        if not p.candidates:
            continue
        sol = solve(p, time_limit_s, max(deadline - time.perf_counter(), 0.1))
        if sol.status not in ("optimal", "feasible"):
            continue
        done.add(kind)
        rep = assemble(fleet, tables, p.candidates, sol, p.tier, problem.objective, [])
        extra = rep.total_usd_per_hour - best.total_usd_per_hour
        fraction = extra / best.total_usd_per_hour if best.total_usd_per_hour else 0.0
        if within is not None and fraction > within + 1e-12:
            continue
        out.append(Alternative(kind=kind, description=description, status=sol.status,
                               total_usd_per_hour=rep.total_usd_per_hour, extra_usd_per_hour=extra,
                               extra_fraction=fraction, gpus=sorted({i.gpu for i in rep.instances}),
                               providers=sorted({i.provider for i in rep.instances}), instances=rep.instances))
    return out
