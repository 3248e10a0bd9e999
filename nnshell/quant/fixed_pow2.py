"""The integer arithmetic of the POW2 scheme (``docs/POW2.md``), in one place.

Every POW2 tensor is a signed ``bits``-wide integer (16 or 8) with ``q`` fractional bits:
``real = code · 2^-q`` ("Qm.n" with ``n = q`` and ``m = bits - 1 - q``). It is represented by an
ordinary :class:`~nnshell.quant.fixed_point.QType` with ``scale = 2^-q``, zero point 0 and ``bits``,
so quantizing, dequantizing, saving and the footprint work as for SQ8; :func:`q_of` recovers
``q``. There are no multipliers: every rescale is a rounding shift (:func:`shift_round`, the
``rnorm`` of SQ8.md §1 for a right shift, an exact left shift otherwise) followed by a saturation
to the container (:func:`clip_bits`).

Like :mod:`nnshell.quant.fixed_point`, everything here sits at the bottom of the layering so the op
modules can use it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from nnshell.errors import QuantizationError
from nnshell.quant.fixed_point import QType, clip_range, rnorm, round_half_up
from nnshell.quant.qrecord import QuantContext

#: POW2.md: the accumulator budget of a conv / linear layer (one bit of int32 spare).
ACC_BUDGET = 31
#: POW2.md: a layer may lose at most this fraction of its fractional bits to the budget.
MAX_PRECISION_LOSS = 0.75
#: ``round_half_up(log2(e) · 2^15)``: the exp of the softmax / sigmoid / tanh kernels.
LOG2E_Q15 = 47274
#: ``T[i] = round_half_up(2^30 · 2^(-i/256))`` for i = 0..256 (Q30): ``2^-f`` by interpolation.
EXP2_TABLE = np.array(
    [math.floor(2.0**30 * 2.0 ** (-i / 256) + 0.5) for i in range(257)], dtype=np.int64
)


def int_bits(lo: float, hi: float) -> int:
    """POW2.md: ``n = floor(max(|lo|, |hi|))``, ``ib = 1 + (0 if n == 0 else floor(log2 n) + 1)``.

    ``floor(log2 n) + 1`` of a positive integer is its bit length, computed exactly.
    """
    peak = max(abs(float(lo)), abs(float(hi)))
    if not math.isfinite(peak):
        raise ValueError(f"int_bits: range [{lo}, {hi}] is not finite")
    return 1 + int(math.floor(peak)).bit_length()


def q_from_range(lo: float, hi: float, bits: int, name: str = "tensor") -> int:
    """``q = bits - ib`` of a range; ``ib > bits`` is a :class:`QuantizationError` naming it."""
    lo, hi = float(lo), float(hi)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise QuantizationError(f"{name}: calibrated range [{lo}, {hi}] is not finite")
    ib = int_bits(lo, hi)
    if ib > bits:
        raise QuantizationError(
            f"{name}: range [{lo:.6g}, {hi:.6g}] needs {ib} integer bits, more than the "
            f"{bits}-bit container holds",
            "quantize with -f 16, or check the calibration range of this tensor",
        )
    return bits - ib


def q_fraction_fit(lo: float, hi: float, bits: int) -> int | None:
    """The largest ``q`` at which ``[lo, hi]`` still fits a ``bits``-bit code (values of
    magnitude below 1/2 get more than ``bits - 1`` fractional bits), None for an all-zero range.
    """
    peak = max(abs(float(lo)), abs(float(hi)))
    if peak == 0.0 or not math.isfinite(peak):
        return None
    top = (1 << (bits - 1)) - 1
    q = bits - 1 - math.frexp(peak)[1]  # peak·2^q in [2^(bits-2), 2^(bits-1))
    while q > -64 and round_half_up(peak * 2.0**q) > top:
        q -= 1
    while round_half_up(peak * 2.0 ** (q + 1)) <= top:
        q += 1
    return q


def pow2_qtype(q: int, bits: int, forced_by: str | None = None) -> QType:
    """The QType of a Qm.n tensor: ``scale = 2^-q``, zero point 0, symmetric."""
    return QType(scale=2.0 ** -int(q), zero_point=0, bits=int(bits), forced_by=forced_by)


def q_of(qt: QType) -> int:
    """``q`` of a POW2 qtype (its scale must be an exact power of two)."""
    if qt.per_channel or qt.zero_point:
        raise ValueError(f"q_of: {qt!r} is not a POW2 qtype")
    mant, exp = math.frexp(float(qt.scale))
    if mant != 0.5:
        raise ValueError(f"q_of: scale {qt.scale!r} is not a power of two")
    return 1 - exp


def qmn(qt: QType) -> str:
    """``Qm.n`` of a POW2 qtype (``m`` integer bits besides the sign, ``n = q``)."""
    q = q_of(qt)
    return f"Q{qt.bits - 1 - q}.{q}"


def clip_bits(v: Any, bits: int) -> Any:
    """Saturate integers to a signed ``bits``-wide container (result int64, or int)."""
    return clip_range(v, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)


def shift_round(v: Any, n: int) -> Any:
    """``rnorm(v, n)`` for ``n >= 0``; the exact left shift ``v << -n`` for ``n < 0``."""
    n = int(n)
    if n >= 0:
        return rnorm(v, n)
    if np.ndim(v) == 0:
        return int(v) << -n
    return np.left_shift(np.asarray(v, dtype=np.int64), -n)


def requant(v: Any, q_from: int, q_to: int, bits: int) -> np.ndarray:
    """Codes at ``q_from`` as codes at ``q_to`` in a ``bits`` container (int64 array)."""
    return np.asarray(clip_bits(shift_round(np.asarray(v, np.int64), q_from - q_to), bits))


def code_of(v: float, q: int, bits: int) -> int:
    """The saturated code of the real ``v`` at ``q`` (``±inf`` saturate)."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if v == float("-inf"):
        return lo
    if v == float("inf"):
        return hi
    return int(min(hi, max(lo, round_half_up(float(v) * 2.0**q))))


