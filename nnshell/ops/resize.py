"""Resize and Upsample in ``nearest`` mode (image up/down-sampling).

For each spatial axis with input size ``L``, output size ``O = ⌊L·scale⌋`` (or the ``sizes``
input) and effective scale ``s = O / L`` when sizes are given, output index ``i`` reads input
index ``nearest(x(i))`` clamped to ``[0, L-1]``, where ``x(i)`` is the coordinate transform
(``half_pixel``: ``(i+½)/s - ½``, ``asymmetric``: ``i/s``, ``align_corners``:
``i·(L-1)/(O-1)``, ``pytorch_half_pixel``, ``tf_half_pixel_for_nn``) and ``nearest`` one of the
four ONNX rounding modes. Coordinates are computed in float32 like onnxruntime. Upsample (opset
7-9) and Resize-10 use ``asymmetric`` coordinates, rounding down when upsampling and up when
downsampling. ``linear`` (``bilinear`` for Upsample) resizes the two spatial axes of a 4-D
tensor like onnxruntime: the coordinate clamped to ``[0, L-1]``, ``x0 = ⌊x⌋``,
``x1 = min(x0 + 1, L-1)``, weights ``1 - f`` and ``f``. Cubic mode is not supported; the batch
axis must keep its size.

Quantized (issue 17), both modes keep the input's qtype (a data mover: SQ8 rescales and POW2
shifts only when a consumer imposed another output qtype): nearest gathers codes, bilinear
interpolates them with fixed-point weights (:mod:`nnshell.ops._elt`), a convex combination that
needs no zero-point term and cannot leave the input's range.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nnshell.errors import ShapeError, UnsupportedOpError
from nnshell.ir import Node, Shape, TensorInfo
from nnshell.ops import _elt, _pow2
from nnshell.ops._batching import const_input, opset_of
from nnshell.ops._sq8_ext import passthrough_quant, rescale_int
from nnshell.ops.registry import OpDef, register
from nnshell.quant.fixed_point import round_half_up
from nnshell.quant.fixed_pow2 import Pow2Context
from nnshell.quant.qrecord import NodeQuant, QuantContext


@dataclass(frozen=True)
class ResizeAttrs:
    """Resize / Upsample attributes relevant to nearest-neighbour resizing."""

    mode: str = "nearest"
    coordinate_transformation_mode: str = "half_pixel"
    nearest_mode: str = "round_prefer_floor"
    scales: tuple[float, ...] | None = None  # Upsample opset 7
    axes: tuple[int, ...] | None = None
    keep_aspect_ratio_policy: str = "stretch"


def _coords(mode: str, n_out: int, n_in: int, scale: float) -> np.ndarray:
    """Return the float32 input coordinate of every output index of one axis."""
    i = np.arange(n_out, dtype=np.float32)
    s = np.float32(scale)
    if mode == "asymmetric":
        return i / s
    if mode == "half_pixel":
        return (i + np.float32(0.5)) / s - np.float32(0.5)
    if mode == "pytorch_half_pixel":
        return (i + np.float32(0.5)) / s - np.float32(0.5) if n_out > 1 else np.zeros(1, np.float32)
    if mode == "align_corners":
        if n_out == 1:
            return np.zeros(1, np.float32)
        return i * np.float32(n_in - 1) / np.float32(n_out - 1)
    if mode == "tf_half_pixel_for_nn":
        return (i + np.float32(0.5)) / s
    raise UnsupportedOpError(f"coordinate_transformation_mode '{mode}' is not supported")


def _round(mode: str, x: np.ndarray) -> np.ndarray:
    """Apply an ONNX ``nearest_mode`` rounding."""
    if mode == "floor":
        return np.floor(x)
    if mode == "ceil":
        return np.ceil(x)
    frac = x - np.floor(x)
    if mode == "round_prefer_floor":
        return np.where(frac == np.float32(0.5), np.floor(x), np.round(x))
    if mode == "round_prefer_ceil":
        return np.where(frac == np.float32(0.5), np.ceil(x), np.round(x))
    raise UnsupportedOpError(f"nearest_mode '{mode}' is not supported")


def _linear_axis(
    ctm: str, n_out: int, n_in: int, scale: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x0, x1, f)`` of one axis of a linear resize, as onnxruntime computes them (float32)."""
    x = np.clip(_coords(ctm, n_out, n_in, scale), np.float32(0), np.float32(n_in - 1))
    x0 = np.floor(x).astype(np.int64)
    x1 = np.minimum(x0 + 1, n_in - 1)
    f = (x - x0.astype(np.float32)).astype(np.float32)
    return x0, x1, np.where(x1 == x0, np.float32(0), f)


