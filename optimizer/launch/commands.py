"""The launch line of a deployment: its checkpoint, then the engine command (or why there is none)."""

from __future__ import annotations

import math
from typing import Protocol

from gpuplan.hardware.formats import NumberFormat
from gpuplan.models.breakdown import inference_breakdown
from gpuplan.models.catalog import Model, resolve
from gpuplan.optimizer.launch.checkpoints import resolve_checkpoint
from gpuplan.optimizer.launch.engines import EngineArgs, Unsupported, engine_version, shell
from gpuplan.optimizer.planning.workload import Workload
from gpuplan.optimizer.serving.calibration import CalibrationRow
from gpuplan.optimizer.serving.engine_capacity import engine_cap
from gpuplan.optimizer.tables import Tables
from pydantic import BaseModel


class Shape(Protocol):
    """A replica shape: a candidate, or a plan deployment (both carry these fields)."""

    gpu: str
    weights: str
    kv: str
    tp: int
    batch: int
    engine: str
    max_model_len: int
    gpus_per_instance: int


class Launch(BaseModel):
    """A deployment's engine command, or ``missing``: one line saying what to do first."""

    args: EngineArgs | None
    missing: str | None = None

    @property
    def line(self) -> str:
        return shell(self.args) if self.args is not None else f"# {self.missing}"


def kv_pool_tokens(w: Workload, c: Shape) -> int:
    """Tokens the plan's memory model reserved for KV: ``batch`` sequences of input + output tokens, and at
    least one sequence of ``max_context`` (candidate generation checks both fit)."""
    return max(c.batch * (w.input_tokens + w.output_tokens), c.max_model_len)


def trtllm_kv_fraction(m: Model, gpu_memory_bytes: int, wfmt: NumberFormat, kvfmt: NumberFormat, tp: int,
                       context: int, cal: CalibrationRow) -> float:
    """TensorRT-LLM sizes its KV pool as a fraction of the memory left after loading: the fraction that
    gives the KV budget the plan counted.

    f = (mem_util × C − fixed) / (C − fixed), C = GPU memory × tp, fixed = weights + activation peak +
    runtime overhead (the memory model's terms at one ``context`` sequence); rounded down to 0.001.
    """
    b = inference_breakdown(m.arch, wfmt, kvfmt, context, 1, tp, None, cal.runtime_overhead_gib)
    fixed = b.total_bytes - b.kv_cache_bytes
    cap = gpu_memory_bytes * tp
    return max(0.001, math.floor(1000 * (cal.mem_util * cap - fixed) / (cap - fixed)) / 1000)


def plan_launch(w: Workload, c: Shape, tables: Tables, dp: int = 1, ep: int = 1) -> Launch:
    """Engine arguments for ``dp`` replicas of candidate ``c`` of workload ``w`` on one instance."""
    m = resolve(w.model)
    got = resolve_checkpoint(m, c.weights, c.engine, w.checkpoint)
    if got.checkpoint is None:
        return Launch(args=None, missing=got.missing)
    g = tables.gpus.get(c.gpu)
    cal = tables.calibration.lookup(c.engine, g.id, g.vendor)
    attn_dp = ep if ep > 1 and c.tp % ep == 0 else 1  # the step model's EP layout
    # SGLang: the weights + KV cap the plan's KV budget assumed (its own default from 0.5.3, engine_capacity.engine_cap)
    sglang_cap = engine_cap(cal, g, c.tp, attn_dp) if c.engine == "sglang" else None
    fraction = cal.mem_util if sglang_cap is None else sglang_cap
    if c.engine == "trtllm":
        fraction = trtllm_kv_fraction(m, g.memory_bytes, tables.formats.weight(c.weights),
                                      tables.formats.kv_format(c.kv), c.tp, c.max_model_len, cal)
    try:
        args = EngineArgs(engine=c.engine, checkpoint=got.checkpoint, kv=c.kv, tp=c.tp, dp=dp, ep=ep,
                          attn_dp=attn_dp,
                          max_seqs=c.batch, max_model_len=c.max_model_len, kv_pool_tokens=kv_pool_tokens(w, c),
                          memory_fraction=fraction,
                          served_name=m.id if m.hf_repo else got.checkpoint.checkpoint)  # config path: its repo
        shell(args)  # every flag and value checked against the engine's table
    except Unsupported as e:
        return Launch(args=None, missing=str(e))
    return Launch(args=args)


def launch_fields(w: Workload, c: Shape, tables: Tables, replicas: int, ep: int | None = None) -> dict[str, object]:
    """Launch fields of a plan deployment: one instance runs min(replicas, GPUs per instance ÷ TP)
    replicas of it with engine data parallelism; expert parallelism when the candidate has an ``ep``
    degree above 1 (candidates without one are EP 1)."""
    ep = ep if ep is not None else int(getattr(c, "ep", 1) or 1)
    dp = max(1, min(replicas, c.gpus_per_instance // c.tp))
    got = plan_launch(w, c, tables, dp, ep)
    a = got.args
    return {"launch": got.line, "checkpoint": a.checkpoint.checkpoint if a else None,
            "engine_version": engine_version(c.engine), "max_model_len": c.max_model_len,
            "memory_fraction": a.memory_fraction if a else 0.0, "gpus_per_instance": c.gpus_per_instance, "ep": ep}
