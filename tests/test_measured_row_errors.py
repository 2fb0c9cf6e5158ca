"""A measured row that parses but names a deployment or benchmark the models cannot run is refused in one line
that names the file and the row, as a cell that fails to parse is (exit 2, no traceback)."""

from __future__ import annotations

from pathlib import Path

import pytest

HEADER = ("model,gpu,tp,ep,attn_dp,weights,kv,input,output,batch,mode,engine,max_batched_tokens,metric,value,source,"
          "as_of\n")
GOOD = "llama-3.1-8b,h100-sxm,1,1,,bf16,bf16,1000,100,1,static,vllm,,tpot_ms,7.0,x,2025-11-01\n"


@pytest.mark.parametrize(("row", "needle"), [
    # a dense model has no MoE layers to gather data-parallel attention ranks (validation.prepare)
    ("llama-3.1-8b,h100-sxm,2,1,2,bf16,bf16,1000,100,1,static,vllm,,tpot_ms,7.0,x,2025-11-01\n",
     "data-parallel attention needs MoE layers"),
    # vLLM's running cap (1,024 on an H100) exceeds the row's step budget, which vLLM refuses: so does the replay
    ("llama-3.1-8b,h100-sxm,1,1,,bf16,bf16,1000,100,8,closed,vllm,8,tpot_ms,7.0,x,2025-11-01\n",
     "must be ≥ max sequences"),
])
def test_a_row_the_models_refuse_names_file_and_row(gpuplan, tmp_path: Path, row: str, needle: str) -> None:
    path = tmp_path / "measured.csv"
    path.write_text(HEADER + GOOD + row)
    r = gpuplan("validate", str(path), "--summary-only", "--no-loso")
    assert r.code == 2 and needle in r.err and len(r.err.strip().splitlines()) == 1
    assert f"{path}, row 3: " in r.err
