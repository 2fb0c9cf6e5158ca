"""How the analytical model (the one the calibration is fitted with) reads an open-loop (Poisson) benchmark row:
the engine runs every request in flight, so the mean batch follows from the rate by Little's law, and the
output throughput below capacity is the offered load, not one stream's rate."""

from __future__ import annotations

import numpy as np
import pytest
from gpuplan.optimizer.serving.measurements import OPEN_UNCAPPED_CLIENTS, Measurement, clients_of
from gpuplan.optimizer.serving.roofline import decode_step_s, prefill_s
from gpuplan.optimizer.serving.validation import open_loop_batch, predict, prepare
from gpuplan.optimizer.tables import Tables

# An open loop as MEASURED.md records one (batch 1 = no client cap, requests = --num-prompts), on a
# deployment whose figures come from the step model itself.
ROW = dict(model="llama-3.1-8b", gpu="h100-sxm", tp=1, weights="bf16", kv="bf16", input=1000, output=200,
           batch=1, mode="open", requests=500, engine="vllm", engine_version="0.11.0", metric="decode_tok_s",
           value=1.0, source="x", as_of="2025-11-01")


def _row(**kw: object) -> Measurement:
    return Measurement(**{**ROW, **kw})


def test_open_loop_without_a_client_cap_is_bounded_by_its_requests_only() -> None:
    assert clients_of(_row(rate_rps=2.0)) == 500
    assert clients_of(_row(rate_rps=2.0, requests=None)) == OPEN_UNCAPPED_CLIENTS
    assert clients_of(_row(rate_rps=2.0, batch=16)) == 16  # a stated cap stays


def test_open_loop_below_capacity_delivers_the_offered_load() -> None:
    # Flow conservation: 2 requests/s × 200 output tokens = 400 output tok/s, whatever the step times (an
    # H100 runs Llama 3.1 8B at several thousand tok/s, far above this rate).
    assert predict(_row(rate_rps=2.0), Tables()) == pytest.approx(400.0, rel=1e-9)


def test_open_loop_batch_obeys_littles_law() -> None:
    # b = λ · O · TPOT with TPOT = t_step(b) / (1 − λ · t_prefill): the iteration's fixed point, checked with
    # the step model's own t_step at the returned b, and the row's predicted TPOT is that TPOT.
    tables = Tables()
    rate = 8.0
    case = prepare(_row(rate_rps=rate, metric="tpot_ms"), tables)
    t_pre = np.asarray(prefill_s(case.shape, None, np.array([1000.0]), spread=True), dtype=float)
    b = open_loop_batch(case.shape, np.array([rate]), np.array([200.0]), t_pre, np.array([float(case.running)]))
    tpot = float(decode_step_s(case.shape, b)[0][0]) / (1.0 - rate * float(t_pre[0]))
    assert 1.0 < b[0] < case.running
    assert b[0] == pytest.approx(rate * 200.0 * tpot, rel=1e-6)
    assert predict(_row(rate_rps=rate, metric="tpot_ms"), tables) == pytest.approx(tpot * 1e3, rel=1e-6)


def test_open_loop_past_capacity_saturates_below_the_offered_load() -> None:
    # 1,000 requests/s of 1,000-token prompts is far past one H100's prefill rate: the engine's slots fill and
    # the delivered throughput stays under the offered 200,000 tok/s and no higher than at 100 requests/s × 10.
    tables = Tables()
    heavy = predict(_row(rate_rps=1000.0), tables)
    assert heavy < 0.5 * 1000.0 * 200.0
    assert heavy <= 10 * predict(_row(rate_rps=100.0), tables)
    assert predict(_row(rate_rps=1.0), tables) < predict(_row(rate_rps=4.0), tables)
