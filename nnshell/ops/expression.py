"""Expression: a connected group of elementwise layers run as one node (NNTool's ``expr_N``).

``fusions -a expression_matcher`` (nnshell/passes/expression.py) replaces every connected
subgraph of two or more elementwise layers (Add, Sub, Mul, Div, Max, Min, activations) with
one node that has several inputs and outputs. The node keeps its parts as a small graph: each
part's op, attributes, name and inner tensor names; the node's ``k``-th input / output is the
inner tensor ``attrs.ins[k]`` / ``attrs.outs[k]``.

Integer design (docs/expressions.md): the grouping keeps each part's own SQ8 arithmetic. Every
inner tensor gets its qtype from its own calibration statistics and every part runs its own
integer kernel on int8 codes, one after the other. NNTool instead compiles the group into one
integer expression with its own scaling; we keep the parts' kernels, which are already exact
against the C, so the fusion changes grouping and reports, never a result.

:func:`expand_expressions` rebuilds the parts as ordinary nodes (and, given a quantization,
their ``NodeQuant`` from the expression's record): calibration, quantization and the C
generator work on that view, so inner tensors are calibrated like any other and the C calls
each part's kernel in sequence with its intermediate tensors planned in the arena.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nnshell.errors import UnsupportedOpError
from nnshell.ir import Graph, Node, Shape, TensorInfo
from nnshell.ops.registry import OpDef, get_op, register
from nnshell.quant.fixed_point import QType
from nnshell.quant.qrecord import NodeQuant

#: separates a part's name from one of its constant names in the expression's consts
SEP = "::"


@dataclass(frozen=True)
class ExprPart:
    """One layer of an expression: op, attributes, name, inner input and output tensors."""

    op: str
    attrs: Any
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


@dataclass(frozen=True)
class ExprAttrs:
    """Parts in execution order; the inner names of the node's inputs and outputs; the inner
    tensors' shapes (for the expanded view)."""

    parts: tuple[ExprPart, ...]
    ins: tuple[str, ...]
    outs: tuple[str, ...]
    shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()


def _rename(node: Node) -> dict[str, str]:
    """Inner tensor name -> graph tensor name for the node's inputs and outputs."""
    a: ExprAttrs = node.attrs
    names = dict(zip(a.ins, node.inputs, strict=True))
    names.update(zip(a.outs, node.outputs, strict=True))
    return names


def part_nodes(node: Node) -> list[Node]:
    """The parts as stand-alone nodes reading and writing graph tensor names where the
    expression's inputs / outputs are, inner names elsewhere."""
    names = _rename(node)
    return [
        Node(
            p.name,
            p.op,
            [names.get(t, t) for t in p.inputs],
            [names.get(t, t) for t in p.outputs],
            p.attrs,
        )
        for p in node.attrs.parts
    ]


def _walk(node: Node, xs: Sequence[np.ndarray | None], run: Any) -> list[np.ndarray]:
    """Run the parts in order with ``run(part_node, args)``; return the node's outputs."""
    values: dict[str, np.ndarray | None] = dict(zip(node.inputs, xs, strict=True))
    for pn in part_nodes(node):
        outs = run(pn, [values[i] for i in pn.inputs])
        values.update(zip(pn.outputs, outs, strict=False))
    return [values[o] for o in node.outputs]  # type: ignore[misc]


@register
class Expression(OpDef):
    """Several elementwise layers as one node with several inputs and outputs."""

    name = "Expression"
    kind = "elementwise"
    Attrs = ExprAttrs

    def label(self, node: Node) -> str:
        counts: dict[str, int] = {}
        for p in node.attrs.parts:
            counts[p.op] = counts.get(p.op, 0) + 1
        return "Expr(" + ", ".join(f"{k}:{v}" for k, v in counts.items()) + ")"

    def infer(self, node: Node, ins: Sequence[TensorInfo | None]) -> list[Shape]:
        infos: dict[str, TensorInfo | None] = dict(zip(node.inputs, ins, strict=True))
        for pn in part_nodes(node):
            shapes = get_op(pn.op).infer(pn, [infos[i] for i in pn.inputs])
            for o, s in zip(pn.outputs, shapes, strict=False):
                infos[o] = TensorInfo(o, s)
        return [infos[o].shape for o in node.outputs]  # type: ignore[union-attr]

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        return _walk(node, xs, lambda pn, args: get_op(pn.op).run_float(pn, *args))

    def macs(self, node: Node, ins: Sequence[TensorInfo | None], outs: Sequence[TensorInfo]) -> int:
        """The parts' operation counts, summed."""
        infos: dict[str, TensorInfo | None] = dict(zip(node.inputs, ins, strict=True))
        total = 0
        for pn in part_nodes(node):
            op = get_op(pn.op)
            pin = [infos[i] for i in pn.inputs]
            pout = [TensorInfo(o, s) for o, s in zip(pn.outputs, op.infer(pn, pin), strict=False)]
            infos.update((t.name, t) for t in pout)
            total += op.macs(pn, pin, pout)
        return total

    def onnx_nodes(self, node: Node, ins: list[str], outs: list[str], b: Any) -> bool:
        """ONNX export: the parts, inner tensors under their own names."""
        names = dict(zip(node.inputs, ins, strict=True))
        names.update(zip(node.outputs, outs, strict=True))
        for pn in part_nodes(node):
            pi = [names.get(i, i) for i in pn.inputs]
            po = [names.get(o, o) for o in pn.outputs]
            b.node(Node(pn.name, pn.op, pi, po, pn.attrs), pi, po)
        return True

    def quantize_sq8(self, ctx: Any) -> NodeQuant:
        raise UnsupportedOpError(
            f"{ctx.node.name}: an expression is quantized through its parts (internal error)"
        )

    def run_int(self, node: Node, nq: NodeQuant, *xs: np.ndarray | None) -> list[np.ndarray]:
        """Each part's own SQ8 kernel on int8 codes, in order (module docstring)."""
        quants = part_quants(node, nq)

        def run(pn: Node, args: list[np.ndarray | None]) -> list[np.ndarray]:
            return get_op(pn.op).run_int(pn, quants[pn.name], *args)  # type: ignore[no-any-return]

        return _walk(node, xs, run)

    def run_int_pow2(self, node: Node, nq: NodeQuant, *xs: np.ndarray | None) -> list[np.ndarray]:
        """Each part's own POW2 kernel on its codes, in order."""
        quants = part_quants(node, nq)

        def run(pn: Node, args: list[np.ndarray | None]) -> list[np.ndarray]:
            return get_op(pn.op).run_int_pow2(pn, quants[pn.name], *args)  # type: ignore[no-any-return]

        return _walk(node, xs, run)


