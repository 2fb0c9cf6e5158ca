"""Server settings an engine changes when attention runs data-parallel (``dp_attention.csv``).

SGLang's ``--enable-dp-attention`` runs one scheduler per attention rank and rewrites three of its defaults
(the table cites the ServerArgs code per release): each rank's chunked prefill size C_r = C // k, with k = 2
before 0.4.5 and k = dp (the DP size) from 0.4.5, C being the server's chunked prefill size (its default or the
one the command sets); the schedule conservativeness × 0.3, which scales the KV
share held back for the running requests' future outputs (admission.Reservation ρ₀ and ρ_min); and in 0.4.1
the overlap scheduler off (recorded in the table's source, not applied: see the 0.4.1 row). Engines without a
row keep their defaults.

The simulator runs one scheduler for the replica: a request's prompt advances by at most C_r tokens per step
(one rank's chunk), the step's token budget stays the engine's C, and a step's prompt tokens are priced as if
one attention rank held them all (roofline.step_terms_s without ``spread``). SGLang's ranks prefill side by
side (dp · C_r tokens per step, each rank's attention and dense layers on its own chunk); replaying that, with
the budget dp · C_r and the chunks priced on ⌈K / C_r⌉ ranks, made the published DP-attention runs look
faster than measured and the leave-one-source-out throughput median worse (14.6 → 15.3 %), so the replay keeps
the serial pricing: the cost that holds these runs back is not yet in the step model (README, weak spots).
"""

from __future__ import annotations

from dataclasses import replace
from functools import cache
from pathlib import Path

from gpuplan.hardware.csvrows import read_rows
from gpuplan.optimizer.serving.calibration import VersionRange, prefer_version
from gpuplan.optimizer.serving.scheduler import EngineDefaults
from pydantic import ConfigDict, Field

from gpuplan.rows import Sourced

DP_ATTENTION_CSV = Path(__file__).with_name("dp_attention.csv")


class DpAttentionRow(Sourced):
    """One row: ``chunk_divisor`` k (0: the DP size) and the factor on the schedule conservativeness, for
    ``engine`` at ``versions`` (empty = current)."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    engine: str = Field(min_length=1)
    versions: VersionRange = None
    chunk_divisor: int = Field(ge=0)
    conservativeness_scale: float = Field(gt=0)


@cache
def _rows(path: Path = DP_ATTENTION_CSV) -> tuple[DpAttentionRow, ...]:
    return tuple(read_rows(path, DpAttentionRow))


def dp_attention_row(engine: str, version: str | None = None) -> DpAttentionRow | None:
    """The row for ``engine`` at ``version`` (ranged rows first), None for engines without one."""
    pool = prefer_version([r for r in _rows() if r.engine == engine.lower()], version)
    return pool[0] if pool else None


def rank_chunk_tokens(chunk_tokens: int, dp: int, divisor: int) -> int:
    """Chunked prefill size of one attention rank: C_r = C // k, k = ``divisor`` (0: k = dp), at least 1."""
    k = dp if divisor == 0 else divisor
    return max(1, chunk_tokens // k)


def dp_attention_defaults(d: EngineDefaults, dp: int, version: str | None = None) -> EngineDefaults:
    """An engine's scheduler defaults under ``dp`` > 1 attention ranks: one request's prompt advances by at most
    one rank's chunk C_r per step (rank_chunk_tokens; the replica's token budget stays the engine's C, which is
    dp · C_r from 0.4.5 on), and the running requests' reservation ratios ρ₀, ρ_min scale by the
    conservativeness factor."""
    row = dp_attention_row(d.engine, version)
    if dp <= 1 or row is None:
        return d
    r = d.reservation
    resv = replace(r, running_init=r.running_init * row.conservativeness_scale,
                   running_min=r.running_min * row.conservativeness_scale)
    chunk = rank_chunk_tokens(d.max_batched_tokens, dp, row.chunk_divisor) if d.max_batched_tokens else 0
    return replace(d, reservation=resv, rank_chunk_tokens=chunk)
