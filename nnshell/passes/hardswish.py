"""hardswish: ``x·clip(x+3, 0, 6)/6`` and ``x·HardSigmoid(x)`` become one HardSwish node.

PaddlePaddle (PP-OCR) and older PyTorch exports write HardSwish out as Add, Clip, Mul, Div; five
nodes need five quantized tensors and an integer Mul of two activations, where HardSwish is one
table activation that can fuse into the conv before it. The identity is exact in real numbers:
``x·clip(x+3,0,6)/6 = x·clip(x/6 + 1/2, 0, 1) = HardSwish(x)``. Runs after ``div_to_mul``, so the
``/6`` is a ``Mul`` by 1/6. Matched forms (Mul operands in either order):

* ``Mul(Mul(x, clip(x+3, 0, 6)), 1/6)``
* ``Mul(x, HardSigmoid(x))`` with the normalised HardSigmoid (α = 1/6, β = 1/2), which is what
  ``hardsigmoid`` makes of ``clip(x+3, 0, 6)·(1/6)``.

Every intermediate tensor must have the chain as its only reader (x itself may have others).
"""

from __future__ import annotations

from nnshell.ir import Graph, Node
from nnshell.ops import get_op
from nnshell.passes._match import (
    binary_with_const,
    feeds_only,
    near,
    relu6_of_plus3,
    rewrite_mul_patterns,
)
from nnshell.passes.base import PassResult, register_pass


def _other(node: Node, tensor: str) -> str | None:
    """The Mul operand that is not ``tensor`` (None if neither or both are)."""
    a, b = node.inputs[:2]
    if (a == tensor) == (b == tensor):
        return None
    return b if a == tensor else a


def is_unit_hardsigmoid(node: Node | None) -> bool:
    """``node`` is a HardSigmoid in the normalised form clip(x/6 + 1/2, 0, 1)."""
    return (
        node is not None
        and node.op == "HardSigmoid"
        and near(float(node.attrs.alpha), 1.0 / 6.0)
        and near(float(node.attrs.beta), 0.5)
    )


def _match(graph: Graph, node: Node) -> tuple[str, list[Node]] | None:
    """``(x, chain)`` when ``node`` ends a HardSwish written out, else None."""
    if node.op != "Mul" or len(node.inputs) != 2:
        return None
    m = binary_with_const(graph, node, "Mul")
    if m is not None and near(m[1], 1.0 / 6.0):  # Mul(Mul(x, relu6(x+3)), 1/6)
        inner = feeds_only(graph, m[0], node)
        if inner is None or inner.op != "Mul" or len(inner.inputs) != 2:
            return None
        for r_name in inner.inputs:
            r = relu6_of_plus3(graph, feeds_only(graph, r_name, inner))
            if r is not None and _other(inner, r_name) == r[0]:
                return r[0], [*r[1], inner, node]
        return None
    for h_name in node.inputs:  # Mul(x, HardSigmoid(x))
        h = feeds_only(graph, h_name, node)
        if is_unit_hardsigmoid(h) and h is not None and _other(node, h_name) == h.inputs[0]:
            return h.inputs[0], [h, node]
    return None


@register_pass("hardswish", "Turn x·clip(x+3,0,6)/6 and x·HardSigmoid(x) into HardSwish")
def hardswish(graph: Graph) -> PassResult:
    """Replace each written-out HardSwish by one HardSwish node (keeping the last node's name)."""
    res = PassResult()
    rewrite_mul_patterns(graph, _match, "HardSwish", get_op("HardSwish").Attrs(), res)
    return res
