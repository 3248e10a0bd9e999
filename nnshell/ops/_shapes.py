"""Spatial helpers shared by conv and pool ops: output sizes, padding and windows."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from nnshell.errors import ShapeError

#: A window op's geometry as the kernels take it: ``(kernel, strides, dilations, explicit pads
#: [begins…, ends…], output sizes)``, one entry per spatial axis in each (``conv_geometry``,
#: ``pool_geometry``, a quantized conv's ``info["geometry"]``).
WindowGeometry = Sequence[Sequence[int]]


@dataclass(frozen=True)
class ConvWindowAttrs:
    """The window attributes ONNX Conv and ConvTranspose share, with their spec defaults (empty
    tuple = derived from the weights). Each op subclasses it, so a state file still names the
    op's own class."""

    kernel_shape: tuple[int, ...] = ()
    strides: tuple[int, ...] = ()
    pads: tuple[int, ...] = ()
    dilations: tuple[int, ...] = ()
    group: int = 1
    auto_pad: str = "NOTSET"


def resolve_pads(
    auto_pad: str,
    in_sizes: Sequence[int],
    kernel: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
    pads: Sequence[int] | None,
    node_name: str,
) -> tuple[int, ...]:
    """Return explicit ONNX pads (all begins, then all ends) for any ``auto_pad`` mode."""
    nd = len(kernel)
    if auto_pad in ("NOTSET", "", "VALID"):
        if auto_pad == "VALID" or not pads:
            return (0,) * (2 * nd)
        if len(pads) != 2 * nd:
            raise ShapeError(f"{node_name}: pads {tuple(pads)} do not match a {nd}-D kernel")
        return tuple(int(p) for p in pads)
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        raise ShapeError(f"{node_name}: auto_pad '{auto_pad}' is not an ONNX value")
    begins, ends = [], []
    for size, k, s, d in zip(in_sizes, kernel, strides, dilations, strict=True):
        out = math.ceil(size / s)
        total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
        small, big = total // 2, total - total // 2
        begins.append(small if auto_pad == "SAME_UPPER" else big)
        ends.append(big if auto_pad == "SAME_UPPER" else small)
    return tuple(begins + ends)


def out_size(
    size: int, k: int, s: int, d: int, pad_begin: int, pad_end: int, ceil_mode: bool = False
) -> int:
    """Return one spatial output size of a conv or pool window."""
    span = size + pad_begin + pad_end - ((k - 1) * d + 1)
    n = (math.ceil(span / s) if ceil_mode else span // s) + 1
    if ceil_mode and (n - 1) * s >= size + pad_begin:
        n -= 1  # the last window must start inside the input or its left padding
    return n


def pad_for_windows(
    x: np.ndarray,
    kernel: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
    pads: Sequence[int],
    out_sizes: Sequence[int],
    pad_value: float = 0.0,
) -> np.ndarray:
    """Return ``x`` padded so every window fits (no copy when no padding is needed).

    Extra end padding is added when ``ceil_mode`` makes the last window run past the input.
    """
    nd = len(kernel)
    widths = [(0, 0), (0, 0)]
    for i in range(nd):
        need = (out_sizes[i] - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1
        end = max(pads[nd + i], need - x.shape[2 + i] - pads[i])
        widths.append((pads[i], end))
    if any(w != (0, 0) for w in widths):
        x = np.pad(x, widths, constant_values=pad_value)
    return x


def window_offsets(
    kernel: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
    out_sizes: Sequence[int],
) -> Iterator[tuple[tuple[int, ...], tuple[slice, ...]]]:
    """Yield ``(kernel offset, spatial slices)`` pairs, kernel offsets in C order.

    ``x_padded[(..., ..., *slices)]`` is the ``(N, C, *out)`` view of the input element each
    output reads at that kernel offset, so a window reduction becomes a loop over offsets of
    whole-array operations (no strided 2·nd-D view, no reduction over tiny trailing axes).
    """
    for k in itertools.product(*(range(n) for n in kernel)):
        yield (
            k,
            tuple(
                slice(ki * d, ki * d + (o - 1) * s + 1, s)
                for ki, d, o, s in zip(k, dilations, out_sizes, strides, strict=True)
            ),
        )
