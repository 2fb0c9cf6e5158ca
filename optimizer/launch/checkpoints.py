"""Which checkpoint serves a (model, weight format, engine): the table ``models/checkpoints.csv``.

Each row names a published checkpoint (a Hugging Face repo id, plus the file for GGUF), the engines
that load it, the ``--quantization`` value to pass (empty: the engine reads the method from the
checkpoint's config) and its kind:

- ``release``: the model's own BF16 weights;
- ``native``: the model's own release already carries a quantisation (DeepSeek-V3/R1 block FP8,
  gpt-oss MXFP4); such models are planned at that format unless the workload lists formats;
- ``published``: a quantised release by the model's maker or a well-known quantiser;
- ``online``: the BF16 release quantised by the engine while loading (vLLM/SGLang ``--quantization fp8``).

A catalog model without rows falls back to rules (``release_rules``): its catalog ``hf_repo`` at the format
its config declares, else BF16, and online FP8 on vLLM and SGLang. A workload's ``checkpoint:`` (a repo id
or a local path) overrides the table; a model given by a config path uses that, or its config's
``_name_or_path``.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Literal

from gpuplan.models.catalog import Model
from gpuplan.optimizer.errors import InputError
from pydantic import BaseModel, Field

from gpuplan.rows import Sourced, validate_row
from gpuplan.safeio import read_csv_dicts, read_json

REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
GGUF_FORMATS = ("q8_0", "q4_0", "q4_k_m")
CONFIG_FORMATS = {"fp8": "fp8", "mxfp4": "mxfp4"}  # quantization_config.quant_method → weight format
ONLINE_FP8_ENGINES = ("vllm", "sglang")  # quantise BF16 weights to FP8 while loading (--quantization fp8)
QUANTISE_WITH = {
    "fp8": "TensorRT Model Optimizer (hf_ptq.py --qformat fp8) or llm-compressor (FP8_DYNAMIC)",
    "nvfp4": "TensorRT Model Optimizer (hf_ptq.py --qformat nvfp4)",
    "mxfp4": "TensorRT Model Optimizer (--qformat mxfp4) or AMD Quark",
    "awq": "llm-compressor (AWQModifier, W4A16 group 128) or AutoAWQ",
    "gptq": "llm-compressor (GPTQModifier, W4A16 group 128) or GPTQModel",
    "q8_0": "llama.cpp convert_hf_to_gguf.py, then llama-quantize … Q8_0",
    "q4_0": "llama.cpp convert_hf_to_gguf.py, then llama-quantize … Q4_0",
    "q4_k_m": "llama.cpp convert_hf_to_gguf.py, then llama-quantize … Q4_K_M",
}


class Checkpoint(Sourced):
    """A row of the checkpoint table, or a checkpoint the rules derive from a catalog row (dated like that row)."""

    model: str
    weights: str
    engines: tuple[str, ...]
    checkpoint: str  # repo id or local path
    file: str | None = None  # GGUF file inside the repo
    quantization: str | None = None  # value of the engine's --quantization, None: read from the checkpoint
    kind: Literal["release", "native", "published", "online"]
    gated: bool  # the launch passes HF_TOKEN: Meta and Mistral releases (and their derivatives) ask for a licence
    attention_16bit: bool = False  # the checkpoint keeps its attention matrices in 16 bits (read by models/catalog.py)
    fp8_weight_block: str | None = Field(default=None, pattern=r"^\d+x\d+$")  # FP8 scale block (models/catalog.py)


def _package_csv() -> Path:
    """The table next to the installed ``gpuplan.models`` package (editable or wheel install)."""
    import gpuplan.models

    return Path(gpuplan.models.__file__).with_name("checkpoints.csv")


@cache
def load_checkpoints(path: Path | None = None) -> tuple[Checkpoint, ...]:
    """Every row of the checkpoint table; errors name the file, row and column."""
    path = path or _package_csv()
    out = []
    for line, row in enumerate(read_csv_dicts(path)[1], start=2):
        cells: dict[str, object] = {k: v for k, v in row.items() if k and (v or "").strip()}
        if "engines" in cells:
            cells["engines"] = tuple(str(cells["engines"]).split(";"))
        cells["gated"] = row.get("gated") == "yes"
        cells["attention_16bit"] = row.get("attention_16bit") == "yes"
        out.append(validate_row(Checkpoint, path, line, cells, InputError))
    return tuple(out)


def _config(m: Model) -> dict:
    try:
        data = read_json(m.config_path, non_finite=True)  # the user's config.json: bounded, regular file
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def config_format(m: Model) -> str | None:
    """The weight format the model's config.json declares (``quantization_config.quant_method``: fp8, mxfp4)."""
    q = _config(m).get("quantization_config")
    method = q.get("quant_method") if isinstance(q, dict) else None
    return CONFIG_FORMATS.get(method) if isinstance(method, str) else None


