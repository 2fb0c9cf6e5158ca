"""The model catalog: Hugging Face config.json files by id and alias, or any config path."""

from __future__ import annotations

import difflib
from functools import cache
from pathlib import Path
from typing import NamedTuple

from gpuplan.models.arch import Architecture, parse_config
from gpuplan.models.errors import InputError
from gpuplan.models.params import ParamCount, count_params
from pydantic import BaseModel, ConfigDict

from gpuplan.rows import Sourced, validate_row
from gpuplan.safeio import read_csv_dicts, read_json

CATALOG_CSV = Path(__file__).with_name("catalog.csv")
CHECKPOINTS_CSV = Path(__file__).with_name("checkpoints.csv")
KEEPS_ATTENTION_16BIT = "yes"  # checkpoints.csv column attention_16bit


class Model(BaseModel):
    """A resolved model: its architecture, exact counts and provenance."""

    model_config = ConfigDict(frozen=True)

    id: str
    aliases: tuple[str, ...] = ()
    hf_repo: str | None = None
    arch: Architecture
    params: ParamCount
    official_total_params: float | None = None  # billions, as published
    official_active_params: float | None = None
    source: str
    as_of: str
    config_path: str


def read_config(path: Path) -> Architecture:
    """Parse one config.json; errors name the file and the field."""
    return parse_config(read_json(path, non_finite=True), str(path))


def _float(cell: str | None) -> float | None:
    return float(cell) if cell not in (None, "") else None


class CheckpointFacts(NamedTuple):
    """What the checkpoint table adds to a catalog config, by model id."""

    attention_16bit: dict[str, tuple[str, ...]]  # weight formats whose checkpoint keeps attention in 16 bits
    fp8_weight_block: dict[str, tuple[int, ...]]  # weight-scale block (rows, cols) of the FP8 checkpoint
    repos: dict[str, str]  # lower-case checkpoint repo id → model id (first row wins)


def _attention_16bit_cell(path: Path, line: int, row: dict[str, str]) -> bool:
    cell = (row.get("attention_16bit") or "").strip()
    if cell not in ("", "no", KEEPS_ATTENTION_16BIT):
        raise InputError(f"{path}, row {line}, column 'attention_16bit': '{cell[:20]}' is not yes or no")
    return cell == KEEPS_ATTENTION_16BIT


def _fp8_weight_block_cell(path: Path, line: int, row: dict[str, str]) -> tuple[int, ...] | None:
    cell = (row.get("fp8_weight_block") or "").strip()
    if not cell:
        return None
    parts = cell.split("x")
    if len(parts) != 2 or not all(p.isdigit() and 0 < int(p) <= 4096 for p in parts):
        raise InputError(f"{path}, row {line}, column 'fp8_weight_block': '{cell[:20]}' is not ROWSxCOLS")
    return tuple(int(p) for p in parts)


def _check_fp8_block(path: Path, line: int, model: str, weights: str, block: tuple[int, ...],
                     earlier: tuple[int, ...] | None) -> None:
    """The block is the FP8 checkpoint's, and one per model (the architecture carries one)."""
    where = f"{path}, row {line}, column 'fp8_weight_block'"
    if weights != "fp8":
        raise InputError(f"{where}: only an fp8 checkpoint has FP8 weight-scale blocks (this row's weights: "
                         f"'{weights[:20]}')")
    if earlier is not None and earlier != block:
        raise InputError(f"{where}: {model} has {'x'.join(map(str, earlier))} on an earlier row")


@cache
def checkpoint_facts(path: Path = CHECKPOINTS_CSV) -> CheckpointFacts:
    """One pass over the checkpoint table. Column ``attention_16bit`` (yes, no or empty): the published
    checkpoint of that weight format keeps the attention matrices in 16 bits. Column ``fp8_weight_block``
    (e.g. ``128x128``; empty: per-tensor or per-channel scales, or the config says it): the FP8 checkpoint's
    ``quantization_config.weight_block_size``, for models whose catalog config.json is the 16-bit release
    (Qwen3). Column ``checkpoint``: the repository a user may name instead of the model (``resolve``). A bad
    cell names the file, row and column."""
    kept: dict[str, set[str]] = {}
    blocks: dict[str, tuple[int, ...]] = {}
    repos: dict[str, str] = {}
    _, rows = read_csv_dicts(path)
    for line, row in enumerate(rows, start=2):
        model = (row.get("model") or "").strip().lower()
        if repo := (row.get("checkpoint") or "").strip().lower():
            repos.setdefault(repo, model)
        if _attention_16bit_cell(path, line, row):
            kept.setdefault(model, set()).add((row.get("weights") or "").strip())
        if (block := _fp8_weight_block_cell(path, line, row)) is not None:
            _check_fp8_block(path, line, model, (row.get("weights") or "").strip(), block, blocks.get(model))
            blocks[model] = block
    return CheckpointFacts({m: tuple(sorted(f)) for m, f in kept.items()}, blocks, repos)


