"""SkyPilot catalogs (``catalogs/vN/<cloud>/vms.csv``) read as they are, into per-region offers.

- Provider: the ``<cloud>`` folder when the file sits in SkyPilot's layout (``…/catalogs/vN/<cloud>/vms.csv``,
  as in ``~/.sky/catalogs``), else the one given by the caller; never an arbitrary parent folder.
- GCP lists the host VM (``InstanceType``, no accelerator) and the accelerators (``AcceleratorName``, no
  instance) on separate rows; an accelerator-optimized VM costs host + its fixed accelerators in the
  same zone, so the two rows are summed per zone (N1 + attachable GPU combinations are not expanded).
- Accelerator names map to our GPU ids through ``accelerators.csv`` (name, provider, a hint matched
  in the instance name, a marketplace's ``UpstreamCloudId`` and the GpuInfo names, a minimum GpuInfo
  memory), first matching row wins.
- Every (instance, region) keeps its own prices: on-demand = cheapest zone's ``Price``, spot =
  cheapest zone's ``SpotPrice`` (taken independently). A spot price equal to on-demand is no spot
  market for that zone (RunPod and some Azure rows repeat the price) and is left out.
- Rows that yield no offer are counted by reason (``Catalog.skipped``), never dropped silently.
"""

from __future__ import annotations

import ast
import datetime as dt
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from gpuplan.pricing.errors import InputError

from gpuplan.rows import Sourced, validate_row
from gpuplan.safeio import read_csv_dicts

ACCELERATORS_CSV = Path(__file__).with_name("accelerators.csv")
REQUIRED = ("InstanceType", "AcceleratorName", "AcceleratorCount", "Price")
# GCP accelerator-optimized families → the accelerator row their host pairs with
# (https://cloud.google.com/compute/docs/accelerator-optimized-machines).
GCP_FAMILY = {"a2-highgpu": "A100", "a2-megagpu": "A100", "a2-ultragpu": "A100-80GB", "a3-highgpu": "H100",
              "a3-edgegpu": "H100", "a3-megagpu": "H100-MEGA", "a3-ultragpu": "H200", "a4-highgpu": "B200",
              "g2-standard": "L4"}
# g2-standard-N → L4 count (same page: 4, 8, 12, 16, 32 vCPUs carry 1; 24 → 2; 48 → 4; 96 → 8).
G2_GPUS = {4: 1, 8: 1, 12: 1, 16: 1, 32: 1, 24: 2, 48: 4, 96: 8}
_LAYOUT_VERSION = re.compile(r"^v\d+$")


@dataclass(frozen=True)
class MapRule:
    name: str
    provider: str
    hint: re.Pattern[str] | None
    min_memory_mib: float | None
    gpu: str


@dataclass
class Catalog:
    """Offers (as plain cells for ``Offer``) and skipped rows of one catalog file."""

    provider: str
    rows: list[dict[str, object]] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    skipped_rows: list[tuple[int, str]] = field(default_factory=list)
    merged: int = 0  # rows folded into a cheaper zone of the same instance and region

    def skip(self, line: int, reason: str) -> None:
        self.skipped[reason] += 1
        self.skipped_rows.append((line, reason))

    def summary(self, path: Path) -> str:
        head = f"{path}: {len(self.rows)} offers ({self.provider}, {self.merged} more zones merged)"
        if not self.skipped:
            return f"{head}; no rows skipped"
        parts = "; ".join(f"{n} {r}" for r, n in sorted(self.skipped.items(), key=lambda kv: (-kv[1], kv[0])))
        return f"{head}; skipped {sum(self.skipped.values())} rows: {parts}"


@cache
def load_mapping(path: Path = ACCELERATORS_CSV) -> tuple[MapRule, ...]:
    """The accelerator-name table; a bad regex or memory cell is one line naming the row."""
    rules = []
    for line, r in enumerate(read_csv_dicts(path)[1], start=2):
        validate_row(Sourced, path, line, r, InputError)
        try:
            hint = re.compile(r["hint"], re.IGNORECASE) if (r.get("hint") or "").strip() else None
            mem = float(r["min_memory_mib"]) if (r.get("min_memory_mib") or "").strip() else None
        except (re.error, ValueError) as err:
            raise InputError(f"{path}, row {line}: {err}") from None
        if not (r.get("name") or "").strip() or not (r.get("gpu") or "").strip():
            raise InputError(f"{path}, row {line}: 'name' and 'gpu' are required")
        rules.append(MapRule(r["name"].strip().lower(), (r.get("provider") or "*").strip().lower() or "*",
                             hint, mem, r["gpu"].strip().lower()))
    return tuple(rules)


