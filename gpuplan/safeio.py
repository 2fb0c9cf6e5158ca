"""Reading files a user hands us: regular files only, bounded size, strict UTF-8, strict YAML and JSON.

Every reader of a user-supplied path goes through here, so a directory, a FIFO, ``/dev/zero``, a symlink
loop, a 2 GB file, UTF-16 text, a YAML bomb or a key given twice become one ``UnreadableInput`` line
naming the file — never a hang, a MemoryError or a traceback. A UTF-8 byte-order mark (what Excel and
Notepad write) is accepted and dropped.
"""

from __future__ import annotations

import csv
import io
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

MIB = 2**20
LIMIT_TABLE_BYTES = 64 * MIB  # CSV tables (a SkyPilot vms.csv is a few MB)
MAX_CSV_ROWS = 200_000  # a SkyPilot catalog has tens of thousands; millions of tiny rows would exhaust memory
LIMIT_CONFIG_BYTES = 4 * MIB  # config.json, workload YAML of a few thousand workloads fits in 16
LIMIT_YAML_BYTES = 16 * MIB
MAX_YAML_DEPTH = 64
MAX_YAML_ALIASES = 1000
MAX_YAML_NODES = 1_000_000
ALLOWED_YAML_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "seq", "map")}


class UnreadableInput(ValueError):
    """A user file that cannot be read as what it should be (exit 2, one line naming the file)."""


def read_bytes(path: Path | str, limit_bytes: int) -> bytes:
    """The content of a regular file of at most ``limit_bytes`` (symlinks to regular files are followed)."""
    path = Path(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise UnreadableInput(f"{path}: file not found") from None
    except OSError as err:  # symlink loop, permission, name too long, NUL in the name
        raise UnreadableInput(f"{path}: cannot open ({err.strerror or err})") from None
    except ValueError as err:
        raise UnreadableInput(f"{path!s:.200}: not a usable path ({err})") from None
    if stat.S_ISDIR(info.st_mode):
        raise UnreadableInput(f"{path}: is a folder, expected a file")
    if not stat.S_ISREG(info.st_mode):
        raise UnreadableInput(f"{path}: not a regular file (device, FIFO or socket)")
    if info.st_size > limit_bytes:
        raise UnreadableInput(f"{path}: {info.st_size:,} bytes is above the {limit_bytes // MIB} MiB limit")
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit_bytes + 1)
    except OSError as err:
        raise UnreadableInput(f"{path}: cannot read ({err.strerror or err})") from None
    if len(data) > limit_bytes:
        raise UnreadableInput(f"{path}: above the {limit_bytes // MIB} MiB limit")
    return data


def lone_surrogate(text: str) -> bool:
    """Whether ``text`` holds a UTF-16 surrogate code point: a "\\ud800" escape in YAML or JSON makes one, and
    no UTF-8 text (nor a terminal, nor a file name) can hold it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def decode_utf8(data: bytes, where: str) -> str:
    """Strict UTF-8 (a leading byte-order mark is dropped); the error names the byte offset."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        hint = " (it looks like UTF-16: save it as UTF-8)" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        raise UnreadableInput(f"{where}: not UTF-8 text, byte 0x{data[err.start]:02x} at offset "
                              f"{err.start}{hint}") from None
    if "\x00" in text:
        raise UnreadableInput(f"{where}: contains NUL characters, not a text file")
    return text


def read_text(path: Path | str, limit_bytes: int = LIMIT_TABLE_BYTES) -> str:
    """A bounded, strictly decoded UTF-8 text file."""
    return decode_utf8(read_bytes(path, limit_bytes), str(path))


