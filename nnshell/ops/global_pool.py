"""GlobalAveragePool and GlobalMaxPool: one value per channel over all spatial positions.

GlobalAveragePool: ``y[n, c] = Σ_p x[n, c, p] / P``; GlobalMaxPool: ``y[n, c] = max_p x[n, c, p]``.
The spatial dims are kept as 1s (``N×C×1×1`` for images), as ONNX specifies.

SQ8 (SQ8.md §5): the global average pool subtracts its input zero point from the sum (exact
integers) and requantizes the mean (carried with 7 extra fraction bits) to its own symmetric
output scale (``aquant --nntool_padding``: input symmetric, as NNTool); the global max pool keeps
its input's qtype. POW2: the global max keeps the input's Q (a shift if the output's differs);
the global average carries the mean with 7 extra fraction bits, then shifts it to the output Q.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from nnshell.errors import QuantizationError, ShapeError
from nnshell.ir import Node, Shape, TensorInfo
from nnshell.ops import _pow2
from nnshell.ops._sq8_ext import passthrough_quant, rescale_int
from nnshell.ops.registry import OpDef, register
from nnshell.quant.fixed_point import c_div_trunc, clip8, multiplier, rnorm
from nnshell.quant.fixed_pow2 import Pow2Context, q_in, q_of
from nnshell.quant.qrecord import NodeQuant, QuantContext


class _GlobalPool(OpDef):
    kind = "pool"

    def infer(self, node: Node, ins: Sequence[TensorInfo | None]) -> list[Shape]:
        x = ins[0]
        assert x is not None
        if len(x.shape) < 3:
            raise ShapeError(f"{node.name}: {self.name} needs an N×C×spatial input, got {x.shape}")
        return [(*x.shape[:2], *(1,) * (len(x.shape) - 2))]

    def macs(self, node: Node, ins: Sequence[TensorInfo | None], outs: Sequence[TensorInfo]) -> int:
        x = ins[0]
        assert x is not None
        return x.size


def _p2_global_call(fn: str, node: Node, nq: NodeQuant, ctx: Any) -> str:
    """The POW2 C call ``fn`` (``nn_p2_global_max`` / ``nn_p2_global_avg``) per channel."""
    x, y = node.inputs[0], node.outputs[0]
    es = _pow2.code_width(ctx, x, y)
    c, hw = ctx.c_hw(ctx.shape(x))
    return f"{fn}({ctx.ptr(x)}, {ctx.ptr(y)}, {c}, {hw}, {es}, {_pow2.out_shift(nq)});"


def _zin(nq: NodeQuant) -> int:
    """The SQ8 global average's input zero point (0 in states saved before it was kept)."""
    return int(nq.consts["zin"]) if "zin" in nq.consts else 0


