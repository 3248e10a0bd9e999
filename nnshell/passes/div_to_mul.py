"""div_to_mul: division by a constant is multiplication by its reciprocal.

``x / c = x · (1/c)`` (to float rounding): exporters write HardSwish as ``x·clip(x+3,0,6)/6`` and
scale layers as ``/ c``; turning every such Div into a Mul lets one pattern (Mul by a constant)
serve the HardSwish/HardSigmoid matchers and ``fold_const_bias``, and Mul has the kernels. Only
``x / c`` with ``c`` constant and nonzero everywhere qualifies; ``c / x`` is not a scaling of x.
"""

from __future__ import annotations

import numpy as np

from nnshell.ir import Graph
from nnshell.passes._edit import const_of, new_const, prune_consts
from nnshell.passes.base import PassResult, register_pass


@register_pass("div_to_mul", "Turn division by a constant into multiplication by 1/c")
def div_to_mul(graph: Graph) -> PassResult:
    """Rewrite ``Div(x, c)`` as ``Mul(x, 1/c)`` in place; ``c / x`` and ``x / 0`` are kept."""
    res = PassResult()
    for node in [n for n in graph.nodes if n.op == "Div"]:
        x, cname = node.inputs[0], node.inputs[1]
        c = const_of(graph, cname)
        if c is None or const_of(graph, x) is not None:
            if const_of(graph, x) is not None and c is None:
                res.notes.append(f"{node.name}: constant divided by an activation; kept")
            continue
        if not np.issubdtype(c.dtype, np.floating) or np.any(c == 0) or not np.all(np.isfinite(c)):
            res.notes.append(f"{node.name}: divisor is not a finite nonzero float; kept")
            continue
        inv = (1.0 / c.astype(np.float64)).astype(c.dtype)
        node.op = "Mul"  # same BinaryAttrs (legacy broadcast included)
        node.inputs = [x, new_const(graph, f"{node.name}_reciprocal", inv)]
        prune_consts(graph)
        res.edits.append(f"{node.name}: Div by a constant → Mul by its reciprocal")
        res.changed += 1
    return res
