"""Efficiencies and fixed latencies per (engine, GPU): the calibratable part of the step model.

A row applies to an engine, an optional engine version range and a GPU selector: an exact GPU id,
``gen:<generation>`` (the first word of the GPU table's ``arch``, e.g. ``gen:hopper``, ``gen:blackwell``,
``gen:cdna``), ``vendor:<name>`` (e.g. ``vendor:amd``) or ``*``. The most specific matching row wins
(id > gen > vendor > *); at equal specificity a row whose ``versions`` range contains the engine version
beats a row without a range. A range is comma-separated bounds such as ``>=0.8,<0.11``.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Annotated

from gpuplan.hardware.csvrows import read_rows
from gpuplan.optimizer.errors import InputError
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from gpuplan.rows import Sourced

CALIBRATION_CSV = Path(__file__).with_name("calibration.csv")
# Hand-set, sourced starting values: 'gpuplan calibrate' fits calibration.csv from these, and
# leave-one-source-out validation refits from these (never from a table fitted on the held-out rows).
DEFAULTS_CSV = Path(__file__).with_name("calibration_defaults.csv")
ENGINES = ("vllm", "sglang", "trtllm", "llama.cpp")
# Other spellings of the engines as benchmarks and papers write them (the server or bench command included).
ENGINE_ALIASES = {"tensorrt-llm": "trtllm", "tensorrtllm": "trtllm", "trt-llm": "trtllm", "trtllm-serve": "trtllm",
                  "trtllm-bench": "trtllm", "llamacpp": "llama.cpp", "llama-cpp": "llama.cpp",
                  "llama-server": "llama.cpp", "vllm-serve": "vllm"}


def engine_id(name: str) -> str:
    """The engine's id for a name as people write it: case, spaces and underscores aside ("vLLM", "SGLang",
    "TensorRT-LLM", "tensorrt_llm", "trtllm-serve" → vllm, sglang, trtllm); an unknown name comes back
    lower-cased for the caller's own error."""
    key = re.sub(r"[\s_]+", "-", name.strip().lower())
    return ENGINE_ALIASES.get(key, key)


# Defaults of the step-model columns (see README "Step model"): per-layer floors from the 70–180 µs per
# layer that batch-1 DeepSeek-R1 decode on 8 GPUs shows, split by layer kind; tile M of Hopper wgmma
# (64 rows); 8192-token prefill chunks (vLLM max_num_batched_tokens, SGLang chunked_prefill_size).
DEFAULT_SEQ_US = 5.0
# DeepGEMM's README (H800, FP8): grouped GEMMs for MoE reach 1093-1297 TFLOPS (contiguous layout, 4096-8192
# rows per expert) and 925-1233 (masked, 1024 rows) against 990-1358 for dense GEMMs at M = 4096; at the
# tens to hundreds of rows per expert of decode even dense GEMMs fall to 295-645 TFLOPS. 0.75 sits between.
DEFAULT_ETA_MOE = 0.75
DEFAULT_LAYER_US = 20.0
DEFAULT_MOE_LAYER_US = 40.0
DEFAULT_MLA_LAYER_US = 25.0
DEFAULT_GEMM_TILE_M = 64.0
DEFAULT_EAGER_FLOOR_SCALE = 1.0
DEFAULT_ATTN_CTX_HALF_TOKENS = 131072.0
DEFAULT_REQUEST_MS = 15.0
DEFAULT_CHUNK_TOKENS = 8192.0
DEFAULT_MAX_SEQS = 1024


def _check_range(v: str | None) -> str | None:
    """A ``versions`` cell: empty, or comma-separated bounds such as '>=0.8,<0.11' (a malformed one raises)."""
    if v is not None:
        _parse_range(v)
    return v


VersionRange = Annotated[str | None, AfterValidator(_check_range)]  # the ``versions`` column of engine tables


