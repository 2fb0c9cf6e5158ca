"""Per-workload and per-offer rows of the fleet model.

  demand        Σ_{c ∈ w} cap_c · r_c ≥ demand_w                       every workload (``add_demand``)
  lower bound   Σ_{c ∈ w} share_c · r_c ≥ LB_w                         every workload (``bounds``; a valid cut)
  packing       n_o = Σ_p x_{o,p}; (L) and (S) rows of ``packing``     every offer (``pack_offer``: a replica
                sits inside one instance, exactly)
  one GPU type  y_{w,g} ∈ {0,1}, Σ_g y_{w,g} ≤ 1, r_c ≤ ub_c · y_{w,gpu(c)}   per workload, optional
  GPU types     z_g ∈ {0,1}, n_o ≤ ub_o · z_{gpu(o)}, Σ_g z_g ≤ K      (alternatives: fewest GPU types)
Regions, jurisdictions, providers and GPU allow-lists act before the model: candidates exist only on
offers that satisfy them.
"""

from __future__ import annotations

from gpuplan.optimizer.planning.candidate_gen import Candidate
from gpuplan.optimizer.planning.packing import is_chain_degree, layout
from ortools.sat.python import cp_model


def pack_offer(model: cp_model.CpModel, group: list[Candidate], r: dict, n_var, n_ub: int, aux: list) -> None:
    """Exact packing of one offer's replicas (``r``: candidate id → replicas) into ``n_var`` instances."""
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


def add_demand(model: cp_model.CpModel, capacity, demand: int) -> None:
    model.Add(capacity >= demand)


def add_lower_bound(model: cp_model.CpModel, mine: list[Candidate], r: dict, shares: dict[str, int], lb: int) -> None:
    """Σ_{c ∈ w} share_c · r_c ≥ LB_w (only when LB_w > 0: the row is otherwise empty)."""
    if lb:
        model.Add(sum(shares[c.id] * r[c.id] for c in mine) >= lb)


def add_single_gpu_type(model: cp_model.CpModel, mine: list[Candidate], rs: list[dict], ubs: list[dict],
                        aux: list) -> None:
    """One GPU type for this workload: y_g ∈ {0,1}, Σ_g y_g ≤ 1 and r ≤ ub · y_{gpu} for every replica
    variable in ``rs`` (one dict per period, candidate id → variable, with its bounds in ``ubs``)."""
    y = {g: model.NewBoolVar("") for g in sorted({c.gpu for c in mine})}
    aux.extend(y.values())
    for c in mine:
        for r, ub in zip(rs, ubs, strict=True):
            model.Add(r[c.id] <= ub[c.id] * y[c.gpu])
    model.Add(sum(y.values()) <= 1)


def add_gpu_type_limit(model: cp_model.CpModel, cands: list[Candidate], n: dict, n_ubs: dict,
                       offers: dict[tuple[str, str], list[Candidate]], k: int, aux: list) -> None:
    z = {g: model.NewBoolVar("") for g in sorted({c.gpu for c in cands})}
    aux.extend(z.values())
    for key, group in offers.items():
        model.Add(n[key] <= n_ubs[key] * z[group[0].gpu])
    model.Add(sum(z.values()) <= k)
