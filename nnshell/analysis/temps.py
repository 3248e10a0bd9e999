"""Activation memory per step (NNTool's ``temps``): what is live, its size, float and quantized.

A tensor is live from the step that writes it (graph inputs: from the start) to the last step
that reads it (graph outputs: to the end), the rule of :mod:`nnshell.footprint`, so the largest
row of this table is the peak ``footprint`` reports. Float bytes are 4 per element; quantized
bytes use each tensor's quantized type (int8, int16...) when the graph is quantized.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from nnshell.ir import Graph


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
    last_use: dict[str, int] = {}
    for idx, node in enumerate(graph.nodes):
        for i in node.inputs:
            if i and not graph.tensors[i].is_const:
                last_use[i] = idx
    for o in graph.outputs:
        last_use[o] = len(graph.nodes)

    def fbytes(t: str) -> int:
        return graph.tensors[t].size * 4

    def qbytes(t: str) -> int:
        q = qstate.tensors.get(t) if qstate is not None else None
        size = graph.tensors[t].size
        return size * (int(np.dtype(q.dtype).itemsize) if q is not None else 4)

    live: list[str] = list(graph.inputs)
    rows = []
    for idx, node in enumerate(graph.nodes):
        outs = [o for o in node.outputs if o]
        live += [o for o in outs if o not in live]
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
        live = [t for t in live if last_use.get(t, -1) > idx]
    return rows
