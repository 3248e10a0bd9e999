"""Small pattern-matching helpers shared by the normalisation passes (div_to_mul, hardswish,
hardsigmoid, swish): exporters write the same activation several ways, and each pass must
recognise a constant operand, a chain link with a single reader, and replace a chain by one node.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from nnshell.ir import Graph, Node
from nnshell.passes._edit import const_of, prune_consts, sole_consumer

#: Relative tolerance of a matched constant (3, 6, 1/6 written in float32 by the exporter).
CONST_RTOL = 1e-6


def scalar_const(graph: Graph, name: str) -> float | None:
    """The value of a constant tensor holding one number (any shape of size 1), else None."""
    c = const_of(graph, name)
    if c is None or c.size != 1:
        return None
    return float(np.asarray(c, np.float64).reshape(-1)[0])


def near(v: float | None, want: float) -> bool:
    """``v`` is ``want`` up to float32 rounding."""
    return v is not None and abs(v - want) <= CONST_RTOL * max(1.0, abs(want))


def binary_with_const(graph: Graph, node: Node | None, op: str) -> tuple[str, float] | None:
    """``(activation input, constant)`` when ``node`` is ``op(x, c)`` or ``op(c, x)`` with a scalar
    constant ``c`` (only ``x op c`` for the non-commutative Sub and Div), else None."""
    if node is None or node.op != op or len(node.inputs) != 2:
        return None
    a, b = node.inputs
    cb = scalar_const(graph, b)
    if cb is not None and const_of(graph, a) is None:
        return a, cb
    ca = scalar_const(graph, a)
    if op in ("Add", "Mul") and ca is not None and const_of(graph, b) is None:
        return b, ca
    return None


def feeds_only(graph: Graph, tensor: str, reader: Node) -> Node | None:
    """The producer of ``tensor`` when ``reader`` is its only reader (a chain link), else None."""
    if sole_consumer(graph, tensor) is not reader:
        return None
    return graph.producer(tensor)


def relu6_of_plus3(graph: Graph, clip: Node | None) -> tuple[str, list[Node]] | None:
    """``(x, [add, clip])`` when ``clip`` computes ``clip(x + 3, 0, 6)``, else None."""
    from nnshell.ops import get_op

    if clip is None or clip.op != "Clip":
        return None
    xs = [None, *(const_of(graph, i) for i in clip.inputs[1:])]
    lo, hi = get_op("Clip").bounds(clip, *xs)  # type: ignore[attr-defined]
    if not (near(lo, 0.0) and near(hi, 6.0)):
        return None
    add = feeds_only(graph, clip.inputs[0], clip)
    m = binary_with_const(graph, add, "Add")
    if add is None or m is None or not near(m[1], 3.0):
        return None
    return m[0], [add, clip]


def replace_chain(graph: Graph, chain: list[Node], op: str, x: str, attrs: Any) -> Node:
    """Replace ``chain`` (in graph order, the last one writing the result) by one ``op(x)`` node
    that keeps the last node's name and output, placed where the last node was."""
    last = chain[-1]
    new = Node(last.name, op, [x], list(last.outputs), attrs)
    graph.nodes[graph.nodes.index(last)] = new
    for n in chain[:-1]:
        graph.nodes.remove(n)
        for o in n.outputs:
            graph.tensors.pop(o, None)
    prune_consts(graph)
    return new


def rewrite_mul_patterns(
    graph: Graph,
    match: Callable[[Graph, Node], tuple[str, list[Node]] | None],
    op: str,
    attrs: Any,
    res: Any,
) -> None:
    """Replace every chain ``match`` finds ending in a Mul by one ``op`` node of input ``x``,
    recording the edit in ``res`` (a PassResult): the loop the activation pattern passes share."""
    for node in [n for n in graph.nodes if n.op == "Mul"]:
        if node not in graph.nodes:  # removed by an earlier rewrite
            continue
        found = match(graph, node)
        if found is None:
            continue
        x, chain = found
        replace_chain(graph, chain, op, x, attrs)
        names = [n.name for n in chain]
        res.edits.append(f"{' + '.join(names)} → {op} {node.name}")
        res.removed += names[:-1]
        res.changed += 1
