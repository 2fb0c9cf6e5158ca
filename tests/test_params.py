"""Parameter counts computed from the shipped config.json files against published figures."""

from __future__ import annotations

import csv

import pytest
from gpuplan.models.catalog import CATALOG_CSV, load_catalog, resolve

# Published totals precise to at least three significant digits (model cards / HF safetensors metadata;
# the source of each figure is in models/catalog.csv).
PRECISE_TOTALS_B = {
    "llama-3.1-8b": 8.03,  # Meta model card: 8.03B
    "llama-3.1-70b": 70.55,  # Meta model card / HF safetensors: 70.55B
    "llama-3.1-405b": 405.85,  # HF safetensors: 405.85B (DESIGN issue example)
    "mixtral-8x7b": 46.7,  # Mistral AI: 46.7B total
    "deepseek-v3": 671.0,  # DeepSeek-V3 report: 671B total, MTP module excluded
    "qwen3-8b": 8.19,  # Qwen3-8B model card: 8.2B, HF safetensors 8.19B
    "qwen3-32b": 32.76,  # Qwen3-32B model card: 32.8B
    "gpt-oss-20b": 20.91,  # OpenAI gpt-oss model card: 20.91B total
    "gpt-oss-120b": 116.83,  # OpenAI gpt-oss model card: 116.83B total
    "llama-2-7b": 6.74,  # HF safetensors: 6.74B
    "llama-2-70b": 68.98,  # HF safetensors: 68.98B
    "kimi-k2": 1026.5,  # HF safetensors metadata of moonshotai/Kimi-K2-Instruct: 1026.5B
    "glm-5": 744.0,  # Z.ai GLM-5 announcement: 744B total (40B active); MTP layer not counted
    "deepseek-v3.2": 671.0,  # DeepSeek: 671B main model (+0.85B lightning indexers, +14B MTP on HF)
    "minimax-m2.5": 229.0,  # MiniMax model card: 229B total, 10B activated
    "nemotron-3-nano-30b-a3b": 31.6,  # NVIDIA model card: 31.6B total
    "qwen3.5-397b-a17b": 397.0,  # Qwen3.5 model card: 397B total, 17B activated
    "phi-4": 14.7,  # HF safetensors of microsoft/phi-4: 14.7B
}


def _published_rounding_b(model_id: str) -> float:
    """Half a unit of the last digit the publisher gave ("27B" is 26.5-27.5; "31.6B" is 31.55-31.65)."""
    with CATALOG_CSV.open(newline="", encoding="utf-8") as fh:
        cell = next(r["official_total_params"] for r in csv.DictReader(fh) if r["id"] == model_id)
    decimals = len(cell.split(".")[1]) if "." in cell else 0
    return 0.5 * 10.0**-decimals


@pytest.mark.parametrize("model_id", sorted(load_catalog()))
def test_every_catalog_model_matches_its_official_total_within_half_a_percent(model_id: str) -> None:
    # Within 0.5 % of the published figure, beyond the rounding of the figure itself.
    m = load_catalog()[model_id]
    assert m.official_total_params, f"{model_id} has no official count in catalog.csv"
    tolerance_b = 0.005 * m.official_total_params + _published_rounding_b(model_id)
    assert abs(m.params.total / 1e9 - m.official_total_params) <= tolerance_b


@pytest.mark.parametrize(("model_id", "billions"), sorted(PRECISE_TOTALS_B.items()))
def test_totals_match_published_figures(model_id: str, billions: float) -> None:
    assert resolve(model_id).params.total / 1e9 == pytest.approx(billions, rel=0.005)


def test_llama_3_1_8b_exact_count() -> None:
    # 128256×4096 embed + untied lm_head + 32 × (q 4096² + k,v 2×4096×1024 + o 4096² + MLP 3×4096×14336
    # + 2×4096 norms) + 4096 final norm = 8,030,261,248 (HF safetensors "8.03B").
    assert resolve("llama-3.1-8b").params.total == 8_030_261_248


def test_mixtral_active_params_include_embeddings() -> None:
    # Mistral AI, "Mixtral of experts": 46.7B total, 12.9B active (two of eight experts per token).
    m = resolve("mixtral-8x7b")
    assert m.params.active / 1e9 == pytest.approx(12.9, rel=0.005)


