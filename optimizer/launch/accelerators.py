"""GPU names outside gpuplan, per GPU id (``accelerators.csv``, each row with its source): the Kubernetes
GPU resource and node product label, and the accelerator name SkyPilot reads from that label.

Cloud offers need no accelerator name: SkyPilot reads the GPU of an instance type from its catalog, and
the names differ between clouds (the H100 NVL is 'H100' in SkyPilot's Azure catalog, 'H100-NVL' in
RunPod's: sky/catalog/data_fetchers), so pinning the instance type is the one spelling that cannot
disagree with the catalog."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from gpuplan.optimizer.errors import InputError

from gpuplan.rows import Sourced
from gpuplan.safeio import read_csv_dicts

ACCELERATORS_CSV = Path(__file__).with_name("accelerators.csv")


class Accelerator(Sourced):
    gpu: str
    skypilot_k8s: str  # the accelerator name SkyPilot reads from the node's GPU product label
    k8s_resource: str
    k8s_label_key: str
    k8s_label_value: str


@cache
def accelerators() -> dict[str, Accelerator]:
    return {r["gpu"]: Accelerator(**r) for r in read_csv_dicts(ACCELERATORS_CSV)[1]}


def accelerator(gpu: str) -> Accelerator:
    acc = accelerators().get(gpu)
    if acc is None:
        raise InputError(f"GPU '{gpu}' has no row in {ACCELERATORS_CSV.name} (SkyPilot and Kubernetes names)")
    return acc
