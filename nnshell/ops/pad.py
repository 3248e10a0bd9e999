"""Pad: grow (or, with negative pads, crop) each axis.

``y[i] = x[i - begin]`` inside the input; outside it ``constant`` mode writes ``value`` (0 by
default), ``reflect`` mirrors without repeating the edge, ``edge`` repeats the edge and ``wrap``
wraps around. Pads come as an attribute before opset 11 and as a constant input from 11 (with
optional constant value and, from opset 18, axes inputs). The batch axis must not be padded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nnshell.errors import ShapeError
from nnshell.ir import Node, Shape, TensorInfo
from nnshell.ops._batching import const_input, int_list, norm_axis
from nnshell.ops.registry import OpDef, register

_NP_MODES = {"constant": "constant", "reflect": "reflect", "edge": "edge", "wrap": "wrap"}


@dataclass(frozen=True)
class PadAttrs:
    """Pad attributes (``pads`` and ``value`` became inputs in opset 11)."""

    mode: str = "constant"
    pads: tuple[int, ...] | None = None
    value: float = 0.0


@register
class Pad(OpDef):
    """Padding of activations (explicit padding layers, ZeroPad2d, ReflectionPad2d)."""

    name = "Pad"
    onnx_types = ("Pad",)
    Attrs = PadAttrs
    kind = "shape"

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
        widths = node.meta["pad_widths"]
        crop = tuple(slice(max(-b, 0), x.shape[i] - max(-e, 0)) for i, (b, e) in enumerate(widths))
        x = x[crop]
        grow = [(max(b, 0), max(e, 0)) for b, e in widths]
        mode = _NP_MODES[node.attrs.mode]
        if mode == "constant":
            y = np.pad(x, grow, mode="constant", constant_values=node.meta["pad_value"])
        else:
            y = np.pad(x, grow, mode=mode)
        return [y.astype(x.dtype, copy=False)]
