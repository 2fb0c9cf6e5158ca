"""``gpuplan models | gpus | prices``: list the swappable tables."""

from __future__ import annotations

from pathlib import Path

import click
from gpuplan.models.catalog import load_catalog, resolve
from gpuplan.models.memory import kv_bytes_per_token, state_bytes_per_sequence
from gpuplan.optimizer.cli.common import cli, output_options, show, tables_of
from gpuplan.optimizer.output import Result, View
from gpuplan.pricing.offers import TIERS, filter_offers, usd_per_gpu_hour


@cli.command("models")
@click.option("--model", "model_names", multiple=True,
              help="Only these models: catalog ids/aliases or paths to any config.json (repeatable).")
@output_options
@click.pass_context
def models_cmd(ctx: click.Context, model_names: tuple[str, ...], fmt: str, out: Path | None) -> None:
    """List the model catalog with exact parameter counts computed from each config.json.

    \b
    Example:
      gpuplan models --format json
      gpuplan models --model path/to/config.json
    """
    bf16 = tables_of(ctx).formats.kv_format("bf16")
    rows = []
    chosen = [resolve(n) for n in model_names] if model_names else list(load_catalog().values())
    for m in chosen:
        a = m.arch
        rows.append({
            "id": m.id, "aliases": list(m.aliases), "hf_repo": m.hf_repo, "total_params": m.params.total,
            "active_params": m.params.active, "num_layers": a.layers, "hidden_size": a.hidden,
            "attention": a.attention_kind, "heads": a.heads if a.attention_layers else None,
            "kv_heads": a.kv_heads if a.attention_layers else None,
            "experts": a.moe.num_experts if a.moe else None, "experts_per_token": a.moe.top_k if a.moe else None,
            "kv_bytes_per_token": round(kv_bytes_per_token(a, bf16)), "max_context": a.max_context or None,
            "layer_kinds": a.kind_summary, "state_bytes_per_sequence": state_bytes_per_sequence(a),
            "official_total_b": m.official_total_params, "source": m.source, "as_of": m.as_of,
        })
    view_rows = [{**r, "total_b": r["total_params"] / 1e9, "active_b": r["active_params"] / 1e9,
                  "kv_kib": r["kv_bytes_per_token"] / 1024, "state_mib": r["state_bytes_per_sequence"] / 2**20}
                 for r in rows]
    view = View(title="Models (parameter counts computed from config.json; KV per token at bf16)", columns=[
        ("id", "id"), ("total_b", "total B"), ("active_b", "active B"), ("official_total_b", "official B"),
        ("num_layers", "layers"), ("attention", "attn"), ("heads", "heads"), ("kv_heads", "kv heads"),
        ("experts", "experts"), ("experts_per_token", "top-k"), ("kv_kib", "KV KiB/tok"),
        ("state_mib", "state MiB/seq"), ("layer_kinds", "layer kinds"), ("max_context", "max ctx")],
        rows=view_rows)
    show(Result(payload=rows, csv_rows=rows, views=[view]), fmt, out)


@cli.command("gpus")
@click.option("--gpu", "gpu_ids", multiple=True, help="Only these GPU ids (repeatable).")
@click.option("--vendor", default=None, help="Only this vendor (nvidia, amd, apple, intel).")
@output_options
@click.pass_context
def gpus_cmd(ctx: click.Context, gpu_ids: tuple[str, ...], vendor: str | None, fmt: str, out: Path | None) -> None:
    """List the GPU table: driver-reported memory, bandwidth, dense tensor throughput, links.

    \b
    Example:
      gpuplan gpus --vendor nvidia
      gpuplan --hardware my_gpus.csv gpus --format csv
    """
    table = tables_of(ctx).gpus
    wanted = {table.get(g).id for g in gpu_ids}
    rows = [g.model_dump(mode="json") for g in table
            if (not wanted or g.id in wanted) and (not vendor or g.vendor.lower() == vendor.lower())]
    for r in rows:
        r["native_formats"] = sorted(r["native_formats"])
    view = View(title=f"GPUs ({Path(table.path).name})", columns=[
        ("id", "id"), ("memory_gib", "GiB"), ("memory_bw_gb_s", "GB/s"), ("bf16_tflops", "BF16 TF"),
        ("fp8_tflops", "FP8 TF"), ("fp4_tflops", "FP4 TF"), ("int8_tops", "INT8 TOPS"), ("link", "link"),
        ("link_gb_s", "link GB/s"), ("nvlink_domain", "domain"), ("tdp_w", "TDP W"), ("as_of", "as of")],
        rows=rows, caption="Dense tensor throughput (no sparsity). Sources: --format json or csv.")
    show(Result(payload=rows, csv_rows=rows, views=[view]), fmt, out)


@cli.command("prices")
@click.option("--gpu", default=None, help="Only offers of this GPU id or alias.")
@click.option("--provider", "providers", multiple=True, help="Only these providers (repeatable).")
@click.option("--tier", type=click.Choice(TIERS), default=None, help="Only offers priced in this tier.")
@output_options
@click.pass_context
def prices_cmd(ctx: click.Context, gpu: str | None, providers: tuple[str, ...], tier: str | None,
               fmt: str, out: Path | None) -> None:
    """List cloud offers ($ per instance-hour per tier), cheapest per GPU first.

    \b
    Examples:
      gpuplan prices --gpu h100-sxm --tier spot
      gpuplan --pricing ~/.sky/catalogs/v8/aws/vms.csv prices --gpu a100-80gb
    """
    t = tables_of(ctx)
    gpu_id = t.gpus.get(gpu).id if gpu else None
    offers = filter_offers(t.offers, gpu_id, providers, tier)
    sort_tier = tier or "on_demand"
    offers.sort(key=lambda o: (o.gpu, usd_per_gpu_hour(o, sort_tier) if o.price(sort_tier) else 1e9, o.key))
    rows = []
    for o in offers:
        r = o.model_dump(mode="json")
        r["usd_per_gpu_hour"] = round(usd_per_gpu_hour(o, sort_tier), 6) if o.price(sort_tier) else None
        rows.append(r)
    view = View(title=f"Offers ({len(rows)})", columns=[
        ("provider", "provider"), ("instance", "instance"), ("region", "region"), ("gpu", "gpu"),
        ("gpus_per_instance", "GPUs"), ("on_demand_usd_per_hour", "on-demand $/h"), ("spot_usd_per_hour", "spot $/h"),
        ("reserved_1y_usd_per_hour", "1y $/h"), ("reserved_3y_usd_per_hour", "3y $/h"),
        ("usd_per_gpu_hour", f"$/GPU-h ({sort_tier})"), ("as_of", "as of")], rows=rows)
    show(Result(payload=rows, csv_rows=rows, views=[view]), fmt, out)
