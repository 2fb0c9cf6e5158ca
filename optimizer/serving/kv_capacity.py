"""KV capacity as the serving engines size it and print it in their startup logs.

The pool per GPU (bytes the engine hands its KV cache):

  vLLM V1   util · M − weights − profile peak − non-torch  (vllm/v1/worker/gpu_worker.py determine_available_memory;
            the profile peak is engine_capacity.profile_activation_bytes, the non-torch part the calibration's runtime)
  SGLang    f · M − (weights + runtime)  (model_runner: rest = memory free after loading − M · (1 − f), with
            f = --mem-fraction-static, engine_memory.py for its default)
  TRT-LLM   frac · (M − weights − runtime − activations)  (kv_cache_free_gpu_mem_fraction, default 0.9, is a
            share of the memory still free after the model and its forward pass)

The tokens each engine logs from that pool, with b the KV bytes of one token in one layer on one GPU (KV heads
split over TP, MLA's latent replicated):

  vLLM      "GPU KV cache size: N tokens" = ⌊pool / (P · g)⌋ // n · B (vllm/v1/core/kv_cache_utils.py
            _report_kv_cache_config): layers are grouped by kind into n groups of g layers (the smallest kind's
            count, or the largest when it is below 1.5 × the smallest; _get_kv_cache_groups_uniform_page_size),
            one page P = B · b of B = 16 tokens per layer; every group draws on one pool of ⌊pool / (P · g)⌋
            blocks, so the logged figure counts sliding-window layers as if they held every token (gpt-oss:
            36 layers × 2 KiB = 72 KiB per token although only 18 layers grow with the context). Mamba and
            DeltaNet layers form groups of one page per sequence; the attention block then grows to the
            smallest multiple of 16 tokens whose page holds a layer's state (HybridAttentionMambaModelConfig).
  SGLang    "max_total_num_tokens" = pool / Σ layers b (one token in every layer, page 1); with sliding
            window layers (gpt-oss) the window pool holds swa_full_tokens_ratio = 0.8 of the full pool's
            tokens (server_args.py), so pool / (b · (full layers + 0.8 · window layers)).
  TRT-LLM   "max tokens in paged KV cache" = pool / Σ layers b, in blocks of 32 tokens (tokens_per_block).

Sequences of C tokens the pool holds (what ``perf``'s max_batch reports): vLLM's own count
(get_max_concurrency_for_kv_cache_config: blocks / Σ over groups of a request's blocks, a full-attention
group ⌈C / B⌉, a window group ⌈min(window − 1 + T, C) / B⌉ + 1 with T the scheduler's token budget, since the
scheduler allocates every scheduled token before freeing what left the window, a Mamba group 1); the other
engines pool tokens / C.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from gpuplan.hardware.formats import NumberFormat
from gpuplan.models.arch import Architecture
from gpuplan.models.breakdown import kv_replication
from gpuplan.models.memory import kv_bytes_per_token_layer
from gpuplan.models.mixers import linear_state_bytes, mamba_state_bytes

VLLM_BLOCK = 16  # CacheConfig.block_size default (tokens per page)
TRTLLM_BLOCK = 32  # KvCacheConfig tokens_per_block default
SGLANG_SWA_RATIO = 0.8  # ServerArgs.swa_full_tokens_ratio
GROUP_PAD_RATIO = 1.5  # vLLM: pad the smaller kinds up to the largest when it is below 1.5 × the smallest
WINDOWED = ("sliding", "chunked")
STATEFUL = ("mamba", "linear")


@dataclass(frozen=True)
class Groups:
    """vLLM's KV cache groups of one model on one GPU: ``counts`` per kind (full, sliding, chunked, state),
    ``size`` layers per group, ``block`` tokens per attention page, ``page`` bytes of one page of one layer."""

    counts: dict[str, int]
    size: int
    block: int
    page: float

    def groups(self, kind: str) -> int:
        return math.ceil(self.counts[kind] / self.size)

    @property
    def n(self) -> int:
        return sum(self.groups(k) for k in self.counts)


def token_layer_bytes(arch: Architecture, kvfmt: NumberFormat, tp: int) -> float:
    """b: one token's KV in one attention layer on one GPU = width × bytes × replication / tp (GQA heads split
    over TP and replicated when tp > kv_heads; MLA's latent whole on every rank)."""
    return kv_bytes_per_token_layer(arch, kvfmt) * kv_replication(arch, tp) / tp


