"""Candidate generation uses perf()'s step model and considers expert parallelism (EP) for MoE models."""

from __future__ import annotations

import pytest
from gpuplan.models.catalog import resolve
from gpuplan.optimizer.planning.candidate_gen import generate, layouts
from gpuplan.optimizer.planning.workload import Constraints, Workload
from gpuplan.optimizer.serving.deployment import max_batch_in_memory, perf
from gpuplan.optimizer.serving.layout import make_layout
from gpuplan.optimizer.tables import DEFAULT as TABLES

R1 = dict(name="r1", model="deepseek-r1", input_tokens=1000, output_tokens=1000, max_context=16384, rate_rps=20,
          slo={"ttft_ms": 3000, "tpot_ms": 50})
H200 = Constraints(gpus=["h200"])


@pytest.fixture(scope="module")
def r1_candidates() -> list:
    return generate(Workload(**R1), H200, TABLES).candidates


def test_candidate_latencies_equal_perf(r1_candidates: list) -> None:
    """Each candidate's TPOT and TTFT are perf()'s for the same deployment at the planning utilisation (to the
    ms): the planner and `gpuplan perf` share one step model, per-request time and TTFT prefill included."""
    assert r1_candidates
    for c in r1_candidates:
        r = perf(c.model, c.gpu, c.weights, c.kv, c.tp, 1000, 1000, c.batch, c.engine, utilization=H200.utilization,
                 ep=c.ep)
        assert abs(r.tpot_ms - c.tpot_ms) < 1e-3 and abs(r.ttft_ms - c.ttft_ms) < 1e-3, c.id


def test_moe_gets_ep_candidates_and_r1_plans_cheaper_with_them(r1_candidates: list) -> None:
    """DeepSeek-R1 (256 routed experts) on 8 × H200: the EP 8 operating point serves more req/s than TP 8 on the
    same GPUs (its MLA cache is not replicated 8 times), so TP 8 is pruned as dominated and the plan uses EP."""
    from gpuplan.optimizer.planning.planner import build_plan
    from gpuplan.optimizer.planning.points import Spec, best_points
    from gpuplan.optimizer.planning.workload import Fleet

    w, g = Workload(**R1), TABLES.gpus.get("h200")
    specs = [Spec(g, "fp8", "bf16", 8), Spec(g, "fp8", "bf16", 8, ep=8)]
    (tp8, _), (ep8, _) = best_points(resolve("deepseek-r1"), w, specs, TABLES, H200.utilization)
    assert tp8 is not None and ep8 is not None and ep8.ep == 8 and tp8.ep == 1
    assert ep8.capacity_req_s > 1.5 * tp8.capacity_req_s and ep8.batch > tp8.batch
    ids = [c.id for c in r1_candidates]
    assert any(i.endswith("/fp8-bf16/tp8-ep8") for i in ids) and not any(i.endswith("/fp8-bf16/tp8") for i in ids)
    report = build_plan(Fleet(workloads=[w], constraints=H200), TABLES)
    (d,) = report.workloads[0].deployments
    assert d.ep == 8 and "--enable-expert-parallel" in d.launch


def test_dense_models_get_no_ep() -> None:
    """Llama 3.1 70B has no experts: every (tp, ep) shape has ep 1, and no candidate carries EP."""
    assert all(ep == 1 for _, ep in layouts(resolve("llama-3.1-70b")))
    w = Workload(name="d", model="llama-3.1-70b", input_tokens=1000, output_tokens=200, max_context=8192,
                 rate_rps=5, slo={"ttft_ms": 2000, "tpot_ms": 50})
    cands = generate(w, H200, TABLES).candidates
    assert cands and all(c.ep == 1 for c in cands)


def test_ep_only_where_it_divides_the_experts() -> None:
    """Mixtral 8x7B has 8 experts: EP 2, 4, 8 but not 16; DeepSeek-R1's 256 experts take every power of two."""
    assert {tp for tp, ep in layouts(resolve("mixtral-8x7b")) if ep > 1} == {2, 4, 8}
    assert {tp for tp, ep in layouts(resolve("deepseek-r1")) if ep > 1} == {2, 4, 8, 16, 32, 64}


