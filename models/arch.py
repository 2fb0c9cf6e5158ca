"""Normalise a Hugging Face ``config.json`` into one architecture description.

Supported families: Llama 1-3 / Mistral / Qwen2-3 (dense, GQA), Mixtral and Qwen-MoE (MoE),
DeepSeek-V2/V3/R1 (MLA + MoE with shared experts and dense leading layers), gpt-oss (MoE with
biases, attention sinks and sliding-window layers) and Llama 4 (interleaved MoE with a shared
expert, multimodal wrapper). Anything else that has the usual decoder fields is read as dense.
"""

from __future__ import annotations

from typing import Any

from gpuplan.models.errors import InputError
from pydantic import BaseModel, ConfigDict


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
    correction_bias: bool = False  # DeepSeek-V3 e_score_correction_bias


class MLA(BaseModel):
    """Multi-head latent attention (DeepSeek-V2/V3) projection ranks."""

    model_config = ConfigDict(frozen=True)

    q_lora_rank: int | None
    kv_lora_rank: int
    qk_nope_head_dim: int
    qk_rope_head_dim: int
    v_head_dim: int


class Vision(BaseModel):
    """A vision tower that ships in the same checkpoint (Llama 4); counted, never run."""

    model_config = ConfigDict(frozen=True)

    hidden: int
    layers: int
    intermediate: int
    patch_pixels: int
    projector_out: int
    num_channels: int = 3


class Architecture(BaseModel):
    """Everything the memory and performance models need from a config."""

    model_config = ConfigDict(frozen=True)

    model_type: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tie_embeddings: bool
    intermediate: int  # dense-layer MLP width
    max_context: int
    attention_bias: bool = False
    qk_norm: bool = False
    attention_sinks: bool = False
    mlp_bias: bool = False
    moe: MoE | None = None
    moe_layers: tuple[bool, ...] = ()  # per layer: True when the MLP is MoE
    mla: MLA | None = None
    sliding_window: int | None = None
    sliding_layers: tuple[bool, ...] = ()  # per layer: True when attention is windowed
    vision: Vision | None = None
    mtp_layers: int = 0  # DeepSeek multi-token-prediction modules (excluded from counts)

    @property
    def is_moe(self) -> bool:
        return self.moe is not None

    @property
    def attention_kind(self) -> str:
        if self.mla is not None:
            return "mla"
        return "mha" if self.kv_heads == self.heads else "gqa"


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


def _need(cfg: dict[str, Any], key: str, where: str, *alts: str) -> Any:
    for k in (key, *alts):
        if k in cfg and cfg[k] is not None:
            return _checked_int(cfg[k], k, where, 1)
    raise InputError(f"{where}: missing field '{key}'")


def _opt_int(cfg: dict[str, Any], key: str, where: str, default: int) -> int:
    value = cfg.get(key, default)
    if value is None:
        return default
    return _checked_int(value, key, where, 0)


def _text_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """Multimodal wrappers (Llama 4) keep the decoder under ``text_config``."""
    inner = cfg.get("text_config")
    if isinstance(inner, dict) and "hidden_size" not in cfg:
        return inner
    return cfg


def _moe_layer_flags(cfg: dict[str, Any], layers: int, model_type: str) -> tuple[bool, ...]:
    if model_type.startswith("deepseek"):
        first_dense = _opt_int(cfg, "first_k_dense_replace", "config", 0)
        freq = _opt_int(cfg, "moe_layer_freq", "config", 1) or 1
        return tuple(i >= first_dense and i % freq == 0 for i in range(layers))
    if model_type.startswith("llama4"):
        explicit = cfg.get("moe_layers")
        if isinstance(explicit, list):
            chosen = set(explicit)
            return tuple(i in chosen for i in range(layers))
        step = _opt_int(cfg, "interleave_moe_layer_step", "config", 1) or 1
        return tuple((i + 1) % step == 0 for i in range(layers))
    if model_type.startswith("qwen"):
        step = _opt_int(cfg, "decoder_sparse_step", "config", 1) or 1
        dense_only = set(cfg.get("mlp_only_layers") or [])
        return tuple(i not in dense_only and (i + 1) % step == 0 for i in range(layers))
    return tuple(True for _ in range(layers))


def _parse_moe(cfg: dict[str, Any], where: str, model_type: str) -> MoE | None:
    experts = cfg.get("num_local_experts") or cfg.get("n_routed_experts") or cfg.get("num_experts")
    if not experts:
        return None
    if not isinstance(experts, int) or experts <= 0:
        raise InputError(f"{where}: field 'num_experts' must be a positive integer, got {experts!r}")
    top_k = _need(cfg, "num_experts_per_tok", where, "experts_per_token", "num_experts_per_token")
    if top_k > experts:
        raise InputError(f"{where}: num_experts_per_tok ({top_k}) exceeds the number of experts ({experts})")
    expert_inter = cfg.get("moe_intermediate_size") or _need(cfg, "intermediate_size", where)
    shared = _opt_int(cfg, "n_shared_experts", where, 0)
    shared_inter = expert_inter * shared
    if cfg.get("shared_expert_intermediate_size"):  # Qwen2-MoE
        shared, shared_inter = 1, _need(cfg, "shared_expert_intermediate_size", where)
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
        correction_bias=model_type.startswith("deepseek_v3"),
    )


