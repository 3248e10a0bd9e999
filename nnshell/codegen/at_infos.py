"""The ``Infos`` bytes of the AutoTiler SQ8 kernels, in the layout of the GAP SDK's
``CNN_Infos_SQ8.h``, and the activation operator (``KOP_*``) of a fused layer.

Every SQ8 generator reads its per-layer constants from one signed-char array, ``AT_INF_DIM``
(13) bytes long, at fixed offsets. A slot holds the value's own little-endian bytes from its first
byte on: an 8-bit code written into a 2-byte slot (``A0``/``B0``/``C0``) fills the first byte and
leaves the second 0, which is what the 8-bit kernels read (they load a ``signed char``) and what
NNTool writes. Unused slots are 0. Kernels reuse slots under other names::

    [0]     ACTSCALE     activation rescale multiplier (unsigned; also BIASL_SM of the softmax)
    [1]     ACTSCALEN    its shift
    [2..3]  A0           ReLU(M): the code of 0 (lower bound); LeakyReLU: the slope in Q7
    [4..5]  B0           ReLU-N: the code of N (upper bound); LeakyReLU: the output zero point
    [6..7]  C0           unused by the operators nnshell emits (0)
    [8]     BIASN        conv/linear: bias Q (0: the int32 bias is at the accumulator scale)
            IN1SCALE     MatAdd: multiplier bringing In1 to In2's scale
            GLOBAL_SUM_SCALE  global average pool: multiplier of the 7-bit-guarded mean
    [9]     SCALEN / IN1SCALEN / GLOBAL_SUM_SCALEN   the matching shifts
    [10]    OUTZEROPOINT / OUTSCALE   MatAdd: output multiplier
    [11]    OUTSCALEN    MatAdd: output shift
    [12]    PRENORM      conv/linear: pre-normalisation shift (0 in nnshell)

Activation operators (what NNTool 4.1 emits with its default ``AT_force_relu``): ReLU is
``KOP_RELUM`` when the output is asymmetric (``Z != 0``, the kernel computes ``max(A0, x)``)
and ``KOP_RELU`` when it is symmetric. A ReLU-N (``Clip(0, N)``) is the same operator when
``N``'s code is the top code 127 (the int8 saturation is then the clip: NNTool's ReLU-N range
rule, SQ8.md §2), otherwise ``KOP_RELUMN``/``KOP_RELUN`` with the bound in ``B0``. LeakyReLU is
``KOP_LEAKYRELU``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nnshell.errors import NnshellError
from nnshell.quant.fixed_point import QType, round_half_up

# Byte offsets of CNN_Infos_SQ8.h (GAP SDK tools/autotiler_v3/CNN_Libraries_SQ8).
AT_INF_BIASL_SM = 0
AT_INF_ACTSCALE = 0
AT_INF_ACTSCALEN = 1
AT_INF_A0 = 2
AT_INF_B0 = 4
AT_INF_C0 = 6
AT_INF_BIASN = 8
AT_INF_IN1SCALE = AT_INF_BIASN
AT_INF_GLOBAL_SUM_SCALE = AT_INF_BIASN
AT_INF_SCALEN = 9
AT_INF_IN1SCALEN = AT_INF_SCALEN
AT_INF_GLOBAL_SUM_SCALEN = AT_INF_SCALEN
AT_INF_OUTZEROPOINT = 10
AT_INF_OUTSCALE = AT_INF_OUTZEROPOINT
AT_INF_OUTSCALEN = 11
AT_INF_PRENORM = 12
AT_INF_DIM = 13

#: Bytes of one SQ8 Infos array.
INFOS_SIZE = AT_INF_DIM


class InfosError(NnshellError):
    """A value that the Infos layout cannot hold, or an activation it has no operator for."""


#: One slot value: (byte offset, integer value, byte width).
Slot = tuple[int, int, int]


def encode_infos(slots: Sequence[Slot], size: int = AT_INF_DIM) -> np.ndarray:
    """The ``size`` signed bytes holding each value little-endian at its offset (rest 0)."""
    out = np.zeros(size, dtype=np.uint8)
    for offset, value, width in slots:
        v = int(value)
        if not -(1 << (8 * width - 1)) <= v < (1 << (8 * width)):
            raise InfosError(f"Infos value {v} does not fit {width} byte(s) at offset {offset}")
        raw = (v & ((1 << (8 * width)) - 1)).to_bytes(width, "little")  # two's complement
        out[offset : offset + width] = list(raw)
    return out.view(np.int8)


@dataclass(frozen=True)
class ActInfo:
    """A fused activation: its operator, NNTool's name for it and its Infos slots."""

    kop: str
    name: str  # NNTool's capitalised activation name in kernel names: Relu, Relu6, Relun, Leaky
    slots: tuple[Slot, ...] = field(default_factory=tuple)


