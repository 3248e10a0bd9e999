"""Relu: ``y = max(x, 0)``.

SQ8: the output keeps the input's qtype and the kernel is ``max(x, Zi)`` on the codes (the real
0 is the code ``Zi``). POW2: ``max(x, 0)`` on the codes, then the output's shift if its Q differs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nnshell.ir import Node
from nnshell.ops import _pow2
from nnshell.ops._sq8_ext import passthrough_quant, rescale_int
from nnshell.ops.fused_act import FusedAct
from nnshell.ops.registry import OpDef, register
from nnshell.quant.fixed_point import QType
from nnshell.quant.fixed_pow2 import Pow2Context
from nnshell.quant.qrecord import NodeQuant, QuantContext


@register
class Relu(FusedAct, OpDef):
    """Rectified linear unit."""

    name = "Relu"
    onnx_types = ("Relu",)
    kind = "activation"
    q_passthrough = True

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        assert xs[0] is not None
        return [np.maximum(xs[0], np.zeros((), xs[0].dtype))]

    def quantize_sq8(self, ctx: QuantContext) -> NodeQuant:
        """No parameters (plus a rescale if a consumer changed the output qtype)."""
        return passthrough_quant(ctx)

    def run_int(self, node: Node, nq: NodeQuant, *xs: np.ndarray | None) -> list[np.ndarray]:
        """``max(x, Zi)``, then the rescale if any (a monotonic map: the order is free)."""
        x = xs[0]
        assert x is not None
        qin = nq.in_q[0]
        assert qin is not None
        return [rescale_int(np.maximum(x, np.asarray(qin.zero_point, x.dtype)), nq.consts)]

    def emit_c(self, node: Node, nq: NodeQuant, ctx: Any) -> str:
        """``nn_clamp`` to ``[Zi, 127]`` (that is ``max(x, Zi)``), then the rescale if any."""
        x, y = node.inputs[0], node.outputs[0]
        qin = nq.in_q[0]
        assert qin is not None
        call = f"nn_clamp({ctx.ptr8(x)}, {ctx.ptr8(y)}, {ctx.size(y)}, {qin.zero_point}, 127);"
        return call + ctx.rescale(nq.consts, y)

    # -- POW2 ----------------------------------------------------------------------------------
    def quantize_pow2(self, ctx: Pow2Context) -> NodeQuant:
        """No parameters, an ``out_shift = q_in - q_out`` when the output has its own Q."""
        return _pow2.passthrough_quant(ctx)

    def run_int_pow2(self, node: Node, nq: NodeQuant, *xs: np.ndarray | None) -> list[np.ndarray]:
        """``clip_bits(shift_round(max(x, 0), out_shift))``."""
        assert xs[0] is not None
        return [_pow2.to_out(np.maximum(xs[0].astype(np.int64), 0), nq)]

    def emit_c_pow2(self, node: Node, nq: NodeQuant, ctx: Any) -> str:
        """``nn_p2_act`` clamping to ``[0, max code]``, then the output shift."""
        top = (1 << (nq.out_q.bits - 1)) - 1
        return _pow2.act_call(ctx, [["NN_ACT_CLAMP", 0, top, 0]], nq)

    # -- fused (ops/fused_act.py): scale-preserving, on the output's codes --
    at_kop = "KOP_RELU"

    def fused_sq8_int(
        self, attrs: Any, y: np.ndarray, in_q: QType, out_q: QType, name: str
    ) -> np.ndarray:
        """``max(y, Zo)`` (with ``Zo = -128`` the saturation already does it)."""
        return np.maximum(np.asarray(y, np.int64), out_q.zero_point)

    def fused_sq8_row(self, attrs: Any, in_q: QType, out_q: QType, ctx: Any) -> list[Any]:
        """``NN_ACT_CLAMP`` to ``[Zo, 127]``."""
        return ["NN_ACT_CLAMP", out_q.zero_point, 127, 0, "NULL"]

    def fused_pow2_int(
        self, attrs: Any, y: np.ndarray, q_in: int, q_out: int, bits: int, name: str
    ) -> np.ndarray:
        """``max(y, 0)``."""
        return np.maximum(np.asarray(y, np.int64), 0)

    def fused_pow2_row(self, attrs: Any, q_in: int, q_out: int, bits: int) -> list[Any]:
        """``NN_ACT_CLAMP`` to ``[0, max code]``."""
        return ["NN_ACT_CLAMP", 0, (1 << (bits - 1)) - 1, 0, 0]

    def fused_explain(self, attrs: Any, scheme: str) -> str:
        """The zero code."""
        return "Relu: max(code, zero point)" if scheme == "SQ8" else "Relu: max(code, 0)"
