"""Per-layer architectures: hybrid Mamba/attention, linear attention, sliding and chunked windows, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gpuplan.hardware.formats import load_formats
from gpuplan.models.arch import parse_config
from gpuplan.models.catalog import resolve
from gpuplan.models.errors import InputError
from gpuplan.models.memory import kv_bytes_per_token, kv_cache_bytes, state_bytes_per_sequence
from gpuplan.models.params import count_params
from hypothesis import given, settings
from hypothesis import strategies as st

BF16 = load_formats().kv_format("bf16")

# ai21labs/AI21-Jamba-1.5-Mini config.json shape fields (quoted in onnx-diagnostic's test helpers, which
# cite the HF file); AI21: "12B active parameters and an overall of 52B parameters".
JAMBA_15_MINI = {"model_type": "jamba", "attn_layer_offset": 4, "attn_layer_period": 8, "expert_layer_offset": 1,
                 "expert_layer_period": 2, "hidden_size": 4096, "intermediate_size": 14336, "mamba_conv_bias": True,
                 "mamba_d_conv": 4, "mamba_d_state": 16, "mamba_dt_rank": 256, "mamba_expand": 2,
                 "mamba_proj_bias": False, "num_attention_heads": 32, "num_experts": 16, "num_experts_per_tok": 2,
                 "num_hidden_layers": 32, "num_key_value_heads": 8, "tie_word_embeddings": False,
                 "vocab_size": 65536}
# state-spaces/mamba-2.8b shapes in transformers' MambaConfig names (d_model 2560, 64 layers, d_state 16,
# expand 2, conv 4, dt_rank ceil(2560/16) = 160, vocab padded to 50280); HF lists 2.77B parameters.
MAMBA_2_8B = {"model_type": "mamba", "hidden_size": 2560, "num_hidden_layers": 64, "vocab_size": 50280,
              "state_size": 16, "conv_kernel": 4, "expand": 2, "time_step_rank": 160, "use_conv_bias": True,
              "use_bias": False}


def test_nemotron_3_nano_kv_is_six_attention_layers_plus_constant_state() -> None:
    # 6 attention layers × 2 (K, V) × 2 KV heads × 128 × 2 B = 6,144 B per token; 23 Mamba-2 layers each hold
    # conv 3 × (4096 + 2·8·128) × 2 B + SSM 64·64 × 128 × 4 B (float32 cache) = 2,134,016 B per sequence.
    a = resolve("nemotron-3-nano-30b-a3b").arch
    assert kv_bytes_per_token(a, BF16) == 6144
    assert state_bytes_per_sequence(a) == 23 * 2_134_016
    assert kv_cache_bytes(a, BF16, 131072) == 6144 * 131072 + 23 * 2_134_016


def test_qwen3_5_27b_kv_counts_only_the_full_attention_layers() -> None:
    # 16 full-attention layers × 2 × 4 KV heads × 256 × 2 B = 65,536 B/token (not 64 layers' 262,144);
    # each of 48 DeltaNet layers keeps 48 × 128 × 128 × 4 B + conv 3 × (2·2048 + 6144) × 2 B.
    a = resolve("qwen3.5-27b").arch
    assert kv_bytes_per_token(a, BF16) == 65536
    assert state_bytes_per_sequence(a) == 48 * (48 * 128 * 128 * 4 + 3 * 10240 * 2)


def test_llama_4_scout_chunked_attention_at_128k() -> None:
    # Llama 4: attention_chunk_size 8192 on 3 of 4 layers, every 4th layer global (NoPE): at 128K the cache
    # holds 12 × 131072 + 36 × 8192 tokens, 48 × 131072 / 1,867,776 = 3.37× less than all-global layers.
    a = resolve("llama-4-scout").arch
    assert a.mixers.count("chunked") == 36 and a.chunk_size == 8192
    per_layer = 2 * 8 * 128 * 2
    assert kv_cache_bytes(a, BF16, 131072) == per_layer * (12 * 131072 + 36 * 8192)


def test_deepseek_v3_2_caches_the_indexer_key() -> None:
    # MLA latent 512 + rope 64, plus the lightning indexer's 128-wide key, at 2 B, over 61 layers.
    assert kv_bytes_per_token(resolve("deepseek-v3.2").arch, BF16) == 61 * (512 + 64 + 128) * 2


def test_jamba_counts_and_layout() -> None:
    a = parse_config(JAMBA_15_MINI)
    assert (a.attention_layers, a.count("mamba"), a.count("moe")) == (4, 28, 16)
    p = count_params(a)
    assert p.total / 1e9 == pytest.approx(52, abs=0.5 + 0.26)  # "52B": rounding ±0.5B plus 0.5 %
    assert round(p.active / 1e9) == 12


def test_pure_mamba_has_no_kv_only_state() -> None:
    a = parse_config(MAMBA_2_8B)
    assert count_params(a).total / 1e9 == pytest.approx(2.77, rel=0.005)
    assert kv_bytes_per_token(a, BF16) == 0
    # 64 layers × (conv 3 × 5120 × 2 B + SSM 5120 × 16 × 2 B)
    assert kv_cache_bytes(a, BF16, 1_000_000) == 64 * (3 * 5120 * 2 + 5120 * 16 * 2)


@pytest.mark.parametrize(("cfg", "sliding"), [
    ({"model_type": "gemma2", "sliding_window": 4096}, [True, False] * 3),  # Gemma 2: even layers local
    ({"model_type": "gemma3_text", "sliding_window": 1024, "sliding_window_pattern": 6}, [True] * 5 + [False]),
    ({"model_type": "mistral", "sliding_window": 4096}, [True] * 6),
    ({"model_type": "qwen3", "sliding_window": 4096, "use_sliding_window": False}, [False] * 6),
    ({"model_type": "qwen2", "sliding_window": 4096, "use_sliding_window": True, "max_window_layers": 4},
     [False] * 4 + [True] * 2),  # Qwen2: layers ≥ max_window_layers use the window
    ({"model_type": "gpt_oss", "sliding_window": 128, "num_local_experts": 4, "num_experts_per_tok": 2},
     [True, False] * 3),  # gpt-oss without layer_types: even layers sliding, as its HF default
])
def test_family_sliding_interleave_without_layer_types(cfg: dict, sliding: list[bool]) -> None:
    base = {"hidden_size": 256, "num_hidden_layers": 6, "num_attention_heads": 4, "intermediate_size": 512,
            "vocab_size": 1000, "head_dim": 64}
    a = parse_config({**base, **cfg})
    assert [m == "sliding" for m in a.mixers] == sliding


BASE = {"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
        "intermediate_size": 11008, "vocab_size": 32000}


@pytest.mark.parametrize(("patch", "field"), [
    ({"model_type": "falcon_h1"}, "model_type 'falcon_h1'"),
    ({"model_type": "gemma3n_text", "num_kv_shared_layers": 10}, "model_type 'gemma3n_text'"),  # KV sharing
    ({"model_type": "gemma4_text"}, "model_type 'gemma4_text'"),
    ({"model_type": None}, "model_type"),
    ({"num_attention_heads": 30}, "does not divide hidden_size"),
    ({"num_hidden_layers": 0}, "num_hidden_layers"),
    ({"num_hidden_layers": -4}, "num_hidden_layers"),
    ({"layer_types": ["full_attention"] * 31 + ["mystery_attention"]}, "mystery_attention"),
    ({"model_type": "nemotron_h", "hybrid_override_pattern": "M*" * 15}, "hybrid_override_pattern"),
    ({"model_type": "nemotron_h", "hybrid_override_pattern": "M?" * 16}, "unknown layer kind"),
])
def test_bad_configs_are_refused_naming_the_field(patch: dict, field: str) -> None:
    with pytest.raises(InputError, match=field.replace("(", r"\(")):
        parse_config({**BASE, **patch}, "cfg.json")


def test_cli_refuses_unknown_architecture_in_one_line(gpuplan, tmp_path: Path) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({**BASE, "model_type": "rwkv7"}))
    r = gpuplan("models", "--model", str(cfg))
    assert r.code == 2 and "rwkv7" in r.err and len(r.err.strip().splitlines()) == 1


def test_models_shows_any_config_like_a_catalog_row(gpuplan, tmp_path: Path) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(MAMBA_2_8B))
    row = gpuplan("models", "--model", str(cfg), "--format", "json").json()[0]
    assert row["layer_kinds"] == "mamba×64" and row["kv_bytes_per_token"] == 0
    assert row["total_params"] == count_params(parse_config(MAMBA_2_8B)).total


def test_gemma_3_27b_counts_match_the_technical_report() -> None:
    # models/configs/gemma-3-27b.json (google/gemma-3-27b-it, re-saved by transformers 4.56.2).
    # Text, by hand: 62 layers × (q 5376×4096 + k, v 2×5376×2048 + o 4096×5376 = 66,060,288; q/k norms 2×128;
    # MLP 3×5376×21504 = 346,816,512; 4 norms × 5376) = 62 × 412,898,560 = 25,599,710,720, + final norm 5376
    # + tied embedding 262,208×5376 = 1,409,630,208 → 27,009,346,304.
    # SigLIP, by hand: 27 × (attention 4×(1152²+1152) + MLP 2×1152×4304 + 4304 + 1152 + 2 LayerNorms 4×1152)
    # = 411,466,608, + patch 3×14²×1152 + 1152, + positions (896/14)² × 1152, + post-norm 2×1152 = 416,866,032;
    # projector 1152×5376 + 1152 → 423,060,336 with the vision side.
    # Gemma 3 technical report, Table 1 (27B): vision encoder 417M, embedding 1,416M, non-embedding 25,600M.
    m = resolve("gemma-3-27b")
    p = m.params
    assert p.text == 27_009_346_304 and p.embedding == 1_409_630_208
    assert p.total - p.text == 423_060_336
    assert (p.text - p.embedding) / 1e6 == pytest.approx(25_600, rel=0.005)
    assert (p.total - p.text - (1152 * 5376 + 1152)) / 1e6 == pytest.approx(417, rel=0.005)
    assert p.total / 1e9 == pytest.approx(27.4, rel=0.005)
    assert resolve("gemma-3-27b-it").id == "gemma-3-27b"


def test_gemma_3_27b_kv_holds_the_window_on_52_of_62_layers() -> None:
    # layer_types in the config: every 6th layer full attention (10), the other 52 sliding with window 1024.
    # Per token and layer (bf16): 2 × 16 KV heads × 128 × 2 B = 8,192 B.
    a = resolve("gemma-3-27b").arch
    assert a.count("sliding") == 52 and a.attention_layers == 62 and a.sliding_window == 1024
    assert kv_bytes_per_token(a, BF16) == 62 * 8_192
    # Up to the window every layer holds every token: 512 × 62 × 8,192 B.
    assert kv_cache_bytes(a, BF16, 512) == 512 * 62 * 8_192
    # At 128K: 10 × 131,072 × 8,192 + 52 × 1,024 × 8,192 = 11,173,625,856 B (10.41 GiB), 5.7× less than
    # if all 62 layers held 131,072 tokens.
    assert kv_cache_bytes(a, BF16, 131_072) == 11_173_625_856
    assert state_bytes_per_sequence(a) == 0


def test_training_activations_per_layer_kind() -> None:
    from gpuplan.models.training import _stored_widths_per_token

    # Llama 3.1 8B: 4·4096 + 2·4096 (q, attention out) + 2·1024 (k, v) + 3·14336 (gate, up, act) = 69,632.
    assert set(_stored_widths_per_token(resolve("llama-3.1-8b").arch)) == {69_632}
    # Nemotron-3 Nano blocks (hidden 2688): Mamba-2 2·2688 + in_proj (2·4096 + 2·8·128 + 64) + 2·4096 = 23,872;
    # attention 2·2688 + 4096 + 2·256 + 4096 = 14,080; relu² MoE 2·2688 + 2·(6·1856 + 3712) = 35,072.
    widths = dict(zip(resolve("nemotron-3-nano-30b-a3b").arch.mixers[:3],
                      _stored_widths_per_token(resolve("nemotron-3-nano-30b-a3b").arch)[:3], strict=True))
    assert widths == {"mamba": 23_872, "none": 35_072}
    arch = resolve("nemotron-3-nano-30b-a3b").arch
    attention = [w for m, w in zip(arch.mixers, _stored_widths_per_token(arch), strict=True) if m == "attention"]
    assert set(attention) == {14_080}


def test_qwen3_next_80b_from_its_model_card_shapes() -> None:
    # Qwen3-Next-80B-A3B model card: hidden 2048, 48 layers = 12 × (3 gated DeltaNet + 1 gated attention),
    # attention 16 Q / 2 KV heads × 256, DeltaNet 32 V / 16 QK heads × 128, 512 experts (10 active, 1 shared,
    # width 512); vocab 151,936. Published: 80B total.
    cfg = {"model_type": "qwen3_next", "hidden_size": 2048, "num_hidden_layers": 48, "num_attention_heads": 16,
           "num_key_value_heads": 2, "head_dim": 256, "linear_num_key_heads": 16, "linear_num_value_heads": 32,
           "linear_key_head_dim": 128, "linear_value_head_dim": 128, "linear_conv_kernel_dim": 4,
           "num_experts": 512, "num_experts_per_tok": 10, "moe_intermediate_size": 512,
           "shared_expert_intermediate_size": 512, "vocab_size": 151936, "full_attention_interval": 4,
           "intermediate_size": 5120}
    a = parse_config(cfg)
    assert a.count("linear") == 36 and a.attention_layers == 12 and a.attn_output_gate
    assert abs(count_params(a).total / 1e9 - 80) <= 0.5 + 0.4  # "80B": rounding plus 0.5 %


def test_sparse_attention_reads_top_k_latents_and_every_index_key() -> None:
    from gpuplan.models.memory import decode_state_bytes, held_state_bytes

    # DeepSeek-V3.2 at 128K, bf16: the cache holds 61 × (512 + 64 + 128) × 2 B per token; a decode step reads
    # each layer's 128-wide index key for all 131,072 tokens but the 576-wide latent of only 2,048.
    a = resolve("deepseek-v3.2").arch
    assert held_state_bytes(a, BF16, 131072) == 61 * 704 * 2 * 131072
    assert decode_state_bytes(a, BF16, 131072) == 61 * 2 * (128 * 131072 + 576 * 2048)


def test_pure_mamba2_from_published_shapes() -> None:
    # state-spaces/mamba2-2.7b: d_model 2560, 64 layers, expand 2, headdim 64 (80 heads), 1 group, d_state 128,
    # conv 4, vocab 50277 padded to 50288, tied embeddings; published as 2.7B.
    cfg = {"model_type": "mamba2", "hidden_size": 2560, "num_hidden_layers": 64, "num_heads": 80, "head_dim": 64,
           "n_groups": 1, "state_size": 128, "conv_kernel": 4, "expand": 2, "vocab_size": 50288}
    a = parse_config(cfg)
    assert abs(count_params(a).total / 1e9 - 2.7) <= 0.05 + 0.0135
    # per layer: conv 3 × (5120 + 2·128) × 2 B + SSM 80 × 64 × 128 × 2 B (no float32 cache declared)
    assert state_bytes_per_sequence(a) == 64 * (3 * 5376 * 2 + 5120 * 128 * 2)


@settings(max_examples=40, deadline=None)
@given(st.text(alphabet="M*-E", min_size=1, max_size=40), st.integers(1, 300_000), st.integers(1, 300_000))
def test_hybrid_pattern_kv_counts_attention_layers_and_state_is_constant(pattern: str, c1: int, c2: int) -> None:
    cfg = {"model_type": "nemotron_h", "hidden_size": 512, "num_hidden_layers": len(pattern),
           "hybrid_override_pattern": pattern, "num_attention_heads": 8, "num_key_value_heads": 2, "head_dim": 64,
           "intermediate_size": 1024, "vocab_size": 1000, "mamba_num_heads": 16, "mamba_head_dim": 64,
           "n_groups": 2, "ssm_state_size": 32, "conv_kernel": 4, "n_routed_experts": 8, "num_experts_per_tok": 2,
           "moe_intermediate_size": 256, "moe_shared_expert_intermediate_size": 512}
    a = parse_config(cfg)
    per_token = 2 * 2 * 64 * 2  # K and V, 2 KV heads × 64, 2 B
    assert kv_bytes_per_token(a, BF16) == pattern.count("*") * per_token
    state = state_bytes_per_sequence(a)
    assert state == pattern.count("M") * (3 * (1024 + 2 * 2 * 32) * 2 + 1024 * 32 * 2)
    lo, hi = sorted((c1, c2))
    assert kv_cache_bytes(a, BF16, hi) - kv_cache_bytes(a, BF16, lo) == pattern.count("*") * per_token * (hi - lo)


@pytest.mark.parametrize(("patch", "field"), [
    ({"model_type": "jamba", "attn_layer_period": 0, "mamba_expand": 2, "mamba_d_state": 16, "mamba_d_conv": 4},
     "attn_layer_period"),
    ({"model_type": "gemma3_text", "sliding_window": 1024, "sliding_window_pattern": "6"}, "sliding_window_pattern"),
    ({"max_position_embeddings": "long"}, "max_position_embeddings"),
])
def test_odd_values_are_named_never_a_traceback(patch: dict, field: str) -> None:
    with pytest.raises(InputError, match=field):
        parse_config({**BASE, **patch}, "cfg.json")


def test_mistral3_wrapper_projector_bias_and_untyped_text_tower() -> None:
    cfg = json.loads((Path(resolve("devstral-small-2").config_path)).read_text())
    base = count_params(parse_config(cfg))
    # multimodal_projector_bias adds the biases of linear_1 and linear_2: 2 × 5,120 (the HF default is true).
    with_bias = count_params(parse_config({**cfg, "multimodal_projector_bias": True}))
    assert with_bias.total - base.total == 2 * 5_120 and with_bias.text == base.text
    # Mistral Small 3.1's wrapper names its text tower 'mistral'; a text_config without a type reads as one.
    untyped = {**cfg, "text_config": {k: v for k, v in cfg["text_config"].items() if k != "model_type"}}
    assert parse_config(untyped).model_type == "mistral" and count_params(parse_config(untyped)) == base
    # A Pixtral tower outside a mistral3 wrapper is not counted: refused, naming it.
    with pytest.raises(InputError, match="pixtral"):
        parse_config({**cfg, "model_type": "llava", "text_config": {**cfg["text_config"], "model_type": "mistral"}})
