"""An independent exact model of the fleet problem, for tests: every replica is assigned to a concrete instance.

Nothing here comes from the solver: no packing rule, no bounds, a different engine (HiGHS through MathOpt).
Instance i of offer o is bought (b_{o,i} = 1) or not; y_{c,i} replicas of candidate c sit on it and use
Σ_c tp_c · y_{c,i} ≤ g_o · b_{o,i} of its GPUs. Symmetry: b_{o,i} ≥ b_{o,i+1}.
"""

from __future__ import annotations

import functools
import math

from ortools.math_opt.python import mathopt


def exact_min_cost(problem) -> float | None:
    """Least $/h of a fleet meeting every demand and constraint of ``problem`` (solver.Problem), or None."""
    model = mathopt.Model()
    by_name = {w.name: w for w in problem.workloads}
    offers: dict[tuple[str, str], list] = {}
    for c in problem.candidates:
        offers.setdefault((c.provider, c.offer), []).append(c)
    ub = {c.id: math.ceil(by_name[c.workload].rate_rps / c.capacity_req_s - 1e-9) for c in problem.candidates}
    cost = 0
    supply: dict[str, object] = {w.name: 0 for w in problem.workloads}
    gpus_of: dict[str, object] = {}
    used: dict[tuple[str, str], list] = {}  # (workload, gpu) → replica variables
    for _key, group in sorted(offers.items()):
        g = group[0].gpus_per_instance
        slots = sum(ub[c.id] for c in group)
        if group[0].offer_max_instances is not None:
            slots = min(slots, group[0].offer_max_instances)
        prev = None
        for _ in range(slots):
            b = model.add_binary_variable()
            if prev is not None:
                model.add_linear_constraint(prev >= b)
            prev = b
            load = 0
            for c in group:
                y = model.add_integer_variable(lb=0, ub=g // c.tp)
                load = load + c.tp * y
                supply[c.workload] = supply[c.workload] + c.capacity_req_s * y
                used.setdefault((c.workload, c.gpu), []).append(y)
            model.add_linear_constraint(load <= g * b)
            cost = cost + group[0].instance_usd_per_hour * b
            gpus_of[group[0].gpu] = gpus_of.get(group[0].gpu, 0) + g * b
    for w in problem.workloads:
        model.add_linear_constraint(supply[w.name] >= w.rate_rps - 1e-9)
    for gpu, cap in problem.max_gpus.items():
        if gpu in gpus_of:
            model.add_linear_constraint(gpus_of[gpu] <= cap)
    if problem.budget_usd_per_hour is not None:
        model.add_linear_constraint(cost <= problem.budget_usd_per_hour + 1e-9)
    if problem.single_gpu_type:
        for w in problem.workloads:
            pick = []
            for (wname, _gpu), ys in sorted(used.items()):
                if wname != w.name:
                    continue
                on = model.add_binary_variable()
                pick.append(on)
                for y in ys:
                    model.add_linear_constraint(y <= 1000 * on)
            if pick:
                model.add_linear_constraint(sum(pick) <= 1)
    model.minimize(cost)
    result = mathopt.solve(model, mathopt.SolverType.HIGHS)
    if result.termination.reason == mathopt.TerminationReason.INFEASIBLE:
        return None
    assert result.termination.reason == mathopt.TerminationReason.OPTIMAL, result.termination
    return result.objective_value()


def packable(gpus_per_instance: int, instances: int, tps: list[int]) -> bool:
    """Can these replicas (one TP degree each) be placed on ``instances`` bins of ``gpus_per_instance``?
    Depth-first search, largest first, over the bins' free space as a sorted tuple (bins with equal free
    space are interchangeable), memoised on (next item, free space) so no state is searched twice."""
    return _packable(gpus_per_instance, instances, tuple(sorted(tps, reverse=True)))


@functools.lru_cache(maxsize=100_000)
def _packable(gpus_per_instance: int, instances: int, items: tuple[int, ...]) -> bool:
    if sum(items) > gpus_per_instance * instances:
        return False

    @functools.cache
    def place(i: int, free: tuple[int, ...]) -> bool:
        if i == len(items):
            return True
        return any(place(i + 1, tuple(sorted((*free[:b], room - items[i], *free[b + 1:]))))
                   for b, room in enumerate(free) if room >= items[i] and (b == 0 or free[b - 1] != room))

    return place(0, (gpus_per_instance,) * instances)
