"""Nearest-neighbour and bilinear Resize / Upsample against onnxruntime, batched (N=2)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from nnshell.errors import ShapeError, UnsupportedOpError
from nnshell.exec.float_exec import run_float
from tests.helpers import compare_with_ort, load_model, one_node_model, rand

X = (2, 3, 5, 6)
EMPTY = np.zeros(0, np.float32)


def _f32(*v: float) -> np.ndarray:
    return np.array(v, np.float32)


@pytest.mark.parametrize(
    "ctm",
    ["half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel", "tf_half_pixel_for_nn"],
)
@pytest.mark.parametrize("nearest", ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"])
@pytest.mark.parametrize("scales", [(1, 1, 2, 2), (1, 1, 3, 1.5), (1, 1, 0.5, 0.7)])
def test_resize_scales(ctm: str, nearest: str, scales: tuple[float, ...]) -> None:
    attrs = {"mode": "nearest", "coordinate_transformation_mode": ctm, "nearest_mode": nearest}
    inits = {"roi": EMPTY, "s": _f32(*scales)}
    model = one_node_model("Resize", {"x": X}, attrs, inits, opset=13)
    compare_with_ort(model, {"x": rand(X, seed=50)})


@pytest.mark.parametrize("sizes", [(1, 3, 10, 12), (1, 3, 7, 4), (1, 3, 5, 6)])
def test_resize_sizes(sizes: tuple[int, ...]) -> None:
    inits = {"roi": EMPTY, "s": EMPTY, "z": np.array(sizes, np.int64)}
    attrs: dict[str, Any] = {
        "mode": "nearest",
        "coordinate_transformation_mode": "asymmetric",
        "nearest_mode": "floor",
    }
    model = one_node_model("Resize", {"x": X}, attrs, inits, opset=13)
    # ONNX sizes fix the batch, so onnxruntime only accepts batch 1; nnshell keeps any batch
    x = rand(X, seed=51)
    one = [compare_with_ort(model, {"x": x[i : i + 1]})["y0"] for i in range(X[0])]
    np.testing.assert_array_equal(run_float(load_model(model), {"x": x})["y0"], np.concatenate(one))


@pytest.mark.parametrize("scales", [(1, 1, 2, 2), (1, 1, 0.5, 0.5), (1, 1, 1.5, 3)])
def test_resize_opset10(scales: tuple[float, ...]) -> None:
    model = one_node_model("Resize", {"x": X}, {"mode": "nearest"}, {"s": _f32(*scales)}, 10)
    compare_with_ort(model, {"x": rand(X, seed=52)})


@pytest.mark.parametrize("scales", [(1, 1, 2, 2), (1, 1, 3, 2)])
def test_upsample_opset9(scales: tuple[float, ...]) -> None:
    model = one_node_model("Upsample", {"x": X}, {"mode": "nearest"}, {"s": _f32(*scales)}, 9)
    compare_with_ort(model, {"x": rand(X, seed=53)})


@pytest.mark.parametrize("ctm", ["half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel"])
@pytest.mark.parametrize("scales", [(1, 1, 2, 2), (1, 1, 3, 1.5), (1, 1, 0.5, 0.7)])
def test_resize_linear(ctm: str, scales: tuple[float, ...]) -> None:
    """Bilinear (issue 17): the coordinate modes PyTorch and Paddle export."""
    attrs = {"mode": "linear", "coordinate_transformation_mode": ctm}
    model = one_node_model("Resize", {"x": X}, attrs, {"roi": EMPTY, "s": _f32(*scales)})
    compare_with_ort(model, {"x": rand(X, seed=54)})


def test_resize_linear_of_channels_unsupported() -> None:
    model = one_node_model(
        "Resize", {"x": X}, {"mode": "linear"}, {"roi": EMPTY, "s": _f32(1, 2, 2, 2)}
    )
    with pytest.raises(UnsupportedOpError, match="linear"):
        load_model(model)


def test_resize_batch_rejected() -> None:
    model = one_node_model("Resize", {"x": X}, {}, {"roi": EMPTY, "s": _f32(2, 1, 2, 2)})
    with pytest.raises(ShapeError, match="batch"):
        load_model(model)
