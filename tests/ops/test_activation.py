"""Pointwise activations and unary math against onnxruntime, batched (N=3)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.helpers import compare_with_ort, one_node_model, rand

SHAPE = (3, 4, 5, 6)


def _x(scale: float = 3.0) -> dict[str, np.ndarray]:
    return {"x": rand(SHAPE, seed=1, scale=scale)}


@pytest.mark.parametrize(
    ("op", "attrs", "opset"),
    [
        ("LeakyRelu", {}, 13),
        ("LeakyRelu", {"alpha": 0.2}, 13),
        ("Sigmoid", {}, 13),
        ("Tanh", {}, 13),
        ("HardSigmoid", {}, 13),
        ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}, 13),
        ("HardSwish", {}, 14),
        ("Elu", {}, 13),
        ("Elu", {"alpha": 0.5}, 13),
        ("Selu", {}, 13),
        ("Selu", {"alpha": 1.5, "gamma": 2.0}, 13),
        ("Softplus", {}, 13),
        ("Softsign", {}, 13),
        ("Exp", {}, 13),
        ("Neg", {}, 13),
        ("Abs", {}, 13),
        ("Identity", {}, 13),
        ("Relu", {}, 13),
    ],
)
def test_pointwise(op: str, attrs: dict[str, Any], opset: int) -> None:
    model = one_node_model(op, {"x": SHAPE}, attrs, opset=opset)
    compare_with_ort(model, _x())


@pytest.mark.parametrize("op", ["Sqrt", "Log", "Reciprocal"])
def test_positive_domain(op: str) -> None:
    model = one_node_model(op, {"x": SHAPE})
    compare_with_ort(model, {"x": np.abs(_x()["x"]) + np.float32(0.1)})


@pytest.mark.parametrize(
    ("attrs", "inits", "node_inputs", "opset"),
    [
        ({"min": 0.0, "max": 6.0}, {}, None, 6),
        ({"min": -0.5}, {}, None, 10),
        ({}, {"lo": np.float32(0), "hi": np.float32(6)}, ["x", "lo", "hi"], 11),
        ({}, {"lo": np.float32(-1)}, ["x", "lo"], 13),
        ({}, {"hi": np.float32(1.5)}, ["x", "", "hi"], 13),
        ({}, {}, ["x"], 13),
    ],
)
def test_clip(
    attrs: dict[str, Any], inits: dict[str, np.ndarray], node_inputs: list[str] | None, opset: int
) -> None:
    model = one_node_model("Clip", {"x": SHAPE}, attrs, inits, opset, node_inputs=node_inputs)
    compare_with_ort(model, _x(5.0))


@pytest.mark.parametrize("slope_shape", [(1,), (4, 1, 1), (1, 4, 1, 1), (6,), (5, 6)])
def test_prelu(slope_shape: tuple[int, ...]) -> None:
    slope = rand(slope_shape, seed=2, scale=0.3)
    model = one_node_model("PRelu", {"x": SHAPE}, initializers={"s": slope})
    compare_with_ort(model, _x())


@pytest.mark.parametrize(
    ("opset", "inits", "node_inputs"),
    [
        (7, {}, None),
        (12, {"r": np.float32(0.3)}, ["x", "r"]),
        (13, {"r": np.float32(0.5), "t": np.bool_(False)}, ["x", "r", "t"]),
    ],
)
def test_dropout_is_identity(
    opset: int, inits: dict[str, np.ndarray], node_inputs: list[str] | None
) -> None:
    model = one_node_model("Dropout", {"x": SHAPE}, {}, inits, opset, node_inputs=node_inputs)
    compare_with_ort(model, _x())
