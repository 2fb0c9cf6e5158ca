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
reads from the config). _resolve_max_num_reqs then caps the running requests at ⌊max_mamba_cache_size / k⌋,
k the state slots one running request may hold (_calculate_mamba_ratio): with the radix cache on, its default,
the request's own slot plus two cached checkpoints, MAMBA_CACHE_SIZE_MAX_RUNNING_REQUESTS_RATIO = 3, and with
the ``extra_buffer`` radix-cache strategy under the overlap scheduler two more ping-pong track slots
(MAMBA_CACHE_V2_ADDITIONAL_RATIO_OVERLAP = 2): k = 5 (constants and _calculate_mamba_ratio read in
kv_cache_configurator.py at sgl-project/sglang commit 003fca80). Which strategy runs by default changed:
``--mamba-scheduler-strategy auto`` meant ``no_buffer`` (k = 3, and the overlap scheduler off) until
sgl-project/sglang pull request 28151 ('refactor: mamba radix cache server args initialize', merged
2026-06-19; the flag later renamed --mamba-radix-cache-strategy) made ``auto`` resolve to ``extra_buffer`` for
models that support it (Qwen3.5 / Qwen3-Next gated DeltaNet) whenever the overlap scheduler or pages above 1
are wanted, i.e. by default, on CUDA; ROCm kept ``no_buffer`` (pull request 29965, 2026-07-02: extra_buffer
needs the FLA kernels). Taken as first in 0.5.14 (the exact release is not pinned). r defaults to 0.9 since
pull request 11679 ('[Mamba] Increase default mamba_full_memory_ratio to 0.9', merged 2025-10-15, taken as
first in 0.5.4); 0.2 before.
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
NO_BUFFER_SLOTS = 3  # MAMBA_CACHE_SIZE_MAX_RUNNING_REQUESTS_RATIO: own slot + two cached checkpoints (radix on)
PING_PONG_SLOTS = 2  # MAMBA_CACHE_V2_ADDITIONAL_RATIO_OVERLAP: extra_buffer's track slots (overlap scheduler)
EXTRA_BUFFER_VERSIONS = ">=0.5.14"  # pull request 28151 (2026-06-19): 'auto' resolves to extra_buffer on CUDA
EXTRA_BUFFER_VENDORS = frozenset({"nvidia"})  # ROCm keeps no_buffer (pull request 29965)


@dataclass(frozen=True)
class StateSplit:
    state_slots: int  # max_mamba_cache_size
    kv_pool_bytes: float  # what the attention KV pool gets
    max_running: int  # running-request cap from the state slots


def memory_ratio(version: str | None) -> float:
    """SGLang's default --mamba-full-memory-ratio at ``version`` (None: the current release): 0.9 from 0.5.4,
    0.2 before."""
    return MEMORY_RATIO if version is None or version_in_range(version, RATIO_09_VERSIONS) else EARLY_MEMORY_RATIO


def slots_per_running_request(version: str | None, vendor: str = "NVIDIA") -> int:
    """k, the state slots SGLang counts per running request (module docstring): 3 + 2 = 5 where the default
    radix-cache strategy resolves to ``extra_buffer`` (NVIDIA GPUs from EXTRA_BUFFER_VERSIONS, and the current
    release, None), 3 under ``no_buffer`` (earlier releases, other vendors)."""
    extra = vendor.lower() in EXTRA_BUFFER_VENDORS and (version is None
                                                         or version_in_range(version, EXTRA_BUFFER_VERSIONS))
    return NO_BUFFER_SLOTS + (PING_PONG_SLOTS if extra else 0)


def state_slots(rest_bytes: float, state_bytes_per_request: float, ratio: float) -> int:
    """max_mamba_cache_size = ⌊rest · r / (1 + r) / state_per_request⌋ (0 when there is no room)."""
    if state_bytes_per_request <= 0 or rest_bytes <= 0:
        return 0
    return math.floor(rest_bytes * ratio / (1 + ratio) / state_bytes_per_request)


def sglang_state_split(rest_bytes: float, state_bytes_per_request: float, version: str | None = None,
                       ratio: float | None = None, vendor: str = "NVIDIA") -> StateSplit:
    """SGLang's state slots, the KV pool left = rest − slots · state_per_request, and the running cap
    ⌊slots / k⌋ (slots_per_running_request); ``ratio`` replaces the release's default
    --mamba-full-memory-ratio."""
    slots = state_slots(rest_bytes, state_bytes_per_request, memory_ratio(version) if ratio is None else ratio)
    return StateSplit(state_slots=slots, kv_pool_bytes=max(0.0, rest_bytes - slots * state_bytes_per_request),
                      max_running=slots // slots_per_running_request(version, vendor))
