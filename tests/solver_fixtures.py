"""Synthetic workloads and candidates for solver tests (shared by the packing and brute-force tests)."""

from __future__ import annotations

from gpuplan.optimizer.planning.candidate_gen import Candidate
from gpuplan.optimizer.planning.solver import Problem
from gpuplan.optimizer.planning.workload import SLO, Workload
from hypothesis import strategies as st

Offer = tuple[str, str, int, float]  # provider, gpu, GPUs per instance, $/h per instance


def workload(name: str, rate: float) -> Workload:
    """A small Llama 3.1 8B workload at ``rate`` req/s."""
    return Workload(name=name, model="llama-3.1-8b", input_tokens=100, output_tokens=100, rate_rps=rate,
                    slo=SLO(ttft_ms=1000, tpot_ms=100))


def candidate(i: int, workload: str, offer: Offer, tp: int, cap: float) -> Candidate:
    """A TP-``tp`` replica on ``offer`` serving ``cap`` req/s, priced at its GPU share of the instance."""
    provider, gpu, gpi, price = offer
    return Candidate(id=f"{workload}/c{i}", workload=workload, model="m", gpu=gpu, provider=provider,
                     offer=f"{gpu}x{gpi}", region=None, weights="bf16", kv="bf16", tp=tp, gpus_per_replica=tp,
                     gpus_per_instance=gpi, instance_usd_per_hour=price, usd_per_hour=price * tp / gpi, engine="vllm",
                     batch=8, tpot_ms=10, ttft_ms=100, bound="memory", capacity_req_s=cap, capacity_sequences=8,
                     capacity_tok_s=cap * 100, max_model_len=200, source="test", as_of="2026-01-01")


# Hypothesis pieces of the random solver problems (test_solver: brute force; test_packing: exact assignment).
# Each test keeps its own ranges (instance sizes, prices, rates, caps) and its own way of drawing candidates.
GPUS = ("g1", "g2")


def offer_lists(sizes: list[int], max_usd_per_hour: float, max_offers: int) -> st.SearchStrategy[list[Offer]]:
    """1 to ``max_offers`` offers with distinct (provider, gpu, GPUs per instance), 0.5 to ``max_usd_per_hour``."""
    one = st.tuples(st.sampled_from(["p1", "p2"]), st.sampled_from(GPUS), st.sampled_from(sizes),
                    st.floats(0.5, max_usd_per_hour).map(lambda x: round(x, 2)))
    return st.lists(one, min_size=1, max_size=max_offers, unique_by=lambda o: o[:3])


def draw_workloads(draw: st.DrawFn, max_rate: float) -> list[Workload]:
    """One or two workloads at 0.5 to ``max_rate`` req/s."""
    names = ["w1", "w2"][: draw(st.integers(1, 2))]
    return [workload(n, round(draw(st.floats(0.5, max_rate)), 2)) for n in names]


def draw_candidates(draw: st.DrawFn, workloads: list[Workload], offers: list[Offer], per_workload: tuple[int, int],
                    tps: tuple[int, ...], cap_range: tuple[float, float], tp_exponent: float = 0.0) -> list[Candidate]:
    """``per_workload`` (min, max) candidates for each workload on offers drawn from ``offers``, TP from ``tps`` (no
    wider than the instance), capacity drawn from ``cap_range`` × tp^``tp_exponent`` req/s, rounded to 0.01."""
    cands: list[Candidate] = []
    for w in workloads:
        for _ in range(draw(st.integers(*per_workload))):
            o = draw(st.sampled_from(offers))
            tp = draw(st.sampled_from([t for t in tps if t <= o[2]]))
            cap = round(draw(st.floats(*cap_range)) * tp ** tp_exponent, 2)
            cands.append(candidate(len(cands), w.name, o, tp, cap))
    return cands


def draw_problem(draw: st.DrawFn, workloads: list[Workload], cands: list[Candidate], max_cap: int,
                 budget: tuple[float, float]) -> Problem:
    """The problem over ``cands`` with drawn GPU caps (0 to ``max_cap`` on some GPUs), an optional $/h budget in
    ``budget`` and the one-GPU-type-per-workload switch."""
    caps = {g: draw(st.integers(0, max_cap)) for g in GPUS if draw(st.booleans())}
    limit = draw(st.one_of(st.none(), st.floats(*budget).map(lambda x: round(x, 2))))
    return Problem(workloads, cands, "on_demand", caps, limit, draw(st.booleans()))
