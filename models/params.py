"""Exact parameter counts from an architecture, tensor by tensor.

Every weight is listed as a ``TensorGroup`` (a matrix shape or vector length, how many copies the
checkpoint holds, how many a single token uses). Memory per number format and bytes read per
decode step are computed from these groups, never from the model's marketing name.
"""

from __future__ import annotations

import functools
from enum import StrEnum

from gpuplan.models.arch import Architecture
from pydantic import BaseModel, ConfigDict


class Kind(StrEnum):
    EMBED = "embed"  # token embedding table
    LM_HEAD = "lm_head"  # output projection (absent when tied)
    LINEAR = "linear"  # attention and dense-MLP matrices
    EXPERT = "expert"  # routed-expert matrices
    SHARED = "shared"  # shared-expert matrices (always active)
    ROUTER = "router"  # expert gate matrix
    VECTOR = "vector"  # norms, biases, sinks (kept in 16/32 bits by every format)
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


def _group(name: str, kind: Kind, rows: int, cols: int, count: int, active: int | None = None) -> TensorGroup:
    return TensorGroup(name=name, kind=kind, rows=rows, cols=cols, count=count,
                       active=count if active is None else active)


def _attention_groups(a: Architecture) -> list[TensorGroup]:
    n, h = a.layers, a.hidden
    if a.mla is not None:
        m = a.mla
        qk_dim = m.qk_nope_head_dim + m.qk_rope_head_dim
        out = []
        if m.q_lora_rank:
            out += [_group("attn.q_a", Kind.LINEAR, m.q_lora_rank, h, n),
                    _group("attn.q_a_norm", Kind.VECTOR, m.q_lora_rank, 1, n),
                    _group("attn.q_b", Kind.LINEAR, a.heads * qk_dim, m.q_lora_rank, n)]
        else:
            out.append(_group("attn.q", Kind.LINEAR, a.heads * qk_dim, h, n))
        return [*out,
                _group("attn.kv_a", Kind.LINEAR, m.kv_lora_rank + m.qk_rope_head_dim, h, n),
                _group("attn.kv_a_norm", Kind.VECTOR, m.kv_lora_rank, 1, n),
                _group("attn.kv_b", Kind.LINEAR, a.heads * (m.qk_nope_head_dim + m.v_head_dim),
                       m.kv_lora_rank, n),
                _group("attn.o", Kind.LINEAR, h, a.heads * m.v_head_dim, n)]
    q_dim, kv_dim = a.heads * a.head_dim, a.kv_heads * a.head_dim
    out = [_group("attn.q", Kind.LINEAR, q_dim, h, n),
           _group("attn.k", Kind.LINEAR, kv_dim, h, n),
           _group("attn.v", Kind.LINEAR, kv_dim, h, n),
           _group("attn.o", Kind.LINEAR, h, q_dim, n)]
    if a.attention_bias:
        out.append(_group("attn.qkv_bias", Kind.VECTOR, q_dim + 2 * kv_dim, 1, n))
        if a.model_type == "gpt_oss":
            out.append(_group("attn.o_bias", Kind.VECTOR, h, 1, n))
    if a.qk_norm:
        out.append(_group("attn.qk_norm", Kind.VECTOR, 2 * a.head_dim, 1, n))
    if a.attention_sinks:
        out.append(_group("attn.sinks", Kind.VECTOR, a.heads, 1, n))
    return out


