"""How a measured row's benchmark is replayed: the optional benchmark columns (attn_dp, dataset, range_ratio,
requests, max_seqs, max_batched_tokens, prompt_pool, mem_fraction), their reading and their effect on a
closed-loop replay."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gpuplan.models.catalog import resolve
from gpuplan.optimizer.errors import INPUT_ERRORS
from gpuplan.optimizer.serving.measurements import Measurement, read_measurements
from gpuplan.optimizer.serving.simulated_rows import benchmark_key, length_dataset, length_spread, replay
from gpuplan.optimizer.serving.simulation import deployment_steps
from gpuplan.optimizer.serving.validation import prepare
from gpuplan.optimizer.tables import Tables
from published_rows import read_rows

DATA = Path(__file__).parent / "data"
HEADER = ("model,gpu,tp,ep,attn_dp,weights,kv,input,output,batch,mode,requests,dataset,range_ratio,engine,"
          "max_seqs,max_batched_tokens,prompt_pool,metric,value,source,as_of")
GOOD = ("deepseek-r1,h200,8,8,8,fp8,bf16,1000,1000,16,closed,160,random,0.111,sglang,256,16384,100,ttft_ms,900,x,"
        "2026-01-01")


def _csv(tmp_path: Path, line: str) -> Path:
    p = tmp_path / "m.csv"
    p.write_text(f"{HEADER}\n{line}\n")
    return p


def test_benchmark_columns_are_read(tmp_path: Path) -> None:
    (m,) = read_measurements(_csv(tmp_path, GOOD))
    assert (m.attn_dp, m.requests, m.dataset, m.range_ratio, m.max_seqs, m.max_batched_tokens, m.prompt_pool) == \
        (8, 160, "random", 0.111, 256, 16384, 100)
    # Empty cells keep the defaults: the layout's attention DP (ep) and fixed lengths.
    (plain,) = read_measurements(_csv(tmp_path, "deepseek-r1,h200,8,8,,fp8,bf16,1000,1000,16,closed,,,,sglang,,,,"
                                                 "ttft_ms,900,x,2026-01-01"))
    assert plain.attn_dp is None and plain.prompt_pool is None and length_spread(plain) == 0.0
    assert prepare(plain, Tables()).shape.attn_dp == 8  # make_layout's default: attention DP = ep
    assert prepare(m.model_copy(update={"attn_dp": 1}), Tables()).shape.attn_dp == 1
    # A ShareGPT row draws from the dataset's distribution (dataset_lengths), not a uniform spread.
    sharegpt = m.model_copy(update={"dataset": "sharegpt", "range_ratio": None})
    assert (length_spread(sharegpt), length_dataset(sharegpt), length_dataset(m)) == (0.0, "sharegpt", None)
    # A row's scheduler limit caps the sequences the analytical model runs at once.
    assert prepare(m.model_copy(update={"batch": 512, "max_seqs": 64, "max_batched_tokens": None}), Tables()).running \
        == 64
    assert benchmark_key(m) != benchmark_key(m.model_copy(update={"range_ratio": 0.0}))
    assert benchmark_key(m) != benchmark_key(m.model_copy(update={"prompt_pool": None}))


def test_memory_fraction_sets_the_rows_kv_capacity(tmp_path: Path) -> None:
    # DeepSeek-R1 FP8 on 8 x H200 under SGLang: a row whose server ran --mem-fraction-static 0.8 (the InferenceX
    # AMD and DataCrunch recipes' value) holds fewer KV tokens than one at 0.9, in the fit (running sequences)
    # and in the replay (the simulator's KV capacity) alike; out of (0, 1] it is a bad cell.
    (m,) = read_measurements(_csv(tmp_path, GOOD))
    big = m.model_copy(update={"batch": 4096, "requests": None, "max_seqs": None, "max_batched_tokens": None})
    low, high = (prepare(big.model_copy(update={"mem_fraction": f}), Tables()).running for f in (0.8, 0.9))
    assert 1 <= low < high
    steps = [deployment_steps(resolve(m.model), m.gpu, m.weights, m.kv, m.tp, m.engine, 1000, 1000, None, 2000,
                              Tables(), m.ep, m.attn_dp, mem_fraction=f)[0].kv_capacity_tokens for f in (0.8, 0.9)]
    assert 0 < steps[0] < steps[1]
    for bad in ("0", "1.2", "nan"):
        with pytest.raises(INPUT_ERRORS, match="mem_fraction"):
            read_measurements(_mf_csv(tmp_path, bad))


def _mf_csv(tmp_path: Path, value: str) -> Path:
    p = tmp_path / "mf.csv"
    p.write_text(f"{HEADER},mem_fraction\n{GOOD},{value}\n")
    return p


@pytest.mark.parametrize(("column", "value", "needle"), [
    ("range_ratio", "1.5", "column 'range_ratio'"),
    ("range_ratio", "-0.1", "column 'range_ratio'"),
    ("dataset", "alpaca", "column 'dataset'"),
    ("attn_dp", "3", "attention DP 3 must divide tp 8"),
    ("attn_dp", "0", "column 'attn_dp'"),
    ("requests", "0", "column 'requests'"),
    ("prompt_pool", "0", "column 'prompt_pool'"),
    ("max_batched_tokens", "128", "must be ≥ max_seqs (256)"),
])
def test_bad_benchmark_column_is_one_line(tmp_path: Path, gpuplan, column: str, value: str, needle: str) -> None:
    cells = dict(zip(HEADER.split(","), GOOD.split(","), strict=True))
    cells[column] = value
    path = _csv(tmp_path, ",".join(cells.values()))
    with pytest.raises(INPUT_ERRORS, match="row 2"):
        read_measurements(path)
    r = gpuplan("validate", str(path), "--summary-only", "--no-loso")
    assert r.code == 2 and needle in r.err and len(r.err.strip().splitlines()) == 1


def test_sharegpt_rows_take_no_range_ratio(tmp_path: Path) -> None:
    line = GOOD.replace("random,0.111", "sharegpt,0.5")
    with pytest.raises(INPUT_ERRORS, match="range_ratio applies to the random dataset only"):
        read_measurements(_csv(tmp_path, line))


def _closed_row(ratio: float) -> Measurement:
    return Measurement(model="llama-3.1-8b", gpu="h100-sxm", tp=1, weights="bf16", kv="bf16", input=256, output=64,
                       batch=8, mode="closed", requests=64, dataset="random", range_ratio=ratio, engine="vllm",
                       metric="ttft_ms", percentile="p50", value=50.0, source="x", as_of="2026-01-01")


def test_spread_lengths_desynchronise_a_closed_loop() -> None:
    """8 clients, fixed 256-token prompts, 64 output tokens, vLLM on one H100 (8 × 256 = 2,048 prompt tokens fit
    one step's 8,192-token budget). In lockstep every wave of 8 prompts reaches the scheduler together
    (request_s after the last wave's shared final step), is prefilled in one step that carries the 8 chunks,
    decodes 63 steps together and ends together, so every TTFT is exactly request_s + the step carrying 8 chunks
    of 256 tokens and no decodes (``StepModel.mixed_s``: the weights read once, 8 chunks' attention). With lengths
    spread ±50 % the clients drift apart: most prompts are prefilled with fewer others, so the median TTFT falls
    below the lockstep value."""
    t = Tables()
    steps, _, _, budget = deployment_steps(resolve("llama-3.1-8b"), "h100-sxm", "bf16", "bf16", 1, "vllm", 256, 64,
                                           None, 320, t)
    assert budget >= 8 * 256
    lockstep_ms = (steps.request_s + steps.mixed_s(0, 0.0, [(0, 256)] * 8)) * 1e3
    fixed = replay(_closed_row(0.0), t)
    assert fixed.requests == 64 and fixed.concurrency == 8
    assert np.allclose(fixed.samples["ttft_ms"], lockstep_ms, rtol=1e-9)
    spread = replay(_closed_row(0.5), t)
    assert spread.ttft_ms.p50 < 0.8 * lockstep_ms
    assert spread.ttft_ms.p50 >= fixed.isolated_ttft_ms * 0.5  # never below a lone short prompt's prefill


def test_every_expert_parallel_row_states_its_attention_layout() -> None:
    """EP rows are replayed with the attention layout their source ran (attention TP unless it says DP)."""
    for name in ("measured.csv", "holdout.csv"):
        for r in read_rows(DATA / name):
            if int(r["ep"]) > 1:
                assert r["attn_dp"], (name, r["source"][:80])
                assert "attn_dp" in r["notes"], (name, r["source"][:80])
            if r["range_ratio"] or r["dataset"] == "sharegpt":
                assert "Benchmark columns:" in r["notes"]


def test_dp_attention_without_expert_parallelism() -> None:
    """SGLang --enable-dp-attention without --ep: attention DP 8, experts TP over the 8 GPUs (routed-expert
    bytes per GPU = experts / 8 whatever ep is; dense weights per GPU = dense / attention TP 1). A dense model
    has no MoE layers to gather DP ranks' tokens, so it runs data-parallel as replicas instead."""
    from gpuplan.hardware.formats import load_formats
    from gpuplan.optimizer.serving.layout import expert_bytes_per_gpu, make_layout, routed_expert_bytes

    arch = resolve("deepseek-r1").arch
    lay = make_layout(arch, 8, 1, 8)
    assert (lay.ep, lay.attn_dp, lay.attn_tp) == (1, 8, 1)
    fp8 = load_formats().weight("fp8")
    assert expert_bytes_per_gpu(arch, fp8, lay) == pytest.approx(routed_expert_bytes(arch, fp8) / 8)
    with pytest.raises(INPUT_ERRORS, match="data-parallel attention needs MoE layers"):
        make_layout(resolve("llama-3.1-70b").arch, 8, 1, 8)
