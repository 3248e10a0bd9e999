"""An interactive session in a pseudo-terminal: open, tab-complete a node name, quit."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pexpect

from tests.conftest import ROOT, SAMPLE_MODEL

PROMPT = r"nnshell \(cifar_net\)\s*>"


def _give_up(signum: int, frame: object) -> None:
    raise TimeoutError("the interactive session stopped responding")


def test_interactive_tab_completion(tmp_path: Path) -> None:
    signal.signal(signal.SIGALRM, _give_up)
    signal.alarm(120)  # a blocked write to the pty must fail the test, never hang CI
    try:
        _drive_session(tmp_path)
    finally:
        signal.alarm(0)


def _drive_session(tmp_path: Path) -> None:
    env = {
        "HOME": str(tmp_path),
        "TERM": "xterm",
        "PATH": "/usr/bin:/bin",
        "PROMPT_TOOLKIT_NO_CPR": "1",
    }
    child = pexpect.spawn(
        sys.executable,
        ["-m", "nnshell"],
        cwd=str(ROOT),
        env=env,
        encoding="utf-8",
        timeout=60,
        dimensions=(40, 200),
    )
    try:
        child.expect(r"nnshell\s*>")
        child.send(f"open {SAMPLE_MODEL}\r")
        child.expect(PROMPT)
        child.send("show _fc\t")
        child.expect("_fc1_Gemm")  # the completion menu lists the matching nodes
        child.expect("_fc3_Gemm")
        child.send("2\t")  # "_fc2" is unique: tab completes it to _fc2_Gemm
        # the terminal may redraw only the completed part ("_Gemm"); the table below proves the
        # completion gave _fc2_Gemm
        child.expect("_Gemm")
        child.send("\r")
        # Enter may only close the completion menu: press it again only if nothing ran (never
        # write while the shell prints the table, which could block on a full terminal buffer)
        if child.expect([r"1 of 12 layers", pexpect.TIMEOUT], timeout=5) == 1:
            child.send("\r")
            child.expect(r"1 of 12 layers")
        child.expect(r"_fc2_Gemm\s*│\s*Gemm")
        child.expect(PROMPT)
        child.send("quit\r")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
