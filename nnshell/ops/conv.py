"""Conv: N-D convolution (1-D and 2-D in practice) with pads, strides, dilations and groups.

``y[n, m, p] = b[m] + Σ_{c ∈ group(m), k} w[m, c, k] · x_pad[n, c, p·s + k·d]``.
The float kernel copies a strided view of the padded input once into a column matrix laid out
``(C·kernel, chunk·out)``, a cache-sized chunk of the batch at a time, and multiplies it by the
filters with one float32 BLAS matmul per group. 1×1 convolutions without padding skip the column
matrix (the input already is one), and depthwise convolutions accumulate per-offset products.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from nnshell.errors import QuantizationError, ShapeError
from nnshell.ir import Node, Shape, TensorInfo
from nnshell.ops import _pow2, _sq8
from nnshell.ops._shapes import out_size, pad_for_windows, resolve_pads, window_offsets
from nnshell.ops.registry import OpDef, register
from nnshell.quant.fixed_pow2 import Pow2Context
from nnshell.quant.qrecord import NodeQuant, QuantContext

#: Column-matrix size per batch chunk (kept cache-sized) and the fewest matmul columns wanted.
_COLS_BYTES = 1 << 19
_MIN_COLUMNS = 256


@dataclass(frozen=True)
class ConvAttrs:
    """ONNX Conv attributes with their spec defaults (empty tuple = derived from the weights)."""

    kernel_shape: tuple[int, ...] = ()
    strides: tuple[int, ...] = ()
    pads: tuple[int, ...] = ()
    dilations: tuple[int, ...] = ()
    group: int = 1
    auto_pad: str = "NOTSET"


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


def conv_float(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    kernel: Sequence[int],
    strides: Sequence[int],
    dil: Sequence[int],
    pads: Sequence[int],
    outs: Sequence[int],
    group: int,
) -> np.ndarray:
    """Convolve a batched NC... array; exposed for fused ops that reuse it."""
    n, c = x.shape[:2]
    m, cg = w.shape[:2]
    nd = len(kernel)
    mg = m // group
    npix = int(np.prod(outs))
    dtype = np.result_type(x.dtype, np.float32)
    x = x.astype(dtype, copy=False)
    w = w.astype(dtype, copy=False)
    if cg == 1 and mg == 1:
        y = _depthwise(x, w, kernel, strides, dil, pads, outs)
    elif all(k == 1 for k in kernel) and not any(pads):
        # 1x1: a plain matmul on the (strided) input, no column matrix at all
        if any(s != 1 for s in strides):
            x = x[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in strides)]
        xs = x.reshape(n, group, cg, npix)  # copies only when strided
        y = np.matmul(w.reshape(group, mg, cg), xs).reshape((n, m) + tuple(outs))
    else:
        return _conv_im2col(x, w, b, kernel, strides, dil, pads, outs, group)
    if b is not None:
        y += b.astype(dtype, copy=False).reshape((1, m) + (1,) * nd)
    return y


def _conv_im2col(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    kernel: Sequence[int],
    strides: Sequence[int],
    dil: Sequence[int],
    pads: Sequence[int],
    outs: Sequence[int],
    group: int,
) -> np.ndarray:
    """General convolution: column matrix + one matmul per group, a few images at a time.

    The batch is cut into chunks whose column matrix (``(G, Cg·kernel, chunk·out)``, copied in
    one call from a strided view) stays in cache; each chunk's result ``(M, chunk, *out)`` is
    copied into the NC... output.
    2-D convolutions with a horizontal stride of 1 use "wide" rows: the column matrix of offset
    ``(c, i, j)`` is then the flattened padded input shifted by ``i·W + j``, so it is copied as
    long contiguous runs, and the ``kw - 1`` junk columns per output row are dropped afterwards.
    """
    n, c = x.shape[:2]
    m, cg = w.shape[:2]
    nd = len(kernel)
    mg = m // group
    kg = cg * int(np.prod(kernel))
    npix = int(np.prod(outs))
    dtype = x.dtype
    wide = False
    if nd == 2 and strides[1] == 1:
        wp = x.shape[3] + pads[1] + pads[3]
        wide = wp * 4 <= outs[1] * 5  # at most 25% extra columns
    row = wp if wide else (outs[-1] if nd else 1)
    cols_pix = npix // (outs[-1] if nd else 1) * row
    per_image = c * int(np.prod(kernel)) * cols_pix * dtype.itemsize
    chunk = max(1, _COLS_BYTES // per_image, -(-_MIN_COLUMNS // cols_pix))
    chunk = min(chunk, n)
    wg = w.reshape(group, mg, kg)
    bias = None if b is None else b.astype(dtype, copy=False).reshape(m, 1, 1)
    y = np.empty((n, m, *outs), dtype)
    if wide:
        hp = x.shape[2] + pads[0] + pads[2]
        plane = hp * wp
        tail = (kernel[1] - 1) * dil[1] + wp
        buf = np.zeros((n, c * plane + tail), dtype)
        inner = buf[:, : c * plane].reshape(n, c, hp, wp)
        inner[:, :, pads[0] : pads[0] + x.shape[2], pads[1] : pads[1] + x.shape[3]] = x
        e = dtype.itemsize
        shape = (c, kernel[0], kernel[1], 0, outs[0], wp)
        st = (plane * e, dil[0] * wp * e, dil[1] * e, buf.strides[0], strides[0] * wp * e, e)
    else:
        xp = pad_for_windows(x, kernel, strides, dil, pads, outs)
        sp = xp.strides[2:]
        shape = (c, *kernel, 0, *outs)
        st = (
            xp.strides[1],
            *(sp[i] * dil[i] for i in range(nd)),
            xp.strides[0],
            *(sp[i] * strides[i] for i in range(nd)),
        )
    for s0 in range(0, n, chunk):
        s1 = min(n, s0 + chunk)
        src = buf[s0:] if wide else xp[s0:]
        view = as_strided(src, shape[: 1 + nd] + (s1 - s0,) + shape[2 + nd :], st, writeable=False)
        cols = np.ascontiguousarray(view)  # C, *kernel, chunk, *out
        r = np.matmul(wg, cols.reshape(group, kg, -1)).reshape(m, s1 - s0, -1)
        if bias is not None:
            r += bias
        if wide:
            r = r.reshape(m, s1 - s0, outs[0], wp)[..., : outs[1]]
        y[s0:s1] = r.reshape(m, s1 - s0, *outs).swapaxes(0, 1)
    return y


def _depthwise(
    x: np.ndarray,
    w: np.ndarray,
    kernel: Sequence[int],
    strides: Sequence[int],
    dil: Sequence[int],
    pads: Sequence[int],
    outs: Sequence[int],
) -> np.ndarray:
    """One filter per channel: accumulate ``w[c, k] · x[n, c, shifted by k]`` over offsets."""
    n, c = x.shape[:2]
    nd = len(kernel)
    xp = pad_for_windows(x, kernel, strides, dil, pads, outs)
    wk = w.reshape(c, -1)
    y = np.zeros((n, c, *outs), x.dtype)
    tmp = np.empty_like(y)
    for i, (_, sl) in enumerate(window_offsets(kernel, strides, dil, outs)):
        np.multiply(xp[(slice(None), slice(None), *sl)], wk[:, i].reshape((c,) + (1,) * nd), tmp)
        y += tmp
    return y


@register
class Conv(OpDef):
    """Convolution with bias; the workhorse of every CNN."""

    name = "Conv"
    onnx_types = ("Conv",)
    Attrs = ConvAttrs
    kind = "conv"

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
        kernel, strides, dil, pads, outs = conv_geometry(node, x.shape, w.shape)
        return [conv_float(x, w, b, kernel, strides, dil, pads, outs, node.attrs.group)]

    def macs(self, node: Node, ins: Sequence[TensorInfo | None], outs: Sequence[TensorInfo]) -> int:
        w = ins[1]
        assert w is not None
        return outs[0].size * int(np.prod(w.shape[1:]))

    # -- SQ8 (SQ8.md §3-§5) -------------------------------------------------------------------
    q_asym_output = True

    def q_symmetric_input(self, node: Node, idx: int) -> str | None:
        """A padded conv pads with 0, which is only the real value 0 when the zero point is 0."""
        a: ConvAttrs = node.attrs
        padded = a.auto_pad in ("SAME_UPPER", "SAME_LOWER") or any(a.pads)
        return "conv with padding" if idx == 0 and padded else None

    def quantize_sq8(self, ctx: QuantContext) -> NodeQuant:
        """Per-channel int8 weights, int32 bias, zero-point offsets and (M, N) per channel."""
        w = ctx.const(1)
        if w is None:
            raise QuantizationError(f"{ctx.node.name}: conv weights are not constant")
        nq = _sq8.quantize_weighted(ctx, w, ctx.const(2), int(np.prod(w.shape[1:])))
        x = ctx.graph.tensors[ctx.node.inputs[0]]
        nq.info["geometry"] = conv_geometry(ctx.node, x.shape, w.shape)
        return nq

    def run_int(self, node: Node, nq: NodeQuant, *xs: np.ndarray | None) -> list[np.ndarray]:
        """``clip8(rnorm((Bq + off + Σ Wq·Xq)·M, N))`` per output channel."""
        assert xs[0] is not None
        return [_sq8.conv_int(xs[0], nq, nq.info["geometry"], node.attrs.group)]

    def emit_c(self, node: Node, nq: NodeQuant, ctx: Any) -> str:
        """``nn_conv``: the same per-channel SQ8 convolution in C; a conv-headed fusion passes
        its pool and activations in ``ctx.tail`` (one kernel call, no intermediate map)."""
        kernel, strides, dil, pads, outs = nq.info["geometry"]
        c = nq.consts
        x, y = node.inputs[0], node.outputs[0]
        conv = ctx.struct(
            "nn_conv_t",
            "conv",
            [
                *ctx.chw(ctx.shape(x)),
                *ctx.chw((1, c["weights"].shape[0], *outs)),
                *ctx.window(kernel, strides, dil, pads),
                node.attrs.group,
                ctx.const("weights", c["weights"], "int8_t"),
                ctx.const("bias", c["bias_total"], "int32_t"),
                ctx.const("mul", c["mul"], "uint8_t"),
                ctx.const("shift", c["shift"], "int8_t"),
            ],
        )
        pool, pre, post = ctx.tail
        return f"nn_conv({ctx.ptr8(x)}, {ctx.ptr8(y)}, {conv}, {pool}, {pre}, {post});"

    # -- POW2 (POW2.md "Conv / linear") ---------------------------------------------------------
    def quantize_pow2(self, ctx: Pow2Context) -> NodeQuant:
        """Weights at ``q_w``, biases at ``q_b``, ``in_shift`` / ``bias_shift`` / ``out_shift``
        under the accumulator budget (:func:`~nnshell.ops._pow2.quantize_weighted`)."""
        w = ctx.const(1)
        if w is None:
            raise QuantizationError(f"{ctx.node.name}: conv weights are not constant")
        nq = _pow2.quantize_weighted(ctx, w, ctx.const(2), int(np.prod(w.shape[1:])))
        x = ctx.graph.tensors[ctx.node.inputs[0]]
        nq.info["geometry"] = conv_geometry(ctx.node, x.shape, w.shape)
        return nq

    def run_int_pow2(self, node: Node, nq: NodeQuant, *xs: np.ndarray | None) -> list[np.ndarray]:
        """``clip_bits(shift_round(Σ w·rnorm(x, in_shift) + (b << bias_shift), out_shift))``."""
        x = xs[0]
        assert x is not None
        kernel, strides, dil, pads, outs = nq.info["geometry"]
        wq = nq.consts["weights"]
        ft = _pow2.float_type(int(np.prod(wq.shape[1:])), _pow2.bits_of(nq), node.name)
        xf = _pow2.pre_shift(x, nq).astype(ft)
        acc = conv_float(
            xf, wq.astype(ft), None, kernel, strides, dil, pads, outs, node.attrs.group
        )
        return [_pow2.weighted_output(acc, nq)]

    def emit_c_pow2(self, node: Node, nq: NodeQuant, ctx: Any) -> str:
        """``nn_p2_conv``; a conv-headed fusion passes its pool and activations in ``ctx.tail``."""
        kernel, strides, dil, pads, outs = nq.info["geometry"]
        x, y = node.inputs[0], node.outputs[0]
        conv = _pow2.conv_struct(ctx, node, nq, "conv", kernel, strides, dil, pads, outs)
        pool, pre, post = ctx.tail
        return f"nn_p2_conv({ctx.ptr(x)}, {ctx.ptr(y)}, {conv}, {pool}, {pre}, {post});"
