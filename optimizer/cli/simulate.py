"""``gpuplan simulate``: one deployment under a request stream, through the continuous-batching simulator."""

from __future__ import annotations

from pathlib import Path

import click
from gpuplan.optimizer.cli.common import (
    ENGINE,
    ENGINE_VERSION,
    MODEL_HELP,
    TOKENS,
    FiniteFloat,
    checked_png,
    cli,
    count,
    no_cuda_graphs_option,
    output_options,
    positive,
    show,
    tables_of,
)
from gpuplan.optimizer.output import Result, View
from gpuplan.optimizer.planning.workload import MAX_CONCURRENCY
from gpuplan.optimizer.serving.arrivals import MAX_RATE_RPS
from gpuplan.optimizer.serving.dataset_lengths import dataset_names
from gpuplan.optimizer.serving.deployment import MAX_BATCH
from gpuplan.optimizer.serving.simulation import MAX_RECV_INTERVAL, SimReport, simulate

MAX_REQUESTS = 10_000_000  # as a measured row's requests; the simulator holds every request in memory
METRICS = (("ttft_ms", "TTFT ms"), ("tpot_ms", "TPOT ms"), ("itl_ms", "ITL ms"), ("e2e_ms", "E2E ms"))
SUMMARY = (("output_tok_s", "output tok/s"), ("req_s", "requests/s"), ("duration_s", "duration s"),
           ("mean_running", "mean running sequences"), ("mean_in_system", "mean requests in system"),
           ("kv_capacity_tokens", "KV capacity tokens"), ("kv_mean_fraction", "KV used, mean"),
           ("kv_peak_fraction", "KV used, peak"), ("preemptions", "preemptions"),
           ("prompt_cache_hits", "prompt-cache hits"), ("steps", "engine steps"),
           ("isolated_ttft_ms", "TTFT alone ms"), ("isolated_tpot_ms", "TPOT alone ms"))


def sim_result(r: SimReport) -> Result:
    demand = (f"{r.rate_rps:g} req/s Poisson" if r.mode == "open" else
              f"{r.concurrency} concurrent clients" if r.mode == "closed" else "trace")
    layout = f" (EP {r.ep})" if r.ep > 1 else ""
    pool = f" · pool of {r.prompt_pool:,} prompts" if r.prompt_pool else ""
    polls = f", polls every {r.recv_interval} decode steps" if r.recv_interval > 1 else ""
    title = (f"{r.model} on {r.tp} × {r.gpu}{layout} · {r.weights}/{r.kv} · {r.engine} · {r.input_tokens}→"
             f"{r.output_tokens} tokens · {demand} · {r.requests:,} requests{pool} · seed {r.seed}")
    lat = [{"metric": label, **getattr(r, key).model_dump()} for key, label in METRICS]
    summary = [{"figure": label, "value": getattr(r, key)} for key, label in SUMMARY]
    views = [View(title=title, columns=[("metric", "metric"), ("mean", "mean"), ("p50", "p50"), ("p90", "p90"),
                                        ("p99", "p99")], rows=lat),
             View(title=f"throughput and KV (max {r.max_num_seqs} sequences, {r.max_batched_tokens:,} "
                        f"batched tokens per step{polls})", columns=[("figure", "figure"), ("value", "value")],
                  rows=summary)]
    return Result(payload=r.model_dump(mode="json"), csv_rows=[r.row()], views=views)


@cli.command("simulate")
@click.option("--model", required=True, help=MODEL_HELP)
@click.option("--gpu", required=True, help="GPU id or alias.")
@click.option("--tp", type=count(4096), default=1, show_default=True,
              help="GPUs of the replica (tensor-parallel degree).")
@click.option("--ep", type=count(4096), default=1, show_default=True,
              help="Expert-parallel ranks for MoE layers (must divide --tp and the experts).")
@click.option("--attn-dp", type=count(4096), default=None,
              help="Data-parallel attention ranks (default: --ep when --ep > 1, else 1).")
@click.option("--weights", default="bf16", show_default=True)
@click.option("--kv", default="bf16", show_default=True)
@click.option("--input", "input_tokens", type=TOKENS, default=1024, show_default=True, help="Prompt tokens (mean).")
@click.option("--output", "output_tokens", type=TOKENS, default=256, show_default=True,
              help="Generated tokens (mean).")
@click.option("--rate", "rate_rps", type=positive(MAX_RATE_RPS), default=None,
              help="Open loop: Poisson arrivals, requests/s.")
@click.option("--concurrency", type=count(MAX_CONCURRENCY), default=None,
              help="Closed loop: clients each sending the next request when the last one ends.")
