"""Launch artefacts: checkpoints, engine commands checked against the engines' CLI tables, SkyPilot and
Kubernetes specs that reproduce the plan."""

from __future__ import annotations

import csv
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from gpuplan.models.catalog import resolve
from gpuplan.optimizer.launch.accelerators import ACCELERATORS_CSV
from gpuplan.optimizer.launch.checkpoints import load_checkpoints, native_formats, resolve_checkpoint
from gpuplan.optimizer.launch.engines import EngineArgs, Unsupported, command_lines, flag_table, validate_argv
from gpuplan.optimizer.launch.names import slug
from gpuplan.optimizer.launch.packing import pack
from gpuplan.optimizer.tables import Tables
from hypothesis import given
from hypothesis import strategies as st

ROOT = Path(__file__).parents[1]
EXAMPLE = ROOT / "examples" / "fleet.yaml"
OFFERS = ROOT / "pricing" / "offers.csv"
KV = {"vllm": ["bf16", "fp8", "int8", "int4"], "sglang": ["bf16", "fp8"], "trtllm": ["bf16", "fp8"],
      "llama.cpp": ["fp16", "int8", "fp8", "int4"]}


def _argvs(line: str) -> list[list[str]]:
    """Engine command lines of a launch string or a run script: heredocs (options YAML, nginx configuration),
    the nginx start, background '&' and 'wait' left out."""
    out, heredoc = [], False
    for ln in line.splitlines():
        ln = ln.strip()
        if heredoc or ln.startswith("cat > "):
            heredoc = ln != "GPUPLAN_EOF"
            continue
        words = shlex.split(ln.removesuffix("&"))
        if words and words[0] not in ("wait", "nginx"):
            out.append(words)
    return out


def _write(path: Path, fleet: dict) -> Path:
    path.write_text(yaml.safe_dump(fleet))
    return path


def _chat_8b(name: str = "chat", **constraints: object) -> dict:
    """One Llama 3.1 8B BF16 workload at 5 req/s (TTFT 1 s, TPOT 40 ms) with the given constraints."""
    return {"workloads": [{"name": name, "model": "llama-3.1-8b", "weights": ["bf16"], "kv": ["bf16"],
                           "input_tokens": 1000, "output_tokens": 200, "rate_rps": 5,
                           "slo": {"ttft_ms": 1000, "tpot_ms": 40}}], "constraints": constraints}


def test_every_checkpoint_row_gives_commands_made_of_table_flags() -> None:
    """Every (checkpoint row, engine, KV format, TP/DP/EP) yields argv whose every flag and value is in the
    engine's flag table; and a flag outside the table is refused (the check can fail)."""
    checked = 0
    for ck in load_checkpoints():
        for engine in ck.engines:
            for kv in KV[engine]:
                for tp, dp, ep in ((1, 1, 1), (2, 4, 8)):
                    a = EngineArgs(engine=engine, checkpoint=ck, kv=kv, tp=tp, dp=dp, ep=ep, max_seqs=64,
                                   max_model_len=8192, kv_pool_tokens=65536, memory_fraction=0.9,
                                   served_name="m", first_gpu=0 if dp > 1 else None)
                    for argv in command_lines(a):
                        assert validate_argv(argv) == engine
                        checked += 1
    assert checked > 500
    with pytest.raises(Unsupported, match=r"not in engine_flags\.csv"):
        validate_argv(["vllm", "serve", "x", "--tensor-parallel", "2"])
    with pytest.raises(Unsupported, match="no value 'awq-int4'"):
        validate_argv(["vllm", "serve", "x", "--quantization", "awq-int4"])
    with pytest.raises(Unsupported, match="no value 'fp8'"):  # SGLang spells it fp8_e4m3
        validate_argv(["python", "-m", "sglang.launch_server", "--kv-cache-dtype", "fp8"])


def test_checkpoint_table_rows_are_sourced_and_quantization_flags_exist() -> None:
    rows = list(csv.DictReader((ROOT / "models" / "checkpoints.csv").open()))
    assert len(rows) == len(load_checkpoints()) > 60
    for r in rows:
        assert r["source"] and len(r["as_of"]) == 10
        if r["quantization"]:
            for engine in r["engines"].split(";"):
                assert r["quantization"] in flag_table()[(engine, "quantization")].allowed
        if r["file"]:  # GGUF files are served by llama.cpp from the repo and file named here
            assert r["engines"] == "llama.cpp" and r["file"].endswith(".gguf")


