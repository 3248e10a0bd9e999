"""POW2 post-training quantization of a ``fusions --pow2`` graph (``docs/POW2.md``).

From the same calibration statistics as SQ8 (no new pass over the images):

1. One Q per group of tensors that must share it: a data-moving op (max / average pool, reshape,
   transpose, identity, ...) ties its outputs to its input, a Concat ties its inputs and output
   (union-find, as for SQ8). Activations (ReLU, ReLU6, LeakyReLU) are not ties: their output
   gets its own Q from its own range.
2. ``q = bits - ib(range)`` of the union of the members' ranges (``ib > bits`` is an error naming
   the tensor), except fixed formats: softmax Q15 int16, sigmoid / tanh Q15 (16-bit) or Q7
   (8-bit), and a ReLU6 (a Clip with finite bounds, alone or ending a fusion) whose range is its
   bounds (Q12 in 16 bits).
3. Each op's ``quantize_pow2`` hook (a method of its class, built on ``nnshell.ops._pow2``)
   gives the integer parameters; the conv / linear hook applies the accumulator budget and
   records its warning in ``NodeQuant.info["warnings"]`` (collected by
   :attr:`QuantState.warnings`). As in NNTool, the budget counts the integer bits of the
   accumulator itself, not only of the layer's output: the range it is sized from joins the
   output's range with the accumulator's recorded during calibration
   (:func:`nnshell.quant.stats.acc_key`: before a fused activation or pool, and for a linear
   layer the sums of products without the bias), and missing bits are split between weights
   and input in proportion to their fractional bits (:func:`nnshell.ops._pow2.split_missing`).
4. When the budget takes bits from a layer's input, the input is not pre-shifted inside the
   layer: its producer writes it at the lower Q (the input's whole group is lowered) and the
   graph is quantized again, the layer keeping the weights' share it first took. This is what
   NNTool does (its quantizer moves the input's Q back up the graph), the AutoTiler's POW2
   kernels have no input shift, and the producer's rounding replaces two. Only a tensor whose
   format an op imposes (softmax, sigmoid, tanh outputs) keeps its Q and the pre-shift.
An op without a POW2 hook is an error naming the node.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nnshell.errors import QuantizationError
from nnshell.ir import Graph, Node
from nnshell.ops import get_op
from nnshell.quant.fixed_point import QType
from nnshell.quant.fixed_pow2 import Pow2Context, pow2_qtype, q_from_range, q_of
from nnshell.quant.qrecord import NodeQuant
from nnshell.quant.ranges import choose_range
from nnshell.quant.sq8 import QuantOptions, QuantState
from nnshell.quant.stats import TensorStats, acc_key
from nnshell.quant.union_find import TensorGroups

POW2_BITS = (8, 16)


@dataclass(frozen=True)
class Pow2Options(QuantOptions):
    """``aquant -s POW2 -f BITS``: the range method and the container width."""

    bits: int = 16

    def describe(self) -> str:
        """One line for reports: ``POW2 16-bit Qm.n, minmax ranges, per-tensor weights``."""
        return f"POW2 {self.bits}-bit Qm.n, {self.mode} ranges, per-tensor weights"


def _producers(graph: Graph) -> dict[str, Node]:
    return {o: n for n in graph.nodes for o in n.outputs if o}


def _fixed_qtype(node: Node, bits: int) -> QType | None:
    """A format the op imposes: softmax Q15 int16, sigmoid / tanh Q15 or Q7."""
    return get_op(node.op).q_output_qtype_pow2(node, bits)


def _bound_range(graph: Graph, node: Node) -> tuple[float, float] | None:
    """The bounds of a ReLU6 (a Clip with finite bounds, alone or last but pools in a fusion)."""
    op = get_op(node.op)
    tail = list(op.tail_parts(node))
    if hasattr(op, "bounds"):  # a Clip: its bounds may be constant inputs (opset 11)

        def const(i: int) -> object:
            if i < len(node.inputs) and node.inputs[i]:
                return graph.tensors[node.inputs[i]].const
            return None

        lo, hi = op.bounds(node, None, const(1), const(2))  # type: ignore[attr-defined]
    elif tail:
        while tail and get_op(tail[-1].op).kind == "pool":
            tail.pop()
        if not tail or not hasattr(get_op(tail[-1].op), "bounds"):
            return None
        lo, hi = float(tail[-1].attrs.min), float(tail[-1].attrs.max)
    else:
        return None
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return None
    return min(lo, 0.0), hi


def pow2_groups(graph: Graph) -> dict[str, list[str]]:
    """Tensors that must share one Q (step 1 of the module docstring), keyed by a member."""
    ties = TensorGroups()
    for name in graph.inputs:
        ties.find(name)
    for node in graph.nodes:
        acts = [i for i in node.inputs if i and not graph.tensors[i].is_const]
        outs = [o for o in node.outputs if o]
        for o in outs:
            ties.find(o)
        op = get_op(node.op)
        if op.q_ties_inputs:
            for i in acts:
                # issue 17 (elt): a fixed-format input (sigmoid / tanh Q15, softmax) is not tied,
                # or it would saturate every other branch: the Concat shifts it to the output Q
                src = graph.producer(i)
                if src is None or _fixed_qtype(src, 16) is None:
                    ties.union(i, outs[0])
        elif op.q_passthrough and op.kind != "activation" and acts:
            for o in outs:
                ties.union(o, acts[0])
    return ties.groups()


def assign_q(
    graph: Graph, stats: dict[str, TensorStats], opts: Pow2Options
) -> tuple[dict[str, QType], dict[str, tuple[float, float]]]:
    """Give every activation tensor its Qm.n qtype; return qtypes and the ranges used."""
    producers = _producers(graph)
    qt: dict[str, QType] = {}
    ranges: dict[str, tuple[float, float]] = {}
    for members in pow2_groups(graph).values():
        fixed = None
        lo, hi = float("inf"), float("-inf")
        for t in members:
            node = producers.get(t)
            if node is not None:
                fixed = fixed or _fixed_qtype(node, opts.bits)
                bound = _bound_range(graph, node)
                if bound is not None:
                    lo, hi = min(lo, bound[0]), max(hi, bound[1])
                    continue
            st = stats.get(t)
            if st is None or st.count == 0:
                continue
            tlo, thi = choose_range(st, opts.mode)
            lo, hi = min(lo, tlo), max(hi, thi)
        if fixed is not None:
            q, rng = fixed, (float("nan"), float("nan"))
        else:
            if lo > hi:
                raise QuantizationError(
                    f"tensor '{members[0]}' has no calibration statistics",
                    "run aquant on calibration images",
                )
            name = sorted(members, key=lambda m: m not in graph.inputs)[0]
            q = pow2_qtype(q_from_range(lo, hi, opts.bits, f"tensor '{name}'"), opts.bits)
            rng = (lo, hi)
        for t in members:
            qt[t] = q
            ranges[t] = rng
    return qt, ranges


def quantize_graph_pow2(
    graph: Graph,
    stats: dict[str, TensorStats],
    opts: Pow2Options,
    fixed_q: dict[str, int] | None = None,
) -> QuantState:
    """Quantize every node with POW2; the first node that cannot be quantized raises.

    Step 4 of the module docstring: when a layer's budget takes ``d`` bits from its input, the
    input's whole group is quantized ``d`` bits lower and every node again from the start, the
    layer keeping the weights' share it took the first time (``w_cut``). Each pass lowers a Q,
    so the loop ends.
    """
    if opts.bits not in POW2_BITS:
        raise QuantizationError(f"POW2 needs -f 8 or -f 16, not {opts.bits}")
    from nnshell.ops.expression import collapse_quant, expand_graph, has_expressions

    if has_expressions(graph):  # part by part on the expanded view (ops/expression.py)
        qs = quantize_graph_pow2(expand_graph(graph), stats, opts, fixed_q)
        return collapse_quant(graph, qs)  # type: ignore[no-any-return]
    qt, ranges = assign_q(graph, stats, opts)
    groups = pow2_groups(graph)
    group_of = {t: k for k, members in groups.items() for t in members}
    pinned: set[str] = set()  # ``fixed_q``: an input formatter's codes impose the input's Q
    for t, q in (fixed_q or {}).items():
        for m in groups[group_of[t]]:
            qt[m] = pow2_qtype(q, opts.bits)
            pinned.add(m)
    w_cut: dict[str, int] = {}
    notes: dict[str, tuple[str, int, int, list[str]]] = {}
    while True:
        nodes, lowered = _quantize_pass(graph, stats, opts, qt, ranges, w_cut, pinned)
        if lowered is None:
            break
        node, nq = lowered
        x = node.inputs[0]
        di = int(nq.consts["in_shift"])
        q0 = q_of(qt[x])
        for t in groups[group_of[x]]:
            qt[t] = pow2_qtype(q_of(qt[t]) - di, opts.bits)
        w_cut[node.name] = int(nq.info.get("w_cut", 0))
        notes[node.name] = (x, q0, q0 - di, list(nq.info.get("warnings", [])))
    for name, (x, q0, q1, first) in notes.items():
        _note_lowered_input(nodes[name], x, q0, q1, first)
    return QuantState("POW2", opts, qt, nodes, ranges)


def _fixed_tensors(graph: Graph, bits: int) -> set[str]:
    """Tensors whose Q an op imposes (and every tensor tied to one): never lowered."""
    producers = _producers(graph)
    out: set[str] = set()
    for members in pow2_groups(graph).values():
        if any(m in producers and _fixed_qtype(producers[m], bits) for m in members):
            out.update(members)
    return out


def _quantize_pass(
    graph: Graph,
    stats: dict[str, TensorStats],
    opts: Pow2Options,
    qt: dict[str, QType],
    ranges: dict[str, tuple[float, float]],
    w_cut: dict[str, int],
    pinned: set[str] | None = None,
) -> tuple[dict[str, NodeQuant], tuple[Node, NodeQuant] | None]:
    """Quantize every node in order; stop at the first layer whose budget took input bits that
    its producer's output Q can give instead (returned with its NodeQuant)."""
    fixed = _fixed_tensors(graph, opts.bits) | (pinned or set())
    nodes: dict[str, NodeQuant] = {}
    for node in graph.nodes:
        out = node.outputs[0]
        st = stats.get(out)
        out_range = choose_range(st, opts.mode) if st is not None and st.count else ranges[out]
        acc = stats.get(acc_key(node.name))
        if acc is not None and acc.count:
            out_range = (min(out_range[0], acc.min), max(out_range[1], acc.max))
        nq = _quantize_node(graph, node, qt, opts.bits, out_range, ranges, w_cut.get(node.name))
        x = node.inputs[0] if node.inputs else ""
        if int(nq.consts.get("in_shift", 0)) and x in qt and x not in fixed:
            return nodes, (node, nq)
        nq.info.setdefault("scheme", "POW2")
        nodes[node.name] = nq
    return nodes, None


