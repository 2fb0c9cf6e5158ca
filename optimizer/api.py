"""The Python API for notebooks: the CLI's commands as functions returning pydantic objects.

Every result has ``.to_frame()`` (pandas); charts are in ``gpuplan.optimizer.charts``. Options are
checked like the CLI's: an unknown keyword (``budget=5``), a value outside its choices (``tier="cheap"``)
or a non-finite number raises ``InputError`` (a ``ValueError``) that names the option.

    from gpuplan.optimizer import plan, candidates, memory, perf, sweep, procure, simulate
    report = plan("examples/fleet.yaml", tier="spot")
    report.to_frame()
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import pandas as pd
from gpuplan.models.breakdown import Mode
from gpuplan.models.catalog import Model
from gpuplan.optimizer.errors import InputError
from gpuplan.optimizer.planning.candidate_gen import Candidate, CandidateSet
from gpuplan.optimizer.planning.day import DayPlan, plan_day
from gpuplan.optimizer.planning.planner import PlanReport, all_candidates, build_plan
from gpuplan.optimizer.planning.procurement import ProcureReport
from gpuplan.optimizer.planning.procurement import procure as _procure
from gpuplan.optimizer.planning.sweeps import SweepResult, fleet_to_raw
from gpuplan.optimizer.planning.sweeps import sweep as _sweep
from gpuplan.optimizer.planning.workload import Constraints, Fleet, load_fleet, parse_fleet
from gpuplan.optimizer.serving import deployment, simulation
from gpuplan.optimizer.serving.deployment import MemoryReport, PerfReport
from gpuplan.optimizer.serving.simulation import MAX_RECV_INTERVAL, SimReport
from gpuplan.optimizer.tables import DEFAULT, Tables
from pydantic import BaseModel, ConfigDict, Field, ValidationError, validate_call

F = TypeVar("F", bound=Callable[..., Any])
Seconds = Annotated[float, Field(gt=0, le=86_400)]
_CALL_CONFIG = ConfigDict(arbitrary_types_allowed=True, allow_inf_nan=False)


def _describe(err: ValidationError, valid: list[str]) -> str:
    """'unknown option 'budget' (valid: …)' or 'option 'tier': Input should be …' from the first error."""
    first = err.errors()[0]
    name = ".".join(str(p) for p in first["loc"] if not isinstance(p, int)) or "?"
    if first["type"] in ("unexpected_keyword_argument", "extra_forbidden"):
        return f"unknown option '{name}' (valid: {', '.join(valid)})"
    return f"option '{name}': {first['msg']}"


def checked(func: F) -> F:
    """Validate a call's arguments against the signature (types, ranges, choices, no unknown keywords);
    a bad argument becomes an ``InputError`` naming it."""
    validated = validate_call(config=_CALL_CONFIG)(func)
    code = func.__code__
    params = list(code.co_varnames[: code.co_argcount + code.co_kwonlyargcount])

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return validated(*args, **kwargs)
        except ValidationError as err:
            if err.title != func.__name__:
                raise
            raise InputError(f"{func.__name__}(): {_describe(err, params)}") from None

    return wrapper  # type: ignore[return-value]


__all__ = ["candidates", "fleet", "memory", "perf", "plan", "procure", "simulate", "sweep"]

Workloads = str | Path | dict[str, Any] | Fleet


def fleet(workloads: Workloads, **constraints: Any) -> Fleet:
    """A Fleet from a YAML path, a dict shaped like the file, or a Fleet; keywords override its
    ``constraints`` (validated: an unknown name or a bad value raises ``InputError``).

    >>> f = fleet("examples/fleet.yaml", tier="spot", max_gpus={"h100-sxm": 16})
    >>> f.constraints.tier
    'spot'
    """
    if isinstance(workloads, Fleet):
        f = workloads
    elif isinstance(workloads, dict):
        f = parse_fleet(workloads, "workloads")
    elif isinstance(workloads, str | Path):
        f = load_fleet(Path(workloads))
    else:
        raise InputError(f"workloads must be a path, a dict or a Fleet, got {type(workloads).__name__}")
    if constraints:
        try:
            merged = Constraints.model_validate({**f.constraints.model_dump(exclude_unset=True), **constraints})
        except ValidationError as err:
            raise InputError(f"constraints: {_describe(err, list(Constraints.model_fields))}") from None
        f = f.model_copy(update={"constraints": merged})
    return f


@checked
def memory(model: str | Model, weights: str = "bf16", kv: str = "bf16", context: int = 4096, batch: int = 1,
           mode: Mode = "inference", gpu: str | None = None, gpus: int = 1, overhead_fraction: float | None = None,
           optimizer: Literal["adamw", "sgd"] = "adamw", zero_stage: Literal[0, 1, 2, 3] = 0,
           checkpointing: bool = True, lora_rank: Annotated[int, Field(ge=1)] = 16, engine: str | None = None,
           tables: Tables = DEFAULT) -> MemoryReport:
    """Memory breakdown of a model at a context and batch; with ``gpu``, fit and max sequences
    (``gpuplan memory``).

    >>> r = memory("llama-3.1-8b", weights="fp8", context=8192, gpu="h100-sxm")
    >>> r.fits
    True
    """
    return deployment.memory(model, weights, kv, context, batch, mode, gpu, gpus, overhead_fraction, optimizer,
                             zero_stage, checkpointing, lora_rank, engine, tables)


@checked
def perf(model: str | Model, gpu: str, weights: str = "bf16", kv: str = "bf16", tp: Annotated[int, Field(ge=1)] = 1,
         input_tokens: Annotated[int, Field(ge=1)] = 1024, output_tokens: Annotated[int, Field(ge=1)] = 256,
         batch: Annotated[int, Field(ge=1)] = 1, engine: str | None = None, tpot_ms: float | None = None,
         utilization: Annotated[float, Field(ge=0, lt=1)] = 0.0, tables: Tables = DEFAULT,
         cuda_graphs: bool = True) -> PerfReport:
    """TPOT, TTFT and throughput of one replica (``gpuplan perf``); ``cuda_graphs`` False: a server without CUDA
    graphs.

    >>> r = perf("llama-3.1-8b", "h100-sxm", batch=32)
    >>> r.bound in ("memory", "compute")
    True
    """
    return deployment.perf(model, gpu, weights, kv, tp, input_tokens, output_tokens, batch, engine, tpot_ms,
                           utilization, tables, cuda_graphs=cuda_graphs)


@checked
def simulate(model: str | Model, gpu: str, weights: str = "bf16", kv: str = "bf16",
             tp: Annotated[int, Field(ge=1)] = 1, input_tokens: Annotated[int, Field(ge=1)] = 1024,
             output_tokens: Annotated[int, Field(ge=1)] = 256, rate_rps: Annotated[float, Field(gt=0)] | None = None,
             concurrency: Annotated[int, Field(ge=1)] | None = None, trace: str | Path | None = None,
             requests: Annotated[int, Field(ge=1)] | None = None, seed: int = 0, engine: str | None = None,
             max_num_seqs: Annotated[int, Field(ge=1)] | None = None,
             max_batched_tokens: Annotated[int, Field(ge=1)] | None = None,
             range_ratio: Annotated[float, Field(ge=0, lt=1)] = 0.0, lengths_csv: str | Path | None = None,
             tables: Tables = DEFAULT, ep: Annotated[int, Field(ge=1)] = 1,
             attn_dp: Annotated[int, Field(ge=1)] | None = None, dataset: str | None = None,
             cuda_graphs: bool = True, prompt_pool: Annotated[int, Field(ge=1)] | None = None,
             engine_version: str | None = None,
             mem_fraction: Annotated[float, Field(gt=0, le=1)] | None = None,
             recv_interval: Annotated[int, Field(ge=1, le=MAX_RECV_INTERVAL)] = 1) -> SimReport:
    """Continuous-batching simulation of one replica (``gpuplan simulate``): give one of ``rate_rps`` (open
    loop, Poisson), ``concurrency`` (closed loop) or ``trace`` (a CSV of arrival times); ``ep`` > 1 runs the
    MoE layers expert-parallel with data-parallel attention; ``cuda_graphs`` False: a server without CUDA graphs;
    ``prompt_pool`` P: prompts drawn from P distinct ones, repeats served from the prefix cache;
    ``engine_version``: the engine release to model; ``mem_fraction``: the server's memory fraction;
    ``recv_interval``: SGLang's ``--scheduler-recv-interval`` (decode steps between polls for new requests).

    >>> r = simulate("llama-3.1-8b", "h100-sxm", input_tokens=1000, output_tokens=200, rate_rps=5, requests=200)
    >>> r.ttft_ms.p99 >= r.ttft_ms.p90 >= r.ttft_ms.p50
    True
    """
    return simulation.simulate(model, gpu, weights, kv, tp, input_tokens, output_tokens, rate_rps, concurrency, trace,
                               requests, seed, engine, max_num_seqs, max_batched_tokens, range_ratio, lengths_csv,
                               tables, ep, attn_dp, engine_version=engine_version, dataset=dataset,
                               cuda_graphs=cuda_graphs, prompt_pool=prompt_pool, mem_fraction=mem_fraction,
                               recv_interval=recv_interval)


class _Options(BaseModel):
    """The non-constraint options of plan/sweep/procure, checked like the CLI's."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)

    objective: Literal["min-cost", "max-throughput"] = "min-cost"
    budget_usd_per_hour: float | None = Field(default=None, gt=0)
    time_limit_s: Seconds = 10.0
    workers: int = Field(default=1, ge=1, le=1024)
    months: int = Field(default=36, ge=1, le=1200)


