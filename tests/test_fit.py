"""`gpuplan fit`: the inverse questions, checked against hand-computed capacities."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest
from gpuplan.hardware.formats import load_formats
from gpuplan.hardware.gpus import load_gpus
from gpuplan.models.catalog import load_catalog, resolve
from gpuplan.models.memory import GIB, prefill_activation_bytes, weights_bytes
from gpuplan.models.training import offload_state_bytes
from gpuplan.optimizer.planning.fit import serving_grid

FORMATS = load_formats()


def test_models_that_fit_an_rtx_4090_at_32k_int8(gpuplan) -> None:
    rows = {r["model"]: r for r in gpuplan("fit", "--gpu", "rtx-4090", "--context", "32768", "--weights", "int8",
                                           "--format", "json").json()}
    # Llama 3.1 8B: 23.99 GiB × 0.9 (vLLM cap) − 8,030,261,248 B int8 weights (one byte per parameter)
    # − 8192-token prefill activations − 1 GiB runtime − 32768 × 131,072 B KV (32 layers × 2 × 8 × 128 × 2 B).
    act = prefill_activation_bytes(resolve("llama-3.1-8b").arch, 8192, 1, 1)
    headroom = (23.99 * GIB * 0.9 - 8_030_261_248 - act - GIB - 32768 * 131_072) / GIB
    assert rows["llama-3.1-8b"]["fits"] and rows["llama-3.1-8b"]["headroom_gib"] == pytest.approx(headroom, rel=1e-5)
    assert rows["llama-3.1-8b"]["gpus"] == 1
    # 32.8B parameters at one byte each are 30.5 GiB > 24 GiB: never on one card.
    assert not rows["qwen3-32b"]["fits"] and rows["qwen3-32b"]["max_sequences"] == 0


def test_longest_context_and_sequences_of_70b_fp8_on_one_h200(gpuplan) -> None:
    r = gpuplan("fit", "--model", "llama-3.1-70b", "--gpu", "h200", "--weights", "fp8", "--kv", "fp8",
                "--format", "json").json()
    arch = resolve("llama-3.1-70b").arch
    # fp8 KV: 80 layers × 2 × 8 KV heads × 128 × 1 B = 163,840 B per token.
    usable = (140.40 * GIB * 0.9 - weights_bytes(arch, FORMATS.weight("fp8"))
              - prefill_activation_bytes(arch, 8192, 1, 1) - GIB)
    assert r["gpus"] == 1
    assert r["longest_context_memory"] == math.floor(usable / 163_840)
    assert r["longest_context"] == 131_072  # max_position_embeddings binds before memory (≈ 365K tokens)
    seqs = {s["context"]: s["max_sequences"] for s in r["max_sequences"]}
    assert seqs[32768] == math.floor(usable / (32768 * 163_840))
    assert seqs[2048] > seqs[8192] > seqs[32768] > seqs[131072] >= 1


def test_smallest_deployment_of_70b_bf16_and_its_price(gpuplan) -> None:
    rows = {r["gpu"]: r for r in gpuplan("fit", "--model", "llama-3.1-70b", "--weights", "bf16",
                                         "--format", "json").json()}
    # 141.1 GB = 131.4 GiB of bf16 weights exceed one H100's 71.7 GiB and one H200's 126.4 GiB usable
    # (× 0.9 vLLM cap); two of either hold them with room for KV; one B200 (161.2 GiB usable) does.
    assert rows["h100-sxm"]["tp"] == 2 and rows["h200"]["tp"] == 2 and rows["b200"]["tp"] == 1
    assert rows["rtx-4090"]["tp"] == 8  # 8 × 21.6 GiB over PCIe (host limit 8 GPUs)
    if rows["h100-sxm"]["usd_per_hour"] is not None:
        from gpuplan.pricing.offers import load_offers
        cheapest = min(o.on_demand_usd_per_hour for o in load_offers()
                       if o.gpu == "h100-sxm" and o.on_demand_usd_per_hour and o.gpus_per_instance >= 2)
        assert rows["h100-sxm"]["usd_per_hour"] == pytest.approx(cheapest)


def test_deepspeed_offload_estimates_for_t5_small() -> None:
    # DeepSpeed estimate_zero3_model_states_mem_needs_all_live printout for t5-small (60M params, largest layer
    # 16M), 1 GPU: offload params+optimizer 0.06 GB per GPU / 1.52 GB CPU; optimizer only 0.17 GB / 1.35 GB.
    gpu, cpu = offload_state_bytes(60_000_000, 16_000_000, 3, 1, 1, "optimizer+params")
    assert (round(gpu / GIB, 2), cpu / GIB) == (0.06, pytest.approx(1.52, abs=0.02))
    gpu, cpu = offload_state_bytes(60_000_000, 16_000_000, 3, 1, 1, "optimizer")
    assert (round(gpu / GIB, 2), cpu / GIB) == (0.17, pytest.approx(1.35, abs=0.02))


def _gpt3_like(tmp_path: Path) -> Path:
    # GPT-3 175B's depth and width (96 layers, hidden 12288, 96 heads, 50257 tokens) with a SwiGLU MLP of
    # 32768 keeping the count at 175B: 96 × (4 × 12288² + 3 × 12288 × 32768) + 2 × 50257 × 12288 ≈ 175.2B.
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"model_type": "llama", "hidden_size": 12288, "num_hidden_layers": 96,
                               "num_attention_heads": 96, "intermediate_size": 32768, "vocab_size": 50257,
                               "max_position_embeddings": 2048}))
    return cfg


def test_zero3_offload_trains_175b_on_8_a100s_with_the_host_memory_it_needs(gpuplan, tmp_path: Path) -> None:
    cfg = _gpt3_like(tmp_path)
    base = ("fit", "--model", str(cfg), "--mode", "train", "--gpu", "a100-80gb", "--gpus", "8", "--context", "2048",
            "--format", "json")
    plain = gpuplan(*base, "--zero-stage", "3").json()[0]
    assert plain["gpus"] is None  # 16 B/param / 8 = 350 GB per GPU without offload
    infinity = gpuplan(*base, "--zero-stage", "3", "--offload", "optimizer+params").json()[0]
    assert infinity["gpus"] == 8
    # GPU: 4 × largest layer (the 50257 × 12288 embedding) + activations; host: 18 B × P × 1.5 on one node.
    params = 96 * (4 * 12288**2 + 3 * 12288 * 32768 + 2 * 12288) + 2 * 50257 * 12288 + 12288
    assert infinity["cpu_gib_per_node"] == pytest.approx(18 * params * 1.5 / GIB, rel=1e-6)
    assert infinity["gpu_gib"] < 80


def test_offload_needs_the_right_zero_stage(gpuplan) -> None:
    r = gpuplan("fit", "--model", "llama-3.1-8b", "--mode", "train", "--zero-stage", "2",
                "--offload", "optimizer+params")
    assert r.code == 2 and "zero-stage 3" in r.err


def test_whole_catalog_times_all_gpus_is_fast_and_monotone_in_tp() -> None:
    models, gpus = list(load_catalog().values()), list(load_gpus())
    start = time.perf_counter()
    grid = serving_grid(models, gpus, FORMATS.weight("fp8"), FORMATS.kv_format("fp8"), 32768)
    seqs = grid.max_sequences()
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0  # about 0.3 s on an idle core; the CI machine is shared
    # More GPUs in the group never hold fewer sequences (where both TP degrees are allowed).
    both = (seqs[:, 1:, :] >= 0) & (seqs[:, :-1, :] >= 0)
    assert ((seqs[:, 1:, :] >= seqs[:, :-1, :]) | ~both).all()


def test_fit_plot_writes_a_heatmap(gpuplan, tmp_path: Path) -> None:
    png = tmp_path / "fit.png"
    r = gpuplan("fit", "--gpu", "h100-sxm", "--weights", "fp8", "--plot", str(png), "--format", "json")
    assert r.code == 0 and png.stat().st_size > 1000


def test_notebook_api_fit_frame_agrees_with_the_cli(gpuplan) -> None:
    from gpuplan.optimizer import api

    df = api.fit(context=32768, weights="fp8", kv="fp8", models=["llama-3.1-70b"], gpus=["h100-sxm", "h200"])
    cli = {r["gpu"]: r for r in gpuplan("fit", "--model", "llama-3.1-70b", "--weights", "fp8", "--kv", "fp8",
                                        "--context", "32768", "--format", "json").json()}
    for row in df.to_dict("records"):
        assert row["tp"] == cli[row["gpu"]]["tp"] and row["max_sequences"] == cli[row["gpu"]]["max_sequences"]


def test_nothing_fits_is_infeasible_naming_weights_and_capacity(gpuplan) -> None:
    # Kimi K2: 1,026.4B parameters × 2 B = 1,911.8 GiB; 8 × 23.99 GiB × 0.9 = 172.7 GiB usable.
    r = gpuplan("fit", "--model", "kimi-k2", "--gpu", "rtx-4090")
    assert r.code == 3 and "1,911.8 GiB" in r.err and "172.7 GiB" in r.err


def test_seed_max_model_table_with_weights_and_kv_only(gpuplan) -> None:
    # Seed table "Max Model (INT8, 32K ctx)": RTX 4090 7B, A100/H100 80 GB 70B, MI300X 130B. Weights + KV only:
    # Llama 3.1 70B = 70.55 GB int8 + 32768 × 80 × 2 × 8 × 128 × 1 B (5.37 GB) = 70.7 GiB < 79.65 GiB on an H100;
    # Qwen3-32B's 32.8 GB (30.5 GiB) never fits a 24 GiB card, so the largest dense model there is an 8B.
    r = gpuplan("fit", "--context", "32768", "--weights", "int8", "--kv", "int8", "--overhead-fraction", "0",
                "--gpu", "rtx-4090", "--gpu", "h100-sxm", "--gpu", "mi300x", "--format", "json").json()
    rows = {x["gpu"]: x for x in r["largest_per_gpu"]}
    assert rows["h100-sxm"]["largest_dense_model"] == "llama-3.1-70b"
    assert rows["rtx-4090"]["dense_params_b"] == pytest.approx(8.19, abs=0.01)
    assert rows["mi300x"]["params_b"] > 130  # mixtral-8x22b (140.6B): nothing in the catalog sits at 130B


def test_training_fit_uses_the_whole_gpu_not_the_serving_cap() -> None:
    from gpuplan.models.breakdown import fit, training_breakdown

    arch = resolve("llama-3.1-8b").arch
    b = training_breakdown(arch, "lora", FORMATS.weight("bf16"), 2048, 1)
    gpu = b.total_bytes + 1  # one byte more than needed: fits only without vLLM's 0.9 cap
    assert fit(b, arch, None, 2048, gpu).fits
    assert fit(b, arch, None, 2048, gpu).capacity_bytes == gpu
