"""Starting plans without a solver, and whole instances for given replicas.

Two starts, the cheaper one kept: each workload on the candidate that serves it alone in the cheapest whole
instances (``greedy``), and the lower bound's own covers (``share_cover``); both are packed into whole
instances per offer for all workloads together (``instances_for``, exact: ``packing.min_instances``).
"""

from __future__ import annotations

import math

from gpuplan.optimizer.planning.bounds import cover_choice
from gpuplan.optimizer.planning.candidate_gen import Candidate
from gpuplan.optimizer.planning.model.problem import (
    PRICE_SCALE,
    Problem,
    by_workload,
    cap_units,
    demand_units,
    group_by_offer,
    price_units,
    rank,
    share_units,
)
from gpuplan.optimizer.planning.model.variables import FleetModel
from gpuplan.optimizer.planning.packing import min_instances
from gpuplan.optimizer.planning.workload import Workload


def standalone_cost(c: Candidate, w: Workload) -> tuple[float, int]:
    """(cost of whole instances, replicas) to serve ``w`` with ``c`` alone."""
    k = math.ceil(demand_units(w) / cap_units(c, w))
    per_instance = c.gpus_per_instance // c.tp
    return math.ceil(k / per_instance) * c.instance_usd_per_hour, k


def greedy(p: Problem, cands: list[Candidate], by_name: dict[str, Workload]) -> dict[str, int]:
    """Each workload on the candidate that serves it alone in the cheapest whole instances (ties by rank)."""
    counts: dict[str, int] = {}
    groups = by_workload(p, cands)
    for w in p.workloads:
        mine = [c for c in groups[w.name] if cap_units(c, w) > 0]
        if mine:
            best = min(mine, key=lambda c: (standalone_cost(c, w)[0], rank(c, w)))
            counts[best.id] = standalone_cost(best, w)[1]
    return counts


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


def instances_for(cands: list[Candidate], counts: dict[str, int]) -> dict[tuple[str, str], int]:
    """Fewest whole instances per offer that hold these replicas (exact packing)."""
    out = {}
    for key, group in sorted(group_by_offer([c for c in cands if counts.get(c.id)]).items()):
        per_tp: dict[int, int] = {}
        for c in group:
            per_tp[c.tp] = per_tp.get(c.tp, 0) + counts[c.id]
        out[key] = min_instances(group[0].gpus_per_instance, per_tp)
    return out


def cost_of(cands: list[Candidate], counts: dict[str, int]) -> int:
    """$/h × 10⁴ of the whole instances these replicas need."""
    first = {(c.provider, c.offer): c for c in cands}
    return sum(price_units(first[k]) * v for k, v in instances_for(cands, counts).items())


def feasible_plan(p: Problem, cands: list[Candidate], counts: dict[str, int]) -> bool:
    """Whether these replicas, in their fewest instances, respect the budget, GPU caps, availability, one GPU
    type per workload (``single_gpu_type``) and the fleet's GPU-type limit (``max_gpu_types``)."""
    by_id = {c.id: c for c in cands}
    used = [by_id[i] for i, n in counts.items() if n > 0]
    if p.single_gpu_type and any(len({c.gpu for c in used if c.workload == w.name}) > 1 for w in p.workloads):
        return False
    if p.max_gpu_types is not None and len({c.gpu for c in used}) > p.max_gpu_types:
        return False
    inst = instances_for(cands, counts)
    first = {(c.provider, c.offer): c for c in cands}
    cost = sum(price_units(first[k]) * v for k, v in inst.items())
    if p.budget_usd_per_hour is not None and cost > math.floor(p.budget_usd_per_hour * PRICE_SCALE):
        return False
    for gpu, cap in p.max_gpus.items():
        if sum(first[k].gpus_per_instance * v for k, v in inst.items() if first[k].gpu == gpu) > cap:
            return False
    return all(first[k].offer_max_instances is None or v <= first[k].offer_max_instances for k, v in inst.items())


def hint_of(m: FleetModel, counts: dict[str, int]) -> dict[int, int]:
    """A solver hint (variable index → value) from replica counts and their fewest instances."""
    hint = {m.r[c.id].Index(): counts.get(c.id, 0) for c in m.cands}
    used = instances_for(m.cands, counts)
    for key, var in m.n.items():  # every offer: a plan read back from the hint needs them all
        hint[var.Index()] = used.get(key, 0)
    return hint
