"""Random command lines through the real shell: one error line per failure, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fuzz.generators import command_lines, command_vocabulary
from tests.fuzz.harness import make_workspace, prepared_shell, run_shell_case

CI_SEED = 11
CI_LINES = 150


def test_random_command_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_workspace(tmp_path)
    monkeypatch.chdir(tmp_path)  # every path token is relative: writes stay in tmp_path
    driver = prepared_shell(tmp_path)
    vocab = command_vocabulary(driver.app)
    assert {"open", "aquant", "show", "set"} <= set(vocab)
    failures, kinds = [], {"ok": 0, "error": 0, "FAIL": 0}
    for line in command_lines(CI_SEED, CI_LINES, vocab):
        out = run_shell_case(driver, line, limit=15)
        kinds[out.kind] += 1
        if out.failed:
            failures.append(out.detail)
    assert not failures, "\n".join(failures[:20])
    assert kinds["error"] > 20 and kinds["ok"] > 10
    ok, _, err = driver.run("show")
    assert ok, err


@pytest.mark.parametrize(
    "line",
    [
        'open "unterminated',
        "open \x00model.onnx",
        "show 99",
        "set batch_size 1e308",
        "aquant calib -N \"__import__('os')\"",
        "set input_norm_func x.__class__",
        "fusions --scale8 --pow2",
        "qshow a:b",
        "模型",
        "dump calib/*.png -D 0",
    ],
)
def test_hostile_lines_one_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, line: str
) -> None:
    make_workspace(tmp_path, n_images=2)
    monkeypatch.chdir(tmp_path)
    driver = prepared_shell(tmp_path)
    out = run_shell_case(driver, line)
    assert out.kind == "error", out
