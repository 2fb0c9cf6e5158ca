"""Query tiles of the prefill attention kernels that stream the keys once per small tile (prefill_tiles.csv).

A flash-attention prefill kernel holds a tile of 64-128 query rows and streams every key and value its
queries see through it, so it is compute-bound at long context. vLLM's unified Triton attention kernel, the
default prefill path of vLLM V1 on ROCm from 0.9.1 to 0.18 (TRITON_ATTN when AITER is off), holds only
BLOCK_M = 16 query rows (BLOCK_Q = 16 / g tokens of one KV head's g query heads): each of its programs
re-reads the whole prefix's K and V for 2 · BLOCK_Q · g FLOPs per byte at 16 bits. With 8 query heads per
KV head that is 16 FLOP/B, below the 300-600 FLOP/B at which an MI300X or MI355X turns compute-bound, so
long prompts run at the GPU's memory bandwidth × 16 (terms.prefill_attention_rate_flops_s).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from gpuplan.hardware.csvrows import read_rows
from gpuplan.optimizer.serving.calibration import VersionRange, prefer_version
from pydantic import ConfigDict, Field

from gpuplan.rows import Sourced

PREFILL_TILES_CSV = Path(__file__).with_name("prefill_tiles.csv")


class PrefillTile(Sourced):
    """The query rows ``block_m`` one program of the engine's default prefill attention kernel holds on GPUs
    of ``vendor`` (``versions``: the engine versions it holds for; a row without a range: the current release)."""

    model_config = ConfigDict(frozen=True)

    vendor: str
    engine: str
    versions: VersionRange = None
    block_m: int = Field(ge=1, le=4096)


@cache
def _tiles(path: Path = PREFILL_TILES_CSV) -> tuple[PrefillTile, ...]:
    return tuple(read_rows(path, PrefillTile))


@cache
def tile_block_m(engine: str, vendor: str, version: str | None = None) -> int:
    """BLOCK_M of the engine's prefill attention kernel where it streams keys per small query tile, else 0 (a
    flash-attention kernel with large tiles: no streaming floor). Rows whose range holds ``version`` win over
    rows without a range (calibration.prefer_version)."""
    rows = [r for r in _tiles() if r.engine == engine.lower() and r.vendor == vendor.lower()]
    pool = prefer_version(rows, version)
    return pool[0].block_m if pool else 0


def tile_query_rows(block_m: int, queries_per_kv: int) -> int:
    """Query rows one program computes: BLOCK_Q · g with g = ``queries_per_kv`` query heads per KV head,
    BLOCK_M = ``block_m`` if g ≤ block_m else the next power of two ≥ g, and BLOCK_Q = BLOCK_M // g tokens
    (vLLM's unified_attention). g = 8, BLOCK_M = 16: 2 tokens × 8 heads = 16 rows; g = 7: 2 × 7 = 14."""
    g = max(int(queries_per_kv), 1)
    tile = block_m if g <= block_m else 1 << (g - 1).bit_length()
    return (tile // g) * g


def tile_flops_per_byte(query_rows: int, kv_bytes_per_element: float) -> float:
    """Arithmetic intensity of one program: per key it loads K and V, 2 · d · b_kv bytes, and computes
    QKᵀ and PV for its rows, 4 · d · rows FLOPs: 2 · rows / b_kv FLOP/B (16 rows of a 16-bit cache: 16)."""
    return 2.0 * query_rows / kv_bytes_per_element
