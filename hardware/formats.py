"""Number formats for weights and KV cache: bits per element including scales, and compute path."""

from __future__ import annotations

import difflib
from functools import cache
from pathlib import Path
from typing import Literal

from gpuplan.hardware.csvrows import read_rows
from gpuplan.hardware.errors import InputError
from pydantic import BaseModel, ConfigDict, Field

from gpuplan.rows import Sourced

FORMATS_CSV = Path(__file__).with_name("formats.csv")

Compute = Literal["bf16", "fp16", "fp8", "int8", "fp4"]
# Spellings of the same formats in engines' flags and Hugging Face configs (torch dtypes, vLLM's
# --kv-cache-dtype fp8_e4m3 / fp8_e5m2 and --quantization awq_marlin / gptq_marlin / modelopt_fp4); both FP8
# encodings are 8 bits a value, which is all the memory and step models read of them.
FORMAT_ALIASES = {"bfloat16": "bf16", "float16": "fp16", "half": "fp16", "fp8_e4m3": "fp8", "fp8-e4m3": "fp8",
                  "e4m3": "fp8", "float8_e4m3fn": "fp8", "fp8_e5m2": "fp8", "awq_marlin": "awq",
                  "gptq_marlin": "gptq", "modelopt_fp4": "nvfp4"}


class NumberFormat(Sourced):
    """One storage format.

    Effective bits per element = bits + (scale_bits + zero_bits) / group_size for grouped formats;
    per-channel formats (group_size = -1) add one scale per output row of each matrix.
    ``scope`` says which tensors take the format: ``all`` (textbook flat: every parameter),
    ``matrices`` (GGUF: every matrix incl. embeddings, vectors in 32 bits) or ``linear`` (real
    quantised checkpoints: linear layers only, embeddings/lm_head/norms in 16 bits).
    """

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    id: str
    kind: Literal["weight", "kv"]
    bits: float = Field(gt=0, le=32)
    group_size: int = Field(ge=-1)
    scale_bits: float = Field(ge=0)
    zero_bits: float = Field(ge=0)
    scope: Literal["all", "matrices", "linear"]
    compute: Compute
    native: str | None = None
    if_not_native: Literal["weight_only", "error"]
    vllm_quantization: str | None = None
    vllm_kv_cache_dtype: str | None = None

    @property
    def bits_per_element(self) -> float:
        """bits + group overhead; per-channel scales are added per matrix row by the memory model."""
        if self.group_size > 0:
            return self.bits + (self.scale_bits + self.zero_bits) / self.group_size
        return self.bits

    @property
    def per_row_bits(self) -> float:
        """Bits added per matrix row (per-channel scales), 0 for other layouts."""
        return self.scale_bits + self.zero_bits if self.group_size == -1 else 0.0

    @property
    def weight_only(self) -> bool:
        """Computes at 16 bits whatever the GPU (AWQ, GPTQ, GGUF, textbook int4)."""
        return self.compute in ("bf16", "fp16")


class FormatTable(BaseModel):
    weights: dict[str, NumberFormat]
    kv: dict[str, NumberFormat]
    path: str

    def weight(self, name: str) -> NumberFormat:
        return _pick(self.weights, name, "weight format", self.path)

    def kv_format(self, name: str) -> NumberFormat:
        return _pick(self.kv, name, "KV format", self.path)


def _pick(table: dict[str, NumberFormat], name: str, what: str, path: str) -> NumberFormat:
    key = name.strip().lower()
    key = key if key in table else FORMAT_ALIASES.get(key, key)
    if key in table:
        return table[key]
    close = difflib.get_close_matches(key, list(table), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise InputError(f"unknown {what} '{name}' (known: {', '.join(sorted(table))}){hint}")


@cache
def load_formats(path: Path = FORMATS_CSV) -> FormatTable:
    """Load the formats table; ids are unique per kind."""
    weights: dict[str, NumberFormat] = {}
    kv: dict[str, NumberFormat] = {}
    for i, row in enumerate(read_rows(path, NumberFormat), start=2):
        table = weights if row.kind == "weight" else kv
        if row.id in table:
            raise InputError(f"{path}, row {i}, column 'id': duplicate {row.kind} format '{row.id}'")
        table[row.id] = row
    return FormatTable(weights=weights, kv=kv, path=str(path))
