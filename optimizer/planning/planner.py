"""From a workload file to a plan: candidates → CP-SAT → deployments, instances, costs, launch configs."""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pandas as pd
from gpuplan.models.catalog import resolve
from gpuplan.optimizer.errors import InfeasibleError, InputError
from gpuplan.optimizer.launch.commands import launch_fields
from gpuplan.optimizer.planning.candidate_gen import (
    Candidate,
    CandidateSet,
    generate,
    prefetch,
    prune_offers,
    usable_offers,
)
from gpuplan.optimizer.planning.percentile import confirm
from gpuplan.optimizer.planning.records import LaunchSpec, Placement, placement_of
from gpuplan.optimizer.planning.solver import Problem, Solution, solve
from gpuplan.optimizer.planning.workload import Fleet, Workload
from gpuplan.optimizer.tables import Tables
from gpuplan.pricing.checks import age_note
from gpuplan.pricing.regions import describe_place
from pydantic import BaseModel

MTOK = 1e6
CONFIRM_ROUNDS = 3
PREFETCH_WORKLOADS = 100  # workloads whose points are evaluated in one pass (the deadline is checked between)
FIRST_PREFETCH = 10  # under a deadline, the first pass is this small; later passes fit a share of the time left
PASS_SHARE = 0.25  # a pass under a deadline is sized to take at most this share of the time left


def next_pass_size(done: int, elapsed_s: float, left_s: float | None) -> int:
    """Workloads in the next vectorised pass: PREFETCH_WORKLOADS without a deadline; with one, as many as the
    measured rate (``done`` workloads in ``elapsed_s``) fits in PASS_SHARE of the ``left_s`` seconds left,
    between FIRST_PREFETCH and PREFETCH_WORKLOADS, so that the deadline is overrun by at most about that share
    on any machine (a pass cannot be interrupted)."""
    if left_s is None:
        return PREFETCH_WORKLOADS
    if done == 0 or elapsed_s <= 0:
        return FIRST_PREFETCH
    fits = int(PASS_SHARE * max(left_s, 0.0) * done / elapsed_s)
    return max(FIRST_PREFETCH, min(PREFETCH_WORKLOADS, fits))


class _Capacity(BaseModel):
    replicas: int
    gpus: int
    batch: int
    tpot_ms: float
    ttft_ms: float
    output_tok_s: float  # capacity of these replicas at the target utilisation
    capacity_req_s: float
    usd_per_hour: float  # replicas' share of their instances (idle GPUs allocated pro rata)
    engine: str


class Deployment(LaunchSpec, _Capacity, Placement):
    """One candidate's replicas in a plan (JSON: placement, capacity, launch fields, then ``latency``)."""

    latency: str = "mean model"  # tpot_ms / ttft_ms: the mean model, or the SLO percentile from the simulator


class WorkloadPlan(BaseModel):
    name: str
    model: str
    demand: str
    served_fraction: float  # of the demand (1 unless a max-throughput budget limits it)
    usd_per_hour: float
    usd_per_mtok_output: float
    usd_per_mtok_total: float
    served_output_tok_s: float
    deployments: list[Deployment]
    percentile: float | None = None  # the SLO's percentile (None: means)
    slo_ttft_ms: float | None = None
    slo_tpot_ms: float | None = None


class InstanceCount(BaseModel):
    provider: str
    offer: str
    gpu: str
    gpus_per_instance: int
    count: int
    usd_per_hour: float  # all instances of this offer
    gpus_used: int


class Alternative(BaseModel):
    """The cheapest plan of one kind procurement may prefer, and what it costs over the optimum."""

    kind: str  # other-vendor | other-provider | no-spot | fewest-gpu-types
    description: str
    status: str
    total_usd_per_hour: float
    extra_usd_per_hour: float
    extra_fraction: float
    gpus: list[str]
    providers: list[str]
    instances: list[InstanceCount]


class PlanReport(BaseModel):
    status: str
    objective: str
    tier: str
    solve_seconds: float
    gap: float
    total_usd_per_hour: float
    usd_per_mtok_output: float
    usd_per_mtok_total: float
    total_gpus: int
    workloads: list[WorkloadPlan]
    instances: list[InstanceCount]
    candidates: int
    variables: int
    notes: list[str]
    prices_as_of: str | None = None  # oldest as_of among the prices this plan used
    bound_usd_per_hour: float | None = None  # min-cost: proven lower bound on the fleet's $/h
    alternatives: list[Alternative] = []

    def to_frame(self) -> pd.DataFrame:
        """One row per deployment, with its workload's totals."""
        rows = []
        for w in self.workloads:
            for d in w.deployments:
                rows.append({"workload": w.name, "model": w.model, **d.model_dump(exclude={"launch"}),
                             "workload_usd_per_mtok_output": w.usd_per_mtok_output})
        return pd.DataFrame(rows)


