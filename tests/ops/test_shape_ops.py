"""Data-movement, padding, global pooling and reductions against onnxruntime, batched (N=2)."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from nnshell.errors import ShapeError
from nnshell.exec.float_exec import run_float
from tests.helpers import compare_with_ort, load_model, one_node_model, rand

X = (2, 3, 4, 5)


def _feeds(shape: tuple[int, ...] = X) -> dict[str, np.ndarray]:
    return {"x": rand(shape, seed=20)}


def _i64(*v: int) -> np.ndarray:
    return np.array(v, dtype=np.int64)


@pytest.mark.parametrize("perm", [(0, 1, 2, 3), (0, 2, 3, 1), (0, 3, 1, 2), (0, 2, 1, 3)])
def test_transpose(perm: tuple[int, ...]) -> None:
    compare_with_ort(one_node_model("Transpose", {"x": X}, {"perm": perm}), _feeds())


@pytest.mark.parametrize("attrs", [{"perm": (1, 0, 2, 3)}, {}])
def test_transpose_moving_batch_rejected(attrs: dict[str, Any]) -> None:
    with pytest.raises(ShapeError, match="batch"):
        load_model(one_node_model("Transpose", {"x": X}, attrs))


@pytest.mark.parametrize("opset", [11, 13])
@pytest.mark.parametrize("axes", [(2,), (-1,), (2, 4), None])
def test_squeeze(opset: int, axes: tuple[int, ...] | None) -> None:
    shape = (2, 3, 1, 4, 1)
    if axes is None:
        model = one_node_model("Squeeze", {"x": shape}, opset=opset)
    elif opset < 13:
        model = one_node_model("Squeeze", {"x": shape}, {"axes": axes}, opset=opset)
    else:
        model = one_node_model("Squeeze", {"x": shape}, initializers={"a": _i64(*axes)})
    compare_with_ort(model, _feeds(shape))


@pytest.mark.parametrize("opset", [11, 13])
@pytest.mark.parametrize("axes", [(1,), (-1,), (2, 5), (1, 3)])
def test_unsqueeze(opset: int, axes: tuple[int, ...]) -> None:
    if opset < 13:
        model = one_node_model("Unsqueeze", {"x": X}, {"axes": axes}, opset=opset)
    else:
        model = one_node_model("Unsqueeze", {"x": X}, initializers={"a": _i64(*axes)})
    compare_with_ort(model, _feeds())


@pytest.mark.parametrize(("op", "axes"), [("Unsqueeze", (0,)), ("Squeeze", (0,))])
def test_squeeze_batch_rejected(op: str, axes: tuple[int, ...]) -> None:
    model = one_node_model(op, {"x": (1, 3, 1)}, {"axes": axes}, opset=11)
    with pytest.raises(ShapeError, match="batch"):
        load_model(model)


@pytest.mark.parametrize("axis", [1, 2, -1])
def test_concat(axis: int) -> None:
    b = list(X)
    b[axis] = 2
    model = one_node_model("Concat", {"x": X, "z": tuple(b)}, {"axis": axis})
    compare_with_ort(model, {"x": rand(X, seed=21), "z": rand(b, seed=22)})


def test_concat_with_constant() -> None:
    c = rand((1, 2, 4, 5), seed=23)
    model = one_node_model("Concat", {"x": X}, {"axis": 1}, {"c": c}, node_inputs=["c", "x", "c"])
    # ONNX itself only accepts batch 1 here; nnshell repeats the constant over a larger batch
    x = rand(X, seed=24)
    one = [compare_with_ort(model, {"x": x[i : i + 1]})["y0"] for i in range(X[0])]
    both = run_float(load_model(model), {"x": x})["y0"]
    np.testing.assert_array_equal(both, np.concatenate(one))


def test_concat_batch_rejected() -> None:
    with pytest.raises(ShapeError, match="batch"):
        load_model(one_node_model("Concat", {"x": X, "z": X}, {"axis": 0}))


@pytest.mark.parametrize(
    ("opset", "attrs", "inits", "n_out"),
    [
        (11, {"axis": 1}, {}, 3),
        (11, {"axis": 3, "split": (2, 3)}, {}, 2),
        (13, {"axis": -1}, {"s": _i64(1, 1, 3)}, 3),
        (13, {"axis": 2}, {}, 2),
        (18, {"axis": 3, "num_outputs": 2}, {}, 2),
    ],
)
def test_split(opset: int, attrs: dict[str, Any], inits: dict[str, np.ndarray], n_out: int) -> None:
    model = one_node_model("Split", {"x": X}, attrs, inits, opset, n_outputs=n_out)
    compare_with_ort(model, _feeds())


@pytest.mark.parametrize(
    ("starts", "ends", "axes", "steps"),
    [
        ((1,), (3,), (2,), None),
        ((0, 1), (2, -1), (1, 3), None),
        ((-1,), (-100,), (3,), (-1,)),
        ((3, 0), (0, 100), (2, 3), (-2, 2)),
        ((0,), (1 << 62,), (0,), None),
    ],
)
def test_slice(starts: tuple, ends: tuple, axes: tuple, steps: tuple | None) -> None:
    inits = {"s": _i64(*starts), "e": _i64(*ends), "a": _i64(*axes)}
    if steps is not None:
        inits["k"] = _i64(*steps)
    compare_with_ort(one_node_model("Slice", {"x": X}, initializers=inits), _feeds())


def test_slice_opset9_attributes() -> None:
    attrs = {"starts": (1, 0), "ends": (3, -2), "axes": (2, 3)}
    compare_with_ort(one_node_model("Slice", {"x": X}, attrs, opset=9), _feeds())


def test_slice_batch_rejected() -> None:
    inits = {"s": _i64(0), "e": _i64(1), "a": _i64(0)}
    with pytest.raises(ShapeError, match="batch"):
        load_model(one_node_model("Slice", {"x": X}, initializers=inits))


@pytest.mark.parametrize(("axis", "idx"), [(1, _i64(2, 0)), (3, _i64(-1)), (2, np.array(1))])
def test_gather_constant_indices(axis: int, idx: np.ndarray) -> None:
    model = one_node_model("Gather", {"x": X}, {"axis": axis}, {"i": idx.astype(np.int64)})
    compare_with_ort(model, _feeds())


@pytest.mark.parametrize(
    ("opset", "mode", "pads", "value"),
    [
        (2, "constant", (0, 0, 1, 2, 0, 0, 3, 0), 0.0),
        (2, "constant", (0, 1, 0, 1, 0, 1, 2, 1), 1.5),
        (11, "constant", (0, 0, 1, 1, 0, 0, 1, 1), 0.0),
        (11, "constant", (0, 0, 2, 1, 0, 0, -1, 2), -2.0),
        (11, "reflect", (0, 0, 2, 1, 0, 0, 1, 3), None),
        (13, "edge", (0, 1, 1, 0, 0, 2, 0, 3), None),
    ],
)
def test_pad(opset: int, mode: str, pads: tuple[int, ...], value: float | None) -> None:
    if opset < 11:
        attrs = {"mode": mode, "pads": pads, "value": value or 0.0}
        model = one_node_model("Pad", {"x": X}, attrs, opset=opset)
    else:
        inits = {"p": _i64(*pads)}
        if value is not None:
            inits["v"] = np.array(value, np.float32)
        model = one_node_model("Pad", {"x": X}, {"mode": mode}, inits, opset=opset)
    compare_with_ort(model, _feeds())


def test_pad_axes_input_opset18() -> None:
    inits = {"p": _i64(1, 2, 0, 1), "v": np.array(0.5, np.float32), "a": _i64(-1, 2)}
    compare_with_ort(one_node_model("Pad", {"x": X}, {}, inits, opset=18), _feeds())


def test_pad_batch_rejected() -> None:
    model = one_node_model("Pad", {"x": X}, {}, {"p": _i64(1, 0, 0, 0, 0, 0, 0, 0)})
    with pytest.raises(ShapeError, match="batch"):
        load_model(model)


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
@pytest.mark.parametrize("shape", [(2, 3, 7, 5), (2, 4, 9), (2, 2, 3, 4, 5)])
def test_global_pool(op: str, shape: tuple[int, ...]) -> None:
    compare_with_ort(one_node_model(op, {"x": shape}), _feeds(shape))


@pytest.mark.parametrize("op", ["ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum"])
@pytest.mark.parametrize("axes", [(2, 3), (1,), (-1,)])
@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize("opset", [11, 18])
def test_reduce(op: str, axes: tuple[int, ...], keepdims: int, opset: int) -> None:
    if opset < 18 and not (op == "ReduceSum" and opset >= 13):
        model = one_node_model(op, {"x": X}, {"axes": axes, "keepdims": keepdims}, opset=opset)
    else:
        model = one_node_model(op, {"x": X}, {"keepdims": keepdims}, {"a": _i64(*axes)}, opset)
    compare_with_ort(model, _feeds())


def test_reduce_all_axes_rejected() -> None:
    with pytest.raises(ShapeError, match="batch"):
        load_model(one_node_model("ReduceMean", {"x": X}, opset=13))


def _shapes_match_onnx(model: onnx.ModelProto) -> None:
    """Assert nnshell's static output shapes equal onnx shape inference on a batch-1 model."""
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    want = {
        vi.name: tuple(d.dim_value for d in vi.type.tensor_type.shape.dim)
        for vi in list(inferred.graph.value_info) + list(inferred.graph.output)
        if vi.type.tensor_type.HasField("shape")
    }
    graph = load_model(model)
    for name in graph.outputs:
        assert graph.tensor(name).shape == want[name], name


