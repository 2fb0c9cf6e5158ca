"""One deployment, evaluated: memory breakdown and fit (``memory``) and the roofline (``perf``)."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from gpuplan.hardware.formats import NumberFormat
from gpuplan.hardware.gpus import GPU
from gpuplan.models.arch import Architecture
from gpuplan.models.breakdown import Breakdown, Mode, fit, inference_breakdown, training_breakdown
from gpuplan.models.catalog import Model, resolve
from gpuplan.models.memory import GIB
from gpuplan.optimizer.errors import InputError
from gpuplan.optimizer.serving.calibration import CalibrationRow, checked_version, engine_id
from gpuplan.optimizer.serving.curves import serving_curve
from gpuplan.optimizer.serving.engine_capacity import (
    max_sequences,
    profile_activation_bytes,
    tp_pool_bytes,
    with_activation,
)
from gpuplan.optimizer.serving.expert_layout import expert_padding, padded_breakdown
from gpuplan.optimizer.serving.kv_capacity import reported_tokens
from gpuplan.optimizer.serving.layout import Layout, make_layout, weights_bytes_per_gpu
from gpuplan.optimizer.serving.roofline import step_terms_s
from gpuplan.optimizer.serving.shape import compute_path
from gpuplan.optimizer.tables import DEFAULT, Tables
from pydantic import BaseModel

MAX_BATCH = 4096


class Frame(BaseModel):
    """Pydantic result with a one-row (or many-row) pandas view for notebooks."""

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([self.model_dump(mode="json")])


def default_engine(gpu: GPU, wfmt: NumberFormat) -> str:
    """llama.cpp for Apple silicon and GGUF formats, vLLM otherwise."""
    if gpu.vendor.lower() == "apple" or wfmt.vllm_quantization == "gguf":
        return "llama.cpp"
    return "vllm"


def chosen_engine(engine: str | None, gpu: GPU, wfmt: NumberFormat) -> str:
    """The engine asked for, as its id ("SGLang" → sglang: calibration.engine_id), else ``default_engine``."""
    return engine_id(engine) if engine else default_engine(gpu, wfmt)


PCIE_HOST_GPUS = 8


def max_tp(gpu: GPU) -> int:
    """Largest TP group: the NVLink/fabric domain, or up to 8 cards behind one PCIe host (bridged pairs
    talk over PCIe beyond the pair); 1 for GPUs without a PCIe host link (Apple, GH200)."""
    if gpu.pcie_gb_s:
        return max(gpu.nvlink_domain, PCIE_HOST_GPUS)
    return gpu.nvlink_domain


def check_tp(arch: Architecture, gpu: GPU, tp: int, model_id: str) -> None:
    if tp < 1:
        raise InputError(f"--tp must be ≥ 1, got {tp}")
    if tp > max_tp(gpu):
        raise InputError(f"TP {tp} exceeds {gpu.id}'s largest tensor-parallel group ({max_tp(gpu)} GPUs, "
                         f"link '{gpu.link}'); pipeline parallelism across nodes is not modelled")
    check_attention_tp(arch, tp, model_id)


def check_attention_tp(arch: Architecture, tp: int, model_id: str) -> None:
    if arch.heads % tp:
        raise InputError(f"TP {tp} does not divide {model_id}'s {arch.heads} attention heads")
    if arch.mla is None and arch.kv_heads % tp and tp % arch.kv_heads:
        raise InputError(f"TP {tp} and {model_id}'s {arch.kv_heads} KV heads do not divide one another")


def _positive(name: str, value: int) -> None:
    if value is None or value <= 0:
        raise InputError(f"{name} must be a positive integer, got {value}")


class MemoryReport(Frame):
    model: str
    mode: str
    weights: str
    kv: str
    context: int
    batch: int
    gpu: str | None
    gpus: int
    weights_bytes: int
    kv_cache_bytes: int
    activation_bytes: int
    overhead_bytes: int
    gradient_bytes: int
    optimizer_bytes: int
    adapter_bytes: int
    total_bytes: int
    weights_gib: float
    kv_cache_gib: float
    activation_gib: float
    overhead_gib: float
    gradient_gib: float
    optimizer_gib: float
    adapter_gib: float
    total_gib: float
    per_gpu_gib: float
    trainable_params: int
    fits: bool | None = None
    max_sequences: int | None = None
    capacity_gib: float | None = None
    kv_pool_gib: float | None = None  # the engine's KV pool on each GPU (vLLM 'Available KV cache memory')
    engine_kv_tokens: int | None = None  # the tokens the engine logs for that pool (vLLM 'GPU KV cache size')
    warnings: list[str] = []


def memory(model: str | Model, weights: str = "bf16", kv: str = "bf16", context: int = 4096, batch: int = 1,
           mode: Mode = "inference", gpu: str | None = None, gpus: int = 1,
           overhead_fraction: float | None = None, optimizer: Literal["adamw", "sgd"] = "adamw",
           zero_stage: int = 0, checkpointing: bool = True, lora_rank: int = 16, engine: str | None = None,
           tables: Tables = DEFAULT) -> MemoryReport:
    """Memory breakdown of a model at a context and batch; with ``gpu``, fit and max sequences."""
    m = model if isinstance(model, Model) else resolve(model)
    _positive("context", context)
    _positive("batch", batch)
    _positive("gpus", gpus)
    if overhead_fraction is not None and not 0 <= overhead_fraction < 10:
        raise InputError(f"--overhead-fraction must be in [0, 10), got {overhead_fraction}")
    wfmt, kvfmt = tables.formats.weight(weights), tables.formats.kv_format(kv)
    warnings: list[str] = []
    g = tables.gpus.get(gpu) if gpu else None
    cal = None
    if g is not None:
        cal = tables.calibration.lookup(chosen_engine(engine, g, wfmt), g.id, g.vendor)
        if mode == "inference":
            check_tp(m.arch, g, gpus, m.id)
        warnings += [w for w in [compute_path(g, wfmt)[1]] if w]
    if m.arch.max_context and context > m.arch.max_context:
        warnings.append(f"context {context} exceeds {m.id}'s max_position_embeddings ({m.arch.max_context})")
    runtime = cal.runtime_overhead_gib if cal else 1.0
    if mode == "inference":
        b = inference_breakdown(m.arch, wfmt, kvfmt, context, batch, gpus, overhead_fraction, runtime)
        if g is not None and cal is not None:
            b, note = _engine_stored(b, m, wfmt, cal.engine, g.id, gpus)
            warnings += [note] if note else []
            if overhead_fraction is None:
                b = with_activation(b, profile_activation_bytes(m.arch, cal.engine, g, gpus))
    else:
        if mode == "qlora" and weights == "bf16":
            wfmt = tables.formats.weight("nf4")
            weights = "nf4"
        b = training_breakdown(m.arch, mode, wfmt, context, batch, gpus, optimizer, zero_stage, checkpointing,
                               lora_rank, overhead_fraction, runtime)
    fields = {k: getattr(b, k) for k in ("weights_bytes", "kv_cache_bytes", "activation_bytes", "overhead_bytes",
                                         "gradient_bytes", "optimizer_bytes", "adapter_bytes", "total_bytes")}
    report = dict(model=m.id, mode=mode, weights=wfmt.id, kv=kvfmt.id, context=context, batch=batch,
                  gpu=g.id if g else None, gpus=gpus, trainable_params=b.trainable_params, warnings=warnings,
                  per_gpu_gib=b.total_bytes / gpus / GIB, **fields,
                  **{k.replace("_bytes", "_gib"): v / GIB for k, v in fields.items()})
    if g is not None and cal is not None:
        textbook = overhead_fraction is not None
        f = fit(b, m.arch, kvfmt if mode == "inference" else None, context, g.memory_bytes,
                cal.mem_util, textbook)
        report.update(fits=f.fits, max_sequences=f.max_sequences, capacity_gib=f.capacity_bytes / GIB)
        if mode == "inference" and not textbook:
            report.update(_engine_kv(m, g, wfmt, kvfmt, gpus, context, cal))
    return MemoryReport(**report)


def _engine_kv(m: Model, g: GPU, wfmt: NumberFormat, kvfmt: NumberFormat, tp: int, context: int,
               cal: CalibrationRow) -> dict[str, float | int]:
    """The engine's KV pool per GPU (engine_capacity.tp_pool_bytes), the token count it would log for it
    (kv_capacity.reported_tokens) and the sequences of ``context`` tokens it holds (vLLM: window layers up to the window
    plus one step), as ``perf`` counts them."""
    pool = tp_pool_bytes(m.arch, g, wfmt, tp, context, cal)
    return {"kv_pool_gib": round(pool / GIB, 4),
            "engine_kv_tokens": reported_tokens(m.arch, kvfmt, cal.engine, pool, tp),
            "max_sequences": max_sequences(m.arch, g, wfmt, kvfmt, tp, context, cal)}


def _engine_stored(b: Breakdown, m: Model, wfmt: NumberFormat, engine: str, gpu_id: str,
                   tp: int) -> tuple[Breakdown, str | None]:
    """The breakdown with the routed experts at the size ``engine`` stores them on ``gpu_id``
    (expert_layout.csv, current release), and a note saying so when they are padded."""
    f = expert_padding(m.arch, engine, wfmt.id, gpu_id, tp)
    padded = padded_breakdown(b, m.arch, wfmt, f)
    if padded is b:
        return b, None
    extra = (padded.weights_bytes - b.weights_bytes) / GIB
    return padded, (f"{engine} stores {wfmt.id} experts padded to its MoE kernels' tiles on {gpu_id}: "
                    f"+{extra:.2f} GiB of weights (×{f:.4f} on the experts; expert_layout.csv)")


class PerfReport(Frame):
    model: str
    gpu: str
    tp: int
    ep: int = 1
    attn_dp: int = 1
    weights: str
    kv: str
    engine: str
    engine_version: str | None = None  # the engine release the calibration and defaults were read for (None: current)
    input_tokens: int
    output_tokens: int
    batch: int
    utilization: float
    tpot_ms: float
    ttft_ms: float
    step_ms: float  # one decode step at this batch, before prefill interleaving
    prefill_ms: float
    decode_tok_s: float
    decode_tok_s_per_user: float
    prefill_tok_s: float
    bound: Literal["memory", "compute"]
    max_batch: int
    fits: bool
    max_batch_for_tpot: int | None = None
    weights_gib_per_gpu: float
    kv_gib_per_sequence: float
    # where one decode step's time goes (roofline.step_terms_s), ms: linear = ((dense_read + expert_read)³ +
    # gemm_compute³)^⅓, attention = max(kv_read, attention_compute); step = linear + attention + all_reduce +
    # all_to_all + layer_floors + host
    step_terms_ms: dict[str, float] = {}
    warnings: list[str] = []


def max_batch_in_memory(m: Model, g: GPU, wfmt: NumberFormat, kvfmt: NumberFormat, tp: int, context: int,
                        cal: CalibrationRow, layout: Layout | None = None, engine_version: str | None = None,
                        fraction: float | None = None) -> int:
    """Largest number of ``context``-token sequences the KV budget of a TP group (or EP layout) holds
    (engine_capacity.max_sequences: the engine's memory cap at ``engine_version``, the current release by
    default, or the server's memory ``fraction``)."""
    return min(max_sequences(m.arch, g, wfmt, kvfmt, tp, context, cal, layout, engine_version, fraction=fraction),
               MAX_BATCH)


def perf(model: str | Model, gpu: str, weights: str = "bf16", kv: str = "bf16", tp: int = 1,
         input_tokens: int = 1024, output_tokens: int = 256, batch: int = 1, engine: str | None = None,
         tpot_ms: float | None = None, utilization: float = 0.0, tables: Tables = DEFAULT, *, ep: int = 1,
         attn_dp: int | None = None, engine_version: str | None = None, cuda_graphs: bool = True) -> PerfReport:
    """TPOT, TTFT and throughput of one replica at ``batch`` (utilization 0 = an isolated request).
    ``ep`` splits MoE experts over expert-parallel ranks; ``attn_dp`` runs attention data-parallel
    (default: ep when ep > 1); ``cuda_graphs`` False: a server without CUDA graphs."""
    m = model if isinstance(model, Model) else resolve(model)
    g = tables.gpus.get(gpu)
    engine_version = checked_version(engine_version)
    _positive("input tokens", input_tokens)
    _positive("output tokens", output_tokens)
    _positive("batch", batch)
    if not 0 <= utilization <= 1:
        raise InputError(f"utilization must be in [0, 1], got {utilization}")
    wfmt, kvfmt = tables.formats.weight(weights), tables.formats.kv_format(kv)
    layout = make_layout(m.arch, tp, ep, attn_dp)
    check_tp(m.arch, g, layout.attn_tp, m.id) if layout.attn_dp > 1 else check_tp(m.arch, g, tp, m.id)
    eng = chosen_engine(engine, g, wfmt)
    cal = tables.calibration.lookup(eng, g.id, g.vendor, g.arch, engine_version)
    context = input_tokens + output_tokens
    curve = serving_curve(m, g, wfmt, kvfmt, layout, cal, input_tokens, output_tokens, [batch], utilization,
                          engine_version, cuda_graphs)
    op, t_pre = curve.op, curve.ttft_prefill_s
    limit = max_batch_in_memory(m, g, wfmt, kvfmt, tp, context, cal, layout, engine_version)
    best_for_tpot = None
    if tpot_ms is not None:
        grid = np.arange(1, max(limit, 1) + 1, dtype=float)
        tpots = serving_curve(m, g, wfmt, kvfmt, layout, cal, input_tokens, output_tokens, grid,
                              utilization, engine_version, cuda_graphs).op["tpot"] * 1e3
        ok = np.nonzero((tpots <= tpot_ms) & (grid <= limit))[0]
        best_for_tpot = int(grid[ok[-1]]) if ok.size else 0
    tpot = float(op["tpot"][0])
    return PerfReport(
        model=m.id, gpu=g.id, tp=tp, ep=layout.ep, attn_dp=layout.attn_dp, weights=wfmt.id, kv=kvfmt.id,
        engine=eng, engine_version=engine_version, input_tokens=input_tokens, output_tokens=output_tokens,
        batch=batch, utilization=utilization, tpot_ms=tpot * 1e3,
        ttft_ms=float(op["ttft"][0]) * 1e3, step_ms=float(curve.step_s[0]) * 1e3, prefill_ms=t_pre * 1e3,
        decode_tok_s=batch / tpot,
        decode_tok_s_per_user=1.0 / tpot, prefill_tok_s=input_tokens / t_pre,
        bound="memory" if bool(curve.memory_bound[0]) else "compute", max_batch=limit, fits=batch <= limit,
        max_batch_for_tpot=best_for_tpot,
        weights_gib_per_gpu=weights_bytes_per_gpu(m.arch, wfmt, layout, expert_padding(
            m.arch, eng, wfmt.id, g.id, tp, layout.ep, engine_version)) / GIB,
        kv_gib_per_sequence=curve.shape.kv_bytes_per_seq / GIB,
        step_terms_ms={k: round(float(np.ravel(v)[0]) * 1e3, 6) for k, v in step_terms_s(curve.shape, batch).items()},
        warnings=[w for w in [curve.warning] if w] + ([] if batch <= limit else
                                               [f"batch {batch} does not fit: at most {limit} sequences of "
                                                f"{context} tokens"]),
    )