def _quantize_node(
    graph: Graph,
    node: Node,
    qt: dict[str, QType],
    bits: int,
    out_range: tuple[float, float],
    ranges: dict[str, tuple[float, float]],
    w_cut: int | None = None,
) -> NodeQuant:
    in_q = [qt.get(i) if i and not graph.tensors[i].is_const else None for i in node.inputs]
    ctx = Pow2Context(
        graph, node, in_q, qt[node.outputs[0]], True, bits, out_range, ranges, "", w_cut
    )
    return get_op(node.op).quantize_pow2(ctx)  # type: ignore[no-any-return]


def _note_lowered_input(nq: NodeQuant, x: str, q0: int, q1: int, first: list[str]) -> None:
    """Step 4's record: the budget as first computed (its warning names every bit taken), the
    input bits counted as lost, and where they went."""
    note = f"input '{x}' quantized at Q{q1} by its producer instead of Q{q0} (no pre-shift)"
    nq.info["lost_bits"] = int(nq.info.get("lost_bits", 0)) + (q0 - q1)
    nq.info["input_lowered_bits"] = q0 - q1
    nq.info["warnings"] = [f"{w}; {note}" for w in first] or [note]


__all__ = [
    "POW2_BITS",
    "Pow2Options",
    "assign_q",
    "pow2_groups",
    "quantize_graph_pow2",
]
