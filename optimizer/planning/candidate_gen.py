"""Candidate generation: every deployable replica shape for a workload, with its capacity and price.

A candidate is (offer, weight format, KV format, TP, EP) at its best batch (``points``: all of a
workload's points are evaluated in one vectorised pass), placed on each offer of its GPU wide enough.

Pruning (safe for every constraint of the solver): on the same offer, candidate B is dominated by
A when tp_A divides tp_B and (tp_B / tp_A) replicas of A have at least B's capacity — they use
the same GPUs of the same instances. Whether B is dominated does not depend on the offer (A's TP divides
B's, so A fits wherever B does), so for mean-latency SLOs points are pruned once per GPU, before they are
placed on offers; percentile SLOs change capacities per point first (``percentile.refine``), so their
candidates are pruned after. Among offers of the same GPU and GPUs per instance without an availability
cap, only the cheapest is kept.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import suppress

from gpuplan.models.catalog import Model, resolve
from gpuplan.optimizer.errors import InputError
from gpuplan.optimizer.launch.checkpoints import native_formats
from gpuplan.optimizer.planning import percentile
from gpuplan.optimizer.planning.points import OperatingPoint, Spec, best_points, best_points_many
from gpuplan.optimizer.planning.workload import Constraints, Workload
from gpuplan.optimizer.serving.deployment import check_tp, max_tp
from gpuplan.optimizer.tables import Tables
from gpuplan.pricing.offers import Offer, check_providers, filter_offers
from gpuplan.pricing.regions import cheapest_region, describe_place, filter_place
from pydantic import BaseModel

TP_DEGREES = (1, 2, 4, 8, 16, 32, 64, 72)


class Candidate(OperatingPoint):
    """An operating point placed on an offer: what the solver buys replicas of."""

    def row(self) -> dict[str, object]:
        """Plain fields with the identity first (id, workload, model, gpu, offer…), then the operating point."""
        data = self.model_dump()
        head = {k: data.pop(k) for k in ("id", "workload", "model", "gpu", "provider", "offer", "region")}
        return {**head, **data}

    id: str
    workload: str
    model: str
    gpu: str
    provider: str
    offer: str
    region: str | None
    gpus_per_replica: int
    gpus_per_instance: int
    instance_usd_per_hour: float
    usd_per_hour: float  # the replica's share of its instance
    capacity_tok_s: float
    max_model_len: int
    offer_max_instances: int | None = None
    source: str
    as_of: str


class CandidateSet(BaseModel):
    workload: str
    candidates: list[Candidate]
    reasons: dict[str, str]  # GPU id → why it has no candidate (closest miss)
    considered: int
    pruned: int


def allowed_providers(tables: Tables, c: Constraints) -> list[str] | None:
    """The providers ``constraints.providers`` allows (each one a provider of the price tables), with 'owned'
    (owned servers are no provider's); None: every provider."""
    check_providers(tables.offers, c.providers, "constraints.providers")
    return [*c.providers, "owned"] if c.providers else None


def usable_offers(tables: Tables, c: Constraints) -> tuple[list[Offer], list[str]]:
    """Offers priced in the tier, of allowed providers and GPUs, whose GPU is in the table; cheapest per
    (GPU, GPUs per instance) unless capped."""
    notes = [t.summary for t in tables.pricing_tables if t.summary]  # SkyPilot catalogs: what was skipped
    providers = allowed_providers(tables, c)
    offers = filter_offers(tables.offers, provider=providers, tier=c.tier)
    offers = cheapest_region(filter_place(offers, c.regions, c.jurisdictions), c.tier)
    if c.regions or c.jurisdictions:
        notes.append(f"offers {describe_place(c.regions, c.jurisdictions)}: {len(offers)} instance types")
    allowed = {tables.gpus.get(g).id for g in c.gpus} if c.gpus else None
    known = []
    unknown = set()
    for o in offers:
        if o.gpu not in tables.gpus.gpus:
            unknown.add(o.gpu)
        elif allowed is None or o.gpu in allowed:
            known.append(o)
    if unknown:
        notes.append(f"offers of GPUs not in the hardware table were skipped: {', '.join(sorted(unknown))}")
    best: dict[tuple[str, int], Offer] = {}
    capped = []
    for o in known:
        if o.max_instances is not None:
            capped.append(o)
            continue
        key = (o.gpu, o.gpus_per_instance)
        price = o.price(c.tier) or float("inf")
        if key not in best or (price, o.key) < (best[key].price(c.tier) or float("inf"), best[key].key):
            best[key] = o
    return sorted([*best.values(), *capped], key=lambda o: (o.gpu, o.gpus_per_instance, o.key)), notes


def _point_id(p: OperatingPoint) -> str:
    """'fp8-bf16/tp8', or 'fp8-bf16/tp8-ep8' with expert parallelism."""
    return f"{p.weights}-{p.kv}/tp{p.tp}" + (f"-ep{p.ep}" if p.ep > 1 else "")


def layouts(m: Model) -> list[tuple[int, int]]:
    """(tp, ep) replica shapes: every TP degree with ep = 1, and for MoE models with tp > 1 also ep = tp
    (DeepSeek-style EP over the replica with data-parallel attention) where tp divides the routed experts."""
    moe = m.arch.moe
    return [(tp, ep) for tp in TP_DEGREES
            for ep in ((1, tp) if moe and tp > 1 and moe.num_experts % tp == 0 else (1,))]


def _beats(a: OperatingPoint, b: OperatingPoint, a_id: str, b_id: str) -> bool:
    """True when tp_b / tp_a replicas of ``a`` have at least b's capacity, strictly more or an earlier (tp, id)."""
    if b.tp % a.tp or a_id == b_id:
        return False
    k = b.tp // a.tp
    ge = (k * a.capacity_req_s >= b.capacity_req_s and k * a.capacity_sequences >= b.capacity_sequences)
    strict = (k * a.capacity_req_s > b.capacity_req_s or k * a.capacity_sequences > b.capacity_sequences
              or (a.tp, a_id) < (b.tp, b_id))
    return ge and strict


def _dominated(a: Candidate, b: Candidate) -> bool:
    """True when replicas of ``a`` can replace ``b`` on the same GPUs of the same offer."""
    return a.offer == b.offer and a.provider == b.provider and _beats(a, b, a.id, b.id)


def _undominated(points: list[OperatingPoint]) -> list[OperatingPoint]:
    """Points of one GPU that no other point of it dominates (on every offer alike; ids differ only by the
    point's own part)."""
    ids = [_point_id(p) for p in points]
    return [b for b, bid in zip(points, ids, strict=True)
            if not any(_beats(a, b, aid, bid) for a, aid in zip(points, ids, strict=True))]


def prune(cands: list[Candidate]) -> list[Candidate]:
    by_offer: dict[str, list[Candidate]] = {}
    for c in cands:
        by_offer.setdefault(f"{c.provider}:{c.offer}", []).append(c)
    kept = []
    for group in by_offer.values():
        kept += [b for b in group if not any(_dominated(a, b) for a in group)]
    return sorted(kept, key=lambda c: c.id)


def _by_gpu(offers: Iterable[Offer]) -> dict[str, list[Offer]]:
    by_gpu: dict[str, list[Offer]] = {}
    for o in offers:
        by_gpu.setdefault(o.gpu, []).append(o)
    return by_gpu


def _specs(m: Model, w: Workload, by_gpu: dict[str, list[Offer]], tables: Tables
           ) -> tuple[list[tuple[str, tuple[int, float, str]] | int], list[Spec]]:
    """The specs to evaluate for ``w`` on the offers' GPUs, and the steps: a TP-check miss, or a spec's index
    (memoised per table set: they depend on the model, the format lists and each GPU's widest offer)."""
    # A model released in a quantised format (DeepSeek block FP8, gpt-oss MXFP4) is planned at that
    # format unless the workload lists its weight formats (models/checkpoints.csv, kind 'native').
    weights = w.weights if "weights" in w.model_fields_set else (native_formats(m) or w.weights)
    widest = {gid: max(o.gpus_per_instance for o in gpu_offers) for gid, gpu_offers in by_gpu.items()}
    key = (m.id, tuple(weights), tuple(w.kv), tuple(sorted(widest.items())))
    cache = tables.__dict__.setdefault("_candidate_specs", {})
    if key not in cache:
        cache[key] = _specs_now(m, weights, w.kv, widest, tables)
    return cache[key]


def _specs_now(m: Model, weights: list[str], kv: list[str], widest: dict[str, int], tables: Tables
               ) -> tuple[list[tuple[str, tuple[int, float, str]] | int], list[Spec]]:
    for name in weights:
        tables.formats.weight(name)
    for name in kv:
        tables.formats.kv_format(name)
    steps: list[tuple[str, tuple[int, float, str]] | int] = []
    specs: list[Spec] = []
    for gid, gpus_per_instance in sorted(widest.items()):
        g = tables.gpus.get(gid)
        for tp, ep in layouts(m):
            if tp > gpus_per_instance or tp > max_tp(g):
                continue
            try:
                check_tp(m.arch, g, tp // ep, m.id)  # with EP, attention runs data-parallel: TP tp / ep per rank
            except InputError as e:
                steps.append((gid, (6, 0.0, str(e))))
                continue
            for wname in weights:
                for kvname in kv:
                    steps.append(len(specs))
                    specs.append(Spec(g, wname, kvname, tp, ep))
    return steps, specs


def prefetch(workloads: list[Workload], constraints: Constraints, tables: Tables, offers: list[Offer]) -> None:
    """Evaluate the operating points of several workloads together (one vectorised pass over all their
    points, memoised per table set), so that ``generate`` of each finds them ready. Workloads whose input
    ``generate`` rejects are left to it, to report."""
    by_gpu = _by_gpu(offers)
    items = []
    for w in workloads:
        try:
            m = resolve(w.model)
            if w.max_context is None or (m.arch.max_context and w.max_context > m.arch.max_context):
                continue
            items.append((m, w, _specs(m, w, by_gpu, tables)[1]))
        except InputError:
            continue
    with suppress(InputError):  # ``generate`` of each workload raises it, in the workloads' order
        best_points_many(items, tables, constraints.utilization)


def generate(w: Workload, constraints: Constraints, tables: Tables,
             offers: Iterable[Offer] | None = None, price_any: tuple[str, ...] | None = None) -> CandidateSet:
    """Feasible, non-dominated candidates of one workload, and why each GPU type has none.
    ``price_any``: price instances at the first of these tiers an offer has (daily plans mix tiers)."""
    m = resolve(w.model)
    assert w.max_context is not None
    if offers is None:
        offers, _ = usable_offers(tables, constraints)
    offers = list(offers)
    reasons: dict[str, tuple[int, float, str]] = {}
    if m.arch.max_context and w.max_context > m.arch.max_context:
        msg = f"max_context {w.max_context:,} is beyond {m.id}'s limit of {m.arch.max_context:,} tokens"
        return CandidateSet(workload=w.name, candidates=[], reasons={"*": msg}, considered=0, pruned=0)
    by_gpu = _by_gpu(offers)
    steps, specs = _specs(m, w, by_gpu, tables)
    results = best_points(m, w, specs, tables, constraints.utilization)
    points: dict[str, list[OperatingPoint]] = {}
    for step in steps:
        if isinstance(step, tuple):
            reasons.setdefault(*step)
            continue
        point, why = results[step]
        gid = specs[step].gpu.id
        if point is not None:
            points.setdefault(gid, []).append(point)
        elif gid not in reasons or why[:2] < reasons[gid][:2]:  # type: ignore[index]
            reasons[gid] = why  # type: ignore[assignment]
    tiers = price_any or (constraints.tier,)
    percentile_slo = w.slo.percentile is not None
    considered = sum(o.gpus_per_instance >= p.tp for gid, ps in points.items() for p in ps for o in by_gpu[gid])
    cands = []
    for gid, ps in points.items():
        for p in ps if percentile_slo else _undominated(ps):
            fields = p.model_dump()
            cands += [_place(w, m.id, gid, p, fields, o, tiers) for o in by_gpu[gid] if o.gpus_per_instance >= p.tp]
    if percentile_slo:  # capacities from the simulator, then dominance
        cands, missed = percentile.refine(w, cands, tables, constraints.utilization)
        for gid, msg in missed.items():
            reasons.setdefault(gid, (0, 0.0, msg))
        considered = len(cands)
        cands = prune(cands)
    kept = sorted(cands, key=lambda c: c.id)
    have = {c.gpu for c in kept}
    return CandidateSet(workload=w.name, candidates=kept, considered=considered, pruned=considered - len(kept),
                        reasons={g: r for g, (_, _, r) in sorted(reasons.items()) if g not in have})


def _place(w: Workload, model_id: str, gid: str, point: OperatingPoint, fields: dict[str, object], o: Offer,
           tiers: tuple[str, ...]) -> Candidate:
    """The point (and its ``fields``) on one offer, priced at the first of ``tiers`` the offer has. Built without
    validation: every field comes from a validated point, offer or workload (the price as a float, as
    validation would make it)."""
    price = float(next(p for t in tiers if (p := o.price(t)) is not None))
    return Candidate.model_construct(
        **fields, id=f"{w.name}/{o.provider}:{o.instance}/{_point_id(point)}",
        workload=w.name, model=model_id, gpu=gid, provider=o.provider, offer=o.instance,
        region=o.region, gpus_per_replica=point.tp, gpus_per_instance=o.gpus_per_instance,
        instance_usd_per_hour=price, usd_per_hour=price * point.tp / o.gpus_per_instance,
        capacity_tok_s=point.capacity_req_s * w.output_tokens, max_model_len=w.max_context,
        offer_max_instances=o.max_instances, source=o.source, as_of=o.as_of)


def _covers(a_cands: list[Candidate], b: Candidate) -> bool:
    """Some candidate of ``a_cands`` (b's workload's, on another offer) replaces ``b`` with replicas whose TP
    divides b's."""
    return any(b.tp % a.tp == 0
               and (b.tp // a.tp) * a.capacity_req_s >= b.capacity_req_s
               and (b.tp // a.tp) * a.capacity_sequences >= b.capacity_sequences for a in a_cands)


def _pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def _replaces(a0: Candidate, b0: Candidate, b_cands: list[Candidate]) -> bool:
    """k = gpi_b / gpi_a instances of A can host whatever one instance of B hosts: same size, or A's size a
    power of two dividing B's with every TP on B a power of two no larger than A (buddy packing is exact)."""
    if b0.gpus_per_instance % a0.gpus_per_instance:
        return False
    k = b0.gpus_per_instance // a0.gpus_per_instance
    if k * a0.instance_usd_per_hour > b0.instance_usd_per_hour:
        return False
    if k == 1:
        return True
    return _pow2(a0.gpus_per_instance) and all(_pow2(b.tp) and b.tp <= a0.gpus_per_instance for b in b_cands)


def prune_offers(cands: list[Candidate], capped_gpus: set[str], single_gpu_type: bool) -> list[Candidate]:
    """Drop every offer B that an uncapped offer A replaces at no higher cost: k = gpi_B / gpi_A instances of A
    cost at most one of B and host whatever B hosts (see ``_replaces``), and A covers each of B's candidates
    (same workload, TP dividing, capacity at least as high). Moving all of B's instances and replicas to A
    keeps every constraint and never costs more, so the optimum is unchanged. Under ``single_gpu_type`` only
    offers of the same GPU type may replace one another."""
    by_offer: dict[tuple[str, str], list[Candidate]] = {}
    per_workload: dict[tuple[str, str], dict[str, list[Candidate]]] = {}
    for c in cands:
        by_offer.setdefault((c.provider, c.offer), []).append(c)
        per_workload.setdefault((c.provider, c.offer), {}).setdefault(c.workload, []).append(c)

    def covered(ka: tuple[str, str], kb: tuple[str, str]) -> bool:
        mine = per_workload[ka]
        return all(_covers(mine.get(b.workload, []), b) for b in by_offer[kb])

    def order(key: tuple[str, str]) -> tuple[float, int, tuple[str, str]]:
        c0 = by_offer[key][0]
        return (c0.instance_usd_per_hour / c0.gpus_per_instance, c0.gpus_per_instance, key)

    dropped: set[tuple[str, str]] = set()
    keys = sorted(by_offer, key=order)
    for i, kb in enumerate(keys):
        b0 = by_offer[kb][0]
        for ka in keys[:i]:
            a0 = by_offer[ka][0]
            if ka in dropped or a0.offer_max_instances is not None or a0.gpu in capped_gpus:
                continue
            if single_gpu_type and a0.gpu != b0.gpu:
                continue
            if _replaces(a0, b0, by_offer[kb]) and covered(ka, kb):
                dropped.add(kb)
                break
    return [c for c in cands if (c.provider, c.offer) not in dropped]