class _Resize(OpDef):
    Attrs = ResizeAttrs
    kind = "other"
    q_passthrough = True
    ignored_attrs = frozenset(
        {"cubic_coeff_a", "exclude_outside", "extrapolation_value", "antialias"}
    )
    legacy = False

    def infer(self, node: Node, ins: Sequence[TensorInfo | None]) -> list[Shape]:
        x = ins[0]
        assert x is not None
        a: ResizeAttrs = node.attrs
        if a.mode not in ("nearest", "linear", "bilinear"):
            raise UnsupportedOpError(f"{node.name}: {self.name} mode '{a.mode}' is not supported")
        if a.axes is not None or a.keep_aspect_ratio_policy != "stretch":
            raise UnsupportedOpError(f"{node.name}: {self.name} axes/aspect policy not supported")
        rank = len(x.shape)
        scales: np.ndarray | None = None
        sizes: np.ndarray | None = None
        legacy = self.legacy or opset_of(node) < 11
        if legacy:  # Upsample, Resize-10: X, scales
            scales = const_input(ins, 1, node, "scales")
            if scales is None and a.scales is not None:
                scales = np.asarray(a.scales, np.float32)
        else:
            scales = const_input(ins, 2, node, "scales")
            sizes = const_input(ins, 3, node, "sizes")
        if scales is not None and scales.size == 0:
            scales = None
        if sizes is not None and sizes.size:
            out = tuple(int(v) for v in sizes.reshape(-1))
            eff = tuple(o / i for o, i in zip(out, x.shape, strict=True))
        elif scales is not None:
            sc = [float(v) for v in scales.reshape(-1).astype(np.float32)]
            if len(sc) != rank:
                raise ShapeError(f"{node.name}: {len(sc)} scales for a rank-{rank} input")
            out = tuple(int(math.floor(d * s)) for d, s in zip(x.shape, sc, strict=True))
            eff = tuple(sc)
        else:
            raise ShapeError(f"{node.name}: {self.name} needs constant scales or sizes")
        if len(out) != rank or out[0] != x.shape[0] or eff[0] != 1:
            raise ShapeError(f"{node.name}: resizing the batch axis is not supported")
        if min(out) < 1:
            raise ShapeError(f"{node.name}: output shape {out} is empty")
        ctm = "asymmetric" if legacy else a.coordinate_transformation_mode
        node.meta.pop("resize_linear", None)
        node.meta.pop("resize_frac", None)
        if a.mode != "nearest":
            if rank != 4 or out[1] != x.shape[1]:
                raise UnsupportedOpError(
                    f"{node.name}: linear {self.name} of other axes than H and W of a 4-D tensor"
                )
            axes = [_linear_axis(ctm, out[d], x.shape[d], eff[d]) for d in (2, 3)]
            one = 1 << _elt.RESIZE_FRAC
            node.meta["resize_frac"] = tuple(f for _, _, f in axes)
            node.meta["resize_linear"] = tuple(
                (x0, x1, round_half_up(f.astype(np.float64) * one).astype(np.int64))
                for x0, x1, f in axes
            )
        index = []
        for d in range(1, rank):
            if out[d] == x.shape[d] and eff[d] == 1:
                index.append(None)
                continue
            # opset < 11 rounds down when upsampling and up when downsampling
            near = ("floor" if eff[d] >= 1 else "ceil") if legacy else a.nearest_mode
            c = _round(near, _coords(ctm, out[d], x.shape[d], eff[d]))
            index.append(np.clip(c, 0, x.shape[d] - 1).astype(np.int64))
        node.meta["resize_index"] = tuple(index)
        return [out]

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        x = xs[0]
        assert x is not None
        if "resize_linear" in node.meta:
            (y0, y1, _), (x0, x1, _) = node.meta["resize_linear"]
            fy, fx = node.meta["resize_frac"]
            dt = x.dtype.type
            fy, fx = fy.astype(dt).reshape(-1, 1), fx.astype(dt)
            one = dt(1)
            r0, r1 = x[:, :, y0, :], x[:, :, y1, :]
            top = r0[..., x0] * (one - fx) + r0[..., x1] * fx
            bot = r1[..., x0] * (one - fx) + r1[..., x1] * fx
            return [np.ascontiguousarray(top * (one - fy) + bot * fy)]
        for d, idx in enumerate(node.meta["resize_index"], start=1):
            if idx is not None:
                x = np.take(x, idx, axis=d)
        return [np.ascontiguousarray(x)]

    # -- quantized: a data mover (issue 17) ----------------------------------------------------
    def quantize_sq8(self, ctx: QuantContext) -> NodeQuant:
        """No parameters: the output keeps the input's qtype (a rescale only if imposed)."""
        return passthrough_quant(ctx)

    def run_int(self, node: Node, nq: NodeQuant, *xs: np.ndarray | None) -> list[np.ndarray]:
        """Gather (nearest) or fixed-point interpolation (bilinear) of the codes."""
        assert xs[0] is not None
        return [rescale_int(_elt.resize_int(xs[0], node.meta), nq.consts)]

    def emit_c(self, node: Node, nq: NodeQuant, ctx: Any) -> str:
        """``nn_resize_nearest`` / ``nn_resize_bilinear``, then any rescale in place."""
        return _elt.resize_c(node, ctx) + str(ctx.rescale(nq.consts, node.outputs[0]))

    def quantize_pow2(self, ctx: Pow2Context) -> NodeQuant:
        """No parameters; an ``out_shift`` when the output has its own Q."""
        return _pow2.passthrough_quant(ctx)

    def run_int_pow2(self, node: Node, nq: NodeQuant, *xs: np.ndarray | None) -> list[np.ndarray]:
        """The same integer resize as SQ8, then the output's shift."""
        assert xs[0] is not None
        return [_pow2.to_out(_elt.resize_int(xs[0], node.meta), nq)]

    def emit_c_pow2(self, node: Node, nq: NodeQuant, ctx: Any) -> str:
        """The resize kernel on the codes, then ``nn_p2_act`` in place for the shift."""
        return _pow2.mover_c(self, node, nq, ctx)


@register
class Resize(_Resize):
    """Nearest-neighbour and bilinear Resize (opset 10+)."""

    name = "Resize"
    onnx_types = ("Resize",)


@register
class Upsample(_Resize):
    """Deprecated Upsample (opset 7-9): nearest with floor(i / scale)."""

    name = "Upsample"
    onnx_types = ("Upsample",)
    legacy = True