@pytest.mark.parametrize(("model_id", "billions"), [("gpt-oss-20b", 3.61), ("gpt-oss-120b", 5.13)])
def test_gpt_oss_active_without_embedding_table(model_id: str, billions: float) -> None:
    # OpenAI gpt-oss model card counts active parameters without the embedding table: 3.61B and 5.13B.
    p = resolve(model_id).params
    assert (p.active - p.embedding_table) / 1e9 == pytest.approx(billions, rel=0.005)


def test_deepseek_v3_active_rounds_to_published_37b() -> None:
    # DeepSeek-V3 report: "671B total parameters with 37B activated for each token" (a rounded figure).
    p = resolve("deepseek-v3").params
    assert round((p.active - p.embedding_table) / 1e9) == 37


def test_aliases_and_case_resolve_to_the_same_model() -> None:
    assert resolve("LLaMA-3-8B").id == "llama-3.1-8b"
    assert resolve("llama-3-70b").id == "llama-3.1-70b"


def test_moe_layers_follow_the_config() -> None:
    ds = resolve("deepseek-v3").arch  # first_k_dense_replace = 3 → 58 of 61 layers are MoE
    assert sum(ds.moe_layers) == 58
    mav = resolve("llama-4-maverick").arch  # interleave_moe_layer_step = 2 → every other layer
    assert sum(mav.moe_layers) == 24
    oss = resolve("gpt-oss-20b").arch  # layer_types alternates sliding/full, window 128
    assert sum(oss.sliding_layers) == 12 and oss.sliding_window == 128


def test_nemotron_3_nano_layers_and_active_params() -> None:
    # NVIDIA Nemotron-3-Nano-30B-A3B card: 52 blocks = 23 Mamba-2 + 23 MoE + 6 GQA attention;
    # 31.6B total, ~3.2B active without the embedding table (3.6B with it).
    m = resolve("nemotron-3-nano-30b-a3b")
    assert (m.arch.count("mamba"), m.arch.count("moe"), m.arch.attention_layers) == (23, 23, 6)
    assert (m.params.active - m.params.embedding_table) / 1e9 == pytest.approx(3.2, abs=0.05)
    assert m.params.active / 1e9 == pytest.approx(3.6, abs=0.05)


@pytest.mark.parametrize(("model_id", "active_b", "left_out"), [
    ("qwen3.5-35b-a3b", 3, "none"), ("qwen3.5-122b-a10b", 10, "none"), ("qwen3.5-397b-a17b", 17, "none"),
    ("kimi-k2", 32, "table"), ("minimax-m2.5", 10, "table"), ("deepseek-v3.2", 37, "table"),
    ("glm-5", 40, "both")])
def test_moe_active_params_round_to_the_published_figure(model_id: str, active_b: int, left_out: str) -> None:
    # The "A3B/A10B/A17B" names and the model cards' activated counts are rounded billions. Qwen counts
    # the embedding table in (A17B = 17.35B with it, 16.33B without); Moonshot, MiniMax, Z.ai and
    # DeepSeek leave the table out (Kimi K2: 31.69B without, 32.86B with it, published "32B"); Z.ai's
    # "40B active" for GLM-5 leaves out the table and the output head (39.88B; 40.83B with the head).
    p = resolve(model_id).params
    active = p.active - {"none": 0, "table": p.embedding_table, "both": p.embedding}[left_out]
    assert round(active / 1e9) == active_b


def test_qwen3_5_layer_types_three_linear_to_one_full() -> None:
    a = resolve("qwen3.5-27b").arch  # layer_types: linear_attention ×3, full_attention, repeated over 64 layers
    assert a.count("linear") == 48 and a.attention_layers == 16
    assert a.vision is not None and a.vision.layers == 27


def test_llama_3_3_70b_has_its_own_config_and_the_3_1_shapes() -> None:
    # models/configs/llama-3.3-70b.json: 128,256×8192 embedding + untied lm_head (2,101,346,304) + 80 ×
    # (q, o 2×8192² + k, v 2×8192×1024 + MLP 3×8192×28672 + 2×8192 norms = 855,654,400) + 8192 final norm
    # = 70,553,706,496 (HF safetensors "70.6B"; Meta: "70B").
    m = resolve("llama-3.3-70b")
    assert m.config_path.endswith("llama-3.3-70b.json") and m.hf_repo == "meta-llama/Llama-3.3-70B-Instruct"
    assert m.params.total == 70_553_706_496 == resolve("llama-3.1-70b").params.total
    assert resolve("Llama-3.3-70B-Instruct").id == "llama-3.3-70b"


