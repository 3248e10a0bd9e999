"""MaxPool and AveragePool (N-D windows, pads, strides, dilations, ``ceil_mode``).

MaxPool: ``y = max over the window`` (padding never wins: it is -inf).
AveragePool: ``y = Σ window / count`` where ``count`` is the full window when
``count_include_pad`` is set and the number of real (unpadded) elements otherwise.

SQ8 (SQ8.md §5): both keep their input's qtype; the average is
``clip8(rnorm(Σ_window x · floor(65536/count), 16))``, the padded positions it counts
(``count_include_pad``) holding the input zero point Zi (the code of real 0), so an asymmetric
input is exact; ``aquant --nntool_padding`` forces a padded pool's input symmetric, as NNTool.
POW2: the same max and average on codes at the input's Q, then the output's shift if any.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nnshell.errors import ShapeError
from nnshell.ir import Node, Shape, TensorInfo
from nnshell.ops import _pow2
from nnshell.ops._shapes import (
    WindowGeometry,
    out_size,
    pad_for_windows,
    resolve_pads,
    window_offsets,
)
from nnshell.ops._sq8_ext import passthrough_quant, rescale_int
from nnshell.ops.registry import OpDef, register
from nnshell.quant.fixed_point import clip8, rnorm
from nnshell.quant.fixed_pow2 import Pow2Context, clip_bits
from nnshell.quant.qrecord import NodeQuant, QuantContext


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

    def c_pool(self, node: Node, x_shape: Shape, ctx: Any, pad: int = 0) -> str:
        """The C ``nn_pool_t`` of this window over ``x_shape`` (also used inside conv fusions):
        a max ignores positions outside the map; an average adds ``pad`` (the input zero point)
        for the padded positions it counts and divides by the count :func:`_count` uses."""
        avg = self.name == "AveragePool"
        kind = "NN_POOL_AVG" if avg else "NN_POOL_MAX"
        include_pad = avg and bool(node.attrs.count_include_pad)
        geometry = pool_geometry(node, x_shape)
        return str(ctx.pool(kind, x_shape, geometry, include_pad, pad if include_pad else 0))

    def emit_c(self, node: Node, nq: NodeQuant, ctx: Any) -> str:
        """``nn_pool``, then the rescale a consumer may have given the output."""
        x, y = node.inputs[0], node.outputs[0]
        c, h, w = ctx.chw(ctx.shape(x))
        qin = nq.in_q[0] if nq.in_q else None
        pool = self.c_pool(node, ctx.shape(x), ctx, qin.zero_point if qin is not None else 0)
        call = f"nn_pool({ctx.ptr8(x)}, {ctx.ptr8(y)}, {c}, {h}, {w}, {pool});"
        return call + ctx.rescale(nq.consts, y)

    def emit_c_pow2(self, node: Node, nq: NodeQuant, ctx: Any) -> str:
        """``nn_p2_pool`` with the window descriptor of the SQ8 kernel (``c_pool``), then the
        output shift."""
        x, y = node.inputs[0], node.outputs[0]
        es = _pow2.code_width(ctx, x, y)
        c, h, w = ctx.chw(ctx.shape(x))
        pool = self.c_pool(node, ctx.shape(x), ctx)
        shift = _pow2.out_shift(nq)
        return f"nn_p2_pool({ctx.ptr(x)}, {ctx.ptr(y)}, {c}, {h}, {w}, {es}, {pool}, {shift});"


def _padded(node: Node) -> str | None:
    """``"pool with padding"`` when the pool has explicit or automatic padding, else None."""
    a: PoolAttrs = node.attrs
    padded = a.auto_pad in ("SAME_UPPER", "SAME_LOWER") or any(a.pads)
    return "pool with padding" if padded else None


def max_pool_float(x: np.ndarray, node: Node) -> np.ndarray:
    """Max over each window (a running ``np.maximum`` over kernel offsets); padding is -inf."""
    return _window_reduce(x, pool_geometry(node, x.shape), np.maximum, -np.inf)


def _window_sum(x: np.ndarray, geometry: WindowGeometry) -> np.ndarray:
    """Sum over each (zero-padded) window, accumulated over kernel offsets."""
    return _window_reduce(x, geometry, np.add, 0)


def _window_reduce(
    x: np.ndarray, geometry: WindowGeometry, combine: np.ufunc, pad_value: float
) -> np.ndarray:
    """``combine`` (in place) of every window's values, one kernel offset at a time over the
    whole map: the max and the sum of the pools are this loop with another ufunc.
    ``geometry``: ``pool_geometry``'s (kernel, strides, dilations, pads, output sizes)."""
    kernel, strides, dil, pads, outs = geometry
    xp = pad_for_windows(x, kernel, strides, dil, pads, outs, pad_value=pad_value)
    y: np.ndarray | None = None
    for _, sl in window_offsets(kernel, strides, dil, outs):
        v = xp[(slice(None), slice(None), *sl)]
        if y is None:
            y = v.copy()
        else:
            combine(y, v, out=y)
    assert y is not None
    return y


