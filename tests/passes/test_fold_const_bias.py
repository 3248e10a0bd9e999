"""fold_const_bias: constant per-channel Add/Sub/Mul/Div after a conv/linear fold into it."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import rand
from tests.passes import apply, conv_w, model, node, ops

C = 4
X = {"x": [1, 3, 5, 5]}


def conv_then(op: str, c: np.ndarray, const_left: bool = False, bias: bool = True):  # noqa: ANN201
    ins = ["c", "k"] if not const_left else ["k", "c"]
    conv_in = ["x", "w", "b"] if bias else ["x", "w"]
    inits = {"w": conv_w(C, 3), "k": c}
    if bias:
        inits["b"] = rand((C,), 3)
    return model([node("Conv", conv_in, "c"), node(op, ins, "y")], X, ["y"], inits)


PER_CHANNEL = (np.random.default_rng(4).random((C, 1, 1)) + 0.5).astype(np.float32)
SCALAR = np.array(1.75, np.float32)


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
@pytest.mark.parametrize("kind", ["per_channel", "scalar", "4d", "no_bias"])
def test_constant_folds_into_conv(op: str, kind: str) -> None:
    c = {"per_channel": PER_CHANNEL, "4d": PER_CHANNEL[None]}.get(kind, SCALAR)
    m = conv_then(op, c, bias=kind != "no_bias")
    before, after, res = apply(m, "fold_const_bias")
    assert ops(before) == ["Conv", op] and ops(after) == ["Conv"]
    assert res.changed == 1 and after.nodes[0].outputs == ["y"]


@pytest.mark.parametrize("op", ["Add", "Mul"])
def test_constant_on_the_left_of_add_and_mul_folds(op: str) -> None:
    _, after, _ = apply(conv_then(op, PER_CHANNEL, const_left=True), "fold_const_bias")
    assert ops(after) == ["Conv"]


@pytest.mark.parametrize("op", ["Add", "Mul", "Sub", "Div"])
def test_constant_folds_into_linear(op: str) -> None:
    m = model(
        [node("Gemm", ["x", "w", "b"], "g", transB=1), node(op, ["g", "k"], "y")],
        {"x": [1, 6]},
        ["y"],
        {"w": rand((C, 6), 1, 0.3), "b": rand((C,), 2), "k": (rand((C,), 3) ** 2 + 0.5)},
    )
    _, after, _ = apply(m, ["to_linear", "fold_const_bias"])
    assert ops(after) == ["Linear"]


@pytest.mark.parametrize("op", ["Sub", "Div"])
def test_constant_on_the_left_of_sub_and_div_is_kept(op: str) -> None:
    # Near miss: c - y and c / y are not y scaled and shifted per channel (Div is not even
    # affine), so they cannot become a bias or a weight scale.
    _, after, res = apply(conv_then(op, PER_CHANNEL, const_left=True), "fold_const_bias")
    assert ops(after) == ["Conv", op] and res.changed == 0


def test_spatially_varying_constant_is_kept() -> None:
    # Near miss: a constant that varies over H, W is not one value per output channel.
    c = rand((C, 3, 3), 6)
    _, after, res = apply(conv_then("Add", c), "fold_const_bias")
    assert ops(after) == ["Conv", "Add"] and res.changed == 0
    assert any("per channel" in n for n in res.notes)


def test_fan_out_is_kept() -> None:
    # Near miss: the conv output is also read by the Relu, which must see it without the Add.
    m = model(
        [node("Conv", ["x", "w"], "c"), node("Add", ["c", "k"], "y"), node("Relu", ["c"], "z")],
        X,
        ["y", "z"],
        {"w": conv_w(C, 3), "k": PER_CHANNEL},
    )
    _, after, res = apply(m, "fold_const_bias")
    assert ops(after) == ["Conv", "Add", "Relu"] and res.changed == 0


def test_add_of_two_activations_is_kept() -> None:
    # Near miss: the other operand is not constant (a residual add).
    m = model(
        [node("Conv", ["x", "w"], "c"), node("Add", ["c", "r"], "y")],
        {"x": [1, 3, 5, 5], "r": [1, C, 3, 3]},
        ["y"],
        {"w": conv_w(C, 3)},
    )
    _, after, res = apply(m, "fold_const_bias")
    assert ops(after) == ["Conv", "Add"] and res.changed == 0


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
@pytest.mark.parametrize("group", [1, 2])
def test_constant_folds_into_conv_transpose(op: str, group: int) -> None:
    """Issue 17: Paddle exports a ConvTranspose bias as an Add (DBNet heads); its output channel
    ``g·Mg + m`` is the weights' axis 1 within group ``g``."""
    w = (np.random.default_rng(6).standard_normal((C, C // group, 2, 2)) * 0.5).astype(np.float32)
    m = model(
        [
            node("ConvTranspose", ["x", "w"], "c", strides=[2, 2], group=group),
            node(op, ["c", "k"], "y"),
        ],
        {"x": [1, C, 3, 3]},
        ["y"],
        {"w": w, "k": PER_CHANNEL},
    )
    _, after, res = apply(m, "fold_const_bias")
    assert ops(after) == ["ConvTranspose"] and res.changed == 1


@pytest.mark.parametrize("op", ["Add", "Mul", "Sub", "Div"])
@pytest.mark.parametrize("bias", [True, False])
def test_constant_folds_into_conv_transpose_with_or_without_bias(op: str, bias: bool) -> None:
    # ConvTranspose weights are (C_in, C_out, k, k): the per-channel constant scales axis 1.
    ins = ["x", "w", "b"] if bias else ["x", "w"]
    inits = {"w": rand((3, C, 2, 2), 7, 0.3), "k": PER_CHANNEL}
    if bias:
        inits["b"] = rand((C,), 8)
    m = model(
        [node("ConvTranspose", ins, "c", strides=[2, 2]), node(op, ["c", "k"], "y")],
        X,
        ["y"],
        inits,
    )
    _, after, res = apply(m, "fold_const_bias")
    assert ops(after) == ["ConvTranspose"] and res.changed == 1
