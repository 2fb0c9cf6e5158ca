"""Roofline invariants (hypothesis) and hand-computed decode/prefill times."""

from __future__ import annotations

import pytest
from gpuplan.hardware.gpus import load_gpus
from gpuplan.models.catalog import resolve
from gpuplan.optimizer.errors import InputError
from gpuplan.optimizer.serving.calibration import Calibration, CalibrationRow
from gpuplan.optimizer.serving.deployment import memory, perf
from gpuplan.optimizer.serving.graphs import capture_limit
from gpuplan.optimizer.tables import Tables
from hypothesis import given, settings
from hypothesis import strategies as st

IDEAL = CalibrationRow(engine="vllm", gpu="*", eta_mem=1.0, eta_cmp=1.0, eta_prefill=1.0, t_fixed_ms=0.0,
                       comm_latency_us=0.0, runtime_overhead_gib=1.0, mem_util=0.9, seq_us=0.0, layer_us=0.0,
                       moe_layer_us=0.0, mla_layer_us=0.0, gemm_tile_m=1.0, attn_ctx_half_tokens=0.0,
                       request_ms=0.0, source="test", as_of="2026-01-01")
IDEAL_TABLES = Tables().with_calibration(Calibration(rows=(IDEAL,), path="ideal"))


def test_ideal_batch1_decode_is_bandwidth_over_bytes() -> None:
    # Llama 3.1 8B bf16 on H100 SXM (3.35 TB/s): bytes read per token = all weights but the embedding table
    # (8,030,261,248 − 525,336,576 params × 2 B) + KV of the mean context (1024 + 128 tokens × 128 KiB).
    r = perf("llama-3.1-8b", "h100-sxm", input_tokens=1024, output_tokens=256, tables=IDEAL_TABLES)
    weight_bytes = (8_030_261_248 - 128256 * 4096) * 2
    kv_bytes = 131_072 * (1024 + 128)
    assert r.step_ms == pytest.approx((weight_bytes + kv_bytes) / 3.35e12 * 1e3, rel=1e-6)
    assert r.bound == "memory"


@pytest.mark.parametrize(("gpu", "bandwidth_b_s"), [
    ("rtx-pro-6000", 1597e9),  # NVIDIA RTX PRO 6000 Blackwell Server Edition page: 1597 GB/s (WS/Max-Q: 1792)
    ("h20", 4.0e12),  # H20 96GB: 4.0 TB/s (LMSYS 2025-09-26, aiconfigurator h20_sxm.yaml)
])
def test_ideal_batch1_decode_on_the_newer_rows(gpu: str, bandwidth_b_s: float) -> None:
    # Qwen3-32B BF16 on one 96 GB GPU: every weight but the embedding table once (32,762,123,264 params in the
    # config's count − 151,936 × 5,120 embedding rows; lm_head untied, read once) × 2 B + the KV of 1024 + 128
    # tokens (64 layers × 8 KV heads × 128 × 2 (K, V) × 2 B = 262,144 B a token).
    r = perf("qwen3-32b", gpu, "bf16", input_tokens=1024, output_tokens=256, tables=IDEAL_TABLES)
    weight_bytes = (32_762_123_264 - 151_936 * 5_120) * 2
    kv_bytes = 262_144 * (1024 + 128)
    assert r.step_ms == pytest.approx((weight_bytes + kv_bytes) / bandwidth_b_s * 1e3, rel=1e-3)
    assert r.bound == "memory"


def test_ideal_prefill_is_flops_over_peak() -> None:
    # 2 × active matmul params × I + causal attention 2 · I² · heads · head_dim · layers at 989.5 TFLOP/s.
    # The params leave out the embedding table (a gather) and the lm_head (128,256 × 4096 each, untied): the
    # engines compute logits only at the sampled position, not for every prompt token.
    i = 4096
    r = perf("llama-3.1-8b", "h100-sxm", input_tokens=i, output_tokens=1, tables=IDEAL_TABLES)
    matmul = 2 * (8_030_261_248 - 2 * 128256 * 4096 - 32 * 2 * 4096 - 4096) * i
    attn = 4 * 32 * 128 * 32 * i * i / 2
    assert r.prefill_ms == pytest.approx((matmul + attn) / 989.5e12 * 1e3, rel=1e-3)


