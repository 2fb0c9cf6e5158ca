"""The fleet problem as the solver sees it: inputs, result, and the integer units every model row uses.

Units are integers: $/h × 10⁴ (``PRICE_SCALE``) and req/s × 10⁶ (``RATE_SCALE``, µreq/s; capacity and demand
rounded to nearest: at 10⁻⁶ req/s per replica the rounding cannot buy a replica); concurrency workloads count
sequences. A replica's share of its instance price (``share_units``) is rounded down, so the share-cost cut
built on it stays valid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from gpuplan.optimizer.planning.candidate_gen import Candidate
from gpuplan.optimizer.planning.workload import Workload

PRICE_SCALE = 10_000  # $/h → 1e-4 $/h units
RATE_SCALE = 1_000_000  # req/s → µreq/s
PHI_SCALE = 1_000  # served fraction in ‰


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
    """One replica's capacity toward its workload: µreq/s (rate workloads) or sequences (concurrency)."""
    if w.rate_rps is not None:
        return round(c.capacity_req_s * RATE_SCALE)
    return c.capacity_sequences


def demand_units(w: Workload) -> int:
    return round(w.rate_rps * RATE_SCALE) if w.rate_rps is not None else int(w.concurrency or 0)


def price_units(c: Candidate) -> int:
    """One instance of the candidate's offer, in $/h × 10⁴."""
    return round(c.instance_usd_per_hour * PRICE_SCALE)


def share_units(c: Candidate) -> int:
    """A replica's share of its instance's price, rounded down (keeps the cut valid)."""
    return math.floor(c.instance_usd_per_hour * PRICE_SCALE * c.tp / c.gpus_per_instance)


def rank(c: Candidate, w: Workload) -> tuple[float, str]:
    """The tie-break order: cheapest $ per unit of capacity, then id."""
    return (c.usd_per_hour / max(cap_units(c, w), 1), c.id)


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
