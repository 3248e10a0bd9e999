"""Broadcasting arithmetic against onnxruntime (constants on either side, legacy broadcast)."""

from __future__ import annotations

import numpy as np
import pytest

from nnshell.errors import ShapeError
from nnshell.exec.float_exec import run_float
from tests.helpers import compare_with_ort, load_model, one_node_model, rand

X = (2, 4, 5, 6)


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
@pytest.mark.parametrize(
    "const_shape", [(), (1,), (6,), (4, 1, 1), (5, 6), (1, 4, 5, 6), (1, 1, 1, 1)]
)
@pytest.mark.parametrize("const_first", [False, True])
def test_binary_with_constant(op: str, const_shape: tuple[int, ...], const_first: bool) -> None:
    c = rand(const_shape, seed=3)
    if op == "Div":
        c = np.abs(c) + np.float32(0.5) if const_first is False else c
    order = ["c", "x"] if const_first else ["x", "c"]
    model = one_node_model(op, {"x": X}, initializers={"c": c}, node_inputs=order)
    x = rand(X, seed=4)
    if op == "Div" and const_first:
        x = np.abs(x) + np.float32(0.5)
    compare_with_ort(model, {"x": x})


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
@pytest.mark.parametrize("b_shape", [X, (2, 4, 1, 1), (2, 1, 5, 1)])
def test_binary_two_activations(op: str, b_shape: tuple[int, ...]) -> None:
    model = one_node_model(op, {"a": X, "b": b_shape})
    b = np.abs(rand(b_shape, seed=5)) + np.float32(0.5)
    compare_with_ort(model, {"a": rand(X, seed=6), "b": b})


@pytest.mark.parametrize("op", ["Add", "Mul", "Sub"])
@pytest.mark.parametrize(("b_shape", "axis"), [((4,), 1), ((5, 6), 2), ((6,), None)])
def test_legacy_broadcast_opset6(op: str, b_shape: tuple[int, ...], axis: int | None) -> None:
    """onnxruntime has no opset-6 kernels, so the reference is the spec's rule in numpy."""
    attrs = {"broadcast": 1} if axis is None else {"broadcast": 1, "axis": axis}
    c = rand(b_shape, seed=7)
    model = one_node_model(op, {"x": X}, attrs, {"c": c}, opset=6)
    x = rand(X, seed=8)
    aligned = c if axis is None else c.reshape(c.shape + (1,) * (len(X) - axis - c.ndim))
    fn = {"Add": np.add, "Mul": np.multiply, "Sub": np.subtract}[op]
    got = run_float(load_model(model), {"x": x})["y0"]
    np.testing.assert_allclose(got, fn(x, aligned), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("exponent", [2.0, 3.0, 0.5])
def test_pow_constant_exponent(exponent: float) -> None:
    model = one_node_model("Pow", {"x": X}, initializers={"e": np.float32(exponent)})
    compare_with_ort(model, {"x": np.abs(rand(X, seed=9)) + np.float32(0.1)})


@pytest.mark.parametrize("op", ["Sum", "Max", "Min", "Mean"])
@pytest.mark.parametrize("n_inputs", [1, 2, 3])
def test_variadic(op: str, n_inputs: int) -> None:
    shapes = {f"x{i}": X for i in range(n_inputs)}
    if n_inputs == 3:
        shapes["x2"] = (2, 4, 1, 6)
    model = one_node_model(op, shapes, initializers={"c": rand((6,), seed=10)})
    feeds = {k: rand(s, seed=11 + i) for i, (k, s) in enumerate(shapes.items())}
    compare_with_ort(model, feeds)


def test_rank_changing_activation_is_rejected() -> None:
    model = one_node_model("Add", {"a": (2, 3), "b": (2, 4, 3)})
    with pytest.raises(ShapeError, match="batch"):
        load_model(model)


def test_constant_varying_on_batch_is_rejected() -> None:
    model = one_node_model("Mul", {"x": (1, 3)}, initializers={"c": rand((2, 3))})
    with pytest.raises(ShapeError, match="batch"):
        load_model(model)
