"""``gpuplan validate`` and ``gpuplan calibrate``: the performance model against measurements."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import click
from gpuplan.optimizer.cli.common import checked_output, cli, count, output_options, show, tables_of
from gpuplan.optimizer.output import Result, View, output_file, write_atomic
from gpuplan.optimizer.serving.calibration import CALIBRATION_CSV
from gpuplan.optimizer.serving.fitting import calibrate, in_sample, leave_one_source_out
from gpuplan.optimizer.serving.kv_validation import KV_CAPACITY_CSV, check_all, read_kv_rows, summarise_kv
from gpuplan.optimizer.serving.measurements import read_measurements
from gpuplan.optimizer.serving.validation import summarise
from rich.console import Console
from rich.progress import Progress

MEASURED_HELP = ("CSV with columns model,gpu,tp,weights,kv,input,output,batch,engine,metric,value,source,as_of "
                 "and optionally ep, mode (static|closed|open), rate_rps, engine_version, percentile "
                 "(metric: decode_tok_s_per_user, tpot_ms, ttft_ms, itl_ms, e2e_ms, e2e_per_token_ms, decode_tok_s, "
                 "prefill_tok_s), "
                 "and how the benchmark ran: attn_dp, dataset (random|sharegpt), range_ratio (0-1), requests, "
                 "max_seqs, max_batched_tokens.")
SUMMARY_COLUMNS = [("calibration", "calibration"), ("scope", "scope"), ("group", "group"), ("rows", "rows"),
                   ("median_ape_pct", "median %"), ("p90_ape_pct", "p90 %"),
                   ("median_signed_pct", "median signed %")]


VALIDATE_HELP = f"""Predicted vs measured per row; median and 90th-percentile absolute % error per metric group,
model class (dense / MoE) and engine, and the median signed error (> 0: predicted above measured), with the
current calibration (in-sample for the shipped one) and leave-one-source-out (every row predicted by a
calibration fitted without any row of its source).

