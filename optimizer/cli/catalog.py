"""``gpuplan models | gpus | prices``: list the swappable tables."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click
from gpuplan.models.catalog import load_catalog, resolve
from gpuplan.models.memory import kv_bytes_per_token, state_bytes_per_sequence
from gpuplan.optimizer.cli.common import cli, output_options, show, tables_of
from gpuplan.optimizer.errors import InputError
from gpuplan.optimizer.output import Result, View
from gpuplan.optimizer.tables import Tables
from gpuplan.pricing.checks import check_offers, unmatched_reserved
from gpuplan.pricing.errors import InputError as PricingInputError
from gpuplan.pricing.offers import TIERS, check_providers, filter_offers, usd_per_gpu_hour
from gpuplan.pricing.ownership import load_reserved
from gpuplan.pricing.regions import filter_place, load_regions


@cli.command("models")
@click.option("--model", "model_names", multiple=True,
              help="Only these models: catalog ids/aliases or paths to any config.json (repeatable).")
@output_options
@click.pass_context
def models_cmd(ctx: click.Context, model_names: tuple[str, ...], fmt: str, out: str | None) -> None:
    """List the model catalog with exact parameter counts computed from each config.json.

    \b
    Example:
      gpuplan models --format json
      gpuplan models --model models/configs/mamba-2.8b.json
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
def gpus_cmd(ctx: click.Context, gpu_ids: tuple[str, ...], vendor: str | None, fmt: str, out: str | None) -> None:
    """List the GPU table: driver-reported memory, bandwidth, dense tensor throughput, links.

    \b
    Example:
      gpuplan gpus --vendor nvidia
      gpuplan --hardware hardware/gpus.csv gpus --gpu h100-sxm --gpu mi300x --format csv
    """
    table = tables_of(ctx).gpus
    wanted = {table.get(g).id for g in gpu_ids}
    vendors = sorted({g.vendor.lower() for g in table})
    if vendor is not None and vendor.lower() not in vendors:
        raise InputError(f"--vendor: unknown vendor '{vendor}' (the GPU table has {', '.join(vendors)})")
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
@click.option("--provider", "providers", multiple=True,
              help="Only these providers (repeatable); one --provider also names the provider of a SkyPilot "
                   "catalog outside SkyPilot's catalogs/vN/<cloud>/ layout.")
@click.option("--tier", type=click.Choice(TIERS), default=None, help="Only offers priced in this tier.")
@click.option("--region", "regions", multiple=True, help="Only these regions (names or globs such as 'eu-*').")
@click.option("--jurisdiction", "jurisdictions", multiple=True, help="Only regions in these jurisdictions (EU, EEA, "
              "UK, CH, US, …).")
@click.option("--pricing", "pricing", multiple=True,
              help="Offer sources for this listing: a CSV, PROVIDER=vms.csv, or 'skypilot' for ~/.sky/catalogs.")
@click.option("--verbose", is_flag=True, help="List every skipped catalog row with its line and reason.")
@click.option("--check", is_flag=True, help="Report inconsistent and stale rows instead of listing (exit 2 if any).")
@click.option("--max-age-days", type=click.IntRange(min=0), default=None,
              help="With --check: rows older than this many days before --as-of are stale.")