def test_the_checkpoint_follows_the_format() -> None:
    """The issue's failing case: an AWQ plan of Mixtral must launch an AWQ checkpoint, not the BF16 repo with
    --quantization awq; FP8 of Llama-3.1-70B is the published FP8 release; a model without a published FP8 is
    quantised on load (vLLM online fp8); a format with no checkpoint says so in one line."""
    mixtral, llama70 = resolve("mixtral-8x7b"), resolve("llama-3.1-70b")
    awq = resolve_checkpoint(mixtral, "awq", "vllm").checkpoint
    assert awq is not None and awq.checkpoint == "TheBloke/Mixtral-8x7B-Instruct-v0.1-AWQ" and awq.quantization is None
    fp8 = resolve_checkpoint(llama70, "fp8", "vllm").checkpoint
    assert fp8 is not None and fp8.checkpoint == "RedHatAI/Meta-Llama-3.1-70B-Instruct-FP8"
    assert resolve_checkpoint(llama70, "fp8", "trtllm").checkpoint.checkpoint == "nvidia/Llama-3.1-70B-Instruct-FP8"
    online = resolve_checkpoint(mixtral, "fp8", "vllm").checkpoint
    assert online.checkpoint == "mistralai/Mixtral-8x7B-Instruct-v0.1" and online.quantization == "fp8"
    none = resolve_checkpoint(llama70, "nvfp4", "vllm")
    assert none.checkpoint is None and none.missing.startswith("no published nvfp4 checkpoint of llama-3.1-70b")
    assert "TensorRT Model Optimizer" in none.missing and "\n" not in none.missing
    assert "sizing format" in resolve_checkpoint(llama70, "int4", "vllm").missing
    assert "plan it with engine llama.cpp" in resolve_checkpoint(llama70, "q4_k_m", "vllm").missing
    assert "llama.cpp serves GGUF files" in resolve_checkpoint(llama70, "fp8", "llama.cpp").missing
    gguf = resolve_checkpoint(resolve("llama-3.1-8b"), "q4_k_m", "llama.cpp").checkpoint
    assert gguf.file == "Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf"
    assert resolve_checkpoint(llama70, "awq", "vllm", "me/my-awq").checkpoint.checkpoint == "me/my-awq"


def test_native_quantised_releases_are_planned_at_their_format(gpuplan, tmp_path: Path) -> None:
    """gpt-oss ships MXFP4 experts, DeepSeek block FP8: without a weights list they are planned at that format."""
    assert native_formats(resolve("gpt-oss-20b")) == ["mxfp4"] and native_formats(resolve("deepseek-v3")) == ["fp8"]
    assert native_formats(resolve("llama-3.1-8b")) == []
    assert native_formats(resolve("minimax-m2.5")) == ["fp8"]  # no table row: its config's quantization_config
    fleet = {"workloads": [{"name": "oss", "model": "gpt-oss-20b", "input_tokens": 1000, "output_tokens": 200,
                            "rate_rps": 2, "slo": {"ttft_ms": 2000, "tpot_ms": 50}}],
             "constraints": {"providers": ["aws"], "gpus": ["h100-sxm"]}}
    path = _write(tmp_path / "w.yaml", fleet)
    r = gpuplan("plan", str(path), "--format", "json")
    assert r.code == 0, r.err
    d = r.json()["workloads"][0]["deployments"][0]
    assert d["weights"] == "mxfp4" and d["checkpoint"] == "openai/gpt-oss-20b"
    assert "--quantization" not in d["launch"]  # the engine reads mxfp4 from the checkpoint's config


def _plan(gpuplan, tmp_path: Path, fleet: dict, *extra: str) -> dict:
    path = _write(tmp_path / "w.yaml", fleet)
    r = gpuplan("plan", str(path), "--format", "json", *extra)
    assert r.code == 0, r.err
    return r.json()