@pytest.mark.parametrize(
    ("op", "shape", "attrs", "inits", "opset", "n_out"),
    [
        ("Transpose", X, {"perm": (0, 3, 1, 2)}, {}, 13, 1),
        ("Unsqueeze", X, {}, {"a": _i64(1, -1)}, 13, 1),
        ("Squeeze", (1, 3, 1, 5), {"axes": (2,)}, {}, 11, 1),
        ("Concat", X, {"axis": 2}, {"c": np.zeros((1, 3, 2, 5), np.float32)}, 13, 1),
        ("Split", X, {"axis": 3}, {"s": _i64(2, 3)}, 13, 2),
        ("Slice", X, {}, {"s": _i64(1), "e": _i64(-1), "a": _i64(3), "k": _i64(2)}, 13, 1),
        ("Pad", X, {}, {"p": _i64(0, 0, 1, 2, 0, 0, 3, 4)}, 13, 1),
        ("Gather", X, {"axis": 1}, {"i": _i64(0, 2, 1, 1)}, 13, 1),
        ("GlobalAveragePool", X, {}, {}, 13, 1),
        ("ReduceMean", X, {"axes": (2, 3), "keepdims": 0}, {}, 13, 1),
        ("Softmax", X, {"axis": 2}, {}, 13, 1),
        ("Add", X, {}, {"c": np.zeros((4, 1), np.float32)}, 13, 1),
        ("MaxPool", X, {"kernel_shape": (3, 3), "strides": (2, 2), "ceil_mode": 1}, {}, 13, 1),
        ("AveragePool", X, {"kernel_shape": (2, 2), "auto_pad": "SAME_LOWER"}, {}, 13, 1),
    ],
)
def test_infer_matches_onnx_shape_inference(
    op: str,
    shape: tuple[int, ...],
    attrs: dict[str, Any],
    inits: dict[str, np.ndarray],
    opset: int,
    n_out: int,
) -> None:
    model = one_node_model(
        op, {"x": (1, *shape[1:])}, attrs, inits, opset, n_outputs=n_out, batch_param=False
    )
    for out in model.graph.output:  # give outputs an unknown shape to be filled by inference
        out.CopyFrom(helper.make_tensor_value_info(out.name, TensorProto.FLOAT, None))
    _shapes_match_onnx(model)
