"""A person's terminal (issue 18): the shell driven in a pseudo-terminal of 80 and 120 columns.

Tables must fit without cutting a number or a name ("…"), styled cells must not show their
markup (``[bold]``), progress bars appear only once the arguments are checked, ``gen --verify``
says what it is doing, and leaving an unsaved quantization asks first. Few images per command
keep each session a few seconds long.
"""

from __future__ import annotations

import re
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pexpect
import pytest

from tests.conftest import ROOT

PROMPT = r"nnshell \([^)\n]*\) >"
NORM = 'set input_norm_func "x: x/127.5 - 1"'
# short paths (links in the session's folder): a typed line longer than the terminal wraps,
# and a wrapped echo could be mistaken for the next prompt
CALIB = "c/*.png"
TEST = "t/*.png"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][0-9A-B]|\r")


def _give_up(signum: int, frame: object) -> None:
    raise TimeoutError("the interactive session stopped responding")


@contextmanager
def session(tmp_path: Path, model: str, cols: int) -> Iterator[pexpect.spawn]:
    """An interactive nnshell on ``model`` in a pty of ``cols`` columns."""
    for sub, src, pattern in (("c", "calib", "calib_000[0-4]*.png"), ("t", "test", "000[0-5]*")):
        (tmp_path / sub).mkdir(exist_ok=True)
        for f in sorted((ROOT / "sample_images" / src).glob(pattern)):
            (tmp_path / sub / f.name).symlink_to(f)
    (tmp_path / f"{model}.onnx").symlink_to(ROOT / "sample_models" / f"{model}.onnx")
    signal.signal(signal.SIGALRM, _give_up)
    signal.alarm(240)  # a blocked pty must fail the test, never hang CI
    env = {
        "HOME": str(tmp_path),
        "TERM": "xterm",
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "PROMPT_TOOLKIT_NO_CPR": "1",
    }
    child = pexpect.spawn(
        sys.executable,
        ["-m", "nnshell", f"{model}.onnx"],
        cwd=str(tmp_path),
        env=env,
        encoding="utf-8",
        timeout=90,
        dimensions=(50, cols),
    )
    try:
        child.expect(PROMPT)
        yield child
    finally:
        signal.alarm(0)
        child.close(force=True)


def run(child: pexpect.spawn, line: str) -> str:
    """Type ``line``, press Enter, return what the command printed (ANSI codes removed)."""
    child.send(line)
    time.sleep(0.2)  # let the line editor echo before Enter (never write while it prints)
    child.send("\r")
    child.expect("\r\n")
    child.expect(PROMPT)
    return ANSI.sub("", child.before)


def check_readable(text: str, cols: int) -> None:
    """No cut cell, no literal markup, no table line wider than the terminal."""
    for line in text.splitlines():
        if "━━" in line and ("/" in line or ":" in line) and "┃" not in line:
            continue  # a progress bar frame (redrawn in place)
        assert "…" not in line, f"cut at {cols} columns: {line!r}\n{text}"
        assert not re.search(r"\[/?(bold|red|green|yellow)", line), f"markup: {line!r}"
        if line[:1] in "┏┃┡│├└":
            assert len(line) <= cols, f"table line wider than {cols}: {line!r}"


FLOW = [
    "show",
    NORM,
    "fusions --scale8",
    f"aquant {CALIB}",
    "qshow",
    f"qerror {TEST}",
    "astats",
    "footprint",
    f"validate {TEST}",
    "qexplain 1",
    f"aquant --compare minmax,mse {CALIB}",
    "set",
]


@pytest.mark.parametrize("cols", [80, 120])
@pytest.mark.parametrize("model", ["cifar_net", "mobile_net_tiny"])
def test_flow_is_readable_in_a_narrow_terminal(tmp_path: Path, model: str, cols: int) -> None:
    outputs = {}
    with session(tmp_path, model, cols) as child:
        for line in FLOW:
            outputs[line] = run(child, line)
            check_readable(outputs[line], cols)
            assert "error:" not in outputs[line], outputs[line]
        child.send("quit -f\r")
        child.expect(pexpect.EOF)
    whole = "\n".join(outputs.values())
    # numbers stay whole: totals and scales appear with every digit
    if model == "mobile_net_tiny":
        assert "594,240" in outputs["show"] and "7,234" in outputs["show"]
        assert "110,592" in outputs["show"]
        assert re.search(r"_block1_dw_dw_0_Conv\s*│", outputs["show"]), outputs["show"]
    assert re.search(r"S=0\.\d{4,}", outputs["qshow"]), outputs["qshow"]
    assert re.search(r"M \d+\.\.\d+\s", outputs["qshow"]), outputs["qshow"]
    assert re.search(r">>\d+\.\.\d+\s", outputs["qshow"]), outputs["qshow"]
    assert "calibrated on 5 image(s)" in whole  # never broken between 5 and "image(s)"
    assert re.search(r"\[-?\d+(\.\d+)?, -?\d+(\.\d+)?\]", outputs["astats"])
    # set: the names one types are whole, cmd2's leftovers are gone
    assert "input_norm_func" in outputs["set"] and "editor" not in outputs["set"]
    assert "scripts_add_to_history" not in outputs["set"]


def test_progress_only_after_checks_and_gen_verify_phases(tmp_path: Path) -> None:
    with session(tmp_path, "cifar_net", 100) as child:
        run(child, NORM)
        run(child, "fusions --scale8")
        out = run(child, "aquant nothing_here/*.png")
        assert "error" in out and "calibrating" not in out, out  # no bar before the error
        out = run(child, f"aquant {CALIB}")
        assert "calibrated on 5 image(s)" in out
        out = run(child, "validate no_such_folder")
        assert "error" in out and "validating" not in out, out
        out = run(child, f"gen --verify {TEST}")
        assert "compiling" in out and "running on 6 image(s)" in out, out
        assert "bit-exact on 6 images" in out, out
        child.send("quit -f\r")
        child.expect(pexpect.EOF)


def test_quit_and_open_ask_before_dropping_an_unsaved_quantization(tmp_path: Path) -> None:
    with session(tmp_path, "cifar_net", 100) as child:
        run(child, NORM)
        run(child, "fusions --scale8")
        out = run(child, f"aquant {CALIB}")
        assert "calibrated on 5 image(s)" in out
        assert child.after == "nnshell (cifar_net fused SQ8*) >"  # the prompt tells the state
        child.send("open cifar_net.onnx\r")
        child.expect(r"not saved \(save_state\): open anyway\? \[y/N\]")
        child.send("n\r")
        child.expect("open cancelled")
        child.expect(r"nnshell \(cifar_net fused SQ8\*\) >")  # still the same session
        child.send("set input_norm_func\r")  # settings complete and print; nothing was lost
        child.expect(r"x/127\.5")
        child.expect(PROMPT)
        child.send("quit\r")
        child.expect(r"quit anyway\? \[y/N\]")
        child.send("n\r")
        child.expect("quit cancelled")
        child.expect(PROMPT)
        run(child, "save_state s.json")
        child.send("quit\r")  # saved: no question
        child.expect(pexpect.EOF)


def test_set_names_tab_complete(tmp_path: Path) -> None:
    with session(tmp_path, "cifar_net", 80) as child:
        child.send("set input_no\t")
        child.expect("rm_func")  # completed to input_norm_func
        child.send("\r")
        if child.expect([r"input_norm_func = ", pexpect.TIMEOUT], timeout=5) == 1:
            child.send("\r")
            child.expect(r"input_norm_func = ")
        child.expect(PROMPT)
        child.send("quit\r")
        child.expect(pexpect.EOF)
