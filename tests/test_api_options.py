"""The Python API checks its options like the CLI (an unknown keyword, a value outside its choices, a
non-finite number → a ValueError naming it) and every docstring example runs."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest
from gpuplan.optimizer import api

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("call", "needle"), [
    (lambda: api.plan("examples/steady.yaml", budget=5), "unknown option 'budget'"),
    (lambda: api.plan("examples/steady.yaml", tier="cheap"), "option 'tier'"),
    (lambda: api.plan("examples/steady.yaml", objective="cheapest"), "option 'objective'"),
    (lambda: api.plan("examples/steady.yaml", time_limit_s=float("nan")), "option 'time_limit_s'"),
    (lambda: api.candidates("examples/steady.yaml", max_gpus={"h100-sxm": True}), "max_gpus"),
    (lambda: api.memory("llama-3.1-8b", mode="pretrain"), "option 'mode'"),
    (lambda: api.memory("llama-3.1-8b", budget=1), "unknown option 'budget'"),
    (lambda: api.memory("llama-3.1-8b", lora_rank=0), "option 'lora_rank'"),
    (lambda: api.perf("llama-3.1-8b", "h100-sxm", tp=0), "option 'tp'"),
    (lambda: api.perf("llama-3.1-8b", "h100-sxm", utilization=1.0), "option 'utilization'"),
    (lambda: api.sweep("examples/steady.yaml", {"rate_rps": [1]}, workers=0), "option 'workers'"),
    (lambda: api.procure("examples/steady.yaml", months=0), "option 'months'"),
    (lambda: api.fleet(42), "workloads must be"),
    (lambda: api.simulate("llama-3.1-8b", "h100-sxm", concurrency=4, mem_fraction=1.5), "option 'mem_fraction'"),
    (lambda: api.simulate("llama-3.1-8b", "h100-sxm", concurrency=4, engine_version="x.y"), "x.y"),
])
def test_bad_option_is_a_value_error_naming_it(call, needle: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    with pytest.raises(ValueError, match=needle.replace("(", r"\(")):
        call()


def test_docstring_examples_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    result = doctest.testmod(api, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 14 and result.failed == 0
    for name in api.__all__:
        assert ">>>" in (getattr(api, name).__doc__ or ""), f"{name} has no example"
