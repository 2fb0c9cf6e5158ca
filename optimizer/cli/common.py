"""The click group, the shared data/output options, and how a result is printed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from gpuplan.optimizer.output import FORMATS, Result, emit
from gpuplan.optimizer.tables import Tables

EPILOG = """\b
Examples:
  gpuplan models
  gpuplan gpus --vendor nvidia
  gpuplan prices --gpu h100-sxm --tier spot
  gpuplan memory --model llama-3.1-70b --weights fp8 --context 32768 --gpu h100-sxm --gpus 2
  gpuplan perf --model llama-3.1-8b --gpu h100-sxm --weights fp8 --input 1500 --output 300 --batch 32
  gpuplan simulate --model llama-3.1-8b --gpu h100-sxm --input 1000 --output 200 --rate 10
  gpuplan plan examples/fleet.yaml --format json -o plan.json
"""


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110}, epilog=EPILOG)
@click.option("--hardware", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="GPU table CSV (default: the shipped hardware/gpus.csv).")
@click.option("--pricing", type=click.Path(dir_okay=False, path_type=Path), multiple=True,
              help="Offer table: gpuplan CSV or a SkyPilot vms.csv; repeat to merge (later rows win).")
@click.option("--calibration", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Calibration CSV from 'gpuplan calibrate' (default: shipped defaults).")
@click.option("--reserved", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Reserved (1y/3y) prices merged onto offers by provider + instance (default: pricing/reserved.csv).")
@click.option("--ownership", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Owned-server TCO inputs (default: pricing/ownership.csv).")
@click.option("--energy", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="PUE, $/kWh, cost of capital (default: pricing/energy.csv).")
@click.version_option(package_name="gpuplan")
@click.pass_context
def cli(ctx: click.Context, hardware: Path | None, pricing: tuple[Path, ...], calibration: Path | None,
        reserved: Path | None, ownership: Path | None, energy: Path | None) -> None:
    """gpuplan: which GPUs, at which precision and layout, serve your LLM workloads within their latency
    targets at the lowest cost per million tokens."""
    ctx.obj = Tables(hardware=hardware, pricing=pricing, calibration=calibration, reserved=reserved,
                     ownership=ownership, energy=energy)


def output_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--format table|json|csv and -o PATH, as every command takes them."""
    func = click.option("-o", "--output-path", "out", type=click.Path(dir_okay=False, path_type=Path),
                        default=None, help="Write to this file (atomically) instead of stdout.")(func)
    return click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
                        help="Output format.")(func)


def tables_of(ctx: click.Context) -> Tables:
    return ctx.find_object(Tables) or Tables()


def show(result: Result, fmt: str, out: Path | None) -> None:
    emit(result, fmt, out)
    for note in result.notes if fmt != "table" else []:
        click.echo(note, err=True)
