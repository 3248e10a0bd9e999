"""remove_noops: Identity, Dropout and reshapes to the same shape disappear."""

from __future__ import annotations

import numpy as np

from tests.passes import apply, conv_w, model, node, ops

X = {"x": [1, 3, 6, 6]}
W = {"w": conv_w(4, 3)}


def test_identity_dropout_and_same_shape_reshape_removed() -> None:
    m = model(
        [
            node("Identity", ["x"], "a"),
            node("Conv", ["a", "w"], "c"),
            node("Dropout", ["c"], "d"),
            node("Reshape", ["d", "s"], "r"),
            node("Relu", ["r"], "y"),
        ],
        X,
        ["y"],
        {**W, "s": np.array([1, 4, 4, 4], np.int64)},
    )
    before, after, res = apply(m, "remove_noops")
    assert ops(before) == ["Identity", "Conv", "Dropout", "Reshape", "Relu"]
    assert ops(after) == ["Conv", "Relu"]
    assert sorted(res.removed) == ["n_a", "n_d", "n_r"]
    assert after.nodes[0].inputs[0] == "x"


def test_noop_writing_the_graph_output_keeps_the_output_name() -> None:
    m = model([node("Conv", ["x", "w"], "c"), node("Identity", ["c"], "y")], X, ["y"], W)
    _, after, _ = apply(m, "remove_noops")
    assert ops(after) == ["Conv"]
    assert after.outputs == ["y"] and after.nodes[0].outputs == ["y"]


def test_identity_between_input_and_output_is_removed() -> None:
    m = model([node("Relu", ["x"], "r"), node("Identity", ["r"], "y")], X, ["y"])
    _, after, _ = apply(m, "remove_noops")
    assert ops(after) == ["Relu"]


def test_reshape_that_changes_the_shape_is_kept() -> None:
    # Near miss: a Reshape to another shape moves no data either, but it changes what later
    # layers see, so it is not a no-op (to_linear removes it only in front of a linear layer).
    m = model(
        [node("Conv", ["x", "w"], "c"), node("Reshape", ["c", "s"], "y")],
        X,
        ["y"],
        {**W, "s": np.array([1, -1], np.int64)},
    )
    _, after, res = apply(m, "remove_noops")
    assert ops(after) == ["Conv", "Reshape"]
    assert res.changed == 0
