"""Conv: N-D convolution (1-D and 2-D in practice) with pads, strides, dilations and groups.

``y[n, m, p] = b[m] + Σ_{c ∈ group(m), k} w[m, c, k] · x_pad[n, c, p·s + k·d]``.
The float kernel (column matrix, 1×1 and depthwise fast paths) is :mod:`nnshell.ops._conv_kernel`,
shared with the SQ8 integer convolution.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nnshell.errors import QuantizationError, ShapeError
from nnshell.ir import Node, Shape, TensorInfo
from nnshell.ops import _pow2, _sq8
from nnshell.ops._conv_kernel import conv_float
from nnshell.ops._shapes import ConvWindowAttrs, out_size, resolve_pads
from nnshell.ops.registry import OpDef, register
from nnshell.quant.fixed_pow2 import Pow2Context
from nnshell.quant.qrecord import NodeQuant, QuantContext


@dataclass(frozen=True)
class ConvAttrs(ConvWindowAttrs):
    """ONNX Conv attributes with their spec defaults (empty tuple = derived from the weights)."""


def conv_geometry(
    node: Node, x_shape: Shape, w_shape: Shape
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Return (kernel, strides, dilations, explicit pads, output spatial sizes) of a Conv node."""
    a: ConvAttrs = node.attrs
    kernel = tuple(a.kernel_shape) or tuple(w_shape[2:])
    nd = len(kernel)
    strides = tuple(a.strides) or (1,) * nd
    dil = tuple(a.dilations) or (1,) * nd
    sizes = x_shape[2:]
    if len(sizes) != nd:
        raise ShapeError(f"{node.name}: input rank {len(x_shape)} does not fit a {nd}-D kernel")
    pads = resolve_pads(a.auto_pad, sizes, kernel, strides, dil, a.pads, node.name)
    outs = tuple(
        out_size(sizes[i], kernel[i], strides[i], dil[i], pads[i], pads[nd + i]) for i in range(nd)
    )
    if min(outs) < 1:
        raise ShapeError(f"{node.name}: kernel {kernel} is larger than the padded input {sizes}")
    return kernel, strides, dil, pads, outs


def _quantize_conv(ctx: Any, quantize_weighted: Callable[..., NodeQuant]) -> NodeQuant:
    """The scheme's weighted-layer quantizer over the constant weights (fan-in: one filter's
    size), with the conv geometry kept in ``info`` for the integer kernel and the C emitter."""
    w = ctx.const(1)
    if w is None:
        raise QuantizationError(f"{ctx.node.name}: conv weights are not constant")
    nq = quantize_weighted(ctx, w, ctx.const(2), int(np.prod(w.shape[1:])))
    x = ctx.graph.tensors[ctx.node.inputs[0]]
    nq.info["geometry"] = conv_geometry(ctx.node, x.shape, w.shape)
    return nq


