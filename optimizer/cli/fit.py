"""``gpuplan fit``: the inverse questions, one command each (what fits, how long, how many, how few)."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np
from gpuplan.hardware.formats import NumberFormat
from gpuplan.hardware.gpus import GPU
from gpuplan.models.breakdown import DEFAULT_MEM_UTIL
from gpuplan.models.catalog import Model, load_catalog, resolve
from gpuplan.models.memory import GIB, weights_bytes
from gpuplan.optimizer.cli.common import (
    BATCH,
    TOKENS,
    FiniteFloat,
    checked_png,
    cli,
    count,
    output_options,
    show,
    tables_of,
)
from gpuplan.optimizer.errors import InfeasibleError, InputError
from gpuplan.optimizer.output import Result, View
from gpuplan.optimizer.planning.candidate_gen import TP_DEGREES
from gpuplan.optimizer.planning.fit import (
    CONTEXT_STEPS,
    GPUS_PER_NODE,
    SEARCH_LIMIT,
    cheapest,
    fewest_training_gpus,
    grid_rows,
    longest_context,
    serving_grid,
    tp_allowed,
    training_case,
)
from gpuplan.optimizer.serving.deployment import max_tp
from gpuplan.pricing.offers import Offer

TIERS = ("on_demand", "spot", "reserved_1y", "reserved_3y", "owned")


def _gib(b: float) -> float:
    return b / GIB


def _counts(rows: list[dict], gpus: int) -> np.ndarray:
    """Model × GPU matrix of GPUs needed (0 where nothing fits) from rows ordered model-major."""
    return np.array([r["gpus"] or 0 for r in rows]).reshape(-1, gpus)


def _heatmap(path: Path, rows: list[str], cols: list[str], values: np.ndarray, title: str) -> None:
    from gpuplan.optimizer.charts import save
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(6, 0.45 * len(cols) + 3), max(4, 0.3 * len(rows) + 1.5)))
    ax = fig.subplots()
    shown = np.where(values > 0, np.log2(np.maximum(values, 1)), np.nan)
    ax.imshow(shown, aspect="auto", cmap="viridis_r")
    ax.set_xticks(range(len(cols)), cols, rotation=70, fontsize=7)
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    for i in range(len(rows)):
        for j in range(len(cols)):
            ax.text(j, i, str(int(values[i, j])) if values[i, j] > 0 else "–", ha="center", va="center", fontsize=6)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    save(fig, path)


@cli.command("fit")
@click.option("--model", "model_name", default=None, help="Catalog id, alias or Hugging Face repo id, or a config.json "
                                                                 "(default: whole catalog).")
@click.option("--gpu", "gpu_names", multiple=True,
              help="GPU id (repeatable; default: every GPU in the table). One GPU: the models that fit it.")
@click.option("--weights", default=None, help="Weight format (hardware/formats.csv; default bf16, nf4 for qlora).")
@click.option("--kv", default=None, help="KV-cache format (default: bf16).")
@click.option("--context", type=TOKENS, default=8192, show_default=True, help="Tokens per sequence.")
@click.option("--gpus", type=count(100_000), default=None,
              help="GPUs in the TP group (default: the smallest that fits).")
@click.option("--mode", type=click.Choice(["inference", "train", "lora", "qlora"]), default="inference",
              show_default=True)
@click.option("--zero-stage", type=click.IntRange(0, 3), default=3, show_default=True, help="Training only.")
@click.option("--offload", type=click.Choice(["none", "optimizer", "optimizer+params"]), default="none",
              show_default=True, help="ZeRO-Offload (optimizer) / ZeRO-Infinity (optimizer+params), training only.")
@click.option("--offload-device", type=click.Choice(["cpu", "nvme"]), default="cpu", show_default=True)
@click.option("--optimizer", "optim", type=click.Choice(["adamw", "sgd"]), default="adamw", show_default=True)
@click.option("--micro-batch", type=BATCH, default=1, show_default=True, help="Training sequences per GPU.")
@click.option("--lora-rank", type=count(65_536), default=16, show_default=True, help="LoRA adapter rank.")
@click.option("--tier", type=click.Choice(TIERS), default="on_demand", show_default=True, help="Price tier.")
@click.option("--overhead-fraction", type=FiniteFloat(0, 10), default=None,
              help="Textbook rule for serving: overhead = F × weights, no engine cap.")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None, callback=checked_png,
              help="Write a model × GPU heatmap (GPUs needed) to this PNG.")
@output_options
@click.pass_context
def fit_cmd(ctx: click.Context, model_name: str | None, gpu_names: tuple[str, ...], weights: str | None,
            kv: str | None, context: int, gpus: int | None, mode: str, zero_stage: int, offload: str,
            offload_device: str, optim: str, micro_batch: int, lora_rank: int, tier: str,
            overhead_fraction: float | None, plot: Path | None, fmt: str, out: str | None) -> None:
    """The inverse questions: which models fit a GPU, the longest context and most sequences of a model
    on a GPU, the smallest deployment of a model on every GPU, the fewest GPUs that train it.

    \b
    Examples:
      gpuplan fit --gpu rtx-4090 --context 32768 --weights int8
      gpuplan fit --model llama-3.1-70b --gpu h200 --weights fp8 --kv fp8
      gpuplan fit --model qwen3-32b --weights fp8
      gpuplan fit --model llama-3.1-70b --mode train --zero-stage 3
      gpuplan fit --model models/configs/llama-3.1-8b.json --mode train --offload optimizer+params --gpus 8
      gpuplan fit --context 32768 --weights int8 --kv int8 --gpu rtx-4090 --gpu h100-sxm --gpu mi300x
      gpuplan fit --context 32768 --weights int8 --overhead-fraction 0.2 --plot fit.png
    """
    if context <= 0 or (gpus is not None and gpus <= 0) or micro_batch <= 0:
        raise InputError("--context, --gpus and --micro-batch must be positive integers")
    if offload != "none" and (mode != "train" or zero_stage == 0):
        raise InputError("--offload needs --mode train and --zero-stage 1, 2 or 3")
    if offload == "optimizer+params" and zero_stage != 3:
        raise InputError("--offload optimizer+params (ZeRO-Infinity) needs --zero-stage 3")
    tables = tables_of(ctx)
    weights = weights or ("nf4" if mode == "qlora" else "bf16")
    wfmt = tables.formats.weight(weights)
    kvfmt = tables.formats.kv_format(kv or "bf16")
    models = [resolve(model_name)] if model_name else list(load_catalog().values())
    gpu_list = [tables.gpus.get(g) for g in gpu_names] if gpu_names else list(tables.gpus)
    gpu_name = gpu_names[0] if len(gpu_names) == 1 else None
    if mode != "inference":
        result = _training(models, gpu_list, tables.offers, mode, wfmt, context, micro_batch, zero_stage, optim,
                           offload, offload_device, lora_rank, tier, plot, gpus)
    elif model_name and len(gpu_list) == 1:
        result = _longest(models[0], gpu_list[0], wfmt, kvfmt, gpus, overhead_fraction, weights, kv or "bf16")
    else:
        if gpu_name and not model_name and gpus is None:
            gpus = 1  # "which models fit this card": one GPU unless --gpus says otherwise
        tps = (gpus,) if gpus else None
        grid = serving_grid(models, gpu_list, wfmt, kvfmt, context, overhead_fraction,
                            **({"tps": tps} if tps else {}))
        rows = grid_rows(grid, tables.offers, tier)
        if plot is not None:
            _heatmap(plot, [m.id for m in models], [g.id for g in gpu_list], _counts(rows, len(gpu_list)),
                     f"GPUs (TP) to serve one {context}-token sequence, weights {weights}")
        result = _serving_result(rows, models, gpu_list, model_name, gpu_name, context, weights)
    show(result, fmt, out)


def _serving_result(rows: list[dict], models: list[Model], gpus: list[GPU], model_name: str | None,
                    gpu_name: str | None, context: int, weights: str) -> Result:
    where = f"{weights} weights, {context}-token sequences"
    if gpu_name:
        shown = sorted(rows, key=lambda r: (not r["fits"], -(load_or(models, r["model"]).params.total)))
        view = View(title=f"Models on {gpus[0].id} ({where})", columns=[
            ("model", "model"), ("fits", "fits"), ("gpus", "GPUs"), ("headroom_gib", "headroom GiB"),
            ("max_sequences", "max seqs"), ("why_not", "why not")], rows=shown)
        return Result(payload=shown, csv_rows=shown, views=[view])
    if model_name:
        view = View(title=f"Smallest deployment of {models[0].id} on each GPU ({where})", columns=[
            ("gpu", "gpu"), ("gpus", "GPUs (TP)"), ("max_sequences", "max seqs"), ("headroom_gib", "headroom GiB"),
            ("offer", "cheapest offer"), ("usd_per_hour", "$/h")], rows=rows)
        return Result(payload=rows, csv_rows=rows, views=[view])
    largest = []
    for g in gpus:
        on_one = [load_or(models, r["model"]) for r in rows if r["gpu"] == g.id and r["gpus"] == 1]
        best = max(on_one, key=lambda m: m.params.total, default=None)
        dense = max((m for m in on_one if m.arch.moe is None), key=lambda m: m.params.total, default=None)
        headroom = next((r["headroom_gib"] for r in rows if best and r["gpu"] == g.id and r["model"] == best.id), None)
        largest.append({"gpu": g.id, "memory_gib": g.memory_gib, "largest_model": best.id if best else None,
                        "params_b": best.params.total / 1e9 if best else None, "headroom_gib": headroom,
                        "largest_dense_model": dense.id if dense else None,
                        "dense_params_b": dense.params.total / 1e9 if dense else None})
    view = View(title=f"Largest catalog model on one GPU ({where})", columns=[
        ("gpu", "gpu"), ("memory_gib", "GiB"), ("largest_model", "largest model"), ("params_b", "params B"),
        ("headroom_gib", "headroom GiB"), ("largest_dense_model", "largest dense"), ("dense_params_b", "dense B")],
        rows=largest)
    return Result(payload={"largest_per_gpu": largest, "grid": rows}, csv_rows=rows, views=[view])


def load_or(models: list[Model], mid: str) -> Model:
    return next(m for m in models if m.id == mid)


def _longest(model: Model, gpu: GPU, wfmt: NumberFormat, kvfmt: NumberFormat, gpus: int | None,
             textbook: float | None, weights: str, kv: str) -> Result:
    tps = (gpus,) if gpus else TP_DEGREES
    steps = []
    for c in CONTEXT_STEPS:
        row = grid_rows(serving_grid([model], [gpu], wfmt, kvfmt, c, textbook, tps), [], "on_demand")[0]
        steps.append({"context": c, "max_sequences": row["max_sequences"], "gpus": row["gpus"],
                      "why_not": row["why_not"]})
    tp = gpus or next((s["gpus"] for s in steps if s["gpus"]), None)
    if tp is None:
        largest = max((t for t in tps if t <= max_tp(gpu) and tp_allowed(model, t)), default=1)
        need = weights_bytes(model.arch, wfmt) / GIB
        usable = largest * gpu.memory_gib * (1.0 if textbook is not None else DEFAULT_MEM_UTIL)
        raise InfeasibleError(f"{model.id} needs {need:,.1f} GiB of {weights} weights; the largest TP group of "
                              f"{gpu.id} ({largest} GPUs) has {usable:,.1f} GiB usable")
    memory_limit = longest_context(model, gpu, wfmt, kvfmt, tp, textbook)
    longest = min(memory_limit, model.arch.max_context or memory_limit)
    payload = {"model": model.id, "gpu": gpu.id, "weights": weights, "kv": kv, "gpus": tp,
               "longest_context": longest, "longest_context_memory": memory_limit,
               "max_position_embeddings": model.arch.max_context, "max_sequences": steps}
    capped = f" (memory alone: {memory_limit:,}; the config's limit binds)" if longest < memory_limit else ""
    if memory_limit >= SEARCH_LIMIT and not model.arch.max_context:
        capped = " (no limit from memory: constant state; searched to this many)"
    view = View(title=f"{model.id} on {tp}× {gpu.id} ({weights} weights, {kv} KV): longest single sequence "
                      f"{longest:,} tokens{capped}", columns=[("context", "context"), ("gpus", "GPUs (TP)"),
                                                      ("max_sequences", "max concurrent seqs"),
                                                      ("why_not", "why not")], rows=steps)
    return Result(payload=payload, csv_rows=steps, views=[view])


def _training(models: list[Model], gpus: list[GPU], offers: list[Offer], mode: str, wfmt, context: int,
              micro_batch: int, zero_stage: int, optim: str, offload: str, device: str, rank: int, tier: str,
              plot: Path | None, exactly: int | None) -> Result:
    rows = []
    for m in models:
        case = training_case(m, mode, wfmt, context, micro_batch, True, rank)
        for g in gpus:
            need = fewest_training_gpus(case, mode, g, zero_stage, optim, offload, exactly)  # type: ignore[arg-type]
            offer, usd = (cheapest(offers, g.id, need.gpus, tier, min(need.gpus, GPUS_PER_NODE)) if need.gpus
                          else (None, None))
            rows.append({"model": m.id, "gpu": g.id, "mode": mode, "zero_stage": zero_stage, "offload": offload,
                         "gpus": need.gpus, "gpu_gib": _gib(need.gpu_bytes),
                         f"{device}_gib_per_node": _gib(need.host_bytes_per_node), "offer": offer,
                         "usd_per_hour": usd})
    if plot is not None:
        _heatmap(plot, [m.id for m in models], [g.id for g in gpus], _counts(rows, len(gpus)),
                 f"Fewest GPUs to {mode} (ZeRO-{zero_stage}, offload {offload}, {context} tokens)")
    what = f"{exactly} GPUs (– : does not fit)" if exactly else "Fewest GPUs"
    view = View(title=f"{what} to {mode} (ZeRO-{zero_stage}, offload {offload} to {device}, "
                      f"{micro_batch}×{context} tokens per GPU, activation checkpointing)", columns=[
        ("model", "model"), ("gpu", "gpu"), ("gpus", "GPUs"), ("gpu_gib", "GiB per GPU"),
        (f"{device}_gib_per_node", f"{device} GiB/node"), ("offer", "cheapest offer"), ("usd_per_hour", "$/h")],
        rows=rows, caption="Training uses the framework's memory: the whole GPU, no serving cap; "
                           f"nodes of {GPUS_PER_NODE} GPUs.")
    return Result(payload=rows, csv_rows=rows, views=[view])