MEASURED is a CSV of published or your own measurements: {MEASURED_HELP} Serving-benchmark rows (closed or
open loop), p50/p90/p99 rows and ITL/E2E rows are predicted by replaying their benchmark in the simulator
(seed 0) with the calibration in use (for leave-one-source-out, the one fitted without the row's source);
static mean rows, and every row under --analytical, by the analytical model (closed loops as waves of
`batch` requests). The calibration fit itself is always analytical.

\b
Examples:
  gpuplan validate tests/data/measured.csv --summary-only
  gpuplan validate tests/data/measured.csv --summary-only --no-loso
  gpuplan validate tests/data/measured.csv --summary-only --analytical --workers 2
  gpuplan validate tests/data/measured.csv --format csv -o validation.csv
"""

CALIBRATE_HELP = f"""Fit η_mem, η_cmp, η_prefill, η_moe, the per-layer floors and the per-request, per-step and
per-sequence times of every calibration row your measurements use: a MAP fit on log error (soft-L1, rows
weighted by source) towards the current values with the physical bounds and prior widths of
calibration_priors.csv; a level shared by the serving engines first; a constant moves only where rows of two
sources identify it, the floors only on latency-bound rows. The result is a calibration CSV for the global
--calibration option. MEASURED: {MEASURED_HELP}

\b
Examples:
  gpuplan calibrate tests/data/measured.csv -o calibration.csv
  gpuplan --calibration calibration.csv validate tests/data/measured.csv --summary-only --no-loso
"""


@cli.command("validate", help=VALIDATE_HELP)
@click.argument("measured", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--rows/--summary-only", "show_rows", default=True, show_default=True,
              help="Print every row, or only the error summary.")
@click.option("--loso/--no-loso", default=True, show_default=True,
              help="Also predict every row with a calibration fitted without its source (leave-one-source-out).")
@click.option("--analytical", is_flag=True,
              help="Predict serving-benchmark rows with the analytical model instead of the simulator.")
@click.option("--workers", type=count(1024), default=1, show_default=True,
              help="Processes fitting the leave-one-source-out folds (same result, sooner on several cores).")
@output_options
@click.pass_context
def validate_cmd(ctx: click.Context, measured: Path, show_rows: bool, loso: bool, analytical: bool, workers: int,
                 fmt: str, out: str | None) -> None:
    tables = tables_of(ctx)
    rows = read_measurements(measured)
    comps = in_sample(rows, tables, simulated=not analytical)
    label = "shipped" if Path(tables.calibration.path) == CALIBRATION_CSV else Path(tables.calibration.path).name
    summary = summarise(comps, label)
    loso_comps = []
    if loso:
        with Progress(console=Console(stderr=True), transient=True, disable=not sys.stderr.isatty()) as bar:
            task = bar.add_task("fitting a calibration without each source", total=None)
            loso_comps = leave_one_source_out(rows, tables, simulated=not analytical, workers=workers,
                                              progress=lambda done, n: bar.update(task, completed=done, total=n))
        summary += summarise(loso_comps, "leave-one-source-out")
    row_dicts = [c.model_dump() for c in comps]
    columns = [("model", "model"), ("gpu", "gpu"), ("tp", "tp"), ("ep", "ep"), ("weights", "weights"),
               ("batch", "batch"), ("engine", "engine"), ("engine_version", "version"),
               ("engine_version_assumed", "version by date"), ("metric", "metric"), ("measured", "measured"),
               ("predicted", "predicted"), ("error_pct", "error %")]
    if loso:
        for row, held in zip(row_dicts, loso_comps, strict=True):
            row.update(loso_predicted=held.predicted, loso_error_pct=held.error_pct)
        columns += [("loso_predicted", "LOSO predicted"), ("loso_error_pct", "LOSO error %")]
    views = []
    if show_rows:
        views.append(View(title=f"Predicted vs measured ({len(comps)} rows, calibration "
                                f"{Path(tables.calibration.path).name}; LOSO: fitted without the row's source)",
                          columns=columns, rows=row_dicts))
    views.append(View(title="Percentage error (absolute; signed: predicted − measured)", columns=SUMMARY_COLUMNS,
                      rows=[s.model_dump() for s in summary]))
    payload = {"rows": row_dicts, "summary": [s.model_dump() for s in summary]}
    show(Result(payload=payload, csv_rows=row_dicts, views=views), fmt, out)


@cli.command("calibrate", help=CALIBRATE_HELP)
@click.argument("measured", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output-path", "out", type=click.Path(path_type=str), required=True, callback=checked_output,
              help="Where to write the fitted calibration CSV (use it with --calibration).")
@click.pass_context
def calibrate_cmd(ctx: click.Context, measured: Path, out: str) -> None:
    tables = tables_of(ctx)
    rows = read_measurements(measured)
    before = summarise(in_sample(rows, tables))
    fitted = calibrate(rows, tables, measured.name)
    after = summarise(in_sample(rows, tables.with_calibration(fitted)))
    buf = io.StringIO()
    fields = list(type(fitted.rows[0]).model_fields)
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in fitted.rows:
        writer.writerow({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.model_dump().items()})
    target = output_file(out, "calibration", "csv")
    write_atomic(target, buf.getvalue())
    after_by = {(a.scope, a.group): a for a in after}
    rows_view = [{"scope": b.scope, "group": b.group, "rows": b.rows, "before": b.median_ape_pct,
                  "after": after_by[(b.scope, b.group)].median_ape_pct} for b in before if b.scope == "all"]
    show(Result(payload=rows_view, csv_rows=rows_view, views=[View(
        title=f"Calibration written to {target}: median absolute % error on the fitted rows (in-sample)",
        columns=[("group", "group"), ("rows", "rows"), ("before", "before %"), ("after", "after %")],
        rows=rows_view)]), "table", None)


VALIDATE_KV_HELP = """The KV capacity the memory model predicts against what serving engines logged at startup: vLLM
'GPU KV cache size' and 'Available KV cache memory', SGLang 'KV Cache is allocated. #tokens', TensorRT-LLM
'tokens in paged KV cache'. End to end (pool from the memory model, then the engine's token count) and
accounting (the engine's token count of the pool it logged); median and 90th-percentile absolute % error.

KV_CSV (default: the shipped tests/data/kv_capacity.csv) has columns model,gpu,tp,weights,kv,engine,metric
(kv_tokens|kv_gib),value,source,as_of and optionally engine_version, mem_fraction, max_model_len,
max_num_seqs, max_batched_tokens, logged_kv_gib, notes.

\b
Examples:
  gpuplan validate-kv
  gpuplan validate-kv tests/data/kv_capacity.csv --format json
"""


@cli.command("validate-kv", help=VALIDATE_KV_HELP)
@click.argument("kv_csv", required=False, type=click.Path(dir_okay=False, path_type=Path))
@output_options
@click.pass_context
def validate_kv_cmd(ctx: click.Context, kv_csv: Path | None, fmt: str, out: str | None) -> None:
    checks = check_all(read_kv_rows(kv_csv or KV_CAPACITY_CSV), tables_of(ctx))
    rows = [c.model_dump() for c in checks]
    summary = [s.model_dump() for s in summarise_kv(checks)]
    views = [View(title=f"KV capacity: predicted vs logged ({len(rows)} checks)",
                  columns=[("check", "check"), ("model", "model"), ("gpu", "gpu"), ("tp", "tp"), ("engine", "engine"),
                           ("metric", "metric"), ("logged", "logged"), ("predicted", "predicted"),
                           ("error_pct", "error %")], rows=rows),
             View(title="Absolute percentage error", columns=[("check", "check"), ("group", "group"), ("rows", "rows"),
                  ("median_ape_pct", "median %"), ("p90_ape_pct", "p90 %")], rows=summary)]
    show(Result(payload={"rows": rows, "summary": summary}, csv_rows=rows, views=views), fmt, out)
