"""The batched integer executor: runs a quantized graph exactly as the MCU will.

Inputs are quantized with the graph input's qtype; every node then runs its op's ``run_int``
hook on integer arrays only (its integer parameters come from the QuantState), so the results
are bit-exact with the generated C. Constants are never read from the float graph here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from nnshell.exec.float_exec import walk
from nnshell.ir import Graph, Node
from nnshell.ops import get_op
from nnshell.quant.scheme import FLOAT, scheme_of

IntObserver = Callable[[str, np.ndarray], None]


def quantize_inputs(graph: Graph, qstate: Any, feeds: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Quantize float feeds with the graph inputs' qtypes (int arrays pass through).

    A formatted input (``imageformat``) fed raw ``(N, H, W, C)`` pixels gets the formatter's
    integer codes instead."""
    out = {}
    for name in graph.inputs:
        x = np.asarray(feeds[name])
        if graph.meta.get("input_formatter"):  # raw HWC pixels: the formatter's integer codes
            from nnshell.input.formatter import format_feed_int

            codes = format_feed_int(graph, name, x)
            if codes is not None:
                out[name] = codes
                continue
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
    values: dict[str, np.ndarray] = quantize_inputs(graph, qstate, feeds)

    def call(node: Node, args: list[np.ndarray | None]) -> list[np.ndarray]:
        return run_node_int(node, qstate, *args)

    return walk(graph, values, call, keep, observer)


def run_node_int(node: Node, qstate: Any, *args: np.ndarray | None) -> list[np.ndarray]:
    """One node's integer kernel for the scheme of ``qstate`` (POW2: ``run_int_pow2``)."""
    nq = qstate.nodes[node.name]
    scheme = FLOAT if "float_type" in nq.info else scheme_of(qstate)  # float layers (qtune)
    return scheme.run_int(get_op(node.op))(node, nq, *args)


def dequantize(qstate: Any, name: str, q: np.ndarray) -> np.ndarray:
    """Real values of integer codes of tensor ``name``."""
    return qstate.tensors[name].dequantize(q)
