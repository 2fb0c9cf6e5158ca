"""Launch configs for a deployment: a ``vllm serve`` (or ``llama-server``) command line and a SkyPilot task."""

from __future__ import annotations

import shlex
from typing import Protocol

import yaml
from gpuplan.hardware.formats import NumberFormat
from gpuplan.optimizer.planning.candidate_gen import Candidate

MEM_UTIL = 0.9
SKYPILOT_ACCELERATOR = {
    "a100-40gb": "A100", "a100-80gb": "A100-80GB", "a100-80gb-pcie": "A100-80GB", "h100-sxm": "H100",
    "h100-pcie": "H100", "h100-nvl": "H100-NVL", "h200": "H200", "b200": "B200", "b300": "B300", "l4": "L4",
    "l40s": "L40S", "a10g": "A10G", "a10": "A10", "rtx-4090": "RTX4090", "rtx-3090": "RTX3090",
    "rtx-5090": "RTX5090", "rtx-a6000": "RTXA6000", "rtx-6000-ada": "RTX6000-Ada", "mi300x": "MI300X",
    "gh200": "GH200", "gh200-96gb": "GH200",
}


def launch_command(c: Candidate, hf_repo: str | None, wfmt: NumberFormat, kvfmt: NumberFormat,
                   mem_util: float = MEM_UTIL) -> str:
    """The engine command line that serves this replica shape (the checkpoint must be in ``weights`` format)."""
    repo = hf_repo or c.model
    if c.engine == "llama.cpp":
        args = ["llama-server", "-m", f"{c.model}-{c.weights}.gguf", "-c", str(c.max_model_len * c.batch),
                "-np", str(c.batch), "-ngl", "999", "--cont-batching"]
        if kvfmt.id in ("fp8", "int8"):
            args += ["--cache-type-k", "q8_0", "--cache-type-v", "q8_0"]
        return shlex.join(args)
    if c.engine == "sglang":
        args = ["python", "-m", "sglang.launch_server", "--model-path", repo, "--tp", str(c.tp),
                "--context-length", str(c.max_model_len), "--max-running-requests", str(c.batch),
                "--mem-fraction-static", f"{mem_util:g}"]
        if wfmt.vllm_quantization:
            args += ["--quantization", wfmt.vllm_quantization]
        if kvfmt.vllm_kv_cache_dtype and kvfmt.vllm_kv_cache_dtype != "auto":
            args += ["--kv-cache-dtype", f"{kvfmt.vllm_kv_cache_dtype}_e4m3"]
        return shlex.join(args)
    args = ["vllm", "serve", repo, "--tensor-parallel-size", str(c.tp), "--max-model-len", str(c.max_model_len),
            "--max-num-seqs", str(c.batch), "--gpu-memory-utilization", f"{mem_util:g}"]
    if wfmt.vllm_quantization:
        args += ["--quantization", wfmt.vllm_quantization]
    if kvfmt.vllm_kv_cache_dtype and kvfmt.vllm_kv_cache_dtype != "auto":
        args += ["--kv-cache-dtype", kvfmt.vllm_kv_cache_dtype]
    return shlex.join(args)


class Placed(Protocol):
    """What a SkyPilot task needs of a deployment (a plan's Deployment has all of it)."""

    candidate: str
    provider: str
    offer: str
    region: str | None
    gpu: str
    tp: int
    engine: str
    batch: int
    tpot_ms: float
    ttft_ms: float


def skypilot_task(c: Placed, replicas: int, command: str, tier: str) -> str:
    """A SkyServe service YAML: the offer's instance type, ``replicas`` copies, the launch command."""
    resources: dict[str, object] = {"cloud": c.provider, "instance_type": c.offer,
                                    "accelerators": f"{SKYPILOT_ACCELERATOR.get(c.gpu, c.gpu.upper())}:{c.tp}",
                                    "use_spot": tier == "spot", "ports": 8000}
    if c.region:
        resources["region"] = c.region
    task = {
        "name": c.candidate.replace("/", "-").replace(":", "-").replace(".", "-"),
        "resources": resources,
        "service": {"readiness_probe": "/v1/models" if c.engine != "llama.cpp" else "/health",
                    "replicas": replicas},
        "run": command + (" --port 8000" if c.engine != "llama.cpp" else " --port 8000 --host 0.0.0.0"),
    }
    header = (f"# gpuplan deployment {c.candidate}\n# {replicas} replica(s) of {c.tp} × {c.gpu}, batch {c.batch}, "
              f"TPOT {c.tpot_ms:.1f} ms, TTFT {c.ttft_ms:.0f} ms (predicted)\n")
    return header + yaml.safe_dump(task, sort_keys=False)
