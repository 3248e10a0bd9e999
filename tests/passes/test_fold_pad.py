"""fold_pad: a zero spatial Pad folds into the next Conv or count_include_pad AveragePool."""

from __future__ import annotations

import numpy as np
import onnx

from tests.passes import apply, conv_w, model, node, ops

X = {"x": [1, 3, 6, 6]}
SPATIAL = np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64)  # N, C, H, W begins, then ends


def pad_then(
    nxt: onnx.NodeProto, pads: np.ndarray = SPATIAL, value: float | None = None
) -> onnx.ModelProto:
    inits = {"p": pads, "w": conv_w(4, 3)}
    ins = ["x", "p"]
    if value is not None:
        inits["v"] = np.array(value, np.float32)
        ins.append("v")
    return model([node("Pad", ins, "pd"), nxt], X, ["y"], inits)


def test_zero_pad_folds_into_conv() -> None:
    m = pad_then(node("Conv", ["pd", "w"], "y", pads=[1, 0, 0, 1]))
    before, after, res = apply(m, "fold_pad")
    assert ops(before) == ["Pad", "Conv"] and ops(after) == ["Conv"]
    assert tuple(after.nodes[0].attrs.pads) == (2, 2, 2, 2)
    assert after.nodes[0].inputs[0] == "x" and res.removed == ["n_pd"]


def test_explicit_zero_value_folds() -> None:
    _, after, _ = apply(pad_then(node("Conv", ["pd", "w"], "y"), value=0.0), "fold_pad")
    assert ops(after) == ["Conv"]
    assert tuple(after.nodes[0].attrs.pads) == (1, 2, 2, 1)


def test_zero_pad_folds_into_count_include_pad_average_pool() -> None:
    m = pad_then(node("AveragePool", ["pd"], "y", kernel_shape=[3, 3], count_include_pad=1))
    _, after, _ = apply(m, "fold_pad")
    assert ops(after) == ["AveragePool"]


def test_pad_before_average_pool_excluding_pads_is_kept() -> None:
    # Near miss: without count_include_pad the pool divides by the real values only, but the
    # Pad's zeros are real values to it; folding would change the border averages.
    m = pad_then(node("AveragePool", ["pd"], "y", kernel_shape=[3, 3]))
    _, after, res = apply(m, "fold_pad")
    assert ops(after) == ["Pad", "AveragePool"] and res.changed == 0


def test_pad_value_not_zero_is_kept() -> None:
    # Near miss: conv padding inserts zeros; a Pad of 0.5 is something else.
    _, after, res = apply(pad_then(node("Conv", ["pd", "w"], "y"), value=0.5), "fold_pad")
    assert ops(after) == ["Pad", "Conv"] and res.changed == 0


def test_pad_on_channel_axis_is_kept() -> None:
    # Near miss: padding channels adds input channels; conv pads are spatial only.
    pads = np.array([0, 1, 1, 1, 0, 0, 1, 1], np.int64)
    m = model(
        [node("Pad", ["x", "p"], "pd"), node("Conv", ["pd", "w"], "y")],
        X,
        ["y"],
        {"p": pads, "w": conv_w(4, 4)},
    )
    _, after, res = apply(m, "fold_pad")
    assert ops(after) == ["Pad", "Conv"] and res.changed == 0


def test_pad_before_max_pool_is_kept() -> None:
    # Near miss: MaxPool pads with -inf, a zero Pad can win the max (negative inputs).
    m = pad_then(node("MaxPool", ["pd"], "y", kernel_shape=[2, 2]))
    _, after, res = apply(m, "fold_pad")
    assert ops(after) == ["Pad", "MaxPool"] and res.changed == 0


def test_reflect_pad_is_kept() -> None:
    # Near miss: reflect padding copies values, conv padding inserts zeros.
    m = model(
        [node("Pad", ["x", "p"], "pd", mode="reflect"), node("Conv", ["pd", "w"], "y")],
        X,
        ["y"],
        {"p": SPATIAL, "w": conv_w(4, 3)},
    )
    _, after, res = apply(m, "fold_pad")
    assert ops(after) == ["Pad", "Conv"] and res.changed == 0


def test_pad_with_fan_out_is_kept() -> None:
    # Near miss: the padded tensor is also read by the Relu, which needs the padded shape.
    m = model(
        [
            node("Pad", ["x", "p"], "pd"),
            node("Conv", ["pd", "w"], "y"),
            node("Relu", ["pd"], "z"),
        ],
        X,
        ["y", "z"],
        {"p": SPATIAL, "w": conv_w(4, 3)},
    )
    _, after, res = apply(m, "fold_pad")
    assert ops(after) == ["Pad", "Conv", "Relu"] and res.changed == 0
