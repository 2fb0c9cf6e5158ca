"""CUDA-graph capture limits of the serving engines (graphs.csv).

Engines replay decode steps from CUDA graphs captured for a list of batch sizes up to a maximum; a decode
step whose batch (per attention data-parallel rank) is larger runs without a graph and launches every kernel
from the host, like a step that carries prompt tokens. The step model prices such a step's per-layer floors
with the eager scale (terms.eager_scale). A limit of 0 means none is modelled; NO_GRAPHS (a negative limit)
means the server captures no graphs at all, so every decode step launches its kernels from the host (vLLM
``--enforce-eager``, SGLang ``--disable-cuda-graph``, and TensorRT-LLM's PyTorch backend before 1.0, whose
``PyTorchConfig.use_cuda_graph`` defaulted to False until pull request 5480 turned CUDA graphs on by default).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from gpuplan.hardware.csvrows import read_rows
from gpuplan.hardware.gpus import GPU
from gpuplan.optimizer.serving.calibration import VersionRange, prefer_version
from pydantic import ConfigDict, Field

from gpuplan.rows import Sourced

GRAPHS_CSV = Path(__file__).with_name("graphs.csv")
NO_GRAPHS = -1  # a capture limit below every batch: no decode step replays a CUDA graph


class GraphLimit(Sourced):
    """One engine default: the largest decode batch captured in a CUDA graph on GPUs of at least
    ``min_gpu_memory_gib`` and replicas of at least ``min_tp`` GPUs (``versions``: the engine versions it holds
    for; empty = current)."""

    model_config = ConfigDict(frozen=True)

    engine: str
    versions: VersionRange = None
    min_gpu_memory_gib: float = Field(ge=0)
    min_tp: int = Field(ge=1)
    max_batch: int = Field(ge=0)
    piecewise: bool = False  # decode graphs leave the attention ops out: they are launched eagerly


@cache
def _limits(path: Path = GRAPHS_CSV) -> tuple[GraphLimit, ...]:
    return tuple(read_rows(path, GraphLimit))


def capture_limit(engine: str, gpu: GPU, tp: int, version: str | None = None) -> int:
    """Largest captured decode batch per attention rank for ``engine`` on ``tp`` × ``gpu`` (0: no limit).
    Rows whose ``versions`` range holds ``version`` win over rows without a range; among those, the row with
    the largest memory threshold and then TP threshold the deployment reaches."""
    return _capture_limit(engine.lower(), gpu.memory_gib, tp, version)


@cache
def _capture_limit(engine: str, memory_gib: float, tp: int, version: str | None) -> int:
    """``capture_limit`` by the GPU memory it reads (memoised: graphs.csv is read once per process)."""
    rows = [r for r in _limits() if r.engine == engine and memory_gib >= r.min_gpu_memory_gib and tp >= r.min_tp]
    pool = prefer_version(rows, version)
    if not pool:
        return 0
    return max(pool, key=lambda r: (r.min_gpu_memory_gib, r.min_tp)).max_batch


def piecewise_attention(engine: str, version: str | None = None) -> bool:
    """True where the engine at ``version`` replays its decode steps from piecewise CUDA graphs, launching the
    attention ops eagerly between the captured pieces (graphs.csv ``piecewise``: vLLM V1 before 0.11)."""
    if version is None:
        return False
    pool = prefer_version([r for r in _limits() if r.engine == engine.lower()], version)
    return any(r.piecewise and r.versions for r in pool)


def graph_limit(engine: str, gpu: GPU, tp: int, version: str | None = None, cuda_graphs: bool = True) -> int:
    """The capture limit a deployment's decode steps run under: the engine's default (``capture_limit``), or
    NO_GRAPHS when the server runs without CUDA graphs (``cuda_graphs`` False)."""
    return capture_limit(engine, gpu, tp, version) if cuda_graphs else NO_GRAPHS
