"""ConvTranspose: N-D transposed convolution (1-D, 2-D and 3-D) with groups.

``y[n, g·Mg + m, o] = b[g·Mg + m]
+ Σ_{c ∈ group g, k, i : i·s + k·d = o + pad_begin} x[n, g·Cg + c, i] · w[g·Cg + c, m, k]``,
with weights laid out ``(C, M/group, *kernel)``. Per axis, with ``span = (k - 1)·d + 1`` and
``full = s·(in - 1) + span + output_padding`` (the padding-free output):

- explicit pads (``auto_pad`` NOTSET) or VALID (all pads 0): ``out = full - pad_begin - pad_end``;
- ``output_shape`` given (spatial sizes only; pads are then ignored): ``total = full - out``;
  ``pad_begin = total // 2`` for SAME_UPPER, ``total - total // 2`` otherwise. An ``out``
  beyond ``full`` (``total < 0``) adds zero rows at the end like extra output padding, and is
  refused when it exceeds ``s·(in - 1) + span`` by ``max(s, d)`` or more;
- SAME_UPPER / SAME_LOWER without ``output_shape``: ``total = max(0, full - in·s)``, split as
  above, ``out = full - total`` (``in·s`` unless the kernel span is shorter than the stride:
  the rule of ONNX shape inference and onnxruntime).

``output_padding`` (zeros appended at the end, bias added) must be below ``max(s, d)``.
The float kernel computes, per kernel tap, one matmul per group over the input channels (the
whole batch at once) and adds it, strided by ``s``, into an accumulator that covers the
padding-free output, then crops ``[pad_begin, pad_begin + out)`` per axis.

SQ8 (1-D and 2-D in C): per-output-channel int8 weights, int32 bias and (M, N) exactly as Conv
(:func:`~nnshell.ops._sq8.quantize_weighted` on the weights regrouped output-channel first,
``(M, C/group, *kernel)``, the order the NodeQuant stores). Near the borders an output pixel sums
fewer taps than in the middle, so the input zero-point correction ``-Zi·Σ W`` would vary per
pixel: the input is made symmetric instead (``q_symmetric_input``, Zi = 0) and the offset is the
output zero point only. The integer executor runs the float kernel on the codes in an exact float
type; ``nn_conv_transpose`` gathers, per output pixel, the taps with ``o + pad_begin - k·d``
divisible by ``s`` (no buffer), then requantizes like ``nn_conv``.

POW2 (as Conv, POW2.md "Conv / linear"): :func:`~nnshell.ops._pow2.quantize_weighted` on the same
output-channel-first weights, an int64-exact accumulation of the float kernel on the codes, and
``nn_p2_conv_transpose`` (the gather of ``nn_conv_transpose`` with ``nn_p2_conv``'s arithmetic).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nnshell.errors import QuantizationError, ShapeError
from nnshell.ir import Node, Shape, TensorInfo
from nnshell.ops import _pow2, _sq8
from nnshell.ops._shapes import ConvWindowAttrs
from nnshell.ops.registry import OpDef, register
from nnshell.quant.fixed_point import exact_float_dtype
from nnshell.quant.fixed_pow2 import Pow2Context
from nnshell.quant.qrecord import NodeQuant, QuantContext


@dataclass(frozen=True)
class ConvTransposeAttrs(ConvWindowAttrs):
    """ONNX ConvTranspose attributes with their spec defaults (empty tuple = derived)."""

    output_padding: tuple[int, ...] = ()
    output_shape: tuple[int, ...] = ()


def _per_axis(
    values: Sequence[int], nd: int, default: int, what: str, node: Node
) -> tuple[int, ...]:
    """Return one int per spatial axis (``default`` when the attribute is absent)."""
    if not values:
        return (default,) * nd
    if len(values) != nd:
        raise ShapeError(f"{node.name}: {what} {tuple(values)} do not match a {nd}-D kernel")
    return tuple(int(v) for v in values)


def conv_transpose_geometry(
    node: Node, x_shape: Shape, w_shape: Shape
) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    """Return (strides, dilations, crop begins, output spatial sizes) of a ConvTranspose node.

    The crop begin of an axis is where the output starts in the padding-free result (the
    begin pad); the rules are those of the module docstring.
    """
    a: ConvTransposeAttrs = node.attrs
    kernel = tuple(int(k) for k in w_shape[2:])
    nd = len(kernel)
    if nd < 1:
        raise ShapeError(f"{node.name}: ConvTranspose weights {w_shape} have no spatial axis")
    if a.kernel_shape and tuple(a.kernel_shape) != kernel:
        raise ShapeError(
            f"{node.name}: kernel_shape {tuple(a.kernel_shape)} does not match the weights "
            f"{w_shape}"
        )
    sizes = tuple(int(s) for s in x_shape[2:])
    if len(sizes) != nd:
        raise ShapeError(f"{node.name}: input rank {len(x_shape)} does not fit a {nd}-D kernel")
    strides = _per_axis(a.strides, nd, 1, "strides", node)
    dil = _per_axis(a.dilations, nd, 1, "dilations", node)
    adj = _per_axis(a.output_padding, nd, 0, "output_padding", node)
    if min(strides) < 1 or min(dil) < 1:
        raise ShapeError(f"{node.name}: strides and dilations must be positive")
    for i in range(nd):
        if not 0 <= adj[i] < max(strides[i], dil[i]):
            raise ShapeError(
                f"{node.name}: output_padding {adj[i]} must be in [0, max(stride, dilation)) "
                f"= [0, {max(strides[i], dil[i])}) on spatial axis {i}"
            )
    base = tuple(
        (n - 1) * s + (k - 1) * d + 1
        for n, s, k, d in zip(sizes, strides, kernel, dil, strict=True)
    )
    full = tuple(b + p for b, p in zip(base, adj, strict=True))
    mode = a.auto_pad or "NOTSET"
    if mode not in ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"):
        raise ShapeError(f"{node.name}: auto_pad '{a.auto_pad}' is not an ONNX value")

    def split(total: int) -> int:
        return total // 2 if mode == "SAME_UPPER" else total - total // 2

    if a.output_shape:
        outs = _per_axis(a.output_shape, nd, 0, "output_shape", node)
        begins = []
        for i in range(nd):
            if outs[i] < 1:
                raise ShapeError(f"{node.name}: output_shape {outs} has a size below 1")
            if outs[i] - base[i] >= max(strides[i], dil[i]):
                raise ShapeError(
                    f"{node.name}: output_shape {outs[i]} on spatial axis {i} is more than the "
                    f"input size {sizes[i]} can produce (at most "
                    f"{base[i] + max(strides[i], dil[i]) - 1})"
                )
            begins.append(split(max(0, full[i] - outs[i])))
        return strides, dil, tuple(begins), outs
    if mode in ("SAME_UPPER", "SAME_LOWER"):
        totals = [max(0, f - n * s) for f, n, s in zip(full, sizes, strides, strict=True)]
        outs = tuple(f - t for f, t in zip(full, totals, strict=True))
        return strides, dil, tuple(split(t) for t in totals), outs
    pads = (0,) * (2 * nd) if mode == "VALID" else _per_axis(a.pads, 2 * nd, 0, "pads", node)
    if min(pads) < 0:
        raise ShapeError(f"{node.name}: pads {pads} must not be negative")
    outs = tuple(full[i] - pads[i] - pads[nd + i] for i in range(nd))
    if min(outs) < 1:
        raise ShapeError(f"{node.name}: pads {pads} leave an empty output {outs}")
    return strides, dil, pads[:nd], outs


def conv_transpose_float(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    strides: Sequence[int],
    dil: Sequence[int],
    begins: Sequence[int],
    outs: Sequence[int],
    group: int,
) -> np.ndarray:
    """Transposed convolution of a batched NC... array (weights ``(C, M/group, *kernel)``).

    The input is laid out once as ``(group, C/group, N·pixels)``; each kernel tap is then one
    batched matmul ``(group, M/group, C/group) @ (group, C/group, N·pixels)`` whose result is
    added into the strided positions ``i·s + k·d`` of an ``(M, N, *extent)`` accumulator.
    """
    n, c = x.shape[:2]
    sizes = x.shape[2:]
    nd = len(sizes)
    cg, mg = c // group, w.shape[1]
    m = mg * group
    kernel = w.shape[2:]
    dtype = np.result_type(x.dtype, np.float32)
    xg = x.astype(dtype, copy=False).reshape(n, group, cg, -1)
    xg = np.ascontiguousarray(xg.transpose(1, 2, 0, 3)).reshape(group, cg, -1)
    # taps first: wt[t, g] is the (M/group, C/group) matrix of tap t in group g
    wt = w.astype(dtype, copy=False).reshape(group, cg, mg, -1)
    wt = np.ascontiguousarray(wt.transpose(3, 0, 2, 1))
    extent = [
        max((sz - 1) * s + (k - 1) * d + 1, bg + o)
        for sz, s, k, d, bg, o in zip(sizes, strides, kernel, dil, begins, outs, strict=True)
    ]
    acc = np.zeros((m, n, *extent), dtype)
    tmp = np.empty((group, mg, xg.shape[2]), dtype)
    for t, k in enumerate(itertools.product(*(range(kk) for kk in kernel))):
        np.matmul(wt[t], xg, out=tmp)
        where = tuple(
            slice(ki * d, ki * d + (sz - 1) * s + 1, s)
            for ki, d, sz, s in zip(k, dil, sizes, strides, strict=True)
        )
        acc[(slice(None), slice(None), *where)] += tmp.reshape(m, n, *sizes)
    crop = acc[
        (slice(None), slice(None), *(slice(bg, bg + o) for bg, o in zip(begins, outs, strict=True)))
    ]
    y = np.ascontiguousarray(crop.swapaxes(0, 1))
    if b is not None:
        y += b.astype(dtype, copy=False).reshape((1, m) + (1,) * nd)
    return y


def to_output_major(w: np.ndarray, group: int) -> np.ndarray:
    """``(C, M/group, *k)`` weights as ``(M, C/group, *k)`` (output channel ``g·Mg + m`` first)."""
    c, mg = w.shape[:2]
    kernel = w.shape[2:]
    wg = w.reshape(group, c // group, mg, *kernel).swapaxes(1, 2)
    return np.ascontiguousarray(wg.reshape(group * mg, c // group, *kernel))


def to_input_major(w: np.ndarray, group: int) -> np.ndarray:
    """The inverse of :func:`to_output_major`: back to the ONNX ``(C, M/group, *k)`` order."""
    m, cg = w.shape[:2]
    kernel = w.shape[2:]
    wg = w.reshape(group, m // group, cg, *kernel).swapaxes(1, 2)
    return np.ascontiguousarray(wg.reshape(group * cg, m // group, *kernel))


@register
class ConvTranspose(OpDef):
    """Transposed ("de-") convolution with optional bias: the upsampling layer of decoders."""

    name = "ConvTranspose"
    onnx_types = ("ConvTranspose",)
    Attrs = ConvTransposeAttrs
    kind = "conv"
    weighted = True
    #: The quantized weights are stored output-major: same values, another shape.
    weights_relaid = True

    def geometry(self, node: Node, x: Shape, w: Shape) -> Any:
        """The geometry the C kernel is given (:func:`conv_transpose_geometry`)."""
        return conv_transpose_geometry(node, x, w)

    def infer(self, node: Node, ins: Sequence[TensorInfo | None]) -> list[Shape]:
        x, w = ins[0], ins[1]
        assert x is not None and w is not None
        a: ConvTransposeAttrs = node.attrs
        if w.const is None:
            raise ShapeError(f"{node.name}: ConvTranspose needs constant weights")
        if len(x.shape) < 3 or len(w.shape) != len(x.shape):
            raise ShapeError(
                f"{node.name}: ConvTranspose input {x.shape} and weights {w.shape} are not "
                "N×C×spatial and C×M/group×kernel of one rank"
            )
        if a.group < 1 or x.shape[1] != w.shape[0] or w.shape[0] % a.group:
            raise ShapeError(
                f"{node.name}: input has {x.shape[1]} channels, weights {w.shape} expect "
                f"{w.shape[0]} in {a.group} group(s)"
            )
        m = w.shape[1] * a.group
        b = ins[2] if len(ins) > 2 else None
        if b is not None:
            if b.const is None:
                raise ShapeError(f"{node.name}: ConvTranspose needs a constant bias")
            if b.const.size != m:
                raise ShapeError(f"{node.name}: bias has {b.const.size} values for {m} channels")
        _, _, _, outs = conv_transpose_geometry(node, x.shape, w.shape)
        return [(x.shape[0], m, *outs)]

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        x, w = xs[0], xs[1]
        assert x is not None and w is not None
        b = xs[2] if len(xs) > 2 else None
        strides, dil, begins, outs = conv_transpose_geometry(node, x.shape, w.shape)
        return [conv_transpose_float(x, w, b, strides, dil, begins, outs, node.attrs.group)]

    def macs(self, node: Node, ins: Sequence[TensorInfo | None], outs: Sequence[TensorInfo]) -> int:
        """``in_pixels · C · (M/group) · prod(kernel)`` = input pixels × weight count.

        Every input pixel of a channel is multiplied by each of that channel's
        ``M/group · prod(kernel)`` weights; the products that the crop (pads, a smaller
        ``output_shape``) drops are counted too, since the kernel computes them. The bias and
        the added zeros of ``output_padding`` cost nothing here.
        """
        x, w = ins[0], ins[1]
        assert x is not None and w is not None
        return int(np.prod(x.shape[2:], dtype=np.int64)) * int(np.prod(w.shape, dtype=np.int64))

    # -- SQ8 (SQ8.md §3-§5, as Conv) -----------------------------------------------------------
    q_asym_output = True

    def q_symmetric_input(self, node: Node, idx: int) -> str | None:
        """An output pixel sums a varying number of taps near the borders, so the input
        zero-point correction is not a per-channel constant: the input must have Zi = 0."""
        return "transposed conv: taps per output pixel vary" if idx == 0 else None

    def quantize_sq8(self, ctx: QuantContext) -> NodeQuant:
        """Per-output-channel int8 weights (stored ``(M, C/group, *k)``), int32 bias, the output
        zero-point offset and (M, N) per channel, through :func:`_sq8.quantize_weighted`."""
        node = ctx.node
        w = ctx.const(1)
        if w is None:
            raise QuantizationError(f"{node.name}: ConvTranspose weights are not constant")
        qin = ctx.in_q[0]
        if qin is None or qin.zero_point != 0:
            raise QuantizationError(f"{node.name}: ConvTranspose needs a symmetric input (Zi = 0)")
        group = node.attrs.group
        wm = to_output_major(np.asarray(w), group)
        nq = _sq8.quantize_weighted(ctx, wm, ctx.const(2), int(np.prod(wm.shape[1:])))
        x = ctx.graph.tensors[node.inputs[0]]
        nq.info["geometry"] = conv_transpose_geometry(node, x.shape, w.shape)
        return nq

    def run_int(self, node: Node, nq: NodeQuant, *xs: np.ndarray | None) -> list[np.ndarray]:
        """``clip8(rnorm((Bq + off + Σ Wq·Xq)·M, N))`` per output channel: the float kernel on
        the codes in a float type where every partial sum is an exact integer."""
        x = xs[0]
        assert x is not None
        strides, dil, begins, outs = nq.info["geometry"]
        group = node.attrs.group
        wm = nq.consts["weights"]
        k = int(np.prod(wm.shape[1:]))
        ft = exact_float_dtype(k, 128, 128) or np.float64
        wt = to_input_major(wm, group).astype(ft)
        acc = conv_transpose_float(x.astype(ft), wt, None, strides, dil, begins, outs, group)
        return [_sq8.requant_output(acc, nq, k * 128 * 128)]

    def emit_c(self, node: Node, nq: NodeQuant, ctx: Any) -> str:
        """``nn_conv_transpose`` (1-D and 2-D): gather the taps of each output pixel."""
        strides, dil, begins, outs = nq.info["geometry"]
        c = nq.consts
        x, y = node.inputs[0], node.outputs[0]
        kernel = c["weights"].shape[2:]
        window = ctx.window(kernel, strides, dil, begins)
        conv = _sq8.conv_struct(ctx, "convt", x, outs, window, node.attrs.group, nq)
        return f"nn_conv_transpose({ctx.ptr8(x)}, {ctx.ptr8(y)}, {conv});"

    # -- POW2 (POW2.md "Conv / linear", as Conv) ----------------------------------------------
    def quantize_pow2(self, ctx: Pow2Context) -> NodeQuant:
        """Weights at ``q_w`` (stored ``(M, C/group, *k)``), biases at ``q_b`` and the shifts
        under the accumulator budget (:func:`~nnshell.ops._pow2.quantize_weighted`)."""
        node = ctx.node
        w = ctx.const(1)
        if w is None:
            raise QuantizationError(f"{node.name}: ConvTranspose weights are not constant")
        wm = to_output_major(np.asarray(w), node.attrs.group)
        nq = _pow2.quantize_weighted(ctx, wm, ctx.const(2), int(np.prod(wm.shape[1:])))
        x = ctx.graph.tensors[node.inputs[0]]
        nq.info["geometry"] = conv_transpose_geometry(node, x.shape, w.shape)
        return nq

    def run_int_pow2(self, node: Node, nq: NodeQuant, *xs: np.ndarray | None) -> list[np.ndarray]:
        """``clip_bits(shift_round(Σ w·rnorm(x, in_shift) + (b << bias_shift), out_shift))``."""
        x = xs[0]
        assert x is not None
        strides, dil, begins, outs = nq.info["geometry"]
        group = node.attrs.group
        wm = nq.consts["weights"]
        ft = _pow2.float_type(int(np.prod(wm.shape[1:])), _pow2.bits_of(nq), node.name)
        xf = _pow2.pre_shift(x, nq).astype(ft)
        wt = to_input_major(wm, group).astype(ft)
        acc = conv_transpose_float(xf, wt, None, strides, dil, begins, outs, group)
        return [_pow2.weighted_output(acc, nq)]

    def emit_c_pow2(self, node: Node, nq: NodeQuant, ctx: Any) -> str:
        """``nn_p2_conv_transpose`` (1-D and 2-D), an ``nn_p2_conv_t`` with the crop begins as
        ``pt`` / ``pl``."""
        strides, dil, begins, outs = nq.info["geometry"]
        x, y = node.inputs[0], node.outputs[0]
        kernel = nq.consts["weights"].shape[2:]
        conv = _pow2.conv_struct(ctx, node, nq, "convt", kernel, strides, dil, begins, outs)
        return f"nn_p2_conv_transpose({ctx.ptr(x)}, {ctx.ptr(y)}, {conv});"
