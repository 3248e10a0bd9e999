"""Pointwise math and pass-through ops (shape unchanged).

- Exp: ``y = e^x``; Log: ``y = ln x``; Neg: ``y = -x``; Abs: ``y = |x|``; Sqrt: ``y = √x``;
  Reciprocal: ``y = 1/x``.
- Identity: ``y = x``. Dropout in inference: ``y = x`` (ratio, seed and a constant
  ``training_mode`` of 0 change nothing; the optional mask output is not computed).

SQ8: Identity and Dropout move codes unchanged (the output keeps the input's qtype); the math
ops have no SQ8 kernel. POW2: the same, plus a shift when the output's Q differs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nnshell.errors import ShapeError
from nnshell.ir import Node, Shape, TensorInfo
from nnshell.ops import _pow2
from nnshell.ops._sq8_ext import passthrough_quant, rescale_int
from nnshell.ops.registry import OpDef, register
from nnshell.quant.qrecord import NodeQuant, QuantContext


class _PassthroughSQ8(_pow2.Pow2Mover, OpDef):
    """SQ8 and POW2 hooks of an identity: the input's qtype, the same codes (rescaled only if a
    consumer changed the output qtype; shifted if the POW2 output's Q differs)."""

    q_passthrough = True

    def quantize_sq8(self, ctx: QuantContext) -> NodeQuant:
        """No parameters."""
        return passthrough_quant(ctx)

    def run_int(self, node: Node, nq: NodeQuant, *xs: np.ndarray | None) -> list[np.ndarray]:
        """The input codes."""
        assert xs[0] is not None
        return [rescale_int(xs[0], nq.consts)]

    def emit_c(self, node: Node, nq: NodeQuant, ctx: Any) -> str:
        """A copy, then the rescale if any."""
        return str(ctx.copy(nq.consts))


class _Unary(OpDef):
    kind = "elementwise"
    fn: Callable[[np.ndarray], np.ndarray]

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        x = xs[0]
        assert x is not None
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            # out-of-domain inputs give nan/inf silently, as onnxruntime does
            return [type(self).fn(x).astype(x.dtype, copy=False)]


@register
class Exp(_Unary):
    """Natural exponential."""

    name = "Exp"
    onnx_types = ("Exp",)
    fn = staticmethod(np.exp)


@register
class Log(_Unary):
    """Natural logarithm."""

    name = "Log"
    onnx_types = ("Log",)
    fn = staticmethod(np.log)


@register
class Neg(_Unary):
    """Negation."""

    name = "Neg"
    onnx_types = ("Neg",)
    fn = staticmethod(np.negative)


@register
class Abs(_Unary):
    """Absolute value."""

    name = "Abs"
    onnx_types = ("Abs",)
    fn = staticmethod(np.abs)


@register
class Sqrt(_Unary):
    """Square root."""

    name = "Sqrt"
    onnx_types = ("Sqrt",)
    fn = staticmethod(np.sqrt)


@register
class Reciprocal(_Unary):
    """Reciprocal."""

    name = "Reciprocal"
    onnx_types = ("Reciprocal",)
    fn = staticmethod(np.reciprocal)


@register
class Identity(_PassthroughSQ8):
    """Pass the input through unchanged."""

    name = "Identity"
    onnx_types = ("Identity",)
    kind = "other"

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        assert xs[0] is not None
        return [xs[0]]


@dataclass(frozen=True)
class DropoutAttrs:
    """Dropout attributes; all are irrelevant to inference except a training ``is_test`` of 0."""

    ratio: float = 0.5
    seed: int = 0
    is_test: int = 1


@register
class Dropout(_PassthroughSQ8):
    """Dropout at inference time: the identity."""

    name = "Dropout"
    onnx_types = ("Dropout",)
    Attrs = DropoutAttrs
    kind = "other"
    ignored_attrs = frozenset({"consumed_inputs"})

    def infer(self, node: Node, ins: Sequence[TensorInfo | None]) -> list[Shape]:
        x = ins[0]
        assert x is not None
        mode = ins[2] if len(ins) > 2 else None
        if mode is not None and (mode.const is None or bool(np.any(mode.const))):
            raise ShapeError(f"{node.name}: Dropout in training mode is not an inference op")
        return [x.shape]

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        assert xs[0] is not None
        return [xs[0]]
