"""Shared fixtures: run the CLI in-process and capture exit code, stdout and stderr."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from gpuplan.optimizer.cli.main import main


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self):
        return json.loads(self.out)


def corrupt_csv(src: Path, column: str, value: str, dest: Path) -> Path:
    """A copy of ``src`` with ``column`` of its first data row set to ``value`` (row 2 of the file)."""
    lines = src.read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[1].split(",")
    cells[header.index(column)] = value
    dest.write_text("\n".join([lines[0], ",".join(cells), *lines[2:]]) + "\n")
    return dest


@pytest.fixture(scope="session", autouse=True)
def _shared_folds(tmp_path_factory: pytest.TempPathFactory, worker_id: str):
    """One run's worker processes share their leave-one-source-out folds (fold_cache): the validation tests
    and the `validate` help examples, which land on different workers, fit each fold once between them."""
    from gpuplan.optimizer.serving.fold_cache import ENV

    base = tmp_path_factory.getbasetemp()
    folder = (base if worker_id == "master" else base.parent) / "folds"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(ENV, str(folder))
        yield folder


@pytest.fixture(autouse=True)
def _debug_internal_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    """In tests an unexpected exception raises with its traceback instead of the CLI's one-line
    "internal error" (exit 2), so no test passes on the catch-all by accident."""
    monkeypatch.setenv("GPUPLAN_DEBUG", "1")


@pytest.fixture
def gpuplan(capsys: pytest.CaptureFixture[str]) -> Callable[..., Run]:
    def run(*args: str) -> Run:
        code = main(list(args))
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    return run


# CI runs with a fixed seed so a landing never depends on luck; locally hypothesis explores freely.
from hypothesis import settings  # noqa: E402

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
