"""Engine releases by date (optimizer/serving/releases.csv) and the version a row without one is modelled with."""

from __future__ import annotations

from pathlib import Path

import pytest
from gpuplan.hardware.errors import InputError
from gpuplan.optimizer.serving.hybrid_state import slots_per_running_request
from gpuplan.optimizer.serving.measurements import Measurement, dated
from gpuplan.optimizer.serving.releases import Release, load_releases, release_on, version_key
from gpuplan.optimizer.serving.validation import prepare
from gpuplan.optimizer.tables import Tables
from hypothesis import given
from hypothesis import strategies as st

NANO = dict(model="nemotron-3-nano-30b-a3b", gpu="b200", tp=1, weights="bf16", kv="bf16", input=508, output=510,
            batch=256, mode="closed", requests=4096, range_ratio=1.0, engine="sglang", metric="ttft_ms", value=211.5,
            source="x", as_of="2025-12-15")


def test_release_lookup_by_hand() -> None:
    # PyPI release history (pypi.org/project/sglang/#history): 0.5.6 uploaded 2025-12-03, 0.5.6.post1 2025-12-08,
    # 0.5.6.post2 2025-12-11, 0.5.7 2026-01-01. A run published 2025-12-15 had 0.5.6.post2 at most.
    assert release_on("sglang", "2025-12-15") == "0.5.6.post2"
    assert release_on("sglang", "2025-12-10") == "0.5.6.post1"
    assert release_on("sglang", "2026-01-01") == "0.5.7"  # released that day: on or before
    # pypi.org/project/vllm: 0.6.2 on 2024-09-25, 0.6.3 on 2024-10-14; 0.12.0 on 2025-12-03, 0.13.0 on 2025-12-19.
    assert release_on("vllm", "2024-10-01") == "0.6.2"
    assert release_on("vllm", "2025-12-15") == "0.12.0"
    # pypi.org/project/tensorrt-llm: 0.17.0 was yanked (0.17.0.post1, 2025-02-02, replaced it); 0.18.0 2025-04-02.
    assert release_on("trtllm", "2025-04-01") == "0.17.0.post1"
    # 1.0.0 was uploaded 2025-09-24, after 1.1.0rc5 (2025-09-17): release candidates are not what pip installs.
    assert release_on("trtllm", "2025-09-20") == "0.21.0"
    assert release_on("trtllm", "2025-12-16") == "1.0.0"


def test_no_answer_means_the_current_release() -> None:
    assert release_on("llama.cpp", "2024-05-01") is None  # builds bNNNN are not in the table
    assert release_on("vllm", "2099-01-01") is None  # after the day the history was read


def test_row_of_2025_12_15_runs_sglang_0_5_6_post2_with_three_state_slots() -> None:
    # The SGLang cookbook's Nemotron-3-Nano BF16 run on one B200 (holdout, as_of 2025-12-15, no version stated).
    m = Measurement(**NANO)
    assert dated(m).engine_version == "0.5.6.post2"
    # no_buffer radix strategy before 0.5.14: own slot + two cached checkpoints (hybrid_state.py), not 3 + 2.
    assert slots_per_running_request(dated(m).engine_version) == 3
    assert slots_per_running_request(None) == 5
    case = prepare(m, Tables())
    assert case.version_assumed and case.m.engine_version == "0.5.6.post2"
    # ⌊state slots / 3⌋ running sequences instead of ⌊state slots / 5⌋: 256 clients no longer queue for slots
    # (194 running at the current release).
    now = prepare(m.model_copy(update={"as_of": "2099-01-01"}), Tables())
    assert now.running < 256 <= case.running
    stated = prepare(m.model_copy(update={"engine_version": "0.5.14"}), Tables())
    assert not stated.version_assumed and stated.running == now.running


def test_bad_release_rows_are_refused(tmp_path: Path) -> None:
    head = "engine,version,released,source,as_of\n"
    for line, word in [("vllm,0.6.2rc1,2024-09-20,x,2026-12-01", "version"),
                       ("tgi,2.0.0,2024-04-12,x,2026-12-01", "engine"),
                       ("vllm,0.6.2,2024-09-31,x,2026-12-01", "released")]:
        path = tmp_path / "r.csv"
        path.write_text(head + line + "\n")
        with pytest.raises(InputError, match=word):
            load_releases(path)


RELEASES = load_releases()


@given(st.sampled_from(("vllm", "sglang", "trtllm")), st.dates().map(str), st.dates().map(str))
def test_a_later_date_never_runs_an_older_release(engine: str, a: str, b: str) -> None:
    early, late = sorted((a, b))
    v_early, v_late = release_on(engine, early), release_on(engine, late)
    if v_early is not None and v_late is not None:
        assert version_key(v_late) >= version_key(v_early)
    if v_early is None:  # only after the table's reading date, and then later dates too
        assert v_late is None


def test_every_release_is_sourced_and_versions_rise_with_dates_per_line() -> None:
    assert all(isinstance(r, Release) and r.source.startswith("https://pypi.org/project/") for r in RELEASES)
    for engine in ("vllm", "sglang", "trtllm"):
        rows = [r for r in RELEASES if r.engine == engine]
        assert len({r.version for r in rows}) == len(rows)


def test_kv_log_without_version_is_checked_at_its_dates_release() -> None:
    # vllm-project/vllm issue 21348 (2025-07-22) compares vLLM 0.9.2 with an SGLang build it does not name;
    # pypi.org/project/sglang/0.4.9.post3 was uploaded that same day (on or before counts), so the SGLang log is
    # checked at 0.4.9.post3.
    from gpuplan.optimizer.serving.kv_validation import KV_CAPACITY_CSV, check_row, read_kv_rows

    (row,) = [r for r in read_kv_rows(KV_CAPACITY_CSV) if r.engine == "sglang" and r.as_of == "2025-07-22"
              and r.metric == "kv_gib"]
    assert row.engine_version is None and release_on("sglang", row.as_of) == "0.4.9.post3"
    stated = row.model_copy(update={"engine_version": "0.4.9.post3"})
    assert check_row(row) == check_row(stated)
    assert check_row(row) != check_row(row.model_copy(update={"as_of": "2099-01-01"}))  # the current release
