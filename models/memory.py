"""The memory model: weights, KV cache, activations and runtime overhead, in bytes.

Formats come in as any object with ``bits``, ``group_size``, ``scale_bits``, ``zero_bits``
and ``scope`` (the hardware format table satisfies this), so this layer imports nothing of ours.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Protocol

from gpuplan.models.arch import Architecture
from gpuplan.models.mixers import linear_state_bytes, mamba_state_bytes
from gpuplan.models.params import Kind, TensorGroup, tensor_groups

GIB = 2**30
ACT_BYTES = 2  # activations are 16-bit in every engine modelled here
VECTOR_BITS_16 = 16
VECTOR_BITS_GGUF = 32


class Encoding(Protocol):
    """A storage format (see hardware/formats.csv)."""

    bits: float
    group_size: int
    scale_bits: float
    zero_bits: float
    scope: str


def _encoded_bits(g: TensorGroup, enc: Encoding, copies: int) -> float:
    """bits of ``copies`` copies of a matrix: elements × bits + group/row scale overhead."""
    elements = g.rows * g.cols * copies
    bits = elements * enc.bits
    if enc.group_size > 0:
        bits += math.ceil(g.cols / enc.group_size) * g.rows * copies * (enc.scale_bits + enc.zero_bits)
    elif enc.group_size == -1:
        bits += g.rows * copies * (enc.scale_bits + enc.zero_bits)
    return bits


def _group_bits(g: TensorGroup, enc: Encoding, copies: int, attention_16bit: bool = False) -> float:
    """Bits of one tensor group under a format's scope rule (see NumberFormat docstring); with
    ``attention_16bit`` (the checkpoint keeps its attention unquantised) attention matrices stay 16-bit."""
    if attention_16bit and g.is_matrix and g.name.startswith("attn."):
        return g.rows * g.cols * copies * VECTOR_BITS_16
    if enc.scope == "all":
        return g.rows * g.cols * copies * enc.bits
    if not g.is_matrix:
        width = VECTOR_BITS_GGUF if enc.scope == "matrices" else VECTOR_BITS_16
        return g.rows * copies * width
    if enc.scope == "linear" and g.kind in (Kind.EMBED, Kind.LM_HEAD, Kind.ROUTER, Kind.VISION):
        return g.rows * g.cols * copies * VECTOR_BITS_16
    return _encoded_bits(g, enc, copies)


def attention_16bit(arch: Architecture, enc: Encoding) -> bool:
    """The checkpoint of this format keeps the attention matrices in 16 bits: the format is the checkpoint's own
    and its config says so (``Architecture.attention_unquantized_in``, from
    ``quantization_config.modules_to_not_convert``), or the format's published checkpoint does
    (``Architecture.attention_16bit_formats``, from models/checkpoints.csv)."""
    fmt = getattr(enc, "id", None)
    return fmt is not None and (fmt == arch.attention_unquantized_in or fmt in arch.attention_16bit_formats)


@functools.lru_cache(maxsize=4096)
def weights_bytes(arch: Architecture, enc: Encoding) -> int:
    """Σ over tensors of elements × bits of the tensor's format / 8 (scales included)."""
    keep = attention_16bit(arch, enc)
    return math.ceil(sum(_group_bits(g, enc, g.count, keep) for g in tensor_groups(arch)) / 8)


@functools.lru_cache(maxsize=4096)
def active_weights_bytes(arch: Architecture, enc: Encoding, experts_touched: float | None = None) -> float:
    """Bytes read for one forward step: every non-expert weight once, plus ``experts_touched`` experts
    per MoE layer (default top_k), without the embedding table (a gather, not a matmul) and vision tower."""
    total = 0.0
    keep = attention_16bit(arch, enc)
    for g in tensor_groups(arch):
        if g.kind in (Kind.EMBED, Kind.VISION):
            continue
        if g.kind is Kind.EXPERT or (g.kind is Kind.VECTOR and g.name == "moe.expert_bias"):
            assert arch.moe is not None
            per_copy = _group_bits(g, enc, 1)
            layers = g.count / arch.moe.num_experts
            touched = arch.moe.top_k if experts_touched is None else experts_touched
            total += per_copy * layers * touched
        else:
            total += _group_bits(g, enc, g.count, keep)
    return total / 8


def matrices_bytes(arch: Architecture, enc: Encoding, names: tuple[str, ...]) -> float:
    """Bytes of the weight matrices whose group name is in ``names``, in the format (scales included)."""
    keep = attention_16bit(arch, enc)
    return sum(_group_bits(g, enc, g.count, keep) for g in tensor_groups(arch)
               if g.is_matrix and g.name in names) / 8


def expected_experts_touched(num_experts: int, top_k: int, tokens: Any) -> Any:
    """E × (1 − (1 − k/E)^tokens): distinct experts hit by ``tokens`` tokens routing uniformly to k of E
    (0 for 0 tokens; works element-wise on numpy arrays)."""
    return num_experts * (1.0 - (1.0 - top_k / num_experts) ** tokens)


def kv_bits_per_element(enc: Encoding) -> float:
    return enc.bits + ((enc.scale_bits + enc.zero_bits) / enc.group_size if enc.group_size > 0 else 0.0)