def _code(v: float, q: QType) -> int:
    """``clip8(round_half_up(v/S) + Z)``: the code of a real bound at the output qtype."""
    return int(min(127, max(-128, round_half_up(v / float(q.scale)) + q.zero_point)))


def _relu(zo: int, bound: int, name: str, kops: tuple[str, str]) -> ActInfo:
    kop = kops[0] if zo != 0 else kops[1]
    slots = ((AT_INF_ACTSCALE, 1, 1), (AT_INF_ACTSCALEN, 0, 1), (AT_INF_A0, zo, 1))
    return ActInfo(kop, name, (*slots, (AT_INF_B0, bound, 1), (AT_INF_C0, 0, 1)))


def sq8_activation(parts: Sequence[Any], q: QType, node_name: str) -> ActInfo | None:
    """The activation among the fused ``parts`` (None without one) at the output qtype ``q``.

    The activation keeps the scale (``ACTSCALE`` 1, ``ACTSCALEN`` 0): nnshell requantizes once,
    at the head, to the fused output qtype (SQ8.md §5).
    """
    from nnshell.ops.fused_act import is_activation

    acts = [p for p in parts if is_activation(p.op)]
    others = [
        p for p in parts if not is_activation(p.op) and p.op not in ("MaxPool", "AveragePool")
    ]
    if others:
        raise InfosError(
            f"{node_name}: {others[0].op} inside a fused layer has no AutoTiler SQ8 operator"
        )
    if len(acts) > 1:
        raise InfosError(f"{node_name}: more than one activation in one fused layer")
    if not acts:
        return None
    return activation_info(acts[0].op, acts[0].attrs, q, node_name)


def activation_info(op: str, attrs: Any, q: QType, node_name: str) -> ActInfo:
    """:func:`sq8_activation` of one activation ``op`` with its attributes."""
    zo = int(q.zero_point)
    if op == "Relu":
        return _relu(zo, 0, "Relu", ("KOP_RELUM", "KOP_RELU"))
    if op == "Clip":
        lo, hi = float(attrs.min), float(attrs.max)
        if lo != 0.0:
            raise InfosError(f"{node_name}: Clip({lo:g}, {hi:g}) is no ReLU/ReLU-N")
        if not math.isfinite(hi):
            return _relu(zo, 0, "Relu", ("KOP_RELUM", "KOP_RELU"))
        bound = _code(hi, q)
        name = "Relu6" if hi == 6.0 else "Relun"
        if bound == 127:  # the saturation is the clip: no bound needed
            return _relu(zo, bound, name, ("KOP_RELUM", "KOP_RELU"))
        return _relu(zo, bound, name, ("KOP_RELUMN", "KOP_RELUN"))
    if op == "LeakyRelu":
        slope = int(round_half_up(float(attrs.alpha) * 128))
        if not -128 <= slope <= 127:
            raise InfosError(f"{node_name}: LeakyRelu slope {float(attrs.alpha):g} exceeds Q7")
        slots = ((AT_INF_ACTSCALE, 1, 1), (AT_INF_ACTSCALEN, 0, 1), (AT_INF_A0, slope, 1))
        return ActInfo("KOP_LEAKYRELU", "Leaky", (*slots, (AT_INF_B0, zo, 1), (AT_INF_C0, 0, 1)))
    from nnshell.ops.fused_act import SQ8, fused_act

    act = fused_act(op, SQ8)
    kop = getattr(act, "at_kop", None)
    if act is not None and kop is not None:
        # docs/activations.md: nnshell's function activations run on an int8 intermediate
        # through a table; the AutoTiler operator computes from a Q12 int32 input: the
        # integers would differ, so the mapping is refused rather than silently inexact.
        raise InfosError(
            f"{node_name}: {op} ({kop}) is not mapped: nnshell's int8-table {op} is not the "
            "AutoTiler kernel's Q12 arithmetic (docs/activations.md)"
        )
    raise InfosError(f"{node_name}: {op} has no AutoTiler SQ8 activation operator")


