"""SQ8 building blocks of the ops without a weight tensor (SQ8.md §5).

- **Rescale** a tensor of codes from one qtype to another (a passthrough op whose output qtype the
  quantizer changed, e.g. a max pool feeding a Concat that imposes a wider scale):
  ``out = clip8(rnorm((x - Zi)·M, N) + Zo)`` with ``(M, N)`` from ``m = Si/So``.
- **Per-channel affine** ``y[c] = s[c]·x[c] + t[c]`` (a BatchNormalization that could not be
  folded, a Mul / Add by a per-channel constant): a depthwise 1×1 convolution with ``K = 1``,
  ``acc[c] = x·Wq[c] + bias_total[c]`` then ``clip8(rnorm(acc·M[c], N[c]))``.
- **Tables**: a pointwise function of an int8 code is a 256-entry table built at quantize time
  from the real function, so Python and C index the same integers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from nnshell.errors import QuantizationError
from nnshell.ops import _sq8
from nnshell.quant.fixed_point import QType, clip8, multiplier, rnorm, round_half_up
from nnshell.quant.qrecord import NodeQuant, QuantContext

#: Every int8 code, in table order (index ``code + 128``).
CODES = np.arange(-128, 128, dtype=np.int64)


def same_qtype(a: QType | None, b: QType | None) -> bool:
    """True when two activation qtypes store reals identically (``forced_by`` is ignored)."""
    if a is None or b is None:
        return a is b
    return (float(a.scale), a.zero_point, a.bits) == (float(b.scale), b.zero_point, b.bits)


def rescale_params(qin: QType, qout: QType, layer: str) -> dict[str, np.ndarray]:
    """Constants of :func:`rescale_int`, or ``{}`` when the qtypes already agree.

    ``m = Si/So`` carried as ``(M, N)`` by the SQ8 §4 rule with ``K = 1`` (one int8 term).
    """
    if same_qtype(qin, qout):
        return {}
    mm, nn = multiplier(float(qin.scale) / float(qout.scale), 1, layer)
    return {
        "rescale_mul": np.array(mm, np.int64),
        "rescale_shift": np.array(nn, np.int64),
        "rescale_zin": np.array(qin.zero_point, np.int64),
        "rescale_zout": np.array(qout.zero_point, np.int64),
    }


def rescale_int(
    x: np.ndarray, consts: dict[str, np.ndarray], prefix: str = "rescale"
) -> np.ndarray:
    """``clip8(rnorm((x - Zi)·M, N) + Zo)`` as int8; ``x`` unchanged when no rescale is needed."""
    if f"{prefix}_mul" not in consts:
        return x
    v = x.astype(np.int64) - consts[f"{prefix}_zin"]
    y = rnorm(v * consts[f"{prefix}_mul"], consts[f"{prefix}_shift"]) + consts[f"{prefix}_zout"]
    return np.asarray(clip8(y)).astype(np.int8)


def passthrough_quant(ctx: QuantContext) -> NodeQuant:
    """NodeQuant of a data-moving op: no constants unless its output qtype was changed."""
    qin = ctx.in_q[0]
    assert qin is not None
    return NodeQuant(list(ctx.in_q), ctx.out_q, rescale_params(qin, ctx.out_q, ctx.node.name))


def per_channel_vector(v: np.ndarray, out_shape: tuple[int, ...], name: str) -> np.ndarray:
    """A constant broadcast against an ``N×C×...`` activation as one value per channel.

    Raises :class:`QuantizationError` when the constant varies along any other axis (the
    per-channel affine kernel cannot represent it).
    """
    arr = np.asarray(v, dtype=np.float64)
    rank = len(out_shape)
    if arr.ndim > rank:
        raise QuantizationError(f"{name}: constant of shape {arr.shape} has too many dimensions")
    full = arr.reshape((1,) * (rank - arr.ndim) + arr.shape)
    if rank < 2 or any(d != 1 for i, d in enumerate(full.shape) if i != 1):
        raise QuantizationError(
            f"{name}: constant of shape {arr.shape} is not one value per channel",
            "SQ8 quantizes an add / multiply by a constant only as a per-channel affine",
        )
    return np.broadcast_to(full.reshape(-1), (out_shape[1],)).copy()


def affine_quantize(ctx: QuantContext, scale: np.ndarray, shift: np.ndarray) -> NodeQuant:
    """``y[c] = scale[c]·x[c] + shift[c]`` as a depthwise 1×1 conv (``K = 1``, SQ8 §3-§4).

    Weights ``Wq[c] = round_half_up(scale[c]/Sw[c])`` with ``Sw[c] = |scale[c]|/127``, bias
    ``Bq[c] = round_half_up(shift[c]/(Si·Sw[c]))``, zero-point offsets and ``(M[c], N[c])`` from
    ``m[c] = Si·Sw[c]/So`` — exactly the conv quantizer, so an asymmetric input is fine (no
    padding; its zero point goes into the bias).
    """
    w = np.asarray(scale, np.float64).reshape(-1, 1)
    # K = 1: a per-tensor weight scale would throw away most channels' precision, and the weights
    # cost nothing, so the affine is always per channel.
    pc = dataclasses.replace(ctx, per_tensor=False)
    nq = _sq8.quantize_weighted(pc, w, np.asarray(shift, np.float64).reshape(-1), 1)
    nq.info["kernel"] = "channel affine (depthwise 1x1)"
    return nq


def affine_int(x: np.ndarray, nq: NodeQuant) -> np.ndarray:
    """``clip8(rnorm((x·Wq[c] + bias_total[c])·M[c], N[c]))`` with channels on axis 1, int8."""
    wq = nq.consts["weights"].astype(np.int64).reshape((1, -1) + (1,) * (x.ndim - 2))
    return _sq8.requant_output(x.astype(np.int64) * wq, nq).astype(np.int8)


def build_table(
    fn: Callable[[np.ndarray], np.ndarray], qin: QType, qout: QType, qmin: int = -128
) -> np.ndarray:
    """256-entry int8 table: ``T[c + 128] = clip(round_half_up(f((c - Zi)·Si)/So) + Zo)``.

    ``f`` is evaluated in float64 at quantize time; the kernel is ``T[x + 128]``, identical in C.
    """
    real = (CODES - qin.zero_point) * float(qin.scale)
    q = round_half_up(np.asarray(fn(real), np.float64) / float(qout.scale)) + qout.zero_point
    return np.clip(q, qmin, 127).astype(np.int8)


def table_int(x: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Look every int8 code up in a 256-entry table (``T[x + 128]``)."""
    return table[x.astype(np.int64) + 128]


def activation_code(v: float, q: QType) -> int:
    """The int8 code of the real ``v`` in qtype ``q``, saturated (``-inf``/``inf`` → -128/127)."""
    if v == float("-inf"):
        return -128
    if v == float("inf"):
        return 127
    return int(min(127, max(-128, round_half_up(v / float(q.scale)) + q.zero_point)))
