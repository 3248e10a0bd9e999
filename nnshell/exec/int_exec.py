"""The batched integer executor: runs a quantized graph exactly as the MCU will.

Inputs are quantized with the graph input's qtype; every node then runs its op's ``run_int``
hook on integer arrays only (its integer parameters come from the QuantState), so the results
are bit-exact with the generated C. Constants are never read from the float graph here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from nnshell.ir import Graph
from nnshell.ops import get_op

IntObserver = Callable[[str, np.ndarray], None]


def quantize_inputs(graph: Graph, qstate: Any, feeds: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Quantize float feeds with the graph inputs' qtypes (int arrays pass through)."""
    out = {}
    for name in graph.inputs:
        x = np.asarray(feeds[name])
        out[name] = x if x.dtype.kind in "iu" else qstate.tensors[name].quantize(x)
    return out


def run_int(
    graph: Graph,
    qstate: Any,
    feeds: Mapping[str, np.ndarray],
    *,
    keep: Iterable[str] | None = None,
    observer: IntObserver | None = None,
) -> dict[str, np.ndarray]:
    """Run the quantized graph on batched feeds; return integer graph outputs and ``keep``."""
    wanted = set(graph.outputs) | set(keep or ())
    last_use: dict[str, int] = {}
    for idx, node in enumerate(graph.nodes):
        for i in node.inputs:
            last_use[i] = idx
    values: dict[str, np.ndarray] = quantize_inputs(graph, qstate, feeds)
    if observer is not None:
        for name in graph.inputs:
            observer(name, values[name])
    for idx, node in enumerate(graph.nodes):
        args = [values[i] if i and not graph.tensors[i].is_const else None for i in node.inputs]
        outs = get_op(node.op).run_int(node, qstate.nodes[node.name], *args)
        for name, val in zip(node.outputs, outs, strict=False):
            values[name] = val
            if observer is not None:
                observer(name, val)
        for i in set(node.inputs):
            if last_use.get(i) == idx and i not in wanted and i in values:
                del values[i]
    return {k: v for k, v in values.items() if k in wanted}


def dequantize(qstate: Any, name: str, q: np.ndarray) -> np.ndarray:
    """Real values of integer codes of tensor ``name``."""
    return qstate.tensors[name].dequantize(q)
