"""The GAP SDK's visual-wake example script (issue 20), unchanged, on its int8 TFLite model.

The model and script are read from the GAP SDK mirror (Apache-2.0; not copied into this
repository); the test is skipped where the mirror is absent. The script opens the file with
``-q``, fuses, sets per-node options (``nodeoption``, step 0 being the graph input, as in
NNTool), inserts an ``rgb888 offset_int8`` formatter on the file-quantized input, and sets
AutoTiler options; the saved state must reopen and generate what the options ask for.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SDK = Path(os.environ.get("GAP_SDK_REPO", "/work/.mirror/GreenWaves-Technologies+gap_sdk/repo"))
EXAMPLE = "examples/gap8/nn/nntool/visual_wake/model"


def _sdk_file(rel: str, dest: Path) -> Path:
    proc = subprocess.run(
        ["git", "-C", str(SDK), "show", f"HEAD:{EXAMPLE}/{rel}"], capture_output=True, timeout=60
    )
    if proc.returncode != 0:
        pytest.skip(f"GAP SDK mirror not available ({SDK})")
    dest.write_bytes(proc.stdout)
    return dest


def test_visual_wake_script_runs_unchanged_and_its_state_generates(tmp_path: Path) -> None:
    if not SDK.exists():
        pytest.skip(f"GAP SDK mirror not available ({SDK})")
    model = _sdk_file("visual_wake_quant.tflite", tmp_path / "visual_wake_quant.tflite")
    script = _sdk_file("nntool_script", tmp_path / "nntool_script")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cli = [sys.executable, "-m", "nnshell"]
    proc = subprocess.run(
        [*cli, "-q", str(model), "-s", str(script)]
        + ["-D", "MODEL_L3_RAM=AT_MEM_L3_HRAM", "-D", "MODEL_L3_FLASH=AT_MEM_L3_HFLASH"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = proc.stdout + proc.stderr
    assert "S0 input_1 (input): ALLOCATE set to 1" in out
    assert "checked: the formatter's codes are the quantized input codes" in out
    state = tmp_path / "visual_wake_quant.json"
    gen = tmp_path / "gen"
    # open -q keeps the file's 30-bit multipliers, which the AutoTiler's SQ8 kernels do not take
    # (the generator says so): 8-bit ones as NNTool uses, then generate
    steps = ["set file_mult_bits 8", "fusions --scale8", f"gen --target autotiler -M {gen}"]
    proc = subprocess.run(
        [*cli, str(state)] + [a for c in steps for a in ("-c", c)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    code = (gen / "visual_wake_quantModel.c").read_text()
    assert code.count('"PARALLELFEATURES", AT_OPT_VAL(0)') == 3
    assert '"visual_wake_quant_L2_Memory", 0, 0,' in code  # set l2_ram_ext_managed false
    assert "AT_GRAPH_CONST_EXEC_FROM_FLASH" in code
    assert "ARG_SCOPE_ARG_ALLOC" in code  # nodeoption 0 ALLOCATE 1
