"""How the analytical model (the one the calibration is fitted with) reads a closed-loop benchmark row, and that
it reads it as the simulator replays it (``gpuplan validate`` reports the replay, so a reading the replay does
not share would fit the constants to a different benchmark than the one validated)."""

from __future__ import annotations

import numpy as np
import pytest
from gpuplan.optimizer.serving.measurements import Measurement, clients_of, load_mode
from gpuplan.optimizer.serving.roofline import decode_step_s, prefill_s
from gpuplan.optimizer.serving.simulated_rows import predict_simulated
from gpuplan.optimizer.serving.validation import drifting_closed_loop, predict, prepare
from gpuplan.optimizer.tables import Tables

# gpustack's Qwen3-8B latency runs (one H100, vLLM 0.11, vllm bench serve on ShareGPT: 233 / 221 mean tokens).
ROW = dict(model="qwen3-8b", gpu="h100-sxm", tp=1, weights="bf16", kv="bf16", input=233, output=221,
           engine="vllm", engine_version="0.11.0", metric="ttft_ms", value=50.0, source="x", as_of="2025-11-01")


def _row(**kw: object) -> Measurement:
    return Measurement(**{**ROW, **kw})


def test_drifting_closed_loop_is_closed_with_spread_lengths() -> None:
    modes, spread = np.array([0, 1, 1, 2]), np.array([True, True, False, True])
    assert drifting_closed_loop(modes, spread).tolist() == [False, True, False, False]


@pytest.mark.parametrize("clients", [4, 8])
def test_sharegpt_closed_loop_ttft_matches_the_replay(clients: int) -> None:
    # With ShareGPT's spread lengths the clients drift apart and prompts meet a short prefill queue: the
    # analytical TTFT (open-loop M/D/1 wait at the saturated rate) is within 25 % of the simulator's replay of
    # the same 400 requests (the analytical prompt pays a whole decode step beside its prefill, the replay's
    # mixed step reads the weights once), where the lockstep reading of the same row is 50-85 % above the
    # replay. With fixed lengths the clients stay in lockstep: each prompt waits for about half of its wave's
    # prefills, more than the drifting reading gives.
    tables = Tables()
    sharegpt = _row(batch=clients, mode="closed", dataset="sharegpt", requests=400)
    fixed = _row(batch=clients, mode="closed", requests=400)
    analytical, replayed = predict(sharegpt, tables), predict_simulated(sharegpt, tables)
    assert analytical == pytest.approx(replayed, rel=0.25)
    assert predict(fixed, tables) > 1.3 * analytical


def test_drifting_tpot_carries_every_other_clients_prefill_once() -> None:
    # TPOT = t_step + (b − 1) · t_prefill,replica / (O − 1) when the clients drift apart (each other client's
    # prompt lands once in a request's decode), (b − 1)/2 in lockstep waves: checked against the step model's
    # own t_step and t_prefill at b = 8.
    tables = Tables()
    b, o = 8, ROW["output"]
    case = prepare(_row(batch=b, mode="closed", dataset="sharegpt", metric="tpot_ms"), tables)
    t_step = float(decode_step_s(case.shape, np.array([float(b)]))[0][0])
    t_pre = float(prefill_s(case.shape, None, float(ROW["input"]), spread=True))
    drift = predict(_row(batch=b, mode="closed", dataset="sharegpt", metric="tpot_ms"), tables)
    lockstep = predict(_row(batch=b, mode="closed", metric="tpot_ms"), tables)
    assert drift == pytest.approx((t_step + (b - 1) * t_pre / (o - 1)) * 1e3, rel=1e-6)
    assert lockstep == pytest.approx((t_step + (b - 1) / 2 * t_pre / (o - 1)) * 1e3, rel=1e-6)


def test_one_request_per_client_is_a_burst() -> None:
    # gpustack's 1,000 prompts at --max-concurrency 1000: every client sends one request, all at t = 0, as the
    # simulator replays it. The analytical model reads it as the static burst of 1,000 (requests beyond the
    # running slots drain in waves: half the steady closed loop's wait for a slot), not as a steady loop. (A
    # served burst keeps the server's CUDA-graph capture limit, an offline static row has none: within 2 %.)
    tables = Tables()
    burst = _row(batch=1000, mode="closed", requests=1000)
    assert load_mode(burst) == "static" and clients_of(burst) == 1000
    assert predict(burst, tables) == pytest.approx(predict(_row(batch=1000, mode="static"), tables), rel=0.02)
    steady = _row(batch=1000, mode="closed", requests=8000)
    assert load_mode(steady) == "closed"
    assert predict(burst, tables) < predict(steady, tables)
    # Fewer requests than clients: only the requests are ever in flight (Vultr's 400 prompts at 1,024 clients).
    short = _row(batch=1024, mode="closed", requests=400)
    assert clients_of(short) == 400
    assert predict(short, tables) == pytest.approx(predict(_row(batch=400, mode="static"), tables), rel=0.02)
