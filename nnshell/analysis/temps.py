"""Activation memory per step (NNTool's ``temps``): what is live, its size, float and quantized.

A tensor is live from the step that writes it (graph inputs: from the start) to the last step
that reads it (graph outputs: to the end), the rule of :mod:`nnshell.ir.lifetimes`, so the largest
row of this table is the peak ``footprint`` reports. Float bytes are 4 per element; quantized
bytes use each tensor's quantized type (int8, int16...) when the graph is quantized.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from nnshell.ir import Graph
from nnshell.ir.lifetimes import lifetimes


@dataclass(frozen=True)
class StepTemps:
    """One step: the node, the tensors live while it runs, their bytes float and quantized."""

    step: int
    name: str
    live: list[str]
    float_bytes: int
    quant_bytes: int | None
    out_bytes: int  # float bytes of what this step writes


def temps(graph: Graph, qstate: Any = None) -> list[StepTemps]:
    """The live activations of every step of ``graph`` (quantized sizes when ``qstate``)."""

    def fbytes(t: str) -> int:
        return graph.tensors[t].size * 4

    def qbytes(t: str) -> int:
        q = qstate.tensors.get(t) if qstate is not None else None
        size = graph.tensors[t].size
        return size * (int(np.dtype(q.dtype).itemsize) if q is not None else 4)

    blocks = lifetimes(graph, fbytes, lambda _name: 1)
    rows = []
    for idx, node in enumerate(graph.nodes):
        outs = [o for o in node.outputs if o]
        live = [b.name for b in blocks if b.start <= idx <= b.end]
        rows.append(
            StepTemps(
                idx,
                node.name,
                list(live),
                sum(fbytes(t) for t in live),
                sum(qbytes(t) for t in live) if qstate is not None else None,
                sum(fbytes(o) for o in outs),
            )
        )
    return rows
