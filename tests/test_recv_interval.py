"""SGLang's ``--scheduler-recv-interval`` N (python/sglang/srt/managers/scheduler_recv_skipper.py): the scheduler
polls its socket for new requests only when a counter reaches N; a decode step adds 1, any other forward (a
prompt step) 1000 and an idle loop 1, so while the engine only decodes a new request waits for the next poll,
up to N decode steps, and after a prompt step (or when idle) it polls at once. InferenceX's B200 / B300
DeepSeek-R1 recipes set N = 10 below 16 clients and 30 from 16."""

from __future__ import annotations

import pytest
from gpuplan.optimizer.cli.main import main
from gpuplan.optimizer.errors import InputError
from gpuplan.optimizer.serving.simulation import simulate
from gpuplan.optimizer.serving.simulator import SchedulerConfig, next_poll, simulate_trace
from test_simulator import toy


@pytest.mark.parametrize(("since", "every", "steps", "expected"), [
    (0, 1, 5, 5),  # polling every step: the arrival's own step
    (0, 30, 5, 30),  # a poll 30 steps after the last one
    (5, 30, 5, 25),  # 5 steps gone: the poll is 25 away
    (5, 30, 26, 55),  # the arrival misses that poll: the next, 30 later
    (29, 30, 1, 1),
])
def test_next_poll_by_hand(since: int, every: int, steps: int, expected: int) -> None:
    assert next_poll(since, every, steps) == expected


@pytest.mark.parametrize(("overlap", "every", "first_b"), [
    (False, 1, 0.022),  # received after the step 11-21 ms, prefilled 21-22 ms
    (False, 5, 0.052),  # polls after the prompt step (1 ms) and every 5 decode steps: 51 ms
    (True, 1, 0.032),  # overlap: seen one step later, prefilled 31-32 ms
    (True, 5, 0.052),  # the poll at 51 ms sees it (it arrived before the step 41-51 ms began)
])
def test_request_waits_for_the_next_poll(overlap: bool, every: int, first_b: float) -> None:
    # Prefill-first toy engine (SGLang's order): A (100 in, 200 out) arrives at 0, its prompt runs 0-1 ms, then
    # decode steps of 10 ms end at 11, 21, 31 ms ... B (100, 5) arrives at 15 ms; its prompt step takes 1 ms.
    model = toy(100_000)
    model.prefill_first, model.overlap = True, overlap
    tr = simulate_trace(model, [100, 100], [200, 5], SchedulerConfig(8, 8192, every), arrivals=[0.0, 0.015])
    assert tr.first == pytest.approx([0.001, first_b])


def test_an_idle_engine_polls_at_once() -> None:
    model = toy(100_000)
    model.prefill_first = True
    for every in (1, 10, 30):
        tr = simulate_trace(model, [100, 100], [5, 5], SchedulerConfig(8, 8192, every), arrivals=[0.0, 1.0])
        assert tr.first == pytest.approx([0.001, 1.001])


def _run(every: int, clients: int = 32):
    return simulate("deepseek-r1", "b200", "fp8", "fp8", 8, input_tokens=922, output_tokens=922, concurrency=clients,
                    requests=10 * clients, engine="sglang", range_ratio=0.111, recv_interval=every)


def test_sparser_polls_delay_first_tokens_and_batch_prompts() -> None:
    # InferenceX's B200 DeepSeek-R1 recipe at 32 clients: TTFT rises with the interval, by at most N decode
    # steps on average; prompts that waited for the same poll share one prefill step, so fewer prompt steps
    # interrupt the decodes and TPOT does not rise.
    base, ten, thirty = _run(1), _run(10), _run(30)
    assert base.ttft_ms.mean < ten.ttft_ms.mean < thirty.ttft_ms.mean
    assert thirty.tpot_ms.mean <= base.tpot_ms.mean
    assert thirty.ttft_ms.mean - base.ttft_ms.mean <= 30 * thirty.tpot_ms.mean
    assert _run(1).model_dump() == base.model_dump()  # deterministic


def test_interval_one_is_the_default() -> None:
    a = simulate("llama-3.1-8b", "h100-sxm", input_tokens=500, output_tokens=100, rate_rps=20, requests=300,
                 engine="sglang", range_ratio=0.5)
    b = simulate("llama-3.1-8b", "h100-sxm", input_tokens=500, output_tokens=100, rate_rps=20, requests=300,
                 engine="sglang", range_ratio=0.5, recv_interval=1)
    assert a.model_dump() == b.model_dump()


def test_only_sglang_has_the_interval() -> None:
    with pytest.raises(InputError, match="recv-interval"):
        simulate("llama-3.1-8b", "h100-sxm", rate_rps=1, requests=10, engine="vllm", recv_interval=10)
    with pytest.raises(InputError, match="recv-interval"):
        simulate("llama-3.1-8b", "h100-sxm", rate_rps=1, requests=10, engine="sglang", recv_interval=0)


def test_cli_flag_and_bad_values(tmp_path, capsys) -> None:
    args = ["simulate", "--model", "llama-3.1-8b", "--gpu", "h100-sxm", "--rate", "5", "--requests", "50",
            "--format", "json"]
    out = tmp_path / "r.json"
    assert main([*args, "--engine", "sglang", "--recv-interval", "10", "-o", str(out)]) == 0
    assert '"recv_interval": 10' in out.read_text(encoding="utf-8")
    assert main([*args[:-2], "--engine", "sglang", "--recv-interval", "10"]) == 0
    assert "polls every 10 decode steps" in " ".join(capsys.readouterr().out.split())  # the title may wrap
    for bad in ("0", "-3", "ten"):
        assert main([*args, "--engine", "sglang", "--recv-interval", bad]) == 2
    assert main([*args, "--engine", "vllm", "--recv-interval", "10"]) == 2
    err = capsys.readouterr().err
    assert "recv-interval" in err and "Traceback" not in err


HEADER = ("model,gpu,tp,weights,kv,input,output,batch,mode,range_ratio,engine,engine_version,recv_interval,metric,"
          "value,source,as_of\n")


def test_measured_rows_carry_the_interval_into_the_replay(tmp_path) -> None:
    from gpuplan.optimizer.serving.measurements import read_measurements
    from gpuplan.optimizer.serving.simulated_rows import replay
    from gpuplan.optimizer.tables import DEFAULT

    f = tmp_path / "m.csv"
    row = "deepseek-r1,b200,8,fp8,fp8,922,922,32,closed,0.111,sglang,0.5.12,{},ttft_ms,500,test,2026-06-01\n"
    f.write_text(HEADER + row.format(30) + row.format(""), encoding="utf-8")
    with_interval, without = read_measurements(f)
    assert with_interval.recv_interval == 30 and without.recv_interval is None
    assert replay(with_interval, DEFAULT).recv_interval == 30
    assert replay(without, DEFAULT).recv_interval == 1


def test_bad_interval_in_a_measured_file(tmp_path) -> None:
    from gpuplan.hardware.errors import InputError as DataError
    from gpuplan.optimizer.serving.measurements import read_measurements

    f = tmp_path / "m.csv"
    f.write_text(HEADER + "deepseek-r1,b200,8,fp8,fp8,922,922,32,closed,0.111,sglang,0.5.12,0,ttft_ms,500,test,"
                 "2026-06-01\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"row 2, column 'recv_interval'"):
        read_measurements(f)
