"""Buy vs rent: the same demand planned under each pricing tier, costed over a horizon.

  on-demand, spot:  total = monthly · months
  reserved_Ny:      paid monthly, committed for whole terms: total = ⌈months / 12N⌉ · 12N · monthly
  owned:            cumulative(m) = capex · (1 + i)^m + opex · m   (capex = servers bought, re-bought every
                    lifetime; i = cost of capital / 12; opex = power + hosting per month; no resale value)
  break-even month: first m with owned cumulative(m) ≤ on-demand monthly · m (None within the horizon)
  owning wins above utilisation u* = owned amortised monthly / on-demand monthly: the share of hours an
  on-demand fleet must run for owning to be cheaper (if on-demand capacity could be switched off when idle).
"""

from __future__ import annotations

import math

import pandas as pd
from gpuplan.optimizer.errors import InfeasibleError, InputError
from gpuplan.optimizer.planning.planner import PlanReport, build_plan
from gpuplan.optimizer.planning.workload import Fleet
from gpuplan.optimizer.tables import Tables
from gpuplan.pricing.ownership import HOURS_PER_MONTH, load_energy, load_ownership, power_usd_per_month
from pydantic import BaseModel

PROCURE_TIERS = ("owned", "reserved_3y", "reserved_1y", "on_demand", "spot")
TERM_MONTHS = {"reserved_1y": 12, "reserved_3y": 36}
MAX_MONTHS = 240


class ProcureOption(BaseModel):
    tier: str
    status: str  # optimal | feasible | infeasible
    usd_per_hour: float | None = None
    monthly_usd: float | None = None
    total_usd: float | None = None
    upfront_usd: float = 0.0
    usd_per_mtok_output: float | None = None
    gpus: int = 0
    fleet: str = ""  # "2 × p5.48xlarge (h100-sxm)"
    same_fleet_on_demand_usd_per_hour: float | None = None  # reserved tiers: these instances at on-demand
    reason: str | None = None
    plan: PlanReport | None = None


class ProcureReport(BaseModel):
    months: int
    options: list[ProcureOption]
    break_even_month: int | None
    owning_wins_above_utilization: float | None
    notes: list[str]

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([o.model_dump(exclude={"plan"}) for o in self.options])

    def cumulative(self) -> pd.DataFrame:
        """Month-by-month cumulative payments per feasible tier (for the buy-vs-rent chart)."""
        rows = []
        for o in self.options:
            if o.monthly_usd is None:
                continue
            for m in range(0, self.months + 1):
                rows.append({"month": m, "tier": o.tier, "cumulative_usd": _cumulative(o, m, self._rate)})
        return pd.DataFrame(rows)

    _rate: float = 0.0


def _cumulative(o: ProcureOption, month: int, monthly_rate: float) -> float:
    assert o.monthly_usd is not None
    if o.tier == "owned":
        opex = o.monthly_usd  # for owned options monthly_usd holds power + hosting
        return o.upfront_usd * (1 + monthly_rate) ** month + opex * month if month else o.upfront_usd
    return o.monthly_usd * month


def _committed(o: ProcureOption, months: int, monthly_rate: float) -> float:
    """Total spend over the horizon; reserved terms are paid in full even past the horizon."""
    assert o.monthly_usd is not None
    if o.tier in TERM_MONTHS:
        term = TERM_MONTHS[o.tier]
        return math.ceil(months / term) * term * o.monthly_usd
    return _cumulative(o, months, monthly_rate)


def _fleet_text(p: PlanReport) -> str:
    return ", ".join(f"{i.count} × {i.offer} ({i.gpu})" for i in p.instances)


def same_fleet_on_demand(plan: PlanReport, tables: Tables) -> float | None:
    """$/h of exactly the plan's instances (same provider, instance, region) at on-demand prices: the
    like-for-like base a commitment is compared with. None when one of them has no on-demand price."""
    regions = {(d.provider, d.offer): d.region for w in plan.workloads for d in w.deployments}
    prices = {(o.provider, o.instance, o.region): o.on_demand_usd_per_hour for o in tables.offers}
    total = 0.0
    for i in plan.instances:
        price = prices.get((i.provider, i.offer, regions.get((i.provider, i.offer))))
        if price is None:
            return None
        total += i.count * price
    return total


