"""Engine command lines built only from the CLI tables ``engine_flags.csv`` and ``engine_values.csv``.

Every flag is looked up by a key (``tensor_parallel``, ``max_seqs``, …) in the engine's row of the flag
table, which records the engine version and the source file it was read from; a value outside the
row's allowed choices is refused. ``validate_argv`` checks any command line against the same table.

What the engine is told agrees with the memory model the plan used: the KV dtype is the planned KV
format (mapped through ``engine_values.csv``), the maximum sequences are the planned batch, the
maximum model length is the workload's ``max_context``, the memory fraction is the calibration
row's ``mem_util`` (the cap the memory model applied), and llama.cpp's context pool holds the
tokens the plan reserved: max(batch × (input + output), max_context) in one unified KV pool.
"""

from __future__ import annotations

import re
import shlex
from functools import cache
from pathlib import Path

import yaml
from gpuplan.optimizer.launch.checkpoints import Checkpoint
from gpuplan.optimizer.launch.proxy import backend_port, start_lines
from pydantic import BaseModel

from gpuplan.rows import Sourced
from gpuplan.safeio import read_csv_dicts

FLAGS_CSV = Path(__file__).with_name("engine_flags.csv")
VALUES_CSV = Path(__file__).with_name("engine_values.csv")
PORT = 8000
DP_ENGINES = ("vllm", "sglang")  # engines with a data-parallel flag: several replicas in one process group


class Flag(Sourced):
    engine: str
    version: str
    key: str
    flag: str
    kind: str  # program | positional | int | float | str | path | choice | switch | yaml
    allowed: tuple[str, ...]


class EngineValue(Sourced):
    """How one engine spells a plan's value (``plan_value``) of a flag (``key``): ``engine_value``."""

    engine: str
    key: str
    plan_value: str
    engine_value: str


class Unsupported(ValueError):
    """The engine has no flag or value for what the plan needs (reported as one line, not a command)."""


@cache
def flag_table() -> dict[tuple[str, str], Flag]:
    return {(r["engine"], r["key"]): Flag(**{**r, "allowed": tuple(a for a in r["allowed"].split(";") if a)})
            for r in read_csv_dicts(FLAGS_CSV)[1]}


@cache
def value_table() -> dict[tuple[str, str, str], str]:
    rows = (EngineValue(**r) for r in read_csv_dicts(VALUES_CSV)[1])
    return {(v.engine, v.key, v.plan_value): v.engine_value for v in rows}


def engine_version(engine: str) -> str:
    """What the engine's flags were read from, e.g. 'vLLM 0.33.0 (wheel vllm-0.33.0, commit g4ba787ec9)'."""
    return flag_table()[(engine, "program")].version


def engine_release(engine: str) -> str:
    """The release number the commands were checked against ('0.33.0'), or '' for a commit."""
    found = re.match(r"\S+ (\d+\.\d+\.\d+)\b", engine_version(engine))
    return found.group(1) if found else ""


def _check_value(f: Flag, value: str) -> None:
    if f.kind == "int" and not (value.isdigit() and int(value) > 0):
        raise Unsupported(f"{f.engine} {f.flag} needs a positive integer, got '{value}'")
    if f.kind == "float":
        try:
            x = float(value)
        except ValueError:
            raise Unsupported(f"{f.engine} {f.flag} needs a number, got '{value}'") from None
        if not 0 < x <= 1:
            raise Unsupported(f"{f.engine} {f.flag} must be in (0, 1], got {value}")
    if f.kind in ("choice", "yaml") and value not in f.allowed:
        raise Unsupported(f"{f.engine} {f.flag} has no value '{value}' (choices: {', '.join(f.allowed)})")


def arg(engine: str, key: str, value: object = None) -> list[str]:
    """``[flag, value]`` (or ``[flag]`` for a switch) from the flag table, value checked."""
    f = flag_table().get((engine, key))
    if f is None:
        raise Unsupported(f"{engine} has no flag for {key} in {FLAGS_CSV.name}")
    if f.kind == "switch":
        return [f.flag]
    text = f"{value:g}" if isinstance(value, float) else str(value)
    _check_value(f, text)
    return [text] if f.kind == "positional" else [f.flag, text]


def mapped(engine: str, key: str, plan_value: str) -> str:
    v = value_table().get((engine, key, plan_value))
    if v is None:
        raise Unsupported(f"{engine_version(engine).split(' (')[0]} has no {plan_value} KV cache; "
                          f"plan this workload with another kv format or engine")
    return v