def state_layer_bytes(arch: Architecture, tp: int) -> float:
    """One sequence's Mamba / DeltaNet state in one layer on one GPU (split by heads over TP)."""
    if arch.mamba is not None:
        return mamba_state_bytes(arch.mamba) / tp
    if arch.linear is not None:
        return linear_state_bytes(arch.linear) / tp
    return 0.0


@functools.lru_cache(maxsize=4096)
def vllm_groups(arch: Architecture, kvfmt: NumberFormat, tp: int) -> Groups:
    """The kinds' layer counts, the group size and the unified page (module docstring)."""
    counts = {"attention": arch.count("attention"), "sliding": arch.count("sliding"),
              "chunked": arch.count("chunked"), "state": arch.count(*STATEFUL)}
    counts = {k: v for k, v in counts.items() if v}
    b = token_layer_bytes(arch, kvfmt, tp)
    block = VLLM_BLOCK
    state = state_layer_bytes(arch, tp)
    if "state" in counts and b > 0:
        block = VLLM_BLOCK * math.ceil(state / (VLLM_BLOCK * b))
    page = max(block * b, state)
    least, most = min(counts.values()), max(counts.values())
    return Groups(counts=counts, size=most if most < GROUP_PAD_RATIO * least else least, block=block, page=page)


def vllm_blocks(pool_bytes: float, g: Groups) -> int:
    """⌊pool / (page · layers per group)⌋: the blocks every group draws from."""
    return max(0, math.floor(pool_bytes / (g.page * g.size)))


def vllm_request_blocks(arch: Architecture, g: Groups, context: int, batched_tokens: int) -> int:
    """One request's blocks over all groups: full ⌈C / B⌉, windowed ⌈min(w − 1 + T, C) / B⌉ + 1, state 1."""
    need = 0
    for kind in g.counts:
        if kind == "attention":
            per = math.ceil(context / g.block)
        elif kind in WINDOWED:
            window = (arch.sliding_window if kind == "sliding" else arch.chunk_size) or context
            per = math.ceil(min(window - 1 + batched_tokens, context) / g.block) + 1
        else:
            per = 1
        need += per * g.groups(kind)
    return need


def cell_bytes(arch: Architecture, kvfmt: NumberFormat, tp: int, engine: str) -> float:
    """Bytes of one pool token over all attention layers on one GPU; SGLang sizes its window pool at 0.8 of
    the full pool's tokens."""
    b = token_layer_bytes(arch, kvfmt, tp)
    windowed = arch.count(*WINDOWED)
    full = arch.attention_layers - windowed
    if engine == "sglang" and windowed and full:
        return b * (full + SGLANG_SWA_RATIO * windowed)
    return b * arch.attention_layers


def reported_tokens(arch: Architecture, kvfmt: NumberFormat, engine: str, pool_bytes: float, tp: int) -> int:
    """The token count the engine logs for a KV pool of ``pool_bytes`` per GPU (module docstring)."""
    if pool_bytes <= 0 or not arch.attention_layers:
        return 0
    if engine == "vllm":
        g = vllm_groups(arch, kvfmt, tp)
        return vllm_blocks(pool_bytes, g) // g.n * g.block
    tokens = math.floor(pool_bytes / cell_bytes(arch, kvfmt, tp, engine))
    return tokens // TRTLLM_BLOCK * TRTLLM_BLOCK if engine == "trtllm" else tokens


def pool_sequences(arch: Architecture, kvfmt: NumberFormat, engine: str, pool_bytes: float, tp: int,
                   context: int, batched_tokens: int) -> float:
    """Sequences of ``context`` tokens the pool holds as the engine counts them (vLLM's 'Maximum concurrency';
    the other engines' pool tokens / context)."""
    if pool_bytes <= 0:
        return 0.0
    if engine == "vllm":
        g = vllm_groups(arch, kvfmt, tp)
        return vllm_blocks(pool_bytes, g) / vllm_request_blocks(arch, g, context, batched_tokens)
    if not arch.attention_layers:
        return pool_bytes / (state_layer_bytes(arch, tp) * arch.count(*STATEFUL))
    return reported_tokens(arch, kvfmt, engine, pool_bytes, tp) / context
