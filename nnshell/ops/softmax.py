"""Softmax and LogSoftmax.

``softmax(x)_i = e^(x_i - m) / Σ_j e^(x_j - m)`` with ``m = max_j x_j``;
``logsoftmax(x)_i = x_i - m - ln Σ_j e^(x_j - m)``.
Before opset 13 the input is coerced to 2-D ``[Π d_<axis, Π d_>=axis]`` and the softmax runs
over the second dimension (default axis 1); from opset 13 it runs along ``axis`` only
(default -1). Either way axis 0 would normalise across the batch and is rejected.

SQ8 Softmax (LogSoftmax has no SQ8 kernel): symmetric int8 input, Q15 int16 output
(``S = 2^-15``), one integer algorithm shared by Python and C — see :meth:`Softmax.run_int`.
POW2 Softmax: the same Q15 int16 output from the integer exp ``E(d)`` (no table) — see
:meth:`Softmax.run_int_pow2`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nnshell.errors import QuantizationError
from nnshell.ir import Node, Shape, TensorInfo
from nnshell.ops import _pow2
from nnshell.ops._batching import norm_axis, opset_of, reject_batch_axis
from nnshell.ops.registry import OpDef, register
from nnshell.quant.fixed_point import QType, round_half_up
from nnshell.quant.fixed_pow2 import Pow2Context, exp_neg_q15, q_in
from nnshell.quant.qrecord import NodeQuant, QuantContext

#: SQ8 §5: the softmax output is Q15 in int16.
Q15 = QType(scale=2.0**-15, zero_point=0, bits=16, symmetric=True, forced_by="softmax Q15 output")


@dataclass(frozen=True)
class SoftmaxAttrs:
    """Softmax axis; None means the opset's default (1 before opset 13, -1 after)."""

    axis: int | None = None


def softmax_axis(node: Node, rank: int) -> tuple[int, bool]:
    """Return (normalised axis, whether the opset < 13 coerce-to-2-D rule applies)."""
    legacy = opset_of(node) < 13
    axis = node.attrs.axis
    if axis is None:
        axis = 1 if legacy else -1
    return norm_axis(axis, rank, node), legacy