def _parse_mla(cfg: dict[str, Any], where: str) -> MLA | None:
    if not cfg.get("kv_lora_rank"):
        return None
    q_rank = cfg.get("q_lora_rank")
    return MLA(
        q_lora_rank=int(q_rank) if q_rank else None,
        kv_lora_rank=_need(cfg, "kv_lora_rank", where),
        qk_nope_head_dim=_need(cfg, "qk_nope_head_dim", where),
        qk_rope_head_dim=_need(cfg, "qk_rope_head_dim", where),
        v_head_dim=_need(cfg, "v_head_dim", where),
    )


def _parse_sliding(cfg: dict[str, Any], layers: int, where: str) -> tuple[int | None, tuple[bool, ...]]:
    window = cfg.get("sliding_window")
    layer_types = cfg.get("layer_types")
    if isinstance(layer_types, list) and layer_types:
        if len(layer_types) != layers:
            raise InputError(f"{where}: 'layer_types' has {len(layer_types)} entries for {layers} layers")
        flags = tuple(t == "sliding_attention" for t in layer_types)
        if any(flags):
            if not isinstance(window, int) or window <= 0:
                raise InputError(f"{where}: sliding-attention layers need a positive 'sliding_window'")
            return window, flags
        return None, ()
    if cfg.get("use_sliding_window") is False:
        return None, ()
    if isinstance(window, int) and window > 0 and cfg.get("model_type") in {"mistral", "mixtral"}:
        return window, tuple(True for _ in range(layers))
    return None, ()


def _parse_vision(cfg: dict[str, Any]) -> Vision | None:
    vis = cfg.get("vision_config")
    if not isinstance(vis, dict) or not vis.get("hidden_size"):
        return None
    return Vision(
        hidden=int(vis["hidden_size"]),
        layers=int(vis.get("num_hidden_layers", 0)),
        intermediate=int(vis.get("intermediate_size", 0)),
        patch_pixels=int(vis.get("patch_size", 14)) ** 2,
        projector_out=int(vis.get("projector_output_dim", vis["hidden_size"])),
        num_channels=int(vis.get("num_channels", 3)),
    )


def parse_config(cfg: dict[str, Any], where: str = "config.json") -> Architecture:
    """Read the decoder shape from a Hugging Face config; raise InputError naming a bad field."""
    if not isinstance(cfg, dict):
        raise InputError(f"{where}: expected a JSON object")
    outer_type = str(cfg.get("model_type", ""))
    text = _text_config(cfg)
    model_type = str(text.get("model_type") or outer_type or "unknown")
    hidden = _need(text, "hidden_size", where, "n_embd", "d_model")
    layers = _need(text, "num_hidden_layers", where, "n_layer", "num_layers")
    heads = _need(text, "num_attention_heads", where, "n_head")
    kv_heads = text.get("num_key_value_heads") or heads
    if not isinstance(kv_heads, int) or kv_heads <= 0 or heads % kv_heads:
        raise InputError(f"{where}: num_key_value_heads ({kv_heads!r}) must divide num_attention_heads ({heads})")
    head_dim = text.get("head_dim") or hidden // heads
    if not isinstance(head_dim, int) or head_dim <= 0:
        raise InputError(f"{where}: field 'head_dim' must be a positive integer, got {head_dim!r}")
    vocab = _need(text, "vocab_size", where)
    moe = _parse_moe(text, where, model_type)
    if moe is not None and model_type.startswith("llama4"):
        intermediate = _need(text, "intermediate_size_mlp", where, "intermediate_size")
    else:
        intermediate = _need(text, "intermediate_size", where, "n_inner", "ffn_dim")
    tie = text.get("tie_word_embeddings", cfg.get("tie_word_embeddings", False))
    window, sliding = _parse_sliding(text, layers, where)
    return Architecture(
        model_type=model_type,
        hidden=hidden,
        layers=layers,
        heads=heads,
        kv_heads=kv_heads,
        head_dim=head_dim,
        vocab=vocab,
        tie_embeddings=bool(tie),
        intermediate=intermediate,
        max_context=int(text.get("max_position_embeddings") or cfg.get("max_position_embeddings") or 0),
        attention_bias=bool(text.get("attention_bias", model_type in {"qwen2", "qwen2_moe"})),
        qk_norm=model_type in {"qwen3", "qwen3_moe"},
        attention_sinks=model_type == "gpt_oss",
        mlp_bias=bool(text.get("mlp_bias", False)),
        moe=moe,
        moe_layers=_moe_layer_flags(text, layers, model_type) if moe else (),
        mla=_parse_mla(text, where),
        sliding_window=window,
        sliding_layers=sliding,
        vision=_parse_vision(cfg),
        mtp_layers=_opt_int(text, "num_nextn_predict_layers", where, 0),
    )
