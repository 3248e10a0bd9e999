"""move_activations_up: move an activation or max pool above a shape-only op.

``act(reshape(y)) = reshape(act(y))`` for any elementwise activation, so an activation that
follows a Flatten/Reshape after a conv/linear is moved next to that layer, where it can fuse.
"""

from __future__ import annotations

from nnshell.ir import Graph
from nnshell.ops.fused_act import POW2, SQ8, fusable_activations
from nnshell.passes._edit import reinfer, sole_consumer, swap_adjacent
from nnshell.passes.base import PassResult, register_pass

#: The pointwise activations a fusion could take (ops/fused_act.py), in either scheme.
ACTIVATIONS = fusable_activations(SQ8) | fusable_activations(POW2)
_SHAPE_ONLY = {"Flatten", "Reshape", "Squeeze", "Unsqueeze"}


@register_pass("move_activations_up", "Move activations above reshapes, next to their layer")
def move_activations_up(graph: Graph) -> PassResult:
    """Swap (shape op → activation) pairs in place when the shape op has one reader."""
    res = PassResult()
    for act in [n for n in graph.nodes if n.op in ACTIVATIONS]:
        shp = graph.producer(act.inputs[0])
        if (
            shp is None
            or shp.op not in _SHAPE_ONLY
            or sole_consumer(graph, shp.outputs[0]) is not act
        ):
            continue
        layer = graph.producer(shp.inputs[0])
        if layer is None or layer.op not in ("Conv", "Linear", "Gemm", "MatMul"):
            continue
        swap_adjacent(graph, shp, act)
        res.edits.append(f"{act.name} moved above {shp.name}")
        res.changed += 1
    if res.changed:
        reinfer(graph)
    return res
