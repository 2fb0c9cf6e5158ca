"""How an engine stores routed-expert weights: padded to its MoE kernels' tile sizes (expert_layout.csv).

Grouped-GEMM kernels for quantised experts need the matrix dimensions in multiples of their tiles, so the
engine allocates the expert tensors padded and copies the checkpoint into them. The padding is memory that
holds no weights, and the kernels read the padded tiles every step. For an expert of hidden size H and
per-partition intermediate width I_p (the expert's intermediate size / GPUs per expert-parallel rank) with
gate_up (2·I_p × H) and down (H × I_p) matrices:

  f = [2 · ⌈H⌉_uh · ⌈I_p⌉_ui + ⌈H⌉_dh · ⌈I_p⌉_di] / (3 · H · I_p)      (gated experts; 2 matrices: the
                                                                       sum of one up and one down / 2)

with ⌈x⌉_a = x rounded up to a multiple of a, the table's alignments per (engine, version range, weight
format, GPU). Scales are padded with their matrices, so f applies to the experts' bytes. gpt-oss
(H = I = 2880) on one H100 with vLLM's Marlin backend (hidden → 3072, intermediate → 2944): f = 1.0904,
so 56.7 GiB of experts take 61.9 GiB and the model loads at 65.9 GiB (vLLM logs 65.97); with the Triton
backend's Hopper layout f = 1.0601 (64.2 GiB; vLLM 0.14.1 logs 64.38). A deployment the table has no row
for stores its experts unpadded (f = 1).
"""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path

from gpuplan.hardware.csvrows import read_rows
from gpuplan.hardware.formats import NumberFormat
from gpuplan.models.arch import Architecture
from gpuplan.models.breakdown import Breakdown
from gpuplan.optimizer.serving.calibration import VersionRange, prefer_version
from gpuplan.optimizer.serving.layout import routed_expert_bytes
from pydantic import ConfigDict, Field

from gpuplan.rows import Sourced

EXPERT_LAYOUT_CSV = Path(__file__).with_name("expert_layout.csv")


class ExpertLayout(Sourced):
    """The tile alignments of one engine's MoE backend for one weight format on some GPUs (``versions``: the
    engine versions it holds for; empty = current)."""

    model_config = ConfigDict(frozen=True)

    engine: str
    versions: VersionRange = None
    weights: str
    gpus: str = Field(min_length=1)  # GPU ids, ';'-separated
    backend: str
    up_hidden_align: int = Field(ge=1)
    up_intermediate_align: int = Field(ge=1)
    down_hidden_align: int = Field(ge=1)
    down_intermediate_align: int = Field(ge=1)

    @property
    def gpu_ids(self) -> frozenset[str]:
        return frozenset(g.strip() for g in self.gpus.split(";") if g.strip())


@cache
def _layouts(path: Path = EXPERT_LAYOUT_CSV) -> tuple[ExpertLayout, ...]:
    return tuple(read_rows(path, ExpertLayout))


def expert_layout(engine: str, weights: str, gpu_id: str, version: str | None = None) -> ExpertLayout | None:
    """The row for ``engine`` storing ``weights`` on ``gpu_id``: one whose ``versions`` range holds ``version``
    wins over the row without a range (the current release); None when the table has none."""
    rows = [r for r in _layouts() if r.engine == engine.lower() and r.weights == weights and gpu_id in r.gpu_ids]
    pool = prefer_version(rows, version)
    return pool[0] if pool else None


def round_up(x: float, align: int) -> float:
    """x rounded up to a multiple of ``align``."""
    return -(-x // align) * align


def padding_factor(hidden: int, intermediate_per_partition: float, layout: ExpertLayout | None,
                   gated: bool = True) -> float:
    """f = stored / checkpoint elements of one expert (module docstring); 1 without a layout."""
    if layout is None or intermediate_per_partition <= 0:
        return 1.0
    i = intermediate_per_partition
    up = round_up(hidden, layout.up_hidden_align) * round_up(i, layout.up_intermediate_align)
    down = round_up(hidden, layout.down_hidden_align) * round_up(i, layout.down_intermediate_align)
    n_up = 2 if gated else 1
    return (n_up * up + down) / ((n_up + 1) * hidden * i)


def expert_padding(arch: Architecture, engine: str, weights: str, gpu_id: str, tp: int, ep: int = 1,
                   version: str | None = None) -> float:
    """f of ``arch``'s routed experts served by ``engine`` at TP ``tp`` with ``ep`` expert-parallel ranks:
    each expert is split over tp / ep GPUs, so I_p = expert intermediate / (tp / ep)."""
    if arch.moe is None:
        return 1.0
    row = expert_layout(engine, weights, gpu_id, version)
    return padding_factor(arch.hidden, arch.moe.expert_intermediate / (tp // ep), row, arch.moe.gated)


def padded_breakdown(b: Breakdown, arch: Architecture, wfmt: NumberFormat, padding: float) -> Breakdown:
    """The memory breakdown with the routed experts at the engine's stored size: weights and total grow by
    experts × (f − 1) (over all GPUs of the breakdown, which hold the experts once between them)."""
    extra = math.ceil(routed_expert_bytes(arch, wfmt) * (padding - 1.0)) if padding > 1.0 else 0
    if not extra:
        return b
    return b.model_copy(update={"weights_bytes": b.weights_bytes + extra, "total_bytes": b.total_bytes + extra})