@register
class Conv(OpDef):
    """Convolution with bias; the workhorse of every CNN."""

    name = "Conv"
    at_generator = "conv"
    at_const_nodes = True
    onnx_types = ("Conv",)
    Attrs = ConvAttrs
    kind = "conv"
    weighted = True

    def geometry(self, node: Node, x: Shape, w: Shape) -> Any:
        """The window geometry the C kernel is given (:func:`conv_geometry`)."""
        return conv_geometry(node, x, w)

    def infer(self, node: Node, ins: Sequence[TensorInfo | None]) -> list[Shape]:
        x, w = ins[0], ins[1]
        assert x is not None and w is not None
        a: ConvAttrs = node.attrs
        if x.shape[1] != w.shape[1] * a.group:
            raise ShapeError(
                f"{node.name}: input has {x.shape[1]} channels, weights expect "
                f"{w.shape[1]}×{a.group} groups"
            )
        _, _, _, _, outs = conv_geometry(node, x.shape, w.shape)
        return [(x.shape[0], w.shape[0], *outs)]

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        x, w = xs[0], xs[1]
        assert x is not None and w is not None
        b = xs[2] if len(xs) > 2 else None
        return [conv_float(x, w, b, conv_geometry(node, x.shape, w.shape), node.attrs.group)]

    def run_float_t(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        """Float layer: float32 accumulated in the C runtime's order (``ops._float``)."""
        from nnshell.ops._float import conv2d_ordered

        x, w = xs[0], xs[1]
        assert x is not None and w is not None
        b = xs[2] if len(xs) > 2 else None
        geometry = conv_geometry(node, x.shape, w.shape)
        if len(geometry[0]) > 2:
            return super().run_float_t(node, *xs)
        return [conv2d_ordered(x, w, b, geometry, node.attrs.group)]

    def macs(self, node: Node, ins: Sequence[TensorInfo | None], outs: Sequence[TensorInfo]) -> int:
        w = ins[1]
        assert w is not None
        return outs[0].size * int(np.prod(w.shape[1:]))

    # -- SQ8 (SQ8.md §3-§5) -------------------------------------------------------------------
    q_asym_output = True

    def q_padded_input(self, node: Node, idx: int) -> str | None:
        """A padded conv pads with the input zero point (the code of real 0): any qtype works;
        NNTool pads with code 0 and so forces the input symmetric (``--nntool_padding``)."""
        a: ConvAttrs = node.attrs
        padded = a.auto_pad in ("SAME_UPPER", "SAME_LOWER") or any(a.pads)
        return "conv with padding" if idx == 0 and padded else None

    def quantize_sq8(self, ctx: QuantContext) -> NodeQuant:
        """Per-channel int8 weights, int32 bias, zero-point offsets and (M, N) per channel."""
        return _quantize_conv(ctx, _sq8.quantize_weighted)

    def run_int(self, node: Node, nq: NodeQuant, *xs: np.ndarray | None) -> list[np.ndarray]:
        """``clip8(rnorm((Bq + off + Σ Wq·Xq)·M, N))`` per output channel."""
        assert xs[0] is not None
        return [_sq8.conv_int(xs[0], nq, nq.info["geometry"], node.attrs.group)]

    def emit_c(self, node: Node, nq: NodeQuant, ctx: Any) -> str:
        """``nn_conv``: the same per-channel SQ8 convolution in C; a conv-headed fusion passes
        its pool and activations in ``ctx.tail`` (one kernel call, no intermediate map)."""
        kernel, strides, dil, pads, outs = nq.info["geometry"]
        x, y = node.inputs[0], node.outputs[0]
        window = ctx.window(kernel, strides, dil, pads)
        zi = nq.in_q[0].zero_point if nq.in_q and nq.in_q[0] is not None else 0
        conv = _sq8.conv_struct(ctx, "conv", x, outs, window, node.attrs.group, nq, zi)
        pool, pre, post = ctx.tail
        return f"nn_conv({ctx.ptr8(x)}, {ctx.ptr8(y)}, {conv}, {pool}, {pre}, {post});"

    # -- POW2 (POW2.md "Conv / linear") ---------------------------------------------------------
    def quantize_pow2(self, ctx: Pow2Context) -> NodeQuant:
        """Weights at ``q_w``, biases at ``q_b``, ``in_shift`` / ``bias_shift`` / ``out_shift``
        under the accumulator budget (:func:`~nnshell.ops._pow2.quantize_weighted`)."""
        return _quantize_conv(ctx, _pow2.quantize_weighted)

    def run_int_pow2(self, node: Node, nq: NodeQuant, *xs: np.ndarray | None) -> list[np.ndarray]:
        """``clip_bits(shift_round(Σ w·rnorm(x, in_shift) + (b << bias_shift), out_shift))``."""
        x = xs[0]
        assert x is not None
        wq = nq.consts["weights"]
        ft = _pow2.float_type(int(np.prod(wq.shape[1:])), _pow2.bits_of(nq), node.name)
        xf = _pow2.pre_shift(x, nq).astype(ft)
        acc = conv_float(xf, wq.astype(ft), None, nq.info["geometry"], node.attrs.group)
        return [_pow2.weighted_output(acc, nq)]

    def emit_c_pow2(self, node: Node, nq: NodeQuant, ctx: Any) -> str:
        """``nn_p2_conv``; a conv-headed fusion passes its pool and activations in ``ctx.tail``."""
        kernel, strides, dil, pads, outs = nq.info["geometry"]
        x, y = node.inputs[0], node.outputs[0]
        conv = _pow2.conv_struct(ctx, node, nq, "conv", kernel, strides, dil, pads, outs)
        pool, pre, post = ctx.tail
        return f"nn_p2_conv({ctx.ptr(x)}, {ctx.ptr(y)}, {conv}, {pool}, {pre}, {post});"
