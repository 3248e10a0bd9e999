"""The float convolution kernel shared by ``Conv`` and the SQ8 integer convolution (``_sq8``).

The kernel copies a strided view of the padded input once into a column matrix laid out
``(C·kernel, chunk·out)``, a cache-sized chunk of the batch at a time, and multiplies it by the
filters with one float32 BLAS matmul per group. 1×1 convolutions without padding skip the column
matrix (the input already is one), and depthwise convolutions accumulate per-offset products.
It lives apart from :mod:`nnshell.ops.conv` so that ``_sq8`` (which ``conv`` imports) can reuse it
without importing ``conv`` back.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from nnshell.ops._shapes import WindowGeometry, pad_for_windows, window_offsets

#: Column-matrix size per batch chunk (kept cache-sized) and the fewest matmul columns wanted.
_COLS_BYTES = 1 << 19
_MIN_COLUMNS = 256


def conv_float(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    geometry: WindowGeometry,
    group: int,
) -> np.ndarray:
    """Convolve a batched NC... array; exposed for fused ops that reuse it."""
    kernel, strides, _, pads, outs = geometry
    n, c = x.shape[:2]
    m, cg = w.shape[:2]
    nd = len(kernel)
    mg = m // group
    npix = int(np.prod(outs))
    dtype = np.result_type(x.dtype, np.float32)
    x = x.astype(dtype, copy=False)
    w = w.astype(dtype, copy=False)
    if cg == 1 and mg == 1:
        y = _depthwise(x, w, geometry)
    elif all(k == 1 for k in kernel) and not any(pads):
        # 1x1: a plain matmul on the (strided) input, no column matrix at all
        if any(s != 1 for s in strides):
            x = x[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in strides)]
        xs = x.reshape(n, group, cg, npix)  # copies only when strided
        y = np.matmul(w.reshape(group, mg, cg), xs).reshape((n, m) + tuple(outs))
    else:
        return _conv_im2col(x, w, b, geometry, group)
    if b is not None:
        y += b.astype(dtype, copy=False).reshape((1, m) + (1,) * nd)
    return y


def _conv_im2col(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    geometry: WindowGeometry,
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
    kernel, strides, dil, pads, outs = geometry
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
    geometry: WindowGeometry,
) -> np.ndarray:
    """One filter per channel: accumulate ``w[c, k] · x[n, c, shifted by k]`` over offsets."""
    kernel, strides, dil, pads, outs = geometry
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
