"""Issue 18 without a terminal: silent traps (normalisation drift, forgotten aquant options,
repeated flags), files that behave (modes under the umask, no build left behind, named
outputs), timing in scripts, the pictures, and small wording fixes."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import CALIB_DIR, ROOT, SAMPLE_MODEL, TEST_DIR

NORM = 'set input_norm_func "x: x/127.5 - 1"'
CALIB = " ".join(str(p) for p in sorted(CALIB_DIR.glob("*.png"))[:6])
TEST = " ".join(str(p) for p in sorted(TEST_DIR.glob("*.png"))[:9])


def _quantized(shell, *extra: str) -> None:  # noqa: ANN001 - the conftest driver
    for line in (f"open {SAMPLE_MODEL}", NORM, "fusions --scale8", f"aquant {CALIB}", *extra):
        ok, out, err = shell.run(line)
        assert ok, (line, err)


def test_normalisation_drift_is_named(shell) -> None:  # noqa: ANN001
    _quantized(shell)
    ok, out, err = shell.run(f"validate {TEST}")
    assert ok and "warning" not in err  # same options: nothing to say
    shell.run('set input_norm_func ""')
    for line in (f"validate {TEST}", f"qerror {TEST}", f"validate {TEST} --json"):
        ok, out, err = shell.run(line)
        assert ok, err
        assert (
            "warning: the quantization was calibrated with input options "
            "-N 'x: x/127.5 - 1' but this run uses none (raw pixel values)"
        ) in err, err
    json.loads(out)  # the warning stays on stderr: --json output is still pure JSON
    ok, out, err = shell.run(f"validate {TEST} -q")  # float only: no quantized graph runs
    assert "warning" not in err
    # the command's own -N counts as the same options
    ok, out, err = shell.run(f'validate {TEST} -N "x: x/127.5 - 1"')
    assert "warning" not in err
    ok, out, _ = shell.run("qshow")
    assert "calibrated on 6 image(s) with input options -N 'x: x/127.5 - 1'" in out
    ok, out, _ = shell.run("qshow --json")
    assert json.loads(out)["input_options"]["norm_func"] == "x: x/127.5 - 1"


def test_state_keeps_calibration_inputs_and_aquant_options(shell, tmp_path: Path) -> None:  # noqa: ANN001
    _quantized(shell, "aquant --per_tensor --symmetric")
    state = tmp_path / "s.json"
    ok, out, err = shell.run(f"save_state {state}")
    assert ok, err
    assert "per-tensor weights" in out and "with input options -N 'x: x/127.5 - 1'" in out
    doc = json.loads(state.read_text())
    assert doc["calibration"]["input_options"]["norm_func"] == "x: x/127.5 - 1"
    ok, out, err = shell.run(f"open {state}")
    assert ok, err
    ok, out, err = shell.run("aquant --mode kl")  # reuses the statistics and the options
    assert ok, err
    assert "symmetric activations, per-tensor weights" in out, out
    assert "--per_tensor (kept from the current quantization" in out
    ok, out, err = shell.run("aquant --per_channel --asymmetric")
    assert "asymmetric activations, per-channel weights" in out, out
    shell.run('set input_norm_func "x: x/255"')
    ok, out, err = shell.run(f"qerror {TEST}")
    assert "calibrated with input options -N 'x: x/127.5 - 1'" in err  # restored, still checked


def test_repeated_flag_is_refused(shell, tmp_path: Path) -> None:  # noqa: ANN001
    _quantized(shell)
    out_dir = tmp_path / "out"
    ok, out, err = shell.run(f"gen -M {out_dir} --verify {TEST} -M RGB")
    assert not ok
    assert "gen: -M/--model_directory given twice" in err, err
    assert not out_dir.exists() and not Path("RGB").exists()
    ok, out, err = shell.run(f"validate {TEST} -N 'x: x' --norm_func 'x: x/2'")
    assert not ok and "given twice" in err


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_files_are_0644_under_umask_022(shell, tmp_path: Path, umask_022: None) -> None:  # noqa: ANN001
    _quantized(shell)
    lines = [
        f"save_state {tmp_path / 'st.json'}",
        f"gen -M {tmp_path / 'c'}",
        f"qerror {TEST} --png {tmp_path / 'q.png'}",
        f"astats --hist 0 --png {tmp_path / 'h.png'}",
    ]
    for line in lines:
        ok, out, err = shell.run(line)
        assert ok, (line, err)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) >= 6
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in files}
    assert all(m == 0o644 for m in modes.values()), modes


def test_autotiler_files_are_0644_and_named(shell, tmp_path: Path, umask_022: None) -> None:  # noqa: ANN001
    import importlib.util

    if importlib.util.find_spec("nnshell.codegen.autotiler") is None:
        pytest.skip("no AutoTiler generator in this build")
    _quantized(shell)
    ok, out, err = shell.run(f"gen --target autotiler -M {tmp_path}")
    assert ok, err
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert written and all(str(p) in out for p in written if p.suffix in (".c", ".h")), out
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in written}
    assert all(m == 0o644 for m in modes.values()), modes


def test_gen_verify_leaves_only_sources(shell, tmp_path: Path) -> None:  # noqa: ANN001
    _quantized(shell)
    ok, out, err = shell.run(f"gen -M {tmp_path} --verify {TEST}")
    assert ok, err
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names and all(n.endswith((".c", ".h")) for n in names), names
    assert "inputs.bin" not in names and "steps" not in names
    assert "bit-exact on 9 images" in out and f"to {tmp_path}" in out


def test_set_timing_in_a_script_is_not_an_error(tmp_path: Path) -> None:
    script = tmp_path / "s.nns"
    script.write_text(f"open {SAMPLE_MODEL}\nset timing true\nshow 0\n")
    proc = subprocess.run(
        [sys.executable, "-m", "nnshell", "-s", str(script)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "timing: " in proc.stderr and "error" not in proc.stderr, proc.stderr


def test_set_lists_nnshell_settings_without_cmd2_leftovers(shell) -> None:  # noqa: ANN001
    ok, out, _ = shell.run("set")
    for gone in ("editor", "scripts_add_to_history", "max_completion_table_items"):
        assert gone not in out
    assert "input_norm_func" in out and "timing" in out


def test_show_selection_totals_only_the_selection(shell) -> None:  # noqa: ANN001
    shell.run(f"open {SAMPLE_MODEL}")
    ok, out, _ = shell.run("show 2")
    assert "Total of these 1" in out and "peak" not in out
    ok, out, _ = shell.run("show")
    assert "peak" in out


def test_history_past_the_end_is_one_line(shell) -> None:  # noqa: ANN001
    shell.run("set")
    ok, out, err = shell.run("history -r 999")
    assert not ok
    assert err.strip() == "error: history: no such entry (history lists the numbers)", err


def test_non_onnx_model_format_is_named(shell, tmp_path: Path) -> None:  # noqa: ANN001
    # a TFLite file named .onnx: the ONNX importer names the format it found
    fake = tmp_path / "model.onnx"
    fake.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(64))
    ok, out, err = shell.run(f"open {fake}")
    assert not ok
    assert "is a TensorFlow Lite (flatbuffer) file, not an ONNX model" in err, err
    # a corrupt .tflite goes to the TFLite importer, which says so in one line
    bad = tmp_path / "model.tflite"
    bad.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(64))
    ok, out, err = shell.run(f"open {bad}")
    assert not ok and "not a readable TFLite model" in err and len(err.strip().splitlines()) == 1


def test_help_explains_qshow_and_aquant(shell) -> None:  # noqa: ANN001
    ok, out, _ = shell.run("help qshow")
    for word in ("S: the scale", "Z: the zero point", ">>N", "Acc:", "Forced by:"):
        assert word in " ".join(out.split()), word
    ok, out, _ = shell.run("help -v")
    assert "the SQ8 scheme" not in out and "POW2" in out


def test_pictures_have_labelled_axes_and_report_size(shell, tmp_path: Path) -> None:  # noqa: ANN001
    _quantized(shell)
    q, h = tmp_path / "q.png", tmp_path / "h.png"
    assert shell.run(f"qerror {TEST} --png {q}")[0]
    assert shell.run(f"astats --hist 0:1 --png {h}")[0]
    with Image.open(q) as img:
        assert img.size[0] == 1200 and 240 <= img.size[1] <= 800, img.size
        assert img.text["XAxis"] == "QSNR (dB); higher is better"
        assert img.text["YAxis"].startswith("layer (execution order")
        assert "9 images" in img.text["Title"]
    with Image.open(h) as img:
        assert img.size[0] == 1200 and 300 <= img.size[1] <= 800, img.size  # two panels
        assert img.text["XAxis"] == "|x| (activation magnitude)"
        assert img.text["YAxis"] == "count (log scale)"


def test_plain_gen_writes_a_folder_of_its_own(
    shell,  # noqa: ANN001
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _quantized(shell)
    monkeypatch.chdir(tmp_path)
    ok, out, err = shell.run("gen")
    assert ok, err
    assert [p.name for p in tmp_path.iterdir()] == ["cifar_net_c"]
    assert "to cifar_net_c" in out
    ok, out, err = shell.run("gen -M RGB")
    assert not ok and "names the output folder, not the image mode" in err
    ok, out, err = shell.run("gen -H 32")
    assert not ok and "names the header file, not the image height" in err
