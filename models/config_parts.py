"""Read the sub-structures of a config (experts, MLA, sparse index, Mamba, DeltaNet, vision tower).

Field names follow each family's Hugging Face configuration class; every required field that is
missing or not a positive integer is reported by name.
"""

from __future__ import annotations

from typing import Any

from gpuplan.models.errors import InputError
from gpuplan.models.mixers import LinearAttention, Mamba
from pydantic import BaseModel, ConfigDict

STATE_DTYPE_BYTES = {"float32": 4, "fp32": 4, "bfloat16": 2, "float16": 2, "auto": 2}
DEEPSEEK_LIKE = ("deepseek", "kimi_k2", "glm_moe_dsa")


class MoE(BaseModel):
    """Routed-expert layout of a mixture-of-experts decoder."""

    model_config = ConfigDict(frozen=True)

    num_experts: int
    top_k: int
    expert_intermediate: int
    shared_experts: int = 0
    shared_intermediate: int = 0
    router_bias: bool = False
    expert_bias: bool = False
    correction_bias: bool = False  # DeepSeek-V3 / MiniMax-M2 / Nemotron e_score_correction_bias
    shared_gate: bool = False  # Qwen2-MoE/Qwen3.5 sigmoid gate on the shared expert (1 × hidden)
    gated: bool = True  # SwiGLU experts (gate + up + down); False: up + down (Nemotron-H relu²)
    latent_size: int = 0  # Nemotron-3 Super latent MoE: experts run in this width


class MLA(BaseModel):
    """Multi-head latent attention (DeepSeek-V2/V3) projection ranks."""

    model_config = ConfigDict(frozen=True)

    q_lora_rank: int | None
    kv_lora_rank: int
    qk_nope_head_dim: int
    qk_rope_head_dim: int
    v_head_dim: int


class SparseIndex(BaseModel):
    """DeepSeek sparse attention (V3.2, GLM-5): a lightning indexer picks ``topk`` tokens per query."""

    model_config = ConfigDict(frozen=True)

    heads: int
    head_dim: int
    topk: int


class Vision(BaseModel):
    """A vision tower that ships in the same checkpoint (Llama 4, Qwen3.5); counted, never run."""

    model_config = ConfigDict(frozen=True)

    kind: str = "llama4"  # llama4 | qwen3_vl | siglip | pixtral
    hidden: int
    layers: int
    intermediate: int
    patch_pixels: int
    projector_out: int
    num_channels: int = 3
    temporal_patch: int = 1
    position_embeddings: int = 0
    merge: int = 1  # spatial merge factor of the patch merger
    projector_bias: bool = False  # Mistral 3: multimodal_projector_bias


# Ceilings on config integers, far above any published model (405B: 126 layers; DeepSeek-V3: 256
# experts; vocabularies ≤ 262,144): a config beyond them is a typo or an attack, not a model, and
# per-layer tuples of 1e9 entries would exhaust memory before any check ran.
MAX_LAYERS = 10_000
MAX_CONFIG_INT = 2**31 - 1
_LAYER_KEYS = {"num_hidden_layers", "n_layer", "num_layers", "num_nextn_predict_layers", "first_k_dense_replace"}


def _checked_int(value: Any, key: str, where: str, minimum: int) -> int:
    ceiling = MAX_LAYERS if key in _LAYER_KEYS else MAX_CONFIG_INT
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= ceiling:
        kind = "a positive integer" if minimum > 0 else "a non-negative integer"
        raise InputError(f"{where}: field '{key}' must be {kind} ≤ {ceiling:,}, got {value!r:.40}")
    return value


def need(cfg: dict[str, Any], key: str, where: str, *alts: str) -> Any:
    for k in (key, *alts):
        if k in cfg and cfg[k] is not None:
            return _checked_int(cfg[k], k, where, 1)
    raise InputError(f"{where}: missing field '{key}'")


def opt_int(cfg: dict[str, Any], key: str, where: str, default: int) -> int:
    value = cfg.get(key, default)
    if value is None:
        return default
    return _checked_int(value, key, where, 0)


def moe_layer_flags(cfg: dict[str, Any], layers: int, model_type: str) -> tuple[bool, ...]:
    """Per layer: is the feed-forward an expert layer (attention families)."""
    if model_type.startswith(DEEPSEEK_LIKE):
        first_dense = opt_int(cfg, "first_k_dense_replace", "config", 0)
        freq = opt_int(cfg, "moe_layer_freq", "config", 1) or 1
        return tuple(i >= first_dense and i % freq == 0 for i in range(layers))
    if model_type.startswith("llama4"):
        explicit = cfg.get("moe_layers")
        if isinstance(explicit, list):
            chosen = set(explicit)
            return tuple(i in chosen for i in range(layers))
        step = opt_int(cfg, "interleave_moe_layer_step", "config", 1) or 1
        return tuple((i + 1) % step == 0 for i in range(layers))
    if model_type.startswith("qwen"):
        step = opt_int(cfg, "decoder_sparse_step", "config", 1) or 1
        dense_only = set(cfg.get("mlp_only_layers") or [])
        return tuple(i not in dense_only and (i + 1) % step == 0 for i in range(layers))
    return tuple(True for _ in range(layers))


