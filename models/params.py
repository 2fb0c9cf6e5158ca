"""Exact parameter counts from an architecture, tensor by tensor.

Every weight is listed as a ``TensorGroup`` (a matrix shape or vector length, how many copies the
checkpoint holds, how many a single token uses). Memory per number format and bytes read per
decode step are computed from these groups, never from the model's marketing name.
"""

from __future__ import annotations

import functools

from gpuplan.models.arch import Architecture, Vision
from gpuplan.models.mixers import linear_attention_groups, mamba_groups
from gpuplan.models.tensors import Kind, TensorGroup, group
from pydantic import BaseModel, ConfigDict

__all__ = ["Kind", "ParamCount", "TensorGroup", "count_params", "tensor_groups"]
_group = group


def _index_groups(a: Architecture, n: int) -> list[TensorGroup]:
    """DeepSeek sparse-attention indexer per layer: wq_b, wk, k LayerNorm, head weights (V3.2, GLM-5)."""
    ix = a.sparse_index
    if ix is None or a.mla is None or not a.mla.q_lora_rank:
        return []
    return [_group("index.wq_b", Kind.LINEAR, ix.heads * ix.head_dim, a.mla.q_lora_rank, n),
            _group("index.wk", Kind.LINEAR, ix.head_dim, a.hidden, n),
            _group("index.weights_proj", Kind.LINEAR, ix.heads, a.hidden, n),
            _group("index.k_norm", Kind.VECTOR, 2 * ix.head_dim, 1, n)]


def _attention_groups(a: Architecture) -> list[TensorGroup]:
    n, h = a.attention_layers, a.hidden
    if n == 0:
        return []
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
        return [*out, *_index_groups(a, n),
                _group("attn.kv_a", Kind.LINEAR, m.kv_lora_rank + m.qk_rope_head_dim, h, n),
                _group("attn.kv_a_norm", Kind.VECTOR, m.kv_lora_rank, 1, n),
                _group("attn.kv_b", Kind.LINEAR, a.heads * (m.qk_nope_head_dim + m.v_head_dim),
                       m.kv_lora_rank, n),
                _group("attn.o", Kind.LINEAR, h, a.heads * m.v_head_dim, n)]
    q_dim, kv_dim = a.heads * a.head_dim, a.kv_heads * a.head_dim
    q_rows = 2 * q_dim if a.attn_output_gate else q_dim
    out = [_group("attn.q", Kind.LINEAR, q_rows, h, n),
           _group("attn.k", Kind.LINEAR, kv_dim, h, n),
           _group("attn.v", Kind.LINEAR, kv_dim, h, n),
           _group("attn.o", Kind.LINEAR, h, q_dim, n)]
    if a.attention_bias:
        out.append(_group("attn.qkv_bias", Kind.VECTOR, q_dim + 2 * kv_dim, 1, n))
        if a.model_type == "gpt_oss":
            out.append(_group("attn.o_bias", Kind.VECTOR, h, 1, n))
    if a.qk_norm:
        out.append(_group("attn.qk_norm", Kind.VECTOR, 2 * a.head_dim, 1, n))
    if a.qk_norm_per_layer:
        out.append(_group("attn.qk_norm", Kind.VECTOR, q_dim + kv_dim, 1, n))
    if a.attention_sinks:
        out.append(_group("attn.sinks", Kind.VECTOR, a.heads, 1, n))
    return out


def _ffn_matrices(name: str, kind: Kind, width: int, model: int, gated: bool, count: int,
                  active: int | None = None) -> list[TensorGroup]:
    """(gate +) up of ``width × model`` and down of ``model × width``: 3 matrices when gated, else 2."""
    up = 2 * width if gated else width
    return [_group(f"{name}.gate_up" if gated else f"{name}.up", kind, up, model, count, active),
            _group(f"{name}.down", kind, model, width, count, active)]


def _moe_groups(a: Architecture, layers: int) -> list[TensorGroup]:
    assert a.moe is not None
    m, h = a.moe, a.hidden
    width = m.latent_size or h
    experts, active = m.num_experts * layers, m.top_k * layers
    out = [*_ffn_matrices("moe", Kind.EXPERT, m.expert_intermediate, width, m.gated, experts, active),
           _group("moe.router", Kind.ROUTER, m.num_experts, h, layers)]
    if m.latent_size:  # Nemotron-3 Super: hidden → latent before the experts, latent → hidden after
        out += [_group("moe.latent_in", Kind.LINEAR, m.latent_size, h, layers),
                _group("moe.latent_out", Kind.LINEAR, h, m.latent_size, layers)]
    if m.expert_bias:
        out.append(_group("moe.expert_bias", Kind.VECTOR, 2 * m.expert_intermediate + h, 1, experts, active))
    if m.router_bias:
        out.append(_group("moe.router_bias", Kind.VECTOR, m.num_experts, 1, layers))
    if m.correction_bias:
        out.append(_group("moe.correction_bias", Kind.VECTOR, m.num_experts, 1, layers))
    if m.shared_experts:
        out += _ffn_matrices("moe.shared", Kind.SHARED, m.shared_intermediate, h, m.gated, layers)
    if m.shared_gate:
        out.append(_group("moe.shared_gate", Kind.VECTOR, h, 1, layers))
    return out


def _mlp_groups(a: Architecture) -> list[TensorGroup]:
    h = a.hidden
    dense_layers = a.count("dense")
    out: list[TensorGroup] = []
    if dense_layers:
        out += _ffn_matrices("mlp", Kind.LINEAR, a.intermediate, h, a.mlp_gated, dense_layers)
        if a.mlp_bias:
            up = 2 * a.intermediate if a.mlp_gated else a.intermediate
            out.append(_group("mlp.bias", Kind.VECTOR, up + h, 1, dense_layers))
    if a.moe is not None and a.count("moe"):
        out += _moe_groups(a, a.count("moe"))
    return out