def native_formats(m: Model) -> list[str]:
    """Weight formats the model's own release carries (DeepSeek fp8, gpt-oss mxfp4, or any catalog config with
    a quantization_config); empty for BF16 releases."""
    rows = {c.weights for c in load_checkpoints() if c.model == m.id and c.kind == "native"}
    declared = config_format(m)
    return sorted(rows | ({declared} if declared else set()))


def release_rules(m: Model, weights: str, engine: str) -> list[Checkpoint]:
    """Checkpoints for catalog models without a table row: the catalog's ``hf_repo`` is the model's release,
    at the format its config declares (else BF16); vLLM and SGLang quantise a BF16 release to FP8 on load."""
    if not m.hf_repo or engine == "llama.cpp":
        return []
    declared = config_format(m)
    common = {"model": m.id, "weights": weights, "engines": (engine,), "checkpoint": m.hf_repo, "gated": True,
              "source": m.source, "as_of": m.as_of}
    if weights == (declared or "bf16") or (weights == "fp16" and declared is None):
        return [Checkpoint(**common, kind="native" if declared else "release")]
    if weights == "fp8" and declared is None and engine in ONLINE_FP8_ENGINES:
        return [Checkpoint(**common, kind="online", quantization="fp8")]
    return []


MAX_CHECKPOINT_CHARS = 4096  # PATH_MAX on Linux


def check_override(value: str) -> str:
    """A workload's ``checkpoint:``: a Hugging Face repo id ``org/name`` or an existing local path. A path that
    starts with '-' is refused (an engine's command line would read it as an option: write ./-name), and so is
    one the system cannot look up (too long, a NUL); messages show at most 80 characters of the value."""
    shown = f"'{value[:80]}'" + (f" ({len(value):,} characters)" if len(value) > 80 else "")
    if REPO_ID.fullmatch(value):
        return value
    if value.startswith("-"):
        raise InputError(f"{shown} starts with '-', which the engine's command line would read as an option "
                         "(write a local path as ./-name)")
    if len(value) > MAX_CHECKPOINT_CHARS:
        raise InputError(f"{shown} is longer than a path can be ({MAX_CHECKPOINT_CHARS:,} characters)")
    try:
        exists = Path(value).exists()
    except (OSError, ValueError) as err:
        raise InputError(f"{shown} is not a usable path ({getattr(err, 'strerror', None) or err})") from None
    if exists:
        return value
    raise InputError(f"{shown} is neither a repo id (org/name) nor an existing path")


def _config_repo(m: Model) -> str | None:
    """``_name_or_path`` of a config-path model, when it names a repo."""
    name = _config(m).get("_name_or_path")
    return name if isinstance(name, str) and REPO_ID.fullmatch(name) else None


class Resolved(BaseModel):
    """A checkpoint to launch, or the one line saying why there is none."""

    checkpoint: Checkpoint | None
    missing: str | None = None


def resolve_checkpoint(m: Model, weights: str, engine: str, override: str | None = None) -> Resolved:
    """The table row for (model, format, engine), preferring published and native over online
    quantisation; the override or a config-path model's own repo when given."""
    if override is None and m.hf_repo is None:
        override = _config_repo(m)
    if override is not None:
        return Resolved(checkpoint=Checkpoint(
            model=m.id, weights=weights, engines=(engine,), checkpoint=override, kind="published", gated=True,
            source="workload checkpoint:" if m.hf_repo or override != _config_repo(m) else "config _name_or_path",
            as_of="1970-01-01"))
    rows = [c for c in load_checkpoints() if c.model == m.id and c.weights == weights and engine in c.engines]
    rows.sort(key=lambda c: (c.kind == "online", c.checkpoint))
    rows = rows or release_rules(m, weights, engine)
    if rows:
        return Resolved(checkpoint=rows[0])
    gguf = weights in GGUF_FORMATS
    how = QUANTISE_WITH.get(weights)
    if engine == "llama.cpp" and not gguf:
        hint = f"llama.cpp serves GGUF files: plan with {', '.join(GGUF_FORMATS)} (or another engine)"
    elif engine != "llama.cpp" and gguf:
        hint = f"{weights} is a GGUF format: plan it with engine llama.cpp"
    elif how:
        hint = f"quantise it first with {how} and set the workload's checkpoint: to the result"
    else:
        hint = f"{weights} is a sizing format without a serving checkpoint: plan with awq, gptq or fp8 instead"
    return Resolved(checkpoint=None, missing=f"no published {weights} checkpoint of {m.id} for {engine} "
                                            f"(models/checkpoints.csv): {hint}")
