"""Linear: the fully connected layer the kernels execute, ``y = W · flatten(x) + b``.

``W`` is ``(out_features, in_features)`` and the input is flattened in CHW order, so a Flatten
or Reshape in front of it is redundant (the data is already contiguous): the fusion passes turn
Gemm(transB) and MatMul+Add into Linear and drop that Flatten.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from nnshell.errors import QuantizationError, ShapeError
from nnshell.ir import Node, Shape, TensorInfo
from nnshell.ops import _pow2, _sq8
from nnshell.ops.registry import OpDef, register
from nnshell.quant.fixed_point import int_matmul_exact
from nnshell.quant.fixed_pow2 import Pow2Context
from nnshell.quant.qrecord import NodeQuant, QuantContext


def _quantize_linear(ctx: Any, quantize_weighted: Callable[..., NodeQuant]) -> NodeQuant:
    """The scheme's weighted-layer quantizer over the constant weights (fan-in: the input
    size), as ``conv._quantize_conv`` is for convolutions."""
    w = ctx.const(1)
    if w is None:
        raise QuantizationError(f"{ctx.node.name}: linear weights are not constant")
    return quantize_weighted(ctx, w, ctx.const(2), int(w.shape[1]))


@register
class Linear(OpDef):
    """Fully connected layer over the flattened (CHW) input."""

    name = "Linear"
    at_generator = "linear"
    at_const_nodes = True
    kind = "linear"
    weighted = True

    def onnx_nodes(self, node: Node, ins: list[str], outs: list[str], b: Any) -> bool:
        """ONNX export: Flatten then Gemm with the weights as stored (out x in, transB)."""
        flat = b.temp("flat")
        b.emit("Flatten", [ins[0]], [flat], f"{node.name}_flatten", axis=1)
        b.emit("Gemm", [flat, *ins[1:]], outs, node.name, transB=1)
        return True

    def infer(self, node: Node, ins: Sequence[TensorInfo | None]) -> list[Shape]:
        x, w = ins[0], ins[1]
        assert x is not None and w is not None
        if w.const is None or len(w.shape) != 2:
            raise ShapeError(f"{node.name}: Linear needs constant 2-D weights")
        if int(np.prod(x.shape[1:])) != w.shape[1]:
            raise ShapeError(
                f"{node.name}: input {x.dims} has {int(np.prod(x.shape[1:]))} values, "
                f"weights expect {w.shape[1]}"
            )
        return [(x.shape[0], w.shape[0])]

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        x, w = xs[0], xs[1]
        assert x is not None and w is not None
        y = x.reshape(x.shape[0], -1) @ w.T.astype(x.dtype, copy=False)
        b = xs[2] if len(xs) > 2 else None
        if b is not None:
            y = y + b.astype(y.dtype, copy=False)
        return [y]

    def run_float_t(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        """Float layer: float32 accumulated in the C runtime's order (``ops._float``)."""
        from nnshell.ops._float import linear_ordered

        assert xs[0] is not None and xs[1] is not None
        return [linear_ordered(xs[0], xs[1], xs[2] if len(xs) > 2 else None)]

    def macs(self, node: Node, ins: Sequence[TensorInfo | None], outs: Sequence[TensorInfo]) -> int:
        w = ins[1]
        assert w is not None
        return int(np.prod(w.shape))

    # SQ8: unpadded, so an asymmetric input is fine (its zero point goes into the bias).
    q_asym_output = True

    def quantize_sq8(self, ctx: QuantContext) -> NodeQuant:
        """Per-channel int8 weights, int32 bias, (M, N) per output (SQ8.md §3-4)."""
        return _quantize_linear(ctx, _sq8.quantize_weighted)

    def run_int(self, node: Node, nq: NodeQuant, *xs: np.ndarray | None) -> list[np.ndarray]:
        """``clip8(rnorm((Bq + off + Wq·Xq)·M, N))`` with an exact BLAS product."""
        assert xs[0] is not None
        return [_sq8.linear_int(xs[0], nq)]

    def emit_c(self, node: Node, nq: NodeQuant, ctx: Any) -> str:
        """``nn_linear``: ``clip8(rnorm((bias_total + Σ Wq·Xq)·M, N))`` per output."""
        c = nq.consts
        w = c["weights"]
        args = [
            ctx.const("weights", w, "int8_t"),
            ctx.const("bias", c["bias_total"], "int32_t"),
            ctx.const("mul", c["mul"], "int32_t"),
            ctx.const("shift", c["shift"], "int8_t"),
        ]
        x, y = ctx.ptr8(node.inputs[0]), ctx.ptr8(node.outputs[0])
        return f"nn_linear({x}, {y}, {w.shape[1]}, {w.shape[0]}, {', '.join(args)});"

    # -- POW2 (POW2.md "Conv / linear") ---------------------------------------------------------
    def quantize_pow2(self, ctx: Pow2Context) -> NodeQuant:
        """Weights at ``q_w``, biases at ``q_b`` and the shifts, under the accumulator budget."""
        return _quantize_linear(ctx, _pow2.quantize_weighted)

    def run_int_pow2(self, node: Node, nq: NodeQuant, *xs: np.ndarray | None) -> list[np.ndarray]:
        """``clip_bits(shift_round(W·rnorm(x, in_shift) + (b << bias_shift), out_shift))``."""
        x = xs[0]
        assert x is not None
        wq = nq.consts["weights"]
        xs2 = _pow2.pre_shift(x, nq).reshape(x.shape[0], -1)
        return [_pow2.weighted_output(int_matmul_exact(xs2, wq.reshape(wq.shape[0], -1).T), nq)]

    def emit_c_pow2(self, node: Node, nq: NodeQuant, ctx: Any) -> str:
        """``nn_p2_linear`` over the flattened input."""
        c = nq.consts
        w = c["weights"]
        x, y = node.inputs[0], node.outputs[0]
        es = _pow2.code_width(ctx, x, y)
        if w.dtype.itemsize != es:
            ctx.unsupported("weights and activations have different code widths")
        args = [
            ctx.const("weights", w, _pow2.CTYPE[es]),
            ctx.const("bias", c["biases"], _pow2.CTYPE[es]),
            int(c["in_shift"]),
            int(c["bias_shift"]),
            int(c["out_shift"]),
        ]
        call = f"nn_p2_linear({ctx.ptr(x)}, {ctx.ptr(y)}, {w.shape[1]}, {w.shape[0]}, {es}"
        return f"{call}, {', '.join(map(str, args))});"
