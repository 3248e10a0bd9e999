"""Conv: N-D convolution (1-D and 2-D in practice) with pads, strides, dilations and groups.

``y[n, m, p] = b[m] + Σ_{c ∈ group(m), k} w[m, c, k] · x_pad[n, c, p·s + k·d]``.
The float kernel gathers every window with a strided view, copies it once into a column matrix
per group and multiplies by the filters with BLAS (float32 matmul), which is how depthwise,
grouped and ordinary convolutions share one code path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nnshell.errors import ShapeError
from nnshell.ir import Node, Shape, TensorInfo
from nnshell.ops._shapes import out_size, resolve_pads, windows
from nnshell.ops.registry import OpDef, register


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
    win = windows(x, kernel, strides, dil, pads, outs)  # N, C, *out, *kernel
    win = win.reshape((n, group, cg) + tuple(outs) + tuple(kernel))
    # -> G, N*out, Cg*kernel: one column matrix per group
    perm = (1, 0, *range(3, 3 + nd), 2, *range(3 + nd, 3 + 2 * nd))
    npix = int(np.prod(outs))
    cols = win.transpose(perm).reshape(group, n * npix, -1)
    wg = w.reshape(group, m // group, -1).transpose(0, 2, 1).astype(cols.dtype, copy=False)
    y = np.matmul(cols, wg)  # G, N*out, M/G
    y = y.reshape(group, n, npix, m // group).transpose(1, 0, 3, 2).reshape((n, m) + tuple(outs))
    if b is not None:
        y = y + b.reshape((1, m) + (1,) * nd).astype(y.dtype, copy=False)
    return np.ascontiguousarray(y)


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
