"""Which replicas run on which instance: the plan's instances, filled with its deployments' replicas.

The solver decides how many replicas of each deployment and how many instances of each offer; this
module places the replicas, per offer, first-fit with the largest TP first and the replicas of one
deployment one after another (so they share instances and run together by engine data parallelism).
With power-of-two TPs on power-of-two instances first-fit decreasing is exact: it uses the plan's
instance count; ``instances_needed`` lets callers check that for any plan. An instance that ends up holding one
deployment only runs as many of its replicas as fit: the instance is paid whole, so its spare GPUs
serve at no extra cost. An instance holding several deployments runs one engine per deployment,
each on its own GPUs and port.
"""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel


class Placed(Protocol):
    """What packing needs of a deployment (a plan's Deployment has all of it)."""

    candidate: str
    provider: str
    offer: str
    region: str | None
    gpu: str
    tp: int
    replicas: int
    gpus_per_instance: int


class Slot(BaseModel):
    workload: str
    candidate: str
    tp: int
    dp: int  # replicas of this deployment on the instance
    first_gpu: int


class Node(BaseModel):
    """One instance and what runs on it."""

    provider: str
    offer: str
    region: str | None
    gpu: str
    gpus_per_instance: int
    slots: list[Slot]

    @property
    def dedicated(self) -> bool:
        return len(self.slots) == 1


def _fill(slots: list[Slot], gpi: int, workload: str, d: Placed) -> bool:
    used = sum(s.tp * s.dp for s in slots)
    if used + d.tp > gpi:
        return False
    for s in slots:
        if s.candidate == d.candidate:
            s.dp += 1
            return True
    slots.append(Slot(workload=workload, candidate=d.candidate, tp=d.tp, dp=1, first_gpu=used))
    return True


def pack(deployments: list[tuple[str, Placed]]) -> list[Node]:
    """Nodes for (workload name, deployment) pairs, deterministic: offers and deployments in sorted order."""
    by_offer: dict[tuple[str, str], list[tuple[str, Placed]]] = {}
    for wname, d in deployments:
        by_offer.setdefault((d.provider, d.offer), []).append((wname, d))
    nodes: list[Node] = []
    for key in sorted(by_offer):
        group = sorted(by_offer[key], key=lambda t: (-t[1].tp, t[1].candidate))
        d0 = group[0][1]
        gpi = d0.gpus_per_instance

        def node(slots: list[Slot], d0: Placed = d0, gpi: int = gpi) -> Node:
            return Node(provider=d0.provider, offer=d0.offer, region=d0.region, gpu=d0.gpu, gpus_per_instance=gpi,
                        slots=slots)

        filled: list[list[Slot]] = []
        for wname, d in group:
            for _ in range(d.replicas):
                if not any(_fill(slots, gpi, wname, d) for slots in filled):
                    filled.append([])
                    _fill(filled[-1], gpi, wname, d)
        for slots in filled:
            if len(slots) == 1:
                slots[0].dp = gpi // slots[0].tp  # spare GPUs of an instance bought whole
            nodes.append(node(slots))
    return nodes
