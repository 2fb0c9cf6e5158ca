"""CLI contract: JSON field names of DESIGN.md, exit codes, one-line errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import corrupt_csv


def test_models_json_fields(gpuplan) -> None:
    r = gpuplan("models", "--format", "json")
    assert r.code == 0
    rows = {m["id"]: m for m in r.json()}
    for key in ("id", "total_params", "active_params", "num_layers", "kv_bytes_per_token"):
        assert key in rows["llama-3.1-8b"]
    # 2 × 32 layers × 8 KV heads × 128 × 2 B = 131,072 bytes per token (Llama 3.1 8B config)
    assert rows["llama-3.1-8b"]["kv_bytes_per_token"] == 131_072


def test_gpus_table_has_sources_and_driver_capacity(gpuplan) -> None:
    r = gpuplan("gpus", "--format", "json")
    gpus = {g["id"]: g for g in r.json()}
    for gid in ("rtx-3090", "rtx-4090", "rtx-5090", "rtx-a6000", "rtx-6000-ada", "l4", "l40s", "a10g",
                "a100-40gb", "a100-80gb", "h100-pcie", "h100-sxm", "h100-nvl", "h200", "gh200", "b200", "b300",
                "mi300x", "mi325x", "m2-ultra", "m3-max", "m4-max", "m3-ultra"):
        assert gpus[gid]["source"] and gpus[gid]["as_of"], gid
    # nvidia-smi reports 81559 MiB on H100 80GB HBM3 = 79.65 GiB (DESIGN: "≈ 79.6 GiB, not 80 GB")
    assert gpus["h100-sxm"]["memory_gib"] == pytest.approx(81559 / 1024, abs=0.01)
    assert gpus["h100-sxm"]["memory_bw_gb_s"] == 3350  # H100 SXM datasheet: 3.35 TB/s
    assert gpus["h100-sxm"]["bf16_tflops"] == pytest.approx(989.5)  # 1,979 with sparsity / 2


def test_prices_filter_by_gpu_and_tier(gpuplan) -> None:
    r = gpuplan("prices", "--gpu", "h100", "--tier", "spot", "--format", "json")
    assert r.code == 0
    offers = r.json()
    assert offers and all(o["gpu"] == "h100-sxm" and o["spot_usd_per_hour"] for o in offers)
    assert all(o["source"] and o["as_of"] for o in offers)


def test_skypilot_catalog_is_a_pricing_source(gpuplan, tmp_path: Path) -> None:
    vms = tmp_path / "aws" / "vms.csv"
    vms.parent.mkdir()
    vms.write_text(
        "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuInfo,Price,Region,SpotPrice\n"
        "p5.48xlarge,H100,8.0,192.0,2048.0,\"{}\",55.04,us-east-1,14.25\n"
        "p5.48xlarge,H100,8.0,192.0,2048.0,\"{}\",57.00,us-west-2,15.00\n"
        "m5.large,,,2,8,,0.096,us-east-1,0.03\n")
    r = gpuplan("--pricing", str(vms), "prices", "--provider", "aws", "--format", "json")
    assert r.code == 0, r.err
    east, west = sorted(r.json(), key=lambda o: o["region"])  # every region keeps its own prices
    assert east["instance"] == "p5.48xlarge" and east["gpu"] == "h100-sxm" and east["gpus_per_instance"] == 8
    assert (east["region"], east["on_demand_usd_per_hour"], east["spot_usd_per_hour"]) == ("us-east-1", 55.04, 14.25)
    assert (west["region"], west["on_demand_usd_per_hour"], west["spot_usd_per_hour"]) == ("us-west-2", 57.00, 15.00)
    assert "1 no accelerator (CPU-only VM)" in r.err


def test_memory_json_fields_and_fit(gpuplan) -> None:
    r = gpuplan("memory", "--model", "llama-3.1-70b", "--context", "8000", "--gpu", "h100-sxm", "--gpus", "8",
                "--overhead-fraction", "0.15", "--format", "json")
    data = r.json()
    for key in ("weights_bytes", "kv_cache_bytes", "activation_bytes", "overhead_bytes", "total_bytes",
                "weights_gib", "kv_cache_gib", "activation_gib", "overhead_gib", "total_gib", "fits",
                "max_sequences"):
        assert key in data
    assert data["fits"] is True and data["max_sequences"] >= 195


@pytest.mark.parametrize(("args", "needle"), [
    (["memory", "--model", "llama-3.1-8bb", "--context", "10"], "did you mean 'llama-3.1-8b'"),
    (["memory", "--model", "llama-3.1-8b", "--context", "0"], "'--context': 0 is not in the range 1<="),
    (["memory", "--model", "llama-3.1-8b", "--context", "10", "--batch", "-3"], "'--batch': -3 is not in"),
    (["memory", "--model", "llama-3.1-8b", "--context", "10", "--gpu", "h100-sxn"], "did you mean 'h100-sxm'"),
    (["memory", "--model", "llama-3.1-8b", "--context", "10", "--weights", "fp9"], "unknown weight format"),
    (["perf", "--model", "llama-3.1-8b", "--gpu", "h100-sxm", "--tp", "16"], "exceeds"),
    (["perf", "--model", "llama-3.1-70b", "--gpu", "h100-sxm", "--tp", "3"], "does not divide"),
])
def test_bad_input_is_one_line_exit_2(gpuplan, args: list[str], needle: str) -> None:
    r = gpuplan(*args)
    assert r.code == 2
    assert needle in r.err
    assert "Traceback" not in r.err and len(r.err.strip().splitlines()) == 1


def test_malformed_config_names_the_field(gpuplan, tmp_path: Path) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"model_type": "llama", "hidden_size": 4096, "num_hidden_layers": 32,
                               "vocab_size": 32000, "intermediate_size": 11008}))
    r = gpuplan("memory", "--model", str(cfg), "--context", "100")
    assert r.code == 2 and "num_attention_heads" in r.err and str(cfg) in r.err
    cfg.write_text("{not json")
    r = gpuplan("memory", "--model", str(cfg), "--context", "100")
    assert r.code == 2 and "not valid JSON" in r.err


def test_malformed_gpu_csv_names_row_and_column(gpuplan, tmp_path: Path) -> None:
    src = Path(__file__).parents[1] / "hardware" / "gpus.csv"
    path = corrupt_csv(src, "memory_bw_gb_s", "fast", tmp_path / "gpus.csv")
    r = gpuplan("--hardware", str(path), "gpus")
    assert r.code == 2
    assert "row 2" in r.err and "memory_bw_gb_s" in r.err and str(path) in r.err


def test_user_config_path_works_like_a_catalog_model(gpuplan) -> None:
    cfg = Path(__file__).parents[1] / "models" / "configs" / "qwen3-8b.json"
    by_path = gpuplan("memory", "--model", str(cfg), "--context", "4096", "--format", "json").json()
    by_id = gpuplan("memory", "--model", "qwen3-8b", "--context", "4096", "--format", "json").json()
    assert by_path["total_bytes"] == by_id["total_bytes"]


def test_non_native_format_warns(gpuplan) -> None:
    r = gpuplan("memory", "--model", "llama-3.1-8b", "--weights", "fp8", "--context", "100", "--gpu", "a100-80gb")
    assert r.code == 0 and "not native on a100-80gb" in r.out


def test_output_file_is_written_atomically(gpuplan, tmp_path: Path) -> None:
    out = tmp_path / "m.json"
    r = gpuplan("models", "--format", "json", "-o", str(out))
    assert r.code == 0 and r.out == ""
    assert json.loads(out.read_text())
    assert not list(tmp_path.glob(".*.tmp"))
