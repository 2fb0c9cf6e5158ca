"""The click group, the shared data/output options, and how a result is printed."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from gpuplan.optimizer.errors import InputError
from gpuplan.optimizer.output import FORMATS, OutputError, Result, check_target, emit, output_file, terminal_safe
from gpuplan.optimizer.serving.calibration import ENGINES, checked_version, engine_id
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


MODEL_HELP = "Model id, alias or Hugging Face repo id (deepseek-ai/DeepSeek-R1), or a path to a config.json."
TABLE_FILE = click.Path(dir_okay=False, path_type=Path)  # a data table the user swaps in


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110}, epilog=EPILOG)
@click.option("--hardware", type=TABLE_FILE, default=None,
              help="GPU table CSV (default: the shipped hardware/gpus.csv).")
@click.option("--pricing", type=TABLE_FILE, multiple=True,
              help="Offer table: gpuplan CSV or a SkyPilot vms.csv; repeat to merge (later rows win).")
@click.option("--calibration", type=TABLE_FILE, default=None,
              help="Calibration CSV from 'gpuplan calibrate' (default: shipped defaults).")
@click.option("--reserved", type=TABLE_FILE, default=None,
              help="Reserved (1y/3y) prices merged onto offers by provider + instance (default: pricing/reserved.csv).")
@click.option("--ownership", type=TABLE_FILE, default=None,
              help="Owned-server TCO inputs (default: pricing/ownership.csv).")
@click.option("--energy", type=TABLE_FILE, default=None,
              help="PUE, $/kWh, cost of capital (default: pricing/energy.csv).")
@click.version_option(package_name="gpuplan")
@click.pass_context
def cli(ctx: click.Context, hardware: Path | None, pricing: tuple[Path, ...], calibration: Path | None,
        reserved: Path | None, ownership: Path | None, energy: Path | None) -> None:
    """gpuplan: which GPUs, at which precision and layout, serve your LLM workloads within their latency
    targets at the lowest cost per million tokens."""
    ctx.obj = Tables(hardware=hardware, pricing=pricing, calibration=calibration, reserved=reserved,
                     ownership=ownership, energy=energy)


class FiniteFloat(click.FloatRange):
    """A float option in a range that also refuses NaN and ±inf (click's FloatRange lets NaN through)."""

    name = "number"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


def positive(maximum: float) -> FiniteFloat:
    """A finite number in (0, maximum]."""
    return FiniteFloat(min=0, min_open=True, max=maximum)


def count(maximum: int, minimum: int = 1) -> click.IntRange:
    """An integer in [minimum, maximum]."""
    return click.IntRange(min=minimum, max=maximum)


class EngineVersion(click.ParamType):
    """An engine release such as 0.11.0, v0.4.6.post1 or 1.2.0rc1 (calibration.checked_version)."""

    name = "version"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return checked_version(str(value))
        except InputError as err:
            self.fail(str(err), param, ctx)


ENGINE_VERSION = EngineVersion()

# --no-cuda-graphs (perf, simulate): the server replays no CUDA graphs, so every decode step pays the eager floors.
no_cuda_graphs_option = click.option(
    "--no-cuda-graphs", "eager", is_flag=True, default=False,
    help="The server runs without CUDA graphs (vLLM --enforce-eager, SGLang --disable-cuda-graph, TensorRT-LLM's "
         "PyTorch backend before 1.0 by default): every decode step pays the eager floors.")


SECONDS = positive(86_400.0)  # --time-limit: at most a day
TOKENS = count(100_000_000)
BATCH = count(1_000_000)


def checked_output(ctx: click.Context, param: click.Parameter, value: str | Path | None) -> str | Path | None:
    """Refuse an output target that is a device, symlink, FIFO or (without a trailing '/') a folder before
    any work is done; the write itself checks again."""
    if value is None:
        return value
    raw = str(value)
    target = Path(raw.rstrip("/" + os.sep) or raw) if raw.endswith(("/", os.sep)) else Path(raw)
    try:
        if raw.endswith(("/", os.sep)):
            if target.exists() and not target.is_dir():
                raise OutputError(f"{target}: exists and is not a folder")
        else:
            check_target(target)
    except OutputError as err:
        raise click.BadParameter(str(err), ctx, param) from None
    return value


def checked_png(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """A --plot target: a path ending in .png (the charts are PNG images), checked as ``checked_output``."""
    checked_output(ctx, param, value)
    if value is not None and value.suffix.lower() != ".png":
        raise click.BadParameter(f"writes a PNG image: give a path ending in .png, got '{value}'", ctx, param)
    return value


def checked_file_or_folder(ctx: click.Context, param: click.Parameter,
                           value: str | Path | None) -> str | Path | None:
    """As ``checked_output``, but an existing folder is accepted (``plan -o DIR``)."""
    if value is not None and Path(value).is_dir() and not Path(value).is_symlink():
        return value
    return checked_output(ctx, param, value)


def output_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--format table|json|csv and -o PATH, as every command takes them."""
    func = click.option("-o", "--output-path", "out", type=click.Path(path_type=str), default=None,
                        callback=checked_output,
                        help="Write to this file (atomically) instead of stdout; a name ending in '/' is a "
                             "folder to write COMMAND.json/.csv/.txt into.")(func)
    return click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
                        help="Output format.")(func)


def tables_of(ctx: click.Context) -> Tables:
    return ctx.find_object(Tables) or Tables()


def show(result: Result, fmt: str, out: str | Path | None) -> None:
    """Print or write ``result``; notes go to stderr for json/csv (they are part of the table)."""
    command = click.get_current_context().info_name or "gpuplan"
    emit(result, fmt, output_file(out, command, fmt) if out is not None else None)
    for note in result.notes if fmt != "table" else []:
        click.echo(terminal_safe(note, keep_newlines=True), err=True)


class EngineChoice(click.Choice):
    """``--engine``: one of ENGINES, written as people write it ("vLLM", "SGLang", "TensorRT-LLM":
    calibration.engine_id); anything else is click's usual "not one of" error."""

    def __init__(self) -> None:
        super().__init__(ENGINES)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        return super().convert(engine_id(value) if isinstance(value, str) else value, param, ctx)


ENGINE = EngineChoice()
