"""Load SkyPilot YAMLs with SkyPilot's own parser, offline, priced from gpuplan's offer table.

Run as ``python skypilot_check.py HOME OFFERS_CSV ACCELERATORS_CSV FILE...`` (``schema:FILE``: the task
schema only) with the environment's HOME set
to the first argument: it writes SkyPilot catalogs (``~/.sky/catalogs/v8/<cloud>/vms.csv`` and
``common/accelerators.csv``) built from the offer table, so ``sky.Task.from_yaml_config`` validates
instance types, regions and accelerators without the network, then prints one JSON line per file:
the service replicas (None for a plain task) and SkyPilot's $/h for each resource candidate; first, SkyPilot's
canonical GPU names and the name SkyPilot reads from each of our Kubernetes GPU product labels.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import yaml

COLUMNS = ["InstanceType", "AcceleratorName", "AcceleratorCount", "vCPUs", "MemoryGiB", "Price", "SpotPrice", "Region",
           "AvailabilityZone", "GpuInfo"]


def write_catalogs(home: Path, offers_csv: Path, accelerators_csv: Path) -> None:
    names = {r["gpu"]: r["skypilot_k8s"] for r in csv.DictReader(accelerators_csv.open())}
    root = home / ".sky" / "catalogs" / "v8"
    clouds: dict[str, set[str]] = {}
    by_cloud: dict[str, list[dict[str, str]]] = {}
    for r in csv.DictReader(offers_csv.open()):
        if r["gpu"] in names and r["provider"] != "owned":
            by_cloud.setdefault(r["provider"], []).append(r)
    for cloud, rows in by_cloud.items():
        (root / cloud).mkdir(parents=True, exist_ok=True)
        with (root / cloud / "vms.csv").open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(COLUMNS)
            for r in rows:
                acc = names[r["gpu"]]
                clouds.setdefault(acc, set()).add(cloud)
                w.writerow([r["instance"], acc, r["gpus_per_instance"], r["vcpus"] or 8, r["host_memory_gb"] or 64,
                            r["on_demand_usd_per_hour"], r["spot_usd_per_hour"], r["region"],
                            f"{r['region'] or 'zone'}-a", ""])
    (root / "common").mkdir(parents=True, exist_ok=True)
    with (root / "common" / "accelerators.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["AcceleratorName", "Clouds"])
        for acc, cs in sorted(clouds.items()):
            w.writerow([acc, ", ".join(sorted(cs))])


def main(argv: list[str]) -> None:
    home, offers, accs, *files = argv
    write_catalogs(Path(home), Path(offers), Path(accs))
    import sky
    from sky.provision.kubernetes.utils import GFDLabelFormatter
    from sky.utils import common_utils, gpu_names, schemas

    names = {r["gpu"]: r for r in csv.DictReader(Path(accs).read_text().splitlines())}
    print(json.dumps({"canonical": list(gpu_names.CANONICAL_GPU_NAMES), "from_label": {
        g: GFDLabelFormatter.get_accelerator_from_label_value(r["k8s_label_value"]) for g, r in names.items()
        if r["k8s_label_key"] == GFDLabelFormatter.LABEL_KEY}}))


    for arg in files:
        path = arg.removeprefix("schema:")
        cfg = yaml.safe_load(Path(path).read_text())
        if arg.startswith("schema:"):  # owned hardware: infra k8s needs a cluster to resolve
            common_utils.validate_schema(cfg, schemas.get_task_schema(), "Invalid task YAML: ")
            print(json.dumps({"path": path, "file": Path(path).name, "schema": "ok"}))
            continue
        task = sky.Task.from_yaml_config(cfg, env_overrides=[("HF_TOKEN", "hf_x")])
        costs = sorted(r.get_cost(3600) for r in task.resources)
        replicas = task.service.min_replicas if task.service is not None else None
        print(json.dumps({"path": path, "file": Path(path).name, "replicas": replicas, "costs": costs,
                          "spot": sorted({r.use_spot for r in task.resources}),
                          "accelerators": sorted({str(r.accelerators) for r in task.resources})}))


if __name__ == "__main__":
    main(sys.argv[1:])
