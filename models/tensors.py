"""One weight tensor shape, repeated: the unit every parameter count and byte count is built from."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class Kind(StrEnum):
    EMBED = "embed"  # token embedding table
    LM_HEAD = "lm_head"  # output projection (absent when tied)
    LINEAR = "linear"  # attention, state-space and dense-MLP matrices
    EXPERT = "expert"  # routed-expert matrices
    SHARED = "shared"  # shared-expert matrices (always active)
    ROUTER = "router"  # expert gate matrix
    VECTOR = "vector"  # norms, biases, sinks, SSM A/D/dt (kept in 16/32 bits by every format)
    VISION = "vision"  # vision tower of a multimodal checkpoint (loaded, not run for text)


class TensorGroup(BaseModel):
    """``count`` copies of a ``rows × cols`` tensor (vectors have cols = 1)."""

    model_config = ConfigDict(frozen=True)

    name: str
    kind: Kind
    rows: int
    cols: int
    count: int
    active: int  # copies a single token's forward pass touches

    @property
    def elements(self) -> int:
        return self.rows * self.cols * self.count

    @property
    def active_elements(self) -> int:
        return self.rows * self.cols * self.active

    @property
    def is_matrix(self) -> bool:
        return self.cols > 1


def group(name: str, kind: Kind, rows: int, cols: int, count: int, active: int | None = None) -> TensorGroup:
    return TensorGroup(name=name, kind=kind, rows=rows, cols=cols, count=count,
                       active=count if active is None else active)