def _lower_keys(value: object) -> object:
    if isinstance(value, dict):
        return {str(k).lower(): _lower_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_lower_keys(v) for v in value]
    return value


@cache
def _gpu_info(text: str) -> tuple[str, float | None]:
    """(GPU names joined, per-GPU memory in MiB) from SkyPilot's GpuInfo column (a Python literal)."""
    try:
        info = _lower_keys(ast.literal_eval(text))  # DigitalOcean's catalog writes the keys in lower case
        gpus = info.get("gpus") or []
        names = " ".join(str(g.get("name", "")) for g in gpus)
        mems = [g.get("memoryinfo", {}).get("sizeinmib") for g in gpus]
        mem = float(mems[0]) if mems and mems[0] is not None else None
        return names, mem
    except (ValueError, SyntaxError, AttributeError, TypeError):
        return "", None


@cache
def map_accelerator(name: str, provider: str, instance: str, gpu_info: str | None,
                    rules: tuple[MapRule, ...], upstream: str = "") -> str | None:
    """Our GPU id for a SkyPilot accelerator name, or None when no row of the table matches. A rule's hint
    is searched in the instance type, the upstream id of marketplace catalogs and the GpuInfo names."""
    info_names, mem = _gpu_info(gpu_info) if gpu_info else ("", None)
    names = [n for n in (instance, upstream, info_names) if n]
    key = name.lower()
    for rule in rules:
        if rule.name != key or rule.provider not in ("*", provider):
            continue
        if rule.hint and not any(rule.hint.search(n) for n in names):
            continue
        if rule.min_memory_mib is not None and (mem is None or mem < rule.min_memory_mib):
            continue
        return rule.gpu
    return None


def provider_of(path: Path, given: str | None = None) -> str:
    """``<cloud>`` of ``…/catalogs/vN/<cloud>/vms.csv``, else ``given``; otherwise bad input."""
    parts = path.resolve().parts
    if len(parts) >= 4 and _LAYOUT_VERSION.match(parts[-3]) and parts[-4] == "catalogs":
        return parts[-2].lower()
    if given:
        return given.lower()
    raise InputError(f"{path}: a SkyPilot catalog outside SkyPilot's layout (catalogs/vN/<cloud>/vms.csv); "
                     f"name its provider with PROVIDER=PATH (e.g. --pricing lambda={path}) or --provider")


def _number(raw: dict[str, str | None], column: str, path: Path, line: int) -> float | None:
    text = (raw.get(column) or "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{path}, row {line}, column '{column}': not a number (got {text!r})") from None
    if math.isnan(value) or math.isinf(value) or value < 0:
        raise InputError(f"{path}, row {line}, column '{column}': must be a finite number ≥ 0 (got {text!r})")
    return value


def _gcp_count(instance: str) -> int | None:
    m = re.search(r"-(\d+)g$", instance)
    if m:
        return int(m.group(1))
    m = re.match(r"^g2-standard-(\d+)$", instance)
    return G2_GPUS.get(int(m.group(1))) if m else None


