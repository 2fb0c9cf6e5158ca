"""Sustained dense tensor rates (hardware/sustained_flops.csv): an AMD Instinct GPU's data-sheet peak assumes its
2,100 MHz peak engine clock, while dense matrix work runs it near 1,200 MHz (AMD's max-achievable-FLOPs blog), so
prefill steps compute at the GPU's measured share of its peak over the reference H100's; decode steps do not."""

from __future__ import annotations

from pathlib import Path

import pytest
from gpuplan.hardware.errors import InputError
from gpuplan.hardware.formats import load_formats
from gpuplan.hardware.gpus import load_gpus
from gpuplan.hardware.sustained import SUSTAINED_CSV, load_sustained, sustained_factor
from gpuplan.models.catalog import resolve
from gpuplan.optimizer.serving import terms
from gpuplan.optimizer.serving.calibration import load_calibration
from gpuplan.optimizer.serving.roofline import step_terms_s
from gpuplan.optimizer.serving.shape import make_shape, with_calibration

# ROCm blog 'Measuring Max-Achievable FLOPs - Part 2' (2025-02-28), Table 1: MI300X (750 W) BF16 708 TFLOPs,
# FP8 1273 TFLOPs; MI325X BF16 843, FP8 1519; data-sheet dense peaks 1307.4 (BF16) and 2614.9 (FP8).
# vllm-project/vllm pull request 23280: torch BF16 GEMM on an H100 at 747 of 989.5 TFLOPS (the reference share).
H100_SHARE = 747 / 989.5  # 0.755


@pytest.mark.parametrize(("gpu", "fmt", "expected"), [
    ("mi300x", "bf16", (708 / 1307.4) / H100_SHARE),   # 0.717
    ("mi300x", "fp8", (1273 / 2614.9) / H100_SHARE),   # 0.645
    ("mi325x", "bf16", (843 / 1307.4) / H100_SHARE),   # 0.854
    ("mi325x", "fp8", (1519 / 2614.9) / H100_SHARE),   # 0.770
    ("mi300x", "fp4", (708 / 1307.4) / H100_SHARE),    # no FP4 row: the GPU's BF16 row (the clock is the power's)
    ("h100-sxm", "bf16", 1.0),                         # the reference itself
    ("h100-sxm", "fp8", 1.0),                          # no FP8 row: the BF16 row, 1
    ("h200", "fp8", 1.0),                              # no rows: the data-sheet peak
    ("mi355x", "fp8", 1.0),                            # no published MAF yet: the data-sheet peak
])
def test_sustained_factor_is_the_published_share_over_the_reference(gpu: str, fmt: str, expected: float) -> None:
    assert sustained_factor(gpu, fmt) == pytest.approx(expected, rel=1e-9)


def test_prefill_steps_compute_at_the_sustained_rate_and_decode_steps_at_the_peak() -> None:
    # Llama 3.1 70B FP8 on 8 x MI300X with vLLM: a 4,096-token prefill step's GEMMs take 1 / 0.645 of their
    # data-sheet time; a decode step of 64 sequences (memory-bound, boost clock) is unchanged.
    gpu = load_gpus().get("mi300x")
    f = load_formats()
    cal = load_calibration().lookup("vllm", gpu.id, gpu.vendor, gpu.arch or "", None)
    s, _ = make_shape(resolve("llama-3.1-70b").arch, gpu, 8, f.weight("fp8"), f.kv_format("fp16"), 2048.0, cal)
    assert s.sustained_w == pytest.approx((1273 / 2614.9) / H100_SHARE)
    assert s.sustained_attn == pytest.approx((708 / 1307.4) / H100_SHARE)
    prefill = step_terms_s(s, 0.0, 4096.0)
    peak = step_terms_s(with_calibration(s, sustained_w=1.0, sustained_attn=1.0), 0.0, 4096.0)
    assert float(prefill["gemm_compute"]) == pytest.approx(float(peak["gemm_compute"]) / s.sustained_w, rel=1e-9)
    assert float(prefill["attention_compute"]) == pytest.approx(float(peak["attention_compute"]) / s.sustained_attn,
                                                                rel=1e-9)
    decode = step_terms_s(s, 64.0)
    decode_peak = step_terms_s(with_calibration(s, sustained_w=1.0, sustained_attn=1.0), 64.0)
    assert float(decode["step"]) == pytest.approx(float(decode_peak["step"]), rel=1e-12)
    assert terms.dense_load_clock(0.0, 0.6) == 1.0 and terms.dense_load_clock(1.0, 0.6) == 0.6


def test_a_table_without_the_reference_row_is_refused(tmp_path: Path) -> None:
    lines = SUSTAINED_CSV.read_text().splitlines()
    bad = tmp_path / "sustained_flops.csv"
    bad.write_text("\n".join([lines[0], *[x for x in lines[1:] if not x.startswith("h100-sxm,")]]) + "\n")
    with pytest.raises(InputError, match=r"sustained_flops\.csv: no reference row"):
        load_sustained(bad)


def test_every_row_is_below_its_peak() -> None:
    for row in load_sustained().values():
        assert 0 < row.share < 1
