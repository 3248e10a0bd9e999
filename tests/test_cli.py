"""The ``nnshell`` executable as a subprocess: -c one-liners, -s scripts, exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, SAMPLE_MODEL
from tests.helpers_models import unsupported_model


def nnshell(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nnshell", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def assert_one_error_line(proc: subprocess.CompletedProcess[str], needle: str) -> None:
    assert proc.returncode == 1, proc
    # status lines ("opened ...") also go to stderr; everything else must be the one error line
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith("opened ")]
    assert len(lines) == 1, proc.stderr
    assert "error:" in lines[0] and needle in lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout


def test_c_show_sample() -> None:
    proc = nnshell(str(SAMPLE_MODEL), "-c", "show")
    assert proc.returncode == 0, proc.stderr
    assert "62,006" in proc.stdout and "651,720" in proc.stdout


def test_open_failures_exit_1(tmp_path: Path) -> None:
    assert_one_error_line(nnshell("-c", "open missing.onnx"), "-c:1: error: model file")
    txt = tmp_path / "x.onnx"
    txt.write_text("hello\n")
    assert_one_error_line(nnshell("-c", f"open {txt}"), "not a readable ONNX model")
    bad = unsupported_model(tmp_path / "bad.onnx")
    assert_one_error_line(nnshell("-c", f"open {bad}"), "Erf (_act_Erf)")


def test_script_stops_at_failing_line(tmp_path: Path) -> None:
    marker = tmp_path / "ran.txt"
    script = tmp_path / "s.nnscript"
    script.write_text(
        f"# comment line\nopen {SAMPLE_MODEL}\nshow _missing_node\nset model_file {marker}\n"
    )
    proc = nnshell("-s", str(script))
    assert_one_error_line(proc, f"{script}:3: error: no node named '_missing_node'")
    assert "model_file" not in proc.stdout


def test_semicolons_and_variables(tmp_path: Path) -> None:
    script = tmp_path / "v.nnscript"
    script.write_text("open $(MODEL); show ${SEL} --json  # trailing comment\n")
    proc = nnshell("-s", str(script), "-D", f"MODEL={SAMPLE_MODEL}", "-D", "SEL=_fc3_Gemm")
    assert proc.returncode == 0, proc.stderr
    assert '"_fc3_Gemm"' in proc.stdout and '"_fc1_Gemm"' not in proc.stdout
    proc = nnshell("-s", str(script), "-D", f"MODEL={SAMPLE_MODEL}")
    assert_one_error_line(proc, f"{script}:1: error: undefined variable 'SEL'")


def test_c_semicolon_split_and_failure_position() -> None:
    proc = nnshell("-c", f"open {SAMPLE_MODEL}; show 0 --json", "-c", "show 99")
    assert proc.returncode == 1
    assert '"_conv1_Conv"' in proc.stdout
    assert proc.stderr.strip().splitlines()[-1].startswith("-c:2: error: step 99 is out of range")


def test_debug_shows_traceback() -> None:
    proc = nnshell("--debug", "-c", "open missing.onnx")
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "error: model file" in proc.stderr


def test_version_and_quit() -> None:
    assert nnshell("--version").stdout.startswith("nnshell ")
    proc = nnshell("-c", "quit")
    assert proc.returncode == 0 and proc.stderr == ""
