"""What-if sweeps: vary workload or constraint fields over a grid and plan every point.

A ``--vary KEY=v1,v2,…`` key is a dotted field path. ``constraints.X`` changes the fleet constraints;
``NAME/field`` changes one workload; any other key changes every workload (``slo.tpot_ms``,
``rate_rps``, ``input_tokens``, ``weights``…). Values are parsed as YAML scalars.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from gpuplan.optimizer.errors import InfeasibleError, InputError
from gpuplan.optimizer.parallel import in_processes
from gpuplan.optimizer.planning.planner import build_plan
from gpuplan.optimizer.planning.workload import Fleet, parse_fleet
from gpuplan.optimizer.tables import Tables
from pydantic import BaseModel

from gpuplan.safeio import load_yaml, read_yaml

MAX_POINTS = 10_000  # a grid is solved point by point; beyond this it is a typo, not a study


class SweepPoint(BaseModel):
    values: dict[str, Any]
    status: str
    total_usd_per_hour: float | None = None
    usd_per_mtok_output: float | None = None
    total_gpus: int | None = None
    gpu_mix: str | None = None
    reason: str | None = None

    def flat(self) -> dict[str, Any]:
        return {**self.values, **self.model_dump(exclude={"values"})}


class SweepResult(BaseModel):
    keys: list[str]
    points: list[SweepPoint]

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([p.flat() for p in self.points])


def parse_vary(items: Sequence[str]) -> dict[str, list[Any]]:
    """['slo.tpot_ms=20,30'] → {'slo.tpot_ms': [20, 30]}."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not key.strip() or not values.strip():
            raise InputError(f"--vary '{item}': expected KEY=v1,v2,...")
        key = key.strip()
        if key in grid:
            raise InputError(f"--vary '{key}' is given twice: list all its values in one --vary {key}=v1,v2,...")
        cells = [v.strip() for v in values.split(",")]
        if not all(cells):
            raise InputError(f"--vary '{item}': an empty value between commas")
        grid[key] = [load_yaml(v, f"--vary '{key}'") for v in cells]
    if not grid:
        raise InputError("give at least one --vary KEY=v1,v2,...")
    return grid


def _set(target: dict[str, Any], path: list[str], value: Any, key: str) -> None:
    node = target
    for part in path[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise InputError(f"--vary '{key}': '{part}' is not a mapping")
        node = child
    node[path[-1]] = value


def apply_point(base: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A copy of the raw workload file with the point's values set."""
    data = yaml.safe_load(yaml.safe_dump(base))
    names = [w.get("name") for w in data.get("workloads", [])]
    for key, value in values.items():
        if key.startswith("constraints."):
            data.setdefault("constraints", {})
            _set(data["constraints"], key.split(".")[1:], value, key)
        elif "/" in key:
            name, field = key.split("/", 1)
            if name not in names:
                raise InputError(f"--vary '{key}': no workload named '{name}'")
            _set(data["workloads"][names.index(name)], field.split("."), value, key)
        else:
            for w in data["workloads"]:
                _set(w, key.split("."), value, key)
    return data


def _solve_point(args: tuple[dict[str, Any], dict[str, Any], str, Tables, float]) -> SweepPoint:
    base, values, source, tables, time_limit = args
    fleet = parse_fleet(apply_point(base, values), f"{source} with {values}")
    try:
        report = build_plan(fleet, tables, time_limit_s=time_limit)
    except InfeasibleError as e:
        return SweepPoint(values=values, status="infeasible", reason=str(e).splitlines()[0][:300])
    mix: dict[str, int] = {}
    for i in report.instances:
        mix[i.gpu] = mix.get(i.gpu, 0) + i.count * i.gpus_per_instance
    return SweepPoint(values=values, status=report.status, total_usd_per_hour=report.total_usd_per_hour,
                      usd_per_mtok_output=report.usd_per_mtok_output, total_gpus=report.total_gpus,
                      gpu_mix=", ".join(f"{n} × {g}" for g, n in sorted(mix.items())))


def sweep(base: dict[str, Any], grid: dict[str, list[Any]], tables: Tables, source: str = "workloads",
          workers: int = 1, time_limit_s: float = 10.0,
          progress: Callable[[int, int], None] | None = None) -> SweepResult:
    """Plan every point of the grid (cartesian product), in parallel processes with ``workers`` > 1."""
    if workers < 1:
        raise InputError(f"--workers must be ≥ 1, got {workers}")
    keys = list(grid)
    size = math.prod(len(v) for v in grid.values())
    if size > MAX_POINTS:
        raise InputError(f"--vary: the grid has {size:,} points, more than {MAX_POINTS:,}; vary fewer values")
    points = [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(grid[k] for k in keys))]
    parse_fleet(apply_point(base, points[0]), source)  # fail fast on bad keys or values
    jobs = [(base, values, source, tables, time_limit_s) for values in points]
    return SweepResult(keys=keys, points=in_processes(_solve_point, jobs, workers, progress))


def load_raw(path: Path) -> dict[str, Any]:
    """The workload file as plain data (validated once as a Fleet)."""
    from gpuplan.optimizer.planning.workload import load_fleet

    load_fleet(path)
    return read_yaml(path)


def fleet_to_raw(fleet: Fleet) -> dict[str, Any]:
    """The fleet as plain data; a profile read from a CSV is kept inline only."""
    return fleet.model_dump(mode="json", exclude_none=True, exclude={"workloads": {"__all__": {"rate_profile_csv"}}})