def kv_bytes_per_token_layer(arch: Architecture, enc: Encoding) -> float:
    """MHA/GQA: 2 × kv_heads × head_dim × bytes; MLA: (kv_lora_rank + qk_rope_head_dim) × bytes; a
    DeepSeek sparse-attention indexer adds its index key (index_head_dim) at the same width."""
    width = (arch.mla.kv_lora_rank + arch.mla.qk_rope_head_dim if arch.mla
             else 2 * arch.kv_heads * arch.head_dim)
    if arch.sparse_index is not None:
        width += arch.sparse_index.head_dim
    return width * kv_bits_per_element(enc) / 8


def kv_bytes_per_token(arch: Architecture, enc: Encoding) -> float:
    """Per-token KV bytes summed over the attention layers (the marginal cost while context ≤ any window);
    Mamba and linear-attention layers add nothing per token."""
    return kv_bytes_per_token_layer(arch, enc) * arch.attention_layers


@functools.lru_cache(maxsize=4096)
def _tokens_over_layers(arch: Architecture, context: float, per_full: float) -> float:
    """Σ over attention layers: full → ``per_full``, sliding → min(context, window), chunked → min(context, chunk)."""
    total: float = 0
    for mixer in arch.mixers:
        if mixer == "attention":
            total += per_full
        elif mixer == "sliding":
            total += min(context, arch.sliding_window or context)
        elif mixer == "chunked":
            total += min(context, arch.chunk_size or context)
    return total


def tokens_held(arch: Architecture, context: int) -> int:
    """Σ over attention layers of tokens in cache: full → context, sliding → min(context, window),
    chunked → min(context, chunk)."""
    return int(_tokens_over_layers(arch, context, context))


def tokens_attended(arch: Architecture, context: float) -> float:
    """Σ over attention layers of keys one query reads: as ``tokens_held``, except that a sparse-attention
    indexer (DeepSeek-V3.2, GLM-5) limits full layers to its top-k tokens."""
    per_full = min(context, arch.sparse_index.topk) if arch.sparse_index else context
    return float(_tokens_over_layers(arch, context, per_full))


@functools.lru_cache(maxsize=4096)
def state_bytes_per_sequence(arch: Architecture) -> int:
    """Constant per-sequence state: Σ Mamba layers × (conv + SSM state) + Σ DeltaNet layers × (conv +
    recurrent state); see mixers.py."""
    total = 0
    if arch.mamba is not None:
        total += arch.count("mamba") * mamba_state_bytes(arch.mamba)
    if arch.linear is not None:
        total += arch.count("linear") * linear_state_bytes(arch.linear)
    return total


def kv_cache_bytes(arch: Architecture, enc: Encoding, context: int, sequences: int = 1) -> int:
    """sequences × (per-layer KV bytes × Σ tokens held over attention layers + constant SSM/linear state)."""
    per_seq = kv_bytes_per_token_layer(arch, enc) * tokens_held(arch, context) + state_bytes_per_sequence(arch)
    return math.ceil(per_seq * sequences)


def held_state_bytes(arch: Architecture, enc: Encoding, context: float, replication: float = 1.0) -> float:
    """KV + state one sequence keeps, per KV replica: attention KV + state / replication (a Mamba/DeltaNet
    state is split over TP ranks by head, so it is never replicated)."""
    attention = kv_bytes_per_token_layer(arch, enc) * tokens_held(arch, max(1, round(context)))
    return attention + state_bytes_per_sequence(arch) / replication


def decode_state_bytes(arch: Architecture, enc: Encoding, context: float, replication: float = 1.0) -> float:
    """KV + state one sequence reads per decode step, per KV replica: as ``held_state_bytes``, except that
    with DeepSeek sparse attention each full layer reads every token's index key but only the top-k
    tokens' latents: layers × (index_head_dim × context + (kv_lora_rank + rope) × min(context, topk))."""
    ix = arch.sparse_index
    if ix is None or arch.mla is None:
        return held_state_bytes(arch, enc, context, replication)
    ctx = max(1, round(context))
    width = arch.mla.kv_lora_rank + arch.mla.qk_rope_head_dim
    per_layer = ix.head_dim * ctx + width * min(ctx, ix.topk)
    state = state_bytes_per_sequence(arch) / replication
    return arch.attention_layers * per_layer * kv_bits_per_element(enc) / 8 + state


def prefill_activation_bytes(arch: Architecture, chunk_tokens: int, tp: int = 1, batch: int = 1) -> int:
    """Peak live activations of one forward pass over ``chunk_tokens`` (flash attention, 16-bit):
    chunk × 2 B × (4·hidden + (q + 2·kv widths) + 3·I_peak) / tp, plus fp32 logits for ``batch`` rows.
    I_peak is the dense MLP width, or top_k × expert width for MoE layers if larger."""
    width = arch.intermediate
    if arch.moe:
        width = max(width if not all(arch.moe_layers) else 0, arch.moe.top_k * arch.moe.expert_intermediate)
    qkv = (arch.heads + 2 * arch.kv_heads) * arch.head_dim
    per_token = ACT_BYTES * (4 * arch.hidden + (qkv + 3 * width) / tp)
    logits = batch * arch.vocab * 4
    return math.ceil(chunk_tokens * per_token + logits)


def max_sequences(kv_budget_bytes: float, kv_bytes_per_sequence: float) -> int:
    """floor(budget / bytes per sequence), never negative."""
    if kv_bytes_per_sequence <= 0:
        return 0
    return max(0, math.floor(kv_budget_bytes / kv_bytes_per_sequence))
