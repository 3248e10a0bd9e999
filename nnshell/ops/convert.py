"""FloatConvert: the conversion layer between an integer and a float layer (mixed graphs).

``qtune`` can make some layers float and leave others integer (docs/FLOAT16.md). Where an
integer tensor feeds a float layer, a ``to="float"`` node stores its real value in the float
type: ``x = float32(q - Z) * float32(S)`` (one float32 multiply), rounded to nearest even when
stored. Where a float tensor feeds an integer layer, a ``to="int"`` node quantizes it:
``q = clip(floor(x * float32(1/S) + 0.5) + Z)`` with the multiply and the add in float32 — the
same operations in the executor and in ``nn_f_quantize`` / ``nn_f_dequantize``, so both give the
same codes. The nodes are inserted by the mixed quantizer (``quant.float_q``) and removed again
before the graph is quantized anew; in float they are the identity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from nnshell.ir import Node
from nnshell.ops.registry import OpDef, register


@dataclass(frozen=True)
class ConvertAttrs:
    """``to``: "float" (integer codes -> float storage) or "int" (float -> integer codes)."""

    to: str = "float"


def is_conversion(node: Node) -> bool:
    """Whether ``node`` is a conversion layer (the quantizers strip and re-insert them)."""
    return node.op == FloatConvert.name


def _int_q(q: Any) -> tuple[np.float32, int, int, int]:
    return np.float32(float(q.scale)), int(q.zero_point), int(q.qmin), int(q.qmax)


def dequantize_f32(codes: np.ndarray, q: Any) -> np.ndarray:
    """``float32(q - Z) * float32(S)``."""
    s, z, _, _ = _int_q(q)
    return (np.asarray(codes).astype(np.int64) - z).astype(np.float32) * s


def quantize_f32(x: np.ndarray, q: Any) -> np.ndarray:
    """``clip(floor(x * float32(1/S) + 0.5f) + Z)`` in float32, as integer codes of ``q``."""
    _, z, lo, hi = _int_q(q)
    inv = np.float32(1.0 / float(q.scale))
    t = np.asarray(x, np.float32) * inv + np.float32(0.5)
    t = np.clip(t, np.float32(lo - z), np.float32(hi - z + 1))  # infinities and NaN-free
    t = np.nan_to_num(t, nan=0.0)
    return np.clip(np.floor(t).astype(np.int64) + z, lo, hi).astype(q.dtype)


@register
class FloatConvert(OpDef):
    """The identity in float; a representation change in a quantized mixed graph."""

    name = "FloatConvert"
    Attrs = ConvertAttrs
    q_passthrough = True

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        assert xs[0] is not None
        return [xs[0]]

    def run_convert(self, node: Node, nq: Any, x: np.ndarray) -> np.ndarray:
        """The conversion of stored values (``nq.in_q[0]`` -> ``nq.out_q``)."""
        from nnshell.ops._float import from_bits, to_bits

        if node.attrs.to == "float":
            return to_bits(dequantize_f32(x, nq.in_q[0]) + np.float32(0), nq.out_q.ftype)
        return quantize_f32(from_bits(x, nq.in_q[0].ftype), nq.out_q)

    def emit_c_float(self, node: Node, nq: Any, ctx: Any) -> str:
        """``nn_f_dequantize`` / ``nn_f_quantize`` over the tensor."""
        from nnshell.ops._float import FLOAT_TYPES

        x, y = node.inputs[0], node.outputs[0]
        n = ctx.size(y)
        if node.attrs.to == "float":
            q, t = nq.in_q[0], FLOAT_TYPES[nq.out_q.ftype]
            s = int(np.float32(float(q.scale)).view(np.int32))
            return (
                f"nn_f_dequantize(NN_A8({int(ctx.offsets[x])}), NN_A8({int(ctx.offsets[y])}), "
                f"{n}, {ctx.esize(x)}, {int(q.zero_point)}, {s}, {t});"
            )
        q, t = nq.out_q, FLOAT_TYPES[nq.in_q[0].ftype]
        inv = int(np.float32(1.0 / float(q.scale)).view(np.int32))
        return (
            f"nn_f_quantize(NN_A8({int(ctx.offsets[x])}), NN_A8({int(ctx.offsets[y])}), {n}, {t}, "
            f"{inv}, {int(q.zero_point)}, {int(q.qmin)}, {int(q.qmax)}, {ctx.esize(y)});"
        )
