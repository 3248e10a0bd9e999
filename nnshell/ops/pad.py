"""Pad: grow (or, with negative pads, crop) each axis.

``y[i] = x[i - begin]`` inside the input; outside it ``constant`` mode writes ``value`` (0 by
default), ``reflect`` mirrors without repeating the edge, ``edge`` repeats the edge and ``wrap``
wraps around. Pads come as an attribute before opset 11 and as a constant input from 11 (with
optional constant value and, from opset 18, axes inputs). The batch axis must not be padded.

Quantized (SQ8 and POW2) Pad only moves codes: the output keeps the input's qtype and the pad
value becomes its code in that qtype (0 → the zero point), so the integer kernel is the float
kernel on codes. The C kernel reads, per axis, the source index of every output index: those
maps are made by running numpy's own pad on ``arange`` (one rule for every mode, -1 outside).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nnshell.errors import ShapeError
from nnshell.ir import Node, Shape, TensorInfo
from nnshell.ops._batching import const_input, int_list, norm_axis
from nnshell.ops._pow2 import Pow2Mover, to_out
from nnshell.ops.registry import OpDef, register
from nnshell.quant.qrecord import NodeQuant, QuantContext

_NP_MODES = {"constant": "constant", "reflect": "reflect", "edge": "edge", "wrap": "wrap"}


@dataclass(frozen=True)
class PadAttrs:
    """Pad attributes (``pads`` and ``value`` became inputs in opset 11)."""

    mode: str = "constant"
    pads: tuple[int, ...] | None = None
    value: float = 0.0


def _pad(x: np.ndarray, widths: Sequence[tuple[int, int]], mode: str, value: float) -> np.ndarray:
    """Crop the negative pads, then grow the positive ones (numpy's modes)."""
    crop = tuple(slice(max(-b, 0), x.shape[i] - max(-e, 0)) for i, (b, e) in enumerate(widths))
    x = x[crop]
    grow = [(max(b, 0), max(e, 0)) for b, e in widths]
    if _NP_MODES[mode] == "constant":
        return np.pad(x, grow, mode="constant", constant_values=value).astype(x.dtype, copy=False)
    return np.pad(x, grow, mode=_NP_MODES[mode]).astype(x.dtype, copy=False)


@register
class Pad(Pow2Mover, OpDef):
    """Padding of activations (explicit padding layers, ZeroPad2d, ReflectionPad2d)."""

    name = "Pad"
    onnx_types = ("Pad",)
    Attrs = PadAttrs
    kind = "shape"
    # Data movement only: the output keeps the input's qtype.
    q_passthrough = True

    def infer(self, node: Node, ins: Sequence[TensorInfo | None]) -> list[Shape]:
        x = ins[0]
        assert x is not None
        a: PadAttrs = node.attrs
        rank = len(x.shape)
        if a.mode not in _NP_MODES:
            raise ShapeError(f"{node.name}: Pad mode '{a.mode}' is not supported")
        pads = int_list(const_input(ins, 1, node, "pads"))
        if pads is None:
            pads = a.pads
        if pads is None:
            raise ShapeError(f"{node.name}: Pad needs pads")
        value = const_input(ins, 2, node, "constant_value")
        node.meta["pad_value"] = (
            float(value.reshape(-1)[0]) if value is not None and value.size else a.value
        )
        axes = int_list(const_input(ins, 3, node, "axes"))
        axes = tuple(range(rank)) if axes is None else tuple(norm_axis(v, rank, node) for v in axes)
        if len(pads) != 2 * len(axes):
            raise ShapeError(f"{node.name}: {len(pads)} pads for {len(axes)} axes")
        widths = [(0, 0)] * rank
        for i, ax in enumerate(axes):
            widths[ax] = (pads[i], pads[len(axes) + i])
        if widths[0] != (0, 0):
            raise ShapeError(f"{node.name}: Pad of the batch axis is not supported")
        shape = tuple(d + b + e for d, (b, e) in zip(x.shape, widths, strict=True))
        if min(shape) < 1:
            raise ShapeError(f"{node.name}: negative pads crop {x.shape} to nothing")
        if a.mode == "reflect" and any(
            max(b, e) >= d for d, (b, e) in zip(x.shape, widths, strict=True) if b or e
        ):
            raise ShapeError(f"{node.name}: reflect pads must be smaller than the padded axis")
        node.meta["pad_widths"] = tuple(widths)
        return [shape]

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        x = xs[0]
        assert x is not None
        return [_pad(x, node.meta["pad_widths"], node.attrs.mode, node.meta["pad_value"])]

    @staticmethod
    def pad_code(node: Node, nq: NodeQuant) -> int:
        """The pad value as a code of the input's qtype (0 → the zero point; else rounded)."""
        q = nq.in_q[0]
        assert q is not None
        return int(np.asarray(q.quantize(np.array([node.meta["pad_value"]]))).reshape(-1)[0])

    def quantize_sq8(self, ctx: QuantContext) -> NodeQuant:
        """No parameters: the output keeps the input's qtype."""
        return NodeQuant(list(ctx.in_q), ctx.out_q)

    def run_int(self, node: Node, nq: NodeQuant, *xs: np.ndarray | None) -> list[np.ndarray]:
        """The float kernel on codes, the pad value as its code."""
        x = xs[0]
        assert x is not None
        return [_pad(x, node.meta["pad_widths"], node.attrs.mode, self.pad_code(node, nq))]

    def run_int_pow2(self, node: Node, nq: NodeQuant, *xs: np.ndarray | None) -> list[np.ndarray]:
        """As in SQ8 at the input's Q, then the output's shift when its Q differs."""
        (y,) = self.run_int(node, nq, *xs)
        return [to_out(y.astype(np.int64), nq)] if "out_shift" in nq.consts else [y]

    def emit_c(self, node: Node, nq: NodeQuant, ctx: Any) -> str:
        """``nn_pad`` of a tensor padded to 5-D, with one source-index map per axis."""
        x, y = node.inputs[0], node.outputs[0]
        shape = ctx.shape(x)
        lead = 5 - len(shape)
        if lead < 0:
            ctx.unsupported("a pad of rank > 5")
        widths = node.meta["pad_widths"]
        maps = [np.zeros(1, np.int64)] * lead + [
            _pad(np.arange(n, dtype=np.int64), [w], node.attrs.mode, -1)
            for n, w in zip(shape, widths, strict=True)
        ]
        out5 = [len(m) for m in maps]
        args = [
            ctx.const("in_shape", np.array((1,) * lead + tuple(shape)), "int32_t"),
            ctx.const("out_shape", np.array(out5), "int32_t"),
            ctx.const("maps", np.concatenate(maps), "int32_t"),
        ]
        code = self.pad_code(node, nq)
        return f"nn_pad({ctx.ptr(x)}, {ctx.ptr(y)}, {', '.join(args)}, {code}, {ctx.esize(y)});"
