"""``expression_matcher``: connected groups of elementwise layers become one ``Expression`` node.

NNTool's pass of the same name gathers every connected subgraph of elementwise operations
(binary arithmetic, min / max, activations) into one ``expr_N`` node with as many inputs and
outputs as the group has edges to the rest of the graph. Two layers belong to the same group
when one reads the other's output; a group of one layer is left alone. A group whose outside
paths would leave it and come back (so no single node could stand for it) is left alone too.
The integer arithmetic of the parts is kept (nnshell/ops/expression.py).
"""

from __future__ import annotations

import numpy as np

from nnshell.ir import Graph, Node
from nnshell.ops import get_op
from nnshell.ops.activation import ClipAttrs
from nnshell.ops.expression import ExprAttrs, Expression, ExprPart
from nnshell.passes._edit import const_of, prune_consts
from nnshell.passes.base import FusionRecord, PassResult, register_pass

#: op kinds an expression may hold (ops/registry.py ``kind``)
_KINDS = frozenset({"elementwise", "activation"})


def _eligible(node: Node) -> bool:
    op = get_op(node.op)
    return op.kind in _KINDS and node.op != Expression.name and len(node.outputs) == 1


def _groups(graph: Graph) -> list[list[Node]]:
    """Connected groups of eligible nodes (graph order inside a group and between groups)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    elig = [n for n in graph.nodes if _eligible(n)]
    for n in elig:
        parent[n.name] = n.name
    for n in elig:
        for i in n.inputs:
            p = graph.producer(i) if i else None
            if p is not None and p.name in parent:
                parent[find(p.name)] = find(n.name)
    groups: dict[str, list[Node]] = {}
    for n in elig:
        groups.setdefault(find(n.name), []).append(n)
    return [g for g in groups.values() if len(g) > 1]


def _convex(graph: Graph, members: set[str]) -> bool:
    """No path leaves the group and re-enters it."""
    outside_reached: set[str] = set()
    for node in graph.nodes:  # graph order is topological
        feeds = [graph.producer(i) for i in node.inputs if i]
        from_group = any(p is not None and p.name in members for p in feeds)
        from_outside = any(p is not None and p.name in outside_reached for p in feeds)
        if node.name in members:
            if from_outside:
                return False
        elif from_group or from_outside:
            outside_reached.add(node.name)
    return True


def _toposort(graph: Graph) -> None:
    """Stable topological order of ``graph.nodes`` (after a group replaced its members)."""
    produced = {o: n.name for n in graph.nodes for o in n.outputs}
    done: set[str] = set()
    order: list[Node] = []
    pending = list(graph.nodes)
    while pending:
        rest = []
        for n in pending:
            deps = {produced[i] for i in n.inputs if i in produced}
            if deps <= done:
                order.append(n)
                done.add(n.name)
            else:
                rest.append(n)
        if len(rest) == len(pending):  # cannot happen for a convex group
            raise AssertionError("expression_matcher: cycle")
        pending = rest
    graph.nodes = order


def _fuse(graph: Graph, group: list[Node]) -> FusionRecord:
    members = {n.name for n in group}
    produced = {o for n in group for o in n.outputs}
    ins: list[str] = []
    for n in group:
        for i in n.inputs:
            if i and i not in produced and i not in ins:
                ins.append(i)
    outs = [
        o
        for n in group
        for o in n.outputs
        if o in graph.outputs or any(c.name not in members for c in graph.consumers(o))
    ]
    shapes = tuple(
        (o, tuple(int(d) for d in graph.tensors[o].shape)) for o in produced if o not in outs
    )
    parts = tuple(ExprPart(n.op, n.attrs, n.name, tuple(n.inputs), tuple(n.outputs)) for n in group)
    k = 0
    while f"expr_{k}" in {n.name for n in graph.nodes}:
        k += 1
    name = f"expr_{k}"
    node = Node(
        name,
        Expression.name,
        list(ins),
        list(outs),
        ExprAttrs(parts, tuple(ins), tuple(outs), tuple(sorted(shapes))),
        {"fused_nodes": [n.name for n in group]},
    )
    idx = graph.nodes.index(group[-1])
    graph.nodes.insert(idx + 1, node)
    for n in group:
        graph.nodes.remove(n)
    for o in produced - set(outs):
        graph.tensors.pop(o, None)
    _toposort(graph)
    return FusionRecord(tuple(n.name for n in group), name, "expression")


def _minmax_to_clip(graph: Graph) -> list[str]:
    """``Min(x, c)`` / ``Max(x, c)`` with a scalar constant ``c`` become ``Clip(-inf, c)`` /
    ``Clip(c, inf)``: the same values, with Clip's SQ8 / POW2 kernels (bounds as codes)."""
    changed = []
    for k, node in enumerate(graph.nodes):
        if node.op not in ("Min", "Max") or len(node.inputs) != 2:
            continue
        consts = [const_of(graph, i) for i in node.inputs]
        if sum(c is not None for c in consts) != 1:
            continue
        ci = 0 if consts[0] is not None else 1
        c = np.asarray(consts[ci])
        if c.size != 1:
            continue
        v = float(c.reshape(-1)[0])
        attrs = ClipAttrs(min=-np.inf, max=v) if node.op == "Min" else ClipAttrs(min=v, max=np.inf)
        graph.nodes[k] = Node(
            node.name, "Clip", [node.inputs[1 - ci]], list(node.outputs), attrs, dict(node.meta)
        )
        changed.append(node.name)
    prune_consts(graph)
    return changed


@register_pass("minmax_to_clip", "min / max with a scalar constant as Clip")
def minmax_to_clip(graph: Graph) -> PassResult:
    result = PassResult()
    for name in _minmax_to_clip(graph):
        result.edits.append(f"{name}: min/max with a constant as Clip")
        result.changed += 1
    return result


@register_pass("expression_matcher", "connected elementwise layers as one expression node")
def expression_matcher(graph: Graph) -> PassResult:
    result = minmax_to_clip(graph)
    for group in _groups(graph):
        if _convex(graph, {n.name for n in group}):
            result.fusions.append(_fuse(graph, group))
            result.changed += 1
    return result