def test_llama_3_3_70b_kv_per_token() -> None:
    from gpuplan.hardware.formats import load_formats
    from gpuplan.models.memory import kv_bytes_per_token, kv_cache_bytes

    # 80 layers × 2 (K, V) × 8 KV heads × head_dim 8192/64 = 128 × 2 B (bf16) = 327,680 B per token;
    # fp8 halves it; 8,192 tokens hold 2,684,354,560 B (2.5 GiB).
    fmt = load_formats()
    a = resolve("llama-3.3-70b").arch
    assert kv_bytes_per_token(a, fmt.kv_format("bf16")) == 327_680
    assert kv_bytes_per_token(a, fmt.kv_format("fp8")) == 163_840
    assert kv_cache_bytes(a, fmt.kv_format("bf16"), 8_192) == 2_684_354_560


def test_devstral_small_2_exact_count_with_its_pixtral_tower() -> None:
    # models/configs/devstral-small-2-24b.json (mistral3 wrapper, ministral3 text tower, Pixtral vision tower).
    # Text: 131,072×5120 embedding + untied lm_head (2 × 671,088,640) + 40 × (q 5120×4096 + k, v 2×5120×1024
    # + o 4096×5120 = 52,428,800; MLP 3×5120×32768 = 503,316,480; 2 norms × 5120) + 5120 = 23,572,403,200.
    # Pixtral: patch conv 3×14²×1024 (no bias) + ln_pre 1024 + 24 × (4×1024² + 3×1024×4096 + 2×1024)
    # = 403,305,472; projector: norm 1024 + merger 4·1024×1024 + 1024×5120 + 5120×5120 = 35,652,608.
    # Mistral AI: "24B".
    m = resolve("devstral-small-2")
    assert m.params.text == 23_572_403_200
    assert m.params.total - m.params.text == 403_305_472 + 35_652_608
    assert m.params.total == 24_011_361_280
    assert m.arch.model_type == "ministral3" and m.arch.kind_summary == "attention×40"


def test_devstral_small_2_kv_per_token_and_context() -> None:
    from gpuplan.hardware.formats import load_formats
    from gpuplan.models.memory import kv_bytes_per_token, kv_cache_bytes

    # 40 layers × 2 × 8 KV heads × 128 × 2 B (bf16) = 163,840 B per token, every layer full attention
    # (sliding_window null), so 32,768 tokens hold 5,368,709,120 B (5 GiB); YaRN factor 48 × 8,192 = 393,216.
    bf16 = load_formats().kv_format("bf16")
    a = resolve("devstral-small-2-24b").arch
    assert kv_bytes_per_token(a, bf16) == 163_840
    assert kv_cache_bytes(a, bf16, 32_768) == 5_368_709_120
    assert a.max_context == 393_216


def test_qwen3_coder_480b_exact_total_active_and_kv() -> None:
    from gpuplan.hardware.formats import load_formats
    from gpuplan.models.memory import kv_bytes_per_token

    # models/configs/qwen3-coder-480b-a35b.json. Per layer: q, o 2×6144×12288 + k, v 2×6144×1024 + q/k norms
    # 2×128 + 160 experts × 3×6144×2560 + router 160×6144 + 2×6144 norms = 7,714,320,640; × 62, + untied
    # 151,936×6144 embedding and lm_head, + 6144 = 480,154,875,392. A token uses 8 of 160 experts:
    # 62 × 542,060,800 + 1,866,995,712 = 35,474,765,312. Model card: 480B total, 35B activated.
    m = resolve("qwen3-coder")
    assert m.params.total == 480_154_875_392
    assert m.params.active == 35_474_765_312
    # 62 layers × 2 × 8 KV heads × 128 × 2 B = 253,952 B of bf16 KV per token.
    assert kv_bytes_per_token(m.arch, load_formats().kv_format("bf16")) == 253_952
