"""``gpuplan memory`` and ``gpuplan perf``: one deployment at a time."""

from __future__ import annotations

import click
from gpuplan.optimizer.cli.common import (
    BATCH,
    ENGINE,
    ENGINE_VERSION,
    MODEL_HELP,
    TOKENS,
    FiniteFloat,
    cli,
    count,
    no_cuda_graphs_option,
    output_options,
    positive,
    show,
    tables_of,
)
from gpuplan.optimizer.output import Result, View
from gpuplan.optimizer.serving.deployment import memory, perf


@cli.command("memory")
@click.option("--model", required=True, help=MODEL_HELP)
@click.option("--weights", default="bf16", show_default=True, help="Weight format (see hardware/formats.csv).")
@click.option("--kv", default="bf16", show_default=True, help="KV-cache format.")
@click.option("--context", type=TOKENS, required=True, help="Tokens per sequence.")
@click.option("--batch", type=BATCH, default=1, show_default=True, help="Concurrent sequences (or micro-batch).")
@click.option("--mode", type=click.Choice(["inference", "train", "lora", "qlora"]), default="inference",
              show_default=True)
@click.option("--overhead-fraction", type=FiniteFloat(0, 10), default=None,
              help="Textbook rule: overhead = F × weights (replaces runtime overhead, activations, engine cap).")
@click.option("--gpu", default=None, help="Check the fit on this GPU.")
@click.option("--gpus", type=count(100_000), default=1, show_default=True,
              help="GPUs: the tensor-parallel group for inference, data-parallel ranks for training.")
@click.option("--optimizer", "optim", type=click.Choice(["adamw", "sgd"]), default="adamw", show_default=True)
@click.option("--zero", "zero_stage", type=click.IntRange(0, 3), default=0, show_default=True,
              help="ZeRO stage for training over --gpus.")
@click.option("--checkpointing/--no-checkpointing", default=True, show_default=True,
              help="Activation checkpointing (training modes).")
@click.option("--lora-rank", type=count(65_536), default=16, show_default=True,
              help="LoRA adapter rank (lora and qlora modes).")
@click.option("--engine", type=ENGINE, default=None, help="Engine whose memory cap applies.")
@output_options
@click.pass_context
def memory_cmd(ctx: click.Context, model: str, weights: str, kv: str, context: int, batch: int, mode: str,
               overhead_fraction: float | None, gpu: str | None, gpus: int, optim: str, zero_stage: int,
               checkpointing: bool, lora_rank: int, engine: str | None, fmt: str, out: str | None) -> None:
    """Memory breakdown (weights, KV cache, activations, overhead); with --gpu, fit and max sequences.

    \b
    Examples:
      gpuplan memory --model llama-3-8b --weights bf16 --context 8192 --overhead-fraction 0.15
      gpuplan memory --model llama-3.1-70b --context 2000 --gpu h100-sxm --gpus 8 --overhead-fraction 0.15
      gpuplan memory --model deepseek-v3 --weights fp8 --kv fp8 --context 32768 --gpu h200 --gpus 8
      gpuplan memory --model llama-3.1-8b --mode train --context 4096 --gpus 8 --zero 3
      gpuplan memory --model llama-3.1-70b --mode qlora --context 2048 --gpu h100-sxm
    """
    r = memory(model, weights, kv, context, batch, mode, gpu, gpus, overhead_fraction, optim,  # type: ignore[arg-type]
               zero_stage, checkpointing, lora_rank, engine, tables_of(ctx))
    parts = [("weights", r.weights_bytes), ("kv_cache", r.kv_cache_bytes), ("activations", r.activation_bytes),
             ("overhead", r.overhead_bytes), ("gradients", r.gradient_bytes), ("optimizer", r.optimizer_bytes),
             ("adapters", r.adapter_bytes), ("total", r.total_bytes)]
    rows = [{"part": p, "bytes": v, "gib": v / 2**30, "gb": v / 1e9} for p, v in parts if v or p == "total"]
    title = f"{r.model} · {r.mode} · weights {r.weights} · KV {r.kv} · {r.context:,} tokens × {r.batch}"
    views = [View(title=title, columns=[("part", "part"), ("gib", "GiB"), ("gb", "GB"), ("bytes", "bytes")],
                  rows=rows)]
    notes = [f"warning: {w}" for w in r.warnings]
    if r.gpu:
        verdict = "fits" if r.fits else "does NOT fit"
        seq = f"; holds {r.max_sequences:,} concurrent sequences of {r.context:,} tokens" \
            if r.max_sequences is not None else ""
        notes.append(f"{r.gpus} × {r.gpu}: {r.capacity_gib:.1f} GiB usable, {verdict}{seq}")
        if r.engine_kv_tokens is not None:
            notes.append(f"engine KV pool {r.kv_pool_gib:.2f} GiB per GPU, logged as {r.engine_kv_tokens:,} KV tokens")
    show(Result(payload=r.model_dump(mode="json"), csv_rows=[r.model_dump(mode="json")], views=views,
                notes=notes), fmt, out)


