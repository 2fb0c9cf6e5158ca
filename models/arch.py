"""Normalise a Hugging Face ``config.json`` into one architecture description.

Known families (``model_type``): Llama 1-3, Mistral, Mixtral, Mistral 3 (Mistral Small 3.x / Ministral 3
text tower under a ``mistral3`` wrapper with its Pixtral vision tower), Qwen2/2-MoE/3/3-MoE, Phi-3/4,
Gemma 2/3 (Gemma 3 with its SigLIP vision tower), DeepSeek-V2/V3/V3.2 and Kimi K2 (MLA + MoE;
V3.2's sparse-attention indexer), GLM-5 (MLA + DSA), gpt-oss, Llama 4 (chunked attention,
multimodal wrapper), MiniMax-M2, Qwen3-Next/Qwen3.5 (gated-DeltaNet linear attention + gated full
attention, Qwen3-VL vision tower), Nemotron-H (Mamba-2/attention/MLP/MoE blocks, latent MoE),
Jamba (Mamba-1 + attention + MoE) and pure Mamba/Mamba-2. Any other ``model_type``, or a layer
kind not listed in ``layers.py``, is refused with one line naming it: it is never counted as if it
were a Llama.
"""

from __future__ import annotations

from typing import Any

from gpuplan.models.config_parts import (
    MLA,
    MoE,
    SparseIndex,
    Vision,
    moe_layer_flags,
    need,
    opt_int,
    parse_linear,
    parse_mamba,
    parse_mla,
    parse_moe,
    parse_sparse_index,
    parse_vision,
)
from gpuplan.models.errors import InputError
from gpuplan.models.layers import layer_layout
from gpuplan.models.mixers import LinearAttention, Mamba
from pydantic import BaseModel, ConfigDict

ATTENTION_MIXERS = ("attention", "sliding", "chunked")
KNOWN_MODEL_TYPES = frozenset({
    "llama", "mistral", "ministral3", "mixtral", "qwen2", "qwen2_moe", "qwen3", "qwen3_moe", "phi3", "gemma2",
    "gemma3_text", "deepseek_v2", "deepseek_v3", "deepseek_v32", "kimi_k2", "glm_moe_dsa", "gpt_oss", "llama4_text",
    "minimax_m2", "qwen3_next", "qwen3_5_text", "qwen3_5_moe_text", "nemotron_h", "jamba", "mamba", "mamba2",
})


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
    qk_norm: bool = False  # per-head q/k RMSNorm (Qwen3, Gemma 3)
    qk_norm_per_layer: bool = False  # MiniMax-M2: q/k RMSNorm over the whole projection
    attn_output_gate: bool = False  # Qwen3-Next/3.5: q_proj also emits a sigmoid output gate
    attention_sinks: bool = False
    mlp_bias: bool = False
    mlp_gated: bool = True  # SwiGLU/GeGLU (3 matrices) vs plain up/down (2)
    norms_per_layer: int = 2
    moe: MoE | None = None
    moe_layers: tuple[bool, ...] = ()  # per layer: True when the MLP is MoE
    mla: MLA | None = None
    sparse_index: SparseIndex | None = None
    sliding_window: int | None = None
    sliding_layers: tuple[bool, ...] = ()  # per layer: True when attention is windowed
    chunk_size: int | None = None  # Llama 4 attention_chunk_size
    mixers: tuple[str, ...] = ()  # per layer, see layers.py
    ffn: tuple[str, ...] = ()  # per layer: dense | moe | none
    mamba: Mamba | None = None
    linear: LinearAttention | None = None
    vision: Vision | None = None
    mtp_layers: int = 0  # multi-token-prediction modules (excluded from counts)
    # the checkpoint's quant_method when its quantization_config keeps the attention matrices unquantised
    # (``modules_to_not_convert`` lists ``self_attn``: gpt-oss's MXFP4 release quantises only the experts)
    attention_unquantized_in: str | None = None
    # weight formats whose published checkpoint keeps the attention matrices in 16 bits although its config
    # does not say so (models/checkpoints.csv column attention_16bit: NVIDIA's DeepSeek-R1 NVFP4 release)
    attention_16bit_formats: tuple[str, ...] = ()
    # the checkpoint's FP8 weight-scale block (quantization_config weight_block_size, e.g. (128, 128) for
    # DeepSeek's release): its linear layers run block-scaled FP8 GEMMs; () for per-tensor / per-channel scales
    fp8_weight_block: tuple[int, ...] = ()

    @property
    def is_moe(self) -> bool:
        return self.moe is not None

    @property
    def attention_kind(self) -> str:
        if self.mixers and not self.attention_layers:
            return "none"
        if self.mla is not None:
            return "mla"
        return "mha" if self.kv_heads == self.heads else "gqa"

    def count(self, *kinds: str) -> int:
        """Layers whose mixer or feed-forward is one of ``kinds``."""
        return sum(1 for m in self.mixers if m in kinds) + sum(1 for f in self.ffn if f in kinds)

    @property
    def attention_layers(self) -> int:
        return self.count(*ATTENTION_MIXERS)

    @property
    def kind_summary(self) -> str:
        """e.g. 'attention×6 mamba×23 moe×23': the layer kinds a user can check against the model card."""
        kinds = [k for k in (*ATTENTION_MIXERS, "mamba", "linear") if k in self.mixers]
        parts = [f"{k}×{self.count(k)}" for k in kinds]
        if self.moe:
            parts.append(f"moe×{self.count('moe')}")
        return " ".join(parts)


