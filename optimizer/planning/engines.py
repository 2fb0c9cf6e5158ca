"""Two MIP engines inside OR-Tools for one model: CP-SAT, and HiGHS through MathOpt.

The models are built once with the CP-SAT API and contain only linear constraints over integer (and 0/1)
variables, so the CP-SAT proto translates one-to-one into a MathOpt model for HiGHS: each variable keeps its
bounds and integrality, each linear constraint its coefficients and range, the objective its sense, offset and
scaling. Which engine plans is chosen by measurement (README, "The optimiser").
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from dataclasses import dataclass

from gpuplan.optimizer.planning.interrupt import run_interruptibly, solve_interruptibly
from ortools.math_opt.python import mathopt
from ortools.sat.python import cp_model
from ortools.util.python.solve_interrupter import SolveInterrupter

WORKERS = 8  # CP-SAT: fixed, so a plan does not depend on the machine's core count
SEED = 1
INT_MAX = 2**62
DEBUG = False


@dataclass
class Stage:
    status: int  # cp_model status codes (OPTIMAL, FEASIBLE, INFEASIBLE, UNKNOWN)
    values: dict[int, int]  # variable index → value
    objective: float
    bound: float
    wall_bound: bool  # the wall clock, not the deterministic limit, stopped the search


def _apply_hint(model: cp_model.CpModel, hint: dict[int, int] | None) -> None:
    model.ClearHints()
    if hint:
        for i, v in sorted(hint.items()):
            model.Proto().solution_hint.vars.append(i)
            model.Proto().solution_hint.values.append(v)


def cp_sat(model: cp_model.CpModel, variables: list, det_s: float, wall_s: float, hint: dict[int, int] | None,
           workers: int = WORKERS, params: dict | None = None) -> Stage:
    """CP-SAT within ``det_s`` deterministic seconds (reproducible) and ``wall_s`` wall seconds (safety net);
    ``params``: further CP-SAT parameters by name."""
    _apply_hint(model, hint)
    solver = cp_model.CpSolver()
    for name, value in sorted((params or {}).items()):
        setattr(solver.parameters, name, value)
    solver.parameters.num_workers = workers
    solver.parameters.random_seed = SEED
    solver.parameters.max_deterministic_time = max(det_s, 0.05)
    solver.parameters.max_time_in_seconds = max(wall_s, 0.05)
    solver.parameters.relative_gap_limit = 0.0
    start = time.perf_counter()
    status = solve_interruptibly(solver, model)
    wall_bound = (status not in (cp_model.OPTIMAL, cp_model.INFEASIBLE)
                  and time.perf_counter() - start >= 0.95 * wall_s
                  and solver.ResponseProto().deterministic_time < det_s)
    values = {}
    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        values = {v.Index(): solver.Value(v) for v in variables}
    return Stage(status, values, solver.ObjectiveValue() if values else math.nan, solver.BestObjectiveBound(),
                 wall_bound)


HIGHS_NODES_PER_DET = 50  # ≈ 100-200 nodes/s measured on a 12-workload fleet: ~20 % of the limit
HIGHS_GAP = 1e-3  # stop at a proven 0.1 % gap: the search then ends by its own rule, not the clock


def highs(model: cp_model.CpModel, variables: list, wall_s: float, hint: dict[int, int] | None,
          gap: float = HIGHS_GAP, node_limit: int | None = None) -> Stage:
    """HiGHS (MathOpt) on the same model, fixed seed; its branch and bound runs on one thread, so the result is
    the same on any machine whenever the search ends by optimality or the gap tolerance, not the wall limit."""
    proto = model.Proto()
    mo = mathopt.Model()
    xs = []
    for v in proto.variables:
        dom = list(v.domain)  # (the proto wrapper does not index from the end)
        xs.append(mo.add_integer_variable(lb=float(dom[0]), ub=float(dom[-1]) if dom[-1] < INT_MAX else math.inf))
    def lit(i: int):
        return xs[i] if i >= 0 else 1 - xs[~i]

    for c in proto.constraints:
        if len(c.enforcement_literal):
            raise ValueError("HiGHS adapter: no enforcement literals")
        if c.has_at_most_one() or c.has_exactly_one() or c.has_bool_or():
            lits = list((c.at_most_one if c.has_at_most_one() else c.exactly_one if c.has_exactly_one()
                         else c.bool_or).literals)
            total = mathopt.fast_sum(lit(i) for i in lits)
            lo = 1.0 if (c.has_exactly_one() or c.has_bool_or()) else -math.inf
            hi = math.inf if c.has_bool_or() else 1.0
            mo.add_linear_constraint(lb=lo, ub=hi, expr=total)
            continue
        if c.has_bool_and():
            for i in c.bool_and.literals:
                mo.add_linear_constraint(lb=1.0, ub=1.0, expr=mathopt.fast_sum([lit(i)]))
            continue
        if not c.has_linear():
            raise ValueError("HiGHS adapter: only linear and Boolean constraints")
        lin = c.linear
        expr = mathopt.fast_sum(float(coef) * xs[i] for i, coef in zip(lin.vars, lin.coeffs, strict=True))
        dom = list(lin.domain)
        if len(dom) != 2:
            raise ValueError("HiGHS adapter: only interval domains")
        mo.add_linear_constraint(lb=float(dom[0]) if dom[0] > -INT_MAX else -math.inf,
                                 ub=float(dom[1]) if dom[1] < INT_MAX else math.inf, expr=expr)
    obj = proto.objective
    sign = -1 if obj.scaling_factor < 0 else 1  # CP-SAT stores maximisation as a negated minimisation
    expr = mathopt.fast_sum(float(coef) * xs[i] for i, coef in zip(obj.vars, obj.coeffs, strict=True)) + obj.offset
    mo.minimize(expr)
    params = mathopt.SolveParameters(enable_output=DEBUG, time_limit=_td(max(wall_s, 0.05)), random_seed=SEED,
                                     relative_gap_tolerance=gap, absolute_gap_tolerance=0.99,
                                     node_limit=node_limit)
    mparams = None
    if hint:
        mparams = mathopt.ModelSolveParameters(solution_hints=[mathopt.SolutionHint(
            variable_values={xs[i]: float(v) for i, v in hint.items()})])
    result = _highs_interruptibly(mo, params, mparams)
    reason = result.termination.reason
    has = result.has_primal_feasible_solution()
    if DEBUG:
        print(f"highs: {result.termination.reason} {result.termination.limit} nodes {result.solve_stats.node_count}"
              f" {result.solve_stats.solve_time}")
    values = {}
    if has:
        sol = result.variable_values()
        values = {v.Index(): round(sol[xs[v.Index()]]) for v in variables}
    if reason == mathopt.TerminationReason.OPTIMAL:
        status = cp_model.OPTIMAL
    elif reason == mathopt.TerminationReason.INFEASIBLE:
        status = cp_model.INFEASIBLE
    else:
        status = cp_model.FEASIBLE if has else cp_model.UNKNOWN
    bound = result.termination.objective_bounds.dual_bound
    best = result.objective_value() if has else math.nan
    if has and abs(best - bound) < 1:  # integer objectives: a gap below one unit is a proof
        status = cp_model.OPTIMAL
    elif status == cp_model.OPTIMAL:
        status = cp_model.FEASIBLE  # stopped at the relative tolerance
    wall_bound = (reason in (mathopt.TerminationReason.FEASIBLE, mathopt.TerminationReason.NO_SOLUTION_FOUND)
                  and result.termination.limit == mathopt.Limit.TIME)
    return Stage(status, values, sign * best, sign * bound, wall_bound)


def run(model: cp_model.CpModel, variables: list, det_s: float, wall_s: float, hint: dict[int, int] | None,
        engine: str = "cp-sat", workers: int = WORKERS, gap: float = HIGHS_GAP, params: dict | None = None) -> Stage:
    """``det_s`` limits CP-SAT's deterministic time, and HiGHS's branch-and-bound nodes (HIGHS_NODES_PER_DET
    per unit): both are reproducible work limits; ``wall_s`` is the safety net."""
    if engine == "highs":
        try:
            return highs(model, variables, wall_s, hint, gap, max(1, int(HIGHS_NODES_PER_DET * det_s)))
        except (ValueError, RuntimeError, AttributeError):  # a model HiGHS cannot take: CP-SAT solves it
            pass
    return cp_sat(model, variables, det_s, wall_s, hint, workers, params)


@contextlib.contextmanager
def _quiet_stdout():
    """HiGHS prints some diagnostics with printf whatever its output options: keep them out of stdout, where
    the plan's JSON or CSV goes."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


HIGHS_GRACE_S = 0.5  # HiGHS checks the interrupter between steps; the daemon thread dies with the process


def _highs_interruptibly(mo: mathopt.Model, params, mparams):
    with _quiet_stdout():
        return _highs_in_thread(mo, params, mparams)


def _highs_in_thread(mo: mathopt.Model, params, mparams):
    """``mathopt.solve`` in a helper thread, so Ctrl-C and SIGTERM (delivered to the main thread) interrupt
    HiGHS and propagate instead of returning a plan (see ``interrupt``)."""
    interrupter = SolveInterrupter()
    return run_interruptibly(
        lambda: mathopt.solve(mo, mathopt.SolverType.HIGHS, params=params, model_params=mparams,
                              interrupter=interrupter),
        interrupter.interrupt, HIGHS_GRACE_S)


def _td(seconds: float):
    import datetime

    return datetime.timedelta(seconds=seconds)
