"""The integer convolution's float32 slices (issue 21): the same integers as an int64 sum.

``exact_conv`` runs deep layers (K·128·127 > 2^24) as float32 convolutions over slices of the
input channels and adds the slices in float64. The reference here is a plain int64 sum over the
kernel offsets (numpy integer arithmetic, no float anywhere), at the extreme codes -128 and 127
where a float32 rounding would show first.
"""

from __future__ import annotations

import numpy as np
import pytest

from nnshell.ops._sq8 import exact_conv


def _int64_conv(x: np.ndarray, w: np.ndarray, pad: int) -> np.ndarray:
    """Stride-1 2-D convolution in int64: one einsum per kernel offset."""
    n, c, h, wd = x.shape
    m, _, kh, kw = w.shape
    xp = np.pad(x.astype(np.int64), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = h + 2 * pad - kh + 1, wd + 2 * pad - kw + 1
    y = np.zeros((n, m, oh, ow), np.int64)
    for i in range(kh):
        for j in range(kw):
            y += np.einsum("nchw,mc->nmhw", xp[:, :, i : i + oh, j : j + ow], w[:, :, i, j])
    return y


@pytest.mark.parametrize(
    ("cin", "k", "extreme"),
    [(64, 3, True), (300, 3, True), (1100, 1, True), (2100, 1, False), (260, 5, False)],
)
def test_sliced_float32_conv_equals_int64(cin: int, k: int, extreme: bool) -> None:
    rng = np.random.default_rng(cin + k)
    if extreme:  # products at their largest and one odd: a sum above 2^24 no float32 holds
        x = np.full((2, cin, 6, 6), -128, np.int8)
        w = np.full((5, cin, k, k), -127, np.int8)
        x[:, 0], w[:, 0] = 127, 127
        w[1] = -w[1]
    else:
        x = rng.integers(-128, 128, (2, cin, 6, 6)).astype(np.int8)
        w = rng.integers(-127, 128, (5, cin, k, k)).astype(np.int8)
    pad = k // 2
    geometry = ((k, k), (1, 1), (1, 1), (pad, pad, pad, pad), (6, 6))
    got = exact_conv(x, w, geometry, 1)
    want = _int64_conv(x, w, pad)
    assert got.dtype.kind == "f"
    assert np.array_equal(got.astype(np.int64), want)
    assert float(np.max(np.abs(got))) == float(np.max(np.abs(want)))
