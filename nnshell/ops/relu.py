"""Relu: ``y = max(x, 0)``.

SQ8: the output keeps the input's qtype and the kernel is ``max(x, Zi)`` on the codes (the real
0 is the code ``Zi``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nnshell.ir import Node
from nnshell.ops._sq8_ext import passthrough_quant, rescale_int
from nnshell.ops.registry import OpDef, register
from nnshell.qrecord import NodeQuant, QuantContext


@register
class Relu(OpDef):
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
