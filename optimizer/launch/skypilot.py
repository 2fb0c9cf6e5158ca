"""SkyPilot files that reproduce a plan: one SkyServe service per (workload, deployment) whose replicas
are exactly the instances running it, plus one task per instance shared by several deployments.

A SkyServe replica is one whole instance (``any_of`` the instance types of the same GPU, size and price
that the plan allowed), running its replicas of the deployment
with engine data parallelism. A workload served by deployments on different GPU types gets one
service per deployment: a SkyServe service has one resource shape for all replicas, so the workload's
traffic is split across the endpoints (by the client or an external load balancer) in proportion to
their capacity, which the plan reports per deployment. Owned hardware is SkyPilot's own-infrastructure
form (``infra: k8s``, the cluster in the current kubeconfig context), never a cloud named ``owned``.
Everything is written with ``yaml.safe_dump``; names from workload files only reach files as slugs.
"""

from __future__ import annotations

from gpuplan.optimizer.launch.accelerators import accelerator
from gpuplan.optimizer.launch.engines import (
    EngineArgs,
    engine_release,
    proxied,
    shell_lines,
)
from gpuplan.optimizer.launch.packing import Node
from gpuplan.optimizer.launch.proxy import INSTALL as PROXY_INSTALL
from gpuplan.optimizer.launch.proxy import start_lines
from gpuplan.pricing.offers import Offer

HEALTH = "/health"  # vLLM, SGLang, trtllm-serve and llama-server all answer it once the model is loaded
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
PORT = 8000


def visible_devices(vendor: str) -> str:
    """The variable that limits a process to some GPUs (ROCm: HIP_VISIBLE_DEVICES)."""
    return "HIP_VISIBLE_DEVICES" if vendor.lower() == "amd" else "CUDA_VISIBLE_DEVICES"


def resources(node: Node, tier: str, offers: list[Offer], ports: int = 1) -> dict[str, object]:
    """One whole instance: ``any_of`` the offers of the same GPU, size and tier price as the planned one (the
    instance type pins the GPU; see ``accelerators``), or, for owned servers, the Kubernetes cluster of the
    current context with the GPU as SkyPilot names it there × GPUs per server."""
    port: object = PORT if ports == 1 else [PORT + i for i in range(ports)]
    if tier == "owned":
        return {"infra": "k8s", "accelerators": f"{accelerator(node.gpu).skypilot_k8s}:{node.gpus_per_instance}",
                "ports": port}
    # the planner prices an instance type at its cheapest region; so does the task (any_of those regions)
    price = min((o.price(tier) for o in offers if o.provider == node.provider and o.instance == node.offer
                 and o.price(tier) is not None), default=None)
    same = sorted({(o.provider, o.region or "", o.instance) for o in offers
                   if o.gpu == node.gpu and o.gpus_per_instance == node.gpus_per_instance
                   and o.price(tier) is not None and price is not None and abs(o.price(tier) - price) < 0.005})
    return {"use_spot": tier == "spot", "ports": port,
            "any_of": [{"infra": f"{p}/{r}" if r else p, "instance_type": i} for p, r, i in same]}


def run_script(engine_args: list[EngineArgs], vendor: str, front: list[int] | None = None) -> tuple[str, int]:
    """The shell that starts every engine of a node, and how many ports it listens on: one process group
    per deployment, on its own GPUs and port (engines without data parallelism behind nginx on it); with
    more than one group, all run in the background and the script waits for them. ``front``: weights of
    the groups behind one nginx on 8000 (their own ports from 8001), so the node serves one endpoint."""
    lines: list[str] = []
    first = 0
    shared = len(engine_args) > 1
    base = PORT + 1 if front else PORT
    for i, a in enumerate(engine_args):
        update: dict[str, object] = {"port": base + i}
        if shared:
            update.update(first_gpu=first, visible_var=visible_devices(vendor))
        a = a.model_copy(update=update)
        first += a.tp * a.dp
        lines += shell_lines(a, background=shared)
    if front:
        lines[:0] = start_lines(PORT, [(base + i, w) for i, w in enumerate(front)])
    if shared:
        lines.append("wait")
    return "\n".join(lines), 1 if front else len(engine_args)


def task(name: str, node: Node, args: list[EngineArgs], tier: str, offers: list[Offer], vendor: str,
         gated: bool, replicas: int | None, scale: tuple[int, float] | None = None,
         front: list[int] | None = None) -> dict[str, object]:
    """A SkyPilot task; a SkyServe service when ``replicas`` is given: that many replicas, or with
    ``scale = (min replicas, req/s per replica)`` a service autoscaled up to ``replicas`` (daily plans)."""
    script, ports = run_script(args, vendor, front)
    t: dict[str, object] = {"name": name, "resources": resources(node, tier, offers, ports)}
    if gated:
        t["envs"] = {"HF_TOKEN": None}
    engines = sorted({a.engine for a in args})
    amd = vendor.lower() == "amd"
    if amd:  # the ROCm vLLM image carries vLLM; anything else is installed on top
        t["resources"]["image_id"] = ROCM_IMAGE  # type: ignore[index]
    steps = [INSTALL[e].format(v=engine_release(e)) for e in engines if not (amd and e == "vllm")]
    steps += [PROXY_INSTALL] if front or any(proxied(a) for a in args) else []
    if steps:
        t["setup"] = " && ".join(steps)
    t["run"] = script
    if replicas is not None:
        probe = {"path": HEALTH, "initial_delay_seconds": READY_DELAY_S}
        if scale is None or scale[0] >= replicas:
            t["service"] = {"readiness_probe": probe, "replicas": replicas}
        else:
            t["service"] = {"readiness_probe": probe, "replica_policy": {
                "min_replicas": scale[0], "max_replicas": replicas, "target_qps_per_replica": round(scale[1], 3)}}
    return t