class EngineArgs(BaseModel):
    """What one engine process group needs: a replica shape (``tp`` GPUs) run ``dp`` times on one instance."""

    engine: str
    checkpoint: Checkpoint
    kv: str
    tp: int
    dp: int = 1
    ep: int = 1
    attn_dp: int = 1  # data-parallel attention ranks inside one replica (DeepSeek-style EP: attn_dp = ep)
    max_seqs: int
    max_model_len: int
    kv_pool_tokens: int
    memory_fraction: float
    served_name: str
    port: int = PORT
    first_gpu: int | None = None  # None: the process group sees every GPU of the instance
    visible_var: str = "CUDA_VISIBLE_DEVICES"  # HIP_VISIBLE_DEVICES on ROCm


def _dp_server(a: EngineArgs) -> list[str]:
    """vLLM and SGLang: the same keys, spelled by each engine's rows (the model is vLLM's positional
    argument and SGLang's --model-path; vLLM's expert parallelism is a switch sized TP × DP, SGLang's
    --ep-size a degree). Data-parallel attention (``attn_dp``): vLLM runs attn_dp ranks of TP tp / attn_dp
    (--max-num-seqs is per rank), SGLang keeps TP tp and adds --attn-dp-size."""
    e = a.engine
    tp, dp, seqs = a.tp, a.dp, a.max_seqs
    if e == "vllm" and a.attn_dp > 1:  # vLLM's DP attention: DP ranks of tp / attn_dp GPUs, EP over all of them,
        tp, dp, seqs = tp // a.attn_dp, dp * a.attn_dp, -(-seqs // a.attn_dp)  # each rank scheduling its share
    out = flag_table()[(e, "program")].flag.split()
    out += arg(e, "model", a.checkpoint.checkpoint) + arg(e, "tensor_parallel", tp)
    if dp > 1:
        out += arg(e, "data_parallel", dp)
    if a.ep > 1:
        out += arg(e, "expert_parallel", a.ep)
    if e == "sglang" and a.attn_dp > 1:  # SGLang: attention DP inside the TP group; max running requests is the
        out += arg(e, "attention_data_parallel", a.attn_dp)  # replica's total, split over the ranks by SGLang
    out += arg(e, "max_model_len", a.max_model_len) + arg(e, "max_seqs", seqs)
    out += arg(e, "memory_fraction", a.memory_fraction)
    if a.checkpoint.quantization:
        out += arg(e, "quantization", a.checkpoint.quantization)
    kv = mapped(e, "kv_cache_dtype", a.kv)
    if kv != "auto":
        out += arg(e, "kv_cache_dtype", kv)
    return out + arg(e, "served_model_name", a.served_name) + arg(e, "host", "0.0.0.0") + arg(e, "port", a.port)