def parse_moe(cfg: dict[str, Any], where: str, model_type: str) -> MoE | None:
    experts = cfg.get("num_local_experts") or cfg.get("n_routed_experts") or cfg.get("num_experts")
    if not experts or (model_type == "jamba" and experts == 1):
        return None
    if not isinstance(experts, int) or experts <= 0:
        raise InputError(f"{where}: field 'num_experts' must be a positive integer, got {experts!r}")
    top_k = need(cfg, "num_experts_per_tok", where, "experts_per_token", "num_experts_per_token")
    if top_k > experts:
        raise InputError(f"{where}: num_experts_per_tok ({top_k}) exceeds the number of experts ({experts})")
    expert_inter = cfg.get("moe_intermediate_size") or need(cfg, "intermediate_size", where)
    shared = opt_int(cfg, "n_shared_experts", where, 0)
    shared_inter = expert_inter * shared
    if cfg.get("moe_shared_expert_intermediate_size"):  # Nemotron-H
        shared_inter = need(cfg, "moe_shared_expert_intermediate_size", where) * max(shared, 1)
        shared = max(shared, 1)
    if cfg.get("shared_expert_intermediate_size"):  # Qwen2-MoE, Qwen3-Next, Qwen3.5
        shared, shared_inter = 1, need(cfg, "shared_expert_intermediate_size", where)
    if model_type.startswith("llama4"):  # one shared expert per MoE layer
        shared, shared_inter = 1, expert_inter
    gpt_oss = model_type == "gpt_oss"
    return MoE(
        num_experts=experts,
        top_k=top_k,
        expert_intermediate=expert_inter,
        shared_experts=shared,
        shared_intermediate=shared_inter,
        router_bias=gpt_oss,
        expert_bias=gpt_oss,
        correction_bias=model_type.startswith(("deepseek_v3", "deepseek_v32", "kimi_k2", "glm_moe_dsa",
                                                "nemotron_h"))
        or bool(cfg.get("use_routing_bias")),
        shared_gate=bool(shared_inter) and model_type.startswith(("qwen2_moe", "qwen3_next", "qwen3_5")),
        gated=model_type != "nemotron_h",
        latent_size=opt_int(cfg, "moe_latent_size", where, 0),
    )


def parse_mla(cfg: dict[str, Any], where: str) -> MLA | None:
    if not cfg.get("kv_lora_rank"):
        return None
    q_rank = cfg.get("q_lora_rank")
    return MLA(
        q_lora_rank=int(q_rank) if q_rank else None,
        kv_lora_rank=need(cfg, "kv_lora_rank", where),
        qk_nope_head_dim=need(cfg, "qk_nope_head_dim", where),
        qk_rope_head_dim=need(cfg, "qk_rope_head_dim", where),
        v_head_dim=need(cfg, "v_head_dim", where),
    )


def parse_sparse_index(cfg: dict[str, Any], where: str) -> SparseIndex | None:
    if not cfg.get("index_topk"):
        return None
    return SparseIndex(heads=need(cfg, "index_n_heads", where), head_dim=need(cfg, "index_head_dim", where),
                       topk=need(cfg, "index_topk", where))


def _state_bytes(cfg: dict[str, Any], default: int) -> int:
    dtype = cfg.get("mamba_ssm_cache_dtype") or cfg.get("mamba_ssm_dtype")
    return STATE_DTYPE_BYTES.get(str(dtype), default) if dtype else default


