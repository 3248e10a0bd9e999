"""to_linear: Gemm and MatMul(+Add) become Linear; a flattening op in front is dropped."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import rand
from tests.passes import apply, conv_w, model, node, ops

K, N_OUT = 12, 5


@pytest.mark.parametrize("trans_b", [0, 1])
@pytest.mark.parametrize(("alpha", "beta"), [(1.0, 1.0), (0.5, 2.0)])
def test_gemm_becomes_linear(trans_b: int, alpha: float, beta: float) -> None:
    w = rand((N_OUT, K) if trans_b else (K, N_OUT), 1, 0.3)
    m = model(
        [node("Gemm", ["x", "w", "b"], "y", transB=trans_b, alpha=alpha, beta=beta)],
        {"x": [1, K]},
        ["y"],
        {"w": w, "b": rand((N_OUT,), 2)},
    )
    _, after, res = apply(m, "to_linear")
    assert ops(after) == ["Linear"] and res.changed == 1
    assert after.tensors[after.nodes[0].inputs[1]].shape == (N_OUT, K)


def test_gemm_without_bias_and_with_scalar_bias() -> None:
    w = rand((K, N_OUT), 1, 0.3)
    m = model([node("Gemm", ["x", "w"], "y")], {"x": [1, K]}, ["y"], {"w": w})
    _, after, _ = apply(m, "to_linear")
    assert ops(after) == ["Linear"] and len(after.nodes[0].inputs) == 2
    m = model(
        [node("Gemm", ["x", "w", "b"], "y", beta=3.0)],
        {"x": [1, K]},
        ["y"],
        {"w": w, "b": np.array([0.25], np.float32)},
    )
    _, after, _ = apply(m, "to_linear")
    assert ops(after) == ["Linear"]


def test_matmul_add_becomes_one_linear() -> None:
    m = model(
        [node("MatMul", ["x", "w"], "mm"), node("Add", ["mm", "b"], "y")],
        {"x": [1, K]},
        ["y"],
        {"w": rand((K, N_OUT), 1, 0.3), "b": rand((N_OUT,), 2)},
    )
    before, after, res = apply(m, "to_linear")
    assert ops(before) == ["MatMul", "Add"] and ops(after) == ["Linear"]
    assert res.removed == ["n_y"] and after.nodes[0].outputs == ["y"]


def test_matmul_with_constant_on_the_left_of_add() -> None:
    m = model(
        [node("MatMul", ["x", "w"], "mm"), node("Add", ["b", "mm"], "y")],
        {"x": [1, K]},
        ["y"],
        {"w": rand((K, N_OUT), 1, 0.3), "b": rand((1, N_OUT), 2)},
    )
    _, after, _ = apply(m, "to_linear")
    assert ops(after) == ["Linear"]


@pytest.mark.parametrize("flatten", ["Flatten", "Reshape"])
def test_flattening_op_before_linear_is_removed(flatten: str) -> None:
    extra = {"s": np.array([1, -1], np.int64)} if flatten == "Reshape" else {}
    ins = ["c", "s"] if flatten == "Reshape" else ["c"]
    m = model(
        [
            node("Conv", ["x", "cw"], "c"),
            node(flatten, ins, "f"),
            node("Gemm", ["f", "w", "b"], "y", transB=1),
        ],
        {"x": [1, 3, 4, 4]},
        ["y"],
        {"cw": conv_w(3, 3), "w": rand((N_OUT, 12), 1, 0.3), "b": rand((N_OUT,), 2), **extra},
    )
    before, after, res = apply(m, "to_linear")
    assert ops(before) == ["Conv", flatten, "Gemm"]
    assert ops(after) == ["Conv", "Linear"] and res.removed == ["n_f"]
    assert after.nodes[1].inputs[0] == "c"


def test_gemm_with_non_constant_weights_is_kept() -> None:
    # Near miss: B is computed (a graph activation), a Linear needs constant weights.
    m = model(
        [node("Relu", ["w"], "wr"), node("Gemm", ["x", "wr"], "y", transB=1)],
        {"x": [1, K], "w": [1, K]},
        ["y"],
    )
    _, after, res = apply(m, "to_linear")
    assert ops(after) == ["Relu", "Gemm"] and res.changed == 0
    assert any("not constant" in n for n in res.notes)


def test_gemm_with_transposed_a_is_kept() -> None:
    # Near miss: transA multiplies by the transposed input, not a layer over the batch rows.
    m = model(
        [node("Gemm", ["x", "w"], "y", transA=1)],
        {"x": [1, K]},
        ["y"],
        {"w": rand((1, N_OUT), 1)},
    )
    _, after, res = apply(m, "to_linear")
    assert ops(after) == ["Gemm"] and res.changed == 0


def test_flatten_not_before_a_linear_is_kept() -> None:
    # Near miss: the Flatten feeds the graph output, whose shape must not change.
    m = model(
        [node("Conv", ["x", "cw"], "c"), node("Flatten", ["c"], "y")],
        {"x": [1, 3, 4, 4]},
        ["y"],
        {"cw": conv_w(3, 3)},
    )
    _, after, res = apply(m, "to_linear")
    assert ops(after) == ["Conv", "Flatten"] and res.changed == 0


def test_flatten_with_fan_out_is_kept() -> None:
    # Near miss: the flattened tensor is also a graph output, so the Flatten must stay.
    m = model(
        [
            node("Conv", ["x", "cw"], "c"),
            node("Flatten", ["c"], "f"),
            node("Gemm", ["f", "w"], "y", transB=1),
        ],
        {"x": [1, 3, 4, 4]},
        ["y", "f"],
        {"cw": conv_w(3, 3), "w": rand((N_OUT, 12), 1, 0.3)},
    )
    _, after, _ = apply(m, "to_linear")
    assert ops(after) == ["Conv", "Flatten", "Linear"]