def avg_pool_float(x: np.ndarray, node: Node) -> np.ndarray:
    """Mean over each window, dividing by the count ``count_include_pad`` says."""
    geometry = pool_geometry(node, x.shape)
    total = _window_sum(x, geometry)
    count = _count(node, np.ones((1, 1, *x.shape[2:]), x.dtype), geometry)
    return (total / count).astype(x.dtype, copy=False)


@register
class MaxPool(_Pool):
    """Max pooling."""

    name = "MaxPool"
    at_generator = "pool"
    pool_reduce = "max"
    onnx_types = ("MaxPool",)
    # SQ8: the output keeps the input's qtype; max commutes with the monotonic requantization.
    q_passthrough = True

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        assert xs[0] is not None
        return [max_pool_float(xs[0], node)]

    def q_padded_input(self, node: Node, idx: int) -> str | None:
        """Padding never wins a max (any qtype works); NNTool forces a padded pool's input
        symmetric all the same (``--nntool_padding``)."""
        return _padded(node)

    def quantize_sq8(self, ctx: QuantContext) -> NodeQuant:
        """No parameters (integer max over each window), unless the output qtype was changed
        by a consumer (a Concat imposing its scale): then a rescale ``rnorm((x-Zi)·M, N) + Zo``
        follows the max (max commutes with the monotonic rescale)."""
        return passthrough_quant(ctx)

    def run_int(self, node: Node, nq: NodeQuant, *xs: np.ndarray | None) -> list[np.ndarray]:
        """Integer max (int8 codes are exact in float32; padding never wins)."""
        x = xs[0]
        assert x is not None
        y = max_pool_float(x.astype(np.float32), node).astype(x.dtype)
        return [rescale_int(y, nq.consts)]

    # -- POW2 ----------------------------------------------------------------------------------
    def quantize_pow2(self, ctx: Pow2Context) -> NodeQuant:
        """No parameters, an ``out_shift = q_in - q_out`` when the output has its own Q."""
        return _pow2.passthrough_quant(ctx)

    def run_int_pow2(self, node: Node, nq: NodeQuant, *xs: np.ndarray | None) -> list[np.ndarray]:
        """``clip_bits(shift_round(max_window x, out_shift))`` (codes exact in float32)."""
        x = xs[0]
        assert x is not None
        y = max_pool_float(x.astype(np.float32), node).astype(np.int64)  # int16 exact in float32
        return [_pow2.to_out(y, nq)]


