"""move_activations_up: an activation after a reshape of a layer's output moves up to the layer."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import rand
from tests.passes import apply, conv_w, model, node, ops


@pytest.mark.parametrize("act", ["Relu", "Sigmoid", "Tanh", "LeakyRelu"])
def test_activation_after_flatten_moves_up(act: str) -> None:
    m = model(
        [node("Conv", ["x", "w"], "c"), node("Flatten", ["c"], "f"), node(act, ["f"], "y")],
        {"x": [1, 3, 5, 5]},
        ["y"],
        {"w": conv_w(4, 3)},
    )
    before, after, res = apply(m, "move_activations_up")
    assert ops(before) == ["Conv", "Flatten", act]
    assert ops(after) == ["Conv", act, "Flatten"] and res.changed == 1
    assert after.outputs == ["y"] and after.nodes[-1].outputs == ["y"]
    assert after.tensors[after.nodes[1].outputs[0]].shape == (1, 4, 3, 3)


def test_relu_after_reshape_of_linear_moves_up_and_then_fuses() -> None:
    m = model(
        [
            node("Gemm", ["x", "w"], "g", transB=1),
            node("Reshape", ["g", "s"], "r"),
            node("Relu", ["r"], "y"),
        ],
        {"x": [1, 6]},
        ["y"],
        {"w": rand((8, 6), 1), "s": np.array([1, 2, 4], np.int64)},
    )
    _, after, _ = apply(m, "move_activations_up")
    assert ops(after) == ["Gemm", "Relu", "Reshape"]
    _, fused, _ = apply(m, ["to_linear", "move_activations_up", "fuse_linear"])
    assert ops(fused) == ["Fused(Linear+Relu)", "Reshape"]


def test_activation_after_reshape_of_an_input_is_kept() -> None:
    # Near miss: there is no layer above the reshape to fuse with, so moving gains nothing.
    m = model([node("Flatten", ["x"], "f"), node("Relu", ["f"], "y")], {"x": [1, 3, 5, 5]}, ["y"])
    _, after, res = apply(m, "move_activations_up")
    assert ops(after) == ["Flatten", "Relu"] and res.changed == 0


def test_reshape_with_fan_out_is_kept() -> None:
    # Near miss: the flattened tensor is also read by Sigmoid; moving the Relu above the
    # Flatten would feed the Sigmoid rectified values.
    m = model(
        [
            node("Conv", ["x", "w"], "c"),
            node("Flatten", ["c"], "f"),
            node("Relu", ["f"], "y"),
            node("Sigmoid", ["f"], "z"),
        ],
        {"x": [1, 3, 5, 5]},
        ["y", "z"],
        {"w": conv_w(4, 3)},
    )
    _, after, res = apply(m, "move_activations_up")
    assert ops(after) == ["Conv", "Flatten", "Relu", "Sigmoid"] and res.changed == 0


def test_unsupported_activation_is_not_moved() -> None:
    # Near miss: Softplus is not an activation any kernel fuses, so it stays where it is.
    m = model(
        [node("Conv", ["x", "w"], "c"), node("Flatten", ["c"], "f"), node("Softplus", ["f"], "y")],
        {"x": [1, 3, 5, 5]},
        ["y"],
        {"w": conv_w(4, 3)},
    )
    _, after, res = apply(m, "move_activations_up")
    assert ops(after) == ["Conv", "Flatten", "Softplus"] and res.changed == 0
