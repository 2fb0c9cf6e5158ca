"""The share of GPU memory an engine gives to weights and KV when the user sets none (the KV budget's cap).

vLLM's ``--gpu-memory-utilization`` (0.9) caps everything the engine allocates: weights, KV, activations and
runtime buffers share it, which is the memory model's reading of the calibration's ``mem_util``.

SGLang's ``--mem-fraction-static`` caps weights and the KV pool only; activations and CUDA-graph buffers live
in the reserved rest. From 0.5.3 (sgl-project/sglang PR #10975, 2025-09-27) the default is computed from the
GPU's memory and the server's other defaults (ServerArgs._handle_gpu_memory_settings,
python/sglang/srt/server_args.py):

  R = 512 + 1.5 · max(C, 2048) + 2 · B + 1024 · tp / 8   MiB
      (+ 3 · B · dp, and + 1.5 · B · dp when B > 300, with data-parallel attention over dp ranks)
  R = max(R, 10240 MiB) on GPUs of more than 60 GiB
  f = round((M − R) / M, 3)

with M the GPU memory in MiB, C the chunked prefill size (scheduler.csv) and B ``cuda_graph_max_bs``
(graphs.csv). On an 80 GB H100 at TP 1 (C 8192, B 256) R = 13,440 MiB and f = 0.835, against the 0.88 the
older releases used: a model that nearly fills the GPU keeps far less KV than the fixed fraction gives.
The early 0.4 releases (before 0.4.4) set the fraction by TP size alone (ServerArgs.__post_init__): 0.79 from
TP 16, 0.81 from TP 8, 0.85 from TP 4, 0.87 at TP 2, 0.88 at TP 1. Releases between keep the calibration's
``mem_util`` (their GPU-memory special cases are not modelled).
"""

from __future__ import annotations

from gpuplan.hardware.gpus import GPU
from gpuplan.optimizer.serving.calibration import version_in_range

MIB = 1024.0
SGLANG_COMPUTED_FRACTION = ">=0.5.3"  # PR #10975: the fraction follows the GPU memory and the other defaults
SGLANG_TP_FRACTION = "<0.4.4"  # early 0.4 releases: the fraction by TP size alone
SGLANG_TP_FRACTIONS = ((16, 0.79), (8, 0.81), (4, 0.85), (2, 0.87), (1, 0.88))  # (from TP, fraction)
BASE_RESERVE_MIB = 512.0
MIN_PREFILL_RESERVE_TOKENS = 2048
ACTIVATION_MIB_PER_TOKEN = 1.5
GRAPH_MIB_PER_BATCH = 2.0
TP_MIB_PER_8 = 1024.0
DP_GRAPH_MIB = 3.0
DP_LARGE_GRAPH_MIB = 1.5
DP_LARGE_GRAPH_BATCH = 300
LARGE_GPU_MIB = 60 * 1024.0
LARGE_GPU_MIN_RESERVE_MIB = 10 * 1024.0


def sglang_reserved_mib(gpu_memory_mib: float, chunk_tokens: float, graph_max_batch: float, tp: int,
                        dp: int = 1) -> float:
    """SGLang's reserve outside weights and KV, MiB (module docstring):
    R = 512 + 1.5·max(C, 2048) + 2·B + 1024·tp/8 [+ 3·B·dp (+ 1.5·B·dp if B > 300) with DP attention],
    at least 10 GiB on GPUs above 60 GiB."""
    r = (BASE_RESERVE_MIB + ACTIVATION_MIB_PER_TOKEN * max(chunk_tokens, MIN_PREFILL_RESERVE_TOKENS)
         + GRAPH_MIB_PER_BATCH * graph_max_batch + TP_MIB_PER_8 * tp / 8)
    if dp > 1:
        r += DP_GRAPH_MIB * graph_max_batch * dp
        if graph_max_batch > DP_LARGE_GRAPH_BATCH:
            r += DP_LARGE_GRAPH_MIB * graph_max_batch * dp
    if gpu_memory_mib > LARGE_GPU_MIB:
        r = max(r, LARGE_GPU_MIN_RESERVE_MIB)
    return r


def sglang_mem_fraction_static(gpu_memory_mib: float, chunk_tokens: float, graph_max_batch: float, tp: int,
                               dp: int = 1) -> float:
    """f = round((M − R) / M, 3): SGLang's default --mem-fraction-static (weights + KV pool / GPU memory)."""
    r = sglang_reserved_mib(gpu_memory_mib, chunk_tokens, graph_max_batch, tp, dp)
    return round((gpu_memory_mib - r) / gpu_memory_mib, 3)


def sglang_tp_fraction(tp: int) -> float:
    """Early SGLang 0.4's --mem-fraction-static by TP size: 0.79 (TP ≥ 16), 0.81 (≥ 8), 0.85 (≥ 4), 0.87 (2),
    0.88 (1)."""
    return next(f for least, f in SGLANG_TP_FRACTIONS if tp >= least)


def weights_kv_cap(engine: str, version: str | None, gpu: GPU, tp: int, attn_dp: int, chunk_tokens: float,
                   graph_max_batch: float) -> float | None:
    """The engine's cap on weights + KV as a fraction of GPU memory, where the engine keeps activations outside
    it: SGLang from 0.5.3 (also when no version is given: the current release) and before 0.4.4; None where the
    calibration's ``mem_util`` caps everything (vLLM, TensorRT-LLM, SGLang 0.4.4-0.5.2)."""
    if engine.lower() != "sglang":
        return None
    if version is not None and version_in_range(version, SGLANG_TP_FRACTION):
        return sglang_tp_fraction(tp)
    if version is not None and not version_in_range(version, SGLANG_COMPUTED_FRACTION):
        return None
    return sglang_mem_fraction_static(gpu.memory_gib * MIB, chunk_tokens, graph_max_batch, tp,
                                      attn_dp if attn_dp > 1 else 1)


def effective_mem_util(mem_util: float, cap: float | None, activation_bytes_per_gpu: float,
                       gpu_memory_bytes: float) -> float:
    """The ``mem_util`` that makes the memory model's KV budget (cap · M − weights − activations − runtime)
    equal the engine's (cap · M − weights − runtime) when activations sit outside the cap: cap + act / M
    (≤ 1); ``mem_util`` unchanged without such a cap."""
    if cap is None:
        return mem_util
    return min(1.0, cap + activation_bytes_per_gpu / gpu_memory_bytes)