@register
class GlobalAveragePool(_GlobalPool):
    """Mean over every spatial position (classifier heads)."""

    name = "GlobalAveragePool"
    at_generator = "global_pool"
    pool_reduce = "average"
    onnx_types = ("GlobalAveragePool",)

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        x = xs[0]
        assert x is not None
        axes = tuple(range(2, x.ndim))
        return [x.mean(axis=axes, keepdims=True, dtype=np.float32).astype(x.dtype, copy=False)]

    def run_float_t(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        """Float layer: ``acc += x`` over the positions in order, then ``acc / HW`` (float32,
        the order of ``nn_f_avgpool_global``)."""
        from nnshell.ops._float import global_mean_ordered

        assert xs[0] is not None
        return [global_mean_ordered(xs[0])]

    # -- SQ8 (SQ8.md §5) -------------------------------------------------------------------
    def q_padded_input(self, node: Node, idx: int) -> str | None:
        """The kernel subtracts the input zero point (any qtype works); NNTool averages codes
        with no correction and forces the input symmetric (``--nntool_padding``)."""
        return "global average pool" if idx == 0 else None

    def quantize_sq8(self, ctx: QuantContext) -> NodeQuant:
        """``(M, N)`` from ``m = Si/(So·128)`` (the mean carries 7 extra fraction bits) and the
        input zero point ``zin``; the output is symmetric."""
        qin = ctx.in_q[0]
        assert qin is not None
        if ctx.out_q.zero_point:
            raise QuantizationError(f"{ctx.node.name}: global average pool output needs Z = 0")
        m = float(qin.scale) / (float(ctx.out_q.scale) * 128)
        mm, nn = multiplier(m, 1, ctx.node.name)
        return NodeQuant(
            list(ctx.in_q),
            ctx.out_q,
            {
                "mul": np.array(mm, np.int64),
                "shift": np.array(nn, np.int64),
                "zin": np.array(qin.zero_point, np.int64),
            },
            {"m_real": m},
        )

    def run_int(self, node: Node, nq: NodeQuant, *xs: np.ndarray | None) -> list[np.ndarray]:
        """``t = trunc(((Σ_hw x − Zi·H·W) << 7) / (H·W))`` (C division), then
        ``clip8(rnorm(t·M, N))``: the sum of ``x − Zi`` is exact, so is the mean's sign."""
        x = xs[0]
        assert x is not None
        axes = tuple(range(2, x.ndim))
        hw = int(np.prod(x.shape[2:]))
        s = x.astype(np.int64).sum(axis=axes, keepdims=True) - _zin(nq) * hw
        t = c_div_trunc(s * 128, np.int64(hw))
        y = clip8(rnorm(t * nq.consts["mul"], nq.consts["shift"]))
        return [np.asarray(y).astype(np.int8)]

    def emit_c(self, node: Node, nq: NodeQuant, ctx: Any) -> str:
        """``nn_global_avg``: ``clip8(rnorm(trunc(((Σ x − Zi·HW) << 7) / HW)·M, N))`` per
        channel."""
        x, y = node.inputs[0], node.outputs[0]
        c, hw = ctx.c_hw(ctx.shape(x))
        m, n = int(nq.consts["mul"]), int(nq.consts["shift"])
        return f"nn_global_avg({ctx.ptr8(x)}, {ctx.ptr8(y)}, {c}, {hw}, {_zin(nq)}, {m}, {n});"

    # -- POW2 ----------------------------------------------------------------------------------
    def quantize_pow2(self, ctx: Pow2Context) -> NodeQuant:
        """The mean carries 7 extra fraction bits: ``out_shift = q_in + 7 - q_out``."""
        return _pow2.base_nq(ctx, {"out_shift": _pow2.scalar(q_in(ctx) + 7 - q_of(ctx.out_q))})

    def run_int_pow2(self, node: Node, nq: NodeQuant, *xs: np.ndarray | None) -> list[np.ndarray]:
        """``t = trunc((Σ_hw x << 7) / HW)`` (C division), then
        ``clip_bits(shift_round(t, out_shift))``."""
        x = xs[0]
        assert x is not None
        hw = int(np.prod(x.shape[2:]))
        s = x.astype(np.int64).sum(axis=tuple(range(2, x.ndim)), keepdims=True)
        return [_pow2.to_out(c_div_trunc(s * 128, np.int64(hw)), nq)]

    def emit_c_pow2(self, node: Node, nq: NodeQuant, ctx: Any) -> str:
        """``nn_p2_global_avg`` per channel."""
        return _p2_global_call("nn_p2_global_avg", node, nq, ctx)


@register
class GlobalMaxPool(_GlobalPool):
    """Maximum over every spatial position."""

    name = "GlobalMaxPool"
    at_generator = "global_pool"
    pool_reduce = "max"
    onnx_types = ("GlobalMaxPool",)

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        x = xs[0]
        assert x is not None
        return [x.max(axis=tuple(range(2, x.ndim)), keepdims=True)]

    # SQ8: the output keeps the input's qtype (integer max).
    q_passthrough = True

    def quantize_sq8(self, ctx: QuantContext) -> NodeQuant:
        """No parameters, unless a consumer changed the output qtype (then a rescale)."""
        return passthrough_quant(ctx)

    def run_int(self, node: Node, nq: NodeQuant, *xs: np.ndarray | None) -> list[np.ndarray]:
        """Integer max over every spatial position."""
        x = xs[0]
        assert x is not None
        return [rescale_int(x.max(axis=tuple(range(2, x.ndim)), keepdims=True), nq.consts)]

    def emit_c(self, node: Node, nq: NodeQuant, ctx: Any) -> str:
        """``nn_global_max``, then the rescale a consumer may have given the output."""
        x, y = node.inputs[0], node.outputs[0]
        c, hw = ctx.c_hw(ctx.shape(x))
        call = f"nn_global_max({ctx.ptr8(x)}, {ctx.ptr8(y)}, {c}, {hw});"
        return call + ctx.rescale(nq.consts, y)

    # -- POW2 ----------------------------------------------------------------------------------
    def quantize_pow2(self, ctx: Pow2Context) -> NodeQuant:
        """No parameters, an ``out_shift = q_in - q_out`` when the output has its own Q."""
        return _pow2.passthrough_quant(ctx)

    def run_int_pow2(self, node: Node, nq: NodeQuant, *xs: np.ndarray | None) -> list[np.ndarray]:
        """``clip_bits(shift_round(max_hw x, out_shift))``."""
        x = xs[0]
        assert x is not None
        y = x.max(axis=tuple(range(2, x.ndim)), keepdims=True).astype(np.int64)
        return [_pow2.to_out(y, nq)]

    def emit_c_pow2(self, node: Node, nq: NodeQuant, ctx: Any) -> str:
        """``nn_p2_global_max`` per channel."""
        return _p2_global_call("nn_p2_global_max", node, nq, ctx)
