"""SkyPilot files that reproduce a plan: one SkyServe service per (workload, deployment) whose replicas
are exactly the instances running it, plus one task per instance shared by several deployments.

A SkyServe replica is one whole instance (``accelerators: GPU:<GPUs per instance>``, ``any_of`` the
offers of the same GPU, size and price that the plan allowed), running its replicas of the deployment
with engine data parallelism. A workload served by deployments on different GPU types gets one
service per deployment: a SkyServe service has one resource shape for all replicas, so the workload's
traffic is split across the endpoints (by the client or an external load balancer) in proportion to
their capacity, which the plan reports per deployment. Owned hardware is SkyPilot's own-infrastructure
form (``infra: k8s``, the cluster in the current kubeconfig context), never a cloud named ``owned``.
Everything is written with ``yaml.safe_dump``; names from workload files only reach files as slugs.
"""

from __future__ import annotations

import csv
import hashlib
import re
from functools import cache
from pathlib import Path

from gpuplan.optimizer.launch.engines import EngineArgs, engine_version, shell, trtllm_options
from gpuplan.optimizer.launch.packing import Node
from gpuplan.pricing.offers import Offer
from pydantic import BaseModel

ACCELERATORS_CSV = Path(__file__).with_name("accelerators.csv")
HEALTH = {"vllm": "/health", "sglang": "/health", "trtllm": "/health", "llama.cpp": "/health"}
READY_DELAY_S = 1800  # weights download and load of the largest models
INSTALL = {
    "vllm": "pip install vllm=={v}",
    "sglang": "pip install sglang=={v}",
    "trtllm": "pip install tensorrt_llm",
    "llama.cpp": ("git clone --depth 1 https://github.com/ggml-org/llama.cpp && cmake -S llama.cpp -B llama.cpp/build "
                  "-DGGML_CUDA=ON && cmake --build llama.cpp/build -j --target llama-server && "
                  "sudo cp llama.cpp/build/bin/llama-server /usr/local/bin/"),
}
ROCM_IMAGE = "docker:rocm/vllm:latest"


class Accelerator(BaseModel):
    gpu: str
    skypilot: str
    k8s_resource: str
    k8s_label_key: str
    k8s_label_value: str
    source: str
    as_of: str


@cache
def accelerators() -> dict[str, Accelerator]:
    return {r["gpu"]: Accelerator(**r) for r in csv.DictReader(ACCELERATORS_CSV.open(newline="", encoding="utf-8"))}


def accelerator(gpu: str) -> Accelerator:
    acc = accelerators().get(gpu)
    if acc is None:
        from gpuplan.optimizer.errors import InputError

        raise InputError(f"GPU '{gpu}' has no row in {ACCELERATORS_CSV.name} (SkyPilot and Kubernetes names)")
    return acc


def slug(text: str, limit: int = 40) -> str:
    """Lower-case letters, digits and single hyphens, starting with a letter; a short hash keeps two
    names that differ only in other characters apart."""
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    if not s or not s[0].isalpha():
        s = f"w-{s}".rstrip("-")
    s = s[:limit].rstrip("-")
    if s != text:
        s = f"{s}-{hashlib.sha256(text.encode()).hexdigest()[:6]}"
    return s


def install(engine: str, vendor: str) -> dict[str, str]:
    """``setup`` that installs the pinned engine, or an ``image_id`` with it (AMD GPUs: the ROCm vLLM image)."""
    if vendor.lower() == "amd":
        return {"image_id": ROCM_IMAGE}
    version = engine_version(engine).split()[1]
    return {"setup": INSTALL[engine].format(v=version)}


def resources(node: Node, tier: str, offers: list[Offer]) -> dict[str, object]:
    acc = f"{accelerator(node.gpu).skypilot}:{node.gpus_per_instance}"
    if tier == "owned":
        return {"infra": "k8s", "accelerators": acc, "ports": 8000}
    price = next(o.price(tier) for o in offers if o.provider == node.provider and o.instance == node.offer)
    same = sorted({(o.provider, o.region or "", o.instance) for o in offers
                   if o.gpu == node.gpu and o.gpus_per_instance == node.gpus_per_instance
                   and o.price(tier) is not None and price is not None and abs(o.price(tier) - price) < 0.005})
    return {"accelerators": acc, "use_spot": tier == "spot", "ports": 8000,
            "any_of": [{"infra": f"{p}/{r}" if r else p, "instance_type": i} for p, r, i in same]}


def run_script(engine_args: list[EngineArgs]) -> str:
    """The shell that starts every engine of a node: one per deployment, on its own GPUs and port."""
    lines = []
    for i, a in enumerate(engine_args):
        opts = trtllm_options(a)
        if opts:
            import yaml

            body = yaml.safe_dump(opts, sort_keys=True)
            lines.append(f"cat > extra_llm_api_options.yaml <<'GPUPLAN_EOF'\n{body}GPUPLAN_EOF")
        cmd = shell(a)
        if len(engine_args) > 1:
            first = sum(b.tp * b.dp for b in engine_args[:i])
            gpus = ",".join(str(g) for g in range(first, first + a.tp * a.dp))
            cmd = f"CUDA_VISIBLE_DEVICES={gpus} {cmd} &"
        lines.append(cmd)
    if len(engine_args) > 1:
        lines.append("wait")
    return "\n".join(lines)


def task(name: str, node: Node, args: list[EngineArgs], tier: str, offers: list[Offer], vendor: str,
         gated: bool, replicas: int | None) -> dict[str, object]:
    """A SkyPilot task (a SkyServe service when ``replicas`` is given)."""
    t: dict[str, object] = {"name": name, "resources": resources(node, tier, offers)}
    if gated:
        t["envs"] = {"HF_TOKEN": None}
    engines = sorted({a.engine for a in args})
    t.update(install(engines[0], vendor))
    if len(engines) > 1:
        t["setup"] = " && ".join(install(e, vendor).get("setup", "") for e in engines)
    t["run"] = run_script(args)
    if replicas is not None:
        t["service"] = {"readiness_probe": {"path": HEALTH[args[0].engine], "initial_delay_seconds": READY_DELAY_S},
                        "replicas": replicas}
    return t
