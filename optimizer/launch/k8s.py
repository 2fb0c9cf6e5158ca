"""Kubernetes manifests for a plan deployment: a Deployment of engine pods and a Service in front of them.

Each pod is one replica: it requests the replica's TP GPUs (``nvidia.com/gpu`` or ``amd.com/gpu``),
is pinned to the planned GPU by a node selector on the GPU product label, runs the engine command
from the flag tables and is ready when the engine's ``/health`` answers. Candidate generation keeps
TP inside one instance, so a replica never spans nodes (no LeaderWorkerSet is needed).
"""

from __future__ import annotations

import yaml
from gpuplan.optimizer.launch.accelerators import accelerator
from gpuplan.optimizer.launch.engines import EngineArgs, command_lines, engine_release, options_file, trtllm_options

IMAGES = {  # the engine's published container image at the version the commands were checked against
    "vllm": "vllm/vllm-openai:v{v}",
    "sglang": "lmsysorg/sglang:v{v}",
    "trtllm": "nvcr.io/nvidia/tensorrt-llm/release:latest",
    "llama.cpp": "ghcr.io/ggml-org/llama.cpp:server-cuda",
}
ROCM_IMAGE = "rocm/vllm:latest"
HF_SECRET = "hf-token"


def image(engine: str, vendor: str) -> str:
    if vendor.lower() == "amd":
        return ROCM_IMAGE
    return IMAGES[engine].format(v=engine_release(engine))


def manifests(name: str, workload_slug: str, a: EngineArgs, replicas: int, gpu: str, vendor: str) -> list[dict]:
    """[Deployment, Service] for ``replicas`` pods of one deployment (engine DP 1 per pod)."""
    acc = accelerator(gpu)
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "gpuplan", "gpuplan/workload": workload_slug}
    argv = command_lines(a)[0]
    container: dict[str, object] = {
        "name": "engine", "image": image(a.engine, vendor), "command": argv[:1], "args": argv[1:],
        "ports": [{"name": "http", "containerPort": a.port}],
        "resources": {"requests": {acc.k8s_resource: str(a.tp)}, "limits": {acc.k8s_resource: str(a.tp)}},
        "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 10,
                           "failureThreshold": 180},
        "volumeMounts": [{"name": "shm", "mountPath": "/dev/shm"}],
    }
    if a.checkpoint.gated:
        container["env"] = [{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": HF_SECRET, "key": "token",
                                                                                "optional": True}}}]
    pod: dict[str, object] = {"nodeSelector": {acc.k8s_label_key: acc.k8s_label_value}, "containers": [container],
                              "volumes": [{"name": "shm", "emptyDir": {"medium": "Memory"}}]}
    opts = trtllm_options(a)
    if opts:
        pod["volumes"].append({"name": "llm-api-options", "configMap": {"name": f"{name}-options"}})  # type: ignore[union-attr]
        container["volumeMounts"].append({"name": "llm-api-options", "mountPath": "/config"})  # type: ignore[union-attr]
        container["workingDir"] = "/config"
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": dict(labels)},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
                 "template": {"metadata": {"labels": dict(labels)}, "spec": pod}},
    }
    service = {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": dict(labels)},
        "spec": {"selector": {"app.kubernetes.io/name": name},
                 "ports": [{"name": "http", "port": a.port, "targetPort": "http"}]},
    }
    docs = [deployment, service]
    if opts:
        docs.append({"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": f"{name}-options", "labels": dict(labels)},
                     "data": {options_file(a): yaml.safe_dump(opts, sort_keys=True)}})
    return docs
