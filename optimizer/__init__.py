"""Decision layer: performance model, candidates, CP-SAT plans, and the notebook API.

``from optimizer import memory, perf, candidates, plan`` — imported lazily so the CLI starts fast.
"""

from __future__ import annotations

from typing import Any

_API = {
    "memory": "optimizer.deployment",
    "perf": "optimizer.deployment",
    "candidates": "optimizer.api",
    "plan": "optimizer.api",
    "sweep": "optimizer.api",
    "procure": "optimizer.api",
    "fleet": "optimizer.api",
    "Tables": "optimizer.tables",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'optimizer' has no attribute {name!r}")