def _attention_unquantized_in(cfg: dict[str, Any], text: dict[str, Any]) -> str | None:
    """The checkpoint's ``quant_method`` when its ``modules_to_not_convert`` keeps the attention (``self_attn``)
    in 16 bits, else None."""
    q = cfg.get("quantization_config") or text.get("quantization_config")
    if not isinstance(q, dict) or not isinstance(q.get("quant_method"), str):
        return None
    kept = q.get("modules_to_not_convert") or []
    if isinstance(kept, list) and any(isinstance(k, str) and "self_attn" in k for k in kept):
        return q["quant_method"].lower()
    return None


def _fp8_weight_block(cfg: dict[str, Any], text: dict[str, Any]) -> tuple[int, ...]:
    """The FP8 checkpoint's weight-scale block, (rows, cols), from ``quantization_config`` (quant_method fp8 with
    ``weight_block_size``); () when the config names none."""
    q = cfg.get("quantization_config") or text.get("quantization_config")
    if not isinstance(q, dict) or str(q.get("quant_method", "")).lower() != "fp8":
        return ()
    block = q.get("weight_block_size")
    if isinstance(block, list) and block and all(isinstance(b, int) and b > 0 for b in block):
        return tuple(block)
    return ()


def _text_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """Multimodal wrappers (Llama 4, Qwen3.5) keep the decoder under ``text_config``."""
    inner = cfg.get("text_config")
    if isinstance(inner, dict) and "hidden_size" not in cfg:
        return inner
    return cfg


def _model_type(cfg: dict[str, Any], text: dict[str, Any], where: str) -> str:
    model_type = str(text.get("model_type") or "")
    outer = str(cfg.get("model_type") or "")
    if text is not cfg and not model_type:  # a wrapper whose text_config has no type: name by the wrapper
        model_type = {"llama4": "llama4_text", "qwen3_5": "qwen3_5_text", "qwen3_5_moe": "qwen3_5_moe_text",
                      "gemma3": "gemma3_text", "mistral3": "mistral"}.get(outer, outer)
    if not model_type:
        raise InputError(f"{where}: missing field 'model_type' (cannot tell which architecture this is)")
    if model_type == "llama4":
        model_type = "llama4_text"
    if model_type not in KNOWN_MODEL_TYPES:
        raise InputError(f"{where}: model_type '{model_type}' is not a supported architecture "
                         "(see the README's supported families)")
    return model_type


def _head_dim(text: dict[str, Any], hidden: int, heads: int, where: str) -> int:
    head_dim = text.get("head_dim") or text.get("attention_head_dim")
    if head_dim is None:
        if hidden % heads:
            raise InputError(f"{where}: num_attention_heads ({heads}) does not divide hidden_size ({hidden}) "
                             "and there is no 'head_dim'")
        head_dim = hidden // heads
    if isinstance(head_dim, bool) or not isinstance(head_dim, int) or head_dim <= 0:
        raise InputError(f"{where}: field 'head_dim' must be a positive integer, got {head_dim!r}")
    return head_dim


def _kv_heads(text: dict[str, Any], heads: int, where: str) -> int:
    kv_heads = text.get("num_key_value_heads") or heads
    if not isinstance(kv_heads, int) or kv_heads <= 0 or heads % kv_heads:
        raise InputError(f"{where}: num_key_value_heads ({kv_heads!r}) must divide num_attention_heads ({heads})")
    return kv_heads


