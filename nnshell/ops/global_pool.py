"""GlobalAveragePool and GlobalMaxPool: one value per channel over all spatial positions.

GlobalAveragePool: ``y[n, c] = Σ_p x[n, c, p] / P``; GlobalMaxPool: ``y[n, c] = max_p x[n, c, p]``.
The spatial dims are kept as 1s (``N×C×1×1`` for images), as ONNX specifies.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nnshell.errors import ShapeError
from nnshell.ir import Node, Shape, TensorInfo
from nnshell.ops.registry import OpDef, register


class _GlobalPool(OpDef):
    kind = "pool"

    def infer(self, node: Node, ins: Sequence[TensorInfo | None]) -> list[Shape]:
        x = ins[0]
        assert x is not None
        if len(x.shape) < 3:
            raise ShapeError(f"{node.name}: {self.name} needs an N×C×spatial input, got {x.shape}")
        return [(*x.shape[:2], *(1,) * (len(x.shape) - 2))]

    def macs(self, node: Node, ins: Sequence[TensorInfo | None], outs: Sequence[TensorInfo]) -> int:
        x = ins[0]
        assert x is not None
        return x.size


@register
class GlobalAveragePool(_GlobalPool):
    """Mean over every spatial position (classifier heads)."""

    name = "GlobalAveragePool"
    onnx_types = ("GlobalAveragePool",)

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        x = xs[0]
        assert x is not None
        axes = tuple(range(2, x.ndim))
        return [x.mean(axis=axes, keepdims=True, dtype=np.float32).astype(x.dtype, copy=False)]


@register
class GlobalMaxPool(_GlobalPool):
    """Maximum over every spatial position."""

    name = "GlobalMaxPool"
    onnx_types = ("GlobalMaxPool",)

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        x = xs[0]
        assert x is not None
        return [x.max(axis=tuple(range(2, x.ndim)), keepdims=True)]
