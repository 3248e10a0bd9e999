"""aquant --compare: one table of QSNR per layer and method, top-1 per method, images read once."""

from __future__ import annotations

import json

import pytest

import nnshell.input.images as images_mod
from tests.conftest import CALIB_DIR, SAMPLE_MODEL, TEST_DIR

NORM = "x: (x/255 - 0.5)/0.5"
MODES = "minmax,percentile:99.99,mse,kl"


def _fused(shell) -> None:  # noqa: ANN001
    for line in (f"open {SAMPLE_MODEL}", f'set input_norm_func "{NORM}"', "fusions --scale8"):
        ok, _, err = shell.run(line)
        assert ok, err


def test_compare_four_methods_with_accuracy(shell, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    _fused(shell)
    calls: list[str] = []
    real_load = images_mod._load

    def counting(path, opts, expected, **kwargs):  # noqa: ANN001, ANN003, ANN202
        calls.append(path)
        return real_load(path, opts, expected, **kwargs)

    monkeypatch.setattr(images_mod, "_load", counting)
    ok, out, err = shell.run(f"aquant {CALIB_DIR} --compare {MODES} --validate {TEST_DIR} --json")
    assert ok, err
    assert len(calls) == 256 + 540 and len(set(calls)) == len(calls)  # every image read once
    doc = json.loads(out)
    assert doc["modes"] == MODES.split(",")
    assert len(doc["layers"]) == 5
    for layer in doc["layers"]:
        assert set(layer["qsnr"]) == set(doc["modes"])
        assert all(20.0 < v < 60.0 for v in layer["qsnr"].values())
    assert set(doc["quant_top1"]) == set(doc["modes"]) and doc["validate_images"] == 540
    assert all(0.9 <= a <= 1.0 for a in doc["quant_top1"].values())
    assert doc["float_top1"] >= 0.95
    assert doc["best"] in doc["modes"] and sorted(doc["ranking"]) == sorted(doc["modes"])
    # the session was not quantized by the comparison, but kept the statistics it collected
    session = shell.app.session
    assert session.qstate is None and session.stats is not None
    ok, out, err = shell.run("aquant --mode mse")
    assert ok and "reused the statistics of 256" in out


def test_compare_table_text(shell) -> None:  # noqa: ANN001
    _fused(shell)
    assert shell.run(f"aquant {CALIB_DIR}")[0]
    before = shell.app.session.qstate
    ok, out, err = shell.run(f"aquant {CALIB_DIR} --compare {MODES} --validate {TEST_DIR}")
    assert ok, err
    for m in MODES.split(","):
        assert m in out
    assert "top-1 (540 img)" in out and "highest output QSNR:" in out and "best top-1:" in out
    assert "_conv1_Conv_fusion" in out and "_fc3_Gemm" in out
    assert shell.app.session.qstate is before  # the quantization is left as it was
    # no files: the stored statistics, the sample re-read from their files
    ok, out, err = shell.run("aquant --compare minmax,mse")
    assert ok, err
    assert "minmax" in out and "mse" in out and "top-1" not in out


def test_compare_bad_mode_is_one_error(shell) -> None:  # noqa: ANN001
    _fused(shell)
    ok, _, err = shell.run(f"aquant {CALIB_DIR} --compare minmax,foo")
    assert not ok and err.count("error:") == 1 and "foo" in err