@click.option("--as-of", "as_of", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="With --check: reference date (default: the newest as_of in the table, not the clock).")
@output_options
@click.pass_context
def prices_cmd(ctx: click.Context, gpu: str | None, providers: tuple[str, ...], tier: str | None,
               regions: tuple[str, ...], jurisdictions: tuple[str, ...], pricing: tuple[str, ...], verbose: bool,
               check: bool, max_age_days: int | None, as_of: dt.datetime | None, fmt: str, out: str | None) -> None:
    """List cloud offers ($ per instance-hour per tier, one row per region), cheapest per GPU first.

    --pricing also reads SkyPilot catalogs directly: a vms.csv path, or 'skypilot' for the newest catalog
    per cloud under ~/.sky/catalogs (e.g. gpuplan prices --pricing skypilot --gpu a100-80gb).

    \b
    Examples:
      gpuplan prices --gpu h100-sxm --tier spot --jurisdiction EU
      gpuplan prices --pricing tests/data/skypilot/catalogs/v8/aws/vms.csv --gpu a100-80gb
      gpuplan --pricing tests/data/skypilot/catalogs/v8/lambda/vms.csv prices --gpu h100-sxm --verbose
      gpuplan prices --check --max-age-days 730 --as-of 2026-12-01
    """
    t = tables_of(ctx)
    if pricing:
        t = Tables(t.hardware_path, [Path(p) for p in pricing], t.calibration_path, t.formats_path,
                   t.reserved_path, t.ownership_path, t.energy_path)
    if len(providers) == 1:
        t.default_provider = providers[0]
    for table in t.pricing_tables:
        if table.summary:
            click.echo(table.summary, err=True)
        for line, reason in table.skipped_rows if verbose else ():
            click.echo(f"  {table.path}, row {line}: skipped, {reason}", err=True)
    if check:
        _check(t, max_age_days, as_of.date() if as_of else None, fmt, out)
        return
    gpu_id = t.gpus.get(gpu).id if gpu else None
    check_providers(t.offers, providers, "--provider")
    offers = filter_place(filter_offers(t.offers, gpu_id, providers, tier), regions, jurisdictions)
    sort_tier = tier or "on_demand"
    offers.sort(key=lambda o: (o.gpu, usd_per_gpu_hour(o, sort_tier) if o.price(sort_tier) else 1e9, o.key,
                               o.region or ""))
    rows = []
    places = load_regions()
    for o in offers:
        r = o.model_dump(mode="json")
        place = places.place(o.provider, o.region)
        r["country"], r["jurisdiction"] = (place.country, place.jurisdiction) if place else (None, None)
        r["usd_per_gpu_hour"] = round(usd_per_gpu_hour(o, sort_tier), 6) if o.price(sort_tier) else None
        rows.append(r)
    dates = sorted(o.as_of for o in offers if o.provider != "owned")
    caption = f"prices as of {dates[0]} … {dates[-1]}" if dates else None
    view = View(title=f"Offers ({len(rows)})", columns=[
        ("provider", "provider"), ("instance", "instance"), ("region", "region"), ("jurisdiction", "jur."),
        ("gpu", "gpu"), ("gpus_per_instance", "GPUs"), ("on_demand_usd_per_hour", "on-demand $/h"),
        ("spot_usd_per_hour", "spot $/h"),
        ("reserved_1y_usd_per_hour", "1y $/h"), ("reserved_3y_usd_per_hour", "3y $/h"),
        ("usd_per_gpu_hour", f"$/GPU-h ({sort_tier})"), ("as_of", "as of")], rows=rows, caption=caption)
    show(Result(payload=rows, csv_rows=rows, views=[view]), fmt, out)


def _check(t: Tables, max_age_days: int | None, as_of: dt.date | None, fmt: str, out: str | None) -> None:
    """Print the findings of ``check_offers``; exit 2 when there is any."""
    domains = {g.id: g.nvlink_domain for g in t.gpus}
    findings, ref = check_offers(t.offers, domains, max_age_days, as_of)
    findings += unmatched_reserved(load_reserved(t.reserved_path), t.offers)
    rows = [f.model_dump() for f in findings]
    view = View(title=f"Price check against {ref}: {len(rows)} findings", columns=[
        ("rule", "rule"), ("provider", "provider"), ("instance", "instance"), ("region", "region"),
        ("message", "finding")], rows=rows)
    show(Result(payload={"as_of": str(ref), "max_age_days": max_age_days, "findings": rows}, csv_rows=rows,
                views=[view]), fmt, out)
    if findings:
        raise PricingInputError(f"price check: {len(findings)} findings against {ref}")
