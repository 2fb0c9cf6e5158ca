"""SGLang's state-slot / KV split for hybrid (gated-DeltaNet) models, hand-computed.

Source: sgl-project/sglang python/sglang/srt/mem_cache/kv_cache_configurator.py (_handle_max_mamba_cache,
_resolve_max_num_reqs, _calculate_mamba_ratio; MAMBA_CACHE_SIZE_MAX_RUNNING_REQUESTS_RATIO = 3,
MAMBA_CACHE_V2_ADDITIONAL_RATIO_OVERLAP = 2) and the Qwen3-Next/Qwen3.5 config's mamba_cache_per_req;
--mamba-full-memory-ratio 0.9 since pull request 11679 (2025-10-15); the default radix-cache strategy
``auto`` resolves to extra_buffer on CUDA since pull request 28151 (2026-06-19), taken as 0.5.14."""

from __future__ import annotations

import pytest
from gpuplan.models.catalog import resolve
from gpuplan.models.memory import GIB, kv_bytes_per_token_layer, state_bytes_per_sequence, tokens_held
from gpuplan.optimizer.serving import engine_capacity
from gpuplan.optimizer.serving.hybrid_state import (
    memory_ratio,
    sglang_state_split,
    slots_per_running_request,
    state_slots,
)
from gpuplan.optimizer.serving.simulation import deployment_steps
from gpuplan.optimizer.tables import Tables
from hypothesis import given, settings
from hypothesis import strategies as st

T = Tables()
# Qwen3.5-35B-A3B (config.json): 30 of 40 layers gated DeltaNet, 16 key heads and 32 value heads of 128,
# conv kernel 4, mamba_ssm_dtype float32. Per layer: conv (4 − 1) × (2·16·128 + 32·128) = 24,576 elements
# × 2 B = 49,152 B, recurrent 32 × 128 × 128 = 524,288 × 4 B = 2,097,152 B; × 30 layers = 64,389,120 B.
QWEN35_STATE_BYTES = 30 * (3 * (2 * 16 * 128 + 32 * 128) * 2 + 32 * 128 * 128 * 4)


def test_qwen35_state_per_request() -> None:
    assert QWEN35_STATE_BYTES == 64_389_120
    assert state_bytes_per_sequence(resolve("qwen3.5-35b-a3b").arch) == QWEN35_STATE_BYTES


def test_split_of_30_gib() -> None:
    # rest 30 GiB = 32,212,254,720 B; state budget = rest × 0.9 / 1.9 = 15,258,436,446 B; / 64,389,120 B =
    # 236.97 → 236 slots; KV pool = rest − 236 × 64,389,120 = 17,016,422,400 B. Running cap: 0.5.16 on an
    # NVIDIA GPU runs extra_buffer (3 + 2 slots a request): 236 // 5 = 47; 0.5.13 (no_buffer) and ROCm: 236 // 3 = 78
    s = sglang_state_split(30 * GIB, QWEN35_STATE_BYTES, "0.5.16")
    assert (s.state_slots, s.max_running, s.kv_pool_bytes) == (236, 47, 17_016_422_400)
    assert sglang_state_split(30 * GIB, QWEN35_STATE_BYTES, "0.5.13").max_running == 78
    assert sglang_state_split(30 * GIB, QWEN35_STATE_BYTES, "0.5.16", vendor="AMD").max_running == 78
    # before pull request 11679 the ratio was 0.2: 30 GiB × 0.2 / 1.2 / 64,389,120 B = 83.4 → 83 slots
    assert memory_ratio("0.5.3") == 0.2 and sglang_state_split(30 * GIB, QWEN35_STATE_BYTES, "0.5.3").state_slots == 83


