"""BatchNormalization, LRN, Softmax and LogSoftmax against onnxruntime, batched."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from nnshell.errors import ShapeError
from tests.helpers import compare_with_ort, load_model, one_node_model, rand


def _bn_params(c: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(12)
    return {
        "scale": rng.uniform(0.5, 1.5, c).astype(np.float32),
        "b": rng.standard_normal(c).astype(np.float32),
        "mean": rng.standard_normal(c).astype(np.float32),
        "var": rng.uniform(0.1, 2.0, c).astype(np.float32),
    }


@pytest.mark.parametrize(
    ("opset", "attrs"),
    [
        (7, {}),
        (9, {"epsilon": 1e-3, "momentum": 0.8}),
        (14, {"training_mode": 0}),
        (15, {}),
    ],
)
@pytest.mark.parametrize("shape", [(3, 4, 5, 6), (3, 4, 7), (3, 4)])
def test_batchnorm(opset: int, attrs: dict[str, Any], shape: tuple[int, ...]) -> None:
    model = one_node_model("BatchNormalization", {"x": shape}, attrs, _bn_params(4), opset)
    compare_with_ort(model, {"x": rand(shape, seed=13, scale=2.0)})


@pytest.mark.parametrize(
    "attrs",
    [
        {"size": 5},
        {"size": 3, "alpha": 1e-2, "beta": 0.5, "bias": 2.0},
        {"size": 7, "alpha": 1e-3},
        {"size": 1},
        {"size": 11, "alpha": 0.5},
    ],
)
def test_lrn(attrs: dict[str, Any]) -> None:
    model = one_node_model("LRN", {"x": (2, 8, 5, 6)}, attrs)
    compare_with_ort(model, {"x": rand((2, 8, 5, 6), seed=14, scale=10.0)})


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("opset", [11, 13])
@pytest.mark.parametrize(
    ("shape", "axis"),
    [((3, 4, 5, 6), a) for a in (None, 1, 2, 3, -1, -3)] + [((3, 10), a) for a in (None, 1, -1)],
)
def test_softmax(op: str, opset: int, shape: tuple[int, ...], axis: int | None) -> None:
    attrs = {} if axis is None else {"axis": axis}
    model = one_node_model(op, {"x": shape}, attrs, opset=opset)
    compare_with_ort(model, {"x": rand(shape, seed=15, scale=4.0)})


@pytest.mark.parametrize("opset", [11, 13])
def test_softmax_batch_axis_rejected(opset: int) -> None:
    model = one_node_model("Softmax", {"x": (2, 10)}, {"axis": 0}, opset=opset)
    with pytest.raises(ShapeError, match="batch"):
        load_model(model)


def test_batchnorm_training_rejected() -> None:
    model = one_node_model(
        "BatchNormalization", {"x": (2, 4, 3, 3)}, {"training_mode": 1}, _bn_params(4), opset=15
    )
    with pytest.raises(ShapeError, match="training"):
        load_model(model)
