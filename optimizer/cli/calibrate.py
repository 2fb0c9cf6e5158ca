"""``gpuplan validate`` and ``gpuplan calibrate``: the performance model against measurements."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import click
from gpuplan.optimizer.cli.common import checked_output, cli, output_options, show, tables_of
from gpuplan.optimizer.output import Result, View, output_file, write_atomic
from gpuplan.optimizer.serving.validation import calibrate, compare, read_measurements, summarise

MEASURED_HELP = ("CSV with columns model,gpu,tp,weights,kv,input,output,batch,engine,metric,value,source,as_of "
                 "(metric: decode_tok_s_per_user, tpot_ms, ttft_ms, decode_tok_s, prefill_tok_s).")


VALIDATE_HELP = f"""Predicted vs measured per row; median and 90th-percentile absolute % error per metric.

MEASURED is a CSV of published or your own measurements: {MEASURED_HELP} Rows at batch > 1 are read as a
saturated closed loop of `batch` concurrent requests. The summary groups rows into batch-1 decode, decode
at load, prefill and TTFT.

\b
Examples:
  gpuplan validate tests/data/measured.csv --summary-only
  gpuplan validate tests/data/measured.csv --format csv -o validation.csv
"""

CALIBRATE_HELP = f"""Fit η_mem, η_cmp, η_prefill and t_fixed per (engine, GPU) to your measurements.

Each (engine, GPU) with at least two rows gets its own row (grid coordinate descent on the mean squared
log error); the rest keep the current calibration. The result is a calibration CSV for the global
--calibration option. MEASURED: {MEASURED_HELP}

\b
Examples:
  gpuplan calibrate tests/data/measured.csv -o calibration.csv
  gpuplan --calibration calibration.csv validate tests/data/measured.csv --summary-only
"""


@cli.command("validate", help=VALIDATE_HELP)
@click.argument("measured", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--rows/--summary-only", "show_rows", default=True, show_default=True,
              help="Print every row, or only the error summary.")
@output_options
@click.pass_context
def validate_cmd(ctx: click.Context, measured: Path, show_rows: bool, fmt: str, out: str | None) -> None:
    tables = tables_of(ctx)
    comparisons = compare(read_measurements(measured), tables)
    summary = summarise(comparisons)
    views = []
    if show_rows:
        views.append(View(title=f"Predicted vs measured ({len(comparisons)} rows, calibration "
                                f"{Path(tables.calibration.path).name})", columns=[
            ("model", "model"), ("gpu", "gpu"), ("tp", "tp"), ("weights", "weights"), ("batch", "batch"),
            ("engine", "engine"), ("metric", "metric"), ("measured", "measured"), ("predicted", "predicted"),
            ("error_pct", "error %")], rows=[c.model_dump() for c in comparisons]))
    views.append(View(title="Absolute percentage error", columns=[
        ("group", "group"), ("metric", "metric"), ("rows", "rows"), ("median_ape_pct", "median %"),
        ("p90_ape_pct", "p90 %")], rows=[s.model_dump() for s in summary]))
    payload = {"rows": [c.model_dump() for c in comparisons], "summary": [s.model_dump() for s in summary]}
    show(Result(payload=payload, csv_rows=[c.model_dump() for c in comparisons], views=views), fmt, out)


@cli.command("calibrate", help=CALIBRATE_HELP)
@click.argument("measured", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output-path", "out", type=click.Path(path_type=str), required=True, callback=checked_output,
              help="Where to write the fitted calibration CSV (use it with --calibration).")
@click.pass_context
def calibrate_cmd(ctx: click.Context, measured: Path, out: str) -> None:
    tables = tables_of(ctx)
    rows = read_measurements(measured)
    before = summarise(compare(rows, tables))
    fitted = calibrate(rows, tables, measured.name)
    after = summarise(compare(rows, tables.with_calibration(fitted)))
    buf = io.StringIO()
    fields = list(type(fitted.rows[0]).model_fields)
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in fitted.rows:
        writer.writerow({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.model_dump().items()})
    target = output_file(out, "calibration", "csv")
    write_atomic(target, buf.getvalue())
    rows_view = [{"metric": b.metric, "rows": b.rows, "before": b.median_ape_pct, "after": a.median_ape_pct}
                 for b, a in zip(before, after, strict=True)]
    show(Result(payload=rows_view, csv_rows=rows_view, views=[View(
        title=f"Calibration written to {target}: median absolute % error on the fitted rows (in-sample)",
        columns=[("metric", "metric"), ("rows", "rows"), ("before", "before %"), ("after", "after %")],
        rows=rows_view)]), "table", None)