def test_slots_per_running_request() -> None:
    # _calculate_mamba_ratio: 3 with the radix cache on (no_buffer), + 2 ping-pong slots for extra_buffer under
    # the overlap scheduler, the default on CUDA from pull request 28151 (taken as 0.5.14) and in the current
    # release (None); ROCm resolves auto to no_buffer (pull request 29965)
    assert [slots_per_running_request(v) for v in ("0.5.4", "0.5.13", "0.5.14", "0.5.16", None)] == [3, 3, 5, 5, 5]
    assert slots_per_running_request("0.5.16", "AMD") == 3


def test_h100_fp8_running_cap() -> None:
    """Qwen3.5-35B-A3B FP8 on one H100 under SGLang 0.5.16: the memory model's rest after weights (cap 0.835
    × 79.65 GiB − 34.2 GiB weights − activations − 1 GiB runtime ≈ 31.3 GiB) gives ⌊31.3 GiB × 0.9 / 1.9 /
    64.4 MB⌋ = 247 slots and ⌊247 / 5⌋ = 49 running requests (extra_buffer); the KV pool left (17.7 GB,
    20,480 B per token over the 10 full-attention layers) would hold 93 of 9,216 tokens, so the state slots
    bind. The docs' Qwen3.6 run on this GPU (tests/data/measured.csv) implies by Little's law 2,289 tok/s ×
    20.0 ms = 46 requests decoding on average, under --max-running-requests 512 and 0.9 of the memory."""
    m, g = resolve("qwen3.5-35b-a3b"), T.gpus.get("h100-sxm")
    wf, kf = T.formats.weight("fp8"), T.formats.kv_format("bf16")
    cal = T.calibration.lookup("sglang", g.id, g.vendor, g.arch, "0.5.16")
    cap = engine_capacity.state_running_cap(m.arch, g, wf, kf, 1, 9216, cal, "0.5.16")
    assert cap == 49
    assert engine_capacity.max_sequences(m.arch, g, wf, kf, 1, 9216, cal, None, "0.5.16") == 49
    per_token = kv_bytes_per_token_layer(m.arch, kf) * tokens_held(m.arch, 9216) / 9216
    assert per_token == 10 * 2 * 2 * 256 * 2
    tokens = engine_capacity.kv_capacity_tokens(m.arch, g, wf, kf, 1, 9216, cal, None, "0.5.16")
    assert tokens == 864_878  # 17,712,713,978 B / 20,480 B: 93.8 sequences of 9,216 tokens
    # vLLM keeps the state in its KV blocks: no slot cap
    vcal = T.calibration.lookup("vllm", g.id, g.vendor, g.arch, None)
    assert engine_capacity.state_running_cap(m.arch, g, wf, kf, 1, 9216, vcal) is None
    # the simulator runs at most the slot cap
    _, _, seqs, _ = deployment_steps(m, "h100-sxm", "fp8", "bf16", 1, "sglang", 8192, 1024, None, 9216, T,
                                     engine_version="0.5.16")
    assert seqs == 49


def test_dense_model_has_no_cap() -> None:
    m, g = resolve("llama-3.1-8b"), T.gpus.get("h100-sxm")
    cal = T.calibration.lookup("sglang", g.id, g.vendor, g.arch, None)
    assert engine_capacity.state_running_cap(m.arch, g, T.formats.weight("bf16"), T.formats.kv_format("bf16"), 1, 4096,
                                   cal) is None


@settings(max_examples=60, deadline=None)
@given(st.floats(1e6, 1e12), st.integers(1, 10**9), st.floats(0.05, 4.0))
def test_split_invariants(rest: float, state: int, ratio: float) -> None:
    """Slots never exceed the state budget, one more slot would, and the pools add back to rest."""
    s = sglang_state_split(rest, state, ratio=ratio)
    budget = rest * ratio / (1 + ratio)
    assert s.state_slots * state <= budget + 1e-6 * budget
    assert (s.state_slots + 1) * state > budget * (1 - 1e-9)
    assert s.kv_pool_bytes + s.state_slots * state == pytest.approx(rest)
    assert s.max_running == s.state_slots // 5  # the current release on an NVIDIA GPU: extra_buffer
    assert state_slots(rest, state, ratio) == s.state_slots
