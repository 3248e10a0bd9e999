"""``--nptype`` (NNTool's name of ``-F``) on the commands that read images or tensors."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.conftest import SAMPLE_MODEL


def test_nptype_is_the_raw_dtype_option(shell, tmp_path: Path) -> None:  # noqa: ANN001
    x = np.random.default_rng(0).uniform(-1, 1, (3, 32, 32)).astype(np.float32)
    path = tmp_path / "x.npy"
    np.save(path, x)
    for line in (f"open {SAMPLE_MODEL}", "adjust", "fusions --scale8"):
        assert shell.run(line)[0]
    ok, out, err = shell.run(f"aquant {path} --nptype int8")
    assert not ok and "holds float32, but -F says int8" in err and "Traceback" not in err
    ok, out, err = shell.run(f"aquant {path} --nptype float32")
    assert ok, err
    assert "calibrated on 1 image(s)" in out
