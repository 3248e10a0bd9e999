"""Broadcasting elementwise arithmetic.

- Add ``y = a + b``, Sub ``y = a - b``, Mul ``y = a · b``, Div ``y = a / b``, Pow ``y = a^b``.
- Sum ``y = Σ x_i``, Max ``y = max_i x_i``, Min ``y = min_i x_i``, Mean ``y = Σ x_i / n``
  (variadic).

Operands follow numpy broadcasting (opset >= 7) or the legacy ``broadcast``/``axis`` rule of
opset < 7 (B's dims aligned at ``axis``). A constant may sit on either side and have fewer dims.
To keep the batch axis apart, every activation operand must have the output's full rank and a
full-rank constant must have 1 on the batch axis.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from nnshell.errors import ShapeError
from nnshell.ir import Node, Shape, TensorInfo
from nnshell.ops.registry import OpDef, register


@dataclass(frozen=True)
class BinaryAttrs:
    """Legacy (opset < 7) broadcasting attributes; later opsets have none."""

    broadcast: int = 0
    axis: int | None = None


def _legacy_shape(node: Node, a: Shape, b: Shape) -> Shape:
    """Return B's shape padded with trailing 1s per the opset < 7 ``axis`` rule."""
    at: BinaryAttrs = node.attrs
    if not at.broadcast or at.axis is None:
        return b
    axis = at.axis % len(a) if at.axis < 0 else at.axis
    extra = len(a) - axis - len(b)
    if extra < 0:
        raise ShapeError(f"{node.name}: legacy broadcast of {b} at axis {at.axis} into {a}")
    return (*b, *(1,) * extra)


def broadcast_infer(node: Node, shapes: Sequence[Shape], is_const: Sequence[bool]) -> Shape:
    """Return the broadcast output shape, rejecting operands that would mix the batch axis."""
    try:
        out = tuple(int(d) for d in np.broadcast_shapes(*shapes))
    except ValueError:
        raise ShapeError(
            f"{node.name}: shapes {', '.join(map(str, shapes))} do not broadcast"
        ) from None
    for s, c in zip(shapes, is_const, strict=True):
        if not c and len(s) != len(out):
            raise ShapeError(
                f"{node.name}: activation of shape {s} broadcast to {out} would mix the batch axis"
            )
        if c and len(s) == len(out) and s and s[0] != 1:
            raise ShapeError(f"{node.name}: constant of shape {s} varies along the batch axis")
    if any(not c for c in is_const) and out[:1] != (1,):
        raise ShapeError(f"{node.name}: output {out} would mix the batch axis")
    return out


class _Binary(OpDef):
    kind = "elementwise"
    Attrs = BinaryAttrs
    ignored_attrs = frozenset({"consumed_inputs"})
    fn: Callable[[np.ndarray, np.ndarray], np.ndarray]

    def infer(self, node: Node, ins: Sequence[TensorInfo | None]) -> list[Shape]:
        a, b = ins[0], ins[1]
        assert a is not None and b is not None
        shapes = [a.shape, _legacy_shape(node, a.shape, b.shape)]
        return [broadcast_infer(node, shapes, [a.is_const, b.is_const])]

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        a, b = xs[0], xs[1]
        assert a is not None and b is not None
        at: BinaryAttrs = node.attrs
        if at.broadcast and at.axis is not None:
            axis = at.axis % a.ndim if at.axis < 0 else at.axis
            b = b.reshape((*b.shape, *(1,) * (a.ndim - axis - b.ndim)))
        dt = a.dtype if a.dtype.kind == "f" else b.dtype
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            # division by zero and Pow of negatives give inf/nan silently, as onnxruntime does
            y = type(self).fn(a.astype(dt, copy=False), b.astype(dt, copy=False))
        return [y.astype(dt, copy=False)]


@register
class Add(_Binary):
    """Addition (residual joins, bias adds)."""

    name = "Add"
    onnx_types = ("Add",)
    fn = staticmethod(np.add)


@register
class Sub(_Binary):
    """Subtraction."""

    name = "Sub"
    onnx_types = ("Sub",)
    fn = staticmethod(np.subtract)


@register
class Mul(_Binary):
    """Multiplication (scales, gates)."""

    name = "Mul"
    onnx_types = ("Mul",)
    fn = staticmethod(np.multiply)


@register
class Div(_Binary):
    """Division."""

    name = "Div"
    onnx_types = ("Div",)
    fn = staticmethod(np.divide)


@register
class Pow(_Binary):
    """Power (usually with a constant exponent such as 2 or 0.5)."""

    name = "Pow"
    onnx_types = ("Pow",)
    fn = staticmethod(np.power)


class _Variadic(OpDef):
    kind = "elementwise"
    ignored_attrs = frozenset({"consumed_inputs"})
    fn: Callable[[np.ndarray, np.ndarray], np.ndarray]

    def infer(self, node: Node, ins: Sequence[TensorInfo | None]) -> list[Shape]:
        present = [t for t in ins if t is not None]
        if not present:
            raise ShapeError(f"{node.name}: {self.name} needs at least one input")
        shapes = [t.shape for t in present]
        return [broadcast_infer(node, shapes, [t.is_const for t in present])]

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        arrs = [x for x in xs if x is not None]
        dt = next((x.dtype for x in arrs if x.dtype.kind == "f"), arrs[0].dtype)
        y = arrs[0].astype(dt, copy=False)
        for x in arrs[1:]:
            y = type(self).fn(y, x.astype(dt, copy=False))
        return [self.finish(y, len(arrs)).astype(dt, copy=False)]

    def finish(self, y: np.ndarray, n: int) -> np.ndarray:
        """Post-process the reduction over the ``n`` inputs (identity except for Mean)."""
        return y


@register
class Sum(_Variadic):
    """Sum of any number of inputs (ResNet residual joins in Caffe2 exports)."""

    name = "Sum"
    onnx_types = ("Sum",)
    fn = staticmethod(np.add)


@register
class Max(_Variadic):
    """Elementwise maximum."""

    name = "Max"
    onnx_types = ("Max",)
    fn = staticmethod(np.maximum)


@register
class Min(_Variadic):
    """Elementwise minimum."""

    name = "Min"
    onnx_types = ("Min",)
    fn = staticmethod(np.minimum)


@register
class Mean(_Variadic):
    """Elementwise mean."""

    name = "Mean"
    onnx_types = ("Mean",)
    fn = staticmethod(np.add)

    def finish(self, y: np.ndarray, n: int) -> np.ndarray:
        return y / np.asarray(n, dtype=y.dtype)
