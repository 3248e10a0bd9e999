"""Float layers (``qtune * float bfloat16``): 16-bit storage, float32 arithmetic (docs/FLOAT16.md).

The contract every float layer follows, in the executor and in the generated C alike:

* activations, weights and biases are **stored** in the layer's float type (bfloat16, float16
  or float32); converting a float32 value to a 16-bit type rounds to nearest, ties to even
  (RNE) — what the GAP SDK's ``F16``/``bfloat16`` conversions and numpy's ``float16`` do;
* a layer **computes** in IEEE float32: stored values are widened exactly, every multiply and
  add is one float32 operation, and a conv / linear accumulates in a fixed order (bias first,
  then input channel, kernel row, kernel column — or input feature for a linear);
* a fused chain (conv → max pool → ReLU) keeps float32 between its parts and rounds **once**,
  when its output is stored.

The executor reproduces the C's order with vectorised float32 numpy (one operation per
reduction index over every output at once), so the two agree exactly: the bound the doc
derives between them is 0 ulp. :class:`FloatType` stands where an integer layer has a
``QType`` (its ``dtype``, ``quantize`` and ``dequantize``), so the integer executor, ``gen
--verify``, ``qerror`` and ``footprint`` handle float layers without a branch of their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from nnshell.ops._shapes import WindowGeometry

#: The float types a layer may be stored in, with their C type code (nn_float.h).
FLOAT_TYPES = {"bfloat16": 1, "float16": 2, "float32": 3}


def to_bits(x: Any, ftype: str) -> np.ndarray:
    """Round float values to ``ftype`` (RNE) and return the stored bit patterns.

    bfloat16 and float16 give ``uint16`` words, float32 gives ``float32`` values."""
    f = np.asarray(x, dtype=np.float32)
    if ftype == "float32":
        return f.copy()
    if ftype == "float16":
        with np.errstate(over="ignore"):
            return f.astype(np.float16).view(np.uint16)
    u = f.view(np.uint32).astype(np.uint64)
    lsb = (u >> 16) & 1
    r = ((u + 0x7FFF + lsb) >> 16).astype(np.uint16)
    nan = np.isnan(f)
    if nan.any():
        r = np.where(nan, np.uint16(0x7FC0) | ((u >> 16) & 0x8000).astype(np.uint16), r)
    return r


def from_bits(b: Any, ftype: str) -> np.ndarray:
    """The float32 values of stored bit patterns (exact: every type widens to float32)."""
    a = np.asarray(b)
    if ftype == "float32":
        return a.astype(np.float32)
    if ftype == "float16":
        return a.astype(np.uint16).view(np.float16).astype(np.float32)
    return (a.astype(np.uint32) << 16).view(np.float32)


def round_to(x: Any, ftype: str) -> np.ndarray:
    """Float32 values rounded to ``ftype`` (what storing and reloading gives)."""
    return from_bits(to_bits(x, ftype), ftype)


def unit_roundoff(ftype: str) -> float:
    """``u``: half the distance from 1.0 to the next value (2^-8, 2^-11, 2^-24)."""
    return {"bfloat16": 2.0**-8, "float16": 2.0**-11, "float32": 2.0**-24}[ftype]


@dataclass(frozen=True, eq=False)
class FloatType:
    """How a float layer's tensor is stored: the duck type of ``QType`` the executors use."""

    ftype: str
    forced_by: str | None = None

    def __post_init__(self) -> None:
        if self.ftype not in FLOAT_TYPES:
            raise ValueError(f"FloatType: unknown float type {self.ftype!r}")

    #: reports and headers read these as for an integer tensor (real = code * 1.0)
    scale = 1.0
    zero_point = 0
    symmetric = True
    narrow = False
    per_channel = False

    @property
    def bits(self) -> int:
        """Storage width."""
        return 32 if self.ftype == "float32" else 16

    @property
    def dtype(self) -> type[np.generic]:
        """numpy storage type: ``uint16`` bit patterns or ``float32`` values."""
        return np.float32 if self.ftype == "float32" else np.uint16

    @property
    def is_float(self) -> bool:
        """Always True (``QType`` has no such attribute: ``getattr(q, "is_float", False)``)."""
        return True

    def quantize(self, x: Any, axis: int = 0) -> np.ndarray:
        """Store float values (RNE)."""
        return to_bits(x, self.ftype)

    def dequantize(self, q: Any, axis: int = 0) -> np.ndarray:
        """Widen stored values to float64 (exact)."""
        return from_bits(q, self.ftype).astype(np.float64)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the state file)."""
        return {"float_type": self.ftype}

    def describe(self) -> str:
        """``bfloat16`` (qshow)."""
        return self.ftype

    def __repr__(self) -> str:
        return f"FloatType({self.ftype})"


def is_float_q(q: Any) -> bool:
    """Whether a tensor's type is a float type (not an integer QType)."""
    return bool(getattr(q, "is_float", False))