@cli.command("perf")
@click.option("--model", required=True, help=MODEL_HELP)
@click.option("--gpu", required=True, help="GPU id or alias.")
@click.option("--tp", type=count(4096), default=1, show_default=True,
              help="Tensor-parallel degree (GPUs of the replica).")
@click.option("--ep", type=count(4096), default=1, show_default=True,
              help="Expert-parallel ranks for MoE layers (divides --tp and the expert count).")
@click.option("--attn-dp", type=count(4096), default=None,
              help="Data-parallel attention ranks (default: --ep when --ep > 1, DeepSeek-style; else 1).")
@click.option("--weights", default="bf16", show_default=True)
@click.option("--kv", default="bf16", show_default=True)
@click.option("--input", "input_tokens", type=TOKENS, default=1024, show_default=True, help="Prompt tokens.")
@click.option("--output", "output_tokens", type=TOKENS, default=256, show_default=True, help="Generated tokens.")
@click.option("--batch", type=BATCH, default=1, show_default=True, help="Concurrent sequences in decode.")
@click.option("--engine", type=ENGINE, default=None,
              help="Calibration row to use (default: vllm; llama.cpp on Apple and for GGUF).")
@click.option("--engine-version", type=ENGINE_VERSION, default=None,
              help="Engine release to model (calibration rows, scheduler, CUDA-graph and memory defaults keyed by "
                   "version range; default: the current release).")
@click.option("--tpot-ms", type=positive(86_400_000.0), default=None,
              help="Also report the largest batch meeting this TPOT.")
@click.option("--utilization", type=FiniteFloat(0, 1, max_open=True), default=0.0, show_default=True,
              help="Load as a fraction of the replica's request-rate limit (queueing in TTFT, prefill in TPOT).")
@no_cuda_graphs_option
@output_options
@click.pass_context
def perf_cmd(ctx: click.Context, model: str, gpu: str, tp: int, ep: int, attn_dp: int | None, weights: str, kv: str,
             input_tokens: int, output_tokens: int, batch: int, engine: str | None, engine_version: str | None,
             tpot_ms: float | None, utilization: float, eager: bool, fmt: str, out: str | None) -> None:
    """One replica: TPOT, TTFT, tok/s, memory- or compute-bound, largest batch that fits.

    \b
    Examples:
      gpuplan perf --model llama-3.1-8b --gpu h100-sxm --batch 1
      gpuplan perf --model llama-3.1-70b --gpu h100-sxm --tp 4 --weights fp8 --kv fp8 --batch 64 --tpot-ms 50
      gpuplan perf --model llama-2-7b --gpu m2-ultra --weights q4_0 --input 512 --output 128
      gpuplan perf --model deepseek-r1 --gpu h200 --tp 8 --ep 8 --weights fp8 --batch 256 --utilization 0.9
      gpuplan perf --model qwen3-32b --gpu h100-sxm --engine sglang --engine-version 0.4.3 --batch 16
    """
    r = perf(model, gpu, weights, kv, tp, input_tokens, output_tokens, batch, engine, tpot_ms, utilization,
             tables_of(ctx), ep=ep, attn_dp=attn_dp, engine_version=engine_version, cuda_graphs=not eager)
    keys = [("tpot_ms", "TPOT ms"), ("ttft_ms", "TTFT ms"), ("decode_tok_s", "decode tok/s (replica)"),
            ("decode_tok_s_per_user", "tok/s per user"), ("prefill_tok_s", "prefill tok/s"), ("bound", "bound"),
            ("max_batch", "max batch (memory)"), ("max_batch_for_tpot", "max batch for TPOT"), ("fits", "fits"),
            ("weights_gib_per_gpu", "weights GiB/GPU")]
    payload = r.model_dump(mode="json")
    rows = [{"metric": label, "value": payload[k]} for k, label in keys if not (k == "max_batch_for_tpot"
                                                                                and payload[k] is None)]
    layout = f" (EP {r.ep}, attention DP {r.attn_dp})" if r.ep > 1 or r.attn_dp > 1 else ""
    engine = r.engine + (f" {r.engine_version}" if r.engine_version else "")
    title = (f"{r.model} on {r.tp} × {r.gpu}{layout} · {r.weights}/{r.kv} · {engine} · "
             f"{r.input_tokens}→{r.output_tokens} tokens · batch {r.batch}")
    terms = [{"term": k, "ms": v} for k, v in r.step_terms_ms.items()]
    flat = {**{k: v for k, v in payload.items() if k != "step_terms_ms"},
            **{f"step_{k}_ms": v for k, v in r.step_terms_ms.items()}}
    show(Result(payload=payload, csv_rows=[flat], views=[
        View(title=title, columns=[("metric", "metric"), ("value", "value")], rows=rows),
        View(title="one decode step: linear = (reads³ + GEMM compute³)^⅓, attention = max(KV read, compute)",
             columns=[("term", "term"), ("ms", "ms")], rows=terms)], notes=[f"warning: {w}" for w in r.warnings]),
         fmt, out)