def _scale(consts: Mapping[str, np.ndarray], mul: str, shift: str) -> tuple[int, int]:
    m = np.asarray(consts[mul]).reshape(-1)[0]
    return int(m), int(np.asarray(consts[shift]).reshape(-1)[0])


def rescale_of(consts: Mapping[str, np.ndarray], node_name: str) -> tuple[int, int]:
    """``(M, N)`` of a pass-through layer's output rescale (``(1, 0)``: none), which the kernels
    apply to the codes as ``ACTSCALE``/``ACTSCALEN``; only a symmetric rescale is expressible."""
    if "rescale_mul" not in consts:
        return 1, 0
    if int(consts.get("rescale_zin", 0)) or int(consts.get("rescale_zout", 0)):
        raise InfosError(
            f"{node_name}: its output rescale has zero points, which the SQ8 kernels' "
            "ACTSCALE (codes times M >> N) cannot apply"
        )
    return _scale(consts, "rescale_mul", "rescale_shift")


def conv_infos(act: ActInfo | None) -> np.ndarray:
    """Conv / linear: the activation's slots, ``BIASN`` 0 and ``PRENORM`` 0."""
    slots = list(act.slots) if act else []
    return encode_infos([*slots, (AT_INF_BIASN, 0, 1), (AT_INF_PRENORM, 0, 1)])


def pool_infos(act: ActInfo | None, rescale: tuple[int, int]) -> np.ndarray:
    """Pool (or a lone activation): the activation's slots, or the output rescale alone."""
    if act is None:
        return encode_infos([(AT_INF_ACTSCALE, rescale[0], 1), (AT_INF_ACTSCALEN, rescale[1], 1)])
    slots = [s for s in act.slots if s[0] not in (AT_INF_ACTSCALE, AT_INF_ACTSCALEN)]
    return encode_infos(
        [(AT_INF_ACTSCALE, rescale[0], 1), (AT_INF_ACTSCALEN, rescale[1], 1), *slots]
    )


def global_pool_infos(
    act: ActInfo | None, avg: bool, consts: Mapping[str, np.ndarray], node_name: str
) -> np.ndarray:
    """Global pool: an average pool's mean multiplier in ``GLOBAL_SUM_SCALE``/``N`` (its
    ``ACTSCALE``/``ACTSCALEN`` 0 without activation); a max pool's rescale in ``ACTSCALE``."""
    if not avg:
        return pool_infos(act, rescale_of(consts, node_name))
    m, n = _scale(consts, "mul", "shift")
    slots = list(act.slots) if act else [(AT_INF_ACTSCALE, 0, 1), (AT_INF_ACTSCALEN, 0, 1)]
    return encode_infos([*slots, (AT_INF_GLOBAL_SUM_SCALE, m, 1), (AT_INF_GLOBAL_SUM_SCALEN, n, 1)])


def matadd_infos(act: ActInfo | None, in1: tuple[int, int], out: tuple[int, int]) -> np.ndarray:
    """MatAdd: In1's multiplier to In2's scale (``IN1SCALE``/``N``) and the output one
    (``OUTSCALE``/``N``), after the activation's slots."""
    slots = list(act.slots) if act else []
    return encode_infos(
        [
            *slots,
            (AT_INF_IN1SCALE, in1[0], 1),
            (AT_INF_IN1SCALEN, in1[1], 1),
            (AT_INF_OUTSCALE, out[0], 1),
            (AT_INF_OUTSCALEN, out[1], 1),
        ]
    )


def softmax_infos(in_scale: float) -> np.ndarray:
    """SoftMax: ``BIASL_SM = 15 + ceil(log2 Si)`` as an unsigned byte (the input's Q15 shift)."""
    return encode_infos([(AT_INF_BIASL_SM, (15 + math.ceil(math.log2(in_scale))) % 256, 1)])


__all__ = [
    "AT_INF_DIM",
    "INFOS_SIZE",
    "ActInfo",
    "InfosError",
    "activation_info",
    "conv_infos",
    "encode_infos",
    "global_pool_infos",
    "matadd_infos",
    "pool_infos",
    "rescale_of",
    "softmax_infos",
    "sq8_activation",
]
