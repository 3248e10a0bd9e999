"""Edge cases of the existing Conv, pool, Gemm and MatMul kernels against onnxruntime."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.helpers import compare_with_ort, one_node_model, rand


@pytest.mark.parametrize(
    ("attrs", "group", "xshape"),
    [
        ({}, 1, (2, 4, 9, 8)),
        ({"pads": (1, 1, 1, 1)}, 1, (2, 4, 9, 8)),
        ({"pads": (0, 1, 2, 1), "strides": (2, 2)}, 1, (2, 4, 9, 8)),
        ({"auto_pad": "SAME_UPPER", "strides": (2, 2)}, 1, (2, 4, 9, 8)),
        ({"auto_pad": "SAME_LOWER", "strides": (2, 2)}, 1, (2, 4, 9, 8)),
        ({"auto_pad": "SAME_UPPER", "strides": (2, 1)}, 1, (2, 4, 10, 7)),
        ({"auto_pad": "VALID", "strides": (3, 2)}, 1, (2, 4, 9, 8)),
        ({"dilations": (2, 2), "pads": (2, 2, 2, 2)}, 1, (2, 4, 9, 8)),
        ({"dilations": (2, 1), "strides": (2, 2)}, 1, (2, 4, 9, 8)),
        ({"pads": (1, 1, 1, 1)}, 4, (2, 4, 9, 8)),  # depthwise
        ({"strides": (2, 2), "pads": (1, 1, 1, 1)}, 4, (2, 4, 9, 8)),
        ({}, 2, (2, 4, 9, 8)),  # grouped
        ({"auto_pad": "SAME_UPPER"}, 1, (2, 4, 9)),  # 1-D
    ],
)
@pytest.mark.parametrize("bias", [True, False])
def test_conv(attrs: dict[str, Any], group: int, xshape: tuple[int, ...], bias: bool) -> None:
    nd = len(xshape) - 2
    m = 8 if group != 4 else 4
    w = rand((m, xshape[1] // group, *(3,) * nd), seed=30, scale=0.3)
    inits = {"w": w}
    if bias:
        inits["b"] = rand((m,), seed=31)
    model = one_node_model("Conv", {"x": xshape}, {**attrs, "group": group}, inits)
    compare_with_ort(model, {"x": rand(xshape, seed=32)})


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
@pytest.mark.parametrize(
    "attrs",
    [
        {"kernel_shape": (2, 2), "strides": (2, 2)},
        {"kernel_shape": (3, 3), "strides": (2, 2), "ceil_mode": 1},
        {"kernel_shape": (3, 3), "strides": (2, 2), "pads": (1, 1, 1, 1)},
        {"kernel_shape": (3, 3), "strides": (2, 2), "pads": (1, 1, 1, 1), "ceil_mode": 1},
        {"kernel_shape": (3, 3), "strides": (2, 2), "pads": (1, 0, 1, 0), "count_include_pad": 1},
        {
            "kernel_shape": (3, 3),
            "strides": (2, 2),
            "pads": (1, 1, 1, 1),
            "ceil_mode": 1,
            "count_include_pad": 1,
        },
        {"kernel_shape": (3, 2), "auto_pad": "SAME_UPPER", "strides": (2, 2)},
        {"kernel_shape": (3, 2), "auto_pad": "SAME_LOWER", "strides": (2, 2)},
        {"kernel_shape": (3, 3), "auto_pad": "VALID"},
    ],
)
def test_pool(op: str, attrs: dict[str, Any]) -> None:
    if op == "MaxPool":  # count_include_pad is an AveragePool attribute
        attrs = {k: v for k, v in attrs.items() if k != "count_include_pad"}
    model = one_node_model(op, {"x": (3, 2, 9, 8)}, attrs, opset=19 if op == "AveragePool" else 12)
    compare_with_ort(model, {"x": rand((3, 2, 9, 8), seed=33)})


def test_maxpool_dilations() -> None:
    attrs = {"kernel_shape": (2, 2), "dilations": (2, 2), "pads": (1, 1, 1, 1)}
    model = one_node_model("MaxPool", {"x": (3, 2, 9, 8)}, attrs, opset=12)
    compare_with_ort(model, {"x": rand((3, 2, 9, 8), seed=34)})


@pytest.mark.parametrize(
    "attrs",
    [
        {},
        {"transB": 1},
        {"alpha": 0.5, "beta": 2.0, "transB": 1},
        {"alpha": 1.5},
    ],
)
@pytest.mark.parametrize("c_shape", [None, (5,), (1, 5), ()])
def test_gemm(attrs: dict[str, Any], c_shape: tuple[int, ...] | None) -> None:
    b = rand((5, 7) if attrs.get("transB") else (7, 5), seed=35)
    inits = {"b": b}
    if c_shape is not None:
        inits["c"] = rand(c_shape, seed=36)
    model = one_node_model("Gemm", {"a": (3, 7)}, attrs, inits)
    compare_with_ort(model, {"a": rand((3, 7), seed=37)})


@pytest.mark.parametrize(
    ("a_shape", "b_shape"),
    [((3, 7), (7, 5)), ((3, 4, 7), (7, 5)), ((3, 2, 4, 7), (2, 7, 5)), ((3, 7), (7,))],
)
def test_matmul(a_shape: tuple[int, ...], b_shape: tuple[int, ...]) -> None:
    model = one_node_model("MatMul", {"a": a_shape}, initializers={"b": rand(b_shape, seed=40)})
    compare_with_ort(model, {"a": rand(a_shape, seed=41)})


def test_matmul_constant_first() -> None:
    model = one_node_model(
        "MatMul",
        {"x": (3, 4, 5)},
        initializers={"w": rand((6, 4), seed=42)},
        node_inputs=["w", "x"],
    )
    compare_with_ort(model, {"x": rand((3, 4, 5), seed=43)})


def test_batch_sizes_agree() -> None:
    """A batched run equals the concatenation of batch-1 runs (no op mixes items)."""
    w = rand((4, 3, 3, 3), seed=44)
    model = one_node_model("Conv", {"x": (1, 3, 6, 6)}, {"pads": (1, 1, 1, 1)}, {"w": w})
    x = rand((3, 3, 6, 6), seed=45)
    full = compare_with_ort(model, {"x": x})["y0"]
    parts = np.concatenate([compare_with_ort(model, {"x": x[i : i + 1]})["y0"] for i in range(3)])
    np.testing.assert_allclose(full, parts, rtol=1e-6, atol=1e-6)