def _gcp_rows(rows: list[dict[str, str | None]], cat: Catalog, path: Path) -> list[tuple[int, dict[str, object]]]:
    """Host VM rows joined with their accelerator row in the same zone: prices summed."""
    acc: dict[tuple[str, int, str], tuple[int, float | None, float | None, str | None]] = {}
    for line, raw in enumerate(rows, start=2):
        if not (raw.get("InstanceType") or "").strip() and (raw.get("AcceleratorName") or "").strip():
            name = raw["AcceleratorName"].strip()  # type: ignore[union-attr]
            count = _number(raw, "AcceleratorCount", path, line)
            zone = (raw.get("AvailabilityZone") or raw.get("Region") or "").strip()
            if count is not None:
                acc[(name.lower(), int(count), zone)] = (line, _number(raw, "Price", path, line),
                                                         _number(raw, "SpotPrice", path, line), raw.get("GpuInfo"))
    used: set[int] = set()
    out = []
    for line, raw in enumerate(rows, start=2):
        inst = (raw.get("InstanceType") or "").strip()
        if not inst:
            continue
        family = next((a for f, a in GCP_FAMILY.items() if inst.startswith(f + "-")), None)
        if family is None:
            cat.skip(line, "no accelerator (CPU-only VM)")
            continue
        count = _gcp_count(inst)
        zone = (raw.get("AvailabilityZone") or raw.get("Region") or "").strip()
        match = acc.get((family.lower(), count or 0, zone))
        if count is None or match is None:
            cat.skip(line, "GCP host VM without its accelerator row in the zone")
            continue
        acc_line, acc_price, acc_spot, gpu_info = match
        used.add(acc_line)
        host_price, host_spot = _number(raw, "Price", path, line), _number(raw, "SpotPrice", path, line)
        merged = {**raw, "AcceleratorName": family, "AcceleratorCount": str(count), "GpuInfo": gpu_info,
                  "Price": None if host_price is None or acc_price is None else round(host_price + acc_price, 6),
                  "SpotPrice": None if host_spot is None or acc_spot is None else round(host_spot + acc_spot, 6)}
        out.append((line, merged))
    for (name, _count, _zone), (line, *_rest) in acc.items():
        if line not in used:
            reason = ("TPU (not a GPU)" if name.startswith("tpu") else
                      "GCP accelerator row with no accelerator-optimized host (N1 + GPU not expanded)")
            cat.skip(line, reason)
    return out


def read_skypilot(path: Path, header: list[str], rows: list[dict[str, str | None]],
                  provider: str | None = None, rules: tuple[MapRule, ...] | None = None) -> Catalog:
    """Per-(instance, region) offer cells of one SkyPilot ``vms.csv``, with skipped rows counted."""
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise InputError(f"{path}: not a SkyPilot catalog (missing column '{missing[0]}')")
    cat = Catalog(provider_of(path, provider))
    rules = rules if rules is not None else load_mapping()
    as_of = dt.datetime.fromtimestamp(path.stat().st_mtime, tz=dt.UTC).date().isoformat()
    items = _gcp_rows(rows, cat, path) if cat.provider == "gcp" else list(enumerate(rows, start=2))
    best: dict[tuple[str, str], dict[str, object]] = {}
    for line, raw in items:
        name, inst = (raw.get("AcceleratorName") or "").strip(), (raw.get("InstanceType") or "").strip()
        if not name:
            cat.skip(line, "no accelerator (CPU-only VM)")
            continue
        if not inst:
            cat.skip(line, "no instance type")
            continue
        if name.lower().startswith("tpu"):
            cat.skip(line, "TPU (not a GPU)")
            continue
        price = raw["Price"] if isinstance(raw.get("Price"), float) else _number(raw, "Price", path, line)
        spot = raw["SpotPrice"] if isinstance(raw.get("SpotPrice"), float) else _number(raw, "SpotPrice", path, line)
        count = _number(raw, "AcceleratorCount", path, line)
        if count is None or count < 1 or count != int(count):
            cat.skip(line, "fractional or missing accelerator count")
            continue
        gpu = map_accelerator(name, cat.provider, inst, raw.get("GpuInfo"), rules,  # type: ignore[arg-type]
                              (raw.get("UpstreamCloudId") or "").strip())
        if gpu is None:
            cat.skip(line, f"accelerator '{name}' not in the mapping table")
            continue
        price = price if price else None
        spot = spot if spot and spot != price else None
        if price is None and spot is None:
            cat.skip(line, "no price")
            continue
        region = (raw.get("Region") or "").strip() or None
        key = (inst, region or "")
        cur = best.get(key)
        if cur is None:
            best[key] = {"provider": cat.provider, "instance": inst, "region": region, "gpu": gpu,
                         "gpus_per_instance": int(count), "on_demand_usd_per_hour": price,
                         "spot_usd_per_hour": spot, "source": f"SkyPilot catalog {path}", "as_of": as_of,
                         "_line": line}
            continue
        cat.merged += 1
        for column, value in (("on_demand_usd_per_hour", price), ("spot_usd_per_hour", spot)):
            old = cur[column]
            if value is not None and (old is None or value < old):  # type: ignore[operator]
                cur[column] = value
    for cells in best.values():
        if cells["spot_usd_per_hour"] == cells["on_demand_usd_per_hour"]:
            cells["spot_usd_per_hour"] = None
    cat.rows = list(best.values())
    return cat
