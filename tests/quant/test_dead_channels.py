"""Dead (all-zero) and near-dead (|W| ~ 1e-12) output channels under SQ8 per-channel weights.

Such a channel outputs its bias alone. The old rule gave it the weight scale 1, a requantization
multiplier of about 75 and a magnified zero-point rounding (open-nsfw's first layer: 18 dB
per-channel against 34 dB per-tensor); a 1e-13 channel overflowed the int32 bias. The rule now
(docs/quantization.md "Dead and near-dead channels") gives a dead channel the multiplier 2^-N
exactly, so its integer output is the requantized bias, and per-channel is never worse.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from onnx import helper

from nnshell.exec import run_float
from nnshell.exec.int_exec import run_int
from nnshell.quant.fixed_point import settle_weak_channels
from nnshell.quant.sq8 import QuantOptions, quantize_graph
from nnshell.quant.stats import TensorStats
from tests.quant.test_sq8_ops import build, qsnr


def _graph(tmp_path, w: np.ndarray, b: np.ndarray):  # noqa: ANN001, ANN202
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1])
    return build(tmp_path, [node], {"x": (1, 3, 8, 8)}, {"w": w, "b": b})


def _quantize(graph, feeds: dict[str, np.ndarray], per_tensor: bool):  # noqa: ANN001, ANN202
    stats: dict[str, TensorStats] = {}
    run_float(graph, feeds, observer=lambda n, v: stats.setdefault(n, TensorStats()).update(v))
    qs = quantize_graph(graph, stats, QuantOptions(per_tensor=per_tensor))
    out = run_int(graph, qs, feeds)["y"]
    return qs, out


@pytest.mark.parametrize("tiny", [0.0, 1e-12, 1e-13])
def test_dead_and_tiny_channels_output_the_requantized_bias(tmp_path, tiny: float) -> None:
    r = np.random.default_rng(3)
    w = (r.standard_normal((6, 3, 3, 3)) * 0.2).astype(np.float32)
    w[1] = 0.0
    w[2] = tiny * r.standard_normal((3, 3, 3))
    w[3] = 1e-12 * r.standard_normal((3, 3, 3))
    b = (r.standard_normal(6) * 0.5).astype(np.float32)
    feeds = {"x": r.standard_normal((4, 3, 8, 8)).astype(np.float32)}
    graph = _graph(tmp_path, w, b)
    ref = run_float(graph, feeds)["y"].astype(np.float64)
    qs_c, out_c = _quantize(graph, feeds, per_tensor=False)
    qs_t, out_t = _quantize(graph, feeds, per_tensor=True)
    q = qs_c.tensors["y"]
    for c in (1, 2, 3):
        want = min(127, max(-128, math.floor(float(b[c]) / float(q.scale) + 0.5) + q.zero_point))
        assert np.all(out_c[:, c] == want), (c, np.unique(out_c[:, c]), want)
    snr_c = qsnr(ref, q.dequantize(out_c))
    snr_t = qsnr(ref, qs_t.tensors["y"].dequantize(out_t))
    assert snr_c >= snr_t, (snr_c, snr_t)
    nq = next(iter(qs_c.nodes.values()))
    assert int(np.abs(nq.consts["bias_total"].astype(np.int64)).max()) < 2**30


def test_weak_channel_scale_is_floored_relative_to_the_layer() -> None:
    w = np.zeros((3, 4))
    w[0] = 1.0
    w[1] = 1e-9  # live but 1e9 times weaker: floored, rounds to 0, becomes dead
    w[2, 0] = 2.0**-10  # weak but representable: keeps its own scale
    sw0 = np.abs(w).max(axis=1) / 127
    sw, wq, dead = settle_weak_channels(w, sw0, np.zeros(3), 0.05, 0.1, 3)
    assert list(dead) == [False, True, False]
    assert sw[2] == pytest.approx(sw0[2]) and wq[2, 0] == 127
    m = 0.05 * sw[1] / 0.1
    assert m == pytest.approx(2.0 ** round(math.log2(m)), rel=1e-12)