def _options(**values: Any) -> None:
    try:
        _Options.model_validate(values)
    except ValidationError as err:
        raise InputError(_describe(err, list(_Options.model_fields))) from None


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
    """The feasible, non-dominated candidates per workload (``gpuplan candidates``); keywords as in ``fleet``.

    >>> table = candidates("examples/steady.yaml", tier="spot")
    >>> len(table.to_frame()) > 0
    True
    """
    sets, _ = all_candidates(fleet(workloads, **constraints), tables)
    return CandidateTable(sets=sets)


def plan(workloads: Workloads, objective: str = "min-cost", budget_usd_per_hour: float | None = None,
         time_limit_s: float = 10.0, tables: Tables = DEFAULT, **constraints: Any) -> PlanReport | DayPlan:
    """The optimal fleet (``gpuplan plan``); a DayPlan when a workload has an hourly rate profile.
    Keywords as in ``fleet``. Raises ``InfeasibleError`` with the binding constraint when there is none.

    >>> report = plan("examples/steady.yaml", tier="spot")
    >>> report.status in ("optimal", "feasible")
    True
    """
    _options(objective=objective, budget_usd_per_hour=budget_usd_per_hour, time_limit_s=time_limit_s)
    f = fleet(workloads, **constraints)
    if any(w.rate_profile for w in f.workloads):
        return plan_day(f, tables, time_limit_s)
    return build_plan(f, tables, objective, time_limit_s, budget_usd_per_hour)


def sweep(workloads: Workloads, vary: dict[str, list[Any]], workers: int = 1, time_limit_s: float = 10.0,
          tables: Tables = DEFAULT) -> SweepResult:
    """Plan every point of the grid (``gpuplan sweep``); keys as in ``--vary``.

    >>> result = sweep("examples/steady.yaml", {"slo.tpot_ms": [30, 60]})
    >>> len(result.points)
    2
    """
    _options(workers=workers, time_limit_s=time_limit_s)
    base = fleet_to_raw(fleet(workloads))
    return _sweep(base, {k: list(v) for k, v in vary.items()}, tables, "workloads", workers, time_limit_s)


def procure(workloads: Workloads, months: int = 36, tables: Tables = DEFAULT, time_limit_s: float = 10.0,
            **constraints: Any) -> ProcureReport:
    """Own vs reserve vs rent for the same demand (``gpuplan procure``); keywords as in ``fleet``.

    >>> report = procure("examples/steady.yaml", months=36)
    >>> {o.tier for o in report.options} >= {"on_demand", "owned"}
    True
    """
    _options(months=months, time_limit_s=time_limit_s)
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
