"""Flatten and Reshape: change the shape, never the CHW-contiguous data order.

Both take their output shape from the static shape rule, so a batched run reshapes to
``(N, *static_shape_without_batch)`` whatever batch size the ONNX shape vector assumed.
Quantized, they move codes unchanged (POW2: then a shift when the output's Q differs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nnshell.errors import ShapeError
from nnshell.ir import Node, Shape, TensorInfo
from nnshell.ops import _pow2
from nnshell.ops.registry import OpDef, register
from nnshell.quant.qrecord import NodeQuant, QuantContext


def reshape_batched(x: np.ndarray, node: Node) -> np.ndarray:
    """Reshape a batched array to the node's static output shape (batch kept)."""
    out_shape: Shape = node.meta["out_shape"]
    return x.reshape((x.shape[0], *out_shape[1:]))


class _ShapeOnly(_pow2.Pow2Mover, OpDef):
    kind = "shape"
    q_passthrough = True

    def quantize_sq8(self, ctx: QuantContext) -> NodeQuant:
        """No integer parameters: the output keeps the input's qtype."""
        return NodeQuant(list(ctx.in_q), ctx.out_q)

    def run_int(self, node: Node, nq: NodeQuant, *xs: np.ndarray | None) -> list[np.ndarray]:
        """A reshape moves no data: the same integer codes."""
        assert xs[0] is not None
        return [reshape_batched(xs[0], node)]

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        assert xs[0] is not None
        return [reshape_batched(xs[0], node)]

    def emit_c(self, node: Node, nq: NodeQuant, ctx: Any) -> str:
        """The data order does not change: a copy."""
        return str(ctx.copy())


@dataclass(frozen=True)
class FlattenAttrs:
    """ONNX Flatten attribute."""

    axis: int = 1


@register
class Flatten(_ShapeOnly):
    """Flatten to 2-D at ``axis`` (1 keeps the batch apart)."""

    name = "Flatten"
    onnx_types = ("Flatten",)
    Attrs = FlattenAttrs

    def infer(self, node: Node, ins: Sequence[TensorInfo | None]) -> list[Shape]:
        x = ins[0]
        assert x is not None
        axis = node.attrs.axis % (len(x.shape) + 1) if node.attrs.axis < 0 else node.attrs.axis
        if axis == 0:
            raise ShapeError(f"{node.name}: Flatten with axis=0 would merge the batch")
        lead = int(np.prod(x.shape[:axis]))
        shape = (lead, int(np.prod(x.shape[axis:])))
        node.meta["out_shape"] = shape
        return [shape]


@dataclass(frozen=True)
class ReshapeAttrs:
    """ONNX Reshape attribute."""

    allowzero: int = 0


@register
class Reshape(_ShapeOnly):
    """Reshape to a constant shape vector (0 copies a dim, -1 is inferred)."""

    name = "Reshape"
    onnx_types = ("Reshape",)
    Attrs = ReshapeAttrs

    def onnx_nodes(self, node: Node, ins: list[str], outs: list[str], b: Any) -> bool:
        """ONNX export: the recorded output shape with a free batch (-1)."""
        shape = np.array([-1, *node.meta["out_shape"][1:]], np.int64)
        b.emit("Reshape", [ins[0], b.const(shape, "shape")], outs, node.name)
        return True

    def infer(self, node: Node, ins: Sequence[TensorInfo | None]) -> list[Shape]:
        x, s = ins[0], ins[1]
        assert x is not None and s is not None
        if s.const is None:
            raise ShapeError(f"{node.name}: Reshape needs a constant shape input")
        target = [int(v) for v in s.const.reshape(-1)]
        if not node.attrs.allowzero:
            target = [x.shape[i] if v == 0 else v for i, v in enumerate(target)]
        total = int(np.prod(x.shape))
        if target.count(-1) == 1:
            rest = int(np.prod([v for v in target if v != -1]))
            if rest == 0 or total % rest:
                raise ShapeError(f"{node.name}: cannot reshape {x.shape} to {tuple(target)}")
            target[target.index(-1)] = total // rest
        if int(np.prod(target)) != total or not target or target[0] != x.shape[0]:
            raise ShapeError(
                f"{node.name}: reshape {x.dims} -> {tuple(target)} must keep the batch axis apart"
            )
        node.meta["out_shape"] = tuple(target)
        return [tuple(target)]
