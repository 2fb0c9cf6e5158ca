"""The Python API for notebooks: the CLI's commands as functions returning pydantic objects.

Every result has ``.to_frame()`` (pandas); charts are in ``gpuplan.optimizer.charts``.

    from gpuplan.optimizer import plan, candidates, memory, perf, sweep, procure
    report = plan("examples/fleet.yaml", tier="spot")
    report.to_frame()
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from gpuplan.optimizer.planning.candidate_gen import Candidate, CandidateSet
from gpuplan.optimizer.planning.day import DayPlan, plan_day
from gpuplan.optimizer.planning.planner import PlanReport, all_candidates, build_plan
from gpuplan.optimizer.planning.procurement import ProcureReport
from gpuplan.optimizer.planning.procurement import procure as _procure
from gpuplan.optimizer.planning.sweeps import SweepResult, fleet_to_raw
from gpuplan.optimizer.planning.sweeps import sweep as _sweep
from gpuplan.optimizer.planning.workload import Fleet, load_fleet, parse_fleet
from gpuplan.optimizer.serving.deployment import memory, perf
from gpuplan.optimizer.tables import DEFAULT, Tables
from pydantic import BaseModel

__all__ = ["candidates", "fleet", "memory", "perf", "plan", "procure", "sweep"]

Workloads = str | Path | dict[str, Any] | Fleet


def fleet(workloads: Workloads, **constraints: Any) -> Fleet:
    """A Fleet from a YAML path, a dict shaped like the file, or a Fleet; keyword overrides go to constraints."""
    if isinstance(workloads, Fleet):
        f = workloads
    elif isinstance(workloads, dict):
        f = parse_fleet(workloads, "workloads")
    else:
        f = load_fleet(Path(workloads))
    if constraints:
        f = f.model_copy(update={"constraints": f.constraints.model_copy(update=constraints)})
    return f


class CandidateTable(BaseModel):
    sets: list[CandidateSet]

    @property
    def candidates(self) -> list[Candidate]:
        return [c for s in self.sets for c in s.candidates]

    def to_frame(self) -> pd.DataFrame:
        df = pd.DataFrame([c.row() for c in self.candidates])
        if len(df):
            df["usd_per_mtok_output"] = df["usd_per_hour"] / (df["capacity_tok_s"] * 3600) * 1e6
        return df


def candidates(workloads: Workloads, tables: Tables = DEFAULT, **constraints: Any) -> CandidateTable:
    """The feasible, non-dominated candidates per workload (``gpuplan candidates``)."""
    sets, _ = all_candidates(fleet(workloads, **constraints), tables)
    return CandidateTable(sets=sets)


def plan(workloads: Workloads, objective: str = "min-cost", budget_usd_per_hour: float | None = None,
         time_limit_s: float = 10.0, tables: Tables = DEFAULT, **constraints: Any) -> PlanReport | DayPlan:
    """The optimal fleet (``gpuplan plan``); a DayPlan when a workload has an hourly rate profile.
    Raises ``InfeasibleError`` with the binding constraint when there is none."""
    f = fleet(workloads, **constraints)
    if any(w.rate_profile for w in f.workloads):
        return plan_day(f, tables, max(time_limit_s, 20.0))
    return build_plan(f, tables, objective, time_limit_s, budget_usd_per_hour)


def sweep(workloads: Workloads, vary: dict[str, list[Any]], workers: int = 1, time_limit_s: float = 10.0,
          tables: Tables = DEFAULT) -> SweepResult:
    """Plan every point of the grid (``gpuplan sweep``); keys as in ``--vary``."""
    base = fleet_to_raw(fleet(workloads))
    return _sweep(base, {k: list(v) for k, v in vary.items()}, tables, "workloads", workers, time_limit_s)


def procure(workloads: Workloads, months: int = 36, tables: Tables = DEFAULT, time_limit_s: float = 10.0,
            **constraints: Any) -> ProcureReport:
    """Own vs reserve vs rent for the same demand (``gpuplan procure``)."""
    return _procure(fleet(workloads, **constraints), tables, months, time_limit_s)


def fit(context: int = 8192, weights: str = "bf16", kv: str = "bf16", models: list[str] | None = None,
        gpus: list[str] | None = None, tier: str = "on_demand", tables: Tables = DEFAULT) -> pd.DataFrame:
    """``gpuplan fit`` as a frame: per (model, GPU) the smallest TP group that holds one ``context``-token
    sequence, its concurrent sequences, headroom (GiB) and the cheapest offer's $/h."""
    from gpuplan.models.catalog import load_catalog, resolve
    from gpuplan.optimizer.planning.fit import grid_rows, serving_grid

    chosen = [resolve(m) for m in models] if models else list(load_catalog().values())
    gpu_list = [tables.gpus.get(g) for g in gpus] if gpus else list(tables.gpus)
    grid = serving_grid(chosen, gpu_list, tables.formats.weight(weights), tables.formats.kv_format(kv), context)
    return pd.DataFrame(grid_rows(grid, tables.offers, tier))
