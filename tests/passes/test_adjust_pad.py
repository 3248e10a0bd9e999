"""adjust rule 5 (issue 20, visual wake): a Pad of the NHWC input before the transpose to NCHW
swaps with the transpose, so the input becomes CHW and fold_pad can reach the conv."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from nnshell.exec import run_float
from nnshell.session import Session


def _model(path: Path) -> Path:
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    pads = numpy_helper.from_array(np.array([0, 1, 0, 0, 0, 1, 2, 0], np.int64), "pads")
    nodes = [
        helper.make_node("Pad", ["x", "pads"], ["p"], mode="constant"),
        helper.make_node("Transpose", ["p"], ["t"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["t", "w"], ["y"], strides=[2, 2]),
    ]
    graph = helper.make_graph(
        nodes,
        "padnhwc",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 9, 8, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [w, pads],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def test_pad_of_an_nhwc_input_moves_below_the_transpose_and_folds(tmp_path: Path) -> None:
    path = _model(tmp_path / "m.onnx")
    x = np.random.default_rng(1).standard_normal((1, 9, 8, 3)).astype(np.float32)
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    s = Session()
    s.open(str(path))
    res = s.adjust()
    assert any("moved above" in e for e in res.edits)
    g = s.graph
    assert [n.op for n in g.nodes] == ["Pad", "Conv"] and g.tensors["x"].dims == (3, 9, 8)
    got = run_float(g, {"x": x.transpose(0, 3, 1, 2)})[g.outputs[0]]
    np.testing.assert_allclose(got, want[0], atol=1e-5)
    s.fusions("scale8")
    assert "Pad" not in {n.op for n in s.graph.nodes}
    got = run_float(s.graph, {"x": x.transpose(0, 3, 1, 2)})[s.graph.outputs[0]]
    np.testing.assert_allclose(got, want[0], atol=1e-5)