def _norms_per_layer(model_type: str) -> int:
    """Gemma 2/3 wrap attention and MLP in pre+post norms; Nemotron-H and Mamba blocks have one."""
    if model_type.startswith("gemma"):
        return 4
    return 1 if model_type in ("nemotron_h", "mamba", "mamba2") else 2


def parse_config(cfg: dict[str, Any], where: str = "config.json") -> Architecture:
    """Read the decoder shape from a Hugging Face config; raise InputError naming a bad field."""
    if not isinstance(cfg, dict):
        raise InputError(f"{where}: expected a JSON object")
    text = _text_config(cfg)
    model_type = _model_type(cfg, text, where)
    hidden = need(text, "hidden_size", where, "n_embd", "d_model")
    layers = need(text, "num_hidden_layers", where, "n_layer", "num_layers")
    pure_ssm = model_type in ("mamba", "mamba2")
    heads = 1 if pure_ssm else need(text, "num_attention_heads", where, "n_head")
    kv_heads = _kv_heads(text, heads, where)
    head_dim = hidden if pure_ssm else _head_dim(text, hidden, heads, where)
    vocab = need(text, "vocab_size", where)
    moe = parse_moe(text, where, model_type)
    mixers, ffn = layer_layout(text, layers, model_type, where,
                               moe_layer_flags(text, layers, model_type) if moe else None)
    if moe is not None and model_type.startswith("llama4"):
        intermediate = need(text, "intermediate_size_mlp", where, "intermediate_size")
    elif "dense" not in ffn:  # every feed-forward is MoE (or absent): the dense width is unused
        intermediate = opt_int(text, "intermediate_size", where, 0)
    else:
        intermediate = need(text, "intermediate_size", where, "n_inner", "ffn_dim")
    if "mamba" in mixers and model_type not in ("nemotron_h", "jamba", "mamba", "mamba2"):
        raise InputError(f"{where}: 'mamba' layers in a '{model_type}' config are not supported")
    linear = parse_linear(text, where)
    if "linear" in mixers and linear is None:
        raise InputError(f"{where}: linear-attention layers need 'linear_num_value_heads' and its siblings")
    window = text.get("sliding_window") if "sliding" in mixers else None
    tie = text.get("tie_word_embeddings", cfg.get("tie_word_embeddings", model_type.startswith(("gemma", "mamba"))))
    mtp = opt_int(text, "num_nextn_predict_layers", where, 0) or opt_int(text, "mtp_num_hidden_layers", where, 0)
    return Architecture(
        model_type=model_type, hidden=hidden, layers=layers, heads=heads, kv_heads=kv_heads, head_dim=head_dim,
        vocab=vocab, tie_embeddings=bool(tie), intermediate=intermediate,
        max_context=opt_int(text, "max_position_embeddings", where, 0) or opt_int(cfg, "max_position_embeddings",
                                                                                  where, 0),
        attention_bias=bool(text.get("attention_bias", model_type in {"qwen2", "qwen2_moe"})),
        qk_norm=model_type.startswith(("qwen3", "gemma3")),  # Llama 4's use_qk_norm is a weightless L2 norm
        qk_norm_per_layer=model_type == "minimax_m2" and bool(text.get("use_qk_norm", True)),
        attn_output_gate=bool(text.get("attn_output_gate", model_type == "qwen3_next")),  # always gated there
        attention_sinks=model_type == "gpt_oss",
        attention_unquantized_in=_attention_unquantized_in(cfg, text),
        fp8_weight_block=_fp8_weight_block(cfg, text),
        mlp_bias=bool(text.get("mlp_bias", False)),
        mlp_gated=model_type != "nemotron_h",
        norms_per_layer=_norms_per_layer(model_type),
        moe=moe,
        moe_layers=tuple(f == "moe" for f in ffn) if moe else (),
        mla=parse_mla(text, where),
        sparse_index=parse_sparse_index(text, where),
        sliding_window=window if isinstance(window, int) else None,
        sliding_layers=tuple(m == "sliding" for m in mixers) if "sliding" in mixers else (),
        chunk_size=need(text, "attention_chunk_size", where) if "chunked" in mixers else None,
        mixers=mixers, ffn=ffn,
        mamba=parse_mamba(text, hidden, model_type, where) if "mamba" in mixers else None,
        linear=linear if "linear" in mixers else None,
        vision=parse_vision(cfg, where) if text is not cfg else None,
        mtp_layers=mtp,
    )
