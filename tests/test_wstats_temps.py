"""stats (weight QSNR per layer and channel) and temps (live activations per step)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nnshell.analysis.footprint import peak_detail
from nnshell.analysis.temps import temps
from nnshell.analysis.wstats import QSNR_EXACT, weight_stats
from nnshell.importers.onnx_importer import load_onnx
from nnshell.ir import Graph, Node, TensorInfo
from tests.conftest import SAMPLE_MODEL


def _tiny() -> Graph:
    g = Graph("tiny")
    w = np.array([[1.27, -1.27], [0.004, 0.006]], dtype=np.float32)
    g.tensors = {
        "x": TensorInfo("x", (1, 2)),
        "W": TensorInfo("W", (2, 2), const=w),
        "b": TensorInfo("b", (2,), const=np.array([0.5, -0.25], dtype=np.float32)),
        "y": TensorInfo("y", (1, 2)),
    }
    g.inputs, g.outputs = ["x"], ["y"]
    g.nodes = [Node("fc", "Gemm", ["x", "W", "b"], ["y"])]
    return g


def test_qsnr_hand_computed() -> None:
    (row,) = weight_stats(_tiny(), threshold=30.0)
    # scale = 1.27/127 = 0.01; channel 1: 0.004 -> 0, 0.006 -> 0.01
    noise = 0.004**2 + 0.004**2
    signal1 = 0.004**2 + 0.006**2
    assert row.channels[0].qsnr == QSNR_EXACT
    assert row.channels[1].qsnr == pytest.approx(10 * math.log10(signal1 / noise), rel=1e-4)
    total = 10 * math.log10((2 * 1.27**2 + signal1) / noise)
    assert row.qsnr == pytest.approx(total, rel=1e-4)
    assert row.low_channels == [1]
    assert (row.bias_min, row.bias_max) == (-0.25, 0.5)
    assert weight_stats(_tiny(), threshold=1.0)[0].low_channels == []


def test_stats_on_sample_selects_weighted_layers() -> None:
    g = load_onnx(str(SAMPLE_MODEL))
    rows = weight_stats(g)
    assert [r.step for r in rows] == [0, 3, 7, 9, 11]
    assert all(r.qsnr > 20 for r in rows)
    assert [r.step for r in weight_stats(g, steps=[3, 4])] == [3]


def test_temps_peak_is_footprints() -> None:
    g = load_onnx(str(SAMPLE_MODEL))
    rows = temps(g)
    assert max(r.float_bytes for r in rows) == peak_detail(g, lambda t: g.tensors[t].size * 4).bytes
    # step 0: the input (3x32x32) and conv1's output (6x28x28) are live together
    assert rows[0].live == ["input", g.nodes[0].outputs[0]]
    assert rows[0].float_bytes == (3 * 32 * 32 + 6 * 28 * 28) * 4
    assert rows[-1].live[-1] == "output" and rows[0].quant_bytes is None


def test_shell_stats_temps(shell) -> None:  # noqa: ANN001
    assert shell.run(f"open {SAMPLE_MODEL}")[0]
    ok, out, err = shell.run("stats -q 30")
    assert ok, err
    assert "_fc1_Gemm" in out and "120x400" in out
    ok, out, _ = shell.run("stats -s 3")
    assert ok and "_conv2_Conv: weights per output channel" in out
    ok, out, _ = shell.run("temps")
    assert ok and "live activations per step" in out and "*" in out