class CalibrationRow(Sourced):
    """η_mem: achieved / peak DRAM bandwidth in decode; η_cmp, η_prefill: achieved / peak dense FLOP/s;
    t_fixed_ms: per-step latency of the engine outside the model (scheduler, sampler, detokeniser);
    comm_latency_us: the engine's own cost per collective, added to the link's α (links.csv);
    runtime_overhead_gib: per-GPU memory outside weights, KV and activations; mem_util: fraction of GPU
    memory the engine may use. Columns added with the step model (defaults when a CSV lacks them):
    eta_moe: grouped-GEMM (routed experts) throughput relative to a dense GEMM; seq_us: host time per
    running sequence per step (scheduling, sampling, detokenising, output
    processing); layer_us: fixed time per transformer layer per step; moe_layer_us, mla_layer_us: extra per MoE / MLA
    layer; gemm_tile_m: rows of one grouped-GEMM tile (expert GEMMs are padded to it); eager_floor_scale: the
    per-layer floors of a step that carries prompt tokens, relative to a decode step's (engines capture decode
    steps in CUDA graphs and launch prefill steps' kernels one by one from the host);
    attn_ctx_half_tokens: context at which decode attention reaches half of η_mem (0 = off);
    request_ms: per-request latency in TTFT (HTTP, tokenisation, scheduling); chunk_tokens: prefill
    tokens per engine step (chunked prefill); max_seqs: the scheduler's cap on running sequences
    (vLLM --max-num-seqs, TensorRT-LLM max_batch_size, SGLang --max-running-requests); blockfp8_kblock_us: time
    of one 128-wide K-block step of a latency-bound block-scale FP8 GEMM (terms.blockscale_kloop_s; 0: the
    engine's block-scale GEMMs are not latency-bound on these GPUs)."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    engine: str
    gpu: str
    versions: VersionRange = None
    eta_mem: float = Field(ge=1e-3, le=1)  # bounds: physical (0.1 % of peak, a second per layer), so no ratio overflows
    eta_cmp: float = Field(ge=1e-3, le=1)
    eta_prefill: float = Field(ge=1e-3, le=1)
    t_fixed_ms: float = Field(ge=0, le=1e6)
    comm_latency_us: float = Field(ge=0, le=1e9)
    runtime_overhead_gib: float = Field(ge=0, le=1e5)
    mem_util: float = Field(ge=0.01, le=1)
    eta_moe: float = Field(default=DEFAULT_ETA_MOE, ge=1e-3, le=1)
    seq_us: float = Field(default=DEFAULT_SEQ_US, ge=0, le=1e6)
    layer_us: float = Field(default=DEFAULT_LAYER_US, ge=0, le=1e6)
    moe_layer_us: float = Field(default=DEFAULT_MOE_LAYER_US, ge=0, le=1e6)
    mla_layer_us: float = Field(default=DEFAULT_MLA_LAYER_US, ge=0, le=1e6)
    gemm_tile_m: float = Field(default=DEFAULT_GEMM_TILE_M, ge=1, le=4096)
    eager_floor_scale: float = Field(default=DEFAULT_EAGER_FLOOR_SCALE, ge=1, le=100)
    attn_ctx_half_tokens: float = Field(default=DEFAULT_ATTN_CTX_HALF_TOKENS, ge=0, le=1e9)
    request_ms: float = Field(default=DEFAULT_REQUEST_MS, ge=0, le=1e6)
    chunk_tokens: float = Field(default=DEFAULT_CHUNK_TOKENS, ge=1, le=1e9)
    max_seqs: int = Field(default=DEFAULT_MAX_SEQS, ge=1)
    blockfp8_kblock_us: float = Field(default=0.0, ge=0, le=100)


def _version_tuple(v: str) -> tuple[int, ...]:
    parts = re.findall(r"\d+", v)
    if not parts:
        raise ValueError(f"not a version: '{v}'")
    return tuple(int(p) for p in parts[:3])


def _parse_range(spec: str) -> list[tuple[str, tuple[int, ...]]]:
    out = []
    for bound in spec.split(","):
        m = re.fullmatch(r"\s*(>=|<=|>|<|==)\s*([0-9][0-9A-Za-z.]*)\s*", bound)
        if not m:
            raise ValueError(f"version bound '{bound.strip()}' is not like '>=0.8' or '<0.11'")
        out.append((m.group(1), _version_tuple(m.group(2))))
    return out


VERSION_PATTERN = r"v?\d+(\.\d+){0,3}([.+-]?[0-9A-Za-z]+){0,4}"


def checked_version(version: str | None) -> str | None:
    """An engine version as given ('0.11.0', 'v0.4.6.post1', '1.2.0rc1'), or an InputError naming it."""
    if version is not None and not re.fullmatch(VERSION_PATTERN, version.strip()):
        raise InputError(f"engine version '{version[:40]}' is not like '0.11.0' or '1.2.0rc1'")
    return None if version is None else version.strip()


def version_in_range(version: str, spec: str) -> bool:
    """Does ``version`` (e.g. '0.10.1', 'v0.4.6.post1') satisfy every bound of ``spec``?"""
    v = _version_tuple(version)
    checks = {">=": v.__ge__, "<=": v.__le__, ">": v.__gt__, "<": v.__lt__, "==": v.__eq__}
    return all(checks[op](bound) for op, bound in _parse_range(spec))


def prefer_version(rows: list, version: str | None) -> list:
    """The rows (with a ``versions`` attribute) whose range holds ``version``, else those without a range."""
    ranged = [r for r in rows if r.versions and version and version_in_range(version, r.versions)]
    return ranged or [r for r in rows if not r.versions]


def generation(arch: str) -> str:
    """GPU generation from the hardware table's ``arch`` text: its first word, lower case."""
    return (arch.split() or [""])[0].lower()


class Calibration(BaseModel):
    rows: tuple[CalibrationRow, ...]
    path: str

    def lookup(self, engine: str, gpu_id: str, vendor: str, arch: str = "",
               version: str | None = None) -> CalibrationRow:
        """Most specific row for (engine, version, GPU): exact id, then gen:<generation>, vendor:<name>, *."""
        engine = engine.lower()
        if engine not in {r.engine for r in self.rows}:
            known = ", ".join(sorted({r.engine for r in self.rows}))
            raise InputError(f"unknown engine '{engine}' in {self.path} (known: {known})")
        selectors = [gpu_id.lower(), f"gen:{generation(arch)}" if arch else None, f"vendor:{vendor.lower()}", "*"]
        for selector in [s for s in selectors if s]:
            rows = prefer_version([r for r in self.rows if r.engine == engine and r.gpu == selector], version)
            if rows:
                return rows[0]
        raise InputError(f"{self.path}: no calibration row for engine '{engine}' and GPU '{gpu_id}' (add a '*' row)")


@cache
def load_calibration(path: Path = CALIBRATION_CSV) -> Calibration:
    rows = tuple(read_rows(path, CalibrationRow))
    seen: set[tuple[str, str, str | None]] = set()
    for i, row in enumerate(rows, start=2):
        key = (row.engine, row.gpu, row.versions)
        if key in seen:
            raise InputError(f"{path}, row {i}: duplicate calibration for engine '{row.engine}', GPU '{row.gpu}'")
        seen.add(key)
    return Calibration(rows=rows, path=str(path))
