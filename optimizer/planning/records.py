"""The deployment record shared by hourly plans (``planner.Deployment``) and daily plans
(``launch.daily.DayDeployment``): what runs where (``Placement``) and how to launch it (``LaunchSpec``).

Each record lists its bases from last to first JSON group: pydantic orders fields by the reversed method
resolution order, so ``class Deployment(LaunchSpec, _Capacity, Placement)`` serialises the placement, then the
capacity fields, then the launch fields — the order of the JSON contract.
"""

from __future__ import annotations

from gpuplan.optimizer.planning.candidate_gen import Candidate
from pydantic import BaseModel


class Placement(BaseModel):
    """The candidate and where it runs: offer, weight and KV formats, TP degree."""

    candidate: str
    gpu: str
    provider: str
    offer: str
    region: str | None
    weights: str
    kv: str
    tp: int


class LaunchSpec(BaseModel):
    """How one instance launches it (``launch.commands.launch_fields``)."""

    launch: str  # the command one instance runs (its replicas via engine DP), or '# why not'
    checkpoint: str | None = None
    engine_version: str | None = None
    max_model_len: int = 0
    memory_fraction: float = 0.0
    gpus_per_instance: int = 0
    ep: int = 1


def placement_of(c: Candidate) -> dict[str, object]:
    """The ``Placement`` fields of a candidate."""
    return {"candidate": c.id, "gpu": c.gpu, "provider": c.provider, "offer": c.offer, "region": c.region,
            "weights": c.weights, "kv": c.kv, "tp": c.tp}
