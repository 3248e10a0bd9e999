"""Integer kernels against plain integer references written from SQ8.md, bit for bit."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from nnshell.importers.onnx_importer import load_onnx
from nnshell.passes import run_scheme
from nnshell.quant.fixed_point import QType, clip8, rnorm
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


def _reference_conv(xq: np.ndarray, nq, pads: list[int]) -> np.ndarray:  # noqa: ANN001
    """Direct SQ8.md §5 loops over output positions in int64 (no BLAS, no im2col)."""
    wq = nq.consts["weights"].astype(np.int64)
    bt = nq.consts["bias_total"].astype(np.int64)
    m, n = nq.consts["mul"].astype(np.int64), nq.consts["shift"].astype(np.int64)
    x = np.pad(xq.astype(np.int64), ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    nb, _, h, w = x.shape
    out = np.zeros((nb, wq.shape[0], h - 2, w - 2), np.int64)
    for i in range(h - 2):
        for j in range(w - 2):
            acc = np.einsum("ncij,mcij->nm", x[:, :, i : i + 3, j : j + 3], wq) + bt
            out[:, :, i, j] = clip8(rnorm(acc * m, n))
    return out


def test_conv_relu_int_matches_direct_reference(tmp_path) -> None:  # noqa: ANN001
    from nnshell.exec.int_exec import run_int

    for pads in ([0, 0, 0, 0], [1, 1, 1, 1]):
        g = load_onnx(_conv_model(tmp_path / "c.onnx", pads))
        run_scheme(g, "scale8")
        rng = np.random.default_rng(2)
        xs = rng.normal(size=(4, 3, 7, 7)).astype(np.float32)
        from nnshell.exec import run_float

        stats: dict[str, TensorStats] = {}
        run_float(
            g, {"x": xs}, observer=lambda n, v, s=stats: s.setdefault(n, TensorStats()).update(v)
        )
        qs = quantize_graph(g, stats, QuantOptions())
        node = g.nodes[0]
        nq = qs.nodes[node.name]
        xq = qs.tensors["x"].quantize(xs)
        ours = run_int(g, qs, {"x": xs})[g.outputs[0]]
        ref = _reference_conv(xq, nq, pads)
        zo = qs.tensors[g.outputs[0]].zero_point
        np.testing.assert_array_equal(ours, np.maximum(ref, zo))
        if any(pads):
            assert qs.tensors["x"].zero_point == 0  # a padded conv forces a symmetric input
            assert "padding" in (qs.tensors["x"].forced_by or "")


def test_qtype_roundtrip_used_by_executor() -> None:
    q = QType(0.05, -3, symmetric=False)
    codes = np.arange(-128, 128)
    assert np.array_equal(q.quantize(q.dequantize(codes)), codes)
