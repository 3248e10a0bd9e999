"""Pointwise activations (shape unchanged, batch-agnostic).

- Clip: ``y = min(max(x, lo), hi)`` (attributes before opset 11, constant inputs from 11).
- LeakyRelu: ``y = x if x >= 0 else alpha·x`` (alpha 0.01).
- PRelu: ``y = x if x >= 0 else slope·x`` (slope broadcast to x, one per channel typically).
- Sigmoid: ``y = 1 / (1 + e^-x)``; Tanh: ``y = tanh(x)``.
- HardSigmoid: ``y = max(0, min(1, alpha·x + beta))`` (alpha 0.2, beta 0.5).
- HardSwish: ``y = x · max(0, min(1, x/6 + 1/2))``.
- Elu: ``y = x if x > 0 else alpha·(e^x - 1)``;
  Selu: ``y = gamma·(x if x > 0 else alpha·(e^x - 1))``.
- Softplus: ``y = ln(1 + e^x)``; Softsign: ``y = x / (1 + |x|)``.

Every kernel computes in the input dtype (float32) so results match onnxruntime to rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nnshell.errors import ShapeError
from nnshell.ir import Node, Shape, TensorInfo
from nnshell.ops._batching import opset_of
from nnshell.ops.registry import OpDef, register


class _Activation(OpDef):
    kind = "activation"


def _f(x: np.ndarray, v: float) -> np.ndarray:
    """Return ``v`` as a scalar of the dtype of ``x`` (keeps float32 math in float32)."""
    return np.asarray(v, dtype=x.dtype)


@dataclass(frozen=True)
class ClipAttrs:
    """Clip bounds of opset < 11 (from 11 they are inputs)."""

    min: float = float("-inf")
    max: float = float("inf")


@register
class Clip(_Activation):
    """Clamp to [min, max]; ReLU6 is Clip(0, 6)."""

    name = "Clip"
    onnx_types = ("Clip",)
    Attrs = ClipAttrs

    def infer(self, node: Node, ins: Sequence[TensorInfo | None]) -> list[Shape]:
        x = ins[0]
        assert x is not None
        for i in (1, 2):
            t = ins[i] if i < len(ins) else None
            if t is not None and (t.const is None or t.const.size != 1):
                raise ShapeError(f"{node.name}: Clip bounds must be constant scalars")
        return [x.shape]

    def bounds(self, node: Node, *xs: np.ndarray | None) -> tuple[float, float]:
        """Return the (min, max) bounds whichever form the node uses."""
        lo, hi = float(node.attrs.min), float(node.attrs.max)
        if len(xs) > 1 and xs[1] is not None:
            lo = float(np.asarray(xs[1]).reshape(-1)[0])
        if len(xs) > 2 and xs[2] is not None:
            hi = float(np.asarray(xs[2]).reshape(-1)[0])
        return lo, hi

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        x = xs[0]
        assert x is not None
        lo, hi = self.bounds(node, *xs)
        return [np.minimum(np.maximum(x, _f(x, lo)), _f(x, hi))]


@dataclass(frozen=True)
class AlphaAttrs:
    """LeakyRelu slope."""

    alpha: float = 0.01


@register
class LeakyRelu(_Activation):
    """Leaky rectifier."""

    name = "LeakyRelu"
    onnx_types = ("LeakyRelu",)
    Attrs = AlphaAttrs

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        x = xs[0]
        assert x is not None
        return [np.where(x >= 0, x, x * _f(x, node.attrs.alpha))]


@register
class PRelu(_Activation):
    """Parametric rectifier: a learned slope broadcast (unidirectionally) to the input."""

    name = "PRelu"
    onnx_types = ("PRelu",)

    def infer(self, node: Node, ins: Sequence[TensorInfo | None]) -> list[Shape]:
        x, s = ins[0], ins[1]
        assert x is not None and s is not None
        if s.const is None:
            raise ShapeError(f"{node.name}: PRelu needs a constant slope")
        shape = s.shape
        if opset_of(node) < 7 and len(shape) == 1 and len(x.shape) > 2 and shape[0] == x.shape[1]:
            # opset 6 PyTorch exports: a 1-D slope is one value per channel (axis 1)
            shape = (shape[0],) + (1,) * (len(x.shape) - 2)
        node.meta["slope_shape"] = shape
        if len(shape) >= len(x.shape) and any(
            d != 1 for d in shape[: len(shape) - len(x.shape) + 1]
        ):
            raise ShapeError(f"{node.name}: PRelu slope {shape} would vary along the batch axis")
        try:
            out = np.broadcast_shapes(x.shape, shape)
        except ValueError:
            raise ShapeError(
                f"{node.name}: slope {shape} does not broadcast to {x.shape}"
            ) from None
        if tuple(out) != tuple(x.shape):
            raise ShapeError(f"{node.name}: slope {shape} does not broadcast to {x.shape}")
        return [x.shape]

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        x, s = xs[0], xs[1]
        assert x is not None and s is not None
        s = s.reshape(node.meta.get("slope_shape", s.shape)).astype(x.dtype, copy=False)
        return [np.where(x >= 0, x, x * s)]


@register
class Sigmoid(_Activation):
    """Logistic function."""

    name = "Sigmoid"
    onnx_types = ("Sigmoid",)

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        x = xs[0]
        assert x is not None
        # split by sign so e^x never overflows
        e = np.exp(-np.abs(x))
        one = _f(x, 1.0)
        return [np.where(x >= 0, one / (one + e), e / (one + e))]


@register
class Tanh(_Activation):
    """Hyperbolic tangent."""

    name = "Tanh"
    onnx_types = ("Tanh",)

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        assert xs[0] is not None
        return [np.tanh(xs[0])]


@dataclass(frozen=True)
class HardSigmoidAttrs:
    """HardSigmoid slope and offset."""

    alpha: float = 0.2
    beta: float = 0.5


@register
class HardSigmoid(_Activation):
    """Piecewise-linear sigmoid."""

    name = "HardSigmoid"
    onnx_types = ("HardSigmoid",)
    Attrs = HardSigmoidAttrs

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        x = xs[0]
        assert x is not None
        y = x * _f(x, node.attrs.alpha) + _f(x, node.attrs.beta)
        return [np.clip(y, _f(x, 0.0), _f(x, 1.0))]


@register
class HardSwish(_Activation):
    """x times the hard sigmoid with alpha 1/6 (MobileNetV3)."""

    name = "HardSwish"
    onnx_types = ("HardSwish",)

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        x = xs[0]
        assert x is not None
        g = np.clip(x * _f(x, 1.0 / 6.0) + _f(x, 0.5), _f(x, 0.0), _f(x, 1.0))
        return [x * g]


@dataclass(frozen=True)
class EluAttrs:
    """Elu scale of the negative part."""

    alpha: float = 1.0


@register
class Elu(_Activation):
    """Exponential linear unit."""

    name = "Elu"
    onnx_types = ("Elu",)
    Attrs = EluAttrs

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        x = xs[0]
        assert x is not None
        neg = _f(x, node.attrs.alpha) * np.expm1(np.minimum(x, _f(x, 0.0)))
        return [np.where(x > 0, x, neg)]


@dataclass(frozen=True)
class SeluAttrs:
    """Selu constants (the ONNX defaults are the self-normalising values)."""

    alpha: float = 1.67326319217681884765625
    gamma: float = 1.05070102214813232421875


@register
class Selu(_Activation):
    """Scaled exponential linear unit."""

    name = "Selu"
    onnx_types = ("Selu",)
    Attrs = SeluAttrs

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        x = xs[0]
        assert x is not None
        a, g = _f(x, node.attrs.alpha), _f(x, node.attrs.gamma)
        neg = a * np.exp(np.minimum(x, _f(x, 0.0))) - a
        return [g * np.where(x > 0, x, neg)]


@register
class Softplus(_Activation):
    """Smooth rectifier ``ln(1 + e^x)``, computed without overflow."""

    name = "Softplus"
    onnx_types = ("Softplus",)

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        x = xs[0]
        assert x is not None
        return [np.logaddexp(_f(x, 0.0), x)]


@register
class Softsign(_Activation):
    """``x / (1 + |x|)``."""

    name = "Softsign"
    onnx_types = ("Softsign",)

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        x = xs[0]
        assert x is not None
        return [x / (_f(x, 1.0) + np.abs(x))]