def read_csv_dicts(path: Path | str, limit_bytes: int = LIMIT_TABLE_BYTES) -> tuple[list[str], list[dict]]:
    """(header, rows) of a CSV file, header cells stripped; a malformed file is one ``UnreadableInput``."""
    text = read_text(path, limit_bytes)
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)  # an open quote is an error
        header = [h.strip() for h in reader.fieldnames or []]
        twice = sorted({h for h in header if h and header.count(h) > 1})
        if twice:
            raise UnreadableInput(f"{path}: column '{twice[0]}' given twice in the header")
        reader.fieldnames = header
        rows = []
        for row in reader:
            rows.append(row)
            if len(rows) > MAX_CSV_ROWS:
                raise UnreadableInput(f"{path}: more than {MAX_CSV_ROWS:,} rows")
            if reader.line_num != len(rows) + 1:  # errors say "row N" for the file's line N: keep them one
                raise UnreadableInput(f"{path}, line {reader.line_num}: a blank line or a cell spanning lines "
                                      f"comes before it (errors number rows by line: remove it)")
    except csv.Error as err:
        raise UnreadableInput(f"{path}: not a readable CSV file ({err})") from None
    return header, rows


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses keys given twice, tags beyond plain data, deep nesting and alias bombs."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_YAML_ALIASES:
                raise yaml.YAMLError(f"more than {MAX_YAML_ALIASES} aliases (*name)")
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > MAX_YAML_DEPTH:
            mark = self.peek_event().start_mark
            raise yaml.YAMLError(f"nested deeper than {MAX_YAML_DEPTH} levels at line {mark.line + 1}")
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if node.tag not in ALLOWED_YAML_TAGS:
            raise yaml.YAMLError(f"line {node.start_mark.line + 1}: tag {node.tag} is not allowed "
                                 "(only plain strings, numbers, booleans, lists and mappings)")
        return node

    def construct_scalar(self, node: Any) -> Any:
        value = super().construct_scalar(node)
        if isinstance(value, str) and lone_surrogate(value):
            raise yaml.YAMLError(f"line {node.start_mark.line + 1}: an escape gives a lone UTF-16 surrogate, "
                                 "not a character")
        return value

    def get_single_node(self) -> Any:
        node = super().get_single_node()
        if node is not None:
            _expanded_size(node, {}, set())
        return node

    def construct_mapping(self, node: Any, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:
                raise yaml.YAMLError(f"line {key_node.start_mark.line + 1}: a key must be a plain value") from None
            if duplicate:
                raise yaml.YAMLError(f"line {key_node.start_mark.line + 1}: key '{key}' is given twice")
            seen.add(key)
        return super().construct_mapping(node, deep)


def _expanded_size(node: Any, sizes: dict[int, int], open_nodes: set[int]) -> int:
    """Nodes of the document once every alias is expanded; refuses cycles and "billion laughs" growth."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_nodes:
        raise yaml.YAMLError(f"line {node.start_mark.line + 1}: an alias refers to its own anchor")
    open_nodes.add(key)
    children: list[Any] = []
    if isinstance(node, yaml.SequenceNode):
        children = node.value
    elif isinstance(node, yaml.MappingNode):
        children = [n for pair in node.value for n in pair]
    total = 1 + sum(_expanded_size(child, sizes, open_nodes) for child in children)
    open_nodes.discard(key)
    if total > MAX_YAML_NODES:
        raise yaml.YAMLError(f"more than {MAX_YAML_NODES:,} values once aliases are expanded")
    sizes[key] = total
    return total


def load_yaml(text: str, where: str) -> Any:
    """Plain data from YAML text with ``StrictLoader``; errors name ``where`` and the line."""
    try:
        return yaml.load(text, Loader=StrictLoader)  # StrictLoader is a SafeLoader
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        line = f", line {mark.line + 1}" if mark else ""
        raise UnreadableInput(f"{where}{line}: not valid YAML ({err.problem})") from None
    except yaml.YAMLError as err:
        raise UnreadableInput(f"{where}: not accepted YAML ({err})") from None
    except RecursionError:
        raise UnreadableInput(f"{where}: nested too deeply") from None


def read_yaml(path: Path | str, limit_bytes: int = LIMIT_YAML_BYTES) -> Any:
    return load_yaml(read_text(path, limit_bytes), str(path))


def _no_duplicates(where: str) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise UnreadableInput(f"{where}: key '{key}' is given twice")
            out[key] = value
        return out
    return hook


def _no_constant(where: str) -> Callable[[str], Any]:
    def hook(name: str) -> Any:
        raise UnreadableInput(f"{where}: {name} is not a number JSON allows")
    return hook


def read_json(path: Path | str, limit_bytes: int = LIMIT_CONFIG_BYTES, non_finite: bool = False) -> Any:
    """Strict JSON: no key twice, bounded size and depth, and no NaN/Infinity unless ``non_finite`` (Hugging
    Face configs written by Python hold them, e.g. Mamba's ``time_step_limit``; the fields a reader uses
    must then check their own values)."""
    where = str(path)
    text = read_text(path, limit_bytes)
    constants = {"parse_constant": _no_constant(where)} if not non_finite else {}
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates(where), **constants)
    except json.JSONDecodeError as err:
        raise UnreadableInput(f"{where}: not valid JSON ({err})") from None
    except RecursionError:
        raise UnreadableInput(f"{where}: nested too deeply") from None
    try:
        odd = _holds_surrogate(data)
    except RecursionError:
        raise UnreadableInput(f"{where}: nested too deeply") from None
    if odd:
        raise UnreadableInput(f"{where}: a string escape gives a lone UTF-16 surrogate, not a character")
    return data


def _holds_surrogate(value: Any) -> bool:
    """Whether any string of parsed JSON (keys included) holds a lone surrogate (``lone_surrogate``)."""
    if isinstance(value, str):
        return lone_surrogate(value)
    if isinstance(value, dict):
        return any(lone_surrogate(k) or _holds_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_surrogate(v) for v in value)
    return False
