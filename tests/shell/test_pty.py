"""An interactive session in a pseudo-terminal: open, tab-complete a node name, quit."""

from __future__ import annotations

import sys

import pexpect

from tests.conftest import ROOT, SAMPLE_MODEL


def test_interactive_tab_completion(tmp_path) -> None:  # noqa: ANN001
    env = {"HOME": str(tmp_path), "TERM": "xterm", "PATH": "/usr/bin:/bin", "COLUMNS": "200"}
    child = pexpect.spawn(
        sys.executable, ["-m", "nnshell"], cwd=str(ROOT), env=env, encoding="utf-8", timeout=60,
        dimensions=(40, 200),
    )
    try:
        child.expect_exact("nnshell > ")
        child.send(f"open {SAMPLE_MODEL}\r")
        child.expect_exact("nnshell (cifar_net) > ")
        child.send("show _fc")
        child.send("\t")
        child.expect("_fc1_Gemm")
        child.send("2\t")  # now unique: completes to _fc2_Gemm
        child.send("\r")
        child.expect(r"_fc2_Gemm\s.*Gemm")
        child.expect_exact("nnshell (cifar_net) > ")
        child.send("quit\r")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
