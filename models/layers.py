"""Per-layer layout of a decoder: which sequence mixer and which feed-forward block each layer has.

Mixers: ``attention`` (full causal softmax attention, MHA/GQA/MLA), ``sliding`` (holds at most the
window), ``chunked`` (Llama 4: attends within one chunk), ``mamba`` (Mamba-1/2 state), ``linear``
(gated-DeltaNet recurrent state), ``none`` (a Nemotron-H feed-forward-only block).
Feed-forward: ``dense``, ``moe``, ``none`` (a Mamba or Nemotron-H mixer-only block).

Sources of the layout, by precedence: ``hybrid_override_pattern`` (Nemotron-H: M mamba, * attention,
- MLP, E MoE), ``layers_block_type`` or the attention period/offset (Jamba), ``layer_types``
(gpt-oss, Qwen3-Next/3.5, Gemma 3 ≥ 4.53), the family's known interleave (Gemma 2: every other layer
sliding, and gpt-oss likewise; Gemma 3: ``sliding_window_pattern``, default 6; Qwen with
``use_sliding_window``: layers from ``max_window_layers`` on; Llama 4: chunked except every 4th NoPE
layer; Mistral/Mixtral: every layer windowed when ``sliding_window`` is set). Anything else is refused.
"""

from __future__ import annotations

from typing import Any

from gpuplan.models.errors import InputError


def _int(cfg: dict[str, Any], key: str, where: str, default: int, minimum: int = 1) -> int:
    """An integer field ≥ ``minimum`` (the default when absent or null); anything else names the field."""
    value = cfg.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InputError(f"{where}: field '{key}' must be an integer ≥ {minimum}, got {value!r}")
    return value

MIXERS = ("attention", "sliding", "chunked", "mamba", "linear", "none")
FFNS = ("dense", "moe", "none")
LAYER_TYPE_MIXER = {"full_attention": "attention", "attention": "attention", "sliding_attention": "sliding",
                    "chunked_attention": "chunked", "linear_attention": "linear", "mamba": "mamba"}
PATTERN = {"M": ("mamba", "none"), "*": ("attention", "none"), "-": ("none", "dense"), "E": ("none", "moe")}
PURE_SSM = {"mamba", "mamba2"}


def _hybrid_pattern(cfg: dict[str, Any], layers: int, where: str) -> tuple[list[str], list[str]]:
    pattern = cfg["hybrid_override_pattern"]
    if not isinstance(pattern, str) or len(pattern) != layers:
        size = len(pattern) if isinstance(pattern, str) else pattern
        raise InputError(f"{where}: 'hybrid_override_pattern' has {size} layers, "
                         f"num_hidden_layers is {layers}")
    bad = sorted({c for c in pattern if c not in PATTERN})
    if bad:
        raise InputError(f"{where}: 'hybrid_override_pattern' has unknown layer kind(s) {''.join(bad)!r} "
                         "(known: M mamba, * attention, - MLP, E MoE)")
    return [PATTERN[c][0] for c in pattern], [PATTERN[c][1] for c in pattern]


def _jamba(cfg: dict[str, Any], layers: int, where: str, has_moe: bool) -> tuple[list[str], list[str]]:
    kinds = cfg.get("layers_block_type")
    if isinstance(kinds, list):
        if len(kinds) != layers or any(k not in ("attention", "mamba") for k in kinds):
            raise InputError(f"{where}: 'layers_block_type' must list 'attention'/'mamba' for {layers} layers")
        mixers = list(kinds)
    else:
        period, offset = _int(cfg, "attn_layer_period", where, 8), _int(cfg, "attn_layer_offset", where, 4, 0)
        mixers = ["attention" if i % period == offset else "mamba" for i in range(layers)]
    e_period, e_offset = _int(cfg, "expert_layer_period", where, 2), _int(cfg, "expert_layer_offset", where, 1, 0)
    ffn = ["moe" if has_moe and i % e_period == e_offset else "dense" for i in range(layers)]
    return mixers, ffn


def _layer_types(types: Any, layers: int, where: str) -> list[str]:
    if not isinstance(types, list) or len(types) != layers:
        size = len(types) if isinstance(types, list) else types
        raise InputError(f"{where}: 'layer_types' has {size} entries for {layers} layers")
    unknown = sorted({str(t) for t in types if t not in LAYER_TYPE_MIXER})
    if unknown:
        raise InputError(f"{where}: unknown layer type(s) {', '.join(unknown)} in 'layer_types'")
    return [LAYER_TYPE_MIXER[t] for t in types]


def _attention_mixers(cfg: dict[str, Any], layers: int, model_type: str, where: str) -> list[str]:
    """Full / sliding / chunked attention per layer for pure-attention families."""
    window = cfg.get("sliding_window")
    if isinstance(cfg.get("layer_types"), list) and cfg["layer_types"]:
        return _layer_types(cfg["layer_types"], layers, where)
    if model_type.startswith("llama4") and cfg.get("attention_chunk_size"):
        no_rope = cfg.get("no_rope_layers") or [int((i + 1) % 4 != 0) for i in range(layers)]
        if len(no_rope) != layers:
            raise InputError(f"{where}: 'no_rope_layers' has {len(no_rope)} entries for {layers} layers")
        return ["chunked" if use_rope else "attention" for use_rope in no_rope]
    if not isinstance(window, int) or window <= 0 or cfg.get("use_sliding_window") is False:
        return ["attention"] * layers
    if model_type in ("gemma2", "gpt_oss"):  # even layers local (HF defaults when layer_types is absent)
        return ["sliding" if i % 2 == 0 else "attention" for i in range(layers)]
    if model_type.startswith(("qwen2", "qwen3")) and cfg.get("use_sliding_window"):
        first = _int(cfg, "max_window_layers", where, 0, 0)  # Qwen: layers from max_window_layers on are windowed
        return ["sliding" if i >= first else "attention" for i in range(layers)]
    if model_type.startswith("gemma3"):
        pattern = _int(cfg, "sliding_window_pattern", where, 6)
        return ["sliding" if (i + 1) % pattern else "attention" for i in range(layers)]
    if model_type in ("mistral", "ministral3", "mixtral"):
        return ["sliding"] * layers
    return ["attention"] * layers


def layer_layout(cfg: dict[str, Any], layers: int, model_type: str, where: str,
                 moe_flags: tuple[bool, ...] | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(mixer per layer, feed-forward per layer) for a text config; ``moe_flags`` is the per-layer MoE
    placement of attention families (None when the model has no experts)."""
    if model_type == "nemotron_h":
        mixers, ffn = _hybrid_pattern(cfg, layers, where)
    elif model_type == "jamba":
        mixers, ffn = _jamba(cfg, layers, where, moe_flags is not None)
    elif model_type in PURE_SSM:
        mixers, ffn = ["mamba"] * layers, ["none"] * layers
    else:
        if model_type.startswith(("qwen3_next", "qwen3_5")) and not cfg.get("layer_types"):
            interval = _int(cfg, "full_attention_interval", where, 4)
            mixers = ["attention" if (i + 1) % interval == 0 else "linear" for i in range(layers)]
        else:
            mixers = _attention_mixers(cfg, layers, model_type, where)
        ffn = ["moe" if f else "dense" for f in moe_flags] if moe_flags is not None else ["dense"] * layers
    if "sliding" in mixers and not (isinstance(cfg.get("sliding_window"), int) and cfg["sliding_window"] > 0):
        raise InputError(f"{where}: sliding-attention layers need a positive 'sliding_window'")
    return tuple(mixers), tuple(ffn)