def test_moe_reads_only_touched_experts() -> None:
    # Mixtral 8x7B at batch 1 reads 2 of 8 experts per layer: far less than all 46.7B parameters.
    r1 = perf("mixtral-8x7b", "h100-sxm", tp=2, batch=1, tables=IDEAL_TABLES)
    dense_time = 46.7e9 * 2 / 2 / 3.35e12 * 1e3
    assert r1.step_ms < 0.35 * dense_time
    big = perf("mixtral-8x7b", "h100-sxm", tp=2, batch=256, tables=IDEAL_TABLES)
    assert big.step_ms > r1.step_ms


def test_weight_only_formats_compute_at_16_bits_and_fp8_uses_fp8_cores() -> None:
    h100 = load_gpus().get("h100-sxm")
    awq = perf("llama-3.1-70b", "h100-sxm", "awq", tp=2, input_tokens=8192, tables=IDEAL_TABLES)
    fp8 = perf("llama-3.1-70b", "h100-sxm", "fp8", tp=2, input_tokens=8192, tables=IDEAL_TABLES)
    assert h100.fp8_tflops == 2 * h100.bf16_tflops
    assert fp8.prefill_ms < 0.6 * awq.prefill_ms  # compute-bound prefill: FP8 rate is twice BF16
    a100 = perf("llama-3.1-70b", "a100-80gb", "fp8", tp=2, input_tokens=8192, tables=IDEAL_TABLES)
    assert any("not native" in w for w in a100.warnings)


def test_mla_kv_is_compressed_in_decode() -> None:
    r = perf("deepseek-v3", "h200", "fp8", tp=8, batch=1, input_tokens=8192, output_tokens=2, tables=IDEAL_TABLES)
    assert r.kv_gib_per_sequence == pytest.approx(70_272 * 8193 / 2**30, rel=1e-3)


MODELS = ["llama-3.1-8b", "llama-3.1-70b", "mixtral-8x7b", "qwen3-30b-a3b", "deepseek-v3", "gpt-oss-120b"]
GPUS = ["h100-sxm", "a100-80gb", "l40s", "b200", "mi300x", "rtx-4090", "m2-ultra"]
FORMATS = ["bf16", "fp8", "awq", "nvfp4", "q4_0"]


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(MODELS), st.sampled_from(GPUS), st.sampled_from(FORMATS), st.integers(1, 512),
       st.integers(1, 4096), st.integers(1, 2048))
def test_tpot_and_throughput_never_fall_as_batch_grows(model, gpu, fmt, batch, inp, out) -> None:
    a = perf(model, gpu, fmt, input_tokens=inp, output_tokens=out, batch=batch, tp=1)
    b = perf(model, gpu, fmt, input_tokens=inp, output_tokens=out, batch=batch + 1, tp=1)
    assert b.tpot_ms >= a.tpot_ms
    # Throughput may fall only where the step leaves the engine's largest captured CUDA graph (graphs.csv): the
    # decode step of limit + 1 sequences launches its small kernels from the host (the throughput cliff vLLM
    # PR #57355 describes); on either side of the limit it never falls.
    if batch != capture_limit(a.engine, load_gpus().get(gpu), 1):
        assert b.decode_tok_s >= a.decode_tok_s * (1 - 1e-9)


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(MODELS), st.sampled_from(GPUS), st.sampled_from(FORMATS), st.integers(1, 32768))
def test_batch1_decode_never_beats_the_bandwidth_limit(model, gpu, fmt, inp) -> None:
    m = resolve(model)
    g = load_gpus().get(gpu)
    r = perf(m, gpu, fmt, input_tokens=inp, output_tokens=1, batch=1)
    from gpuplan.hardware.formats import load_formats
    from gpuplan.models.memory import active_weights_bytes
    bytes_per_token = active_weights_bytes(m.arch, load_formats().weight(fmt))
    assert r.decode_tok_s_per_user <= g.memory_bw_gb_s * 1e9 / bytes_per_token


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["llama-3.1-70b", "mixtral-8x7b", "qwen3-235b-a22b", "deepseek-v3", "llama-3.1-405b"]),
       st.sampled_from(["bf16", "fp8", "awq"]), st.integers(1, 65536), st.sampled_from([(1, 2), (2, 4), (4, 8)]))
def test_more_tp_never_raises_per_gpu_memory(model, fmt, context, tps) -> None:
    lo, hi = tps
    a = memory(model, fmt, "bf16", context, gpus=lo)
    b = memory(model, fmt, "bf16", context, gpus=hi)
    assert b.total_bytes / hi <= a.total_bytes / lo


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(MODELS[:3]), st.floats(1.0, 4.0), st.floats(1.0, 4.0), st.integers(1, 256),
       st.integers(1, 8192))
