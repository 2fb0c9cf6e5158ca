"""Interrupts and output targets: Ctrl-C stops a CP-SAT solve at once and nothing is written; SIGTERM stops
``sweep --workers`` and all its worker processes within a second; ``--workers`` is capped; ``-o`` honours the
umask, replaces only regular files, and a full disk is one line, exit 2, no temporary file left."""

from __future__ import annotations

import errno
import multiprocessing
import os
import random
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from gpuplan.optimizer.cli.main import main
from gpuplan.optimizer.parallel import in_processes, worker_count
from gpuplan.optimizer.planning.interrupt import solve_interruptibly
from ortools.sat.python import cp_model

REPO = Path(__file__).resolve().parents[1]


def _hard_model() -> cp_model.CpModel:
    """A random covering problem CP-SAT does not prove optimal within seconds."""
    rng = random.Random(1)
    m = cp_model.CpModel()
    xs = [m.NewIntVar(0, 50, f"x{i}") for i in range(400)]
    for j in range(60):
        m.Add(sum(rng.randint(1, 97) * x for x in rng.sample(xs, 40)) >= 5000 + j)
    m.Minimize(sum(rng.randint(1, 1000) * x for x in xs))
    return m


def test_ctrl_c_stops_a_solve_within_a_second() -> None:
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = 30
    solver.parameters.num_workers = 2
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    start = time.perf_counter()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        solve_interruptibly(solver, _hard_model())
    assert time.perf_counter() - start < 1.5


def test_workers_are_capped_by_points_and_cores() -> None:
    cores = os.cpu_count() or 1
    assert worker_count(64, 2) == min(2, cores)
    assert worker_count(64, 1000) == cores
    assert worker_count(1, 8) == 1


def _square_or_fail(x: int) -> int:
    if x == 7:
        raise ValueError("seven")
    return x * x


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="one core: in_processes runs in this process")
def test_in_processes_keeps_order_and_reraises_a_childs_error() -> None:
    seen: list[tuple[int, int]] = []
    assert in_processes(_square_or_fail, [3, 1, 2, 5], 2, lambda done, n: seen.append((done, n))) == [9, 1, 4, 25]
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]
    with pytest.raises(ValueError, match="seven"):
        in_processes(_square_or_fail, [1, 7, 2], 2)
    assert multiprocessing.active_children() == []  # the error killed and reaped every worker


def _alive_children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=,stat=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p, s in (line.split() for line in out.splitlines()) if not s.startswith("Z")]


def test_sigterm_stops_sweep_and_its_workers(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("gpuplan")
    out = tmp_path / "sweep.json"
    proc = subprocess.Popen([str(exe), "sweep", str(REPO / "examples" / "fleet.yaml"), "--vary",
                             "slo.tpot_ms=25,30,35,40,50,60,80,100", "--workers", "2", "--format", "json", "-o",
                             str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 20
    while not _alive_children(proc.pid) and time.time() < deadline:
        time.sleep(0.1)
    workers = _alive_children(proc.pid)
    assert workers, "the sweep started no worker processes"
    time.sleep(1.0)
    assert proc.poll() is None, "the sweep ended before the signal; make the grid larger"
    start = time.perf_counter()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    assert time.perf_counter() - start < 1.0
    assert proc.returncode == 130 and err.strip() == "interrupted: nothing written"
    time.sleep(0.2)
    assert not any(Path(f"/proc/{w}/stat").exists() and Path(f"/proc/{w}/stat").read_text().split()[2] != "Z"
                   for w in workers)
    assert list(tmp_path.iterdir()) == []


def test_output_honours_umask_and_replaces_a_regular_file(tmp_path: Path) -> None:
    target = tmp_path / "models.json"
    target.write_text("old")
    old = os.umask(0o027)
    try:
        assert main(["models", "--format", "json", "-o", str(target)]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert target.read_text().startswith("[")
    assert [p.name for p in tmp_path.iterdir()] == ["models.json"]


def test_full_disk_is_one_line_and_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    import gpuplan.optimizer.output as output

    def full(*_args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(output.os, "replace", full)
    assert main(["models", "--format", "json", "-o", str(tmp_path / "m.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {tmp_path / 'm.json'}: cannot write (No space left on device)"
    assert list(tmp_path.iterdir()) == []


def test_read_only_folder_is_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    """What a read-only folder does to a non-root user (root ignores the mode, so the error is injected)."""
    import gpuplan.optimizer.output as output

    def denied(*_args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(kwargs.get("dir")))

    monkeypatch.setattr(output.tempfile, "mkstemp", denied)
    assert main(["models", "--format", "json", "-o", str(tmp_path / "m.json")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'm.json'}: cannot write (Permission denied)"
    assert list(tmp_path.iterdir()) == []


def test_csv_cells_a_spreadsheet_would_run_are_quoted() -> None:
    """CSV injection (OWASP): a cell starting with = + - @ tab or CR runs as a formula when a spreadsheet opens
    the file. Such text is written with a leading quote; numbers, negative ones too, stay numbers."""
    import csv
    import io

    from gpuplan.optimizer.output import Result, render

    rows = [{"workload": '=HYPERLINK("http://evil","x")', "dde": "+cmd|' /C calc'!A0", "at": "@SUM(A1)",
             "plain": "chat", "delta": -3.5, "list": ["-a", "b"]}]
    text = render(Result(payload=rows, csv_rows=rows, views=[]), "csv")
    (row,) = list(csv.DictReader(io.StringIO(text)))
    assert row == {"workload": "'=HYPERLINK(\"http://evil\",\"x\")", "dde": "'+cmd|' /C calc'!A0",
                   "at": "'@SUM(A1)", "plain": "chat", "delta": "-3.5", "list": "'-a;b"}


def test_a_plot_gets_the_usual_file_mode(tmp_path: Path) -> None:
    """--plot PNGs were written 0600 (mkstemp's mode) where every other output honours the umask."""
    import matplotlib

    matplotlib.use("Agg")
    from gpuplan.optimizer.charts import save
    from matplotlib.figure import Figure

    target = tmp_path / "chart.png"
    old = os.umask(0o022)
    try:
        save(Figure(), target)
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
