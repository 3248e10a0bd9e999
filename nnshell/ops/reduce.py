"""Reductions over non-batch axes: ReduceMean, ReduceMax, ReduceMin, ReduceSum.

``y = mean / max / min / sum of x over axes`` (kept as size-1 dims when ``keepdims``, the ONNX
default). Axes are an attribute up to opset 17 (12 for ReduceSum) and a constant input after.
Reducing over the batch axis — which includes "all axes" when none are given — is rejected.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from nnshell.errors import ShapeError
from nnshell.ir import Node, Shape, TensorInfo
from nnshell.ops._batching import const_input, int_list, norm_axis, reject_batch_axis
from nnshell.ops.registry import OpDef, register


@dataclass(frozen=True)
class ReduceAttrs:
    """Reduce attributes (``axes`` became an input in later opsets)."""

    axes: tuple[int, ...] | None = None
    keepdims: int = 1
    noop_with_empty_axes: int = 0


class _Reduce(OpDef):
    Attrs = ReduceAttrs
    kind = "pool"
    fn: Callable[..., np.ndarray]

    def infer(self, node: Node, ins: Sequence[TensorInfo | None]) -> list[Shape]:
        x = ins[0]
        assert x is not None
        a: ReduceAttrs = node.attrs
        rank = len(x.shape)
        axes = int_list(const_input(ins, 1, node, "axes"))
        if axes is None:
            axes = a.axes
        if not axes:
            if a.noop_with_empty_axes:
                node.meta["reduce_axes"] = ()
                return [x.shape]
            axes = tuple(range(rank))
        norm = tuple(sorted({norm_axis(v, rank, node) for v in axes}))
        reject_batch_axis(norm, node, "over")
        node.meta["reduce_axes"] = norm
        if a.keepdims:
            return [tuple(1 if i in norm else d for i, d in enumerate(x.shape))]
        shape = tuple(d for i, d in enumerate(x.shape) if i not in norm)
        if not shape:
            raise ShapeError(f"{node.name}: reduction leaves no axis")
        return [shape]

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        x = xs[0]
        assert x is not None
        axes = node.meta["reduce_axes"]
        if not axes:
            return [x]
        y = type(self).fn(x, axis=axes, keepdims=bool(node.attrs.keepdims))
        return [np.asarray(y).astype(x.dtype, copy=False)]

    def macs(self, node: Node, ins: Sequence[TensorInfo | None], outs: Sequence[TensorInfo]) -> int:
        x = ins[0]
        assert x is not None
        return x.size


@register
class ReduceMean(_Reduce):
    """Mean over axes (global pooling written as a reduction)."""

    name = "ReduceMean"
    onnx_types = ("ReduceMean",)
    fn = staticmethod(np.mean)


@register
class ReduceMax(_Reduce):
    """Maximum over axes."""

    name = "ReduceMax"
    onnx_types = ("ReduceMax",)
    fn = staticmethod(np.max)


@register
class ReduceMin(_Reduce):
    """Minimum over axes."""

    name = "ReduceMin"
    onnx_types = ("ReduceMin",)
    fn = staticmethod(np.min)


@register
class ReduceSum(_Reduce):
    """Sum over axes."""

    name = "ReduceSum"
    onnx_types = ("ReduceSum",)
    fn = staticmethod(np.sum)
