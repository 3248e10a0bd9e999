"""sum_to_add: a two-input Sum is an Add (one add kernel, and ``add + act`` can fuse).

``Sum(a, b) = Add(a, b)`` element for element, broadcasting included.
"""

from __future__ import annotations

from nnshell.ir import Graph
from nnshell.ops.elementwise import BinaryAttrs
from nnshell.passes.base import PassResult, register_pass


@register_pass("sum_to_add", "Turn a two-input Sum into Add")
def sum_to_add(graph: Graph) -> PassResult:
    """Rename two-input Sum nodes to Add in place."""
    res = PassResult()
    for node in graph.nodes:
        if node.op == "Sum" and len([i for i in node.inputs if i]) == 2:
            node.op, node.attrs = "Add", BinaryAttrs()
            res.edits.append(f"{node.name}: Sum of two inputs → Add")
            res.changed += 1
    return res
