"""The integer arithmetic of the SQ8 scheme, in one place (see ``docs/SQ8.md``).

Every module that quantizes, executes or generates code for the 8-bit scheme takes its rounding,
shifting, multiplier and zero-point arithmetic from here, so the Python executor, the generated C
and the header constants agree bit for bit. The functions are deliberately literal transcriptions
of SQ8.md: where a cleverer formula would round differently in a corner case, the literal one wins.

Conventions:

* float → int rounding is :func:`round_half_up` (``floor(v + 0.5)``, computed in float64), never
  ``np.round`` (banker's rounding) or ``int()`` (truncation);
* integer results are ``int`` for scalar inputs and ``np.int64`` arrays for array inputs, so no
  intermediate product silently wraps in int8/int32 numpy arithmetic;
* a value the scheme cannot represent raises :class:`~nnshell.errors.QuantizationError` naming the
  layer; a call that breaks the contract of a primitive (a negative shift, floats given to an
  integer function) raises ``ValueError``/``TypeError`` because it is a bug, not a user error.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from nnshell.errors import ModelFileError, QuantizationError

IntArray = npt.NDArray[np.int64]

INT8_MIN = -128
INT8_MAX = 127
INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1
#: Largest right shift :func:`rnorm` accepts on int64 arrays (``1 << (n-1)`` must fit int64).
MAX_SHIFT = 62
#: SQ8 §4: a shift above this makes the multiplier loop give up bits (unless it reaches b == 0).
MAX_MULT_SHIFT = 24
#: SQ8 §4: headroom of one int8 x int8 product, ``log2(127 * 128)`` rounded up.
PRODUCT_BITS = 14
#: Largest ``|sum|`` float32 / float64 hold exactly: every integer up to 2^24 / 2^53 is a float.
_F32_EXACT = 1 << 24
_F64_EXACT = 1 << 53


# --------------------------------------------------------------------------------------------
# §1 rounding primitives
# --------------------------------------------------------------------------------------------


def _is_scalar(v: Any) -> bool:
    return np.ndim(v) == 0


def _int_array(v: npt.ArrayLike, what: str) -> IntArray:
    """``v`` as an int64 array; refuses floats so a forgotten rounding step fails loudly."""
    arr = np.asarray(v)
    if arr.dtype.kind not in "iub":
        raise TypeError(f"{what} takes integers, got dtype {arr.dtype} (round first)")
    return arr.astype(np.int64, copy=False)


def _py_int(v: Any, what: str) -> int:
    """A scalar integer as a Python int (unbounded, so scalar arithmetic never wraps)."""
    if isinstance(v, (float, np.floating)):
        raise TypeError(f"{what} takes integers, got {v!r} (round first)")
    return operator.index(np.asarray(v).item() if isinstance(v, np.ndarray) else v)


def round_half_up(v: Any) -> Any:
    """``floor(v + 0.5)`` in float64: int for a scalar, int64 array for an array.

    SQ8 rounds ties towards +inf everywhere (Python and C alike); ``np.round`` would round ties to
    even and disagree with the C code on exactly the values that matter (x.5 codes). The formula
    is applied literally, in float64, because that is what the C side does too.
    """
    if _is_scalar(v):
        x = float(v)
        if not math.isfinite(x):
            raise ValueError(f"cannot round the non-finite value {x!r} to an integer")
        return math.floor(x + 0.5)
    f = np.floor(np.asarray(v, dtype=np.float64) + 0.5)
    # abs(f) < 2^63 is False for NaN too, so one test rejects NaN, inf and int64 overflow.
    if f.size and not bool(np.all(np.abs(f) < 2.0**63)):
        raise ValueError("cannot round non-finite or out-of-int64 values to integers")
    return f.astype(np.int64)


def rnorm(v: Any, n: Any) -> Any:
    """Rounding right shift ``(v + (1 << (n-1))) >> n`` (``v`` when ``n == 0``).

    The shift is arithmetic, so ties round towards +inf for negatives too — exactly what the
    generated C does with ``>>`` on a signed int64. ``n`` may be an array broadcasting against
    ``v`` (one shift per channel). A negative ``n`` is a bug in SQ8 (the multiplier rule never
    produces one), hence ``ValueError``.
    """
    if _is_scalar(v) and _is_scalar(n):
        vi, ni = _py_int(v, "rnorm"), _py_int(n, "rnorm")
        if ni < 0:
            raise ValueError(f"rnorm: negative shift {ni}")
        return vi if ni == 0 else (vi + (1 << (ni - 1))) >> ni
    va = _int_array(v, "rnorm")
    na = _int_array(n, "rnorm")
    if na.size and (int(na.min()) < 0 or int(na.max()) > MAX_SHIFT):
        raise ValueError(f"rnorm: shift outside 0..{MAX_SHIFT}: {na.min()}..{na.max()}")
    # half is 0 where n == 0, so the same expression gives v >> 0 == v there.
    half = np.where(na > 0, np.left_shift(np.int64(1), np.maximum(na - 1, 0)), np.int64(0))
    return np.right_shift(va + half, na)


def clip_range(v: Any, lo: int, hi: int) -> Any:
    """Saturate integers to ``[lo, hi]``; int for a scalar, int64 array for an array."""
    if _is_scalar(v):
        return min(hi, max(lo, _py_int(v, "clip_range")))
    return np.clip(_int_array(v, "clip_range"), lo, hi)


def clip8(v: Any) -> Any:
    """Saturate integers to int8 ``[-128, 127]`` (the result stays int64 so later sums can't wrap;
    cast with ``.astype(np.int8)`` only to store)."""
    return clip_range(v, INT8_MIN, INT8_MAX)


def c_div_trunc(a: Any, b: Any) -> Any:
    """Integer division truncating toward zero, like C's ``/`` (Python's ``//`` floors).

    Used by the global average pool, whose C kernel divides a possibly negative sum.
    """
    if _is_scalar(a) and _is_scalar(b):
        ai, bi = _py_int(a, "c_div_trunc"), _py_int(b, "c_div_trunc")
        if bi == 0:
            raise ZeroDivisionError("c_div_trunc: division by zero")
        q = abs(ai) // abs(bi)
        return q if (ai < 0) == (bi < 0) else -q
    aa, ba = _int_array(a, "c_div_trunc"), _int_array(b, "c_div_trunc")
    if np.any(ba == 0):
        raise ZeroDivisionError("c_div_trunc: division by zero")
    q = np.abs(aa) // np.abs(ba)
    return np.where((aa < 0) == (ba < 0), q, -q)


def check_int32(values: Any, what: str, layer: str) -> None:
    """Raise :class:`QuantizationError` naming ``layer`` if any value does not fit int32.

    The kernels hold biases and accumulators in int32; a value outside it would wrap in C, so it
    is refused here rather than "fixed" (SQ8 §3).
    """
    arr = np.asarray(values)
    if arr.size == 0:
        return
    lo, hi = int(arr.min()), int(arr.max())
    if lo < INT32_MIN or hi > INT32_MAX:
        bad = lo if lo < INT32_MIN else hi
        raise QuantizationError(
            f"layer '{layer}': {what} {bad} does not fit int32",
            hint="its weights or input scale are far too small for the bias; check the "
            "calibration range of its input",
        )


# --------------------------------------------------------------------------------------------
# §2 quantization types
# --------------------------------------------------------------------------------------------


def _norm_scale(scale: Any) -> float | np.ndarray:
    """A float for a scalar scale, a read-only float64 array for a per-channel one."""
    if _is_scalar(scale):
        return float(scale)
    arr = np.array(scale, dtype=np.float64)  # copy: the frozen QType must own its data
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class QType:
    """How a tensor is stored as integers: ``real = (q - zero_point) * scale``.

    ``scale`` is a float (per tensor) or a float64 array (per output channel, weights only).
    ``narrow`` drops the code -128 (weights: -127..127 keeps ``-w`` representable and the kernels'
    product bound at 127·128). ``forced_by`` records which consumer forced the tensor symmetric,
    so ``qshow`` can say why a zero point is 0.
    """

    scale: float | np.ndarray
    zero_point: int = 0
    bits: int = 8
    symmetric: bool = True
    narrow: bool = False
    forced_by: str | None = field(default=None)

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", _norm_scale(self.scale))
        object.__setattr__(self, "zero_point", int(self.zero_point))
        if not 2 <= self.bits <= 32:
            raise ValueError(f"QType: unsupported bit width {self.bits}")
        scales = np.asarray(self.scale)
        if scales.size == 0 or not bool(np.all(np.isfinite(scales) & (scales > 0))):
            raise ValueError(f"QType: scales must be finite and > 0, got {self.scale!r}")
        if self.symmetric and self.zero_point != 0:
            raise ValueError(f"QType: symmetric with zero point {self.zero_point}")
        if not self.qmin <= self.zero_point <= self.qmax:
            raise ValueError(f"QType: zero point {self.zero_point} outside the integer range")

    @property
    def qmin(self) -> int:
        """Smallest code (-128, or -127 when narrow, for 8 bits)."""
        return -(1 << (self.bits - 1)) + (1 if self.narrow else 0)

    @property
    def qmax(self) -> int:
        """Largest code (127 for 8 bits)."""
        return (1 << (self.bits - 1)) - 1

    @property
    def per_channel(self) -> bool:
        """True when the scale is an array (one scale per output channel)."""
        return isinstance(self.scale, np.ndarray)

    @property
    def dtype(self) -> type[np.signedinteger[Any]]:
        """The smallest numpy integer type holding the codes."""
        if self.bits <= 8:
            return np.int8
        return np.int16 if self.bits <= 16 else np.int32

    def _scale_for(self, ndim: int, axis: int) -> float | np.ndarray:
        """The scale reshaped to broadcast along ``axis`` of an ``ndim``-D tensor."""
        if not isinstance(self.scale, np.ndarray):
            return self.scale
        shape = [1] * ndim
        shape[axis] = self.scale.size
        return self.scale.reshape(shape)

    def quantize(self, x: npt.ArrayLike, axis: int = 0) -> np.ndarray:
        """``clip(round_half_up(x/S) + Z)`` as an integer array of :attr:`dtype`.

        ``axis`` is the channel axis of ``x`` for a per-channel scale (ignored otherwise).
        """
        xa = np.asarray(x)
        if xa.ndim == 0 or xa.dtype.kind not in "biuf":
            xf = np.asarray(x, dtype=np.float64)
            q = round_half_up(xf / self._scale_for(xf.ndim, axis)) + self.zero_point
            return np.asarray(clip_range(q, self.qmin, self.qmax)).astype(self.dtype)
        # The same float64 arithmetic in place (one temporary instead of eight): x/S in float64,
        # floor(+0.5), the round_half_up range check, then + Z and the clip. Adding Z and
        # clipping in float64 gives the int64 result: past 2^53 the value saturates anyway.
        f = np.divide(xa, self._scale_for(xa.ndim, axis), dtype=np.float64)
        f += 0.5
        np.floor(f, out=f)
        if f.size and not (abs(float(f.min())) < 2.0**63 and abs(float(f.max())) < 2.0**63):
            raise ValueError("cannot round non-finite or out-of-int64 values to integers")
        f += self.zero_point
        np.clip(f, self.qmin, self.qmax, out=f)
        return f.astype(self.dtype)

    def dequantize(self, q: npt.ArrayLike, axis: int = 0) -> np.ndarray:
        """``(q - Z) * S`` in float64 (the subtraction is done in int64: no int8 wrap)."""
        qi = _int_array(q, "dequantize")
        return (qi - self.zero_point) * self._scale_for(qi.ndim, axis)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict; scales stay Python floats so ``json`` round-trips exactly."""
        scale = self.scale.tolist() if isinstance(self.scale, np.ndarray) else self.scale
        return {
            "scale": scale,
            "zero_point": self.zero_point,
            "bits": self.bits,
            "symmetric": self.symmetric,
            "narrow": self.narrow,
            "forced_by": self.forced_by,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> QType:
        """Inverse of :meth:`to_dict`; a malformed dict (a corrupted state file) is a
        :class:`ModelFileError`."""
        try:
            scale = d["scale"]
            return cls(
                scale=np.asarray(scale, dtype=np.float64) if isinstance(scale, list) else scale,
                zero_point=int(d["zero_point"]),
                bits=int(d.get("bits", 8)),
                symmetric=bool(d["symmetric"]),
                narrow=bool(d.get("narrow", False)),
                forced_by=d.get("forced_by"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"invalid quantization type {d!r}: {exc}") from exc

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, QType):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        scale = self.scale
        key = tuple(scale.tolist()) if isinstance(scale, np.ndarray) else scale
        return hash((key, self.zero_point, self.bits, self.symmetric, self.narrow, self.forced_by))


def _dist_to_int(z: float) -> float:
    return abs(z - math.floor(z + 0.5))


def qtype_from_range(
    lo: float,
    hi: float,
    symmetric: bool,
    forced_by: str | None = None,
    name: str = "tensor",
) -> QType:
    """The int8 activation qtype of a calibrated range ``[lo, hi]`` (SQ8 §2, literally).

    Degenerate ranges are widened (``lo == hi`` → symmetric around 0, ``[-1, 1]`` for 0), the
    range always contains 0 (so 0.0 — padding, ReLU's floor — is exactly a code), symmetric uses
    ``S = max(hi/127, -lo/128)``, asymmetric ``S = (hi-lo)/255`` with the zero point candidate
    closest to an integer. ``name`` only serves the error message.
    """
    lo, hi = float(lo), float(hi)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise QuantizationError(f"{name}: calibrated range [{lo}, {hi}] is not finite")
    if lo > hi:
        raise QuantizationError(f"{name}: calibrated range [{lo}, {hi}] has min > max")
    if lo == hi:
        lo, hi = (-1.0, 1.0) if lo == 0.0 else (-abs(lo), abs(lo))
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if symmetric:
        scale = max(hi / 127, -lo / 128)
        zp = 0
    else:
        scale = (hi - lo) / 255
        z_lo = -128 - lo / scale if scale > 0 else 0.0
        z_hi = 127 - hi / scale if scale > 0 else 0.0
        # Mathematically equal; float noise decides which is the cleaner one.
        z = z_lo if _dist_to_int(z_lo) <= _dist_to_int(z_hi) else z_hi
        zp = round_half_up(z)
        if zp < INT8_MIN:  # only the high side can still be represented
            zp = INT8_MIN
            scale = hi / (INT8_MAX - zp)
        elif zp > INT8_MAX:  # only the low side can still be represented
            zp = INT8_MAX
            scale = -lo / (zp - INT8_MIN)
    if not (math.isfinite(scale) and scale > 0):
        raise QuantizationError(
            f"{name}: range [{lo}, {hi}] gives the unusable scale {scale!r}",
            hint="the calibrated range is too small or too large for a float64 scale",
        )
    return QType(scale=scale, zero_point=zp, symmetric=symmetric, forced_by=forced_by)


# --------------------------------------------------------------------------------------------
# §3 weights and biases
# --------------------------------------------------------------------------------------------


def weight_qtype_per_channel(
    w: npt.ArrayLike, axis: int = 0, per_tensor: bool = False, layer: str = "?"
) -> tuple[np.ndarray, np.ndarray]:
    """``(Sw, Wq)``: per-channel symmetric narrow int8 weights (SQ8 §3).

    ``Sw[c] = max|W[c]|/127`` (1 for an all-zero channel, so nothing divides by 0) and
    ``Wq = clip(round_half_up(W/Sw), -127, 127)``. With ``per_tensor`` one scale is used for the
    whole tensor but it is still returned once per channel, so multipliers and biases are computed
    per channel the same way in both modes.
    """
    wf = np.asarray(w)
    if wf.dtype.kind != "f" or wf.dtype.itemsize > 8:
        wf = wf.astype(np.float64)
    if wf.ndim == 0:
        raise ValueError("weight_qtype_per_channel: weights must have a channel axis")
    axis = axis % wf.ndim
    channels = wf.shape[axis]
    # Per-channel max and min in the weights' own dtype (exact) instead of |W| in float64:
    # VGG-19's 140M weights made three float64 temporaries of 1.1 GB each. max/min propagate
    # NaN and infinity, so checking them checks every weight.
    other = tuple(i for i in range(wf.ndim) if i != axis)
    if wf.size:
        hi = np.asarray(wf.max(axis=other), np.float64)
        lo = np.asarray(wf.min(axis=other), np.float64)
    else:
        hi = lo = np.zeros(channels)
    if not (bool(np.all(np.isfinite(hi))) and bool(np.all(np.isfinite(lo)))):
        raise QuantizationError(f"layer '{layer}': weights contain NaN or infinity")
    amax = np.maximum(hi, -lo)
    if per_tensor:
        amax = np.full(channels, float(amax.max()) if amax.size else 0.0)
    scales = np.where(amax > 0, amax / 127, 1.0).astype(np.float64)
    shape = [1] * wf.ndim
    shape[axis] = channels
    # round_half_up (floor(x + 0.5) in float64) and the clip, in place: the same values as
    # clip_range(round_half_up(W / Sw), -127, 127), whose range check the clip makes moot
    q = wf / scales.reshape(shape)  # float64 (a float32 weight converts exactly)
    q += 0.5
    np.floor(q, out=q)
    np.clip(q, -127, 127, out=q)
    return scales, q.astype(np.int8)


#: Per-channel weight scales never go below ``max_c Sw[c] · 2^-WEAK_CHANNEL_BITS`` (see
#: docs/quantization.md,
#: "Dead and near-dead channels"): a channel 2^16 times weaker than the layer's strongest carries
#: nothing an int8 output can show, and a smaller scale only inflates ``B/(Si·Sw)``.
WEAK_CHANNEL_BITS = 16
#: Bound on ``|Bq + off|`` chosen for a dead channel: the rounding ``rnorm`` adds ``2^(N-1)``
#: and the C kernel computes in int32, so two bits of margin.
DEAD_CHANNEL_ACC_BITS = 29


def settle_weak_channels(
    w: npt.ArrayLike,
    sw: npt.ArrayLike,
    bias: npt.ArrayLike,
    si: float,
    so: float,
    zo: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-channel ``(Sw, Wq, dead)`` with weak and dead channels made exact (SQ8 §3, §4).

    ``Sw[c] = max(max|W[c]|/127, max_c Sw·2^-16, (|B[c]| + |Zo|·So)/(Si·2^29))``: the floors keep
    ``Bq + off`` inside int32 and keep a channel from being quantized far more finely than the
    layer can use. A channel whose weights all round to 0 (exactly zero, or |W| ~ 1e-13 as in
    open-nsfw) outputs its bias alone, so its scale is free: it is set to
    ``Sw[c] = So·2^-N/(Si)`` so that the requantization multiplier is exactly ``2^-N`` (M = 1,
    shift N) and the integer output is ``rnorm(round(B·2^N/So), N) + Zo`` — the requantized bias,
    with no multiplier error magnifying the zero-point rounding (the old rule, Sw = 1, gave
    M ≈ 75). ``N`` is the largest shift ≤ 24 keeping ``|Bq + off| < 2^29``.
    """
    wf = np.asarray(w, dtype=np.float64)
    sw = np.asarray(sw, dtype=np.float64).reshape(-1).copy()
    b = np.asarray(bias, dtype=np.float64).reshape(-1)
    live = np.abs(wf).reshape(wf.shape[0], -1).max(axis=1) > 0
    smax = float(sw[live].max()) if live.any() else 0.0
    fit = (np.abs(b) + abs(int(zo)) * float(so)) / (float(si) * 2.0**DEAD_CHANNEL_ACC_BITS)
    sw = np.where(live, np.maximum(sw, np.maximum(smax * 2.0**-WEAK_CHANNEL_BITS, fit)), sw)
    shape = (-1,) + (1,) * (wf.ndim - 1)
    wq = clip_range(round_half_up(wf / sw.reshape(shape)), -127, 127).astype(np.int8)
    dead = ~np.any(wq.reshape(wq.shape[0], -1) != 0, axis=1)
    if dead.any():
        y = np.minimum(np.abs(b[dead]) / float(so), 512.0) + abs(int(zo)) + 1.0
        n = np.clip(np.floor(np.log2(2.0**DEAD_CHANNEL_ACC_BITS / y)), 0, MAX_MULT_SHIFT)
        sw[dead] = float(so) * np.exp2(-n) / float(si)
        wq[dead] = 0
    return sw, wq, dead


def quantize_bias(b: npt.ArrayLike, s_in: float, s_w: npt.ArrayLike, layer: str) -> np.ndarray:
    """int32 bias at the accumulator scale: ``Bq = round_half_up(B / (Si*Sw))`` (SQ8 §3).

    A bias that does not fit int32 is an error naming ``layer`` — wrapping would corrupt every
    output of the channel silently.
    """
    sb = float(s_in) * np.asarray(s_w, dtype=np.float64)
    bf = np.asarray(b, dtype=np.float64)
    if not bool(np.all(np.isfinite(bf))):
        raise QuantizationError(f"layer '{layer}': bias contains NaN or infinity")
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        ratio = bf / sb  # a scale that underflowed to 0 gives inf: refused just below
    if ratio.size and not bool(np.all(np.abs(ratio) < 2.0**62)):
        bad = float(ratio.flat[int(np.argmax(np.abs(ratio)))])
        raise QuantizationError(
            f"layer '{layer}': bias {bad:.6g} (in int32 units) does not fit int32"
        )
    bq = round_half_up(ratio)
    check_int32(bq, "quantized bias", layer)
    return np.asarray(bq, dtype=np.int32)


# --------------------------------------------------------------------------------------------
# §4 requantization multipliers
# --------------------------------------------------------------------------------------------


def multiplier_headroom(k: int) -> tuple[int, int]:
    """``(acc_bits, b)`` for a reduction of ``k`` terms (SQ8 §4 step 2).

    ``acc_bits = ceil(log2 K) + 14`` bounds ``|acc|``; ``b = min(8, 31 - acc_bits)`` multiplier bits
    keep ``acc·M`` inside 31 bits. ``ceil(log2 K)`` is computed exactly as ``(K-1).bit_length()``.
    SQ8 does not define ``b < 0`` (K > 2^17: the worst-case accumulator alone exceeds int32); we
    clamp to ``b = 0`` (M = 1, a pure shift) rather than produce M = 0 — ``qshow`` reports the bits.
    """
    k = operator.index(k)
    if k < 1:
        raise ValueError(f"multiplier_headroom: reduction size must be >= 1, got {k}")
    acc_bits = (k - 1).bit_length() + PRODUCT_BITS
    return acc_bits, max(0, min(8, 31 - acc_bits))


#: Widest multiplier ``open -q`` may ask for: ``(acc + bias)·M`` stays inside int64 (both int32).
MAX_WIDE_BITS = 30


def wide_multiplier(m: float, bits: int, layer: str = "?") -> tuple[int, int]:
    """``(M, N)`` with ``m ≈ M·2^-N`` and ``M < 2^bits``: the precision of TFLite's own 31-bit
    multipliers, used for the conv/linear layers of a file opened with ``-q``.

    SQ8's 8-bit rule (:func:`multiplier`) keeps ``acc·M`` inside int32 for GAP's kernels; here the
    product is int64 (the C kernels compute it so anyway), so ``M`` takes ``bits`` bits whatever
    ``K``. Trailing zero bits are dropped (same value, shorter shift).
    """
    m = float(m)
    if not 8 < bits <= MAX_WIDE_BITS:
        raise ValueError(f"wide_multiplier: bits must be 9..{MAX_WIDE_BITS}, got {bits}")
    if not math.isfinite(m) or m < 0:
        raise QuantizationError(f"layer '{layer}': invalid requantization scale {m!r}")
    if m == 0.0:
        return 0, 0
    f, e = math.frexp(m)
    mm, n = math.floor(f * 2.0**bits + 0.5), bits - e
    if mm >= 1 << bits:  # f rounded up to 1.0
        mm, n = mm >> 1, n - 1
    while mm % 2 == 0 and n > 0:
        mm, n = mm >> 1, n - 1
    _check_shift(m, n, n < 0, "", layer)
    return mm, n


def _check_shift(m: float, n: int, too_large: bool, why: str, layer: str) -> None:
    """The two ways a scale ``m ≈ M·2^-N`` cannot be requantized: ``M`` overflows (``too_large``,
    ``why`` says the width) or the shift ``n`` exceeds :data:`MAX_SHIFT`."""
    if too_large:
        raise QuantizationError(
            f"layer '{layer}': requantization scale {m:.6g} is too large for the multiplier{why}",
            hint="its output range is far too small for its inputs; check the calibration",
        )
    if n > MAX_SHIFT:
        raise QuantizationError(
            f"layer '{layer}': requantization scale {m:.6g} is too small (shift {n})",
            hint="its output range is far too large for its inputs; check the calibration",
        )


def multiplier(m: float, k: int, layer: str = "?") -> tuple[int, int]:
    """``(M, N)`` with ``m ≈ M·2^-N``, ``M`` unsigned 8-bit (SQ8 §4, literally).

    Bits are dropped while ``M`` is even (this never changes ``M·2^-N``: it only shortens the
    shift), ``M`` overflows 8 bits or ``N > 24``, as long as ``N > 0`` and ``b > 0``. A scale
    ratio that needs ``N < 0`` or ``M > 255`` (``m`` about 256 or more) means the output range is
    far too small for the inputs: a :class:`QuantizationError` naming ``layer``.
    """
    m = float(m)
    if not math.isfinite(m) or m < 0:
        raise QuantizationError(f"layer '{layer}': invalid requantization scale {m!r}")
    if m == 0.0:
        return 0, 0
    f, e = math.frexp(m)
    _, b = multiplier_headroom(k)
    while True:
        mm = math.floor(f * 2.0**b + 0.5)  # f·2^b is exact (power-of-two scaling)
        n = b - e
        if (mm >= 256 or n > MAX_MULT_SHIFT or mm % 2 == 0) and n > 0 and b > 0:
            b -= 1
            continue
        break
    _check_shift(m, n, n < 0 or mm > 255, f" ({multiplier_headroom(k)[1]} bits for K = {k})", layer)
    return mm, n


def multipliers(
    m: npt.ArrayLike, k: int, layer: str = "?", bits: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel :func:`multiplier`: ``(M uint8 array, N int64 array)``.

    ``M`` is uint8 like the kernels' ``Scale`` array; cast it to int64 before any arithmetic
    (:func:`requantize` does) — numpy would otherwise compute ``acc·M`` in a narrow type.
    ``bits`` above 8: :func:`wide_multiplier` instead, ``M`` an int32 array.
    """
    ms = np.atleast_1d(np.asarray(m, dtype=np.float64))
    if bits > 8:
        pairs = [
            wide_multiplier(float(v), bits, f"{layer}' channel '{c}") for c, v in enumerate(ms.flat)
        ]
    else:
        pairs = [multiplier(float(v), k, f"{layer}' channel '{c}") for c, v in enumerate(ms.flat)]
    mtype = np.int32 if bits > 8 else np.uint8
    mm = np.array([p[0] for p in pairs], dtype=mtype).reshape(ms.shape)
    nn = np.array([p[1] for p in pairs], dtype=np.int64).reshape(ms.shape)
    return mm, nn


def requant_scale(s_in: float, s_w: npt.ArrayLike, s_out: float) -> np.ndarray:
    """``m[c] = Si·Sw[c]/So`` in float64, in that order: one evaluation order everywhere, so no two
    modules can disagree by an ulp and flip a rounding of the multiplier."""
    return float(s_in) * np.asarray(s_w, dtype=np.float64) / float(s_out)


def zero_point_offset(
    wq: npt.ArrayLike, zi: int, zo: int, so: float, si: float, sw: npt.ArrayLike
) -> IntArray:
    """Per-channel bias offset of the zero points (the line after SQ8 §4):

    ``off[c] = -Zi·Σ_k Wq[c,k] + round_half_up(Zo·So/(Si·Sw[c]))``. The first term undoes the
    input zero point inside the dot product, the second pre-adds the output zero point at the
    accumulator scale so the kernel needs no extra add after the shift. ``wq`` has the output
    channel first (the remaining axes are summed).
    """
    w = _int_array(wq, "zero_point_offset")
    wsum = w.reshape(w.shape[0], -1).sum(axis=1)
    swa = np.asarray(sw, dtype=np.float64)
    out_term = round_half_up((int(zo) * float(so)) / (float(si) * swa))
    return -int(zi) * wsum + np.asarray(out_term, dtype=np.int64)


def requantize(acc: npt.ArrayLike, m: Any, n: Any, channel_axis: int = 1) -> IntArray:
    """``rnorm(acc·M, N)`` per channel, in int64 (SQ8 §5).

    ``m``/``n`` are scalars or one value per channel along ``channel_axis`` of ``acc``. The product
    is int64 on purpose: the headroom rule keeps it within 31 bits, and a violated assumption then
    shows up as a wrong value in a test rather than as undefined behaviour.
    """
    a = _int_array(acc, "requantize")
    mi = _int_array(m, "requantize")
    ni = _int_array(n, "requantize")
    if mi.ndim or ni.ndim:
        axis = channel_axis % a.ndim if a.ndim else 0
        shape = [1] * max(a.ndim, 1)
        shape[axis] = -1
        mi = mi.reshape(shape) if mi.ndim else mi
        ni = ni.reshape(shape) if ni.ndim else ni
    return np.asarray(rnorm(a * mi, ni))


def requantize_clip8(
    acc: npt.ArrayLike,
    bias: npt.ArrayLike,
    m: npt.ArrayLike,
    n: npt.ArrayLike,
    channel_axis: int = 1,
    acc_bound: int | None = None,
) -> np.ndarray:
    """``clip8(rnorm((acc + bias)·M, N))`` per channel as an int8 array: the executor's path.

    Bit-identical to ``clip8(requantize(acc + bias, m, n))``, but computed in place in the
    narrowest exact integer type: int32 when ``(|acc| + |bias|)·M + 2^(N-1)`` provably fits
    (``acc_bound`` bounds ``|acc|``, e.g. ``K·128·128`` for an int8 dot product; without it the
    data is measured), int64 otherwise. ``acc`` may be a float array holding exact integers
    (the float-BLAS accumulator of :func:`int_matmul_exact`), which saves a conversion.
    """
    a = np.asarray(acc)
    if a.dtype.kind not in "iubf":
        raise TypeError(f"requantize_clip8 takes numbers, got dtype {a.dtype}")
    bi = _int_array(bias, "requantize_clip8")
    mi = _int_array(m, "requantize_clip8")
    ni = _int_array(n, "requantize_clip8")
    if ni.size and (int(ni.min()) < 0 or int(ni.max()) > MAX_SHIFT):
        raise ValueError(f"rnorm: shift outside 0..{MAX_SHIFT}: {ni.min()}..{ni.max()}")
    half = np.where(ni > 0, np.left_shift(np.int64(1), np.maximum(ni - 1, 0)), np.int64(0))
    if acc_bound is None:
        acc_bound = 0 if a.size == 0 else int(max(abs(float(a.min())), abs(float(a.max()))))
    peak = (int(acc_bound) + int(np.abs(bi).max(initial=0))) * int(np.abs(mi).max(initial=0))
    wt = np.int32 if peak + int(half.max(initial=0)) <= INT32_MAX else np.int64

    def per_channel(v: np.ndarray) -> np.ndarray:
        if v.ndim == 0 or a.ndim == 0:
            return v.astype(wt)
        shape = [1] * a.ndim
        shape[channel_axis % a.ndim] = -1
        return v.reshape(shape).astype(wt)

    # (acc + B)·M + half == acc·M + (B·M + half): one pass less, the same integers (both sides
    # stay within ``peak + half``, so nothing wraps in ``wt``).
    if bi.ndim or mi.ndim or half.ndim:
        bi, mi, half = np.broadcast_arrays(bi, mi, half)
    work = a.astype(wt)  # a fresh array: everything below works in place
    work *= per_channel(mi)
    work += per_channel(bi * mi + half)
    work >>= per_channel(ni)
    np.clip(work, INT8_MIN, INT8_MAX, out=work)
    return work.astype(np.int8)


# --------------------------------------------------------------------------------------------
# §8 header constants
# --------------------------------------------------------------------------------------------


def header_qscale_qnorm(s: float) -> tuple[int, int]:
    """``(QS, QN)`` with ``s ≈ QS·2^-QN`` and a 7-bit mantissa ``64 <= QS <= 127`` (SQ8 §8).

    When the mantissa rounds up to 128 it is renormalised to 64 with one less shift — the value
    stays ``s`` (NNTool reports ``s/4`` there; we do not).
    """
    s = float(s)
    if not (math.isfinite(s) and s > 0):
        raise ValueError(f"header_qscale_qnorm: scale must be finite and > 0, got {s!r}")
    f, e = math.frexp(s)
    qs, qn = math.floor(f * 128 + 0.5), 7 - e
    if qs == 128:
        qs, qn = 64, qn - 1
    return qs, qn


# --------------------------------------------------------------------------------------------
# exact integer matrix product
# --------------------------------------------------------------------------------------------


def _max_abs(a: np.ndarray) -> int:
    """Bound of ``|a|``: from the dtype for 8-bit types (no pass over the data), else measured."""
    if a.dtype.itemsize == 1 and a.dtype.kind in "iu":
        info = np.iinfo(a.dtype)
        return max(-int(info.min), int(info.max))
    if a.size == 0:
        return 0
    return max(abs(int(a.min())), abs(int(a.max())))


def exact_float_dtype(k: int, amax: int, bmax: int) -> type[np.floating[Any]] | None:
    """The narrowest float type in which a ``k``-term integer dot product is exact, or None.

    Every partial sum BLAS may form, in any order, is an integer of magnitude at most
    ``k·amax·bmax``; when that is <= 2^24 (float32) or 2^53 (float64) every such integer is a
    float, so each addition and multiplication is exact. For int8 × int8 (|product| <= 128·128)
    this means float32 up to K = 1024, float64 up to K = 2^39.
    """
    bound = int(k) * int(amax) * int(bmax)
    if bound <= _F32_EXACT:
        return np.float32
    if bound <= _F64_EXACT:
        return np.float64
    return None


def int_matmul_exact(a: npt.ArrayLike, b: npt.ArrayLike) -> IntArray:
    """``a @ b`` for integer arrays, exact, through float BLAS; returns int64.

    numpy's integer ``matmul`` does not use BLAS and is several times to an order of magnitude
    slower than the float one (conversions included), so the executor's convolutions (im2col
    products) go through float32/float64 GEMM, chosen by :func:`exact_float_dtype` so that the
    result is exact. Operands follow ``np.matmul`` broadcasting; the reduction axis is ``a``'s
    last.
    """
    aa, ba = np.asarray(a), np.asarray(b)
    if aa.dtype.kind not in "iub" or ba.dtype.kind not in "iub":
        raise TypeError(f"int_matmul_exact takes integer arrays, got {aa.dtype} and {ba.dtype}")
    if aa.ndim == 0 or ba.ndim == 0:
        raise ValueError("int_matmul_exact: operands must be at least 1-D")
    k = aa.shape[-1]
    ft = exact_float_dtype(k, _max_abs(aa), _max_abs(ba)) if aa.size and ba.size else None
    if ft is None:
        return np.matmul(aa.astype(np.int64), ba.astype(np.int64))
    return np.matmul(aa.astype(ft), ba.astype(ft)).astype(np.int64)
