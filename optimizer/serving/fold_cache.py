"""Leave-one-source-out folds shared between processes through a folder (``GPUPLAN_FOLD_CACHE``).

A fold's fit is a pure function of the measured rows, the start calibration, the hardware and format tables and
the code, so processes that name the same folder (the test suite's worker processes, or a user running
``gpuplan validate`` again) fit each fold once. Each process goes through the folds in order: a fold already in
the folder is read; a fold no other process is fitting is fitted and written (atomically); a fold another
process is fitting is left for a second pass, which waits for it. Two processes therefore split the folds
between them instead of fitting all of them twice.

An entry's name is the SHA-256 of the code (every source and data file of the package folders the fit reads),
the rows, the tables key and the fold's source, so a changed file never reads an old fold. Without the variable,
or on a platform without ``fcntl`` locks, or when the folder cannot be used, folds are fitted as before.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from functools import cache
from pathlib import Path

from gpuplan.optimizer.serving.calibration import Calibration

try:
    import fcntl
except ImportError:  # not POSIX: no shared folds
    fcntl = None  # type: ignore[assignment]

ENV = "GPUPLAN_FOLD_CACHE"
PACKAGE_ROOT = Path(__file__).resolve().parents[2]
CODE_FOLDERS = ("optimizer/serving", "models", "hardware")  # what a fit reads
CODE_SUFFIXES = (".py", ".csv", ".json")


def cache_dir() -> Path | None:
    """The folder ``GPUPLAN_FOLD_CACHE`` names (created if missing), or None (unset, or not usable)."""
    name = os.environ.get(ENV)
    if not name or fcntl is None:
        return None
    path = Path(name)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return path if path.is_dir() and os.access(path, os.W_OK) else None


@cache
def code_digest() -> str:
    """SHA-256 over the relative path and bytes of every source and data file the fit reads."""
    h = hashlib.sha256()
    for folder in CODE_FOLDERS:
        for path in sorted((PACKAGE_ROOT / folder).rglob("*")):
            if path.suffix in CODE_SUFFIXES and path.is_file():
                h.update(str(path.relative_to(PACKAGE_ROOT)).encode())
                h.update(path.read_bytes())
    return h.hexdigest()


def entry_name(data: tuple, source: str) -> str:
    """The file name of a fold: SHA-256 of the code, the rows and tables (``data``) and the held-out source."""
    return hashlib.sha256(repr((code_digest(), data, source)).encode()).hexdigest()


def _read(path: Path) -> Calibration | None:
    try:
        return Calibration.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write(path: Path, calibration: Calibration) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(calibration.model_dump_json(), encoding="utf-8")
    os.replace(tmp, path)


def _fit_locked(folder: Path, name: str, fit: Callable[[], Calibration], wait: bool) -> Calibration | None:
    """The fold from the folder, or fitted and written under its lock; None when another process holds the
    lock and ``wait`` is False."""
    entry = folder / f"{name}.json"
    with open(folder / f"{name}.lock", "a", encoding="utf-8") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            return None
        try:
            found = _read(entry)
            if found is not None:
                return found
            calibration = fit()
            _write(entry, calibration)
            return calibration
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def shared_folds(folder: Path, data: tuple, sources: list[str],
                 fit: Callable[[str], Calibration]) -> dict[str, Calibration]:
    """{source: fold calibration} for ``sources``, each read from ``folder`` or fitted by ``fit(source)`` and
    written there (module docstring): a first pass skips the folds other processes are fitting, a second waits."""
    out: dict[str, Calibration] = {}
    for wait in (False, True):
        for source in sources:
            if source not in out:
                got = _fit_locked(folder, entry_name(data, source), lambda s=source: fit(s), wait)
                if got is not None:
                    out[source] = got
    return out


def folds_from_env(data: tuple, sources: list[str], fit: Callable[[str], Calibration],
                         progress: Callable[[int, int], None] | None = None) -> dict[str, Calibration]:
    """``shared_folds`` in the ``GPUPLAN_FOLD_CACHE`` folder, ``progress(done, total)`` after each fold fitted
    here; {} when there is no usable folder or it fails (the caller fits the folds itself)."""
    folder = cache_dir() if sources else None
    if folder is None:
        return {}
    fitted: list[str] = []

    def counted(source: str) -> Calibration:
        calibration = fit(source)
        fitted.append(source)
        if progress:
            progress(len(fitted), len(sources))
        return calibration

    try:
        return shared_folds(folder, data, sources, counted)
    except OSError:
        return {}