# -- the ordered float32 kernels ---------------------------------------------------------------
def conv2d_ordered(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None,
    geometry: WindowGeometry,
    group: int,
) -> np.ndarray:
    """A 1-D or 2-D convolution in float32, accumulated as ``nn_f_conv`` does.

    ``acc = bias; for ci, ky, kx: acc += w * x`` (a padded position reads +0.0): one float32
    multiply and one float32 add per step, vectorised over the batch and every output."""
    kernel, strides, dil, pads, outs = geometry
    if len(kernel) == 1:
        x, w = x[:, :, None, :], w[:, :, None, :]
        as_2d = ((1, *kernel), (1, *strides), (1, *dil), (0, pads[0], 0, pads[1]), (1, *outs))
        return conv2d_ordered(x, w, b, as_2d, group)[:, :, 0, :]
    x = np.asarray(x, np.float32)
    w = np.asarray(w, np.float32)
    n, cin, h, wd = x.shape
    cout = w.shape[0]
    cig, cog = cin // group, cout // group
    xp = np.zeros((n, cin, h + pads[0] + pads[2], wd + pads[1] + pads[3]), np.float32)
    xp[:, :, pads[0] : pads[0] + h, pads[1] : pads[1] + wd] = x
    xg = xp.reshape(n, group, cig, *xp.shape[2:])
    wg = w.reshape(group, cog, cig, kernel[0], kernel[1])
    oh, ow = outs
    acc = np.zeros((n, group, cog, oh, ow), np.float32)
    if b is not None:
        acc += np.asarray(b, np.float32).reshape(1, group, cog, 1, 1)
    for ci in range(cig):
        for ky in range(kernel[0]):
            y0 = ky * dil[0]
            rows = slice(y0, y0 + strides[0] * (oh - 1) + 1, strides[0])
            for kx in range(kernel[1]):
                x0 = kx * dil[1]
                cols = slice(x0, x0 + strides[1] * (ow - 1) + 1, strides[1])
                patch = xg[:, :, ci, rows, cols][:, :, None]
                acc += wg[None, :, :, ci, ky, kx, None, None] * patch
    return acc.reshape(n, cout, oh, ow)


def linear_ordered(x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """``acc = bias; for k: acc += W[:, k] * x[k]`` in float32 (``nn_f_linear``'s order)."""
    xf = np.asarray(x, np.float32).reshape(x.shape[0], -1)
    wf = np.asarray(w, np.float32)
    acc = np.zeros((xf.shape[0], wf.shape[0]), np.float32)
    if b is not None:
        acc += np.asarray(b, np.float32)[None, :]
    for k in range(wf.shape[1]):
        acc += wf[None, :, k] * xf[:, k, None]
    return acc


def global_mean_ordered(x: np.ndarray) -> np.ndarray:
    """``acc = 0; for i: acc += x[i]; acc / HW`` per channel in float32 (keeps dims)."""
    xf = np.asarray(x, np.float32)
    flat = xf.reshape(xf.shape[0], xf.shape[1], -1)
    acc = np.zeros(flat.shape[:2], np.float32)
    for i in range(flat.shape[2]):
        acc += flat[:, :, i]
    y = acc / np.float32(flat.shape[2])
    return y.reshape(xf.shape[0], xf.shape[1], *([1] * (xf.ndim - 2)))


_F = np.float32
#: exp(v) = 2^k · p(r): v = k·ln 2 + r, ln 2 split so that k·LN2_HI is exact (|k| <= 126)
#: (the float32 values written in hexadecimal, as in nn_float.c: no decimal rounding)
_LOG2E, _LN2_HI, _LN2_LO = (
    _F(float.fromhex(h)) for h in ("0x1.715476p+0", "0x1.62e4p-1", "0x1.7f7d1cp-20")
)
_EXP_POLY = tuple(
    _F(float.fromhex(h))
    for h in (
        "0x1.6c16c2p-10",
        "0x1.111112p-7",
        "0x1.555556p-5",
        "0x1.555556p-3",
        "0x1p-1",
        "0x1p+0",
        "0x1p+0",
    )
)


def exp_f32(v: np.ndarray) -> np.ndarray:
    """``exp(v)`` for ``v <= 0`` from float32 multiplies and adds only (``nn_f_exp``): the
    same operations in C give the same bits, which ``expf`` (not correctly rounded, different
    per libm) would not. Relative error below 2.5e-7 (measured on [-87, 0] against float64
    ``exp``); below -87 the result is 0."""
    v = np.asarray(v, _F)
    t = v * _LOG2E + _F(0.5)
    t = np.maximum(t, _F(-126.0))
    k = t.astype(np.int32)  # truncation toward 0, then floor for negatives
    k = k - (k.astype(_F) > t)
    kf = k.astype(_F)
    r = (v - kf * _LN2_HI) - kf * _LN2_LO
    p = np.full_like(r, _EXP_POLY[0])
    for c in _EXP_POLY[1:]:
        p = p * r + c
    scale = ((k + 127).astype(np.uint32) << 23).view(_F)
    return np.where(v < _F(-87.0), _F(0.0), p * scale).astype(_F)


def softmax_rows(x: np.ndarray) -> np.ndarray:
    """Softmax of each row in float32: ``e = exp(x - max)``, ``s = Σ e`` in order, ``e / s``."""
    xf = np.asarray(x, _F)
    e = exp_f32(xf - xf.max(axis=1, keepdims=True))
    s = np.zeros(xf.shape[0], _F)
    for j in range(xf.shape[1]):
        s += e[:, j]
    return e / s[:, None]


# -- running one node ------------------------------------------------------------------------
