"""Host time of an eager prompt step (prompt_host.csv): the floor under steps that carry prompt tokens.

SGLang and TensorRT-LLM's PyTorch backend replay decode batches from CUDA graphs but run every step that
carries prompt tokens as eager PyTorch: the host launches each kernel from Python, one op after another. The GPU
runs the kernels while the host issues the next ones, so such a step takes max(GPU time, host time): a long prompt
hides the host, a short one (batch-1 TTFT of a 61-layer MoE) is bound by it. NVIDIA's TensorRT-LLM 0.21 perf
overview shows it: DeepSeek-R1's batch-1 TTFT at 1,600 prompt tokens is 165 ms on 8 × H200 and 161 ms on 8 × B200,
although the B200 has 1.7× the bandwidth and 2.3× the FP4 rate (prompt_host.csv).

Host time of one prompt step:
  t_host = (L · h_layer + L_moe · h_moe + L_mla · h_mla) · (1 + (f_q − 1) · [quantised activations])
with the per-layer times h of the engine's row and f_q its ``quantised_factor``, applied where every linear layer
quantises its activations in blocks before a scale-carrying GEMM (block-scaled FP8 checkpoints computing in FP8,
NVFP4): one more kernel and more Python work per projection. Rows: SGLang (every version) and TensorRT-LLM before
1.0 for MLA models (DeepSeek-V3/R1 ran on its PyTorch backend only). No row, so prompt steps keep the roofline
with the eager floors: vLLM (V1 compiles the forward; piecewise graphs cover prompt steps up to their capture size)
and TensorRT-LLM from 1.0, whose offline throughput at load contradicts a floor of this size on its mixed context
+ generation steps (prompt_host.csv). DeepSeek-R1 (61 layers, 58 MoE, all MLA) in FP8 on SGLang:
(61 · 216 + 58 · 432 + 61 · 270) µs · 2.5 = 136.8 ms.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from gpuplan.hardware.csvrows import read_rows
from gpuplan.models.arch import Architecture
from gpuplan.optimizer.serving import terms
from gpuplan.optimizer.serving.calibration import VersionRange, prefer_version
from pydantic import ConfigDict, Field

from gpuplan.rows import Sourced

PROMPT_HOST_CSV = Path(__file__).with_name("prompt_host.csv")


class PromptHost(Sourced):
    """Per-layer host times (µs) of one engine's eager prompt step (``versions``: the engine versions the row
    holds for, empty = current; ``mla_only``: the row applies to MLA architectures only)."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    engine: str
    versions: VersionRange = None
    mla_only: bool = False
    dense_layer_us: float = Field(ge=0, le=10_000)
    moe_layer_us: float = Field(ge=0, le=10_000)
    mla_layer_us: float = Field(ge=0, le=10_000)
    quantised_factor: float = Field(ge=1, le=20)


@cache
def _rows(path: Path = PROMPT_HOST_CSV) -> tuple[PromptHost, ...]:
    return tuple(read_rows(path, PromptHost))


def quantised_activations(arch: Architecture, weights: str, compute: str) -> bool:
    """True where every linear layer quantises its activations in blocks: a block-scaled FP8 checkpoint
    (``Architecture.fp8_weight_block``) computing in FP8, or NVFP4 weights computing in FP4 (16-element activation
    blocks; on a GPU without FP4 the weights are dequantised and the activations stay in 16 bits)."""
    return (bool(arch.fp8_weight_block) and compute == "fp8") or (weights == "nvfp4" and compute == "fp4")


def prompt_host_s(arch: Architecture, engine: str, version: str | None, weights: str, compute: str) -> float:
    """Host time of one eager prompt step, s (module docstring); 0 where the engine's prompt steps are not
    modelled as host-bound (no row for the engine and version, or an ``mla_only`` row and a model without MLA)."""
    pool = prefer_version([r for r in _rows() if r.engine == engine.lower()], version)
    mla_layers = arch.layers if arch.mla is not None else 0
    rows = [r for r in pool if not r.mla_only or mla_layers]
    if not rows:
        return 0.0
    r = rows[0]
    moe_layers = sum(arch.moe_layers) if arch.moe else 0
    per_step_s = terms.layer_floor_s(arch.layers, moe_layers, mla_layers, r.dense_layer_us, r.moe_layer_us,
                                     r.mla_layer_us)  # the per-layer floors' sum, at the host's times
    factor = r.quantised_factor if quantised_activations(arch, weights, compute) else 1.0
    return float(per_step_s) * factor