def _mixer_groups(a: Architecture) -> list[TensorGroup]:
    out = _attention_groups(a)
    if a.mamba is not None:
        out += mamba_groups(a.mamba, a.hidden, a.count("mamba"))
    if a.linear is not None:
        out += linear_attention_groups(a.linear, a.hidden, a.count("linear"))
    return out


def _vit_blocks(v: Vision) -> list[TensorGroup]:
    """ViT blocks: q, k, v, o and a 2-layer MLP, with their biases and two LayerNorms (weight + bias)."""
    hv = v.hidden
    return [_group("vision.attn", Kind.VISION, 4 * hv, hv, v.layers),
            _group("vision.mlp", Kind.VISION, 2 * v.intermediate, hv, v.layers),
            _group("vision.vectors", Kind.VISION, 4 * hv + 4 * hv + v.intermediate + hv, 1, v.layers)]


def _qwen_vision_groups(a: Architecture) -> list[TensorGroup]:
    """Qwen3-VL vision tower: 3-D patch conv (+bias), learned positions, ViT blocks (qkv, proj, 2-layer MLP,
    all with biases, two LayerNorms), patch merger (LayerNorm, fc1 over merge² patches, fc2 to text width)."""
    v = a.vision
    assert v is not None
    hv, merged = v.hidden, v.hidden * v.merge**2
    return [_group("vision.patch", Kind.VISION, hv, v.num_channels * v.temporal_patch * v.patch_pixels, 1),
            _group("vision.pos", Kind.VISION, v.position_embeddings, hv, 1),
            *_vit_blocks(v),
            _group("vision.merger", Kind.VISION, merged, merged, 1),
            _group("vision.merger_out", Kind.VISION, v.projector_out, merged, 1),
            _group("vision.merger_vectors", Kind.VISION, 3 * hv + merged + v.projector_out, 1, 1)]


def _siglip_groups(a: Architecture) -> list[TensorGroup]:
    """SigLIP vision tower (Gemma 3): patch conv (+bias), learned positions, ViT blocks (q, k, v, o and a
    2-layer MLP, all with biases; two LayerNorms), post LayerNorm; projector RMSNorm + vision→text matrix."""
    v = a.vision
    assert v is not None
    hv = v.hidden
    return [_group("vision.patch", Kind.VISION, hv, v.num_channels * v.patch_pixels, 1),
            _group("vision.pos", Kind.VISION, v.position_embeddings, hv, 1),
            *_vit_blocks(v),
            _group("vision.projector", Kind.VISION, v.projector_out, hv, 1),
            _group("vision.final_vectors", Kind.VISION, hv + 2 * hv + hv, 1, 1)]


def _pixtral_groups(a: Architecture) -> list[TensorGroup]:
    """Pixtral vision tower (Mistral 3): bias-free patch conv and RMSNorm before the blocks; blocks of bias-free
    q, k, v, o, a gated SiLU MLP (3 matrices) and two RMSNorms. Projector: RMSNorm, patch merger (merge² patches
    → one, no bias), two linears to the text width (biases when multimodal_projector_bias)."""
    v = a.vision
    assert v is not None
    hv, merged, ht = v.hidden, v.hidden * v.merge**2, v.projector_out
    return [_group("vision.patch", Kind.VISION, hv, v.num_channels * v.patch_pixels, 1),
            _group("vision.attn", Kind.VISION, 4 * hv, hv, v.layers),
            _group("vision.mlp", Kind.VISION, 3 * v.intermediate, hv, v.layers),
            _group("vision.norms", Kind.VISION, 2 * hv, 1, v.layers),
            _group("vision.merger", Kind.VISION, hv, merged, 1),
            _group("vision.projector", Kind.VISION, ht, hv, 1),
            _group("vision.projector_2", Kind.VISION, ht, ht, 1),
            _group("vision.final_vectors", Kind.VISION, 2 * hv + (2 * ht if v.projector_bias else 0), 1, 1)]


def _vision_groups(a: Architecture) -> list[TensorGroup]:
    """Llama-4 vision tower: patch embedding, ViT layers (attention + MLP with biases), projector."""
    v = a.vision
    if v is None:
        return []
    if v.kind == "qwen3_vl":
        return _qwen_vision_groups(a)
    if v.kind == "siglip":
        return _siglip_groups(a)
    if v.kind == "pixtral":
        return _pixtral_groups(a)
    hv = v.hidden
    return [_group("vision.patch", Kind.VISION, hv, v.num_channels * v.patch_pixels, 1),
            *_vit_blocks(v),
            _group("vision.projector", Kind.VISION, a.hidden, v.projector_out, 1)]


def tensor_groups(a: Architecture) -> list[TensorGroup]:
    """All weights of the checkpoint (multi-token-prediction modules excluded)."""
    return list(_tensor_groups(a))


@functools.lru_cache(maxsize=512)
def _tensor_groups(a: Architecture) -> tuple[TensorGroup, ...]:
    """Memoised per (frozen, hashable) architecture: candidate generation asks for it thousands of times."""
    groups = [_group("embed", Kind.EMBED, a.vocab, a.hidden, 1)]
    if not a.tie_embeddings:
        groups.append(_group("lm_head", Kind.LM_HEAD, a.vocab, a.hidden, 1))
    groups += _mixer_groups(a)
    groups += _mlp_groups(a)
    groups.append(_group("norms", Kind.VECTOR, a.norms_per_layer * a.hidden, 1, a.layers))
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