def _trtllm(a: EngineArgs, port: int) -> list[str]:
    """trtllm-serve of one replica. With attention DP every one of the tp ranks schedules its own requests,
    so --max_batch_size is the replica's sequences per rank (⌈max_seqs / attn_dp⌉)."""
    e = "trtllm"
    out = [flag_table()[(e, "program")].flag, *arg(e, "model", a.checkpoint.checkpoint)]
    out += arg(e, "tensor_parallel", a.tp)
    if a.ep > 1:
        out += arg(e, "expert_parallel", a.ep)
    seqs = -(-a.max_seqs // a.attn_dp)
    out += arg(e, "max_seqs", seqs) + arg(e, "max_model_len", a.max_model_len)
    out += arg(e, "memory_fraction", a.memory_fraction)
    if trtllm_options(a):
        out += arg(e, "extra_options", options_file(a))
    return out + arg(e, "host", "0.0.0.0") + arg(e, "port", port)


def options_file(a: EngineArgs) -> str:
    """The LLM API options YAML of the process group on ``a.port`` (relative to the working directory)."""
    return f"gpuplan-llm-api-options-{a.port}.yaml"


def trtllm_options(a: EngineArgs) -> dict[str, object]:
    """The LLM API options YAML trtllm-serve reads: the KV dtype and attention data parallelism have no
    CLI flag. TensorRT-LLM's attention DP spans all tp ranks (attention_dp_size = tp_size), so a plan with
    1 < attn_dp < tp cannot be launched on it."""
    if a.engine != "trtllm":
        return {}
    opts: dict[str, object] = {}
    kv = mapped("trtllm", "kv_cache_dtype", a.kv)
    if kv != "auto":
        arg("trtllm", "kv_cache_dtype", kv)
        opts["kv_cache_config"] = {"dtype": kv}
    if a.attn_dp > 1:
        if a.attn_dp != a.tp:
            raise Unsupported(f"TensorRT-LLM runs attention data-parallel over all {a.tp} ranks or none, not "
                              f"{a.attn_dp}; plan this workload with another engine or layout")
        arg("trtllm", "attention_data_parallel", "true")
        opts["enable_attention_dp"] = True
    return opts


def _llama_cpp(a: EngineArgs, port: int) -> list[str]:
    e = "llama.cpp"
    c = a.checkpoint
    out = [flag_table()[(e, "program")].flag]
    if c.file:
        out += arg(e, "hf_repo", c.checkpoint) + arg(e, "hf_file", c.file)
    else:
        out += arg(e, "model_file", c.checkpoint)
    out += arg(e, "context", a.kv_pool_tokens) + arg(e, "max_seqs", a.max_seqs) + arg(e, "kv_unified")
    out += arg(e, "gpu_layers", "all")
    cache_type = mapped(e, "cache_type", a.kv)
    if cache_type != "f16":
        out += arg(e, "cache_type_k", cache_type) + arg(e, "cache_type_v", cache_type)
    return out + arg(e, "served_model_name", a.served_name) + arg(e, "host", "0.0.0.0") + arg(e, "port", port)


def _gpu_list(first: int, n: int) -> str:
    return ",".join(str(i) for i in range(first, first + n))


def proxied(a: EngineArgs) -> bool:
    """Several processes of an engine without data parallelism: they sit behind one nginx port."""
    return a.engine not in DP_ENGINES and a.dp > 1


def command_lines(a: EngineArgs) -> list[list[str]]:
    """One argv per engine process. vLLM and SGLang run ``dp`` replicas in one process group
    (``--data-parallel-size`` / ``--dp-size``); TensorRT-LLM and llama.cpp have no data-parallel flag, so
    each replica is its own process on its own GPUs and backend port behind nginx on ``port``
    (``proxy.py``). A process group limited to some GPUs of the instance (``first_gpu``) is started
    under ``env CUDA_VISIBLE_DEVICES=…``."""
    if a.engine in DP_ENGINES:
        argv = _dp_server(a)
        if a.first_gpu is None:
            return [argv]
        return [["env", f"{a.visible_var}={_gpu_list(a.first_gpu, a.tp * a.dp)}", *argv]]
    build = _trtllm if a.engine == "trtllm" else _llama_cpp
    if a.dp == 1 and a.first_gpu is None:
        return [build(a, a.port)]
    first = a.first_gpu or 0
    ports = [backend_port(a.port, i) for i in range(a.dp)] if proxied(a) else [a.port]
    return [["env", f"{a.visible_var}={_gpu_list(first + i * a.tp, a.tp)}", *build(a, ports[i])]
            for i in range(a.dp)]


def shell_lines(a: EngineArgs, background: bool = False) -> list[str]:
    """Shell lines that start the process group, every argument quoted with shlex: nginx first when the
    processes share a port; several processes (or ``background``) run in the background."""
    lines = start_lines(a.port, [(backend_port(a.port, i), 1) for i in range(a.dp)]) if proxied(a) else []
    opts = trtllm_options(a)
    if opts:  # written next to the command that reads it (a quoted heredoc: no expansion)
        lines.insert(0, f"cat > {options_file(a)} <<'GPUPLAN_EOF'\n{yaml.safe_dump(opts, sort_keys=True)}GPUPLAN_EOF")
    procs = [shlex.join(argv) for argv in command_lines(a)]
    if len(procs) == 1 and not background:
        return [*lines, procs[0]]
    return [*lines, *(f"{p} &" for p in procs), *([] if background else ["wait"])]


def shell(a: EngineArgs) -> str:
    return "\n".join(shell_lines(a))


def program_of(argv: list[str]) -> tuple[str, list[str]]:
    """(engine, the arguments after the program) for a command line, skipping an ``env VAR=…`` prefix."""
    i = 0
    if argv and argv[0] == "env":
        i = 1
        while i < len(argv) and "=" in argv[i]:
            i += 1
    for (engine, key), f in flag_table().items():
        words = f.flag.split()
        if key == "program" and argv[i:i + len(words)] == words:
            return engine, argv[i + len(words):]
    raise Unsupported(f"unknown engine program in: {shlex.join(argv)}")


def validate_argv(argv: list[str]) -> str:
    """Check every flag and value of a command line against the flag table; returns the engine."""
    engine, rest = program_of(argv)
    by_flag = {f.flag: f for (e, _), f in flag_table().items() if e == engine and f.kind not in ("program", "yaml")}
    positional = getattr(flag_table().get((engine, "model")), "kind", None) == "positional"
    i = 0
    while i < len(rest):
        tok = rest[i]
        if not tok.startswith("-"):
            if not positional or i != 0:
                raise Unsupported(f"{engine}: unexpected argument '{tok}'")
            i += 1
            continue
        f = by_flag.get(tok)
        if f is None:
            raise Unsupported(f"{engine}: flag {tok} is not in {FLAGS_CSV.name}")
        if f.kind == "switch":
            i += 1
            continue
        if i + 1 >= len(rest):
            raise Unsupported(f"{engine}: flag {tok} has no value")
        _check_value(f, rest[i + 1])
        i += 2
    return engine
