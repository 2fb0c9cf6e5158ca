"""Exact packing of replicas into whole instances of one offer (a bin-packing condition, linear in the counts).

A replica of tensor-parallel degree t occupies t GPUs of ONE instance (TP never spans instances); inside one
instance the GPUs are interchangeable, so a multiset of replicas fits one instance of g GPUs iff Σ t ≤ g.
Across instances the counts alone do not decide it: 2 × TP8 + 1 × TP4 need 20 of the 20 GPUs of two 10-GPU
instances, yet a TP4 fits in neither 2-GPU remainder, so three instances are needed.

The TP degrees in use on an offer are split into a *chain* S (powers of two: each divides the next) and the
rest L (e.g. TP 72 on a 72-GPU rack; any degree that is not a power of two). Instances are typed by the
multiset p of L-replicas they hold (an *L-pattern*, few: L-degrees are large), leaving ``residual_p = g - Σ p``
GPUs for chain replicas. With x_p instances of type p, the replica counts r_t are packable iff

  (L)  r_t ≤ Σ_p p_t · x_p                                      for every t ∈ L
  (S)  Σ_{t ∈ S, t ≥ s} t · r_t ≤ Σ_p s · ⌊residual_p / s⌋ · x_p   for every s ∈ S

(S) is necessary because replicas of degree ≥ s are multiples of s and an instance holds at most
s·⌊residual/s⌋ GPUs of them. It is sufficient because chain sizes are divisible: place replicas largest
first; each placed degree is a multiple of every smaller s, so every instance's free space stays a multiple
of s below its rounded residual and no GPU counted on the right is lost to fragmentation (the classical
result that first-fit decreasing is optimal for divisible item sizes). A row whose right-hand side equals a
smaller kept s's for every instance type is implied and omitted, so power-of-two offers keep the single
GPU-count row; with L-patterns the residuals differ (a TP-3 replica on a 4-GPU instance leaves 1 GPU: room for
a TP 1, not a TP 2), so the rows of larger s are kept.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass


def is_chain_degree(t: int) -> bool:
    """Powers of two form a divisibility chain."""
    return t > 0 and t & (t - 1) == 0


@dataclass(frozen=True)
class Layout:
    """How one offer's instances can be filled, for the TP degrees used on it."""

    gpus_per_instance: int
    patterns: tuple[tuple[tuple[int, int], ...], ...]  # per instance type: ((L-degree, count), …); () = none
    chain: tuple[int, ...]  # chain degrees in use, ascending
    rows: tuple[int, ...]  # chain degrees s whose (S) row is not implied by a smaller one

    def residual(self, pattern: tuple[tuple[int, int], ...]) -> int:
        return self.gpus_per_instance - sum(t * k for t, k in pattern)

    def chain_capacity(self, pattern: tuple[tuple[int, int], ...], s: int) -> int:
        """GPUs of one instance of this type usable by chain replicas of degree ≥ s."""
        return s * (self.residual(pattern) // s)


def layout(gpus_per_instance: int, degrees: set[int] | list[int]) -> Layout:
    g = gpus_per_instance
    used = sorted({t for t in degrees if t <= g})
    large = [t for t in used if not is_chain_degree(t)]
    chain = tuple(t for t in used if is_chain_degree(t))
    patterns = []
    ranges = [range(g // t + 1) for t in large]
    for counts in itertools.product(*ranges):
        if sum(t * k for t, k in zip(large, counts, strict=True)) <= g:
            patterns.append(tuple((t, k) for t, k in zip(large, counts, strict=True) if k))
    patterns.sort(key=lambda p: (len(p), p))
    lay = Layout(g, tuple(patterns), chain, ())
    rows = []
    prev_caps: tuple[int, ...] | None = None
    for s in chain:  # row s is implied by the last kept row s' < s when every instance type offers s the same
        caps = tuple(lay.chain_capacity(p, s) for p in lay.patterns)  # GPUs as s' (its left side is larger)
        if caps != prev_caps:
            rows.append(s)
            prev_caps = caps
    return Layout(g, tuple(patterns), chain, tuple(rows))


def min_instances(gpus_per_instance: int, replicas: dict[int, int]) -> int:
    """Fewest instances that hold these replicas (TP degree → count), exactly: the smallest n for which some
    mix of instance types satisfies (L) and (S). Chain-only offers use the closed form
    max_s ⌈Σ_{t ≥ s} t · r_t / (s · ⌊g / s⌋)⌉; with L-degrees the types are enumerated."""
    lay = layout(gpus_per_instance, {t for t, k in replicas.items() if k})
    need = {t: k for t, k in replicas.items() if k}
    if not need:
        return 0
    if any(t > gpus_per_instance for t in need):
        raise ValueError(f"a TP {max(need)} replica does not fit a {gpus_per_instance}-GPU instance")

    def chain_need(s: int) -> int:
        return sum(t * k for t, k in need.items() if t >= s and is_chain_degree(t))

    if len(lay.patterns) == 1:
        return max(math.ceil(chain_need(s) / (s * (gpus_per_instance // s))) for s in lay.chain)
    n = 1
    while not _fits(lay, need, n, chain_need):
        n += 1
    return n


def _fits(lay: Layout, need: dict[int, int], n: int, chain_need) -> bool:
    for mix in _mixes(len(lay.patterns), n):
        ok = all(need.get(t, 0) <= sum(dict(p).get(t, 0) * x for p, x in zip(lay.patterns, mix, strict=True))
                 for t in need if not is_chain_degree(t))
        ok = ok and all(chain_need(s) <= sum(lay.chain_capacity(p, s) * x
                                             for p, x in zip(lay.patterns, mix, strict=True)) for s in lay.chain)
        if ok:
            return True
    return False


def _mixes(k: int, n: int):
    """Every way to split n instances over k types."""
    if k == 1:
        yield (n,)
        return
    for first in range(n + 1):
        for rest in _mixes(k - 1, n - first):
            yield (first, *rest)
