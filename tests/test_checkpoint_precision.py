"""Published checkpoints that keep their attention in 16 bits (models/checkpoints.csv column attention_16bit).

NVIDIA's DeepSeek-R1 NVFP4 release is made by ModelOpt's DeepSeek recipe, which disables the quantizers of every
``*attn*`` module (NVIDIA/TensorRT-Model-Optimizer examples/deepseek/ptq.py) and writes the FP8 release's other
modules dequantised to BF16 (quantize_to_nvfp4.py); nvidia/DeepSeek-R1-0528-FP4-v2's card says it "additionally
quantizes the wo module in attention layers", i.e. the earlier releases keep all of attention unquantised.
"""

from __future__ import annotations

import pytest
from gpuplan.hardware.formats import load_formats
from gpuplan.hardware.gpus import load_gpus
from gpuplan.models.catalog import attention_16bit_formats, resolve
from gpuplan.models.errors import InputError
from gpuplan.models.memory import weights_bytes
from gpuplan.optimizer.serving.calibration import load_calibration
from gpuplan.optimizer.serving.roofline import step_terms_s
from gpuplan.optimizer.serving.shape import attention_16bit_flops, make_shape

FORMATS = load_formats()
# DeepSeek-R1 config (hidden 7168, 128 heads, q_lora_rank 1536, kv_lora_rank 512, qk 128 + 64, v 128, 61 layers):
# q_a 7168·1536 + q_b 1536·128·192 + kv_a 7168·576 + kv_b 512·128·256 + o 128·128·7168 = 187,105,280 per layer.
DEEPSEEK_ATTENTION_PARAMS = 61 * (7168 * 1536 + 1536 * 128 * 192 + 7168 * 576 + 512 * 128 * 256 + 128 * 128 * 7168)


def test_the_nvfp4_deepseek_release_keeps_attention_in_16_bits():
    assert resolve("deepseek-r1").arch.attention_16bit_formats == ("nvfp4",)
    assert resolve("llama-3.1-8b").arch.attention_16bit_formats == ()


def test_attention_weights_count_at_16_bits_in_the_nvfp4_release():
    arch = resolve("deepseek-r1").arch
    plain = arch.model_copy(update={"attention_16bit_formats": ()})
    nvfp4 = FORMATS.weight("nvfp4")
    extra = weights_bytes(arch, nvfp4) - weights_bytes(plain, nvfp4)
    # 16 bits instead of 4 bits + one FP8 scale per 16 elements (4.5 bits): 11.5 bits = 1.4375 bytes a parameter
    assert extra == pytest.approx(DEEPSEEK_ATTENTION_PARAMS * 1.4375, rel=1e-3)
    assert DEEPSEEK_ATTENTION_PARAMS == 11_413_422_080


def test_attention_flops_run_at_the_16_bit_rate_where_the_rest_runs_fp4():
    arch = resolve("deepseek-r1").arch
    flops, replicated = attention_16bit_flops(arch, FORMATS.weight("nvfp4"), "fp4")
    assert flops == 2 * DEEPSEEK_ATTENTION_PARAMS
    assert replicated == 2 * 61 * (7168 * 1536 + 7168 * 576)  # q_a and kv_a, whole on every attention-TP rank
    assert attention_16bit_flops(arch, FORMATS.weight("fp8"), "fp8") == (0.0, 0.0)
    assert attention_16bit_flops(arch, FORMATS.weight("nvfp4"), "bf16") == (0.0, 0.0)  # weight-only: all 16-bit


def test_a_b200_nvfp4_prefill_step_pays_the_bf16_attention_gemms():
    gpu = load_gpus().get("b200")
    cal = load_calibration().lookup("trtllm", gpu.id, gpu.vendor, gpu.arch or "")
    arch = resolve("deepseek-r1").arch
    plain = arch.model_copy(update={"attention_16bit_formats": ()})
    nvfp4, kv = FORMATS.weight("nvfp4"), FORMATS.kv_format("bf16")
    kept = make_shape(arch, gpu, 8, nvfp4, kv, 4096.0, cal)[0]
    quantised = make_shape(plain, gpu, 8, nvfp4, kv, 4096.0, cal)[0]
    gemm_kept = float(step_terms_s(kept, 0.0, 8192.0)["gemm_compute"])
    gemm_quantised = float(step_terms_s(quantised, 0.0, 8192.0)["gemm_compute"])
    # 8,192 tokens × 22.8 GFLOP over 8 GPUs (q_a/kv_a whole on each) at 2,250 instead of 9,000 TFLOPS, η_prefill
    per_gpu = 8192 * (2 * DEEPSEEK_ATTENTION_PARAMS + 7 * 2 * 61 * (7168 * 1536 + 7168 * 576)) / 8
    expected = per_gpu * (1 / 2250e12 - 1 / 9000e12) / cal.eta_prefill
    assert gemm_kept - gemm_quantised == pytest.approx(expected, rel=1e-6)


def test_a_bad_attention_16bit_cell_is_one_line_naming_file_row_and_column(tmp_path):
    bad = tmp_path / "checkpoints.csv"
    bad.write_text("model,weights,attention_16bit,source,as_of\nm,nvfp4,maybe,x,2025-01-01\n")
    with pytest.raises(InputError, match=r"checkpoints.csv, row 2, column 'attention_16bit'"):
        attention_16bit_formats(bad)


@pytest.mark.parametrize(("rows", "needle"), [
    # an FP8 weight-scale block on a checkpoint that is not FP8 would still reach the model's architecture
    ("m,bf16,128x128,x,2025-01-01\n", "row 2, column 'fp8_weight_block': only an fp8 checkpoint"),
    # two FP8 checkpoints of one model with different blocks: the model carries one block, so say which row
    ("m,fp8,128x128,x,2025-01-01\nm,fp8,1x128,x,2025-01-01\n", "row 3, column 'fp8_weight_block': m has 128x128"),
])
def test_a_contradictory_fp8_weight_block_is_refused(tmp_path, rows: str, needle: str) -> None:
    from gpuplan.models.catalog import checkpoint_facts

    bad = tmp_path / "checkpoints.csv"
    bad.write_text("model,weights,fp8_weight_block,source,as_of\n" + rows)
    with pytest.raises(InputError, match=needle):
        checkpoint_facts(bad)
