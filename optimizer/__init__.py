"""Decision layer: performance model, candidates, CP-SAT plans, and the notebook API.

``from gpuplan.optimizer import memory, perf, candidates, plan`` — imported lazily so the CLI starts fast.
"""

from __future__ import annotations

from typing import Any

_API = {
    "memory": "gpuplan.optimizer.api",
    "perf": "gpuplan.optimizer.api",
    "candidates": "gpuplan.optimizer.api",
    "plan": "gpuplan.optimizer.api",
    "sweep": "gpuplan.optimizer.api",
    "procure": "gpuplan.optimizer.api",
    "fleet": "gpuplan.optimizer.api",
    "Tables": "gpuplan.optimizer.tables",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'optimizer' has no attribute {name!r}")
