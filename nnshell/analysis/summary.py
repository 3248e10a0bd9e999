"""Per-layer figures for ``show``: shapes, parameters, activation bytes and MACs.

Parameters are the float elements of a node's constant inputs (weights, biases, BN statistics);
integer constants such as shape vectors are not parameters. Bytes are at the graph's current
precision: 4 per float parameter until the graph is quantized.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nnshell.ir import Graph, Node
from nnshell.ops import get_op
from nnshell.ops.fused import op_label


@dataclass(frozen=True)
class LayerInfo:
    """One row of the layer table."""

    step: int
    name: str
    op: str
    in_dims: tuple[tuple[int, ...], ...]
    out_dims: tuple[tuple[int, ...], ...]
    inputs: tuple[str, ...]
    params: int
    param_bytes: int
    act_bytes: int
    macs: int


@dataclass(frozen=True)
class GraphTotals:
    """The totals row of the layer table."""

    params: int
    param_bytes: int
    macs: int
    peak_act_bytes: int


def node_params(graph: Graph, node: Node) -> tuple[int, int]:
    """Return (parameter count, bytes) of the float constants a node reads."""
    count = nbytes = 0
    for name in node.inputs:
        t = graph.tensors.get(name) if name else None
        if t is not None and t.const is not None and np.issubdtype(t.const.dtype, np.floating):
            count += int(t.const.size)
            nbytes += int(t.const.nbytes)
    return count, nbytes


def _input_labels(graph: Graph, node: Node) -> tuple[str, ...]:
    """Name each activation input by the node that produces it (or the graph input name)."""
    labels = []
    producers = {o: n.name for n in graph.nodes for o in n.outputs}
    for i in node.inputs:
        t = graph.tensors.get(i) if i else None
        if t is None or t.is_const:
            continue
        labels.append(producers.get(i, i))
    return tuple(labels)


def layer_infos(graph: Graph) -> list[LayerInfo]:
    """Return one LayerInfo per node, in execution order."""
    rows = []
    for step, node in enumerate(graph.nodes):
        ins = graph.in_infos(node)
        outs = graph.out_infos(node)
        params, pbytes = node_params(graph, node)
        act_bytes = sum(t.size * np.dtype(t.dtype).itemsize for t in outs)
        rows.append(
            LayerInfo(
                step=step,
                name=node.name,
                op=op_label(node),
                in_dims=tuple(t.dims for t in ins if t is not None and not t.is_const),
                out_dims=tuple(t.dims for t in outs),
                inputs=_input_labels(graph, node),
                params=params,
                param_bytes=pbytes,
                act_bytes=int(act_bytes),
                macs=get_op(node.op).macs(node, ins, outs),
            )
        )
    return rows


def graph_totals(graph: Graph, rows: list[LayerInfo] | None = None) -> GraphTotals:
    """Sum parameters and MACs; estimate peak activation bytes from tensor lifetimes."""
    rows = rows if rows is not None else layer_infos(graph)
    return GraphTotals(
        params=sum(r.params for r in rows),
        param_bytes=sum(r.param_bytes for r in rows),
        macs=sum(r.macs for r in rows),
        peak_act_bytes=peak_activation_bytes(graph),
    )


def peak_activation_bytes(graph: Graph) -> int:
    """Largest sum of live activation bytes at any step (inputs of the step + its outputs)."""
    last_use: dict[str, int] = {}
    for idx, node in enumerate(graph.nodes):
        for i in node.inputs:
            last_use[i] = idx
    for o in graph.outputs:
        last_use[o] = len(graph.nodes)

    def nbytes(name: str) -> int:
        t = graph.tensors[name]
        return t.size * np.dtype(t.dtype).itemsize

    live = {i: nbytes(i) for i in graph.inputs}
    peak = sum(live.values())
    for idx, node in enumerate(graph.nodes):
        for o in node.outputs:
            live[o] = nbytes(o)
        peak = max(peak, sum(live.values()))
        for name in [n for n in live if last_use.get(n, -1) <= idx]:
            del live[name]
    return peak
