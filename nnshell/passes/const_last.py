"""const_last: a commutative Add/Mul with its constant first gets it second.

``c + x = x + c`` and ``c·x = x·c`` exactly. Exporters write both orders (PP-OCRv4's detector
scales every HardSwish as ``Mul(w, x)``); the quantizers and kernels of a constant operand, and
the patterns of ``fold_const_bias`` and ``hardswish``, then see one form: activation first.
"""

from __future__ import annotations

from nnshell.ir import Graph
from nnshell.passes._edit import const_of
from nnshell.passes.base import PassResult, register_pass


@register_pass("const_last", "Put the constant of a commutative Add/Mul second")
def const_last(graph: Graph) -> PassResult:
    """Swap ``Add(c, x)`` / ``Mul(c, x)`` to ``(x, c)`` in place (same broadcast result)."""
    res = PassResult()
    for node in graph.nodes:
        if node.op not in ("Add", "Mul") or len(node.inputs) != 2:
            continue
        a, b = node.inputs
        if getattr(node.attrs, "broadcast", 0):
            continue  # opset < 7 broadcasts the second operand only: the order matters
        if const_of(graph, a) is not None and const_of(graph, b) is None:
            node.inputs = [b, a]
            res.edits.append(f"{node.name}: constant operand moved second")
            res.changed += 1
    return res
