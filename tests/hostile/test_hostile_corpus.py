"""Every hostile input of the corpus gets the CLI contract: its exit code, one clear line on stderr, no
traceback, nothing on stdout, no partial output file, nothing written anywhere but the ``-o`` target.

The CLI runs in-process with GPUPLAN_DEBUG=1, so an exception that only the catch-all "internal error"
would map to exit 2 fails the test with its traceback instead of passing quietly.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from corpus import BASE, SIM, Case, cases
from gpuplan.optimizer.cli.main import main

CASES = cases()


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    """Relative path → (size, mtime_ns) of everything under ``root`` (symlinks not followed)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


def test_corpus_is_large_and_ids_are_unique() -> None:
    assert len(CASES) >= 150
    assert len({c.id for c in CASES}) == len(CASES)
    commands = {next(a for a in c.argv if not a.startswith("-") and "{d}" not in a and "/" not in a)
                for c in CASES}
    assert {"candidates", "plan", "sweep", "procure", "memory", "perf", "gpus", "prices", "models", "validate",
            "calibrate", "fit"} <= commands


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("GPUPLAN_DEBUG", "1")
    monkeypatch.chdir(tmp_path)
    for name, content in case.files.items():
        (tmp_path / name).write_bytes(content)
    if case.setup:
        case.setup(tmp_path)
    before = _tree(tmp_path)
    code = main([a.replace("{d}", str(tmp_path)) for a in case.argv])
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == case.expect, err
    assert "Traceback" not in captured.err
    after = _tree(tmp_path)
    changed = {k for k in after if before.get(k) != after[k]}
    if case.expect == 0:
        assert set(case.outputs) <= changed and changed <= {*case.outputs, *(str(Path(o).parent) for o in case.outputs)}
        return
    assert captured.out == ""
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert case.needle in err, err
    assert not changed, f"wrote {sorted(changed)}"  # no partial output, no stray temporary file


HOSTILE_NAMES = [
    "[/bold]closing-markup", "[red]markup[/red]", "x" * 120, "a'; rm -rf ~; echo '", "名前-モデル",
    "$(touch pwned)", "--help", "../../etc/passwd",
]


