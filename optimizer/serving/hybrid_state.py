"""SGLang's split of a hybrid model's KV budget into a recurrent-state pool and an attention KV pool.

For models with Mamba or gated-DeltaNet (linear-attention) layers beside full attention (Qwen3-Next, Qwen3.5,
Nemotron-H), SGLang keeps each running request's conv + recurrent state in slots of a separate pool sized once
at start-up. KVCacheConfigurator._handle_max_mamba_cache (python/sglang/srt/mem_cache/kv_cache_configurator.py,
earlier ModelRunner's KV-cache mixin; read at the stored snapshot of sgl-project/sglang) takes the memory left
after weights under --mem-fraction-static, ``rest``, and without --max-mamba-cache-size (nor
--max-running-requests with the radix cache off, nor speculative decoding) sets

  max_mamba_cache_size = ⌊rest · r / (1 + r) / state_per_request⌋        r = --mamba-full-memory-ratio
  KV pool              = rest − max_mamba_cache_size · state_per_request

with state_per_request = Σ linear layers × (conv elements × 2 B + recurrent elements × SSM dtype bytes)
(Mamba2CacheParams.mamba_cache_per_req; the recurrent state in float32 by default, which models/mixers.py
reads from the config). _resolve_max_num_reqs then caps the running requests at
⌊max_mamba_cache_size / 3⌋ (MAMBA_CACHE_SIZE_MAX_RUNNING_REQUESTS_RATIO: with the radix cache on, its
default, a running request may hold its own slot plus two cached checkpoints; the default
``no_buffer`` strategy adds no ping-pong slots). r defaults to 0.9 since sgl-project/sglang pull request 11679
('[Mamba] Increase default mamba_full_memory_ratio to 0.9', merged 2025-10-15, taken as first in 0.5.4);
0.2 before. The slot divisor is the snapshot's and is applied to every release (not checked per version).
The split is linear in ``rest``, so it holds per GPU and summed over a TP group alike (the state is split
by head over the TP ranks, the attention KV replicated where TP exceeds the KV heads).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gpuplan.optimizer.serving.calibration import version_in_range

MEMORY_RATIO = 0.9  # --mamba-full-memory-ratio default from pull request 11679 (2025-10-15)
EARLY_MEMORY_RATIO = 0.2  # the default before it
RATIO_09_VERSIONS = ">=0.5.4"
SLOTS_PER_RUNNING_REQUEST = 3  # MAMBA_CACHE_SIZE_MAX_RUNNING_REQUESTS_RATIO (radix cache on, no extra buffer)


@dataclass(frozen=True)
class StateSplit:
    state_slots: int  # max_mamba_cache_size
    kv_pool_bytes: float  # what the attention KV pool gets
    max_running: int  # running-request cap from the state slots


def memory_ratio(version: str | None) -> float:
    """SGLang's default --mamba-full-memory-ratio at ``version`` (None: the current release): 0.9 from 0.5.4,
    0.2 before."""
    return MEMORY_RATIO if version is None or version_in_range(version, RATIO_09_VERSIONS) else EARLY_MEMORY_RATIO


def state_slots(rest_bytes: float, state_bytes_per_request: float, ratio: float) -> int:
    """max_mamba_cache_size = ⌊rest · r / (1 + r) / state_per_request⌋ (0 when there is no room)."""
    if state_bytes_per_request <= 0 or rest_bytes <= 0:
        return 0
    return math.floor(rest_bytes * ratio / (1 + ratio) / state_bytes_per_request)


def sglang_state_split(rest_bytes: float, state_bytes_per_request: float, version: str | None = None,
                       ratio: float | None = None) -> StateSplit:
    """SGLang's state slots, the KV pool left = rest − slots · state_per_request, and the running cap
    ⌊slots / 3⌋ (module docstring); ``ratio`` replaces the release's default --mamba-full-memory-ratio."""
    slots = state_slots(rest_bytes, state_bytes_per_request, memory_ratio(version) if ratio is None else ratio)
    return StateSplit(state_slots=slots, kv_pool_bytes=max(0.0, rest_bytes - slots * state_bytes_per_request),
                      max_running=slots // SLOTS_PER_RUNNING_REQUEST)
