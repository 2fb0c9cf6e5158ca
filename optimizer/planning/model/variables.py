"""The fleet model's variables: integer replicas r_c per candidate and whole instances n_o per offer.

  r_c ∈ {0, …, ub_c}   ub_c = replicas the workload needs from c alone, within availability and GPU caps
  n_o ∈ {0, …, ub_o}   ub_o = instances holding every r_c at its bound, within availability and GPU caps
Packing adds x_{o,p} (instances of type p, ``constraints.pack_offer``), one GPU type per workload y_{w,g},
the GPU-type limit z_g, max-throughput served_w and φ; they are kept in ``FleetModel`` so every stage reads and
hints the same variables.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gpuplan.optimizer.planning.candidate_gen import Candidate
from gpuplan.optimizer.planning.model.global_constraints import instance_ub, replica_ub
from gpuplan.optimizer.planning.model.problem import Problem
from gpuplan.optimizer.planning.workload import Workload
from ortools.sat.python import cp_model


@dataclass
class FleetModel:
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
    replica_ubs: dict[str, int] = field(default_factory=dict)
    instance_ubs: dict[tuple[str, str], int] = field(default_factory=dict)

    def variables(self) -> list[cp_model.IntVar]:
        """Every variable a stage reports, in a fixed order."""
        return [*self.r.values(), *self.n.values(), *self.aux, *self.served.values(),
                *([self.phi] if self.phi is not None else [])]


def add_replicas(model: cp_model.CpModel, p: Problem, cands: list[Candidate],
                 by_name: dict[str, Workload]) -> tuple[dict[str, cp_model.IntVar], dict[str, int]]:
    ubs = {c.id: replica_ub(c, by_name[c.workload], p) for c in cands}
    return {c.id: model.NewIntVar(0, ubs[c.id], f"r[{c.id}]") for c in cands}, ubs


def add_instances(model: cp_model.CpModel, p: Problem, key: tuple[str, str], group: list[Candidate],
                  ubs: dict[str, int]) -> tuple[cp_model.IntVar, int]:
    ub = instance_ub(group, ubs, p)
    return model.NewIntVar(0, ub, f"n[{key[0]}:{key[1]}]"), ub
