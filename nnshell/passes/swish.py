"""swish: ``x·sigmoid(x)`` becomes one Swish (SiLU) node.

YOLO-style and EfficientNet exports write SiLU as Sigmoid then Mul: an integer Mul of two
activations per layer (58 of them in a YOLOv5s), where Swish is one table activation that can
fuse into the conv. ``x·σ(x)`` is Swish by definition. The Swish op class (float kernel and
quantizers) lives in ``nnshell/ops/activation.py``; until it is registered this pass leaves the
pattern in place with a note, so it is safe to run on any build.
"""

from __future__ import annotations

from nnshell.ir import Graph, Node
from nnshell.ops.registry import all_ops
from nnshell.passes._match import feeds_only, rewrite_mul_patterns
from nnshell.passes.base import PassResult, register_pass


def _match(graph: Graph, node: Node) -> tuple[str, list[Node]] | None:
    """``(x, [sigmoid, mul])`` when ``node`` is ``Mul(x, Sigmoid(x))`` (either order), else None."""
    if node.op != "Mul" or len(node.inputs) != 2:
        return None
    a, b = node.inputs
    for s_name, x in ((b, a), (a, b)):
        s = feeds_only(graph, s_name, node)
        if s is not None and s.op == "Sigmoid" and s.inputs[0] == x and s_name != x:
            return x, [s, node]
    return None


@register_pass("swish", "Turn x·sigmoid(x) into Swish")
def swish(graph: Graph) -> PassResult:
    """Replace each ``x·sigmoid(x)`` by a Swish node when the build has the Swish op."""
    res = PassResult()
    ops = all_ops()
    if "Swish" in ops:
        rewrite_mul_patterns(graph, _match, "Swish", ops["Swish"].Attrs(), res)
        return res
    for node in [n for n in graph.nodes if n.op == "Mul"]:
        if _match(graph, node) is not None:
            res.notes.append(f"{node.name}: x·sigmoid(x) is Swish, but this build has no Swish op")
    return res
