"""Fused: several layers executed as one kernel call (conv + pool + activation, ...).

A fused node reads the inputs of its first part (e.g. a Conv's input, weights and bias); every
later part is a one-input op (pool, activation) applied to the previous part's result in order.
Each hook composes the parts' own hooks, so a fusion adds no arithmetic of its own and its float
output equals the unfused graph's exactly; the SQ8 and POW2 hooks quantize the head at the
fusion's output scale / Q and run the later pools and scale-preserving activations on its codes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from nnshell.ir import Node, Shape, TensorInfo
from nnshell.ops import _pow2
from nnshell.ops._sq8 import conv_int
from nnshell.ops.fused_act import POW2, SQ8, FusedAct, require
from nnshell.ops.registry import OpDef, get_op, register
from nnshell.quant.fixed_point import QType
from nnshell.quant.fixed_pow2 import Pow2Context, pow2_qtype, q_of
from nnshell.quant.qrecord import NodeQuant, QuantContext


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
    entry = head_entry(node, nq)
    pre_parts = tail[:cut]
    after = nq.out_q if any(_is_act(p) for p in pre_parts) else entry
    if pools:
        c_pool = getattr(get_op(tail[cut].op), "c_pool", None)
        if c_pool is None:
            ctx.unsupported(f"{tail[cut].op} after a conv has no C kernel")
        conv_shape = (1, nq.consts["weights"].shape[0], *nq.info["geometry"][4])
        zp = int(getattr(after, "zero_point", 0))  # an SQ8 average pads with it; POW2 has none
        pool = c_pool(part_node(tail[cut], ["_"], ["_"]), conv_shape, ctx, zp)
    pre = acts("pre", pre_parts, nq.out_q, entry)
    ctx.tail = (pool, pre, acts("post", tail[cut + 1 :], nq.out_q, after))
    return True


def _head_c(
    node: Node, nq: NodeQuant, ctx: Any, method: str, acts_table: Any, what: str
) -> tuple[str, str | None]:
    """The head's C (``method``: ``emit_c`` or ``emit_c_pow2``) and the activation table of
    the tail (``acts_table``), or the whole chain's C and ``None`` when a conv head runs it in
    one call. Pools after a non-conv head have no kernel (``what`` names the missing one)."""
    parts = _parts(node)
    head, tail = part_node(parts[0], node.inputs, node.outputs), parts[1:]
    if _conv_chain_c(node, nq, ctx, acts_table):
        return str(getattr(get_op("Conv"), method)(head, nq, ctx)), None
    head_emit = getattr(get_op(parts[0].op), method, None)
    if _has_pool(tail) or head_emit is None:
        ctx.unsupported(f"{op_label(node)} has no {what} kernel")
    code = head_emit(head, nq, ctx)
    return code, acts_table("acts", tail, nq.out_q, head_entry(node, nq))


def _is_act(p: FusedPart) -> bool:
    return get_op(p.op).kind != "pool"


def head_qtype_sq8(parts: Sequence[FusedPart], out_q: QType) -> QType:
    """The qtype the head produces: the intermediate one of a function activation
    (:meth:`~nnshell.ops.fused_act.FusedAct.fused_sq8_mid`), else the fused output's."""
    # a conv / linear head's requantization adds a zero point; an average pool on the
    # intermediate codes would pad with code 0, which is the real 0 only at zero point 0
    asym = parts[0].op in ("Conv", "Linear") and all(p.op != "AveragePool" for p in parts)
    mid = _first_mid(parts, lambda op, attrs: op.fused_sq8_mid(attrs, out_q, asym))
    return out_q if mid is None else mid


def head_q_pow2(parts: Sequence[FusedPart], q_out: int, bits: int) -> int:
    """The Q the head produces (a function activation's intermediate Q, else the output's)."""
    mid = _first_mid(parts, lambda op, attrs: op.fused_pow2_mid(attrs, q_out, bits))
    return q_out if mid is None else mid


def _first_mid(parts: Sequence[FusedPart], mid_of: Callable[[FusedAct, Any], Any]) -> Any:
    """The first intermediate format ``mid_of`` gives for an activation after the head (a
    function activation's, the SQ8 qtype or the POW2 Q), or None when none has one."""
    for p in parts[1:]:
        op = get_op(p.op)
        if isinstance(op, FusedAct):
            mid = mid_of(op, p.attrs)
            if mid is not None:
                return mid
    return None


def head_entry(node: Node, nq: NodeQuant) -> Any:
    """What the head hands the first activation: an SQ8 qtype, or a POW2 Q."""
    if nq.info.get("scheme") == "POW2":
        return head_q_pow2(_parts(node), q_of(nq.out_q), nq.out_q.bits)
    return head_qtype_sq8(_parts(node), nq.out_q)


def op_label(node: Node) -> str:
    """How reports name a node's op: ``Conv+MaxPool+Relu`` for fusions."""
    if node.op == "Fused":
        return "+".join(p.op for p in node.attrs.parts)
    return node.op


