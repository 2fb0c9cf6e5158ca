"""Synthetic workloads and candidates for solver tests (shared by the packing and brute-force tests)."""

from __future__ import annotations

from gpuplan.optimizer.planning.candidate_gen import Candidate
from gpuplan.optimizer.planning.workload import SLO, Workload

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
