"""``gpuplan candidates`` and ``gpuplan plan``."""

from __future__ import annotations

import time
from pathlib import Path

import click
from gpuplan.optimizer.cli.common import SECONDS, checked_file_or_folder, cli, output_options, positive, show, tables_of
from gpuplan.optimizer.errors import InputError
from gpuplan.optimizer.launch.specs import TARGETS, spec_files
from gpuplan.optimizer.output import (
    FORMATS,
    OutputError,
    Result,
    View,
    check_target,
    render,
    safe_filename,
    terminal_safe,
    write_files,
)
from gpuplan.optimizer.planning.planner import PlanReport, all_candidates, build_plan
from gpuplan.optimizer.planning.workload import Fleet, load_fleet
from gpuplan.pricing.offers import TIERS
from rich.console import Console
from rich.markup import escape

from gpuplan.safeio import UnreadableInput, read_text


def _fleet(path: Path, tier: str | None) -> Fleet:
    fleet = load_fleet(path)
    if tier:
        fleet = fleet.model_copy(update={"constraints": fleet.constraints.model_copy(update={"tier": tier})})
    return fleet


@cli.command("candidates")
@click.argument("workloads", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--tier", type=click.Choice(TIERS), default=None, help="Override constraints.tier.")
@output_options
@click.pass_context
def candidates_cmd(ctx: click.Context, workloads: Path, tier: str | None, fmt: str, out: str | None) -> None:
    """The feasible, non-dominated candidates the solver chooses from, per workload.

    \b
    Example:
      gpuplan candidates examples/steady.yaml --format csv -o candidates.csv
    """
    fleet = _fleet(workloads, tier)
    sets, notes = all_candidates(fleet, tables_of(ctx))
    rows = [c.row() for s in sets for c in s.candidates]
    views = []
    for s in sets:
        best = sorted(s.candidates, key=lambda c: c.usd_per_hour / max(c.capacity_req_s, 1e-9))[:15]
        views.append(View(title=f"{s.workload}: {len(s.candidates)} candidates ({s.pruned} dominated pruned of "
                                f"{s.considered}); cheapest per req/s first", columns=[
            ("gpu", "gpu"), ("provider", "provider"), ("offer", "offer"), ("weights", "weights"), ("kv", "kv"),
            ("tp", "tp"), ("ep", "ep"), ("batch", "batch"), ("tpot_ms", "TPOT ms"), ("ttft_ms", "TTFT ms"),
            ("capacity_req_s", "req/s"), ("capacity_sequences", "seqs"), ("usd_per_hour", "$/h"),
            ("latency", "latency")],
            rows=[c.model_dump() for c in best],
            caption="; ".join(f"{g}: {r}" for g, r in s.reasons.items()) or None))
    show(Result(payload=rows, csv_rows=rows, views=views, notes=notes), fmt, out)


def plan_views(p: PlanReport) -> list[View]:
    views = []
    for w in p.workloads:
        stat = "mean" if w.percentile is None else f"p{w.percentile:g}"
        served = f" · serves {w.served_fraction:.1%}" if p.objective == "max-throughput" else ""
        views.append(View(title=f"{w.name} · {w.model} · {w.demand}{served} · ${w.usd_per_hour:,.2f}/h · "
                                f"${w.usd_per_mtok_output:,.3f}/Mtok output · ${w.usd_per_mtok_total:,.3f}/Mtok in+out",
                          columns=[("gpu", "gpu"), ("provider", "provider"), ("offer", "offer"),
                                   ("region", "region"), ("weights", "weights"), ("kv", "kv"), ("tp", "tp"),
                                   ("ep", "ep"), ("replicas", "replicas"), ("gpus", "GPUs"), ("batch", "batch"),
                                   ("tpot_ms", f"TPOT {stat} ms (≤ {w.slo_tpot_ms:g})"),
                                   ("ttft_ms", f"TTFT {stat} ms (≤ {w.slo_ttft_ms:g})"),
                                   ("output_tok_s", "out tok/s"), ("usd_per_hour", "$/h")],
                          rows=[d.model_dump() for d in w.deployments],
                          caption=_latency_caption(w.deployments) if w.percentile is not None else None))
    views.append(View(title="Instances", columns=[
        ("provider", "provider"), ("offer", "offer"), ("gpu", "gpu"), ("count", "count"),
        ("gpus_per_instance", "GPUs each"), ("gpus_used", "GPUs used"), ("usd_per_hour", "$/h")],
        rows=[i.model_dump() for i in p.instances],
        caption=(f"total ${p.total_usd_per_hour:,.2f}/h · {p.total_gpus} GPUs · ${p.usd_per_mtok_output:,.3f}/Mtok "
                 f"output · ${p.usd_per_mtok_total:,.3f}/Mtok in+out · {p.status}, gap {p.gap:.2%}, "
                 f"{p.solve_seconds:.2f} s, {p.candidates:,} candidates")))
    return views


def _latency_caption(deployments: list) -> str:
    """How each deployment's percentile latencies were obtained (simulated, or scaled from the mean model)."""
    return "; ".join(f"{d.gpu} {d.weights}/{d.kv} TP {d.tp}: {d.latency}" for d in deployments)


def parse_within(text: str | None) -> float | None:
    """'5%' or '5' → 0.05; must lie in (0, 100 %]."""
    if text is None:
        return None
    raw = text.strip().removesuffix("%").strip()
    try:
        value = float(raw)
    except ValueError:
        raise InputError(f"--within must be a percentage such as 5%, got '{text}'") from None
    if not 0 < value <= 100:
        raise InputError(f"--within must lie in (0, 100 %], got '{text}'")
    return value / 100


def alternative_views(p: PlanReport) -> list[View]:
    if not p.alternatives:
        return []
    rows = [{**a.model_dump(exclude={"instances"}), "gpus": ", ".join(a.gpus), "providers": ", ".join(a.providers),
             "extra_pct": 100 * a.extra_fraction} for a in p.alternatives]
    return [View(title=f"Near-optimal alternatives (optimum ${p.total_usd_per_hour:,.2f}/h)", columns=[
        ("kind", "kind"), ("description", "what"), ("total_usd_per_hour", "$/h"), ("extra_usd_per_hour", "extra $/h"),
        ("extra_pct", "extra %"), ("gpus", "GPUs"), ("providers", "providers"), ("status", "status")], rows=rows)]


@cli.command("plan")
@click.argument("workloads", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--objective", type=click.Choice(["min-cost", "max-throughput"]), default="min-cost",
              show_default=True, help="Cheapest fleet for the demand, or most output tok/s within the budget.")
@click.option("--budget-usd-per-hour", type=positive(1e9), default=None, help="Cap on the fleet's $/h.")
@click.option("--tier", type=click.Choice(TIERS), default=None, help="Pricing tier (overrides the file).")
@click.option("--time-limit", type=SECONDS, default=10.0, show_default=True,
              help="Bound on the whole command (candidates, solve, alternatives), seconds.")
@click.option("--alternatives", type=int, default=0, show_default=True,
              help="Also show up to K near-optimal plans of other kinds (other GPU vendor, other provider, "
                   "no spot, fewest GPU types), each the cheapest of its kind.")
@click.option("--within", "within", type=str, default=None,
              help="With --alternatives: only those at most this much dearer than the optimum, e.g. 5%.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@click.option("-o", "--output-path", "out", type=click.Path(path_type=str), default=None,
              callback=checked_file_or_folder,
              help="With --format json/csv: the file to write. With table: a folder for plan.json, plan.csv "
                   "and the launch specs (--target).")
@click.option("--target", type=click.Choice(TARGETS), default="skypilot", show_default=True,
              help="Launch specs written with -o DIR: SkyServe services or Kubernetes manifests.")
@click.pass_context
def plan_cmd(ctx: click.Context, workloads: Path, objective: str, budget_usd_per_hour: float | None,
             tier: str | None, time_limit: float, alternatives: int, within: str | None, fmt: str,
             out: str | None, target: str) -> None:
    """The optimal fleet: deployments per workload, instances, $/h, $/Mtok, launch commands.

    Exit code 3 when no plan meets the constraints, with the constraint that binds. Workloads with an
    hourly rate_profile get a daily plan: a committed base (constraints.committed_tier) plus on-demand
    and spot capacity per hour, spot capped at constraints.spot_max_share of each hour's GPUs.

    \b
    Examples:
      gpuplan plan examples/fleet.yaml
      gpuplan plan examples/steady.yaml --tier spot --format json -o plan.json
      gpuplan plan examples/steady.yaml -o out/            # plan.json, plan.csv, SkyPilot YAMLs
      gpuplan plan examples/steady.yaml --objective max-throughput --budget-usd-per-hour 50
      gpuplan plan examples/steady.yaml --alternatives 2 --within 25%
    """
    started = time.perf_counter()
    if alternatives < 0:
        raise InputError(f"--alternatives must be ≥ 0, got {alternatives}")
    share = parse_within(within)
    tables = tables_of(ctx)
    fleet = _fleet(workloads, tier)
    if any(w.rate_profile for w in fleet.workloads):
        from gpuplan.optimizer.cli.day import day_result
        from gpuplan.optimizer.planning.day import plan_day

        day = plan_day(fleet, tables, time_limit, time_limit - (time.perf_counter() - started))
        result = day_result(day)
        if fmt == "table" and out is not None:
            from gpuplan.optimizer.cli.day import day_specs

            files, notes = day_specs(day, fleet, tables, target)
            write_folder(result, Path(out), files, notes)
            show(result, "table", None)
            click.echo(terminal_safe(f"wrote {out}/plan.json, plan.csv and {len(files)} {target} file(s)"))
            return
        show(result, fmt, out)
        return
    console = Console(stderr=True)
    with console.status("planning…") as status:
        report = build_plan(fleet, tables, objective, time_limit, budget_usd_per_hour,
                            progress=lambda msg: status.update(escape(terminal_safe(msg))), started=started,
                            alternatives=alternatives, within=share)
    rows = [{"workload": w.name, **d.model_dump()} for w in report.workloads for d in w.deployments]
    launches = View(title="Launch commands (what one instance runs for each deployment)",
                    columns=[("candidate", "deployment"), ("replicas", "replicas"), ("launch", "command")],
                    rows=[d.model_dump() for w in report.workloads for d in w.deployments])
    result = Result(payload=report.model_dump(mode="json"), csv_rows=rows,
                    views=[*plan_views(report), *alternative_views(report), launches],
                    notes=report.notes)
    if fmt == "table" and out is not None:
        deps = [(w, d) for w, p in zip(fleet.workloads, report.workloads, strict=True) for d in p.deployments]
        files, notes = spec_files(deps, tables, fleet.constraints.tier, target)
        folder = Path(out)
        write_folder(result, folder, files, notes)
        show(result, "table", None)
        click.echo(terminal_safe(f"wrote {folder}/plan.json, plan.csv and {len(files)} {target} file(s)"))
        for n in notes:
            click.echo(terminal_safe(f"note: {n}"))
        return
    show(result, fmt, out)


MANIFEST = "plan.files"  # the files the last plan wrote into its folder, one name per line


def write_folder(result: Result, folder: Path, files: dict[str, str], notes: list[str]) -> None:
    """plan.json, plan.csv and the launch specs, all rendered and checked before the first write; file
    names pass through ``safe_filename`` (no path tricks, bounded length). The folder's MANIFEST lists them;
    files an earlier plan listed there and this one does not write are removed after the write, so deploying
    the folder's specs never starts a stale service."""
    texts = {"plan.json": render(result, "json"), "plan.csv": render(result, "csv")}
    texts.update({safe_filename(name, 120): text for name, text in sorted(files.items())})
    if notes:
        texts["NOTES.txt"] = "".join(f"{n}\n" for n in notes)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder}: exists and is not a folder")
    stale = sorted(_listed(folder) - set(texts) - {MANIFEST})
    texts[MANIFEST] = "".join(f"{name}\n" for name in sorted({*texts, MANIFEST}))
    for name in texts:
        check_target(folder / name)
    write_files({folder / name: text for name, text in texts.items()})  # all or none, Ctrl-C included
    for name in stale:
        (folder / name).unlink(missing_ok=True)


def _listed(folder: Path) -> set[str]:
    """The names an earlier plan's MANIFEST in ``folder`` lists: only plain names this command could have
    written (``safe_filename`` leaves them as they are) of regular files; anything else in the folder is the
    user's and is never touched."""
    try:
        text = read_text(folder / MANIFEST, 1 << 20)
    except UnreadableInput:
        return set()
    return {name for name in text.splitlines()
            if name and safe_filename(name, 120) == name and (folder / name).is_file()
            and not (folder / name).is_symlink()}
