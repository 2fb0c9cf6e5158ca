"""Engines' scheduler defaults (``scheduler.csv``): running-sequence cap, token budget per step, KV block size,
prefill-first scheduling, the KV reservation at admission and the overlap scheduler, per engine, GPU memory and
engine version."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from gpuplan.hardware.csvrows import read_rows
from gpuplan.hardware.gpus import GPU
from gpuplan.optimizer.errors import InputError
from gpuplan.optimizer.serving.admission import NO_RESERVATION, Reservation
from gpuplan.optimizer.serving.calibration import VersionRange, prefer_version
from pydantic import ConfigDict, Field

from gpuplan.rows import Sourced

SCHEDULER_CSV = Path(__file__).with_name("scheduler.csv")


@dataclass(frozen=True)
class EngineDefaults:
    """Scheduler defaults of an engine on a GPU size (see scheduler.csv for the sources). ``max_batched_tokens``
    0 means the model's context length (vLLM V0 without chunked prefill); ``prefill_first``: a step with
    prefill work runs it alone and the decodes wait (SGLang, vLLM V0), else chunks share steps with decodes."""

    engine: str
    max_num_seqs: int
    max_batched_tokens: int
    block_size: int
    prefill_first: bool = False
    reservation: Reservation = NO_RESERVATION  # KV held back for future outputs at admission (admission.py)
    overlap: bool = False  # the CPU schedules step k + 1 while step k runs (new requests wait one step more)
    rank_chunk_tokens: int = 0  # most prompt tokens of one request per step (one attention rank's chunk; 0: none)


class SchedulerRow(Sourced):
    """One row of scheduler.csv: an engine's scheduler defaults on GPUs of at least ``min_gpu_memory_gib``
    (``versions``: the engine versions it holds for; empty = current). ``reserve_*``: the admission
    reservation (admission.py); ``overlap``: the CPU schedules step k + 1 while step k runs."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    engine: str = Field(min_length=1)
    versions: VersionRange = None
    min_gpu_memory_gib: float = Field(ge=0)
    max_num_seqs: int = Field(ge=1)
    max_batched_tokens: int = Field(ge=0)
    block_size: int = Field(ge=1)
    prefill_first: bool
    reserve_new_output: float = Field(ge=0, le=1)
    reserve_running_init: float = Field(ge=0, le=1)
    reserve_running_min: float = Field(ge=0, le=1)
    reserve_decay_steps: float = Field(ge=0)
    reserve_clip_tokens: int = Field(ge=0)
    overlap: bool

    def defaults(self) -> EngineDefaults:
        reservation = Reservation(new=self.reserve_new_output, running_init=self.reserve_running_init,
                                  running_min=self.reserve_running_min, decay_steps=self.reserve_decay_steps,
                                  clip_tokens=self.reserve_clip_tokens)
        return EngineDefaults(self.engine, self.max_num_seqs, self.max_batched_tokens, self.block_size,
                              self.prefill_first, reservation, self.overlap)


@cache
def _scheduler_rows(path: Path = SCHEDULER_CSV) -> tuple[SchedulerRow, ...]:
    return tuple(read_rows(path, SchedulerRow))


def engine_defaults(engine: str, gpu: GPU, version: str | None = None) -> EngineDefaults:
    """The row of ``engine`` with the largest memory threshold the GPU reaches (vLLM treats A100 as small);
    rows whose ``versions`` range holds ``version`` win over rows without a range."""
    return _engine_defaults(engine, 0.0 if engine == "vllm" and gpu.id.startswith("a100") else gpu.memory_gib, version)


@cache
def _engine_defaults(engine: str, memory: float, version: str | None) -> EngineDefaults:
    """``engine_defaults`` by the GPU memory it reads (memoised: scheduler.csv is read once per process)."""
    pool = prefer_version([r for r in _scheduler_rows() if r.engine == engine and memory >= r.min_gpu_memory_gib],
                          version)
    if not pool:
        raise InputError(f"no scheduler defaults for engine '{engine}' in {SCHEDULER_CSV.name}")
    return max(pool, key=lambda r: r.min_gpu_memory_gib).defaults()
