"""Relu: ``y = max(x, 0)``."""

from __future__ import annotations

import numpy as np

from nnshell.ir import Node
from nnshell.ops.registry import OpDef, register


@register
class Relu(OpDef):
    """Rectified linear unit."""

    name = "Relu"
    onnx_types = ("Relu",)
    kind = "activation"

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        assert xs[0] is not None
        return [np.maximum(xs[0], np.zeros((), xs[0].dtype))]