def test_a_faster_gpu_is_never_slower(model, bw_scale, flops_scale, batch, inp) -> None:
    base = load_gpus().get("h100-sxm")
    fast = base.model_copy(update={
        "id": "h100-fast", "memory_bw_gb_s": base.memory_bw_gb_s * bw_scale,
        "bf16_tflops": base.bf16_tflops * flops_scale, "fp16_tflops": base.fp16_tflops * flops_scale,
        "fp8_tflops": base.fp8_tflops * flops_scale, "int8_tops": base.int8_tops * flops_scale})
    tables = Tables()
    table = tables.gpus.model_copy(update={"gpus": {**tables.gpus.gpus, "h100-fast": fast}})
    tables.__dict__["gpus"] = table
    a = perf(model, "h100-sxm", "fp8", tp=2, batch=batch, input_tokens=inp, tables=tables)
    b = perf(model, "h100-fast", "fp8", tp=2, batch=batch, input_tokens=inp, tables=tables)
    assert b.tpot_ms <= a.tpot_ms and b.ttft_ms <= a.ttft_ms


def test_overlap_scheduler_adds_one_decode_step_to_ttft_at_load() -> None:
    # With no load (utilization 0) TTFT = t_request + t_prefill + [b > 1] · t_step · (1 + [overlap])
    # (roofline.serving): at b = 1 the engine is idle and takes the prompt at once; at b > 1 the prompt's
    # chunk shares a decode step, and an overlap scheduler (SGLang: ServerArgs disable_overlap_schedule
    # False; TensorRT-LLM from 0.20, pull request 4174; vLLM from 0.14, whose async scheduling is on by default,
    # pull request 27614; scheduler.csv) planned the next step before it saw the request: one step more. vLLM's
    # V1 loop up to 0.13 is synchronous. So TTFT(b) − TTFT(1) is one step for vLLM 0.9–0.13 and TensorRT-LLM
    # 0.19, two for SGLang, vLLM ≥ 0.14 and TensorRT-LLM ≥ 0.20 (t_prefill and t_request do not depend on b).
    def gap_over_step(engine: str, version: str | None = None) -> float:
        kw = dict(model="llama-3.1-8b", gpu="h100-sxm", input_tokens=1024, output_tokens=256, engine=engine,
                  engine_version=version)
        alone, loaded = perf(batch=1, **kw), perf(batch=32, **kw)
        assert loaded.prefill_ms == alone.prefill_ms
        return (loaded.ttft_ms - alone.ttft_ms) / loaded.step_ms

    assert gap_over_step("vllm", "0.13.0") == pytest.approx(1.0, abs=1e-4)
    assert gap_over_step("vllm", "0.14.0") == pytest.approx(2.0, abs=1e-4)
    assert gap_over_step("vllm") == pytest.approx(2.0, abs=1e-4)
    assert gap_over_step("sglang") == pytest.approx(2.0, abs=1e-4)
    assert gap_over_step("trtllm") == pytest.approx(2.0, abs=1e-4)
    assert gap_over_step("trtllm", "0.19.0") == pytest.approx(1.0, abs=1e-4)


def test_engine_version_selects_that_releases_defaults() -> None:
    # SGLang before 0.4.4 set --mem-fraction-static by TP alone, 0.88 at TP 1 (ServerArgs.__post_init__); from
    # 0.5.3 it is computed, 0.835 on one 80 GB H100 (sgl-project/sglang PR #10975). Qwen3-32B's BF16 weights
    # (65.5 GB) nearly fill the GPU, so the older release keeps more KV and more sequences fit.
    old = perf("qwen3-32b", "h100-sxm", engine="sglang", engine_version="0.4.3")
    new = perf("qwen3-32b", "h100-sxm", engine="sglang")
    assert (old.engine_version, new.engine_version) == ("0.4.3", None)
    assert old.max_batch > new.max_batch


def test_engine_version_that_is_not_a_version_is_one_line(gpuplan) -> None:
    with pytest.raises(InputError, match="engine version 'x;rm' is not like"):
        perf("qwen3-32b", "h100-sxm", engine="sglang", engine_version="x;rm")
    common = ("--model", "qwen3-32b", "--gpu", "h100-sxm", "--engine-version", "$(id)")
    for args in (("perf", *common), ("simulate", *common, "--concurrency", "4")):
        r = gpuplan(*args)
        assert r.code == 2 and len(r.err.strip().splitlines()) == 1 and "is not like" in r.err