def parse_mamba(cfg: dict[str, Any], hidden: int, model_type: str, where: str) -> Mamba | None:
    """Mamba-1 (mamba, jamba) or Mamba-2 (mamba2, nemotron_h) mixer shapes."""
    if model_type == "jamba":
        expand = need(cfg, "mamba_expand", where)
        return Mamba(version=1, d_inner=expand * hidden, d_state=need(cfg, "mamba_d_state", where),
                     d_conv=need(cfg, "mamba_d_conv", where),
                     dt_rank=opt_int(cfg, "mamba_dt_rank", where, 0) or -(-hidden // 16),
                     conv_bias=bool(cfg.get("mamba_conv_bias", True)),
                     proj_bias=bool(cfg.get("mamba_proj_bias", False)),
                     inner_norms=bool(cfg.get("mamba_inner_layernorms", True)), state_bytes=_state_bytes(cfg, 2))
    if model_type == "mamba":
        d_inner = need(cfg, "intermediate_size", where) if cfg.get("intermediate_size") else \
            need(cfg, "expand", where) * hidden
        dt_rank = cfg.get("time_step_rank")
        return Mamba(version=1, d_inner=d_inner, d_state=need(cfg, "state_size", where),
                     d_conv=need(cfg, "conv_kernel", where),
                     dt_rank=dt_rank if isinstance(dt_rank, int) else -(-hidden // 16),
                     conv_bias=bool(cfg.get("use_conv_bias", True)), proj_bias=bool(cfg.get("use_bias", False)),
                     state_bytes=_state_bytes(cfg, 2))
    if model_type in ("mamba2", "nemotron_h"):
        heads = need(cfg, "mamba_num_heads", where, "num_heads")
        head_dim = need(cfg, "mamba_head_dim", where, "head_dim")
        return Mamba(version=2, d_inner=heads * head_dim, d_state=need(cfg, "ssm_state_size", where, "state_size"),
                     d_conv=need(cfg, "conv_kernel", where), heads=heads, groups=need(cfg, "n_groups", where),
                     conv_bias=bool(cfg.get("use_conv_bias", True)),
                     proj_bias=bool(cfg.get("mamba_proj_bias", cfg.get("use_bias", False))),
                     state_bytes=_state_bytes(cfg, 2))
    return None


def parse_linear(cfg: dict[str, Any], where: str) -> LinearAttention | None:
    """Gated-DeltaNet shapes (Qwen3-Next, Qwen3.5)."""
    if not cfg.get("linear_num_value_heads"):
        return None
    return LinearAttention(k_heads=need(cfg, "linear_num_key_heads", where),
                           v_heads=need(cfg, "linear_num_value_heads", where),
                           k_head_dim=need(cfg, "linear_key_head_dim", where),
                           v_head_dim=need(cfg, "linear_value_head_dim", where),
                           conv_kernel=need(cfg, "linear_conv_kernel_dim", where),
                           state_bytes=_state_bytes(cfg, 4))


def parse_vision(cfg: dict[str, Any], where: str) -> Vision | None:
    """A vision tower we can count (Llama 4, Qwen3.5's Qwen3-VL encoder, Gemma 3's SigLIP, Mistral 3's Pixtral);
    any other is refused."""
    vis = cfg.get("vision_config")
    if not isinstance(vis, dict) or not vis:
        return None
    vtype = str(vis.get("model_type", ""))
    if vtype == "llama4_vision_model":
        hidden = need(vis, "hidden_size", where)
        return Vision(kind="llama4", hidden=hidden, layers=opt_int(vis, "num_hidden_layers", where, 0),
                      intermediate=opt_int(vis, "intermediate_size", where, 0),
                      patch_pixels=opt_int(vis, "patch_size", where, 14) ** 2,
                      projector_out=opt_int(vis, "projector_output_dim", where, hidden),
                      num_channels=opt_int(vis, "num_channels", where, 3))
    if vtype in ("qwen3_5", "qwen3_5_moe", "qwen3_vl", "qwen3_vl_moe") and not vis.get("deepstack_visual_indexes"):
        return Vision(kind="qwen3_vl", hidden=need(vis, "hidden_size", where), layers=need(vis, "depth", where),
                      intermediate=need(vis, "intermediate_size", where),
                      patch_pixels=need(vis, "patch_size", where) ** 2,
                      projector_out=need(vis, "out_hidden_size", where),
                      num_channels=opt_int(vis, "in_channels", where, 3),
                      temporal_patch=opt_int(vis, "temporal_patch_size", where, 2),
                      position_embeddings=opt_int(vis, "num_position_embeddings", where, 0),
                      merge=opt_int(vis, "spatial_merge_size", where, 2))
    if vtype == "siglip_vision_model" and not vis.get("vision_use_head", False):  # Gemma 3
        patch = need(vis, "patch_size", where)
        text_hidden = need(cfg.get("text_config") or {}, "hidden_size", where)
        return Vision(kind="siglip", hidden=need(vis, "hidden_size", where),
                      layers=need(vis, "num_hidden_layers", where),
                      intermediate=need(vis, "intermediate_size", where), patch_pixels=patch**2,
                      projector_out=text_hidden, num_channels=opt_int(vis, "num_channels", where, 3),
                      position_embeddings=(need(vis, "image_size", where) // patch) ** 2)
    if vtype == "pixtral" and str(cfg.get("model_type", "")) == "mistral3":  # Mistral Small 3.x, Devstral
        return Vision(kind="pixtral", hidden=need(vis, "hidden_size", where),
                      layers=need(vis, "num_hidden_layers", where),
                      intermediate=need(vis, "intermediate_size", where),
                      patch_pixels=need(vis, "patch_size", where) ** 2,
                      projector_out=need(cfg.get("text_config") or {}, "hidden_size", where),
                      num_channels=opt_int(vis, "num_channels", where, 3),
                      merge=opt_int(cfg, "spatial_merge_size", where, 2),
                      projector_bias=bool(cfg.get("multimodal_projector_bias", True)))
    raise InputError(f"{where}: vision tower of model_type '{vtype or '?'}' is not supported "
                     "(its parameters cannot be counted)")