def _check_parts(node: Node, scheme: str) -> None:
    """Every non-pool part must be an activation fusable in ``scheme`` (ops/fused_act.py)."""
    for p in _parts(node)[1:]:
        if _is_act(p):
            require(p.op, scheme, node.name)


@register
class Fused(OpDef):
    """A chain of layers run as one kernel."""

    name = "Fused"
    is_fusion = True

    def label(self, node: Node) -> str:
        return "+".join(str(p.op) for p in _parts(node))

    def head(self, node: Node) -> Node:
        return part_node(_parts(node)[0], node.inputs, ["_"])

    def tail_parts(self, node: Node) -> tuple[FusedPart, ...]:
        return _parts(node)[1:]

    def onnx_nodes(self, node: Node, ins: list[str], outs: list[str], b: Any) -> bool:
        """ONNX export: the parts one after the other, through temporary tensors; the first
        part's output has a known name (``head_output``: calibration reads the accumulator)."""
        parts = _parts(node)
        cur_ins = ins
        for k, p in enumerate(parts):
            last = k == len(parts) - 1
            out = outs[0] if last else b.head_output(node.name) if k == 0 else b.temp(p.name)
            b.node(part_node(p, cur_ins, [out]), cur_ins, [out])
            cur_ins = [out]
        return True

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

    def run_float_t(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        """Float layer: the head's float32 result, then the tail in float32 (one rounding, when
        the output is stored)."""
        parts: tuple[FusedPart, ...] = node.attrs.parts
        y = get_op(parts[0].op).run_float_t(part_node(parts[0], node.inputs, ["_"]), *xs)[0]
        for p in parts[1:]:
            y = get_op(p.op).run_float_t(part_node(p, ["_"], ["_"]), y)[0]
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
        zero point of 0: LeakyRelu (``rnorm(y·A, 7)`` scales codes about 0), or a padded average
        pool before an activation (the pool runs at the output qtype: an asymmetric ReLU range
        would clip the negative values it must average; kept symmetric as before issue 17).
        A padded average pool last pads with the zero point (``q_padded_output``). Pool- and
        add-headed fusions are symmetric (SQ8 §5)."""
        parts = _parts(node)
        if parts[0].op not in ("Conv", "Linear"):
            return False
        if any(getattr(get_op(p.op), "fused_symmetric_out", False) for p in parts[1:]):
            return False
        return not any(_is_act(p) for p in parts[1 + self._padded_avg_index(node) :])

    def _padded_avg_index(self, node: Node) -> int:
        """Index (in the tail) of the first padded average pool; len(tail) when none."""
        tail = _parts(node)[1:]
        for i, p in enumerate(tail):
            if p.op == "AveragePool" and get_op(p.op).q_padded_input(part_node(p, ["_"], ["_"]), 0):
                return i
        return len(tail)

    def q_padded_output(self, node: Node) -> str | None:
        """A padded average pool after the head reads the head's output with padding: forced
        symmetric by ``aquant --nntool_padding`` (NNTool's rule), else padded with Zi."""
        tail = _parts(node)[1:]
        i = self._padded_avg_index(node)
        return (
            get_op("AveragePool").q_padded_input(part_node(tail[i], [], []), 0)
            if i < len(tail)
            else None
        )

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

    def q_output_qtype(self, node: Node, in_q: list[QType | None]) -> QType | None:
        """A fusion ending in Sigmoid / Tanh / HardSigmoid outputs their fixed int8 at 1/127
        (NNTool's fused conv + sigmoid / tanh / hsigmoid output)."""
        last = _parts(node)[-1]
        if len(_parts(node)) > 1 and _is_act(last):
            return getattr(get_op(last.op), "q_fixed_out", None)
        return None

    def q_symmetric_input(self, node: Node, idx: int) -> str | None:
        """The head's requirement on input ``idx``."""
        first = _parts(node)[0]
        return get_op(first.op).q_symmetric_input(part_node(first, node.inputs, ["_"]), idx)

    def q_padded_input(self, node: Node, idx: int) -> str | None:
        """The head's padding of input ``idx`` (``OpDef.q_padded_input``)."""
        first = _parts(node)[0]
        return get_op(first.op).q_padded_input(part_node(first, node.inputs, ["_"]), idx)

    def quantize_sq8(self, ctx: QuantContext) -> NodeQuant:
        """Quantize the head layer at the qtype its activation needs; check every later part.

        Pools and scale-preserving activations (ReLU, Clip, LeakyReLU) keep the scale, so one
        requantization (at the head, to the fusion's output qtype) serves the whole chain
        (SQ8.md §5). A function activation (Sigmoid, Tanh, HardSigmoid, HardSwish, Swish) has
        the head requantize to its intermediate qtype instead (fixed by the function's input
        range, since no statistic records the pre-activation tensor of a fusion), then maps
        those codes to the output codes with a 256-entry table (docs/activations.md).
        """
        parts = _parts(ctx.node)
        _check_parts(ctx.node, SQ8)
        head_q = head_qtype_sq8(parts, ctx.out_q)
        head = part_node(parts[0], ctx.node.inputs, ["_"])
        head_ctx = QuantContext(
            ctx.graph, head, ctx.in_q, head_q, ctx.per_tensor, mult_bits=ctx.mult_bits
        )
        nq: NodeQuant = get_op(parts[0].op).quantize_sq8(head_ctx)
        nq.out_q = ctx.out_q
        if head_q is not ctx.out_q:
            nq.info["act_in_scale"] = float(head_q.scale)
            for p in parts[1:]:
                op = get_op(p.op)
                if _is_act(p) and hasattr(op, "fused_table"):
                    nq.consts["act_table"] = op.fused_table(p.attrs, head_q, ctx.out_q)
        return nq

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
        monotonic = all(get_op(p.op).monotonic for p in rest if _is_act(p))  # type: ignore[attr-defined]
        if parts[0].op == "Conv" and pools and monotonic and all(p.op == "MaxPool" for p in pools):
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
        cur = head_qtype_sq8(parts, nq.out_q)
        for p in rest:
            if get_op(p.op).kind == "pool":
                y = get_op(p.op).run_int(part_node(p, ["_"], ["_"]), NodeQuant([cur], cur), y)[0]
            else:
                act = require(p.op, SQ8, node.name)
                y = act.fused_sq8_int(p.attrs, y, cur, nq.out_q, node.name).astype(np.int8)
                cur = nq.out_q
        return [y]

    def emit_c(self, node: Node, nq: NodeQuant, ctx: Any) -> str:
        """C of the fusion, in the executor's order. A conv head runs the whole chain in one
        ``nn_conv`` call (``ctx.tail``: activations before the pool, the pool on conv outputs
        computed on the fly, activations after it); another head writes the fused output, then
        the activations run on it in place."""
        code, acts = _head_c(node, nq, ctx, "emit_c", ctx.acts, "C")
        if acts is None:
            return code
        y = node.outputs[0]
        return f"{code}\nnn_act_inplace({ctx.ptr8(y)}, {ctx.size(y)}, {acts});"

    # -- POW2 (POW2.md) ------------------------------------------------------------------------
    def quantize_pow2(self, ctx: Pow2Context) -> NodeQuant:
        """The head at the Q its activation needs (the output's, or a function activation's
        intermediate Q, whose range then stands for the head's observed output range in the
        accumulator budget); pools and the activations run at / to the output Q."""
        parts = ctx.node.attrs.parts
        _check_parts(ctx.node, POW2)
        q_out = q_of(ctx.out_q)
        q_head = head_q_pow2(parts, q_out, ctx.bits)
        out_q, out_range = ctx.out_q, ctx.out_range
        if q_head != q_out:
            out_q = pow2_qtype(q_head, ctx.bits, "fused activation input")
            half = 2.0 ** (ctx.bits - 2 - q_head)  # the range whose integer bits give q_head
            out_range = (-half, half)
        head = part_node(parts[0], ctx.node.inputs, ["_"])
        hctx = replace(ctx, node=head, layer=ctx.node.name, out_q=out_q, out_range=out_range)
        nq: NodeQuant = get_op(parts[0].op).quantize_pow2(hctx)
        if q_head != q_out:
            nq.out_q = ctx.out_q
            nq.info["q_act_in"] = q_head
        return nq

    def run_int_pow2(self, node: Node, nq: NodeQuant, *xs: np.ndarray | None) -> list[np.ndarray]:
        """The head's POW2 kernel (codes at the head's Q), then each pool's POW2 kernel and each
        activation's fused POW2 kernel (``ops/fused_act.py``) in order."""
        parts = node.attrs.parts
        y = get_op(parts[0].op).run_int_pow2(part_node(parts[0], node.inputs, ["_"]), nq, *xs)[0]
        q, bits = q_of(nq.out_q), nq.out_q.bits
        cur = head_q_pow2(parts, q, bits)
        for p in parts[1:]:
            if get_op(p.op).kind == "pool":
                qt = pow2_qtype(cur, bits)
                same = NodeQuant([qt], qt, {}, {"bits": _pow2.bits_of(nq), "scheme": "POW2"})
                y = get_op(p.op).run_int_pow2(part_node(p, ["_"], ["_"]), same, y)[0]
            else:
                act = require(p.op, POW2, node.name)
                y = _pow2.store(act.fused_pow2_int(p.attrs, y, cur, q, bits, node.name), nq)
                cur = q
        return [y]

    def emit_c_pow2(self, node: Node, nq: NodeQuant, ctx: Any) -> str:
        """A conv head runs the whole chain in one ``nn_p2_conv`` (pool on the fly, activations
        before and after it); a linear head writes its output, then ``nn_p2_act`` runs in place."""
        code, acts = _head_c(node, nq, ctx, "emit_c_pow2", ctx.p2_acts, "POW2 C")
        if acts is None:
            return code
        y = node.outputs[0]
        return (
            f"{code}\nnn_p2_act({ctx.ptr(y)}, {ctx.ptr(y)}, {ctx.size(y)}, {ctx.esize(y)}, "
            f"{acts}, 0);"
        )
