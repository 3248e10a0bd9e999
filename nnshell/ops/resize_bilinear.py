"""ResizeBilinear: TFLite's RESIZE_BILINEAR (image up/down-sampling by linear interpolation).

Not an ONNX import (ONNX ``Resize`` in ``linear`` mode has other coordinate rules): only the
TFLite importer creates it, with TFLite's attributes, so the float kernel is TFLite's reference
kernel literally. For each output index ``i`` of an axis with input size ``L`` and scale
``s = L/O`` (``(L-1)/(O-1)`` with ``align_corners``), the source coordinate is ``x = (i+½)·s − ½``
with ``half_pixel_centers``, else ``x = i·s``; it reads ``lo = max(⌊x⌋, 0)``,
``hi = min(⌈x⌉, L-1)`` with weights ``1 − (x − lo)`` and ``x − lo``. Float only for now: there is
no SQ8 kernel (nearest Resize has none either), so quantizing a graph with it names the node.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nnshell.errors import ShapeError
from nnshell.ir import Node, Shape, TensorInfo
from nnshell.ops.registry import OpDef, register


@dataclass(frozen=True)
class ResizeBilinearAttrs:
    """Output size (H, W) of an NCHW tensor and TFLite's two coordinate flags."""

    size: tuple[int, int] = (1, 1)
    align_corners: bool = False
    half_pixel_centers: bool = False


def _axis(
    n_in: int, n_out: int, a: ResizeBilinearAttrs
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lo, hi, weight of hi) per output index of one axis, in float32 like TFLite."""
    if a.align_corners and n_out > 1:
        scale = np.float32((n_in - 1) / (n_out - 1))
    else:
        scale = np.float32(n_in / n_out)
    i = np.arange(n_out, dtype=np.float32)
    x = (i + np.float32(0.5)) * scale - np.float32(0.5) if a.half_pixel_centers else i * scale
    lo = np.maximum(np.floor(x), 0).astype(np.int64)
    hi = np.minimum(np.ceil(x), n_in - 1).astype(np.int64)
    return lo, hi, (x - lo).astype(np.float32)


@register
class ResizeBilinear(OpDef):
    """Bilinear resize of the two last axes of an NCHW tensor (TFLite semantics)."""

    name = "ResizeBilinear"
    Attrs = ResizeBilinearAttrs
    kind = "other"

    def infer(self, node: Node, ins: Sequence[TensorInfo | None]) -> list[Shape]:
        x = ins[0]
        assert x is not None
        if len(x.shape) != 4:
            raise ShapeError(f"{node.name}: ResizeBilinear needs a 4-D NCHW input")
        h, w = (int(v) for v in node.attrs.size)
        if h < 1 or w < 1:
            raise ShapeError(f"{node.name}: output size {(h, w)} is empty")
        return [(x.shape[0], x.shape[1], h, w)]

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        x = xs[0]
        assert x is not None
        a: ResizeBilinearAttrs = node.attrs
        y0, y1, wy = _axis(x.shape[2], a.size[0], a)
        x0, x1, wx = _axis(x.shape[3], a.size[1], a)
        top = x[:, :, y0, :] * (1 - wy)[:, None] + x[:, :, y1, :] * wy[:, None]
        out = top[..., x0] * (1 - wx) + top[..., x1] * wx
        return [np.ascontiguousarray(out.astype(x.dtype))]