def exp_neg_q15(d: np.ndarray, q: int) -> np.ndarray:
    """``round(2^15 · e^(-d·2^-q))`` for integer ``d >= 0``, with integers only (int64).

    ``u = rnorm(d · LOG2E_Q15, q)`` is ``d·2^-q·log2(e)`` in Q15: ``k = u >> 15`` whole halvings
    and a fraction ``f = u & 0x7FFF``; ``2^-f`` comes from :data:`EXP2_TABLE` (Q30) interpolated
    linearly between entries ``f >> 7`` and ``(f >> 7) + 1``, then ``rnorm(·, 15 + k)`` gives Q15
    (0 once the shift passes 62). The generated C repeats these integer steps.
    """
    d64 = np.asarray(d, dtype=np.int64)
    u = np.asarray(rnorm(d64 * LOG2E_Q15, int(q)))
    k = u >> 15
    f = u & 0x7FFF
    i = f >> 7
    lo, hi = EXP2_TABLE[i], EXP2_TABLE[i + 1]
    e30 = lo - np.asarray(rnorm((lo - hi) * (f & 127), 7))
    sh = np.minimum(15 + k, 62)
    out = np.asarray(rnorm(e30, sh))
    return np.where(15 + k > 62, 0, out)


@dataclass
class Pow2Context(QuantContext):
    """A :class:`QuantContext` plus what POW2 needs: the container width and observed ranges.

    ``out_range`` is the range a conv / linear layer's accumulator budget is sized from: the
    observed range of the node's output joined with its accumulator's, when calibration recorded
    it (:func:`nnshell.quant.stats.acc_key`); ``ranges`` holds every activation tensor's range.
    ``w_cut``, when set, is the number of weight bits the budget took the first time the layer
    was quantized, before the input's share was moved onto the producer's output Q: the layer is
    then quantized again with that share fixed (NNTool does not quantize the layer again).
    """

    bits: int = 16
    out_range: tuple[float, float] = (float("nan"), float("nan"))
    ranges: dict[str, tuple[float, float]] | None = None
    #: The graph node named in messages (a fusion's name while its head part is quantized).
    layer: str = ""
    w_cut: int | None = None


def q_in(ctx: QuantContext, idx: int = 0) -> int:
    """``q`` of activation input ``idx`` of the node (its qtype must exist)."""
    qt = ctx.in_q[idx]
    if qt is None:
        raise QuantizationError(f"{ctx.node.name}: input {idx} is not an activation")
    return q_of(qt)


__all__ = [
    "ACC_BUDGET",
    "MAX_PRECISION_LOSS",
    "Pow2Context",
    "clip_bits",
    "code_of",
    "exp_neg_q15",
    "int_bits",
    "pow2_qtype",
    "q_from_range",
    "q_in",
    "q_of",
    "qmn",
    "requant",
    "shift_round",
]
