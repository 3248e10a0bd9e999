"""Which nodes are filters (a conv or linear with constant weights, maybe the head of a fusion)
and what follows them inside the fusion — what ``balance_filters`` and ``bcorr`` work on.

Kept with the passes because it reads op names; the tuning commands (:mod:`nnshell.tune`) use
only this summary.
"""

from __future__ import annotations

from dataclasses import dataclass

from nnshell.ir import Graph, Node

#: Tail parts after which a per-channel bias shift moves the output by the same amount
#: wherever it is not zero (pools take or average values; ReLU passes its positive part).
_SHIFT_TAILS = frozenset({"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool"})
_RELU = "Relu"
_FILTER_OPS = frozenset({"Conv", "Linear"})


@dataclass(frozen=True)
class Filter:
    """A filter node: its weights and bias tensors and how its output reflects its bias."""

    node: str
    op: str  # the head's op: Conv or Linear
    weights: str
    bias: str | None
    #: "plain": output = head output (+ pools): a bias shift shows everywhere;
    #: "relu": only where the output is > 0; None: another function follows (no bias rule).
    tail: str | None


def filter_of(graph: Graph, node: Node) -> Filter | None:
    """The node as a :class:`Filter`, or None when it has no constant filter weights."""
    op = node.op
    parts = ()
    if op == "Fused":
        parts = tuple(p.op for p in node.attrs.parts[1:])
        op = node.attrs.parts[0].op
    if op not in _FILTER_OPS or len(node.inputs) < 2:
        return None
    w = graph.tensors[node.inputs[1]].const
    if w is None:
        return None
    bias = node.inputs[2] if len(node.inputs) > 2 and node.inputs[2] else None
    if bias is not None and graph.tensors[bias].const is None:
        return None
    others = [p for p in parts if p not in _SHIFT_TAILS]
    tail = "plain" if not others else "relu" if others == [_RELU] else None
    return Filter(node.name, op, node.inputs[1], bias, tail)


def filters(graph: Graph) -> list[Filter]:
    """Every filter of the graph in execution order."""
    found = (filter_of(graph, n) for n in graph.nodes)
    return [f for f in found if f is not None]
