"""The files ``plan -o DIR`` writes: SkyPilot services and tasks, or Kubernetes manifests, per deployment.

All documents are built in memory first (a bad input fails before anything is written), serialised
with ``yaml.safe_dump``, and named by slugs of the workload and GPU.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Protocol

import yaml
from gpuplan.optimizer.errors import InputError
from gpuplan.optimizer.launch.commands import Shape, plan_launch
from gpuplan.optimizer.launch.k8s import manifests
from gpuplan.optimizer.launch.names import slug
from gpuplan.optimizer.launch.packing import Node, Placed, pack
from gpuplan.optimizer.launch.skypilot import task
from gpuplan.optimizer.planning.workload import Workload
from gpuplan.optimizer.tables import Tables

TARGETS = ("skypilot", "k8s")
DNS_LABEL = 63


class Deployed(Placed, Shape, Protocol):
    """A plan deployment as the spec writers read it."""

    ep: int
    capacity_req_s: float


class _Dumper(yaml.SafeDumper):
    """The safe dumper; multi-line strings (run scripts) as literal blocks when YAML allows it."""


def _str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str)


def _dump(doc: object) -> str:
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=False, width=120)


def _name(prefix: str, w: Workload, d: Deployed, taken: dict[str, str]) -> str:
    """Service, manifest and file name: block, workload and GPU slugs, TP degree (and the weight format, then
    a counter, when two deployments would share a name)."""
    base = f"{prefix}{slug(w.name)}-{slug(d.gpu, 16)}-tp{d.tp}"
    name, i = base, 1
    while any(k.startswith(f"{name}.") for k in taken):
        i += 1
        name = f"{base}-{slug(d.weights, 8)}" if i == 2 else f"{base}-{slug(d.weights, 8)}-{i - 1}"
    if len(name) > DNS_LABEL:  # Kubernetes Service names are DNS labels
        name = f"{name[:DNS_LABEL - 7].rstrip('-')}-{hashlib.sha256(name.encode()).hexdigest()[:6]}"
    return name


def replica_capacity_req_s(d: Deployed) -> float:
    """Requests/s one replica serves (a plan deployment reports its replicas' total, a daily one per replica)."""
    return d.capacity_req_s if hasattr(d, "replicas_by_hour") else d.capacity_req_s / max(d.replicas, 1)


def skypilot_files(deps: list[tuple[Workload, Deployed]], tables: Tables, tier: str, block: str = "",
                   autoscale: bool = False) -> tuple[dict[str, str], list[str]]:
    """{file name: YAML} and notes. Instances are grouped by what they run: instances running one workload
    (one deployment, or several behind an nginx front weighted by capacity) are the replicas of a SkyServe
    service; an instance running several workloads is a plain task with one port per workload."""
    by_id = {d.candidate: (w, d) for w, d in deps}
    files: dict[str, str] = {}
    notes: list[str] = []
    groups: Counter[tuple[tuple[str, int], ...]] = Counter()
    first: dict[tuple[tuple[str, int], ...], Node] = {}
    for n in pack([(w.name, d) for w, d in deps]):
        key = tuple((s.candidate, s.dp) for s in n.slots)
        groups[key] += 1
        first.setdefault(key, n)
    prefix = f"{block}-" if block else ""
    per_workload: Counter[str] = Counter()
    shared = 0
    for key, count in sorted(groups.items()):
        launches = [(by_id[cid], dp, plan_launch(*by_id[cid], tables, dp, by_id[cid][1].ep)) for cid, dp in key]
        notes += [f"{w.name}: {got.missing}" for (w, _), _, got in launches if got.args is None]
        ready = [((w, d), dp, got.args) for (w, d), dp, got in launches if got.args is not None]
        if not ready:
            continue
        node = first[key]
        vendor = tables.gpus.get(node.gpu).vendor
        args = [a for _, _, a in ready]
        gated = any(a.checkpoint.gated for a in args)
        workloads = sorted({w.name for (w, _), _, _ in ready})
        if len(workloads) > 1:
            for _ in range(count):
                shared += 1
                name = f"{prefix}shared-{slug(node.offer, 24)}-{shared}"
                files[f"{name}.sky.yaml"] = _dump(task(name, node, args, tier, tables.offers, vendor, gated, None))
                notes.append(f"instance {node.provider}:{node.offer} runs {', '.join(workloads)} (one port each from "
                             f"8000): launch {name}.sky.yaml with 'sky launch' (outside SkyServe)")
            continue
        (w, d), dp0, _ = ready[0]
        name = _name(prefix, w, d, files)
        per_workload[w.name] += 1
        capacity = [dp * replica_capacity_req_s(dd) for (_, dd), dp, _ in ready]
        scale = None
        if autoscale and len(ready) == 1:  # daily plans: replicas follow the hourly curve
            hours = getattr(d, "replicas_by_hour", None) or [d.replicas]
            scale = (min(hours) // dp0, capacity[0])
        doc = task(name, node, args, tier, tables.offers, vendor, gated, count, scale,
                   front=[max(1, round(10 * c / min(capacity))) for c in capacity] if len(ready) > 1 else None)
        files[f"{name}.sky.yaml"] = _dump(doc)
    for wname, k in sorted(per_workload.items()):
        if k > 1:
            notes.append(f"{wname}: {k} SkyServe services (one per GPU type or instance shape); split its traffic "
                         "across their endpoints in proportion to each deployment's capacity_req_s")
    return files, notes


def k8s_files(deps: list[tuple[Workload, Deployed]], tables: Tables, block: str = "") -> tuple[dict[str, str],
                                                                                               list[str]]:
    files: dict[str, str] = {}
    notes: list[str] = []
    prefix = f"{block}-" if block else ""
    for w, d in deps:
        got = plan_launch(w, d, tables, 1, d.ep)
        if got.args is None:
            notes.append(f"{w.name}: {got.missing}")
            continue
        name = _name(prefix, w, d, files)
        docs = manifests(name, slug(w.name), got.args, d.replicas, d.gpu, tables.gpus.get(d.gpu).vendor)
        files[f"{name}.k8s.yaml"] = yaml.safe_dump_all(docs, sort_keys=False, width=120)
    return files, notes


def spec_files(deps: list[tuple[Workload, Deployed]], tables: Tables, tier: str, target: str,
               block: str = "", autoscale: bool = False) -> tuple[dict[str, str], list[str]]:
    if target not in TARGETS:
        raise InputError(f"--target must be one of {', '.join(TARGETS)}, got '{target}'")
    if target == "k8s":
        return k8s_files(deps, tables, block)
    return skypilot_files(deps, tables, tier, block, autoscale)
