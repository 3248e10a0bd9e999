"""MaxPool and AveragePool (N-D windows, pads, strides, dilations, ``ceil_mode``).

MaxPool: ``y = max over the window`` (padding never wins: it is -inf).
AveragePool: ``y = Σ window / count`` where ``count`` is the full window when
``count_include_pad`` is set and the number of real (unpadded) elements otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nnshell.errors import ShapeError
from nnshell.ir import Node, Shape, TensorInfo
from nnshell.ops._shapes import out_size, pad_for_windows, resolve_pads, window_offsets
from nnshell.ops.registry import OpDef, register
from nnshell.qrecord import NodeQuant, QuantContext


@dataclass(frozen=True)
class PoolAttrs:
    """ONNX MaxPool / AveragePool attributes with their spec defaults."""

    kernel_shape: tuple[int, ...] = ()
    strides: tuple[int, ...] = ()
    pads: tuple[int, ...] = ()
    dilations: tuple[int, ...] = ()
    ceil_mode: int = 0
    auto_pad: str = "NOTSET"
    count_include_pad: int = 0
    storage_order: int = 0


def pool_geometry(
    node: Node, x_shape: Shape
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Return (kernel, strides, dilations, explicit pads, output sizes) of a pool node."""
    a: PoolAttrs = node.attrs
    kernel = tuple(a.kernel_shape)
    nd = len(kernel)
    if nd == 0 or len(x_shape) != nd + 2:
        raise ShapeError(f"{node.name}: kernel {kernel} does not fit input {x_shape}")
    strides = tuple(a.strides) or (1,) * nd
    dil = tuple(a.dilations) or (1,) * nd
    sizes = x_shape[2:]
    pads = resolve_pads(a.auto_pad, sizes, kernel, strides, dil, a.pads, node.name)
    outs = tuple(
        out_size(sizes[i], kernel[i], strides[i], dil[i], pads[i], pads[nd + i], bool(a.ceil_mode))
        for i in range(nd)
    )
    if min(outs) < 1:
        raise ShapeError(f"{node.name}: window {kernel} larger than input {sizes}")
    return kernel, strides, dil, pads, outs


class _Pool(OpDef):
    Attrs = PoolAttrs
    kind = "pool"
    ignored_attrs = frozenset({"storage_order"})

    def infer(self, node: Node, ins: Sequence[TensorInfo | None]) -> list[Shape]:
        x = ins[0]
        assert x is not None
        outs = pool_geometry(node, x.shape)[4]
        return [(*x.shape[:2], *outs)]


def max_pool_float(x: np.ndarray, node: Node) -> np.ndarray:
    """Max over each window (a running ``np.maximum`` over kernel offsets); padding is -inf."""
    kernel, strides, dil, pads, outs = pool_geometry(node, x.shape)
    xp = pad_for_windows(x, kernel, strides, dil, pads, outs, pad_value=-np.inf)
    y: np.ndarray | None = None
    for _, sl in window_offsets(kernel, strides, dil, outs):
        v = xp[(slice(None), slice(None), *sl)]
        if y is None:
            y = v.copy()
        else:
            np.maximum(y, v, out=y)
    assert y is not None
    return y


def _window_sum(
    x: np.ndarray,
    kernel: Sequence[int],
    strides: Sequence[int],
    dil: Sequence[int],
    pads: Sequence[int],
    outs: Sequence[int],
) -> np.ndarray:
    """Sum over each (zero-padded) window, accumulated over kernel offsets."""
    xp = pad_for_windows(x, kernel, strides, dil, pads, outs)
    y: np.ndarray | None = None
    for _, sl in window_offsets(kernel, strides, dil, outs):
        v = xp[(slice(None), slice(None), *sl)]
        if y is None:
            y = v.copy()
        else:
            y += v
    assert y is not None
    return y


def avg_pool_float(x: np.ndarray, node: Node) -> np.ndarray:
    """Mean over each window, dividing by the count ``count_include_pad`` says."""
    kernel, strides, dil, pads, outs = pool_geometry(node, x.shape)
    total = _window_sum(x, kernel, strides, dil, pads, outs)
    nd = len(kernel)
    ones = np.ones((1, 1, *x.shape[2:]), x.dtype)
    if node.attrs.count_include_pad:
        # ceil_mode windows that run past the explicit padding still count only the pads
        padded = np.pad(
            ones, [(0, 0), (0, 0)] + [(pads[i], pads[nd + i]) for i in range(nd)], constant_values=1
        )
        count = _window_sum(padded, kernel, strides, dil, (0,) * (2 * nd), outs)
    else:
        count = _window_sum(ones, kernel, strides, dil, pads, outs)
    return (total / count).astype(x.dtype, copy=False)


@register
class MaxPool(_Pool):
    """Max pooling."""

    name = "MaxPool"
    onnx_types = ("MaxPool",)
    # SQ8: the output keeps the input's qtype; max commutes with the monotonic requantization.
    q_passthrough = True

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        assert xs[0] is not None
        return [max_pool_float(xs[0], node)]

    def q_symmetric_input(self, node: Node, idx: int) -> str | None:
        """Padding must be the real minimum; with a zero point the kernel's pad is not."""
        a: PoolAttrs = node.attrs
        padded = a.auto_pad in ("SAME_UPPER", "SAME_LOWER") or any(a.pads)
        return "pool with padding" if padded else None

    def quantize_sq8(self, ctx: QuantContext) -> NodeQuant:
        """No parameters: integer max over each window."""
        return NodeQuant(list(ctx.in_q), ctx.out_q)

    def run_int(self, node: Node, nq: NodeQuant, *xs: np.ndarray | None) -> list[np.ndarray]:
        """Integer max (int8 codes are exact in float32; padding never wins)."""
        x = xs[0]
        assert x is not None
        return [max_pool_float(x.astype(np.float32), node).astype(x.dtype)]


@register
class AveragePool(_Pool):
    """Average pooling."""

    name = "AveragePool"
    onnx_types = ("AveragePool",)

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        assert xs[0] is not None
        return [avg_pool_float(xs[0], node)]