def attention_16bit_formats(path: Path = CHECKPOINTS_CSV) -> dict[str, tuple[str, ...]]:
    """model id → the weight formats whose published checkpoint keeps the attention matrices in 16 bits."""
    return checkpoint_facts(path).attention_16bit


@cache
def load_catalog(path: Path = CATALOG_CSV) -> dict[str, Model]:
    """id → Model for every catalog row (aliases resolved by ``resolve``)."""
    out: dict[str, Model] = {}
    _, rows = read_csv_dicts(path)
    facts = checkpoint_facts()
    for line, row in enumerate(rows, start=2):
        mid = (row.get("id") or "").strip().lower()
        if not mid:
            raise InputError(f"{path}, row {line}, column 'id': empty")
        validate_row(Sourced, path, line, row, InputError)
        cfg_path = path.parent / (row.get("config_file") or f"configs/{mid}.json")
        arch = read_config(cfg_path)
        if mid in facts.attention_16bit:
            arch = arch.model_copy(update={"attention_16bit_formats": facts.attention_16bit[mid]})
        if not arch.fp8_weight_block and mid in facts.fp8_weight_block:
            arch = arch.model_copy(update={"fp8_weight_block": facts.fp8_weight_block[mid]})
        try:
            official_total = _float(row.get("official_total_params"))
            official_active = _float(row.get("official_active_params"))
        except ValueError:
            raise InputError(f"{path}, row {line}, column 'official_total_params': not a number") from None
        aliases = tuple(a.strip().lower() for a in (row.get("aliases") or "").split(";") if a.strip())
        out[mid] = Model(id=mid, aliases=aliases, hf_repo=row.get("hf_repo") or None, arch=arch,
                         params=count_params(arch), official_total_params=official_total,
                         official_active_params=official_active, source=row["source"], as_of=row["as_of"],
                         config_path=str(cfg_path))
    return out


def _alias_index(catalog: dict[str, Model]) -> dict[str, str]:
    """Lower-case name → catalog id: ids first, then aliases, then each model's Hugging Face repo id
    (``meta-llama/llama-3.1-8b-instruct``) and its name part (``llama-3.1-8b-instruct``); an earlier entry wins."""
    index = {mid: mid for mid in catalog}
    for model in catalog.values():
        for alias in model.aliases:
            index.setdefault(alias, model.id)
    for model in catalog.values():
        if model.hf_repo:
            repo = model.hf_repo.strip().lower()
            index.setdefault(repo, model.id)
            index.setdefault(repo.rsplit("/", 1)[-1], model.id)
    return index


@cache
def _catalog_index(path: Path) -> dict[str, str]:
    """``_alias_index`` of the catalog at ``path``, built once per table (as ``load_catalog`` reads it once),
    then the published checkpoints of its models (checkpoints.csv: ``nvidia/DeepSeek-R1-FP4`` and
    ``deepseek-r1-fp4`` name ``deepseek-r1``); names the catalog already uses keep their model."""
    catalog = load_catalog(path)
    index = _alias_index(catalog)
    for repo, mid in checkpoint_facts().repos.items():
        if mid in catalog:
            index.setdefault(repo, mid)
            index.setdefault(repo.rsplit("/", 1)[-1], mid)
    return index


def resolve(name: str, catalog_path: Path = CATALOG_CSV) -> Model:
    """A catalog id, alias or Hugging Face repo id (case-insensitive), or a path to a config.json."""
    key = name.strip().lower()
    catalog = load_catalog(catalog_path)
    index = _catalog_index(catalog_path)
    if key in index:
        return catalog[index[key]]
    as_path = Path(name)
    if as_path.suffix == ".json" or as_path.exists():
        cfg = as_path / "config.json" if as_path.is_dir() else as_path
        arch = read_config(cfg)
        stem = cfg.parent.name if cfg.name == "config.json" else cfg.stem
        return Model(id=stem.lower(), arch=arch, params=count_params(arch), source=str(cfg),
                     as_of="user-supplied", config_path=str(cfg))
    raise InputError(f"unknown model '{name}' (not in the catalog and not a config.json path){_hint(key, index)}")


def _hint(key: str, index: dict[str, str]) -> str:
    """The catalog model a mistyped or unknown name most likely means: the longest catalog name that starts
    the name (``qwen3-30b-a3b-instruct-2507`` → ``qwen3-30b-a3b``, a revision that may differ in context length,
    so its own config.json is the exact choice), else the closest spelling."""
    part = key.rsplit("/", 1)[-1]
    family = [n for n in index if "/" not in n and len(n) >= 5 and part.startswith(n)
              and (part == n or part[len(n)] in "-_.:")]
    if family:
        best = index[max(family, key=len)]
        return f"; did you mean '{best}'? (other revisions are not guessed: pass their config.json)"
    close = difflib.get_close_matches(key, list(index), n=1, cutoff=0.5)
    return f"; did you mean '{index[close[0]]}'?" if close else ""
