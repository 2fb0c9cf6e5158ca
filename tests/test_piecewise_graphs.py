"""Piecewise CUDA graphs (graphs.csv ``piecewise``): vLLM V1 before 0.11 captured its decode graphs between the
attention ops and launched every attention op eagerly (vllm-project/vllm pull request 25444 made
FULL_AND_PIECEWISE the default in 0.11.0). The host's launches cost time only where they exceed the GPU's work:
a step takes max(GPU time, launches + host time) (terms.piecewise_launch_s)."""

from __future__ import annotations

import numpy as np
import pytest
from gpuplan.models.catalog import resolve
from gpuplan.optimizer.serving import terms
from gpuplan.optimizer.serving.calibration import CalibrationRow
from gpuplan.optimizer.serving.graphs import capture_limit, piecewise_attention
from gpuplan.optimizer.serving.roofline import STEP_TERMS, step_terms_s
from gpuplan.optimizer.serving.shape import make_shape
from gpuplan.optimizer.tables import Tables
from hypothesis import given, settings
from hypothesis import strategies as st

T = Tables()
CAL = CalibrationRow(engine="vllm", gpu="*", eta_mem=0.75, eta_cmp=0.55, eta_prefill=0.55, t_fixed_ms=0.3,
                     comm_latency_us=2.0, runtime_overhead_gib=1.0, mem_util=0.9, seq_us=8.0, layer_us=20.0,
                     moe_layer_us=40.0, mla_layer_us=25.0, eager_floor_scale=6.0, source="test", as_of="2026-01-01")


@pytest.mark.parametrize(("engine", "version", "expected"), [
    ("vllm", "0.9.2", True),  # V1 before pull request 25444: PIECEWISE by default
    ("vllm", "0.8.0", True),
    ("vllm", "0.10.2", True),
    ("vllm", "0.11.0", False),  # FULL_AND_PIECEWISE: pure decode batches captured whole
    ("vllm", "0.7.3", False),  # V0 captured whole decode graphs
    ("vllm", None, False),  # the current release
    ("sglang", "0.4.9", False),
    ("trtllm", "0.21.0rc2", False),
])
def test_which_builds_run_piecewise_graphs(engine: str, version: str | None, expected: bool) -> None:
    assert piecewise_attention(engine, version) is expected


def test_piecewise_rows_keep_vllm_v1_capture_sizes() -> None:
    # The version row that carries the flag captures up to 512, as the current V1 row does.
    assert capture_limit("vllm", T.gpus.get("h100-sxm"), 8, "0.9.2") == 512


def _shape(version: str, batch_context: float = 1000.0):
    arch = resolve("deepseek-r1").arch
    g = T.gpus.get("h100-sxm")
    s, _ = make_shape(arch, g, 8, T.formats.weight("awq"), T.formats.kv_format("bf16"), batch_context, CAL,
                      version=version)
    return s, arch


def test_batch1_mla_step_is_the_hosts_launch_time() -> None:
    # DeepSeek-R1 (61 MLA layers) at batch 1: the eager attention ops take 6 · 61 · (20 / 5 + 25) µs = 10.6 ms to
    # launch, more than the graphed step's GPU time, so the step is that plus the host's per-step and
    # per-sequence time (0.3 ms + 8 µs).
    s, arch = _shape("0.9.2")
    t = step_terms_s(s, 1.0)
    launch = 6.0 * arch.layers * (20.0 / 5 + 25.0) * 1e-6
    assert launch == pytest.approx(float(terms.piecewise_launch_s(61, 61, 20.0, 25.0, 6.0)))
    assert float(t["step"]) == pytest.approx(launch + 0.3e-3 + 8e-6, rel=1e-9)
    full, _ = _shape("0.11.0")
    assert float(step_terms_s(full, 1.0)["host_bound"]) == 0.0
    assert float(t["step"]) > float(step_terms_s(full, 1.0)["step"])


def test_launches_hide_behind_the_gpu_at_load() -> None:
    # At 256 sequences the GPU's step is far longer than the launches: no host-bound excess.
    s, _ = _shape("0.9.2")
    full, _ = _shape("0.11.0")
    assert float(step_terms_s(s, 256.0)["host_bound"]) == 0.0
    assert float(step_terms_s(s, 256.0)["step"]) == pytest.approx(float(step_terms_s(full, 256.0)["step"]))


def test_prompt_steps_are_eager_already() -> None:
    # A step with prompt tokens pays the eager floors whole; the piecewise launches add nothing to it.
    s, _ = _shape("0.9.2")
    assert float(step_terms_s(s, 1.0, 512.0)["host_bound"]) == 0.0


@settings(max_examples=30, deadline=None)
@given(st.floats(1.0, 512.0))
def test_piecewise_step_is_the_max_of_gpu_and_host(batch: float) -> None:
    s, _ = _shape("0.9.2")
    t = step_terms_s(s, batch)
    graphed = sum(float(t[k]) for k in STEP_TERMS[:-1])
    launch = float(terms.piecewise_launch_s(s.layers, s.mla_layers, s.layer_us, s.mla_layer_us, s.eager_floor_scale))
    assert float(t["step"]) == pytest.approx(max(graphed, launch + float(t["host"])), rel=1e-9)
    assert np.isfinite(float(t["step"]))
