"""The exporter's bare-protobuf constructors build byte-identical messages to onnx.helper's."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from nnshell.importers import onnx_proto


def test_make_node_matches_onnx_helper() -> None:
    cases = [
        {"kernel_shape": (3, 3), "pads": [1, 1, 1, 1], "group": 2, "auto_pad": "NOTSET"},
        {"alpha": 0.1, "beta": np.float32(2.5), "transB": True, "axis": np.int64(-1)},
        {"scales": [1.0, 2, 0.5], "mode": b"nearest", "names": ["a", "b"], "skip": None},
    ]
    for attrs in cases:
        want = onnx.helper.make_node("Op", ["x", ""], ["y"], name="n", **attrs)
        got = onnx_proto.make_node("Op", ["x", ""], ["y"], "n", **attrs)
        assert got.SerializeToString() == want.SerializeToString(), attrs


def test_from_array_and_value_info_match_onnx() -> None:
    rng = np.random.default_rng(0)
    for dtype in ("float32", "float64", "int64", "int32", "int8", "uint8", "float16", "bool"):
        a = (rng.standard_normal((2, 3, 4)) * 50).astype(dtype)
        want = numpy_helper.from_array(a, "w")
        got = onnx_proto.from_array(a, "w")
        assert got.SerializeToString() == want.SerializeToString(), dtype
        assert onnx_proto.elem_type(a.dtype) == onnx.helper.np_dtype_to_tensor_dtype(a.dtype)
    scalar = np.array(3.5, np.float32)
    assert (
        onnx_proto.from_array(scalar, "s").SerializeToString()
        == numpy_helper.from_array(scalar, "s").SerializeToString()
    )
    want_vi = onnx.helper.make_tensor_value_info("x", 1, ["N", 3, 32, 32])
    assert onnx_proto.value_info("x", 1, ["N", 3, 32, 32]) == want_vi
    assert onnx_proto.value_info("y") == onnx.helper.make_empty_tensor_value_info("y")


def test_make_model_matches() -> None:
    node = onnx_proto.make_node("Relu", ["x"], ["y"], "r")
    x = onnx_proto.value_info("x", 1, ["N", 4])
    m = onnx_proto.make_model([node], "g", [x], [onnx_proto.value_info("y")], [], 13, "nnshell")
    g = onnx.helper.make_graph([node], "g", [x], [onnx.helper.make_empty_tensor_value_info("y")])
    want = onnx.helper.make_model(
        g, opset_imports=[onnx.helper.make_opsetid("", 13)], producer_name="nnshell"
    )
    want.ir_version = min(want.ir_version, 10)
    assert m.SerializeToString() == want.SerializeToString()