def test_ep_holds_more_sequences_per_gpu_than_tp() -> None:
    """DeepSeek-R1 FP8 weights, BF16 KV, 8 × H200 (140.4 GiB in the GPU table), vLLM cap 0.9 and 1 GiB runtime.
    MLA caches 61 layers × (512 + 64) × 2 B = 70,272 B per token, so a 2,000-token sequence is 0.1309 GiB,
    and TP keeps that latent on all 8 GPUs while DP attention keeps it on one.
    TP 8: (126.36 − 78.4 GiB weights − 1) / 0.1309 ≈ 358 sequences (less the activation peak).
    EP 8: (126.36 − 94.0 GiB: dense weights unsplit − 1) / 0.1309 ≈ 240 per GPU × 8 ≈ 1,917."""
    m, g = resolve("deepseek-r1"), TABLES.gpus.get("h200")
    wfmt, kvfmt = TABLES.formats.weight("fp8"), TABLES.formats.kv_format("bf16")
    cal = TABLES.calibration.lookup("vllm", g.id, g.vendor)
    tp = max_batch_in_memory(m, g, wfmt, kvfmt, 8, 2000, cal, make_layout(m.arch, 8))
    ep = max_batch_in_memory(m, g, wfmt, kvfmt, 8, 2000, cal, make_layout(m.arch, 8, 8))
    assert 330 <= tp <= 358
    assert 1800 <= ep <= 1917
    assert ep > 5 * tp


def test_ep_candidate_launches_vllm_with_dp_attention(r1_candidates: list) -> None:
    """The EP 8 replica runs in vLLM as 8 data-parallel attention ranks of TP 1 with experts spread over all 8
    (--enable-expert-parallel), each rank scheduling ⌈batch / 8⌉ sequences; every flag is in the flag table."""
    import shlex

    from gpuplan.optimizer.launch.commands import plan_launch
    from gpuplan.optimizer.launch.engines import command_lines, validate_argv

    c = next(c for c in r1_candidates if c.ep == 8 and c.engine == "vllm")
    a = plan_launch(Workload(**R1), c, TABLES, 1, c.ep).args
    (argv,) = command_lines(a)
    line = shlex.join(argv)
    assert "--tensor-parallel-size 1 --data-parallel-size 8 --enable-expert-parallel" in line
    assert f"--max-num-seqs {-(-c.batch // 8)}" in line and validate_argv(argv) == "vllm"


def test_ep_replica_on_sglang_uses_attention_dp() -> None:
    """SGLang 0.5.23 runs DP attention as --attn-dp-size inside the TP group (its --enable-dp-attention has no CLI
    any more) and splits --max-running-requests over the ranks itself, so the replica's batch is passed whole."""
    from gpuplan.optimizer.launch.checkpoints import resolve_checkpoint
    from gpuplan.optimizer.launch.engines import EngineArgs, command_lines, validate_argv

    ck = resolve_checkpoint(resolve("deepseek-r1"), "fp8", "sglang").checkpoint
    a = EngineArgs(engine="sglang", checkpoint=ck, kv="bf16", tp=8, ep=8, attn_dp=8, max_seqs=210,
                   max_model_len=16384, kv_pool_tokens=16384, memory_fraction=0.9, served_name="deepseek-r1")
    (argv,) = command_lines(a)
    for flag, value in (("--tp-size", "8"), ("--ep-size", "8"), ("--attn-dp-size", "8"),
                        ("--max-running-requests", "210")):
        assert argv[argv.index(flag) + 1] == value
    assert validate_argv(argv) == "sglang"
    assert "--attn-dp-size" not in command_lines(a.model_copy(update={"attn_dp": 1}))[0]


def test_ep_replica_on_trtllm_enables_attention_dp() -> None:
    """TensorRT-LLM has no CLI flag for attention DP: the LLM API options YAML sets enable_attention_dp (llm_args.py,
    default False; examples/serve/deepseek_r1_reasoning_parser.sh pairs it with --tp_size 8 --ep_size 8). Each of
    the 8 ranks schedules its own requests, so --max_batch_size is ⌈210 / 8⌉ = 27 per rank. Attention DP over a
    part of the TP group cannot be expressed."""
    from gpuplan.optimizer.launch.checkpoints import resolve_checkpoint
    from gpuplan.optimizer.launch.engines import EngineArgs, Unsupported, command_lines, trtllm_options

    ck = resolve_checkpoint(resolve("deepseek-r1"), "fp8", "trtllm").checkpoint
    a = EngineArgs(engine="trtllm", checkpoint=ck, kv="fp8", tp=8, ep=8, attn_dp=8, max_seqs=210,
                   max_model_len=16384, kv_pool_tokens=16384, memory_fraction=0.9, served_name="deepseek-r1")
    (argv,) = command_lines(a)
    for flag, value in (("--tp_size", "8"), ("--ep_size", "8"), ("--max_batch_size", "27")):
        assert argv[argv.index(flag) + 1] == value
    assert trtllm_options(a) == {"kv_cache_config": {"dtype": "fp8"}, "enable_attention_dp": True}
    tp_attention = a.model_copy(update={"attn_dp": 1})
    assert trtllm_options(tp_attention) == {"kv_cache_config": {"dtype": "fp8"}}
    (argv,) = command_lines(tp_attention)
    assert argv[argv.index("--max_batch_size") + 1] == "210"
    with pytest.raises(Unsupported, match="all 8 ranks or none"):
        trtllm_options(a.model_copy(update={"attn_dp": 4}))