@click.option("--trace", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Open loop from a CSV: arrival_s (sorted) and optional input_tokens, output_tokens.")
@click.option("--requests", type=count(MAX_REQUESTS), default=None,
              help="Requests to simulate (default 1000; a trace: all its rows).")
@click.option("--seed", type=count(2**63 - 1, minimum=0), default=0, show_default=True,
              help="Random seed (same seed, same numbers).")
@click.option("--engine", type=ENGINE, default=None,
              help="Calibration and scheduler defaults (default: vllm; llama.cpp on Apple and for GGUF).")
@click.option("--engine-version", type=ENGINE_VERSION, default=None,
              help="Engine release to model (calibration, scheduler, CUDA-graph and memory defaults keyed by version "
                   "range; default: the current release).")
@click.option("--max-num-seqs", type=count(MAX_BATCH), default=None,
              help="Running sequences cap (default: the engine's).")
@click.option("--max-batched-tokens", type=TOKENS, default=None,
              help="Tokens per step, decodes + prefill chunks (default: the engine's).")
@click.option("--input-range-ratio", "range_ratio", type=FiniteFloat(min=0, max=1), default=0.0, show_default=True,
              help="Lengths uniform in [L(1-r), L(1+r)] (at least 1), as vLLM's --random-range-ratio; "
                   "r = 1: 1 to 2L.")
@click.option("--lengths", "lengths_csv", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Length histogram CSV: input_tokens, output_tokens, probability (summing to 1).")
@click.option("--dataset", type=click.Choice(dataset_names()), default=None,
              help="Lengths shaped as the dataset's benchmark_serving samples (published length moments, "
                   "lognormal, the benchmark's length filter), scaled to the --input/--output means.")
@click.option("--prompt-pool", type=click.IntRange(min=1), default=None,
              help="The client draws every prompt from this many distinct prompts (AIPerf / GenAI-Perf synthetic "
                   "data: --num-dataset-entries, default 100); a repeat hits the server's prefix cache and "
                   "prefills one token (default: every prompt distinct).")
@click.option("--mem-fraction", type=positive(1.0), default=None,
              help="The server's memory fraction, which sets the KV cache: vLLM --gpu-memory-utilization, SGLang "
                   "--mem-fraction-static, TensorRT-LLM's KV fraction read as vLLM's (default: the engine's).")
@click.option("--recv-interval", type=click.IntRange(1, MAX_RECV_INTERVAL), default=1, show_default=True,
              help="SGLang's --scheduler-recv-interval: while only decoding, the scheduler polls for new requests "
                   "every N decode steps (after a prefill step and when idle at once); requests wait for the poll.")
@no_cuda_graphs_option
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None, callback=checked_png,
              help="Also draw the latency distributions and KV use to this image (PNG).")
@output_options
@click.pass_context
def simulate_cmd(ctx: click.Context, model: str, gpu: str, tp: int, ep: int, attn_dp: int | None, weights: str,
                 kv: str, input_tokens: int, output_tokens: int, rate_rps: float | None, concurrency: int | None,
                 trace: Path | None, requests: int | None, seed: int, engine: str | None,
                 engine_version: str | None, max_num_seqs: int | None,
                 max_batched_tokens: int | None, range_ratio: float, lengths_csv: Path | None, dataset: str | None,
                 prompt_pool: int | None, mem_fraction: float | None, recv_interval: int, eager: bool,
                 plot: Path | None,
                 fmt: str, out: Path | None) -> None:
    """Continuous-batching simulation of one replica: TTFT, TPOT, ITL, E2E (mean, p50, p90, p99),
    throughput and KV use, with the engine's scheduler (max sequences, token budget, chunked prefill,
    preemption when the KV cache is full).

    \b
    Examples:
      gpuplan simulate --model llama-3.1-8b --gpu h100-sxm --input 1000 --output 200 --rate 10
      gpuplan simulate --model llama-3.1-70b --gpu h100-sxm --tp 4 --weights fp8 --concurrency 64 --format json
      gpuplan simulate --model qwen3-30b-a3b --gpu h200 --rate 4 --input-range-ratio 0.5 --seed 7 --plot lat.png
      gpuplan simulate --model deepseek-r1 --gpu h200 --tp 8 --ep 8 --weights fp8 --kv fp8 --concurrency 128
      gpuplan simulate --model gpt-oss-20b --gpu h100-sxm --input 215 --output 194 --dataset sharegpt --rate 20
      gpuplan simulate --model deepseek-r1 --gpu b200 --tp 4 --weights fp8 --kv fp8 --mem-fraction 0.95 --concurrency 16
      gpuplan simulate --model qwen3-30b-a3b --gpu h200 --engine sglang --concurrency 32 --recv-interval 30
    """
    r = simulate(model, gpu, weights, kv, tp, input_tokens, output_tokens, rate_rps, concurrency, trace, requests,
                 seed, engine, max_num_seqs, max_batched_tokens, range_ratio, lengths_csv, tables_of(ctx), ep, attn_dp,
                 engine_version=engine_version, dataset=dataset, cuda_graphs=not eager, prompt_pool=prompt_pool,
                 mem_fraction=mem_fraction, recv_interval=recv_interval)
    result = sim_result(r)
    if plot is not None:
        from gpuplan.optimizer.charts import latency_chart, save

        save(latency_chart(r), plot)
    show(result, fmt, out)
