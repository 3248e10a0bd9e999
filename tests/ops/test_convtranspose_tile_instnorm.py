"""ConvTranspose, Tile and InstanceNormalization against onnxruntime, batched (N=2).

Float only: none has an SQ8 or POW2 quantizer yet, so quantizing a graph that holds one must
stop at the "no quantizer" check that names the node, before calibration or code generation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from nnshell.analysis.summary import layer_infos
from nnshell.errors import ShapeError
from nnshell.exec.float_exec import run_float
from tests.conftest import CALIB_DIR
from tests.helpers import compare_with_ort, load_model, one_node_model, rand
from tests.test_onnx_zoo import CASES


def _i64(*v: int) -> np.ndarray:
    return np.array(v, dtype=np.int64)


# --------------------------------------------------------------------------- ConvTranspose

#: (input shape, kernel, attributes): every auto_pad mode, strides 1-3, pads, output_padding,
#: dilations and output_shape (smaller than, equal to and one beyond the padding-free size).
CT_CASES: list[tuple[tuple[int, ...], tuple[int, ...], dict[str, Any]]] = [
    ((2, 4, 5, 6), (3, 3), {}),
    ((2, 4, 5, 6), (3, 3), {"strides": (2, 2)}),
    ((2, 4, 5, 6), (3, 3), {"strides": (3, 3), "output_padding": (1, 2)}),
    ((2, 4, 5, 6), (3, 3), {"strides": (2, 3), "pads": (1, 0, 2, 1)}),
    ((2, 4, 5, 6), (3, 3), {"strides": (2, 2), "pads": (1, 1, 1, 1), "output_padding": (1, 1)}),
    ((2, 4, 5, 6), (3, 3), {"pads": (2, 2, 2, 2)}),
    ((2, 4, 5, 6), (3, 3), {"dilations": (2, 2)}),
    ((2, 4, 5, 6), (3, 3), {"dilations": (2, 1), "strides": (2, 2), "pads": (1, 2, 0, 1)}),
    ((2, 4, 5, 6), (2, 3), {"strides": (3, 2), "dilations": (2, 3), "output_padding": (2, 1)}),
    ((2, 4, 5, 6), (2, 4), {"strides": (2, 2), "kernel_shape": (2, 4)}),
    ((2, 4, 5, 6), (3, 3), {"auto_pad": "SAME_UPPER", "strides": (2, 2)}),
    ((2, 4, 5, 6), (3, 3), {"auto_pad": "SAME_LOWER", "strides": (2, 3)}),
    ((2, 4, 5, 6), (3, 3), {"auto_pad": "SAME_UPPER", "strides": (3, 3), "output_padding": (1, 2)}),
    ((2, 4, 5, 6), (1, 1), {"auto_pad": "SAME_UPPER", "strides": (2, 3)}),  # span < stride
    ((2, 4, 5, 6), (3, 2), {"auto_pad": "SAME_LOWER", "strides": (1, 1)}),
    ((2, 4, 5, 6), (3, 3), {"auto_pad": "VALID", "strides": (2, 2)}),
    ((2, 4, 5, 6), (3, 3), {"output_shape": (10, 13), "strides": (2, 2)}),
    ((2, 4, 5, 6), (3, 3), {"output_shape": (12, 14), "strides": (2, 2)}),  # one beyond
    ((2, 4, 5, 6), (3, 3), {"output_shape": (7, 12), "strides": (2, 2), "pads": (1, 1, 1, 1)}),
    ((2, 4, 5, 6), (3, 3), {"output_shape": (9, 12), "strides": (2, 2), "auto_pad": "SAME_UPPER"}),
    ((2, 4, 5, 6), (3, 3), {"output_shape": (9, 12), "strides": (2, 2), "auto_pad": "SAME_LOWER"}),
    (
        (2, 4, 5, 6),
        (3, 3),
        {"output_shape": (14, 19), "strides": (3, 3), "output_padding": (1, 1)},
    ),
    ((2, 4, 7), (3,), {"strides": (2,), "pads": (1, 0), "output_padding": (1,)}),  # 1-D
    ((2, 4, 7), (4,), {"auto_pad": "SAME_LOWER", "strides": (3,)}),
    ((2, 4, 3, 4, 5), (2, 3, 2), {"strides": (2, 1, 2), "pads": (0, 1, 1, 1, 0, 0)}),  # 3-D
]


@pytest.mark.parametrize(("xshape", "kernel", "attrs"), CT_CASES)
@pytest.mark.parametrize("group", [1, 2, 4])
@pytest.mark.parametrize("bias", [True, False])
def test_conv_transpose(
    xshape: tuple[int, ...], kernel: tuple[int, ...], attrs: dict[str, Any], group: int, bias: bool
) -> None:
    c = xshape[1]
    mg = 3 if group == 1 else 2 if group == 2 else 1  # group 4: depthwise
    inits = {"w": rand((c, mg, *kernel), seed=50, scale=0.4)}
    if bias:
        inits["b"] = rand((mg * group,), seed=51)
    model = one_node_model("ConvTranspose", {"x": xshape}, {**attrs, "group": group}, inits)
    compare_with_ort(model, {"x": rand(xshape, seed=52)})


def test_conv_transpose_omitted_bias_input() -> None:
    w = rand((3, 2, 3, 3), seed=53)
    model = one_node_model(
        "ConvTranspose", {"x": (2, 3, 4, 4)}, {"strides": (2, 2)}, {"w": w}, node_inputs=["x", "w"]
    )
    compare_with_ort(model, {"x": rand((2, 3, 4, 4), seed=54)})


def test_conv_transpose_batch_sizes_agree() -> None:
    """A batched run equals the concatenation of batch-1 runs."""
    model = one_node_model(
        "ConvTranspose",
        {"x": (1, 3, 5, 5)},
        {"strides": (2, 2), "pads": (1, 1, 1, 1), "output_padding": (1, 1)},
        {"w": rand((3, 4, 3, 3), seed=55), "b": rand((4,), seed=56)},
    )
    graph = load_model(model)
    x = rand((3, 3, 5, 5), seed=57)
    full = run_float(graph, {"x": x})["y0"]
    parts = np.concatenate([run_float(graph, {"x": x[i : i + 1]})["y0"] for i in range(3)])
    np.testing.assert_allclose(full, parts, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    ("attrs", "wshape", "needle"),
    [
        ({"strides": (2, 2), "output_padding": (2, 0)}, (3, 2, 3, 3), "output_padding"),
        ({"output_padding": (1, 1)}, (3, 2, 3, 3), "output_padding"),  # stride 1
        ({"strides": (2, 2), "output_shape": (13, 11)}, (3, 2, 3, 3), "output_shape 13"),
        ({"output_shape": (1, 1, 6, 6)}, (3, 2, 3, 3), "output_shape"),
        ({"kernel_shape": (2, 2)}, (3, 2, 3, 3), "kernel_shape"),
        ({"pads": (4, 4, 4, 4)}, (3, 2, 3, 3), "empty output"),
        ({"pads": (1, 1)}, (3, 2, 3, 3), "pads"),
        ({"strides": (2, 2, 2)}, (3, 2, 3, 3), "strides"),
        ({"group": 2}, (3, 2, 3, 3), "group"),
        ({}, (4, 2, 3, 3), "channels"),
    ],
)
def test_conv_transpose_rejected(
    attrs: dict[str, Any], wshape: tuple[int, ...], needle: str
) -> None:
    model = one_node_model("ConvTranspose", {"x": (2, 3, 5, 5)}, attrs, {"w": rand(wshape)})
    with pytest.raises(ShapeError, match=needle):
        load_model(model)


def test_conv_transpose_needs_constant_weights() -> None:
    model = one_node_model("ConvTranspose", {"x": (2, 3, 5, 5), "w": (3, 2, 3, 3)})
    with pytest.raises(ShapeError, match="constant weights"):
        load_model(model)


@pytest.mark.parametrize(
    ("xshape", "wshape", "attrs"),
    [
        ((1, 8, 5, 6), (8, 4, 3, 3), {"strides": (2, 2), "pads": (1, 1, 1, 1)}),
        ((1, 8, 5, 6), (8, 2, 4, 4), {"strides": (2, 2), "group": 2}),
        ((1, 8, 7), (8, 3, 5), {"strides": (3,), "output_padding": (2,)}),
    ],
)
def test_conv_transpose_macs(
    xshape: tuple[int, ...], wshape: tuple[int, ...], attrs: dict[str, Any]
) -> None:
    """MACs = input pixels × weight count (each input value meets each of its group's taps),
    and that equals the number of (input, tap) products a direct scatter computes."""
    model = one_node_model("ConvTranspose", {"x": xshape}, attrs, {"w": rand(wshape)})
    (row,) = layer_infos(load_model(model))
    pixels = int(np.prod(xshape[2:]))
    assert row.macs == pixels * int(np.prod(wshape))
    group = attrs.get("group", 1)
    c, mg, k = xshape[1], wshape[1], int(np.prod(wshape[2:]))
    assert row.macs == pixels * c * mg * k == pixels * (c // group) * (mg * group) * k


def test_show_counts_conv_transpose_macs(shell, tmp_path: Path) -> None:  # noqa: ANN001
    model = one_node_model(
        "ConvTranspose",
        {"x": (1, 3, 8, 8)},
        {"strides": (2, 2), "pads": (1, 1, 1, 1), "output_padding": (1, 1)},
        {"w": rand((3, 6, 3, 3)), "b": rand((6,))},
    )
    path = tmp_path / "ct.onnx"
    onnx.save(model, str(path))
    ok, _, err = shell.run(f"open {path}")
    assert ok, err
    ok, out, err = shell.run("show --json")
    assert ok, err
    import json

    (row,) = json.loads(out)["layers"]
    assert row["op"] == "ConvTranspose" and row["out_dims"][0] == [6, 16, 16]
    assert row["macs"] == 8 * 8 * 3 * 6 * 9


# --------------------------------------------------------------------------- Tile


@pytest.mark.parametrize(
    ("shape", "repeats"),
    [
        ((2, 3, 4, 5), (1, 1, 1, 1)),
        ((2, 3, 4, 5), (1, 2, 3, 1)),
        ((2, 3, 4, 5), (1, 1, 1, 4)),
        ((2, 3), (1, 3)),
        ((2, 3, 4), (1, 2, 2)),
    ],
)
def test_tile(shape: tuple[int, ...], repeats: tuple[int, ...]) -> None:
    model = one_node_model("Tile", {"x": shape}, initializers={"r": _i64(*repeats)})
    compare_with_ort(model, {"x": rand(shape, seed=60)})


def test_tile_batch_repeat_rejected() -> None:
    model = one_node_model("Tile", {"x": (2, 3, 4)}, initializers={"r": _i64(2, 1, 1)})
    with pytest.raises(ShapeError, match="would mix the batch axis"):
        load_model(model)


@pytest.mark.parametrize(
    ("repeats", "needle"), [((1, 2), "one value per axis"), ((1, 0, 1), "positive")]
)
def test_tile_bad_repeats_rejected(repeats: tuple[int, ...], needle: str) -> None:
    model = one_node_model("Tile", {"x": (2, 3, 4)}, initializers={"r": _i64(*repeats)})
    with pytest.raises(ShapeError, match=needle):
        load_model(model)


def test_tile_computed_repeats_rejected() -> None:
    model = one_node_model("Tile", {"x": (2, 3, 4)}, node_inputs=["x", "x"])
    with pytest.raises(ShapeError, match="constant repeats"):
        load_model(model)


# --------------------------------------------------------------------------- InstanceNormalization


@pytest.mark.parametrize("shape", [(2, 3, 5, 6), (2, 4, 7), (2, 2, 3, 4, 5), (3, 3, 1, 2)])
@pytest.mark.parametrize(("opset", "attrs"), [(6, {}), (13, {"epsilon": 1e-2}), (13, {})])
def test_instance_norm(shape: tuple[int, ...], opset: int, attrs: dict[str, Any]) -> None:
    c = shape[1]
    rng = np.random.default_rng(61)
    inits = {
        "scale": rng.uniform(0.5, 1.5, c).astype(np.float32),
        "b": rng.standard_normal(c).astype(np.float32),
    }
    model = one_node_model("InstanceNormalization", {"x": shape}, attrs, inits, opset)
    x = rand(shape, seed=62, scale=3.0) + np.float32(2.0)  # a mean far from 0
    compare_with_ort(model, {"x": x})


@pytest.mark.parametrize(
    ("xshape", "inits", "needle"),
    [
        ((2, 3, 4), {"s": np.ones(2, np.float32), "b": np.zeros(3, np.float32)}, "2 values"),
        ((2, 3), {"s": np.ones(3, np.float32), "b": np.zeros(3, np.float32)}, "spatial"),
    ],
)
def test_instance_norm_rejected(
    xshape: tuple[int, ...], inits: dict[str, np.ndarray], needle: str
) -> None:
    model = one_node_model("InstanceNormalization", {"x": xshape}, initializers=inits)
    with pytest.raises(ShapeError, match=needle):
        load_model(model)


def test_instance_norm_needs_constant_scale() -> None:
    model = one_node_model(
        "InstanceNormalization",
        {"x": (2, 3, 4), "s": (3,)},
        initializers={"b": np.zeros(3, np.float32)},
    )
    with pytest.raises(ShapeError, match="constant scale"):
        load_model(model)


# --------------------------------------------------------------------------- zoo and quantization

#: The onnx-wheel zoo cases that needed these three ops (they used to be skipped).
ZOO = [
    "test_ConvTranspose2d",
    "test_ConvTranspose2d_no_bias",
    "test_operator_convtranspose",
    "test_operator_repeat",
    "test_operator_repeat_dim_overflow",
    "test_operator_symbolic_override",
]


def _tensor(path: str) -> np.ndarray:
    t = onnx.TensorProto()
    with open(path, "rb") as fh:
        t.ParseFromString(fh.read())
    return onnx.numpy_helper.to_array(t)


@pytest.mark.parametrize("name", ZOO)
def test_zoo_cases_run(name: str) -> None:
    """Imported (not skipped) and equal to the stored outputs, like tests/test_onnx_zoo.py."""
    (case,) = [c for c in CASES if c.name == name]
    graph = load_model(onnx.load(str(case / "model.onnx")))
    data_sets = sorted(case.glob("test_data_set_*"))
    assert data_sets
    for ds in data_sets:
        inputs = [_tensor(str(p)) for p in sorted(ds.glob("input_*.pb"))]
        outputs = [_tensor(str(p)) for p in sorted(ds.glob("output_*.pb"))]
        got = run_float(graph, dict(zip(graph.inputs, inputs, strict=True)))
        for out, want in zip(graph.outputs, outputs, strict=True):
            np.testing.assert_allclose(got[out], want, rtol=1e-3, atol=1e-4, err_msg=out)


def _conv_then(op: str, tmp_path: Path) -> Path:
    """A 3-channel 32x32 model: Conv then ``op`` (the sample images fit its input)."""
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(rand((4, 3, 3, 3), seed=63, scale=0.2), "w")]
    if op == "ConvTranspose":
        inits.append(numpy_helper.from_array(rand((4, 4, 2, 2), seed=64), "w2"))
        tail = helper.make_node(op, ["c", "w2"], ["y"], name="up", strides=(2, 2))
    elif op == "Tile":
        inits.append(numpy_helper.from_array(_i64(1, 1, 2, 2), "r"))
        tail = helper.make_node(op, ["c", "r"], ["y"], name="up")
    else:
        inits.append(numpy_helper.from_array(np.ones(4, np.float32), "s"))
        inits.append(numpy_helper.from_array(np.zeros(4, np.float32), "b"))
        tail = helper.make_node(op, ["c", "s", "b"], ["y"], name="up")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=(1, 1, 1, 1)), tail],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 32, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path / f"{op}.onnx"
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("op", ["ConvTranspose", "Tile"])
@pytest.mark.parametrize(("scheme", "label"), [("scale8", "SQ8"), ("pow2", "POW2")])
def test_conv_transpose_and_tile_quantize(
    shell,  # noqa: ANN001
    op: str,
    scheme: str,
    label: str,
    tmp_path: Path,
) -> None:
    """Both have SQ8 and POW2 hooks (tests/codegen/test_transpose_tile_quant.py checks them)."""
    ok, _, err = shell.run(f"open {_conv_then(op, tmp_path)}")
    assert ok, err
    ok, _, err = shell.run(f"fusions --{scheme}")
    assert ok, err
    ok, _, err = shell.run(f"aquant -s {label} {CALIB_DIR}")
    assert ok, err
    assert shell.app.session.qstate is not None


@pytest.mark.parametrize("op", ["InstanceNormalization"])
@pytest.mark.parametrize(("scheme", "label"), [("scale8", "SQ8"), ("pow2", "POW2")])
def test_quantize_names_the_unquantizable_node(
    shell,  # noqa: ANN001
    op: str,
    scheme: str,
    label: str,
    tmp_path: Path,
) -> None:
    ok, _, err = shell.run(f"open {_conv_then(op, tmp_path)}")
    assert ok, err
    ok, _, err = shell.run(f"fusions --{scheme}")
    assert ok, err
    ok, _, err = shell.run(f"aquant -s {label} {CALIB_DIR}")
    assert not ok
    assert f"cannot be quantized in {label}: up ({op}): {op} has no {label} quantizer" in err
    assert shell.app.session.qstate is None and shell.app.session.stats is None
    ok, _, err = shell.run(f"gen -M {tmp_path / 'out'}")
    assert not ok and "not quantized" in err
    assert not (tmp_path / "out").exists()
