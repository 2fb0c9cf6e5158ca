"""``gpuplan sweep`` (what-if grids) and ``gpuplan procure`` (buy vs rent)."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from gpuplan.optimizer.cli.common import SECONDS, checked_png, cli, count, output_options, positive, show, tables_of
from gpuplan.optimizer.errors import InfeasibleError
from gpuplan.optimizer.output import Result, View
from gpuplan.optimizer.planning.procurement import procure
from gpuplan.optimizer.planning.sweeps import load_raw, parse_vary, sweep
from gpuplan.optimizer.planning.workload import load_fleet
from rich.console import Console
from rich.progress import Progress


@cli.command("sweep")
@click.argument("workloads", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--vary", "vary", multiple=True, required=True,
              help="KEY=v1,v2,… (repeatable; the grid is their product). KEY: slo.tpot_ms, rate_rps, "
                   "constraints.tier, NAME/rate_rps for one workload, …")
@click.option("--workers", type=count(1024), default=1, show_default=True, help="Parallel processes.")
@click.option("--time-limit", type=SECONDS, default=10.0, show_default=True, help="Solver limit per point, s.")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None, callback=checked_png,
              help="Write a PNG chart of $/Mtok against the first varied key.")
@output_options
@click.pass_context
def sweep_cmd(ctx: click.Context, workloads: Path, vary: tuple[str, ...], workers: int, time_limit: float,
              plot: Path | None, fmt: str, out: str | None) -> None:
    """Plan every point of a grid of what-ifs; infeasible points are rows too.

    \b
    Examples:
      gpuplan sweep examples/steady.yaml --vary slo.tpot_ms=20,50 --vary rate_rps=1,100
      gpuplan sweep examples/steady.yaml --vary constraints.tier=on_demand,spot,reserved_1y --format csv
      gpuplan sweep examples/steady.yaml --vary assistant/rate_rps=5,20,80 --workers 2 --plot sweep.png
    """
    base = load_raw(workloads)
    grid = parse_vary(vary)
    total = 1
    for values in grid.values():
        total *= len(values)
    with Progress(console=Console(stderr=True), transient=True, disable=not sys.stderr.isatty()) as bar:
        task = bar.add_task(f"planning {total} points", total=total)
        result = sweep(base, grid, tables_of(ctx), str(workloads), workers, time_limit,
                       progress=lambda done, _n: bar.update(task, completed=done))
    rows = [p.flat() for p in result.points]
    if plot is not None:
        from gpuplan.optimizer.charts import save, sweep_chart

        save(sweep_chart(result), plot)
    view = View(title=f"Sweep over {', '.join(result.keys)} ({len(rows)} points)", columns=[
        *((k, k) for k in result.keys), ("status", "status"), ("total_usd_per_hour", "$/h"),
        ("usd_per_mtok_output", "$/Mtok out"), ("total_gpus", "GPUs"), ("gpu_mix", "GPUs by type"),
        ("reason", "why infeasible")], rows=rows)
    show(Result(payload=rows, csv_rows=rows, views=[view],
                notes=[f"chart written to {plot}"] if plot else []), fmt, out)


@cli.command("procure")
@click.argument("workloads", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--months", type=count(1200), default=36, show_default=True, help="Horizon in months.")
@click.option("--power-utilization", type=positive(1.0), default=None,
              help="Average power draw of owned servers as a share of their max power (default 0.7).")
@click.option("--time-limit", type=SECONDS, default=10.0, show_default=True, help="Solver limit per tier, s.")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None, callback=checked_png,
              help="Write a PNG of cumulative cost per tier.")
@output_options
@click.pass_context
def procure_cmd(ctx: click.Context, workloads: Path, months: int, power_utilization: float | None,
                time_limit: float, plot: Path | None, fmt: str, out: str | None) -> None:
    """Own, reserve (1y/3y), rent on demand or on spot: the same demand, costed over --months.

    Owned servers become offers priced from pricing/ownership.csv (purchase price, lifetime, power,
    hosting) and pricing/energy.csv (PUE, $/kWh, cost of capital).

    \b
    Examples:
      gpuplan procure examples/steady.yaml --months 36
      gpuplan procure examples/steady.yaml --months 60 --power-utilization 0.5 --format json
    """
    tables = tables_of(ctx)
    if power_utilization is not None:
        tables = tables.replace(power_utilization)
    report = procure(load_fleet(workloads), tables, months, time_limit)
    if all(o.status == "infeasible" for o in report.options):  # nothing to buy, rent or compare: exit 3
        reasons = {o.reason for o in report.options}
        raise InfeasibleError(f"no tier ({', '.join(o.tier for o in report.options)}) can serve the demand: "
                              + (reasons.pop() if len(reasons) == 1 else
                                 "; ".join(f"{o.tier}: {o.reason}" for o in report.options)))
    if plot is not None:
        from gpuplan.optimizer.charts import buy_vs_rent, save

        save(buy_vs_rent(report), plot)
    rows = [o.model_dump(exclude={"plan"}) for o in report.options]
    payload = {"months": report.months, "break_even_month": report.break_even_month,
               "owning_wins_above_utilization": report.owning_wins_above_utilization,
               "options": [o.model_dump(mode="json") for o in report.options], "notes": report.notes}
    be = f"month {report.break_even_month}" if report.break_even_month else f"never within {months} months"
    wins = (f"; owning wins when on-demand capacity would run more than "
            f"{report.owning_wins_above_utilization:.0%} of hours" if report.owning_wins_above_utilization else "")
    view = View(title=f"Buy vs rent over {months} months — owning breaks even with on-demand: {be}{wins}",
                columns=[("tier", "tier"), ("status", "status"), ("usd_per_hour", "$/h"),
                         ("same_fleet_on_demand_usd_per_hour", "same fleet on-demand $/h"),
                         ("monthly_usd", "$/month"), ("upfront_usd", "upfront $"),
                         ("total_usd", f"total $ ({months} mo)"),
                         ("usd_per_mtok_output", "$/Mtok out"), ("gpus", "GPUs"), ("fleet", "fleet"),
                         ("reason", "why not")], rows=rows,
                caption="owned: $/month is power + hosting; $/h includes the capital annuity")
    show(Result(payload=payload, csv_rows=rows, views=[view], notes=report.notes), fmt, out)