def softmax_q15(
    x: np.ndarray, node: Node, exp_q15: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray:
    """The integer softmax of both schemes along the softmax axis (the float kernel's opset
    semantics): ``e_i = exp_q15(max_j x_j - x_i)`` (Q15 of ``e^-d``, int64), then
    ``y_i = min(32767, (e_i << 15) / Σ_j e_j)`` (C division; all terms positive), int16 Q15."""
    axis, legacy = softmax_axis(node, x.ndim)
    v = x.reshape(int(np.prod(x.shape[:axis])), -1) if legacy else x
    ax = 1 if legacy else axis
    xi = v.astype(np.int64)
    e = exp_q15(xi.max(axis=ax, keepdims=True) - xi)
    y = np.minimum(32767, (e << 15) // e.sum(axis=ax, keepdims=True))
    return np.asarray(y.reshape(x.shape).astype(np.int16))


def softmax_c_geometry(node: Node, shape: Sequence[int]) -> tuple[int, int, int]:
    """(outer, length, inner) of the C softmax kernels: the axis (and opset rule) of
    :func:`softmax_q15` over a row-major tensor of ``shape``."""
    axis, legacy = softmax_axis(node, len(shape))
    outer = int(np.prod(shape[:axis]))
    inner = 1 if legacy else int(np.prod(shape[axis + 1 :]))
    return outer, int(np.prod(shape)) // (outer * inner), inner


class _Softmax(OpDef):
    Attrs = SoftmaxAttrs
    kind = "activation"
    log = False

    def infer(self, node: Node, ins: Sequence[TensorInfo | None]) -> list[Shape]:
        x = ins[0]
        assert x is not None
        axis, _ = softmax_axis(node, len(x.shape))
        reject_batch_axis([axis], node, "along")
        return [x.shape]

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        x = xs[0]
        assert x is not None
        axis, legacy = softmax_axis(node, x.ndim)
        v = x.reshape(int(np.prod(x.shape[:axis])), -1) if legacy else x
        ax = 1 if legacy else axis
        z = v - v.max(axis=ax, keepdims=True)
        e = np.exp(z)
        s = e.sum(axis=ax, keepdims=True)
        y = z - np.log(s) if self.log else e / s
        return [y.reshape(x.shape).astype(x.dtype, copy=False)]


@register
class Softmax(_Softmax):
    """Normalised exponential (classifier heads)."""

    name = "Softmax"
    onnx_types = ("Softmax",)

    def q_output_qtype_pow2(self, node: Node, bits: int) -> Any:
        """Q15 int16 whatever the container width (POW2.md)."""
        from nnshell.quant.fixed_pow2 import pow2_qtype

        return pow2_qtype(15, 16, "softmax Q15 output")

    # -- float layers (docs/FLOAT16.md) --------------------------------------------------------
    def float_rows(self, node: Node, shape: Sequence[int]) -> tuple[int, int] | None:
        """(rows, n) when the softmax runs over contiguous runs of ``n`` values, else None."""
        axis, legacy = softmax_axis(node, len(shape))
        if not legacy and axis != len(shape) - 1:
            return None
        n = int(np.prod(shape[axis:]))
        return int(np.prod(shape)) // max(n, 1), n

    def run_float_t(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        """Float layer: ``nn_f_softmax``'s float32 operations (its own exp, ordered sum)."""
        from nnshell.ops._float import softmax_rows

        x = xs[0]
        assert x is not None
        rows = self.float_rows(node, x.shape)
        if rows is None:
            return super().run_float_t(node, *xs)
        return [softmax_rows(x.reshape(-1, rows[1])).reshape(x.shape)]

    # -- SQ8 -----------------------------------------------------------------------------------
    def q_symmetric_input(self, node: Node, idx: int) -> str | None:
        """The exp table is indexed by code differences; the input is symmetric (SQ8 §5)."""
        return "softmax" if idx == 0 else None

    def q_output_qtype(self, node: Node, in_q: list[QType | None]) -> QType:
        """Q15 int16: ``S = 2^-15``, zero point 0."""
        return Q15

    def quantize_sq8(self, ctx: QuantContext) -> NodeQuant:
        """The exp table ``E[d] = round_half_up(2^15·exp(-d·Si))`` for d = 0..255 (int32).

        Deviation from SQ8.md §5 (which rounds the input scale up to a power of two so a
        fixed-point exp can work on shifted codes): the table is built at quantize time from
        the input's actual scale ``Si``, so ``exp(-d·Si)`` is exact to the table's rounding and
        no power-of-two rounding of ``Si`` (which would waste up to one bit of input precision)
        is needed. C reads the same 256 int32 entries.
        """
        qin = ctx.in_q[0]
        assert qin is not None
        if qin.zero_point:
            raise QuantizationError(f"{ctx.node.name}: softmax needs a symmetric input")
        d = np.arange(256, dtype=np.float64)
        table = round_half_up(32768.0 * np.exp(-d * float(qin.scale))).astype(np.int32)
        return NodeQuant(list(ctx.in_q), ctx.out_q, {"exp_table": table})

    def run_int(self, node: Node, nq: NodeQuant, *xs: np.ndarray | None) -> list[np.ndarray]:
        """Integer softmax along the softmax axis (the float kernel's opset semantics)::

        d   = max_j x_j - x_i            (0..255)
        e_i = E[d]                       (int32, E[0] = 32768)
        s   = Σ_j e_j                    (int64, s >= 32768)
        y_i = min(32767, (e_i << 15) / s)   (C division; all terms positive)
        """
        x = xs[0]
        assert x is not None
        table = nq.consts["exp_table"].astype(np.int64)
        return [softmax_q15(x, node, lambda d: table[d])]

    def emit_c(self, node: Node, nq: NodeQuant, ctx: Any) -> str:
        """``nn_softmax`` over the axis (and opset rule) of :meth:`run_int`, Q15 output."""
        x, y = node.inputs[0], node.outputs[0]
        outer, length, inner = softmax_c_geometry(node, ctx.shape(x))
        table = ctx.const("exp_table", nq.consts["exp_table"], "int32_t")
        return f"nn_softmax({ctx.ptr8(x)}, {ctx.ptr(y)}, {outer}, {length}, {inner}, {table});"

    # -- POW2 ----------------------------------------------------------------------------------
    def quantize_pow2(self, ctx: Pow2Context) -> NodeQuant:
        """No parameters: Q15 int16 output, the input's Q in ``info``."""
        q_in(ctx)
        return _pow2.base_nq(ctx)

    def run_int_pow2(self, node: Node, nq: NodeQuant, *xs: np.ndarray | None) -> list[np.ndarray]:
        """``e_i = E(max - x_i)`` (Q15 integer exp), ``y_i = min(32767, (e_i << 15) / Σ e)``."""
        x = xs[0]
        assert x is not None
        q = int(nq.info["q_in"][0])
        return [softmax_q15(x, node, lambda d: exp_neg_q15(d, q))]

    def emit_c_pow2(self, node: Node, nq: NodeQuant, ctx: Any) -> str:
        """``nn_p2_softmax`` over the axis (and opset rule) of the executor, Q15 int16 output."""
        x, y = node.inputs[0], node.outputs[0]
        if ctx.esize(y) != 2:
            ctx.unsupported("the POW2 softmax writes int16 Q15 codes")
        outer, length, inner = softmax_c_geometry(node, ctx.shape(x))
        qi = int(nq.info["q_in"][0])
        return (
            f"nn_p2_softmax({ctx.ptr(x)}, {ctx.ptr(y)}, {outer}, {length}, {inner}, "
            f"{ctx.esize(x)}, {qi});"
        )


@register
class LogSoftmax(_Softmax):
    """Logarithm of the softmax, computed stably."""

    name = "LogSoftmax"
    onnx_types = ("LogSoftmax",)
    log = True
