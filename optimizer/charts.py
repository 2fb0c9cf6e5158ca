"""Matplotlib charts for sweeps, plans and procurement.

Figures are built without pyplot (no display needed, no global state): save them with ``save`` or show
them in a notebook with ``display(fig)``.
"""

from __future__ import annotations

from pathlib import Path

from gpuplan.optimizer.planning.planner import PlanReport
from gpuplan.optimizer.planning.procurement import ProcureReport
from gpuplan.optimizer.planning.sweeps import SweepResult
from gpuplan.optimizer.serving.simulation import SimReport
from matplotlib.axes import Axes
from matplotlib.figure import Figure


def _figure() -> tuple[Figure, Axes]:
    fig = Figure(figsize=(7, 4.2))
    return fig, fig.subplots()


def sweep_chart(result: SweepResult, metric: str = "usd_per_mtok_output") -> Figure:
    """Metric against the first varied key, one line per value of the second key (log x when it spans 10×)."""
    df = result.to_frame()
    x = result.keys[0]
    fig, ax = _figure()
    groups = df.groupby(result.keys[1]) if len(result.keys) > 1 else [(None, df)]
    for label, part in groups:
        ok = part[part["status"] != "infeasible"]
        ax.plot(ok[x], ok[metric], marker="o", label=f"{result.keys[1]} = {label}" if label is not None else None)
        bad = part[part["status"] == "infeasible"]
        if len(bad):
            ax.scatter(bad[x], [0] * len(bad), marker="x", color="red")
    values = [v for v in df[x] if isinstance(v, int | float)]
    if values and min(values) > 0 and max(values) / min(values) >= 10:
        ax.set_xscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel("$ per million output tokens" if metric == "usd_per_mtok_output" else metric)
    ax.set_title("gpuplan sweep (red x: infeasible)")
    ax.grid(alpha=0.3)
    if len(result.keys) > 1:
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def pareto_front(result: SweepResult, slo_key: str = "slo.tpot_ms") -> Figure:
    """Cost against a latency target with the non-dominated points joined (tighter target, higher cost)."""
    df = result.to_frame()
    ok = df[df["status"] != "infeasible"].sort_values(slo_key)
    front, best = [], float("inf")
    for _, row in ok.iterrows():
        if row["total_usd_per_hour"] < best:
            front.append(row)
            best = row["total_usd_per_hour"]
    fig, ax = _figure()
    ax.scatter(ok[slo_key], ok["total_usd_per_hour"], alpha=0.5, label="plans")
    if front:
        ax.step([r[slo_key] for r in front], [r["total_usd_per_hour"] for r in front], where="post", color="C1",
                label="Pareto front")
    ax.set_xlabel(f"{slo_key} target")
    ax.set_ylabel("fleet $/h")
    ax.set_title("Cost vs latency target")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def cost_by_gpu(report: PlanReport) -> Figure:
    """Stacked $/h per workload, by GPU type."""
    rows: dict[str, dict[str, float]] = {}
    for w in report.workloads:
        for d in w.deployments:
            rows.setdefault(w.name, {}).setdefault(d.gpu, 0.0)
            rows[w.name][d.gpu] += d.usd_per_hour
    gpus = sorted({g for r in rows.values() for g in r})
    fig, ax = _figure()
    bottom = [0.0] * len(rows)
    names = list(rows)
    for g in gpus:
        vals = [rows[n].get(g, 0.0) for n in names]
        ax.bar(names, vals, bottom=bottom, label=g)
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax.set_ylabel("$/h")
    ax.set_title(f"Cost by GPU type (total ${report.total_usd_per_hour:,.2f}/h)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def buy_vs_rent(report: ProcureReport) -> Figure:
    """Cumulative cost per tier over the horizon, break-even month marked."""
    df = report.cumulative()
    fig, ax = _figure()
    for tier, part in df.groupby("tier"):
        ax.plot(part["month"], part["cumulative_usd"] / 1e3, label=tier)
    if report.break_even_month:
        ax.axvline(report.break_even_month, color="grey", ls="--", lw=1)
        ax.text(report.break_even_month, ax.get_ylim()[1] * 0.95, f" break-even: month {report.break_even_month}",
                fontsize=8, va="top")
    ax.set_xlabel("month")
    ax.set_ylabel("cumulative cost, $k")
    ax.set_title(f"Buy vs rent over {report.months} months")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def latency_chart(report: SimReport) -> Figure:
    """Simulated TTFT, TPOT and E2E distributions (CDFs with p50/p90/p99 marked) and KV use over time."""
    fig = Figure(figsize=(10, 6.5))
    axes = fig.subplots(2, 2).ravel()
    for ax, name in zip(axes[:3], ("ttft_ms", "tpot_ms", "e2e_ms"), strict=True):
        values = report.samples.get(name)
        if values is None or not len(values):
            continue
        ax.ecdf(values)
        for q, style in ((50, ":"), (90, "--"), (99, "-.")):
            v = report.metric(name, q)
            ax.axvline(v, color="grey", ls=style, lw=1, label=f"p{q} {v:,.1f}")
        ax.set_xlabel(name.replace("_ms", " (ms)").upper().replace("(MS)", "(ms)"))
        ax.set_ylabel("fraction of requests")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    ax = axes[3]
    t = [p.t_s for p in report.kv_timeline]
    ax.plot(t, [p.kv_fraction for p in report.kv_timeline], label="KV used / capacity")
    ax.set_xlabel("time (s)")
    ax.set_ylabel("KV fraction")
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    demand = f"{report.rate_rps:g} req/s" if report.rate_rps else f"{report.concurrency} concurrent" \
        if report.concurrency else "trace"
    fig.suptitle(f"{report.model} on {report.tp} × {report.gpu} · {report.weights}/{report.kv} · {demand} · "
                 f"{report.requests:,} requests", fontsize=10)
    fig.tight_layout()
    return fig


def save(fig: Figure, path: Path) -> None:
    """Write a PNG atomically to a new or regular file (never through a symlink or onto a device)."""
    from gpuplan.optimizer.output import atomic_target

    with atomic_target(path, suffix=".tmp.png") as tmp:
        fig.savefig(tmp, dpi=120, format="png")
