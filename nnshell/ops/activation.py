"""Pointwise activations (shape unchanged, batch-agnostic).

- Clip: ``y = min(max(x, lo), hi)`` (attributes before opset 11, constant inputs from 11).
- LeakyRelu: ``y = x if x >= 0 else alpha·x`` (alpha 0.01).
- PRelu: ``y = x if x >= 0 else slope·x`` (slope broadcast to x, one per channel typically).
- Sigmoid: ``y = 1 / (1 + e^-x)``; Tanh: ``y = tanh(x)``.
- HardSigmoid: ``y = max(0, min(1, alpha·x + beta))`` (alpha 0.2, beta 0.5).
- HardSwish: ``y = x · max(0, min(1, x/6 + 1/2))``.
- Elu: ``y = x if x > 0 else alpha·(e^x - 1)``;
  Selu: ``y = gamma·(x if x > 0 else alpha·(e^x - 1))``.
- Softplus: ``y = ln(1 + e^x)``; Softsign: ``y = x / (1 + |x|)``.

Every kernel computes in the input dtype (float32) so results match onnxruntime to rounding.

SQ8 (SQ8.md §5-§6): Clip keeps its input's qtype and clamps codes. Sigmoid, Tanh and
HardSigmoid take a symmetric input and give int8 codes at the fixed scale ``1/127``; they, and
LeakyRelu / HardSwish (whose output qtype comes from their own statistics), are 256-entry tables
indexed by the input code, built at quantize time from the real function:
``T[c + 128] = clip8(round_half_up(f((c - Zi)·Si)/So) + Zo)`` — a lookup, identical in C.

POW2 (POW2.md): Clip clamps codes at the input's Q, LeakyRelu computes ``rnorm(x·A, 15)`` with a
Q15 slope; Sigmoid and Tanh compute the integer exp ``E(d)`` (no table) and give Q15 (16-bit) or
Q7 (8-bit) codes. The other activations have no POW2 kernel.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nnshell.errors import QuantizationError, ShapeError
from nnshell.ir import Node, Shape, TensorInfo
from nnshell.ops import _pow2
from nnshell.ops._batching import opset_of
from nnshell.ops._sq8_ext import (
    activation_code,
    build_table,
    passthrough_quant,
    rescale_int,
    table_int,
)
from nnshell.ops.fused_act import SQ8, FusedAct, act_node
from nnshell.ops.registry import OpDef, register
from nnshell.quant.fixed_point import QType, qtype_from_range, rnorm, round_half_up
from nnshell.quant.fixed_pow2 import (
    Pow2Context,
    code_of,
    exp_neg_q15,
    q_from_range,
    q_in,
    q_of,
    shift_round,
)
from nnshell.quant.qrecord import NodeQuant, QuantContext

#: SQ8 §5: the fixed output qtype of Sigmoid / Tanh (and HardSigmoid): int8 at scale 1/127.
UNIT_QTYPE = QType(scale=1.0 / 127, zero_point=0, symmetric=True, forced_by="unit-range output")


class _Activation(FusedAct, OpDef):
    kind = "activation"


class _TableActivation(_Activation):
    """A pointwise activation quantized as a 256-entry table of the input code (SQ8 §5)."""

    #: Why the input must be symmetric (SQ8.md asks it of sigmoid / tanh), or None.
    q_sym_reason: str | None = None
    #: The fixed output qtype, or None when the output qtype comes from its statistics.
    q_fixed_out: QType | None = None

    def q_symmetric_input(self, node: Node, idx: int) -> str | None:
        """SQ8 §5 forces the input of sigmoid / tanh symmetric (the table would not need it)."""
        return self.q_sym_reason if idx == 0 else None

    def q_output_qtype(self, node: Node, in_q: list[QType | None]) -> QType | None:
        """``S = 1/127`` symmetric for the unit-range functions; None for the others."""
        return self.q_fixed_out

    def table_fn(self, node: Node, x: np.ndarray) -> np.ndarray:
        """The real function, in float64, on real input values."""
        return self.run_float(node, x)[0]

    def quantize_sq8(self, ctx: QuantContext) -> NodeQuant:
        """``T[c + 128] = clip8(round_half_up(f((c - Zi)·Si)/So) + Zo)`` for c = -128..127."""
        qin = ctx.in_q[0]
        assert qin is not None
        table = build_table(lambda v: self.table_fn(ctx.node, v), qin, ctx.out_q)
        return NodeQuant(list(ctx.in_q), ctx.out_q, {"table": table})

    def run_int(self, node: Node, nq: NodeQuant, *xs: np.ndarray | None) -> list[np.ndarray]:
        """``y = T[x + 128]``."""
        assert xs[0] is not None
        return [table_int(xs[0], nq.consts["table"])]

    def emit_c(self, node: Node, nq: NodeQuant, ctx: Any) -> str:
        """``nn_table``: ``y = T[x + 128]``."""
        x, y = node.inputs[0], node.outputs[0]
        table = ctx.const("table", nq.consts["table"], "int8_t")
        return f"nn_table({ctx.ptr8(x)}, {ctx.ptr8(y)}, {ctx.size(y)}, {table});"


class _FunctionActivation(_TableActivation):
    """A non-scale-preserving activation fusable in both schemes (docs/activations.md).

    Inside a fused layer the head requantizes to an intermediate format chosen from the
    function's own input range (``sat_range``: where it saturates or stops mattering; the
    unbounded positive side of HardSwish / Swish follows the fused output's range), because no
    calibration statistic sees the pre-activation tensor of a fusion. SQ8: a 256-entry table
    from the intermediate codes to the output codes. POW2: :meth:`pow2_fn`, integer only.
    """

    #: ``(lo, hi)`` real input range the intermediate format must cover (None: per attrs).
    sat: tuple[float, float] = (-8.0, 8.0)
    #: Whether the positive side is unbounded (HardSwish, Swish: y ≈ x for large x).
    follows_output: bool = False
    #: The ``nn_p2_act_t`` kind of the POW2 kernel.
    p2_kind: str = ""

    def sat_range(self, attrs: Any) -> tuple[float, float]:
        """The real input range the intermediate format covers."""
        return self.sat

    # -- SQ8 --
    def fused_sq8_mid(self, attrs: Any, out_q: QType, asym: bool = False) -> QType | None:
        """Symmetric int8 over ``max(|lo|, hi)``; for the unbounded functions ``hi`` grows to
        the output's top real value and, when the head can take a zero point (``asym``), the
        int8 spans ``[lo, hi]`` asymmetrically: HardSwish's ``[-3, hi]`` with ``hi`` ≫ 3 then
        gets about twice the resolution of ``[-hi, hi]``, whose negative half only held values
        the function maps to 0 (issue 17: cls SQ8 10.8 → 13.2 dB)."""
        lo, hi = self.sat_range(attrs)
        if self.follows_output:
            hi = max(hi, (127 - out_q.zero_point) * float(out_q.scale))
            if asym:
                return qtype_from_range(lo, hi, False, forced_by="fused activation")
        return QType(scale=max(-lo, hi) / 127.0, zero_point=0, forced_by="fused activation")

    def fused_table(self, attrs: Any, in_q: QType, out_q: QType) -> np.ndarray:
        """The 256-entry int8 table from ``in_q`` codes to ``out_q`` codes."""
        return build_table(lambda v: self.table_fn(act_node(self.name, attrs), v), in_q, out_q)

    def fused_sq8_int(
        self, attrs: Any, y: np.ndarray, in_q: QType, out_q: QType, name: str
    ) -> np.ndarray:
        """``T[y + 128]``."""
        return table_int(y, self.fused_table(attrs, in_q, out_q)).astype(np.int64)

    def fused_sq8_row(self, attrs: Any, in_q: QType, out_q: QType, ctx: Any) -> list[Any]:
        """``NN_ACT_TABLE`` with the table as a constant array."""
        table = ctx.const("act_table", self.fused_table(attrs, in_q, out_q), "int8_t")
        return ["NN_ACT_TABLE", 0, 0, 0, table]

    # -- POW2 --
    def fused_pow2_mid(self, attrs: Any, q_out: int, bits: int) -> int | None:
        """The Q covering :meth:`sat_range` (and the output's range for unbounded functions)."""
        lo, hi = self.sat_range(attrs)
        q = q_from_range(lo, hi, bits, f"{self.name} input")
        return min(q, q_out) if self.follows_output else q

    def pow2_fn(self, attrs: Any, x: np.ndarray, q_in: int, q_out: int) -> np.ndarray:
        """The integer kernel: int64 codes at ``q_in`` to int64 codes at ``q_out``."""
        raise NotImplementedError

    def pow2_params(self, attrs: Any) -> tuple[int, int]:
        """The ``alpha`` / ``beta`` fields of the C row."""
        return 0, 0

    def fused_pow2_int(
        self, attrs: Any, y: np.ndarray, q_in: int, q_out: int, bits: int, name: str
    ) -> np.ndarray:
        """:meth:`pow2_fn` on the codes."""
        return self.pow2_fn(attrs, np.asarray(y, np.int64), q_in, q_out)

    def fused_pow2_row(self, attrs: Any, q_in: int, q_out: int, bits: int) -> list[Any]:
        """``[kind, q_in, q_out, alpha, beta]``."""
        return [self.p2_kind, q_in, q_out, *self.pow2_params(attrs)]

    def quantize_pow2(self, ctx: Pow2Context) -> NodeQuant:
        """No parameters: the input's Q in ``info``, the output Q from its own range."""
        q_in(ctx)
        return _pow2.base_nq(ctx)

    def run_int_pow2(self, node: Node, nq: NodeQuant, *xs: np.ndarray | None) -> list[np.ndarray]:
        """:meth:`pow2_fn` from Q``q_in`` to Q``q_out``, saturated to the container."""
        assert xs[0] is not None
        qi, qo = int(nq.info["q_in"][0]), q_of(nq.out_q)
        return [_pow2.store(self.pow2_fn(node.attrs, xs[0].astype(np.int64), qi, qo), nq)]

    def emit_c_pow2(self, node: Node, nq: NodeQuant, ctx: Any) -> str:
        """``nn_p2_act`` with this activation's row."""
        qi, qo = int(nq.info["q_in"][0]), q_of(nq.out_q)
        return _pow2.act_call(ctx, [self.fused_pow2_row(node.attrs, qi, qo, nq.out_q.bits)], nq)

    def fused_explain(self, attrs: Any, scheme: str) -> str:
        """The intermediate format and the kernel."""
        lo, hi = self.sat_range(attrs)
        top = " (up to the output's range)" if self.follows_output else ""
        if scheme == SQ8:
            return (
                f"{self.name}: head requantized to symmetric int8 over [{lo:g}, {hi:g}]{top}, "
                "then a 256-entry table to the output codes"
            )
        return (
            f"{self.name}: head shifted to the Q of [{lo:g}, {hi:g}]{top}, then integer "
            f"{self.name.lower()} ({self.p2_kind}) to the output Q"
        )


def sigmoid_q15(x: np.ndarray, q: int) -> np.ndarray:
    """Q15 of ``sigmoid(x·2^-q)``: ``p = 2^30 / (2^15 + E(|x|))``, ``2^15 - p`` for ``x < 0``."""
    e = exp_neg_q15(np.abs(x), q)
    p = (1 << 30) // (32768 + e)
    return np.where(x >= 0, p, 32768 - p)


def tanh_abs_q15(x: np.ndarray, q: int) -> np.ndarray:
    """Q15 of ``tanh|x·2^-q|``: ``((2^15 - E(2|x|)) << 15) / (2^15 + E(2|x|))``."""
    e = exp_neg_q15(2 * np.abs(x), q)
    return ((32768 - e) << 15) // (32768 + e)


def _f(x: np.ndarray, v: float) -> np.ndarray:
    """Return ``v`` as a scalar of the dtype of ``x`` (keeps float32 math in float32)."""
    return np.asarray(v, dtype=x.dtype)


@dataclass(frozen=True)
class ClipAttrs:
    """Clip bounds of opset < 11 (from 11 they are inputs)."""

    min: float = float("-inf")
    max: float = float("inf")


def relun_bound(lo: float, hi: float) -> tuple[float, float] | None:
    """``(0, hi)`` when ``Clip(lo, hi)`` is a ReLU-N (lo 0, hi finite and positive), else None."""
    if lo == 0.0 and 0.0 < hi < float("inf"):
        return 0.0, hi
    return None


@register
class Clip(_Activation):
    """Clamp to [min, max]; ReLU6 is Clip(0, 6)."""

    name = "Clip"
    at_activation = "clip"
    onnx_types = ("Clip",)
    Attrs = ClipAttrs

    def onnx_nodes(self, node: Node, ins: list[str], outs: list[str], b: Any) -> bool:
        """ONNX export from opset 11: the bounds as constant inputs (older: attributes)."""
        if b.opset < 11 or not dataclasses.is_dataclass(node.attrs):
            return False
        a = node.attrs
        extra = [""] * 2
        if np.isfinite(a.min):
            extra[0] = b.const(np.array(a.min, np.float32), "min")
        if np.isfinite(a.max):
            extra[1] = b.const(np.array(a.max, np.float32), "max")
        b.emit("Clip", [ins[0], *(ins[1:] or extra)], outs, node.name)
        return True

    def infer(self, node: Node, ins: Sequence[TensorInfo | None]) -> list[Shape]:
        x = ins[0]
        assert x is not None
        for i in (1, 2):
            t = ins[i] if i < len(ins) else None
            if t is not None and (t.const is None or t.const.size != 1):
                raise ShapeError(f"{node.name}: Clip bounds must be constant scalars")
        return [x.shape]

    def bounds(self, node: Node, *xs: np.ndarray | None) -> tuple[float, float]:
        """Return the (min, max) bounds whichever form the node uses."""
        lo, hi = float(node.attrs.min), float(node.attrs.max)
        if len(xs) > 1 and xs[1] is not None:
            lo = float(np.asarray(xs[1]).reshape(-1)[0])
        if len(xs) > 2 and xs[2] is not None:
            hi = float(np.asarray(xs[2]).reshape(-1)[0])
        return lo, hi

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        x = xs[0]
        assert x is not None
        lo, hi = self.bounds(node, *xs)
        return [np.minimum(np.maximum(x, _f(x, lo)), _f(x, hi))]

    # SQ8 §6: the output keeps the input's qtype; the bounds become codes.
    q_passthrough = True

    def q_output_bound(self, node: Node, graph: Any) -> tuple[float, float] | None:
        """``[0, max]`` for a ReLU-N (``Clip(0, N)``, N finite): NNTool's range rule."""
        consts = [graph.tensors[i].const if i else None for i in node.inputs[1:3]]
        lo, hi = self.bounds(node, None, *consts)
        return relun_bound(lo, hi)

    def quantize_sq8(self, ctx: QuantContext) -> NodeQuant:
        """``lo_q = q(lo)``, ``hi_q = q(hi)`` with ``q(v) = clip8(round_half_up(v/S) + Z)``."""
        qin = ctx.in_q[0]
        assert qin is not None
        lo, hi = self.bounds(ctx.node, None, ctx.const(1), ctx.const(2))
        nq = passthrough_quant(ctx)
        nq.consts["lo"] = np.array(activation_code(lo, qin), np.int64)
        nq.consts["hi"] = np.array(activation_code(hi, qin), np.int64)
        return nq

    def run_int(self, node: Node, nq: NodeQuant, *xs: np.ndarray | None) -> list[np.ndarray]:
        """``min(max(x, lo_q), hi_q)`` on the codes (then the rescale, if any)."""
        x = xs[0]
        assert x is not None
        y = np.minimum(np.maximum(x, nq.consts["lo"]), nq.consts["hi"]).astype(np.int8)
        return [rescale_int(y, nq.consts)]

    def emit_c(self, node: Node, nq: NodeQuant, ctx: Any) -> str:
        """``nn_clamp`` to the code bounds, then the rescale if any."""
        x, y = node.inputs[0], node.outputs[0]
        lo, hi = int(nq.consts["lo"]), int(nq.consts["hi"])
        call = f"nn_clamp({ctx.ptr8(x)}, {ctx.ptr8(y)}, {ctx.size(y)}, {lo}, {hi});"
        return call + ctx.rescale(nq.consts, y)

    # POW2: the bounds become codes at the input Q; the output Q may differ (an ``out_shift``).
    def quantize_pow2(self, ctx: Pow2Context) -> NodeQuant:
        """``lo`` / ``hi`` codes of the bounds at ``q_in``, plus an ``out_shift`` if any."""
        lo, hi = self.bounds(ctx.node, None, ctx.const(1), ctx.const(2))
        qi = q_in(ctx)
        return _pow2.passthrough_quant(
            ctx,
            lo=_pow2.scalar(code_of(lo, qi, ctx.bits)),
            hi=_pow2.scalar(code_of(hi, qi, ctx.bits)),
        )

    def run_int_pow2(self, node: Node, nq: NodeQuant, *xs: np.ndarray | None) -> list[np.ndarray]:
        """``clip_bits(shift_round(clip(x, lo, hi), out_shift))``."""
        assert xs[0] is not None
        c = nq.consts
        return [_pow2.to_out(np.clip(xs[0].astype(np.int64), int(c["lo"]), int(c["hi"])), nq)]

    def emit_c_pow2(self, node: Node, nq: NodeQuant, ctx: Any) -> str:
        """``nn_p2_act`` clamping to ``[lo, hi]``, then the output shift."""
        c = nq.consts
        return _pow2.act_call(ctx, [["NN_ACT_CLAMP", int(c["lo"]), int(c["hi"]), 0]], nq)

    # -- fused (ops/fused_act.py) --
    at_kop = "KOP_RELUN"

    def fused_sq8_int(
        self, attrs: Any, y: np.ndarray, in_q: QType, out_q: QType, name: str
    ) -> np.ndarray:
        """``min(max(y, q(lo)), q(hi))`` (an infinite bound is -128 / 127)."""
        lo, hi = activation_code(attrs.min, out_q), activation_code(attrs.max, out_q)
        return np.minimum(np.maximum(y, lo), hi).astype(np.int64)

    def fused_sq8_row(self, attrs: Any, in_q: QType, out_q: QType, ctx: Any) -> list[Any]:
        """``NN_ACT_CLAMP`` to the code bounds."""
        lo, hi = activation_code(attrs.min, out_q), activation_code(attrs.max, out_q)
        return ["NN_ACT_CLAMP", lo, hi, 0, "NULL"]

    def fused_pow2_int(
        self, attrs: Any, y: np.ndarray, q_in: int, q_out: int, bits: int, name: str
    ) -> np.ndarray:
        """``clip(y, code(min), code(max))`` at the Q."""
        lo, hi = code_of(attrs.min, q_out, bits), code_of(attrs.max, q_out, bits)
        return np.clip(np.asarray(y, np.int64), lo, hi)

    def fused_pow2_row(self, attrs: Any, q_in: int, q_out: int, bits: int) -> list[Any]:
        """``NN_ACT_CLAMP`` to the code bounds."""
        lo, hi = code_of(attrs.min, q_out, bits), code_of(attrs.max, q_out, bits)
        return ["NN_ACT_CLAMP", lo, hi, 0, 0]

    def fused_explain(self, attrs: Any, scheme: str) -> str:
        """The bounds as codes of the output."""
        return f"Clip({float(attrs.min):g}, {float(attrs.max):g}): clamp to the bounds' codes"


@dataclass(frozen=True)
class AlphaAttrs:
    """LeakyRelu slope."""

    alpha: float = 0.01


@register
class LeakyRelu(_TableActivation):
    """Leaky rectifier."""

    name = "LeakyRelu"
    at_activation = "leaky"
    onnx_types = ("LeakyRelu",)
    Attrs = AlphaAttrs
    q_asym_output = True  # a table: any input and output zero point

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        x = xs[0]
        assert x is not None
        return [np.where(x >= 0, x, x * _f(x, node.attrs.alpha))]

    # POW2: not a table but ``rnorm(x·A, 15)`` with the Q15 slope ``A``.
    def quantize_pow2(self, ctx: Pow2Context) -> NodeQuant:
        """``alpha_q15 = round_half_up(alpha·2^15)``, plus an ``out_shift`` if any."""
        a = int(round_half_up(float(ctx.node.attrs.alpha) * 32768))
        return _pow2.passthrough_quant(ctx, alpha_q15=_pow2.scalar(a))

    def run_int_pow2(self, node: Node, nq: NodeQuant, *xs: np.ndarray | None) -> list[np.ndarray]:
        """``x >= 0 ? x : rnorm(x·alpha_q15, 15)``, then ``shift_round(·, out_shift)``."""
        assert xs[0] is not None
        x = xs[0].astype(np.int64)
        y = np.where(x >= 0, x, np.asarray(rnorm(x * int(nq.consts["alpha_q15"]), 15)))
        return [_pow2.to_out(y, nq)]

    def emit_c_pow2(self, node: Node, nq: NodeQuant, ctx: Any) -> str:
        """``nn_p2_act`` with the Q15 slope, then the output shift."""
        return _pow2.act_call(ctx, [["NN_ACT_LEAKY", 0, 0, int(nq.consts["alpha_q15"])]], nq)

    # -- fused (ops/fused_act.py): NNTool's Q7 leak on a symmetric output --
    at_kop = "KOP_LEAKYRELU"
    #: ``rnorm(y·A, 7)`` scales codes about 0: the fused output must be symmetric.
    fused_symmetric_out = True

    def fused_sq8_int(
        self, attrs: Any, y: np.ndarray, in_q: QType, out_q: QType, name: str
    ) -> np.ndarray:
        """``y >= 0 ? y : rnorm(y·A, 7)``, ``A = round_half_up(alpha·128)`` (0.1 → 13)."""
        if out_q.zero_point != 0:
            raise QuantizationError(f"{name}: LeakyRelu needs a symmetric output")
        a = int(round_half_up(float(attrs.alpha) * 128))
        y = np.asarray(y, np.int64)
        return np.where(y >= 0, y, np.asarray(rnorm(y * a, 7)))

    def fused_sq8_row(self, attrs: Any, in_q: QType, out_q: QType, ctx: Any) -> list[Any]:
        """``NN_ACT_LEAKY`` with the Q7 slope."""
        if out_q.zero_point != 0:
            ctx.unsupported("LeakyRelu inside a fused layer needs a symmetric output")
        return ["NN_ACT_LEAKY", 0, 0, int(round_half_up(float(attrs.alpha) * 128)), "NULL"]

    def fused_pow2_int(
        self, attrs: Any, y: np.ndarray, q_in: int, q_out: int, bits: int, name: str
    ) -> np.ndarray:
        """``y >= 0 ? y : rnorm(y·A, 15)`` with the Q15 slope."""
        a = int(round_half_up(float(attrs.alpha) * 32768))
        y = np.asarray(y, np.int64)
        return np.where(y >= 0, y, np.asarray(rnorm(y * a, 15)))

    def fused_pow2_row(self, attrs: Any, q_in: int, q_out: int, bits: int) -> list[Any]:
        """``NN_ACT_LEAKY`` with the Q15 slope."""
        return ["NN_ACT_LEAKY", 0, 0, int(round_half_up(float(attrs.alpha) * 32768)), 0]

    def fused_explain(self, attrs: Any, scheme: str) -> str:
        """The slope's fixed-point factor."""
        if scheme == SQ8:
            a = int(round_half_up(float(attrs.alpha) * 128))
            return f"LeakyRelu: negative codes times {a}/128 (Q7), symmetric output"
        a = int(round_half_up(float(attrs.alpha) * 32768))
        return f"LeakyRelu: negative codes times {a}/32768 (Q15)"


@register
class PRelu(_Activation):
    """Parametric rectifier: a learned slope broadcast (unidirectionally) to the input."""

    name = "PRelu"
    onnx_types = ("PRelu",)

    def infer(self, node: Node, ins: Sequence[TensorInfo | None]) -> list[Shape]:
        x, s = ins[0], ins[1]
        assert x is not None and s is not None
        if s.const is None:
            raise ShapeError(f"{node.name}: PRelu needs a constant slope")
        shape = s.shape
        if opset_of(node) < 7 and len(shape) == 1 and len(x.shape) > 2 and shape[0] == x.shape[1]:
            # opset 6 PyTorch exports: a 1-D slope is one value per channel (axis 1)
            shape = (shape[0],) + (1,) * (len(x.shape) - 2)
        node.meta["slope_shape"] = shape
        if len(shape) >= len(x.shape) and any(
            d != 1 for d in shape[: len(shape) - len(x.shape) + 1]
        ):
            raise ShapeError(f"{node.name}: PRelu slope {shape} would vary along the batch axis")
        try:
            out = np.broadcast_shapes(x.shape, shape)
        except ValueError:
            raise ShapeError(
                f"{node.name}: slope {shape} does not broadcast to {x.shape}"
            ) from None
        if tuple(out) != tuple(x.shape):
            raise ShapeError(f"{node.name}: slope {shape} does not broadcast to {x.shape}")
        return [x.shape]

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        x, s = xs[0], xs[1]
        assert x is not None and s is not None
        s = s.reshape(node.meta.get("slope_shape", s.shape)).astype(x.dtype, copy=False)
        return [np.where(x >= 0, x, x * s)]


def _pow2_unit_qtype(self: OpDef, node: Node, bits: int) -> Any:
    """A (-1, 1) output in POW2: Q15 in 16 bits, Q(bits-1) otherwise."""
    from nnshell.quant.fixed_pow2 import pow2_qtype

    q = 15 if bits == 16 else bits - 1
    return pow2_qtype(q, bits, f"{self.name.lower()} Q{q} output")


@register
class Sigmoid(_FunctionActivation):
    """Logistic function."""

    name = "Sigmoid"
    onnx_types = ("Sigmoid",)
    q_output_qtype_pow2 = _pow2_unit_qtype
    q_sym_reason = "sigmoid"
    q_fixed_out = UNIT_QTYPE
    at_kop = "KOP_SIGMOID"
    sat = (-8.0, 8.0)  # sigmoid(8) = 1 - 3.4e-4: the top code at 1/127
    p2_kind = "NN_ACT_SIGMOID"

    def pow2_fn(self, attrs: Any, x: np.ndarray, q_in: int, q_out: int) -> np.ndarray:
        """``shift_round(sigmoid_q15(x), 15 - q_out)`` (the standalone kernel's integers)."""
        return np.asarray(shift_round(sigmoid_q15(x, q_in), 15 - q_out))

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        x = xs[0]
        assert x is not None
        # split by sign so e^x never overflows
        e = np.exp(-np.abs(x))
        one = _f(x, 1.0)
        return [np.where(x >= 0, one / (one + e), e / (one + e))]

    # POW2: computed with the integer exp ``E(d) = Q15 of e^-d`` (no table); the quantizer is
    # the base one, the Q15 (16-bit) or Q7 (8-bit) output coming from ``q_output_qtype_pow2``.
    def run_int_pow2(self, node: Node, nq: NodeQuant, *xs: np.ndarray | None) -> list[np.ndarray]:
        """``p = 2^30 / (2^15 + E(|x|))`` (Q15 of ``1/(1+e^-|x|)``), ``2^15 - p`` for ``x < 0``."""
        x = xs[0]
        assert x is not None
        xi = x.astype(np.int64)
        e = exp_neg_q15(np.abs(xi), int(nq.info["q_in"][0]))
        p = (1 << 30) // (32768 + e)
        return [_pow2.unit_out(np.where(xi >= 0, p, 32768 - p), nq)]

    def emit_c_pow2(self, node: Node, nq: NodeQuant, ctx: Any) -> str:
        """``nn_p2_sigmoid`` from Q``q_in`` to Q``q_out``."""
        return _unit_call("nn_p2_sigmoid", node, nq, ctx)


@register
class Tanh(_FunctionActivation):
    """Hyperbolic tangent."""

    name = "Tanh"
    onnx_types = ("Tanh",)
    q_output_qtype_pow2 = _pow2_unit_qtype
    q_sym_reason = "tanh"
    q_fixed_out = UNIT_QTYPE
    at_kop = "KOP_TANH"
    sat = (-4.0, 4.0)  # tanh(4) = 1 - 6.7e-4: the top code at 1/127
    p2_kind = "NN_ACT_TANH"

    def pow2_fn(self, attrs: Any, x: np.ndarray, q_in: int, q_out: int) -> np.ndarray:
        """``±shift_round(tanh_abs_q15(x), 15 - q_out)``, the sign applied after rounding."""
        y = np.asarray(shift_round(tanh_abs_q15(x, q_in), 15 - q_out))
        return np.where(x < 0, -y, y)

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        assert xs[0] is not None
        return [np.tanh(xs[0])]

    # POW2: computed with the integer exp ``E(d) = Q15 of e^-d`` (no table); the quantizer is
    # the base one, the Q15 (16-bit) or Q7 (8-bit) output coming from ``q_output_qtype_pow2``.
    def run_int_pow2(self, node: Node, nq: NodeQuant, *xs: np.ndarray | None) -> list[np.ndarray]:
        """``t = ((2^15 - E(2|x|)) << 15) / (2^15 + E(2|x|))`` (Q15 of ``tanh|x|``), sign of x."""
        x = xs[0]
        assert x is not None
        xi = x.astype(np.int64)
        e = exp_neg_q15(2 * np.abs(xi), int(nq.info["q_in"][0]))
        t = ((32768 - e) << 15) // (32768 + e)
        return [_pow2.unit_out(t, nq, negative=xi < 0)]

    def emit_c_pow2(self, node: Node, nq: NodeQuant, ctx: Any) -> str:
        """``nn_p2_tanh`` from Q``q_in`` to Q``q_out``."""
        return _unit_call("nn_p2_tanh", node, nq, ctx)


def _unit_call(fn: str, node: Node, nq: NodeQuant, ctx: Any) -> str:
    """The POW2 C call ``fn`` (``nn_p2_sigmoid`` / ``nn_p2_tanh``) from Q``q_in`` to Q``q_out``."""
    x, y = node.inputs[0], node.outputs[0]
    qi, qo = int(nq.info["q_in"][0]), q_of(nq.out_q)
    return (
        f"{fn}({ctx.ptr(x)}, {ctx.ptr(y)}, {ctx.size(y)}, {ctx.esize(x)}, {ctx.esize(y)}, "
        f"{qi}, {qo});"
    )


@dataclass(frozen=True)
class HardSigmoidAttrs:
    """HardSigmoid slope and offset."""

    alpha: float = 0.2
    beta: float = 0.5


@register
class HardSigmoid(_FunctionActivation):
    """Piecewise-linear sigmoid."""

    name = "HardSigmoid"
    onnx_types = ("HardSigmoid",)
    Attrs = HardSigmoidAttrs
    q_fixed_out = UNIT_QTYPE
    at_kop = "KOP_HSIGMOID"
    p2_kind = "NN_ACT_HSIGMOID"

    def sat_range(self, attrs: Any) -> tuple[float, float]:
        """Where ``alpha·x + beta`` reaches 0 and 1 (both signs of alpha), and 0 itself."""
        a, b = float(attrs.alpha), float(attrs.beta)
        if a == 0.0:
            return -1.0, 1.0
        ends = [-b / a, (1.0 - b) / a, 0.0]
        m = max(abs(v) for v in ends) or 1.0
        return -m, m

    def pow2_params(self, attrs: Any) -> tuple[int, int]:
        """``alpha`` and ``beta`` in Q15."""
        a = int(round_half_up(float(attrs.alpha) * 32768))
        return a, int(round_half_up(float(attrs.beta) * 32768))

    def pow2_fn(self, attrs: Any, x: np.ndarray, q_in: int, q_out: int) -> np.ndarray:
        """``t = clip(shift_round(x·A, q_in) + B, 0, 2^15)`` (Q15), then to ``q_out``."""
        a, b = self.pow2_params(attrs)
        t = np.clip(np.asarray(shift_round(x * a, q_in)) + b, 0, 32768)
        return np.asarray(shift_round(t, 15 - q_out))

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        x = xs[0]
        assert x is not None
        y = x * _f(x, node.attrs.alpha) + _f(x, node.attrs.beta)
        return [np.clip(y, _f(x, 0.0), _f(x, 1.0))]


@register
class HardSwish(_FunctionActivation):
    """x times the hard sigmoid with alpha 1/6 (MobileNetV3)."""

    name = "HardSwish"
    onnx_types = ("HardSwish",)
    q_asym_output = True
    at_kop = "KOP_HSWISH"
    monotonic = False
    sat = (-3.0, 3.0)  # 0 below -3, x above 3
    follows_output = True
    p2_kind = "NN_ACT_HSWISH"

    def pow2_fn(self, attrs: Any, x: np.ndarray, q_in: int, q_out: int) -> np.ndarray:
        """``t = clip(x + 3, 0, 6)`` at ``q_in``; ``shift_round(x·t·5461, 2·q_in + 15 - q_out)``
        (5461 = round(2^15/6))."""
        t = np.clip(x + (3 << q_in), 0, 6 << q_in)
        return np.asarray(shift_round(x * t * 5461, 2 * q_in + 15 - q_out))

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        x = xs[0]
        assert x is not None
        g = np.clip(x * _f(x, 1.0 / 6.0) + _f(x, 0.5), _f(x, 0.0), _f(x, 1.0))
        return [x * g]


@register
class Swish(_FunctionActivation):
    """``x·sigmoid(x)`` (SiLU; NNTool's "Swish"): what the pattern pass makes of
    ``Mul(x, Sigmoid(x))``. No ONNX op of its own before opset 22 (no ``onnx_types``)."""

    name = "Swish"
    onnx_types = ()
    q_asym_output = True
    at_kop = "KOP_SWISH"
    monotonic = False
    sat = (-8.0, 8.0)  # |swish(-8)| = 0.0027; x above 8
    follows_output = True
    p2_kind = "NN_ACT_SWISH"

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        x = xs[0]
        assert x is not None
        return [x * Sigmoid().run_float(node, x)[0]]

    def onnx_decompose(
        self, ins: list[str], outs: list[str], temp: Any
    ) -> list[tuple[str, list[str], list[str]]]:
        """ONNX has no Swish before opset 22: the exporter writes ``Mul(x, Sigmoid(x))``."""
        s = temp("sigmoid")
        return [("Sigmoid", [ins[0]], [s]), ("Mul", [ins[0], s], list(outs))]

    def pow2_fn(self, attrs: Any, x: np.ndarray, q_in: int, q_out: int) -> np.ndarray:
        """``shift_round(x·sigmoid_q15(x), q_in + 15 - q_out)``."""
        return np.asarray(shift_round(x * sigmoid_q15(x, q_in), q_in + 15 - q_out))


@dataclass(frozen=True)
class EluAttrs:
    """Elu scale of the negative part."""

    alpha: float = 1.0


@register
class Elu(_Activation):
    """Exponential linear unit."""

    name = "Elu"
    onnx_types = ("Elu",)
    Attrs = EluAttrs

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        x = xs[0]
        assert x is not None
        neg = _f(x, node.attrs.alpha) * np.expm1(np.minimum(x, _f(x, 0.0)))
        return [np.where(x > 0, x, neg)]


@dataclass(frozen=True)
class SeluAttrs:
    """Selu constants (the ONNX defaults are the self-normalising values)."""

    alpha: float = 1.67326319217681884765625
    gamma: float = 1.05070102214813232421875


@register
class Selu(_Activation):
    """Scaled exponential linear unit."""

    name = "Selu"
    onnx_types = ("Selu",)
    Attrs = SeluAttrs

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        x = xs[0]
        assert x is not None
        a, g = _f(x, node.attrs.alpha), _f(x, node.attrs.gamma)
        neg = a * np.exp(np.minimum(x, _f(x, 0.0))) - a
        return [g * np.where(x > 0, x, neg)]


@register
class Softplus(_Activation):
    """Smooth rectifier ``ln(1 + e^x)``, computed without overflow."""

    name = "Softplus"
    onnx_types = ("Softplus",)

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        x = xs[0]
        assert x is not None
        return [np.logaddexp(_f(x, 0.0), x)]


@register
class Softsign(_Activation):
    """``x / (1 + |x|)``."""

    name = "Softsign"
    onnx_types = ("Softsign",)

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        x = xs[0]
        assert x is not None
        return [x / (_f(x, 1.0) + np.abs(x))]
