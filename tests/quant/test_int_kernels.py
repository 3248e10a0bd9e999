"""Integer kernels against plain integer references written from SQ8.md, bit for bit."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from nnshell.importers.onnx_importer import load_onnx
from nnshell.passes import run_scheme
from nnshell.quant.fixed_point import QType
from nnshell.quant.sq8 import QuantOptions, quantize_graph
from nnshell.quant.stats import TensorStats


def _conv_model(path, pads: list[int]) -> str:  # noqa: ANN001
    rng = np.random.default_rng(1)
    w = numpy_helper.from_array(rng.normal(size=(5, 3, 3, 3)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.normal(size=(5,)).astype(np.float32), "b")
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=pads),
        helper.make_node("Relu", ["c"], ["y"], name="relu"),
    ]
    g = helper.make_graph(
        nodes,
        "t",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 7, 7])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [w, b],
    )
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), path)
    return str(path)


def _round_half_up(x: Fraction) -> int:
    return math.floor(x + Fraction(1, 2))


def _multiplier_value(m: float, k: int) -> Fraction:
    """SQ8 §4 written for this test: ``M·2^-N`` is ``m`` rounded half up to the ``b`` most
    significant bits, ``b`` = the headroom budget (``K·2^14`` must leave room in 31 bits, at most
    8) less what ``N <= 24`` costs. Dropping bits while M is even never changes the value."""
    acc_bits = 0
    while k * 128 * 128 > 2**acc_bits:
        acc_bits += 1
    exact = Fraction(m)
    e = 0
    while Fraction(2) ** e <= exact:
        e += 1
    while Fraction(2) ** (e - 1) > exact:
        e -= 1
    b = max(0, min(8, 31 - acc_bits, 24 + e))
    grid = Fraction(2) ** (e - b)
    return _round_half_up(exact / grid) * grid


def _reference_conv(xs: np.ndarray, w: np.ndarray, bias: np.ndarray, qi, qo, pads) -> np.ndarray:  # noqa: ANN001
    """Conv + ReLU in SQ8 from first principles (SQ8.md §3-§5), sharing nothing with the
    quantizer but the activation qtypes (its range choices): per-channel weights
    ``round(W/(max|W|/127))``, bias ``round(B/(Si·Sw))``, the zero points folded exactly, the
    multiplier as an exact rational, direct loops over output positions."""
    si, zi, so, zo = float(qi.scale), int(qi.zero_point), float(qo.scale), int(qo.zero_point)
    w64 = w.astype(np.float64)
    sw = np.abs(w64).reshape(w.shape[0], -1).max(axis=1) / 127
    wq = np.clip(np.floor(w64 / sw[:, None, None, None] + 0.5), -127, 127).astype(np.int64)
    xq = np.clip(np.floor(xs.astype(np.float64) / si + 0.5) + zi, -128, 127).astype(np.int64)
    x = np.pad(xq - zi, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    nb, _, h, wd = x.shape
    out = np.zeros((nb, w.shape[0], h - 2, wd - 2), np.int64)
    for c in range(w.shape[0]):
        bq = _round_half_up(Fraction(float(bias[c])) / Fraction(si * sw[c]))
        m = _multiplier_value(si * sw[c] / so, w[0].size)
        z_out = _round_half_up(Fraction(zo * so) / Fraction(si * sw[c]))
        for n in range(nb):
            for i in range(h - 2):
                for j in range(wd - 2):
                    acc = int((x[n, :, i : i + 3, j : j + 3] * wq[c]).sum()) + bq + z_out
                    y = min(127, max(-128, _round_half_up(acc * m)))
                    out[n, c, i, j] = max(y, zo)  # the fused ReLU: max(code, zero point)
    return out


def test_conv_relu_int_matches_first_principles_reference(tmp_path) -> None:  # noqa: ANN001
    from nnshell.exec import run_float
    from nnshell.exec.int_exec import run_int

    # an input whose calibrated min is exactly 0 is asymmetric (Z = -128): the padded conv pads
    # with Z, the reference pads x - Z with 0 (issue 17); --nntool_padding forces Z = 0
    cases = [([0, 0, 0, 0], False, False), ([1, 1, 1, 1], False, False)]
    cases += [([1, 1, 1, 1], True, False), ([1, 1, 1, 1], True, True)]
    for pads, positive, nntool in cases:
        g = load_onnx(_conv_model(tmp_path / "c.onnx", pads))
        w = g.tensors["w"].const.copy()
        bias = g.tensors["b"].const.copy()
        run_scheme(g, "scale8")
        rng = np.random.default_rng(2)
        xs = rng.normal(size=(4, 3, 7, 7)).astype(np.float32)
        if positive:
            xs = np.abs(xs)
            xs[0, 0, 0, 0] = 0.0
        stats: dict[str, TensorStats] = {}
        run_float(
            g, {"x": xs}, observer=lambda n, v, s=stats: s.setdefault(n, TensorStats()).update(v)
        )
        qs = quantize_graph(g, stats, QuantOptions(nntool_padding=nntool))
        ours = run_int(g, qs, {"x": xs})[g.outputs[0]]
        ref = _reference_conv(xs, w, bias, qs.tensors["x"], qs.tensors[g.outputs[0]], pads)
        np.testing.assert_array_equal(ours, ref)
        assert len(np.unique(ref)) > 20  # the outputs spread over the codes: a real check
        if positive:
            assert (qs.tensors["x"].zero_point == 0) is nntool
            assert ("padding" in (qs.tensors["x"].forced_by or "")) is nntool


def test_multiplier_oracle_on_hand_values() -> None:
    # 0.0006191 = 0.6339...·2^-10: 8 bits -> round(0.6339·256) = 162 -> 81·2^-17 (SQ8.md §9)
    assert _multiplier_value(0.0006191, 75) == Fraction(81, 2**17)
    assert _multiplier_value(0.75, 1) == Fraction(3, 4)


def test_qtype_roundtrip_used_by_executor() -> None:
    q = QType(0.05, -3, symmetric=False)
    codes = np.arange(-128, 128)
    assert np.array_equal(q.quantize(q.dequantize(codes)), codes)
