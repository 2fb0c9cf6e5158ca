"""Interconnect latency and bandwidth efficiency per link kind: the α–β constants of the collectives.

α(n) = alpha_us + alpha_per_doubling_us · log2(n) for a collective over n GPUs (tree / one-shot kernels
add one hop per doubling). The bandwidth term uses an efficiency that rises with the message size S from
``eta_small`` (latency-optimised kernels on decode-sized messages) to ``eta_large`` (ring busbw on large
messages): η(S) = eta_small + (eta_large − eta_small) · S / (S + knee).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
from gpuplan.hardware.csvrows import read_rows
from gpuplan.hardware.gpus import GPU
from gpuplan.optimizer.errors import InputError
from pydantic import ConfigDict, Field

from gpuplan.rows import Sourced

LINKS_CSV = Path(__file__).with_name("links.csv")
MIB = 2**20


class LinkRow(Sourced):
    model_config = ConfigDict(frozen=True)

    link: str
    alpha_us: float = Field(ge=0)
    alpha_per_doubling_us: float = Field(ge=0)
    eta_small: float = Field(gt=0, le=1)
    eta_large: float = Field(gt=0, le=1)
    knee_mib: float = Field(gt=0)
    # MoE dispatch / combine kernels (one-sided puts, flag barriers): their own latency and a flat
    # bandwidth efficiency; empty: twice the all-reduce latency and the all-reduce efficiency curve
    a2a_alpha_us: float | None = Field(default=None, ge=0)
    a2a_alpha_per_doubling_us: float | None = Field(default=None, ge=0)
    a2a_eta: float | None = Field(default=None, gt=0, le=1)


@cache
def load_links(path: Path = LINKS_CSV) -> dict[str, LinkRow]:
    rows = read_rows(path, LinkRow)
    return {r.link: r for r in rows}


def link_kind(gpu: GPU, group: int) -> str:
    """The link a group of ``group`` GPUs talks over: the fast link inside its domain, else PCIe."""
    if group <= 1:
        return "none"
    if gpu.has_fast_link and group <= gpu.nvlink_domain and gpu.link_gb_s > 0:
        return gpu.link
    return "pcie"


def link_row(gpu: GPU, group: int) -> LinkRow:
    kind = link_kind(gpu, group)
    links = load_links()
    if kind not in links:
        raise InputError(f"{LINKS_CSV.name}: no row for link kind '{kind}' of GPU {gpu.id}")
    return links[kind]


def a2a_alpha_s(row: LinkRow, group: int) -> float:
    """Latency of one MoE dispatch or combine over ``group`` GPUs: a2a_alpha_us + a2a_alpha_per_doubling_us ·
    log2(n) where the link row gives them, else 2 · α(n) of the all-reduce; 0 for a single GPU."""
    if group <= 1:
        return 0.0
    if row.a2a_alpha_us is None:
        return 2 * alpha_s(row, group)
    return (row.a2a_alpha_us + (row.a2a_alpha_per_doubling_us or 0.0) * float(np.log2(group))) * 1e-6


def alpha_s(row: LinkRow, group: int) -> float:
    """α(n) = alpha_us + alpha_per_doubling_us · log2(n), in seconds (0 for a single GPU)."""
    if group <= 1:
        return 0.0
    return (row.alpha_us + row.alpha_per_doubling_us * float(np.log2(group))) * 1e-6