@register
class AveragePool(_Pool):
    """Average pooling."""

    name = "AveragePool"
    at_generator = "pool"
    pool_reduce = "average"
    onnx_types = ("AveragePool",)

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        assert xs[0] is not None
        return [avg_pool_float(xs[0], node)]

    # SQ8 §5: the output keeps the input's scale (averaging codes needs no requantization).
    q_passthrough = True

    def q_padded_input(self, node: Node, idx: int) -> str | None:
        """The counted padding holds the input zero point (any qtype works); NNTool pads with
        code 0 and forces the input symmetric (``--nntool_padding``)."""
        return _padded(node)

    def quantize_sq8(self, ctx: QuantContext) -> NodeQuant:
        """No parameters (the divisor multipliers follow from the geometry), plus a rescale when
        a consumer changed the output qtype (see :meth:`MaxPool.quantize_sq8`)."""
        return passthrough_quant(ctx)

    def run_int(self, node: Node, nq: NodeQuant, *xs: np.ndarray | None) -> list[np.ndarray]:
        """``clip8(rnorm(Σ_window x · floor(65536/count), 16))`` (SQ8 §5).

        ``count`` is ``Fx·Fy`` — or, as ``count_include_pad`` says, the number of real (or real
        and explicitly padded) elements of each window, so edge windows get their own
        multiplier. Counted padding contributes the input zero point (the code of real 0).
        """
        x = xs[0]
        assert x is not None
        qin = nq.in_q[0] if nq.in_q else None
        zp = qin.zero_point if qin is not None else 0
        return [rescale_int(avg_pool_int(x, node, zp), nq.consts)]

    # -- POW2 ----------------------------------------------------------------------------------
    def quantize_pow2(self, ctx: Pow2Context) -> NodeQuant:
        """No parameters, an ``out_shift = q_in - q_out`` when the output has its own Q."""
        return _pow2.passthrough_quant(ctx)

    def run_int_pow2(self, node: Node, nq: NodeQuant, *xs: np.ndarray | None) -> list[np.ndarray]:
        """``rnorm(Σ_window x · floor(65536/count), 16)`` at the input Q (as SQ8 §5), clipped to
        the input width, then ``shift_round(·, out_shift)``."""
        x = xs[0]
        assert x is not None
        total = _window_sum(x.astype(np.int64), pool_geometry(node, x.shape))
        y = np.asarray(rnorm(total * avg_pool_divisors(node, x.shape), 16))
        y = clip_bits(y, nq.in_q[0].bits if nq.in_q[0] is not None else _pow2.bits_of(nq))
        return [_pow2.to_out(y, nq)]


def avg_pool_divisors(node: Node, x_shape: Shape) -> np.ndarray:
    """``floor(65536 / count)`` per output position, shaped ``(1, 1, *out)`` (int64)."""
    ones = np.ones((1, 1, *x_shape[2:]), np.int64)
    return 65536 // _count(node, ones, pool_geometry(node, x_shape))


def _count(node: Node, ones: np.ndarray, geometry: WindowGeometry) -> np.ndarray:
    """Elements averaged by each window; with ``count_include_pad`` the explicit pads count, but
    a ceil_mode window running past them still counts only up to the pads."""
    kernel, strides, dil, pads, outs = geometry
    nd = len(kernel)
    if node.attrs.count_include_pad:
        widths = [(0, 0), (0, 0)] + [(pads[i], pads[nd + i]) for i in range(nd)]
        padded = np.pad(ones, widths, constant_values=1)
        return _window_sum(padded, (kernel, strides, dil, (0,) * (2 * nd), outs))
    return _window_sum(ones, geometry)


def avg_pool_int(x: np.ndarray, node: Node, zero_point: int = 0) -> np.ndarray:
    """The SQ8 integer average pool on int8 codes (int8 result).

    A padded position the count includes (``count_include_pad``) holds ``zero_point``, the
    code of real 0: the sum gains ``Zi·(count − real positions)``; with
    ``count_include_pad=0`` no padded position is counted, so the mean of the codes is already
    ``Zi + mean(x − Zi)``.
    """
    geometry = pool_geometry(node, x.shape)
    total = _window_sum(x.astype(np.int64), geometry)
    if zero_point and node.attrs.count_include_pad and any(geometry[3]):
        ones = np.ones((1, 1, *x.shape[2:]), np.int64)
        counted = _count(node, ones, geometry)
        real = _window_sum(ones, geometry)
        total = total + int(zero_point) * (counted - real)
    return np.asarray(clip8(rnorm(total * avg_pool_divisors(node, x.shape), 16))).astype(np.int8)