def procure(fleet: Fleet, tables: Tables, months: int = 36, time_limit_s: float = 10.0) -> ProcureReport:
    if not 1 <= months <= MAX_MONTHS:
        raise InputError(f"--months must be between 1 and {MAX_MONTHS}, got {months}")
    energy = load_energy(tables.energy_path)
    servers = {f"{r.gpu}-server": r for r in load_ownership(tables.ownership_path)[0]}
    rate = energy.cost_of_capital_annual / 12
    options = []
    for tier in PROCURE_TIERS:
        f = fleet.model_copy(update={"constraints": fleet.constraints.model_copy(update={"tier": tier})})
        try:
            plan = build_plan(f, tables, time_limit_s=time_limit_s)
        except InfeasibleError as e:
            options.append(ProcureOption(tier=tier, status="infeasible", reason=str(e).splitlines()[0]))
            continue
        monthly = plan.total_usd_per_hour * HOURS_PER_MONTH
        opt = ProcureOption(tier=tier, status=plan.status, usd_per_hour=plan.total_usd_per_hour, monthly_usd=monthly,
                            usd_per_mtok_output=plan.usd_per_mtok_output, gpus=plan.total_gpus,
                            fleet=_fleet_text(plan), plan=plan)
        if tier == "owned":
            capex = opex = 0.0
            for inst in plan.instances:
                row = servers[inst.offer]
                capex += inst.count * row.server_price_usd
                opex += inst.count * (row.hosting_usd_per_month + power_usd_per_month(
                    row.server_power_w, tables.power_utilization, energy.pue, energy.electricity_usd_per_kwh))
            lifetime = min(servers[i.offer].lifetime_months for i in plan.instances)
            purchases = math.ceil(months / lifetime)
            opt = opt.model_copy(update={"upfront_usd": capex * purchases if months > lifetime else capex,
                                         "monthly_usd": opex})
        if tier in TERM_MONTHS:
            opt = opt.model_copy(update={"same_fleet_on_demand_usd_per_hour": same_fleet_on_demand(plan, tables)})
        opt = opt.model_copy(update={"total_usd": _committed(opt, months, rate)})
        options.append(opt)
    by_tier = {o.tier: o for o in options if o.monthly_usd is not None}
    break_even, wins_above = None, None
    if "owned" in by_tier and "on_demand" in by_tier:
        owned, od = by_tier["owned"], by_tier["on_demand"]
        for m in range(1, months + 1):
            if _cumulative(owned, m, rate) <= _cumulative(od, m, rate):
                break_even = m
                break
        assert owned.usd_per_hour is not None and od.usd_per_hour is not None
        wins_above = owned.usd_per_hour / od.usd_per_hour
    notes = [*tables.ownership_notes,
             f"owned: power at {tables.power_utilization:.0%} of server max power, PUE {energy.pue}, "
             f"${energy.electricity_usd_per_kwh}/kWh, cost of capital {energy.cost_of_capital_annual:.1%}/year, "
             "no resale value"]
    for o in options:
        base = o.same_fleet_on_demand_usd_per_hour
        if base and o.usd_per_hour is not None:
            notes.append(f"{o.tier}: ${o.usd_per_hour:,.2f}/h against ${base:,.2f}/h for the same instances "
                         f"on demand ({1 - o.usd_per_hour / base:.0%} less)")
    ages = sorted({n for o in options if o.plan for n in o.plan.notes if n.startswith("prices as of")})
    notes += ages[:1]
    report = ProcureReport(months=months, options=options, break_even_month=break_even,
                           owning_wins_above_utilization=wins_above, notes=notes)
    report._rate = rate
    return report
