"""Every example the user is shown runs: each ``gpuplan …`` line under "Example(s):" in every command's
``--help`` (commands discovered from the click group, so new commands are covered), and each command in
README's code blocks, whose first shown output line must match the real one (figures masked: the command and
the shape of its answer), and every whole table row README shows must be a row of today's output, figures
included (so a change that moves a shown number updates README with it; the daily plan, whose stages a wall
clock may cut, is exempt).

All commands run in-process in one scratch folder that links the repository's data folders, so files the
examples write (``-o plan.json``, ``--plot sweep.png``) land there; each distinct command runs once.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import click
import pytest
from gpuplan.optimizer.cli.common import cli
from gpuplan.optimizer.cli.main import main

REPO = Path(__file__).resolve().parents[1]
BOX = "┃│┏┓┗┛┡┩└┘━─┳┻╇╈┼╋═╤╧┯┷┠┨┣┫┌┐├┤┬┴╭╮╰╯"
_results: dict[tuple[str, ...], tuple[int, str]] = {}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("examples")
    for name in ("examples", "hardware", "pricing", "models"):
        (d / name).symlink_to(REPO / name)
    (d / "tests").mkdir()
    (d / "tests" / "data").symlink_to(REPO / "tests" / "data")
    # a user who has SkyPilot: ~/.sky/catalogs holds the catalog snapshots shipped for the tests
    (d / "home" / ".sky").mkdir(parents=True)
    (d / "home" / ".sky" / "catalogs").symlink_to(REPO / "tests" / "data" / "skypilot" / "catalogs")
    return d


def run(argv: list[str], workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """(exit code, stdout + stderr) of ``gpuplan argv`` in ``workdir``; cached by argv."""
    key = tuple(argv)
    if key not in _results:
        monkeypatch.chdir(workdir)
        monkeypatch.setenv("GPUPLAN_DEBUG", "1")
        monkeypatch.setenv("COLUMNS", "200")
        monkeypatch.setenv("HOME", str(workdir / "home"))
        capsys.readouterr()
        code = main([os.path.expanduser(a) if a.startswith("~/") else a for a in argv])  # as the shell does
        captured = capsys.readouterr()
        _results[key] = (code, (captured.out + captured.err).replace(str(workdir / "home"), "~"))
    return _results[key]


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], click.Command]]:
    out = []
    for name, cmd in sorted(group.commands.items()):
        if isinstance(cmd, click.Group):
            out += _commands(cmd, (*prefix, name))
        else:
            out.append(((*prefix, name), cmd))
    return out


def help_examples(cmd: click.Command) -> list[str]:
    """The 'gpuplan …' lines after an 'Example:' / 'Examples:' heading in a command's help text (or, for
    the top-level group, its epilog)."""
    text = (cmd.help or "") + "\n" + (cmd.epilog or "")
    if "Example" not in text:
        return []
    tail = text[text.index("Example"):]
    return [line.strip() for line in tail.splitlines() if line.strip().startswith("gpuplan ")]


COMMANDS = _commands(cli)
HELP_EXAMPLES = [(" ".join(path), ex) for path, cmd in [((), cli), *COMMANDS] for ex in help_examples(cmd)]


@pytest.mark.parametrize(("path", "cmd"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_has_help_and_an_example(path: tuple[str, ...], cmd: click.Command) -> None:
    assert cmd.help and len(cmd.help.split()) >= 8, f"{' '.join(path)} has no help text"
    assert help_examples(cmd), f"{' '.join(path)} --help shows no example"
    assert all(ex.split()[1:len(path) + 1] == list(path) or "--" in ex.split()[1] or ex.split()[1].startswith("-")
               for ex in help_examples(cmd))


@pytest.mark.parametrize(("command", "example"), HELP_EXAMPLES, ids=[e for _, e in HELP_EXAMPLES])
def test_help_example_runs(command: str, example: str, workdir: Path, monkeypatch: pytest.MonkeyPatch,
                           capsys: pytest.CaptureFixture[str]) -> None:
    argv = shlex.split(example, comments=True)[1:]
    code, output = run(argv, workdir, monkeypatch, capsys)
    assert code == 0, f"{example}\n{output[-2000:]}"


def readme_examples() -> list[tuple[list[str], list[str]]]:
    """(argv, shown output lines) for each '$ gpuplan …' or bash 'gpuplan …' line in README code blocks."""
    out: list[tuple[list[str], list[str]]] = []
    lang = None
    current: tuple[list[str], list[str]] | None = None
    for line in (REPO / "README.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            lang = None if lang is not None else (line[3:].strip() or "text")
            current = None
            continue
        if lang not in ("text", "bash", "console", "sh", "shell"):
            continue
        command = line[2:] if line.startswith("$ ") else line if lang == "bash" else None
        if command is not None and command.startswith("gpuplan "):
            current = (shlex.split(command, comments=True)[1:], [])
            out.append(current)
        elif line.startswith("$ "):
            current = None
        elif current is not None and line.strip():
            current[1].append(line)
    return out


def _row(line: str) -> str:
    """A table row with box drawing removed and spaces collapsed (figures kept)."""
    return " ".join(line.translate({ord(c): " " for c in BOX}).split())


def _shape(line: str) -> str:
    """``_row`` with figures and solver status (optimal or feasible, which depends on the machine's speed within
    the time limit) masked."""
    line = re.sub(r"\b(optimal|feasible)\b", "STATUS", _row(line))
    return re.sub(r"\d[\d,.]*", "#", line)


README = readme_examples()


def test_readme_has_examples() -> None:
    assert len(README) >= 10


@pytest.mark.parametrize(("argv", "shown"), README, ids=[" ".join(a) for a, _ in README])
def test_readme_example(argv: list[str], shown: list[str], workdir: Path, monkeypatch: pytest.MonkeyPatch,
                        capsys: pytest.CaptureFixture[str]) -> None:
    code, output = run(argv, workdir, monkeypatch, capsys)
    assert code == expected_exit(shown), output[-2000:]
    first = next((s for s in shown if _shape(s) and not s.startswith("…")), None)
    if first is None:
        return
    # README shortens outputs (rows dropped, '…' for the rest of a line) and may show a bigger table than the
    # shipped one (a user's SkyPilot catalogs): the first shown line, up to its first '…' or ';', must start a
    # line of the real output
    prefix = _shape(first.split("…")[0].split(";")[0])
    actual = [_shape(line) for line in output.splitlines()]
    assert any(a.startswith(prefix) for a in actual), (first, actual[:8])


def expected_exit(shown: list[str]) -> int:
    """3 when README shows 'infeasible:', N when it marks a line '(exit N)', else 0."""
    for line in shown:
        marked = re.search(r"\(exit (\d+)\)\s*$", line)
        if marked:
            return int(marked.group(1))
    return 3 if shown and shown[0].startswith("infeasible:") else 0


# Outputs a wall clock can change: the daily plan's stages may be cut by the clock (its note says so).
CLOCK_BOUND = {"examples/daily.yaml"}


@pytest.mark.parametrize(("argv", "shown"), README, ids=[" ".join(a) for a, _ in README])
def test_readme_rows_are_todays(argv: list[str], shown: list[str], workdir: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    # Every whole table row README shows (a '│' line not shortened with '…') is a row of today's output, figures
    # included: a change to the tables or the model that moves a shown number must update README with it.
    if CLOCK_BOUND & set(argv):
        pytest.skip("clock-bound output")
    _, output = run(argv, workdir, monkeypatch, capsys)
    actual = {_row(line) for line in output.splitlines() if line.startswith(("│", "┃"))}
    stale = [line for line in shown if line.startswith("│") and "…" not in line and _row(line) not in actual]
    assert stale == [], stale
