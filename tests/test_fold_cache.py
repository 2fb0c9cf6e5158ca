"""Leave-one-source-out folds shared between processes (optimizer/serving/fold_cache.py)."""

from __future__ import annotations

import fcntl
from pathlib import Path

import pytest
from gpuplan.optimizer.serving import fitting, fold_cache
from gpuplan.optimizer.serving.calibration import load_calibration
from gpuplan.optimizer.serving.fitting import leave_one_source_out
from gpuplan.optimizer.serving.measurements import read_measurements, source_key
from gpuplan.optimizer.tables import Tables

MEASURED = Path(__file__).parent / "data" / "measured.csv"
KEEP = {"llm-d/llm-d", "docs.vultr.com", "vllm-project/vllm-project.github.io"}


def test_a_second_process_reads_what_the_first_fitted(tmp_path: Path) -> None:
    cal = load_calibration()
    calls: list[str] = []

    def fit(source: str) -> object:
        calls.append(source)
        return cal

    first = fold_cache.shared_folds(tmp_path, ("rows", "tables"), ["a", "b"], fit)
    again = fold_cache.shared_folds(tmp_path, ("rows", "tables"), ["a", "b"], fit)
    assert calls == ["a", "b"] and first == again == {"a": cal, "b": cal}  # read back equal, to the bit
    other = fold_cache.shared_folds(tmp_path, ("other rows", "tables"), ["a"], fit)  # new data: a new entry
    assert calls == ["a", "b", "a"] and other == {"a": cal}


def test_a_fold_being_fitted_elsewhere_is_left_for_the_second_pass(tmp_path: Path) -> None:
    # Another process holds the lock of fold 'a' (a second open file description of the lock, as a second
    # process would have): the first pass does not wait for it.
    name = fold_cache.entry_name(("rows", "tables"), "a")
    with open(tmp_path / f"{name}.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        got = fold_cache._fit_locked(tmp_path, name, load_calibration, wait=False)
    assert got is None


def test_shared_folds_give_the_same_predictions_as_fitting_alone(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [r for r in read_measurements(MEASURED) if source_key(r.source) in KEEP]
    monkeypatch.delenv(fold_cache.ENV, raising=False)
    monkeypatch.setattr(fitting, "_FOLDS", {})
    alone = leave_one_source_out(rows, Tables())
    monkeypatch.setenv(fold_cache.ENV, str(tmp_path / "folds"))
    monkeypatch.setattr(fitting, "_FOLDS", {})
    writing = leave_one_source_out(rows, Tables())
    assert len(list((tmp_path / "folds").glob("*.json"))) == len(KEEP)
    monkeypatch.setattr(fitting, "_FOLDS", {})
    reading = leave_one_source_out(rows, Tables(), progress=lambda d, n: pytest.fail("no fold should be fitted"))
    assert [c.predicted for c in alone] == [c.predicted for c in writing] == [c.predicted for c in reading]


def test_an_unusable_folder_means_no_sharing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv(fold_cache.ENV, str(tmp_path / "file"))
    assert fold_cache.cache_dir() is None
    monkeypatch.delenv(fold_cache.ENV)
    assert fold_cache.cache_dir() is None
