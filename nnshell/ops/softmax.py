"""Softmax and LogSoftmax.

``softmax(x)_i = e^(x_i - m) / Σ_j e^(x_j - m)`` with ``m = max_j x_j``;
``logsoftmax(x)_i = x_i - m - ln Σ_j e^(x_j - m)``.
Before opset 13 the input is coerced to 2-D ``[Π d_<axis, Π d_>=axis]`` and the softmax runs
over the second dimension (default axis 1); from opset 13 it runs along ``axis`` only
(default -1). Either way axis 0 would normalise across the batch and is rejected.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nnshell.ir import Node, Shape, TensorInfo
from nnshell.ops._batching import norm_axis, opset_of, reject_batch_axis
from nnshell.ops.registry import OpDef, register


@dataclass(frozen=True)
class SoftmaxAttrs:
    """Softmax axis; None means the opset's default (1 before opset 13, -1 after)."""

    axis: int | None = None


def softmax_axis(node: Node, rank: int) -> tuple[int, bool]:
    """Return (normalised axis, whether the opset < 13 coerce-to-2-D rule applies)."""
    legacy = opset_of(node) < 13
    axis = node.attrs.axis
    if axis is None:
        axis = 1 if legacy else -1
    return norm_axis(axis, rank, node), legacy


class _Softmax(OpDef):
    Attrs = SoftmaxAttrs
    kind = "activation"
    log = False

    def infer(self, node: Node, ins: Sequence[TensorInfo | None]) -> list[Shape]:
        x = ins[0]
        assert x is not None
        axis, _ = softmax_axis(node, len(x.shape))
        reject_batch_axis([axis], node, "along")
        return [x.shape]

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        x = xs[0]
        assert x is not None
        axis, legacy = softmax_axis(node, x.ndim)
        v = x.reshape(int(np.prod(x.shape[:axis])), -1) if legacy else x
        ax = 1 if legacy else axis
        z = v - v.max(axis=ax, keepdims=True)
        e = np.exp(z)
        s = e.sum(axis=ax, keepdims=True)
        y = z - np.log(s) if self.log else e / s
        return [y.reshape(x.shape).astype(x.dtype, copy=False)]


@register
class Softmax(_Softmax):
    """Normalised exponential (classifier heads)."""

    name = "Softmax"
    onnx_types = ("Softmax",)


@register
class LogSoftmax(_Softmax):
    """Logarithm of the softmax, computed stably."""

    name = "LogSoftmax"
    onnx_types = ("LogSoftmax",)
    log = True