def all_candidates(fleet: Fleet, tables: Tables, deadline: float | None = None,
                   time_limit_s: float | None = None) -> tuple[list[CandidateSet], list[str]]:
    """Candidates of every workload; stops with exit 3 when ``deadline`` (perf_counter) passes first."""
    offers, notes = usable_offers(tables, fleet.constraints)
    if not offers:
        c = fleet.constraints
        where = f" from providers {', '.join(c.providers)}" if c.providers else ""
        gpus = f" of {', '.join(c.gpus)}" if c.gpus else ""
        place = describe_place(c.regions, c.jurisdictions)
        raise InfeasibleError(f"no offer{gpus} is priced in tier '{c.tier}'{where}{' ' + place if place else ''}")
    sets: list[CandidateSet] = []
    start, fetched = time.perf_counter(), 0
    with _gc_paused():
        for i, w in enumerate(fleet.workloads):
            now = time.perf_counter()
            if deadline is not None and now > deadline:
                raise InfeasibleError(f"the time limit of {time_limit_s:g} s bound while generating candidates "
                                      f"({i:,} of {len(fleet.workloads):,} workloads done); no plan was found "
                                      "(raise --time-limit)")
            if i == fetched:  # the next workloads' points in one vectorised pass (memoised per table set)
                size = next_pass_size(i, now - start, None if deadline is None else deadline - now)
                prefetch(fleet.workloads[i:i + size], fleet.constraints, tables, offers)
                fetched = i + size
            sets.append(generate(w, fleet.constraints, tables, offers))
    return sets, notes


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Cyclic garbage collection off while candidates are generated, restored after: the phase allocates
    millions of short-lived objects that reference counting frees, and each full collection would walk every
    memoised point again (a seventh of 1,000 workloads' generation time, measured)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def explain_empty(sets: list[CandidateSet], fleet: Fleet) -> str | None:
    """One line per workload without candidates: the closest miss per GPU type."""
    lines = []
    for s in sets:
        if s.candidates:
            continue
        w = next(x for x in fleet.workloads if x.name == s.workload)
        reasons = "; ".join(f"{g}: {r}" if g != "*" else r for g, r in s.reasons.items()) or "no offers"
        place = describe_place(fleet.constraints.regions, fleet.constraints.jurisdictions)
        if place:
            reasons += f" (offers {place})"
        lines.append(f"workload '{w.name}' ({w.model}, TPOT ≤ {w.slo.tpot_ms:g} ms, TTFT ≤ {w.slo.ttft_ms:g} ms) "
                     f"has no feasible deployment — {reasons}")
    return "\n".join(lines) or None


def _diagnose(problem: Problem, time_limit_s: float, wall_s: float | None = None) -> str:
    """Which fleet constraint binds: relax budget and caps, then compare the relaxed plan with them."""
    relaxed = Problem(problem.workloads, problem.candidates, problem.tier, {}, None, problem.single_gpu_type)
    start = time.perf_counter()
    wall = time_limit_s if wall_s is None else wall_s
    sol = solve(relaxed, time_limit_s, max(wall / 2, 0.5))
    if sol.status not in ("optimal", "feasible"):
        return "no combination of candidates meets every workload's demand"
    by_id = {c.id: c for c in problem.candidates}
    parts = []
    budget = problem.budget_usd_per_hour
    if budget is not None and sol.objective_value > budget:
        parts.append(f"budget ${budget:,.2f}/h binds: the cheapest fleet without caps costs "
                     f"${sol.objective_value:,.2f}/h (${sol.objective_value - budget:,.2f}/h more)"
                     + _what_budget_serves(problem, time_limit_s, max(wall - (time.perf_counter() - start), 0.5)))
    used: dict[str, int] = {}
    for (provider, offer), count in sol.instances.items():
        c = next(c for c in problem.candidates if c.provider == provider and c.offer == offer)
        used[c.gpu] = used.get(c.gpu, 0) + count * c.gpus_per_instance
    for gpu, cap in sorted(problem.max_gpus.items()):
        if used.get(gpu, 0) > cap:
            parts.append(f"max_gpus {gpu} = {cap} binds: the cheapest fleet uses {used[gpu]} "
                         f"(needs {used[gpu] - cap} more)")
    if not parts:
        offers = sorted({(by_id[c].provider, by_id[c].offer) for c in sol.replicas})
        parts.append("the combination of caps and budget binds (each alone is satisfiable); offers used without "
                     f"caps: {', '.join(f'{p}:{o}' for p, o in offers)}")
    return "; ".join(parts)


def _what_budget_serves(problem: Problem, time_limit_s: float, wall_s: float) -> str:
    """'; $300/h serves 71 % of chat's demand' from the max-throughput plan within the budget."""
    within = Problem(problem.workloads, problem.candidates, problem.tier, problem.max_gpus,
                     problem.budget_usd_per_hour, problem.single_gpu_type, "max-throughput")
    sol = solve(within, time_limit_s, wall_s)
    if sol.status not in ("optimal", "feasible"):
        return ""
    short = sorted((f, name) for name, f in sol.served.items() if f < 1)
    if not short:
        return ""
    said = ", ".join(f"{math.floor(f * 100):.0f} % of {name}'s demand" for f, name in short[:3])
    more = f" and {len(short) - 3} more workload(s) below 100 %" if len(short) > 3 else ""
    return f"; ${problem.budget_usd_per_hour:,.2f}/h serves {said}{more} (--objective max-throughput plans it)"


def _served_tok_s(w: Workload, picked: list[tuple[Candidate, int]], fraction: float = 1.0) -> float:
    """Output tokens/s actually demanded (rate workloads) or produced by the concurrent users."""
    if w.rate_rps is not None:
        return w.rate_rps * w.output_tokens * fraction
    seqs = sum(c.capacity_sequences * k for c, k in picked)
    share = min(1.0, (w.concurrency or 0) / max(seqs, 1))
    return sum(c.capacity_sequences * k * 1e3 / c.tpot_ms for c, k in picked) * share


def build_plan(fleet: Fleet, tables: Tables, objective: str = "min-cost", time_limit_s: float = 10.0,
               budget: float | None = None, progress: Callable[[str], None] | None = None,
               started: float | None = None, alternatives: int = 0, within: float | None = None) -> PlanReport:
    """The plan for a fleet. ``time_limit_s`` bounds everything from ``started`` (a perf_counter value; default
    now): candidate generation, the solve and assembly. The best plan found is returned with its status and
    gap; exit 3 only when the limit bound before any plan was found, or no plan exists."""
    start = time.perf_counter() if started is None else started
    deadline = start + time_limit_s
    c = fleet.constraints
    profiled = [w.name for w in fleet.workloads if w.rate_profile]
    if profiled:
        raise InputError(f"workload '{profiled[0]}' has a rate_profile: plan it with 'gpuplan plan' (daily mode) "
                         "or give rate_rps")
    if budget is not None:
        c = c.model_copy(update={"budget_usd_per_hour": budget})
    if objective == "max-throughput" and c.budget_usd_per_hour is None:
        raise InputError("objective max-throughput needs a budget (--budget-usd-per-hour or constraints)")
    caps = {tables.gpus.get(g).id: v for g, v in c.max_gpus.items()}
    if progress:
        progress("generating candidates")
    sets, notes = all_candidates(fleet.model_copy(update={"constraints": c}), tables, deadline, time_limit_s)
    empty = explain_empty(sets, fleet)
    if empty:
        raise InfeasibleError(empty)
    cands = prune_offers([x for s in sets for x in s.candidates], set(caps), c.single_gpu_type)
    problem = Problem(fleet.workloads, cands, c.tier, caps, c.budget_usd_per_hour, c.single_gpu_type, objective)
    if progress:
        progress(f"solving: {len(cands):,} candidates")
    reserve = ASSEMBLY_S_PER_WORKLOAD * len(fleet.workloads)
    sol = solve(problem, time_limit_s, deadline - time.perf_counter() - reserve)
    for _ in range(CONFIRM_ROUNDS):  # percentile SLOs: simulate chosen candidates not yet simulated, re-solve
        updated = confirm(fleet.workloads, cands, set(sol.replicas), tables, c.utilization)
        if updated is None:
            break
        cands = updated
        problem = Problem(fleet.workloads, cands, c.tier, caps, c.budget_usd_per_hour, c.single_gpu_type, objective)
        sol = solve(problem, time_limit_s, deadline - time.perf_counter() - reserve)
    if sol.status == "infeasible":
        raise InfeasibleError(_diagnose(problem, min(time_limit_s, 10.0), max(deadline - time.perf_counter(), 1.0)))
    if sol.status == "unknown":
        raise InfeasibleError(f"the time limit of {time_limit_s:g} s bound before a plan was found "
                              f"({time.perf_counter() - start:.1f} s spent; raise --time-limit)")
    report = assemble(fleet, tables, cands, sol, c.tier, objective, [*notes, *sol.notes])
    if alternatives and objective != "min-cost":
        report.notes.append("--alternatives compares costs of plans for the same demand: it applies to min-cost")
    elif alternatives:
        from gpuplan.optimizer.planning.alternatives import near_optimal

        left = deadline - time.perf_counter() - reserve
        report.alternatives = near_optimal(fleet, tables, problem, report, alternatives, within, time_limit_s, left)
        if len(report.alternatives) < alternatives and left <= 0.1:
            report.notes.append("the time limit bound before every alternative was tried")
    return report


ASSEMBLY_S_PER_WORKLOAD = 0.002  # launch commands and report rows, measured ≈ 1 ms per workload


def assemble(fleet: Fleet, tables: Tables, cands: list[Candidate], sol: Solution, tier: str, objective: str,
             notes: list[str]) -> PlanReport:
    by_id = {c.id: c for c in cands}
    offer_gpus: dict[tuple[str, str], int] = {}
    for cid, k in sol.replicas.items():
        c = by_id[cid]
        offer_gpus[(c.provider, c.offer)] = offer_gpus.get((c.provider, c.offer), 0) + k * c.tp
    instances = []
    for (provider, offer), count in sorted(sol.instances.items()):
        c0 = next(c for c in cands if c.provider == provider and c.offer == offer)
        instances.append(InstanceCount(provider=provider, offer=offer, gpu=c0.gpu, count=count,
                                       gpus_per_instance=c0.gpus_per_instance,
                                       usd_per_hour=count * c0.instance_usd_per_hour,
                                       gpus_used=offer_gpus.get((provider, offer), 0)))
    offer_cost = {(i.provider, i.offer): i.usd_per_hour for i in instances}
    plans = []
    for w in fleet.workloads:
        picked = sorted(((by_id[cid], k) for cid, k in sol.replicas.items() if by_id[cid].workload == w.name),
                        key=lambda t: t[0].id)
        deps = []
        for c, k in picked:
            key = (c.provider, c.offer)
            share = k * c.tp / offer_gpus[key] * offer_cost[key]
            deps.append(Deployment(
                **placement_of(c), replicas=k, gpus=k * c.tp, batch=c.batch, tpot_ms=c.tpot_ms, ttft_ms=c.ttft_ms,
                output_tok_s=k * c.capacity_tok_s, capacity_req_s=k * c.capacity_req_s, usd_per_hour=share,
                engine=c.engine, latency=c.latency, **launch_fields(w, c, tables, k)))
        usd = sum(d.usd_per_hour for d in deps)
        fraction = sol.served.get(w.name, 1.0) if objective == "max-throughput" else 1.0
        served = _served_tok_s(w, picked, fraction)
        total_tok = served * (1 + w.input_tokens / w.output_tokens)
        demand = f"{w.rate_rps:g} req/s" if w.rate_rps is not None else f"{w.concurrency} concurrent"
        plans.append(WorkloadPlan(name=w.name, model=resolve(w.model).id, demand=demand, served_fraction=fraction,
                                  usd_per_hour=usd,
                                  usd_per_mtok_output=usd / (served * 3600) * MTOK if served else math.nan,
                                  usd_per_mtok_total=usd / (total_tok * 3600) * MTOK if total_tok else math.nan,
                                  served_output_tok_s=served, deployments=deps, percentile=w.slo.percentile,
                                  slo_ttft_ms=w.slo.ttft_ms, slo_tpot_ms=w.slo.tpot_ms))
    total = sum(i.usd_per_hour for i in instances)
    oldest, age = age_note((by_id[cid].as_of for cid in sol.replicas), (o.as_of for o in tables.offers))
    notes = [*notes, age] if age else notes
    out_tok = sum(p.served_output_tok_s for p in plans)
    all_tok = sum(p.served_output_tok_s * (1 + w.input_tokens / w.output_tokens)
                  for p, w in zip(plans, fleet.workloads, strict=True))
    return PlanReport(status=sol.status, objective=objective, tier=tier, solve_seconds=sol.solve_seconds,
                      gap=sol.gap, total_usd_per_hour=total,
                      usd_per_mtok_output=total / (out_tok * 3600) * MTOK if out_tok else math.nan,
                      usd_per_mtok_total=total / (all_tok * 3600) * MTOK if all_tok else math.nan,
                      total_gpus=sum(i.count * i.gpus_per_instance for i in instances), workloads=plans,
                      instances=instances, candidates=len(cands), variables=sol.variables, notes=notes,
                      prices_as_of=oldest, bound_usd_per_hour=sol.bound if objective == "min-cost" else None)