def _mlp_groups(a: Architecture) -> list[TensorGroup]:
    h = a.hidden
    moe_layers = sum(a.moe_layers) if a.moe else 0
    dense_layers = a.layers - moe_layers
    out: list[TensorGroup] = []
    if dense_layers:
        out.append(_group("mlp.gate_up", Kind.LINEAR, 2 * a.intermediate, h, dense_layers))
        out.append(_group("mlp.down", Kind.LINEAR, h, a.intermediate, dense_layers))
        if a.mlp_bias:
            out.append(_group("mlp.bias", Kind.VECTOR, 2 * a.intermediate + h, 1, dense_layers))
    if a.moe is None:
        return out
    m = a.moe
    experts, active = m.num_experts * moe_layers, m.top_k * moe_layers
    out += [_group("moe.gate_up", Kind.EXPERT, 2 * m.expert_intermediate, h, experts, active),
            _group("moe.down", Kind.EXPERT, h, m.expert_intermediate, experts, active),
            _group("moe.router", Kind.ROUTER, m.num_experts, h, moe_layers)]
    if m.expert_bias:
        out.append(_group("moe.expert_bias", Kind.VECTOR, 2 * m.expert_intermediate + h, 1, experts, active))
    if m.router_bias:
        out.append(_group("moe.router_bias", Kind.VECTOR, m.num_experts, 1, moe_layers))
    if m.correction_bias:
        out.append(_group("moe.correction_bias", Kind.VECTOR, m.num_experts, 1, moe_layers))
    if m.shared_experts:
        out += [_group("moe.shared_gate_up", Kind.SHARED, 2 * m.shared_intermediate, h, moe_layers),
                _group("moe.shared_down", Kind.SHARED, h, m.shared_intermediate, moe_layers)]
    return out


def _vision_groups(a: Architecture) -> list[TensorGroup]:
    """Llama-4 vision tower: patch embedding, ViT layers (attention + MLP with biases), projector."""
    v = a.vision
    if v is None:
        return []
    hv = v.hidden
    return [_group("vision.patch", Kind.VISION, hv, v.num_channels * v.patch_pixels, 1),
            _group("vision.attn", Kind.VISION, 4 * hv, hv, v.layers),
            _group("vision.mlp", Kind.VISION, 2 * v.intermediate, hv, v.layers),
            _group("vision.vectors", Kind.VISION, 4 * hv + 4 * hv + v.intermediate + hv, 1, v.layers),
            _group("vision.projector", Kind.VISION, a.hidden, v.projector_out, 1)]


def tensor_groups(a: Architecture) -> list[TensorGroup]:
    """All weights of the checkpoint (the DeepSeek MTP module excluded)."""
    return list(_tensor_groups(a))


@functools.lru_cache(maxsize=512)
def _tensor_groups(a: Architecture) -> tuple[TensorGroup, ...]:
    """Memoised per (frozen, hashable) architecture: candidate generation asks for it thousands of times."""
    groups = [_group("embed", Kind.EMBED, a.vocab, a.hidden, 1)]
    if not a.tie_embeddings:
        groups.append(_group("lm_head", Kind.LM_HEAD, a.vocab, a.hidden, 1))
    groups += _attention_groups(a)
    groups += _mlp_groups(a)
    groups.append(_group("norms", Kind.VECTOR, 2 * a.hidden, 1, a.layers))
    groups.append(_group("final_norm", Kind.VECTOR, a.hidden, 1, 1))
    groups += _vision_groups(a)
    return tuple(groups)


class ParamCount(BaseModel):
    """Total (stored) and active (used per token) parameter counts."""

    model_config = ConfigDict(frozen=True)

    total: int
    active: int
    text: int  # total without the vision tower
    embedding: int  # embed + lm_head
    embedding_table: int  # the input embedding alone (a gather, not a matmul)
    expert: int  # routed-expert parameters, all experts


def count_params(a: Architecture) -> ParamCount:
    """total = Σ elements; active = Σ elements a token touches (top-k experts, no vision tower)."""
    groups = tensor_groups(a)
    total = sum(g.elements for g in groups)
    vision = sum(g.elements for g in groups if g.kind is Kind.VISION)
    active = sum(g.active_elements for g in groups if g.kind is not Kind.VISION)
    return ParamCount(
        total=total,
        active=active,
        text=total - vision,
        embedding=sum(g.elements for g in groups if g.kind in (Kind.EMBED, Kind.LM_HEAD)),
        embedding_table=sum(g.elements for g in groups if g.kind is Kind.EMBED),
        expert=sum(g.elements for g in groups if g.kind is Kind.EXPERT),
    )
