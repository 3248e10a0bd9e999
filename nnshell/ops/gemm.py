"""Gemm and MatMul: fully connected layers.

Gemm: ``Y = alpha · A' · B' + beta · C`` with ``A' = A^T`` if ``transA`` and ``B' = B^T`` if
``transB``. MatMul follows numpy ``matmul`` broadcasting. Both run as float32 BLAS matmuls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nnshell.errors import ShapeError
from nnshell.ir import Node, Shape, TensorInfo
from nnshell.ops.registry import OpDef, register


@dataclass(frozen=True)
class GemmAttrs:
    """ONNX Gemm attributes with their spec defaults."""

    alpha: float = 1.0
    beta: float = 1.0
    transA: int = 0  # noqa: N815 - ONNX spelling
    transB: int = 0  # noqa: N815 - ONNX spelling


@register
class Gemm(OpDef):
    """General matrix multiply; PyTorch's Linear exports as Gemm with transB=1."""

    name = "Gemm"
    at_const_nodes = True
    onnx_types = ("Gemm",)
    Attrs = GemmAttrs
    kind = "linear"
    #: opset < 7 flag allowing C to broadcast; numpy broadcasting already covers both settings.
    ignored_attrs = frozenset({"broadcast"})

    def infer(self, node: Node, ins: Sequence[TensorInfo | None]) -> list[Shape]:
        a, b = ins[0], ins[1]
        assert a is not None and b is not None
        at: GemmAttrs = node.attrs
        if len(a.shape) != 2 or len(b.shape) != 2:
            raise ShapeError(f"{node.name}: Gemm needs 2-D inputs, got {a.shape} and {b.shape}")
        m, k = (a.shape[1], a.shape[0]) if at.transA else a.shape
        kb, n = (b.shape[1], b.shape[0]) if at.transB else b.shape
        if k != kb:
            raise ShapeError(f"{node.name}: inner dimensions differ ({k} vs {kb})")
        return [(m, n)]

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        a, b = xs[0], xs[1]
        assert a is not None and b is not None
        at: GemmAttrs = node.attrs
        a = a.T if at.transA else a
        b = b.T if at.transB else b
        y = a @ b.astype(a.dtype, copy=False)
        if at.alpha != 1.0:
            y = y * np.float32(at.alpha)
        c = xs[2] if len(xs) > 2 else None
        if c is not None:
            y = y + (np.float32(at.beta) * c if at.beta != 1.0 else c).astype(y.dtype, copy=False)
        return [y]

    def macs(self, node: Node, ins: Sequence[TensorInfo | None], outs: Sequence[TensorInfo]) -> int:
        a = ins[0]
        assert a is not None
        k = a.shape[0] if node.attrs.transA else a.shape[1]
        return outs[0].size * int(k)


@register
class MatMul(OpDef):
    """Matrix product with numpy broadcasting (a linear layer when B is constant)."""

    name = "MatMul"
    at_const_nodes = True
    onnx_types = ("MatMul",)
    kind = "linear"

    def infer(self, node: Node, ins: Sequence[TensorInfo | None]) -> list[Shape]:
        a, b = ins[0], ins[1]
        assert a is not None and b is not None
        sa, sb = a.shape, b.shape
        if len(sa) == 0 or len(sb) == 0:
            raise ShapeError(f"{node.name}: MatMul needs inputs of rank >= 1")
        ka = sa[-1]
        kb = sb[0] if len(sb) == 1 else sb[-2]
        if ka != kb:
            raise ShapeError(f"{node.name}: MatMul of {sa} and {sb}: inner sizes {ka} != {kb}")
        try:
            batch = np.broadcast_shapes(sa[:-2], sb[:-2])
        except ValueError:
            raise ShapeError(f"{node.name}: MatMul batch dims of {sa} and {sb} differ") from None
        shape = (*batch, *sa[-2:-1], *(sb[-1:] if len(sb) > 1 else ()))
        return [tuple(shape)]

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        a, b = xs[0], xs[1]
        assert a is not None and b is not None
        return [np.matmul(a, b.astype(a.dtype, copy=False))]

    def macs(self, node: Node, ins: Sequence[TensorInfo | None], outs: Sequence[TensorInfo]) -> int:
        a = ins[0]
        assert a is not None
        return outs[0].size * int(a.shape[-1])
