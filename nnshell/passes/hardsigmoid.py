"""hardsigmoid: ``clip(x+3, 0, 6)/6`` and ``HardSigmoid(α, β)`` become the normalised HardSigmoid.

The normalised form is ``clip(x/6 + 1/2, 0, 1)`` (α = 1/6, β = 1/2: MobileNetV3's h-sigmoid),
the one the quantized kernels implement. Two rewrites, both exact in real numbers:

* ``hardsigmoid``: ``clip(x+3, 0, 6)·(1/6)`` (after ``div_to_mul``) is
  ``clip(x/6 + 1/2, 0, 1)``: one node.
* ``normalise_hardsigmoid``: ``HardSigmoid(α, β)(x) = clip(αx + β, 0, 1)`` equals
  ``HardSigmoid_norm(6αx + 6β − 3)``: the affine map
  ``6α·x + (6β − 3)`` is folded into the conv/linear that produces x (weights and bias scaled per
  channel, as ``fold_const_bias`` does). PaddlePaddle exports HardSigmoid(0.2, 0.5) after each SE
  block's conv. Without such a layer (or when its output has other readers) the node is kept with
  a note: a standalone Mul/Add would cost more than it saves.
"""

from __future__ import annotations

import numpy as np

from nnshell.ir import Graph, Node
from nnshell.ops import get_op
from nnshell.passes._edit import const_of, sole_consumer
from nnshell.passes._match import (
    binary_with_const,
    feeds_only,
    near,
    relu6_of_plus3,
    rewrite_mul_patterns,
)
from nnshell.passes.base import PassResult, register_pass
from nnshell.passes.fold_const_bias import _fold
from nnshell.passes.hardswish import is_unit_hardsigmoid

ALPHA, BETA = 1.0 / 6.0, 0.5


def _written_out(graph: Graph, node: Node) -> tuple[str, list[Node]] | None:
    """``(x, chain)`` when ``node`` is ``Mul(clip(x+3, 0, 6), 1/6)``, else None."""
    m = binary_with_const(graph, node, "Mul")
    if m is None or not near(m[1], ALPHA):
        return None
    r = relu6_of_plus3(graph, feeds_only(graph, m[0], node))
    return None if r is None else (r[0], [*r[1], node])


def _normalise(graph: Graph, node: Node, res: PassResult) -> None:
    """Fold HardSigmoid(α, β)'s affine part into the layer producing its input, if there is one."""
    layer = graph.producer(node.inputs[0])
    if (
        layer is None
        or layer.op not in ("Conv", "Linear")
        or const_of(graph, layer.inputs[1]) is None
        or sole_consumer(graph, node.inputs[0]) is not node
    ):
        res.notes.append(
            f"{node.name}: HardSigmoid(α={node.attrs.alpha:.4g}, β={node.attrs.beta:.4g}) has no "
            "conv/linear of its own before it to absorb 6α·x + 6β − 3; kept"
        )
        return
    a, b = float(node.attrs.alpha), float(node.attrs.beta)
    n_out = graph.tensors[node.inputs[0]].shape[1]
    _fold(graph, layer, "Mul", np.full(n_out, 6.0 * a))
    _fold(graph, layer, "Add", np.full(n_out, 6.0 * b - 3.0))
    node.attrs = get_op("HardSigmoid").Attrs(alpha=ALPHA, beta=BETA)
    res.edits.append(f"{node.name}: HardSigmoid({a:.4g}, {b:.4g}) normalised into {layer.name}")
    res.changed += 1


@register_pass(
    "normalise_hardsigmoid", "Fold HardSigmoid(α,β)'s 6αx+6β−3 into its conv: HardSigmoid(1/6,1/2)"
)
def normalise_hardsigmoid(graph: Graph) -> PassResult:
    """Normalise every HardSigmoid(α, β) whose input is a conv/linear of its own.

    Runs after ``fold_batchnorm`` and ``fold_const_bias`` so that the conv is next to it."""
    res = PassResult()
    for node in [n for n in graph.nodes if n.op == "HardSigmoid"]:
        if not is_unit_hardsigmoid(node):
            _normalise(graph, node, res)
    return res


@register_pass("hardsigmoid", "Turn clip(x+3,0,6)/6 into HardSigmoid(1/6,1/2)")
def hardsigmoid(graph: Graph) -> PassResult:
    """Rewrite written-out hard sigmoids into the normalised node.

    Runs before ``fold_const_bias``, which would otherwise fold the ``+3`` into the conv."""
    res = PassResult()
    rewrite_mul_patterns(
        graph, _written_out, "HardSigmoid", get_op("HardSigmoid").Attrs(alpha=ALPHA, beta=BETA), res
    )
    return res
