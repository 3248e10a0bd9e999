"""Fused: several layers executed as one kernel call (conv + pool + activation, ...).

A fused node reads the inputs of its first part (e.g. a Conv's input, weights and bias); every
later part is a one-input op (pool, activation) applied to the previous part's result in order.
Each hook composes the parts' own hooks, so a fusion adds no arithmetic of its own and its float
output equals the unfused graph's exactly; the SQ8 and POW2 hooks quantize the head at the
fusion's output scale / Q and run the later pools and scale-preserving activations on its codes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from nnshell.errors import QuantizationError
from nnshell.fixed_pow2 import Pow2Context, q_of
from nnshell.ir import Node, Shape, TensorInfo
from nnshell.ops import _pow2
from nnshell.ops._sq8 import activation_int, conv_int
from nnshell.ops.registry import OpDef, get_op, register
from nnshell.qrecord import NodeQuant, QuantContext


@dataclass(frozen=True)
class FusedPart:
    """One layer inside a fusion: its op, attributes and original node name."""

    op: str
    attrs: Any
    name: str
    meta: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class FusedAttrs:
    """The parts of a fusion in execution order and the fusion's NNTool-style kind."""

    parts: tuple[FusedPart, ...]
    fusion: str


def part_node(part: FusedPart, inputs: list[str], outputs: list[str]) -> Node:
    """Rebuild a stand-alone node for one part (used by the hooks and by quantization)."""
    return Node(part.name, part.op, inputs, outputs, part.attrs, dict(part.meta))


def _parts(node: Node) -> tuple[FusedPart, ...]:
    return node.attrs.parts  # type: ignore[no-any-return]


def _has_pool(parts: Sequence[FusedPart]) -> bool:
    return any(get_op(p.op).kind == "pool" for p in parts)


def _conv_chain_c(node: Node, nq: NodeQuant, ctx: Any, acts: Any) -> bool:
    """A conv head with at most one pool runs its whole chain in one C call (SQ8 ``nn_conv``,
    POW2 ``nn_p2_conv``): set ``ctx.tail`` to the pool descriptor over the conv's own output map
    and the activations before and after the pool (``acts``: the scheme's builder,
    ``ctx.acts`` or ``ctx.p2_acts``). False for any other fusion."""
    parts = _parts(node)
    tail = parts[1:]
    pools = [i for i, p in enumerate(tail) if get_op(p.op).kind == "pool"]
    if parts[0].op != "Conv" or len(pools) > 1:
        return False
    cut = pools[0] if pools else len(tail)
    pool = "NULL"
    if pools:
        c_pool = getattr(get_op(tail[cut].op), "c_pool", None)
        if c_pool is None:
            ctx.unsupported(f"{tail[cut].op} after a conv has no C kernel")
        conv_shape = (1, nq.consts["weights"].shape[0], *nq.info["geometry"][4])
        pool = c_pool(part_node(tail[cut], ["_"], ["_"]), conv_shape, ctx)
    pre = acts("pre", tail[:cut], nq.out_q)
    ctx.tail = (pool, pre, acts("post", tail[cut + 1 :], nq.out_q))
    return True


def op_label(node: Node) -> str:
    """How reports name a node's op: ``Conv+MaxPool+Relu`` for fusions."""
    if node.op == "Fused":
        return "+".join(p.op for p in node.attrs.parts)
    return node.op


#: Activations that keep their input's scale / Q, so they may follow the head of a fusion.
_SCALE_PRESERVING_ACTS = ("Relu", "Clip", "LeakyRelu")


