"""gpuplan: plan LLM serving fleets — which GPUs, precision, parallelism and replicas meet your latency
targets at the lowest cost per million tokens.

The repository keeps its top-level folders (``models/``, ``hardware/``, ``pricing/``, ``optimizer/``);
the installed package maps them to ``gpuplan.models``, ``gpuplan.hardware``, ``gpuplan.pricing`` and
``gpuplan.optimizer``. The notebook API is re-exported here::

    from gpuplan import plan
    report = plan("examples/fleet.yaml", tier="spot")
"""

from __future__ import annotations

from typing import Any

__version__ = "0.2.0"

_API = ("memory", "perf", "candidates", "plan", "sweep", "procure", "simulate", "fleet", "Tables")

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        from gpuplan import optimizer

        return getattr(optimizer, name)
    raise AttributeError(f"module 'gpuplan' has no attribute {name!r}")