# -- the expanded view and the expression's quantization record ---------------------------------


def has_expressions(graph: Graph) -> bool:
    return any(n.op == Expression.name for n in graph.nodes)


def part_quants(node: Node, nq: NodeQuant) -> dict[str, NodeQuant]:
    """The parts' NodeQuants stored in the expression's record (see :func:`collapse_quant`)."""
    out: dict[str, NodeQuant] = {}
    for name, rec in nq.info["parts"].items():
        consts = {k.split(SEP, 1)[1]: v for k, v in nq.consts.items() if k.split(SEP, 1)[0] == name}
        in_q = [QType.from_dict(q) if q is not None else None for q in rec["in_q"]]
        out[name] = NodeQuant(in_q, QType.from_dict(rec["out_q"]), consts, dict(rec["info"]))
    return out


def inner_qtypes(nq: NodeQuant) -> dict[str, QType]:
    """The inner tensors' qtypes of an expression's record."""
    return {t: QType.from_dict(q) for t, q in nq.info.get("inner", {}).items()}


def expand_graph(graph: Graph) -> Graph:
    """A copy of ``graph`` with every expression replaced by its parts (inner tensors added)."""
    if not has_expressions(graph):
        return graph
    g = graph.copy()
    nodes: list[Node] = []
    for node in g.nodes:
        if node.op != Expression.name:
            nodes.append(node)
            continue
        shapes = dict(node.attrs.shapes)
        for pn in part_nodes(node):
            for o in pn.outputs:
                if o not in g.tensors:
                    g.tensors[o] = TensorInfo(o, tuple(shapes[o]), "float32")
            nodes.append(pn)
    g.nodes = nodes
    for pn in nodes:  # the parts' shape-derived meta (constant operands, ...)
        if pn.op != Expression.name:
            get_op(pn.op).infer(pn, g.in_infos(pn))
    return g


def expand_quant(graph: Graph, qstate: Any) -> Any:
    """The quantization of :func:`expand_graph`'s view: parts' NodeQuants, inner qtypes."""
    from dataclasses import replace

    nodes = dict(qstate.nodes)
    tensors = dict(qstate.tensors)
    for node in graph.nodes:
        if node.op == Expression.name and node.name in nodes:
            nq = nodes.pop(node.name)
            nodes.update(part_quants(node, nq))
            tensors.update(inner_qtypes(nq))
    return replace(qstate, nodes=nodes, tensors=tensors)


def collapse_quant(graph: Graph, qstate: Any) -> Any:
    """Fold the parts' NodeQuants of the expanded view back into one record per expression;
    inner tensors leave ``tensors`` / ``ranges`` (they live in the record)."""
    from dataclasses import replace

    nodes = dict(qstate.nodes)
    tensors = dict(qstate.tensors)
    ranges = dict(qstate.ranges)
    order: dict[str, NodeQuant] = {}
    for node in graph.nodes:
        if node.op != Expression.name:
            order[node.name] = nodes[node.name]
            continue
        recs: dict[str, Any] = {}
        consts: dict[str, np.ndarray] = {}
        inner: dict[str, Any] = {}
        for pn in part_nodes(node):
            pq = nodes.pop(pn.name)
            recs[pn.name] = {
                "in_q": [q.to_dict() if q is not None else None for q in pq.in_q],
                "out_q": pq.out_q.to_dict(),
                "info": pq.info,
            }
            consts.update({f"{pn.name}{SEP}{k}": v for k, v in pq.consts.items()})
            for o in pn.outputs:
                if o not in node.outputs:
                    inner[o] = tensors.pop(o).to_dict()
                    ranges.pop(o, None)
        in_q = [tensors.get(i) if not graph.tensors[i].is_const else None for i in node.inputs]
        info = {"parts": recs, "inner": inner}
        order[node.name] = NodeQuant(in_q, tensors[node.outputs[0]], consts, info)
    return replace(qstate, nodes=order, tensors=tensors, ranges=ranges)


def expanded(graph: Graph, qstate: Any) -> tuple[Graph, Any]:
    """The expanded graph and quantization together (C generation and its verification)."""
    if not has_expressions(graph):
        return graph, qstate
    return expand_graph(graph), expand_quant(graph, qstate)