@register
class Fused(OpDef):
    """A chain of layers run as one kernel."""

    name = "Fused"

    def infer(self, node: Node, ins: Sequence[TensorInfo | None]) -> list[Shape]:
        parts: tuple[FusedPart, ...] = node.attrs.parts
        first = parts[0]
        shape = get_op(first.op).infer(part_node(first, node.inputs, ["_"]), ins)[0]
        dtype = ins[0].dtype if ins[0] is not None else "float32"
        for p in parts[1:]:
            t = TensorInfo("_", shape, dtype)
            shape = get_op(p.op).infer(part_node(p, ["_"], ["_"]), [t])[0]
        return [shape]

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        parts: tuple[FusedPart, ...] = node.attrs.parts
        y = get_op(parts[0].op).run_float(part_node(parts[0], node.inputs, ["_"]), *xs)[0]
        for p in parts[1:]:
            y = get_op(p.op).run_float(part_node(p, ["_"], ["_"]), y)[0]
        return [y]

    def macs(self, node: Node, ins: Sequence[TensorInfo | None], outs: Sequence[TensorInfo]) -> int:
        parts: tuple[FusedPart, ...] = node.attrs.parts
        first = parts[0]
        fnode = part_node(first, node.inputs, ["_"])
        shape = get_op(first.op).infer(fnode, ins)[0]
        dtype = outs[0].dtype
        out = TensorInfo("_", shape, dtype)
        total = get_op(first.op).macs(fnode, ins, [out])
        for p in parts[1:]:
            pin = out
            pnode = part_node(p, ["_"], ["_"])
            out = TensorInfo("_", get_op(p.op).infer(pnode, [pin])[0], dtype)
            total += get_op(p.op).macs(pnode, [pin], [out])
        return total

    # -- SQ8 (SQ8.md §5) -----------------------------------------------------------------------
    def q_asym(self, node: Node) -> bool:
        """Conv/linear-headed fusions may have an asymmetric output, unless a later part needs a
        zero point of 0: LeakyRelu (``rnorm(y·A, 7)`` scales codes about 0) or a padded average
        pool (its padding is code 0). Pool- and add-headed fusions are symmetric (SQ8 §5)."""
        parts = _parts(node)
        if parts[0].op not in ("Conv", "Linear"):
            return False
        for p in parts[1:]:
            if p.op == "LeakyRelu":
                return False
            if p.op == "AveragePool" and get_op(p.op).q_symmetric_input(
                part_node(p, ["_"], ["_"]), 0
            ):
                return False
        return True

    def q_output_bound(self, node: Node, graph: Any) -> tuple[float, float] | None:
        """The ReLU-N range rule (:meth:`OpDef.q_output_bound`) of a conv/linear-headed fusion
        whose last activation is ``Clip(0, N)``; only max pools may follow it (they keep the
        range), as in NNTool's ``conv_active_pool`` / ``conv_pool_active`` fusions."""
        from nnshell.ops.activation import relun_bound

        parts = _parts(node)
        if parts[0].op not in ("Conv", "Linear"):
            return None
        for p in reversed(parts[1:]):
            if p.op == "MaxPool":
                continue
            if p.op == "Clip":
                return relun_bound(float(p.attrs.min), float(p.attrs.max))
            return None
        return None

    def q_symmetric_input(self, node: Node, idx: int) -> str | None:
        """The head's requirement on input ``idx``."""
        first = _parts(node)[0]
        return get_op(first.op).q_symmetric_input(part_node(first, node.inputs, ["_"]), idx)

    def quantize_sq8(self, ctx: QuantContext) -> NodeQuant:
        """Quantize the head layer at the fusion's final output scale; check every later part.

        Pools and ReLU-like activations keep the scale, so one requantization (at the head)
        serves the whole chain (SQ8.md §5: the output scale of a fused node is that of its final
        output). Heads: conv / linear (``conv_*``, ``linear_active``), a pool or global pool
        (``pool_active``: the pool's own kernel, then a rescale to the fused output qtype) and
        Add (``add_active``: MatAdd straight to the fused output scale). A table activation
        (Sigmoid, Tanh, HardSigmoid, HardSwish) after the head is refused: its table would be
        indexed by the head's pre-activation codes, whose range no calibration statistic records
        inside a fusion.
        """
        parts = _parts(ctx.node)
        for p in parts[1:]:
            kind = get_op(p.op).kind
            if kind != "pool" and p.op not in _SCALE_PRESERVING_ACTS:
                raise QuantizationError(
                    f"{ctx.node.name}: {p.op} inside a fused layer has no SQ8 kernel yet",
                    "use Relu/ReLU6/LeakyRelu activations, or do not fuse it (its own table kernel "
                    "then runs on calibrated input codes)",
                )
        head = part_node(parts[0], ctx.node.inputs, ["_"])
        head_ctx = QuantContext(ctx.graph, head, ctx.in_q, ctx.out_q, ctx.per_tensor)
        return get_op(parts[0].op).quantize_sq8(head_ctx)

    def run_int(self, node: Node, nq: NodeQuant, *xs: np.ndarray | None) -> list[np.ndarray]:
        """Head kernel (with requantization), then each pool / activation on int8 codes in order.

        A conv head followed only by max pools and monotonic activations (ReLU, clip, leaky
        ReLU) pools its accumulator before requantizing: max commutes with every monotonic step,
        so the integers are identical to the graph's order, and the requantization handles 4x
        fewer values behind a 2x2 pool.
        """
        parts = _parts(node)
        rest = list(parts[1:])
        pools = [p for p in rest if get_op(p.op).kind == "pool"]
        if parts[0].op == "Conv" and pools and all(p.op == "MaxPool" for p in pools):
            head = part_node(parts[0], node.inputs, ["_"])
            x = xs[0]
            assert x is not None

            def pre_pool(acc: np.ndarray) -> np.ndarray:
                for p in pools:
                    acc = get_op(p.op).run_float(part_node(p, ["_"], ["_"]), acc)[0]
                return acc

            y = conv_int(x, nq, nq.info["geometry"], head.attrs.group, pre_pool)
            rest = [p for p in rest if p.op != "MaxPool"]
        else:
            y = get_op(parts[0].op).run_int(part_node(parts[0], node.inputs, ["_"]), nq, *xs)[0]
        same = NodeQuant([nq.out_q], nq.out_q)
        for p in rest:
            if get_op(p.op).kind == "pool":
                y = get_op(p.op).run_int(part_node(p, ["_"], ["_"]), same, y)[0]
            else:
                y = activation_int(p.op, p.attrs, y, nq.out_q, node.name).astype(np.int8)
        return [y]

    def emit_c(self, node: Node, nq: NodeQuant, ctx: Any) -> str:
        """C of the fusion, in the executor's order. A conv head runs the whole chain in one
        ``nn_conv`` call (``ctx.tail``: activations before the pool, the pool on conv outputs
        computed on the fly, activations after it); another head writes the fused output, then
        the activations run on it in place."""
        parts = _parts(node)
        head, tail = part_node(parts[0], node.inputs, node.outputs), parts[1:]
        if _conv_chain_c(node, nq, ctx, ctx.acts):
            return str(get_op("Conv").emit_c(head, nq, ctx))  # type: ignore[attr-defined]
        head_emit = getattr(get_op(parts[0].op), "emit_c", None)
        if _has_pool(tail) or head_emit is None:
            ctx.unsupported(f"{op_label(node)} has no C kernel")
        code = head_emit(head, nq, ctx)
        y = node.outputs[0]
        acts = ctx.acts("acts", tail, nq.out_q)
        return f"{code}\nnn_act_inplace({ctx.ptr8(y)}, {ctx.size(y)}, {acts});"

    # -- POW2 (POW2.md) ------------------------------------------------------------------------
    def quantize_pow2(self, ctx: Pow2Context) -> NodeQuant:
        """The head at the fusion's output Q; pools and ReLU / ReLU6 / LeakyReLU keep that Q."""
        parts = ctx.node.attrs.parts
        for p in parts[1:]:
            if get_op(p.op).kind != "pool" and p.op not in _SCALE_PRESERVING_ACTS:
                raise QuantizationError(
                    f"{ctx.node.name}: {p.op} inside a fused layer has no POW2 kernel",
                    "POW2 fused layers support ReLU, ReLU6 and LeakyReLU",
                )
        head = part_node(parts[0], ctx.node.inputs, ["_"])
        hctx = replace(ctx, node=head, layer=ctx.node.name)
        nq = get_op(parts[0].op).quantize_pow2(hctx)
        return nq  # type: ignore[no-any-return]

    def run_int_pow2(self, node: Node, nq: NodeQuant, *xs: np.ndarray | None) -> list[np.ndarray]:
        """The head's POW2 kernel (codes at the fusion's output Q), then each pool's POW2 kernel
        and each activation (:func:`~nnshell.ops._pow2.activation_codes`) at that Q in order."""
        parts = node.attrs.parts
        y = get_op(parts[0].op).run_int_pow2(part_node(parts[0], node.inputs, ["_"]), nq, *xs)[0]
        same = NodeQuant([nq.out_q], nq.out_q, {}, {"bits": _pow2.bits_of(nq), "scheme": "POW2"})
        q, bits = q_of(nq.out_q), nq.out_q.bits
        for p in parts[1:]:
            if get_op(p.op).kind == "pool":
                y = get_op(p.op).run_int_pow2(part_node(p, ["_"], ["_"]), same, y)[0]
            else:
                y = _pow2.store(_pow2.activation_codes(p.op, p.attrs, y, q, bits, node.name), nq)
        return [y]

    def emit_c_pow2(self, node: Node, nq: NodeQuant, ctx: Any) -> str:
        """A conv head runs the whole chain in one ``nn_p2_conv`` (pool on the fly, activations
        before and after it); a linear head writes its output, then ``nn_p2_act`` runs in place."""
        parts = node.attrs.parts
        head, tail = part_node(parts[0], node.inputs, node.outputs), parts[1:]
        if _conv_chain_c(node, nq, ctx, ctx.p2_acts):
            return str(get_op("Conv").emit_c_pow2(head, nq, ctx))  # type: ignore[attr-defined]
        head_emit = getattr(get_op(parts[0].op), "emit_c_pow2", None)
        if _has_pool(tail) or head_emit is None:
            ctx.unsupported(f"{op_label(node)} has no POW2 C kernel")
        code = head_emit(head, nq, ctx)
        y = node.outputs[0]
        acts = ctx.p2_acts("acts", tail, nq.out_q)
        return (
            f"{code}\nnn_p2_act({ctx.ptr(y)}, {ctx.ptr(y)}, {ctx.size(y)}, {ctx.esize(y)}, "
            f"{acts}, 0);"
        )
