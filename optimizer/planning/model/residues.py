"""The residue model: each workload's near-cheapest covers, coupled only by the idle GPUs of shared instances.

Any plan costs Σ_o price_o · n_o = Σ_w a_w + Σ_o (price_o / g_o) · idle_o, where
a_w = Σ_{c ∈ w} price_o · tp_c / g_o · r_c is w's exact GPU-share cost and idle_o = g_o · n_o − G_o the idle
GPUs of offer o (G_o = Σ_c tp_c · r_c). As n_o is an integer ≥ G_o / g_o, idle_o ≥ (−G_o) mod g_o (equality on
power-of-two offers running power-of-two TP degrees, whose packing is the single GPU-count row; elsewhere exact
packing may need more: ``packing``). Hence

  cost ≥ Σ_w a_w + Σ_o (price_o / g_o) · ((−Σ_w G_{w,o}) mod g_o)                                          (R)

A plan costing ≤ U has Σ_w share_w ≤ U (share_w: w's floor-rounded share cost, the DP's unit), so every workload's
share_w ≤ U − Σ_{w' ≠ w} LB_{w'} = LB_w + S with S = U − Σ_w LB_w; dropping a replica never raises a cost, so some
cheapest plan uses only *minimal* covers (no replica can go). Each workload's minimal covers within LB_w + S are
enumerated depth-first over its candidates (largest capacity first), pruned by suffix DP tables (``suffix_tables``:
the least share cost of covering what is left with the candidates not yet branched on). On a *coupling offer*
(g_o > 1 and some candidate of TP < g_o) a cover's G_{w,o} GPUs are ⌊G_{w,o} / g_o⌋ instances it fills alone and a
remainder res_{w,o} = G_{w,o} mod g_o; on the other offers every candidate has TP = g_o, so G_{w,o} is whole
instances. A cover's *value* v_{w,k} is the price of the whole instances it fills alone; covers with equal
remainders keep the cheapest as one option k of w. The model (CP-SAT, integer, in price units):

  min Σ_{w,k} v_{w,k} · y_{w,k} + Σ_o price_o · q_o
  s.t. Σ_k y_{w,k} = 1                                   every workload       (one cover)
       Σ_{w,k} res_{w,k,o} · y_{w,k} ≤ g_o · q_o          every coupling offer (q_o ∈ ℕ: the shared instances)

which is (R) written in whole instances, exact when packing is the GPU-count row. Its bound is a lower bound on
every plan costing ≤ U, hence min(bound, U + 1) bounds every plan; its solution, packed into whole instances
exactly (``start.instances_for``), is a plan. On the 100-workload benchmark this model (about 1,600 options,
17 coupling offers) is solved to optimality in about 0.15 deterministic units on one worker, where branch and
bound over replicas had not found the optimum in its node budget (README, "How it is solved").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from gpuplan.optimizer.planning.bounds import add_item
from gpuplan.optimizer.planning.candidate_gen import Candidate
from gpuplan.optimizer.planning.engines import run as run_stage
from gpuplan.optimizer.planning.model.problem import (
    Problem,
    by_workload,
    cap_units,
    demand_units,
    group_by_offer,
    price_units,
    share_units,
)
from ortools.sat.python import cp_model

ENGINE = "cp-sat"
# presolve's inclusion detection and probing spent whole budgets on models of ~10,000 options (one 50-workload
# group of the 1,000-workload benchmark: no solution in 3 deterministic s; without them optimal in 0.9)
CP_SAT_PARAMS = {"presolve_inclusion_work_limit": 0, "cp_model_probing_level": 0}
MAX_NODES = 100_000  # depth-first steps of one cover enumeration, all workloads together (≈ 0.5 s idle)


@dataclass
class ResidueResult:
    counts: dict[str, int]  # candidate id → replicas of the model's best plan ({} when it found none)
    bound: int  # price units: every plan costing ≤ U costs at least this much
    optimal: bool  # the model's optimum is proven
    options: int  # options (covers with distinct residues) in the model
    nodes: int = 0  # steps the cover enumeration took
    wall_bound: bool = False  # the wall clock, not the deterministic limit, stopped the search


class _Budget(Exception):
    """The enumeration met its step budget."""


def coupling_offers(cands: list[Candidate]) -> list[tuple[str, str]]:
    """Offers where idle GPUs can arise: more than one GPU per instance and a candidate of smaller TP."""
    return sorted(k for k, grp in group_by_offer(cands).items() if any(c.tp < c.gpus_per_instance for c in grp))


def options_of(p: Problem, cands: list[Candidate], tables, slack: float, coupling: list[tuple[str, str]],
               known: dict[str, list[tuple[Candidate, int]]] | None = None, max_nodes: int = MAX_NODES,
               steps: list[int] | None = None) -> dict[str, dict[tuple[int, ...], tuple[int, tuple]]] | None:
    """workload → residue signature → (price units of the whole instances it fills alone, cover ((candidate id,
    replicas), …)): the cheapest cover of each signature among the minimal covers whose share cost is
    ≤ LB_w + ``slack``, and ``known`` (workload → the cover of a known plan, any cost); None past ``max_nodes``
    (``steps[0]`` counts the enumeration's steps)."""
    index = {k: i for i, k in enumerate(coupling)}
    groups = by_workload(p, cands)
    steps = [0] if steps is None else steps
    out = {}
    try:
        for w in p.workloads:
            mine = sorted(groups[w.name], key=lambda c: (-cap_units(c, w), c.id))
            out[w.name] = opts = _covers(w, mine, tables[w.name], slack, index, p.single_gpu_type, steps, max_nodes)
            if known and known.get(w.name):
                _keep(opts, known[w.name], index)
    except _Budget:
        return None
    return out


def _keep(opts: dict, cover: list[tuple[Candidate, int]], index: dict[tuple[str, str], int]) -> None:
    """Add a cover as an option unless one of equal residues is as cheap."""
    sig, full = signature(cover, index)
    if sig not in opts or full < opts[sig][0]:
        opts[sig] = (full, tuple((c.id, k) for c, k in cover if k))


def signature(cover: list[tuple[Candidate, int]], index: dict[tuple[str, str], int]) -> tuple[tuple[int, ...], int]:
    """(residues, value) of a cover: per coupling offer the remainder G mod g in the residues and ⌊G / g⌋ whole
    instances in the value; elsewhere (TP = g for every candidate of the model, or an offer outside it) ⌈G / g⌉
    instances, exact when TP = g. The value is in price units."""
    gpus: dict[tuple[str, str], int] = {}
    first: dict[tuple[str, str], Candidate] = {}
    for c, k in cover:
        key = (c.provider, c.offer)
        gpus[key] = gpus.get(key, 0) + c.tp * k
        first.setdefault(key, c)
    sig = [0] * len(index)
    full = 0
    for key, g in gpus.items():
        per = first[key].gpus_per_instance
        if key in index:
            sig[index[key]] = g % per
            full += price_units(first[key]) * (g // per)
        else:
            full += price_units(first[key]) * -(-g // per)
    return tuple(sig), full


def _covers(w, mine: list[Candidate], table, slack: float, index: dict, single_gpu: bool, steps: list[int],
            max_nodes: int) -> dict[tuple[int, ...], tuple[int, tuple]]:
    dp, unit = table
    limit = float(dp[-1]) + slack + 1e-6
    caps = [cap_units(c, w) for c in mine]
    shares = [share_units(c) for c in mine]
    tails = suffix_tables(len(dp) - 1, unit, caps, shares)
    opts: dict[tuple[int, ...], tuple[int, tuple]] = {}
    picked: list[tuple[int, int]] = []

    def rest(i: int, d: int) -> float:
        """Least share cost of covering d with candidates i, i+1, … (``suffix_tables``; relaxed like ``bounds``)."""
        return 0.0 if d <= 0 else float(tails[i][min(d // unit, len(dp) - 1)])

    def record() -> None:
        if not single_gpu or len({mine[i].gpu for i, _ in picked}) == 1:
            _keep(opts, [(mine[i], k) for i, k in picked if k], index)

    def dfs(i: int, d: int, cost: float) -> None:
        steps[0] += 1
        if steps[0] > max_nodes:
            raise _Budget
        if i == len(mine):
            return
        k = 0
        while cost + k * shares[i] <= limit:
            left = d - k * caps[i]
            if left <= 0:  # the fewest replicas of i that finish the cover: minimal (i has the smallest capacity)
                picked.append((i, k))
                record()
                picked.pop()
                return
            if cost + k * shares[i] + rest(i + 1, left) <= limit:
                if k:
                    picked.append((i, k))
                dfs(i + 1, left, cost + k * shares[i])
                if k:
                    picked.pop()
            k += 1

    dfs(0, demand_units(w), 0.0)
    return opts


def suffix_tables(size: int, unit: int, caps: list[int], costs: list[float]) -> list[np.ndarray]:
    """tails[i][d]: least cost of covering ≥ d·unit with items i, i+1, … only (tails[n]: nothing covers d > 0), the
    DP of ``bounds.cover_table`` run backwards over the items: the enumeration's pruning bound at depth i."""
    tails = [np.full(size + 1, np.inf)]
    tails[0][0] = 0.0
    for cap, cost in zip(reversed(caps), reversed(costs), strict=True):
        tails.append(add_item(tails[-1], min(max(1, math.ceil(cap / unit)), max(size, 1)), cost))
    return tails[::-1]


def solve_residues(p: Problem, cands: list[Candidate], tables, upper: int, det_s: float, wall_s: float,
                   known: list[tuple[Candidate, int]] | None = None, engine: str = ENGINE,
                   max_nodes: int = MAX_NODES) -> ResidueResult | None:
    """The residue model of every plan costing ≤ ``upper`` (price units); None when the enumeration is too large.
    One worker (HiGHS, or CP-SAT), a fixed seed and a work limit (``engines.run``): the same result on any machine.
    ``known``: the replicas of a known plan (any cost), added as options and given as the search's hint, so the
    model holds at least that plan."""
    lb_total = sum(float(t[0][-1]) for t in tables.values())
    coupling = coupling_offers(cands)
    covers: dict[str, list[tuple[Candidate, int]]] = {}
    for c, k in known or []:
        covers.setdefault(c.workload, []).append((c, k))
    steps = [0]
    opts = options_of(p, cands, tables, upper - lb_total, coupling, covers, max_nodes, steps)
    if opts is None:
        return None
    if any(not o for o in opts.values()):  # a workload has no cover within the slack: no plan costs ≤ upper
        return ResidueResult({}, upper + 1, True, 0, steps[0])
    model = cp_model.CpModel()
    ys: list[tuple[cp_model.IntVar, tuple]] = []
    terms = []
    offset = 0  # Σ_w its cheapest option: the objective counts each option's excess over it (small numbers)
    load: dict[int, list] = {i: [] for i in range(len(coupling))}
    for w in p.workloads:
        row = []
        least = min(full for full, _ in opts[w.name].values())
        offset += least
        for sig, (full, cover) in sorted(opts[w.name].items()):
            y = model.NewBoolVar("")
            row.append(y)
            ys.append((y, cover))
            if full > least:
                terms.append((full - least) * y)
            for i, r in enumerate(sig):
                if r:
                    load[i].append(r * y)
        model.AddExactlyOne(row)
    first = {(c.provider, c.offer): c for c in cands}
    for i, key in enumerate(coupling):
        if load[i]:  # the instances that hold every option's remainder GPUs on this offer
            q = model.NewIntVar(0, len(load[i]), "")
            model.Add(sum(load[i]) <= first[key].gpus_per_instance * q)
            terms.append(price_units(first[key]) * q)
    model.Minimize(sum(terms))
    variables = [y for y, _ in ys]
    hint = None
    if covers:
        index = {k: i for i, k in enumerate(coupling)}
        mine = {opts[w][signature(cover, index)[0]][1] for w, cover in covers.items()}
        hint = {y.Index(): int(cover in mine) for y, cover in ys}
    stage = run_stage(model, variables, det_s, wall_s, hint, engine, workers=1, gap=0.0, params=CP_SAT_PARAMS)
    options = len(ys)
    if stage.status == cp_model.INFEASIBLE:
        return ResidueResult({}, upper + 1, True, options, steps[0])
    bound = min(math.ceil(stage.bound - 1e-6) + offset, upper + 1) if math.isfinite(stage.bound) else 0
    counts: dict[str, int] = {}
    for y, cover in ys:
        if stage.values.get(y.Index()):
            for cid, k in cover:
                counts[cid] = counts.get(cid, 0) + k
    return ResidueResult(dict(sorted(counts.items())), bound, stage.status == cp_model.OPTIMAL, options, steps[0],
                         stage.wall_bound)