def test_hostile_names_plan_to_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Printable but hostile workload names solve, print as text and write only safe files under -o DIR,
    each launch YAML holding only the keys gpuplan writes (no injected ``setup:``)."""
    monkeypatch.setenv("GPUPLAN_DEBUG", "1")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "plain.yaml").write_text(yaml.safe_dump(BASE), encoding="utf-8")
    assert main(["plan", str(tmp_path / "plain.yaml"), "-o", str(tmp_path / "plain")]) == 0
    keys = {k for f in (tmp_path / "plain").glob("*.sky.yaml") for k in yaml.safe_load(f.read_text())}
    data = {**BASE, "workloads": [{**BASE["workloads"][0], "name": n} for n in HOSTILE_NAMES]}
    (tmp_path / "w.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    capsys.readouterr()
    assert main(["plan", str(tmp_path / "w.yaml"), "-o", str(tmp_path / "out")]) == 0
    captured = capsys.readouterr()
    assert "[/bold]closing-markup" in captured.out and "[red]markup[/red]" in captured.out
    outside = {p.name for p in tmp_path.iterdir()}
    assert outside == {"plain.yaml", "plain", "w.yaml", "out"}
    files = sorted((tmp_path / "out").iterdir())
    tasks = [f for f in files if f.name.endswith(".sky.yaml")]
    assert len(tasks) >= 1 and keys
    for f in files:
        assert f.is_file() and len(f.name) <= 130 and not f.name.startswith(".")
        assert all(ch.isalnum() or ch in "._+-" for ch in f.name), f.name
    for f in tasks:  # the same top-level keys as for a plain name: nothing injected
        assert set(yaml.safe_load(f.read_text(encoding="utf-8"))) <= keys


def test_control_characters_never_reach_the_terminal() -> None:
    from gpuplan.optimizer.output import Result, View, render_text, terminal_safe

    evil = "a\x1b[2Jb\x07c\u202ed"
    assert terminal_safe(evil) == "a\\x1b[2Jb\\x07c\\u202ed"
    text = render_text(Result(payload=None, csv_rows=[], views=[View(
        title=evil, columns=[("n", "[bold]name")], rows=[{"n": evil}])], notes=[evil]), width=80)
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert "[bold]name" in text


def test_a_failed_plot_write_names_the_target_and_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """A full disk while writing --plot (as for -o, test_signals_and_outputs): one line naming the file the user
    gave, never the hidden temporary file, and no temporary file left behind."""
    argv = [*SIM, "--rate", "5", "--requests", "20", "--plot", "lat.png"]
    import errno

    def full(src: object, dst: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(src))

    monkeypatch.setenv("GPUPLAN_DEBUG", "1")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(os, "replace", full)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    target = argv[-1]
    assert err == f"error: {target}: cannot write (No space left on device)", err
    assert list(tmp_path.iterdir()) == []


def test_a_daily_profile_with_idle_hours_plans(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Hours of zero demand (written 0 or -0.0) once crashed the daily planner's start hint (KeyError). One busy
    hour at 1 req/s: the only cost is one on-demand instance for that hour; idle hours buy nothing."""
    import json

    from gpuplan.optimizer.tables import Tables

    monkeypatch.setenv("GPUPLAN_DEBUG", "1")
    profile = [-0.0] * 12 + [0] * 11 + [1]
    workload = {**BASE["workloads"][0], "rate_profile": profile}
    workload.pop("rate_rps")
    (tmp_path / "w.yaml").write_text(yaml.safe_dump({**BASE, "workloads": [workload]}), encoding="utf-8")
    assert main(["plan", str(tmp_path / "w.yaml"), "--format", "json"]) == 0
    day = json.loads(capsys.readouterr().out)
    assert [h["demand_rps"]["chat"] for h in day["hours"]] == [0.0] * 23 + [1.0]
    assert all(h["demand_rps"]["chat"] == 0 and str(h["demand_rps"]["chat"]) == "0.0" for h in day["hours"][:23])
    assert all(h["base_gpus"] + h["on_demand_gpus"] + h["spot_gpus"] == 0 for h in day["hours"][:23])
    [line] = day["instances"]
    offer = next(o for o in Tables().offers if (o.provider, o.instance) == (line["provider"], line["offer"]))
    assert line["pricing"] == "on_demand" and line["count"] == 1
    assert day["daily_usd"] == pytest.approx(offer.price("on_demand"))


def test_ctrl_c_while_the_cli_imports_is_an_interrupt() -> None:
    """The console script imports pandas and OR-Tools for about a second: Ctrl-C then was a KeyboardInterrupt
    traceback (exit 1). Now it is exit 130 with the one line every interrupt prints."""
    import subprocess
    import sys

    code = ("import sys\n"
            "class Interrupt:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'gpuplan.optimizer.cli.main':\n"
            "            raise KeyboardInterrupt\n"
            "sys.meta_path.insert(0, Interrupt())\n"
            "from gpuplan.optimizer.cli import main\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr, done.stdout) == (130, "interrupted: nothing written\n", "")


def test_ctrl_c_while_plan_writes_its_folder_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """plan -o DIR writes plan.json, plan.csv and the launch specs: every temporary file first, the renames
    last, so Ctrl-C while the second file is written leaves none of them (plan.json alone was left before)."""
    written: list[str] = []
    real = os.chmod

    def interrupted_at_the_second(path: str, mode: int) -> None:
        written.append(str(path))
        if len(written) == 2:
            raise KeyboardInterrupt
        real(path, mode)

    monkeypatch.chdir(tmp_path)
    (tmp_path / "w.yaml").write_text(yaml.safe_dump(BASE), encoding="utf-8")
    monkeypatch.setattr(os, "chmod", interrupted_at_the_second)
    assert main(["plan", "w.yaml", "-o", "out"]) == 130
    assert capsys.readouterr().err.strip() == "interrupted: nothing written"
    assert len(written) == 2 and list((tmp_path / "out").iterdir()) == []