def _flag(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv else None


def test_example_plan_commands_agree_with_the_memory_model(gpuplan) -> None:
    """max seqs = planned batch, max model len = max_context, memory fraction = the calibration cap, KV dtype =
    planned KV format; every flag is in vLLM 0.33.0's table."""
    data = gpuplan("plan", str(EXAMPLE), "--format", "json").json()
    fleet = yaml.safe_load(EXAMPLE.read_text())
    tables = Tables()
    for w, p in zip(fleet["workloads"], data["workloads"], strict=True):
        for d in p["deployments"]:
            (argv,) = _argvs(d["launch"])
            assert validate_argv(argv) == d["engine"] == "vllm"
            assert argv[2] == d["checkpoint"]
            assert int(_flag(argv, "--max-num-seqs")) == d["batch"]
            assert int(_flag(argv, "--max-model-len")) == w["max_context"] == d["max_model_len"]
            gpu = tables.gpus.get(d["gpu"])
            assert float(_flag(argv, "--gpu-memory-utilization")) == tables.calibration.lookup(
                "vllm", gpu.id, gpu.vendor).mem_util
            assert _flag(argv, "--kv-cache-dtype") == ("fp8" if d["kv"] == "fp8" else None)
            assert "--quantization" not in argv or d["weights"] == "fp8"


def test_replicas_packed_on_one_instance_run_with_engine_data_parallelism(gpuplan, tmp_path: Path) -> None:
    """Llama 3.1 8B on AWS H200, sold only as 8-GPU p5e instances: the TP1 replicas of one instance run as one
    vLLM with --data-parallel-size = replicas per instance (8, or fewer when the plan has fewer)."""
    fleet = {"workloads": [{"name": "chat", "model": "llama-3.1-8b", "weights": ["bf16"], "kv": ["bf16"],
                            "input_tokens": 1000, "output_tokens": 200, "max_context": 4096, "rate_rps": 60,
                            "slo": {"ttft_ms": 1000, "tpot_ms": 25}}],
             "constraints": {"providers": ["aws"], "gpus": ["h200"]}}
    data = _plan(gpuplan, tmp_path, fleet)
    (d,) = data["workloads"][0]["deployments"]
    assert d["gpus_per_instance"] == 8 and d["tp"] == 1 and d["replicas"] > 1
    (argv,) = _argvs(d["launch"])
    assert int(_flag(argv, "--data-parallel-size")) == min(8, d["replicas"])
    fleet["workloads"][0]["engine"] = "sglang"
    d = _plan(gpuplan, tmp_path, fleet)["workloads"][0]["deployments"][0]
    (argv,) = _argvs(d["launch"])
    assert argv[:3] == ["python", "-m", "sglang.launch_server"]
    assert int(_flag(argv, "--dp-size")) == min(8, d["replicas"]) and validate_argv(argv) == "sglang"


def test_requested_engine_is_the_engine_launched(gpuplan, tmp_path: Path) -> None:
    fleet = {"workloads": [{"name": "chat", "model": "llama-3.1-70b", "weights": ["fp8"], "kv": ["fp8"],
                            "input_tokens": 1000, "output_tokens": 200, "max_context": 8192, "rate_rps": 2,
                            "slo": {"ttft_ms": 2000, "tpot_ms": 50}, "engine": "trtllm"}],
             "constraints": {"providers": ["aws"], "gpus": ["h100-sxm"]}}
    d = _plan(gpuplan, tmp_path, fleet)["workloads"][0]["deployments"][0]
    argvs = _argvs(d["launch"])
    assert all(a[0] in ("trtllm-serve", "env") for a in argvs) and d["engine"] == "trtllm"
    assert d["checkpoint"] == "nvidia/Llama-3.1-70B-Instruct-FP8"
    for argv in argvs:
        assert validate_argv(argv) == "trtllm"
        assert _flag(argv, "--extra_llm_api_options")  # fp8 KV: kv_cache_config.dtype in the options YAML


def _sky_check(tmp_path: Path, files: list) -> list[dict]:
    env = {**os.environ, "HOME": str(tmp_path / "home")}
    r = subprocess.run([sys.executable, str(ROOT / "tests" / "skypilot_check.py"), str(tmp_path / "home"),
                        str(OFFERS), str(ACCELERATORS_CSV), *map(str, files)],
                       capture_output=True, text=True, env=env, timeout=240)
    assert r.returncode == 0, r.stderr[-2000:]
    return [x for x in map(json.loads, r.stdout.splitlines()) if "canonical" not in x]


def test_kubernetes_accelerator_names_are_what_skypilot_reads_from_the_labels(tmp_path: Path) -> None:
    """For owned servers (infra: k8s) the accelerator name must be the one SkyPilot 0.14.1 derives from the node's
    GPU product label (GFDLabelFormatter): checked for every NVIDIA row of accelerators.csv."""
    env = {**os.environ, "HOME": str(tmp_path / "home")}
    r = subprocess.run([sys.executable, str(ROOT / "tests" / "skypilot_check.py"), str(tmp_path / "home"),
                        str(OFFERS), str(ACCELERATORS_CSV)], capture_output=True, text=True, env=env, timeout=240)
    assert r.returncode == 0, r.stderr[-2000:]
    info = json.loads(r.stdout.splitlines()[0])
    rows = [row for row in csv.DictReader(ACCELERATORS_CSV.open()) if row["k8s_resource"] == "nvidia.com/gpu"]
    assert len(rows) >= 20
    for row in rows:
        assert info["from_label"][row["gpu"]] == row["skypilot_k8s"], row


def _plan_folder(gpuplan, tmp_path: Path, workloads: Path, name: str, *extra: str) -> Path:
    out = tmp_path / name
    r = gpuplan("plan", str(workloads), "-o", str(out), *extra)
    assert r.code == 0, r.err
    return out


def test_skypilot_files_load_in_skypilot_and_cost_what_the_plan_costs(gpuplan, tmp_path: Path) -> None:
    """Every YAML goes through sky.Task.from_yaml_config (SkyPilot 0.14.1's schema, SkyServe service spec,
    resources against a catalog built from our offer table); the instances they ask for, priced by SkyPilot
    from that catalog, sum to the plan's $/h, on demand and spot (the issue's spot example, which the old
    whole-instance-per-replica tasks launched at almost four times its planned $/h). Owned hardware is
    SkyPilot's Kubernetes infrastructure (infra: k8s), checked against SkyPilot's task schema (resolving it
    needs a cluster)."""
    tiers = {t: _plan_folder(gpuplan, tmp_path, EXAMPLE, t, "--tier", t) for t in ("on_demand", "spot")}
    owned = _chat_8b(tier="owned")
    path = _write(tmp_path / "owned.yaml", owned)
    owned_files = sorted(_plan_folder(gpuplan, tmp_path, path, "owned").glob("*.sky.yaml"))
    files = {t: sorted(out.glob("*.sky.yaml")) for t, out in tiers.items()}
    assert all(files.values()) and owned_files
    loaded = _sky_check(tmp_path, [*files["on_demand"], *files["spot"], *(f"schema:{f}" for f in owned_files)])
    by_file = {(Path(x["path"]).parent.name, x["file"]): x for x in loaded}
    for tier, out in tiers.items():
        plan = json.loads((out / "plan.json").read_text())
        items = [by_file[(tier, f.name)] for f in files[tier]]
        total = 0.0
        for item in items:
            assert len(set(item["costs"])) == 1  # every any_of choice costs the same
            assert item["spot"] == [tier == "spot"]
            assert item["accelerators"] != ["None"]  # SkyPilot read the GPU from the instance type
            total += (item["replicas"] or 1) * item["costs"][0]
        assert total == pytest.approx(plan["total_usd_per_hour"], abs=0.01)
        assert sum(i["count"] for i in plan["instances"]) == sum(item["replicas"] or 1 for item in items)
    for f in owned_files:
        doc = yaml.safe_load(f.read_text())
        assert doc["resources"]["infra"] == "k8s" and "cloud" not in doc["resources"]
        assert by_file[("owned", f.name)]["schema"] == "ok"


def test_k8s_manifests_deserialise_into_kubernetes_models(gpuplan, tmp_path: Path) -> None:
    """Each deployment: a V1Deployment (replicas = plan replicas, GPUs = TP, node selector on the GPU product
    label, readiness on /health) and a V1Service, as the kubernetes client's models read them."""
    from kubernetes.client import ApiClient

    out = tmp_path / "k8s"
    r = gpuplan("plan", str(EXAMPLE), "-o", str(out), "--target", "k8s")
    assert r.code == 0, r.err
    plan = json.loads((out / "plan.json").read_text())
    deps = {d["candidate"]: d for w in plan["workloads"] for d in w["deployments"]}
    api = ApiClient()
    with (ROOT / "optimizer" / "launch" / "accelerators.csv").open(encoding="utf-8") as fh:
        labels = {row["gpu"]: row["k8s_label_value"] for row in csv.DictReader(fh)}
    files = sorted(out.glob("*.k8s.yaml"))
    assert len(files) == len(deps)
    replicas = 0
    for f in files:
        docs = list(yaml.safe_load_all(f.read_text()))
        dep = api._ApiClient__deserialize(docs[0], "V1Deployment")
        svc = api._ApiClient__deserialize(docs[1], "V1Service")
        pod = dep.spec.template.spec
        c = pod.containers[0]
        assert validate_argv(c.command + c.args) == "vllm"
        tp = int(c.args[c.args.index("--tensor-parallel-size") + 1])
        assert c.resources.limits["nvidia.com/gpu"] == str(tp)
        # GPU Feature Discovery product labels of the plan's GPUs (optimizer/launch/accelerators.csv)
        gpu = next(d["gpu"] for d in deps.values() if f.name.startswith(f"{d['candidate'].split('/')[0]}-{d['gpu']}-"))
        assert pod.node_selector == {"nvidia.com/gpu.product": labels[gpu]}
        assert c.readiness_probe.http_get.path == "/health"
        assert svc.spec.selector == dep.spec.selector.match_labels
        replicas += dep.spec.replicas
    assert replicas == sum(d["replicas"] for d in deps.values())


HOSTILE = "chat: x `id` $(rm -rf ~) 'q' \"d\" #c"


def test_hostile_workload_names_are_escaped_everywhere(gpuplan, tmp_path: Path) -> None:
    """A name with ': ', backticks, $( and quotes reaches no generated file verbatim: files, service and
    Kubernetes names are slugs; YAML loads to exactly the keys written; commands parse back with shlex."""
    fleet = _chat_8b(HOSTILE, providers=["aws"])
    path = _write(tmp_path / "w.yaml", fleet)
    for target in ("skypilot", "k8s"):
        out = tmp_path / target
        r = gpuplan("plan", str(path), "-o", str(out), "--target", target)
        assert r.code == 0, r.err
        specs = [f for f in out.iterdir() if f.suffix == ".yaml"]
        assert specs
        for f in specs:
            text = f.read_text()
            assert "$(" not in text and "`" not in text and HOSTILE not in text
            for doc in yaml.safe_load_all(text):
                assert set(doc) <= {"name", "resources", "envs", "setup", "run", "service", "apiVersion", "kind",
                                    "metadata", "spec", "data"}
                name = doc.get("name") or doc["metadata"]["name"]
                assert name.startswith(slug(HOSTILE))
                if "run" in doc:
                    for argv in _argvs(doc["run"]):
                        validate_argv(argv)
    bad = {**fleet, "workloads": [{**fleet["workloads"][0], "name": "chat\nrun: rm -rf /"}]}
    path.write_text(yaml.safe_dump(bad))
    r = gpuplan("plan", str(path), "-o", str(tmp_path / "bad"))
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1 and "printable" in r.err
    assert not (tmp_path / "bad").exists()


@given(st.text(min_size=1, max_size=60))
def test_slugs_are_safe_identifiers(name: str) -> None:
    s = slug(name)
    assert s[0].isalpha() and all(ch.isdigit() or ("a" <= ch <= "z") or ch == "-" for ch in s)
    assert len(s) <= 47 and not s.endswith("-")


@pytest.mark.parametrize(("field", "value", "message"), [
    ("engine", "tensorrt", "unknown engine 'tensorrt'"),
    ("checkpoint", "not a repo", "'not a repo' is neither a repo id"),
])
def test_bad_engine_or_checkpoint_exits_2_in_one_line(gpuplan, tmp_path: Path, field: str, value: str,
                                                      message: str) -> None:
    fleet = {"workloads": [{"name": "chat", "model": "llama-3.1-8b", "input_tokens": 100, "output_tokens": 10,
                            "rate_rps": 1, "slo": {"ttft_ms": 1000, "tpot_ms": 50}, field: value}]}
    path = _write(tmp_path / "w.yaml", fleet)
    r = gpuplan("plan", str(path))
    assert r.code == 2 and message in r.err and len(r.err.strip().splitlines()) == 1


def test_unknown_target_exits_2_in_one_line(gpuplan, tmp_path: Path) -> None:
    r = gpuplan("plan", str(EXAMPLE), "-o", str(tmp_path / "out"), "--target", "nomad")
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1 and "'nomad' is not one of" in r.err
    assert not (tmp_path / "out").exists()


def test_config_path_models_launch_their_own_repo(tmp_path: Path) -> None:
    cfg = tmp_path / "my-llama" / "config.json"
    cfg.parent.mkdir()
    cfg.write_text((ROOT / "models" / "configs" / "llama-2-7b.json").read_text())
    got = resolve_checkpoint(resolve(str(cfg)), "bf16", "vllm").checkpoint
    assert got is not None and got.checkpoint == "meta-llama/Llama-2-7b-hf"  # its _name_or_path, not 'my-llama'


class _D:
    def __init__(self, cid: str, tp: int, replicas: int, gpi: int) -> None:
        self.candidate, self.tp, self.replicas, self.gpus_per_instance = cid, tp, replicas, gpi
        self.provider, self.offer, self.region, self.gpu = "p", "o", None, "h100-sxm"


@given(st.lists(st.tuples(st.sampled_from([1, 2, 4, 8]), st.integers(1, 9)), min_size=1, max_size=4))
def test_packing_uses_the_fewest_instances_for_power_of_two_shapes(shapes: list[tuple[int, int]]) -> None:
    """First-fit decreasing on 8-GPU instances with power-of-two TPs uses ceil(GPUs / 8) instances, and every
    planned replica is placed (a node holding one deployment may run more: its spare GPUs)."""
    deps = [("w", _D(f"c{i}", tp, k, 8)) for i, (tp, k) in enumerate(shapes)]
    nodes = pack(deps)
    gpus = sum(tp * k for tp, k in shapes)
    assert len(nodes) == -(-gpus // 8)
    for _, d in deps:
        placed = sum(s.dp for n in nodes for s in n.slots if s.candidate == d.candidate)
        assert placed >= d.replicas
    for n in nodes:
        assert sum(s.tp * s.dp for s in n.slots) <= 8


def test_daily_plans_get_deployments_and_specs_per_tier_block(gpuplan, tmp_path: Path) -> None:
    """A daily plan lists deployments per tier block (committed base, on-demand and spot additions) with launch
    commands from the flag tables; -o writes a folder whose SkyServe files SkyPilot parses; each hour, the
    replicas a block runs on an offer fit the instances the plan holds in that tier (peak for hourly tiers)."""
    profile = [2, 2, 2, 2, 2, 3, 6, 12, 20, 24, 26, 28, 28, 26, 24, 22, 20, 18, 14, 10, 8, 6, 4, 3]
    fleet = {"workloads": [{"name": "chat", "model": "llama-3.1-8b", "weights": ["fp8"], "kv": ["fp8"],
                            "input_tokens": 1000, "output_tokens": 250, "max_context": 16384,
                            "rate_profile": profile, "slo": {"ttft_ms": 800, "tpot_ms": 30}}],
             "constraints": {"providers": ["aws"], "gpus": ["l40s"], "committed_tier": "reserved_1y",
                             "spot_max_share": 0.3}}
    path = _write(tmp_path / "daily.yaml", fleet)
    out = _plan_folder(gpuplan, tmp_path, path, "daily")
    plan = json.loads((out / "plan.json").read_text())
    deps = plan["deployments"]
    assert {d["block"] for d in deps} >= {"reserved_1y", "on_demand"}
    count = {(i["pricing"], i["provider"], i["offer"]): i["count"] for i in plan["instances"]}
    for d in deps:
        for argv in _argvs(d["launch"]):
            assert validate_argv(argv) == "vllm"
        assert max(d["replicas_by_hour"]) == d["replicas"]
    for block in {d["block"] for d in deps}:
        for h in range(24):
            gpus = sum(d["replicas_by_hour"][h] * d["tp"] for d in deps if d["block"] == block)
            cap = sum(n * 1 for (t, _, _), n in count.items() if t == block)  # single-GPU l40s instances
            assert gpus <= cap
    for h in range(24):  # every hour's demand is covered by the replicas the blocks run
        assert sum(d["replicas_by_hour"][h] * d["capacity_req_s"] for d in deps) >= profile[h] - 1e-6
    files = sorted(out.glob("*.sky.yaml"))
    loaded = _sky_check(tmp_path, files)
    assert len(loaded) == len(files) and {f.name.split("-chat")[0] for f in files} <= {"reserved-1y", "on-demand",
                                                                                         "spot"}
    for item in loaded:
        assert item["replicas"] is not None  # every block is a SkyServe service


def test_trtllm_kv_dtype_reaches_the_engine_through_its_options_yaml(tmp_path: Path) -> None:
    """TensorRT-LLM has no KV dtype flag: the manifests mount a ConfigMap with kv_cache_config.dtype and pass
    --extra_llm_api_options; the SkyPilot run script writes the same YAML before starting trtllm-serve."""
    from gpuplan.optimizer.launch.k8s import manifests
    from gpuplan.optimizer.launch.skypilot import run_script
    from kubernetes.client import ApiClient

    ck = resolve_checkpoint(resolve("llama-3.1-70b"), "fp8", "trtllm").checkpoint
    a = EngineArgs(engine="trtllm", checkpoint=ck, kv="fp8", tp=2, max_seqs=32, max_model_len=8192,
                   kv_pool_tokens=8192, memory_fraction=0.9, served_name="llama-3.1-70b")
    dep, _svc, cm = manifests("chat", "chat", a, 3, "h100-sxm", "NVIDIA")
    api = ApiClient()
    pod = api._ApiClient__deserialize(dep, "V1Deployment").spec.template.spec
    options = api._ApiClient__deserialize(cm, "V1ConfigMap").data["gpuplan-llm-api-options-8000.yaml"]
    assert yaml.safe_load(options) == {"kv_cache_config": {"dtype": "fp8"}}
    c = pod.containers[0]
    assert validate_argv(c.command + c.args) == "trtllm" and c.working_dir == "/config"
    assert c.resources.limits["nvidia.com/gpu"] == "2"
    script, ports = run_script([a.model_copy(update={"dp": 2})], "NVIDIA")
    assert ports == 1 and "kv_cache_config:" in script
    argvs = _argvs(script)
    assert [x[1] for x in argvs] == ["CUDA_VISIBLE_DEVICES=0,1", "CUDA_VISIBLE_DEVICES=2,3"]
    backends = [_flag(x, "--port") for x in argvs]
    assert backends == ["20000", "20001"] and all(validate_argv(x) == "trtllm" for x in argvs)
    # nginx listens on 8000 and spreads requests over exactly those two processes
    assert "listen 8000;" in script and all(f"server 127.0.0.1:{p};" in script for p in backends)


@pytest.mark.parametrize(("engine", "expected"), [
    ("vllm", ["--enable-expert-parallel"]), ("sglang", ["--ep-size", "8"]), ("trtllm", ["--ep_size", "8"])])
def test_expert_parallel_flags_when_the_plan_chose_ep(engine: str, expected: list[str]) -> None:
    ck = resolve_checkpoint(resolve("deepseek-v3"), "fp8", engine).checkpoint
    a = EngineArgs(engine=engine, checkpoint=ck, kv="bf16", tp=8, ep=8, max_seqs=64, max_model_len=8192,
                   kv_pool_tokens=8192, memory_fraction=0.9, served_name="deepseek-v3")
    (argv,) = command_lines(a)
    i = argv.index(expected[0])
    assert argv[i:i + len(expected)] == expected and validate_argv(argv) == engine
    assert "--enable-expert-parallel" not in command_lines(a.model_copy(update={"ep": 1}))[0]


def test_trtllm_memory_fraction_gives_the_kv_budget_the_plan_counted() -> None:
    """TensorRT-LLM's fraction applies to the memory left after loading, vLLM's cap to the whole GPU: the
    fraction passed to trtllm-serve makes its KV pool the memory model's KV budget (Llama 3.1 70B FP8, TP2 H100)."""
    from gpuplan.models.breakdown import fit, inference_breakdown, kv_replication
    from gpuplan.optimizer.launch.commands import trtllm_kv_fraction

    t = Tables()
    m, g = resolve("llama-3.1-70b"), t.gpus.get("h100-sxm")
    wf, kf = t.formats.weight("fp8"), t.formats.kv_format("fp8")
    cal = t.calibration.lookup("trtllm", g.id, g.vendor)
    f = trtllm_kv_fraction(m, g.memory_bytes, wf, kf, 2, 8192, cal)
    b = inference_breakdown(m.arch, wf, kf, 8192, 1, 2, None, cal.runtime_overhead_gib)
    planned = fit(b, m.arch, kf, 8192, g.memory_bytes, cal.mem_util).kv_budget_bytes * kv_replication(m.arch, 2)
    free_after_load = 2 * g.memory_bytes - (b.total_bytes - b.kv_cache_bytes)
    assert 0.5 < f < cal.mem_util
    assert f * free_after_load == pytest.approx(planned, rel=2e-3)


def test_two_deployments_never_share_a_file_name() -> None:
    """Same workload, GPU and TP but another weight format (or offer): the second name carries the format, a
    third a counter, so no spec overwrites another."""
    from types import SimpleNamespace

    from gpuplan.optimizer.launch.specs import _name

    w = SimpleNamespace(name="chat")
    taken: dict[str, str] = {}
    names = []
    for weights in ("bf16", "fp8", "fp8"):
        n = _name("", w, SimpleNamespace(gpu="h100-sxm", tp=1, weights=weights), taken)
        taken[f"{n}.sky.yaml"] = ""
        names.append(n)
    assert names == ["chat-h100-sxm-tp1", "chat-h100-sxm-tp1-fp8", "chat-h100-sxm-tp1-fp8-2"]
    long = _name("reserved-1y-", SimpleNamespace(name="x" * 200), SimpleNamespace(gpu="rtx-6000-ada", tp=8,
                                                                                  weights="q4_k_m"), taken)
    assert len(long) <= 63 and long.startswith("reserved-1y-x")


def test_every_catalog_model_has_a_checkpoint_at_its_release_format() -> None:
    """Rows or rules: each catalog model launches on vLLM at BF16 (or the format its release carries) and, when
    its release is BF16 or FP8, at FP8 (published, native or online); new catalog models need no table row."""
    from gpuplan.models.catalog import load_catalog

    for mid, m in load_catalog().items():
        fmt = (native_formats(m) or ["bf16"])[0]
        got = resolve_checkpoint(m, fmt, "vllm").checkpoint
        assert got is not None and got.kind in ("release", "native"), mid
        if fmt in ("bf16", "fp8"):  # gpt-oss ships MXFP4 only: no FP8 checkpoint, and none is invented
            assert resolve_checkpoint(m, "fp8", "vllm").checkpoint is not None, mid
    kimi = resolve_checkpoint(resolve("kimi-k2"), "fp8", "vllm").checkpoint
    assert kimi.checkpoint == "moonshotai/Kimi-K2-Instruct" and kimi.kind == "native" and kimi.quantization is None
    assert resolve_checkpoint(resolve("kimi-k2"), "bf16", "vllm").checkpoint is None  # its release is FP8
    super_bf16 = resolve_checkpoint(resolve("nemotron-3-super-120b-a12b"), "bf16", "vllm").checkpoint
    assert super_bf16.checkpoint.endswith("-BF16")


def test_amd_gpus_get_rocm_image_amd_resources_and_hip_device_lists() -> None:
    """MI300X: the pod requests amd.com/gpu and selects the AMD product label; SkyPilot uses the ROCm vLLM image;
    engines sharing an instance are split with HIP_VISIBLE_DEVICES."""
    from gpuplan.optimizer.launch.k8s import manifests
    from gpuplan.optimizer.launch.packing import Node, Slot
    from gpuplan.optimizer.launch.skypilot import ROCM_IMAGE, task
    from kubernetes.client import ApiClient

    ck = resolve_checkpoint(resolve("llama-3.1-70b"), "fp8", "vllm").checkpoint
    a = EngineArgs(engine="vllm", checkpoint=ck, kv="fp8", tp=4, max_seqs=64, max_model_len=8192,
                   kv_pool_tokens=8192, memory_fraction=0.9, served_name="llama-3.1-70b")
    pod = ApiClient()._ApiClient__deserialize(manifests("chat", "chat", a, 2, "mi300x", "AMD")[0],
                                              "V1Deployment").spec.template.spec
    assert pod.containers[0].resources.limits == {"amd.com/gpu": "4"}
    assert pod.node_selector == {"amd.com/gpu.product-name": "AMD_Instinct_MI300X"}
    node = Node(provider="azure", offer="Standard_ND96isr_MI300X_v5", region="eastus2", gpu="mi300x",
                gpus_per_instance=8, slots=[Slot(workload="a", candidate="a", tp=4, dp=1, first_gpu=0),
                                            Slot(workload="b", candidate="b", tp=4, dp=1, first_gpu=4)])
    doc = task("shared", node, [a, a], "on_demand", Tables().offers, "AMD", True, None)
    assert doc["resources"]["image_id"] == ROCM_IMAGE and "setup" not in doc
    assert [x[1] for x in _argvs(doc["run"])] == ["HIP_VISIBLE_DEVICES=0,1,2,3", "HIP_VISIBLE_DEVICES=4,5,6,7"]
    assert doc["resources"]["ports"] == [8000, 8001]


def test_nginx_front_lists_every_backend_once_and_ports_never_collide() -> None:
    """Backends of different listen ports never share a port; the configuration names each backend once."""
    from gpuplan.optimizer.launch.proxy import BACKENDS_PER_PORT, backend_port, nginx_config

    ports = [backend_port(listen, i) for listen in (8000, 8001, 8002) for i in range(BACKENDS_PER_PORT)]
    assert len(set(ports)) == len(ports) and max(ports) < 65536
    conf = nginx_config(8001, [(20064, 1), (20065, 1), (20066, 3)])
    assert conf.count("server 127.0.0.1:") == 3 and "listen 8001;" in conf and "proxy_buffering off;" in conf
    assert "server 127.0.0.1:20066 weight=3;" in conf
    with pytest.raises(ValueError, match="at most 64"):
        backend_port(8000, 64)


def test_one_workload_on_one_instance_is_one_endpoint_behind_nginx(gpuplan, tmp_path: Path) -> None:
    """Two deployments of one workload packed on one 8-GPU instance (TP4 × 1 and TP2 × 2) are one SkyServe
    replica: nginx on 8000 in front of the two engines (ports 8001, 8002, weighted by capacity), each on its
    own GPUs; the instance is paid once."""
    from gpuplan.optimizer.launch.specs import skypilot_files
    from gpuplan.optimizer.planning.planner import Deployment
    from gpuplan.optimizer.planning.workload import parse_fleet

    fleet = {"workloads": [{"name": "chat", "model": "llama-3.1-8b", "weights": ["bf16"], "kv": ["bf16"],
                            "input_tokens": 1000, "output_tokens": 200, "max_context": 4096, "rate_rps": 60,
                            "slo": {"ttft_ms": 1000, "tpot_ms": 25}}],
             "constraints": {"providers": ["aws"], "gpus": ["h200"]}}
    (d,) = _plan(gpuplan, tmp_path, fleet)["workloads"][0]["deployments"]
    w = parse_fleet(fleet, "test").workloads[0]
    per_replica = d["capacity_req_s"] / d["replicas"]
    d4 = Deployment(**{**d, "candidate": "chat/tp4", "tp": 4, "replicas": 1, "capacity_req_s": 3 * per_replica})
    d2 = Deployment(**{**d, "candidate": "chat/tp2", "tp": 2, "replicas": 2, "capacity_req_s": 2 * per_replica})
    files, notes = skypilot_files([(w, d4), (w, d2)], Tables(), "on_demand")
    (doc,) = [yaml.safe_load(text) for text in files.values()]
    assert doc["service"]["replicas"] == 1 and doc["resources"]["ports"] == 8000 and not notes
    run = doc["run"]
    assert "listen 8000;" in run
    assert "server 127.0.0.1:8001 weight=15;" in run and "server 127.0.0.1:8002 weight=10;" in run
    argvs = _argvs(run)
    assert [(a[1], _flag(a, "--port"), _flag(a, "--tensor-parallel-size"), _flag(a, "--data-parallel-size"))
            for a in argvs] == [("CUDA_VISIBLE_DEVICES=0,1,2,3", "8001", "4", None),
                                ("CUDA_VISIBLE_DEVICES=4,5,6,7", "8002", "2", "2")]
    assert "nginx" in doc["setup"]


def test_a_second_plan_into_a_folder_removes_the_first_plans_specs_and_nothing_else(gpuplan, tmp_path: Path) -> None:
    # Deploying a folder's *.sky.yaml after re-planning into it used to start the first plan's services too.
    folder = tmp_path / "out"
    root = Path(__file__).parents[1] / "examples"
    assert gpuplan("plan", str(root / "fleet.yaml"), "-o", str(folder)).code == 0
    first = {p.name for p in folder.glob("*.sky.yaml")}
    (folder / "mine.txt").write_text("the user's own file\n")
    assert gpuplan("plan", str(root / "steady.yaml"), "-o", str(folder)).code == 0
    second = {p.name for p in folder.glob("*.sky.yaml")}
    assert first - second, "the two plans share every spec: the test shows nothing"
    listed = (folder / "plan.files").read_text().splitlines()
    assert second <= set(listed) and {"plan.json", "plan.csv", "plan.files"} <= set(listed)
    assert {p.name for p in folder.iterdir()} == set(listed) | {"mine.txt"}
