"""Memory footprint of the float and the quantized model: parameters and peak activation RAM.

Parameters: float32 weights and biases (4 bytes each) against int8 weights, int32 biases and the
per-channel requantization constants (uint8 multiplier + int8 shift). Activation RAM: the peak
over the execution order of the bytes of every tensor alive at that step (a tensor lives from the
step that writes it to the last step that reads it; graph outputs live to the end), at 4 bytes per
float element and at each tensor's quantized width (int8, int16 for Q15 softmax outputs).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from nnshell.ir import Graph
from nnshell.summary import node_params


@dataclass(frozen=True)
class LayerFootprint:
    """Parameter bytes of one layer, float and quantized."""

    name: str
    float_bytes: int
    weight_bytes: int
    bias_bytes: int
    mult_bytes: int

    @property
    def quant_bytes(self) -> int:
        """All quantized parameter bytes of the layer."""
        return self.weight_bytes + self.bias_bytes + self.mult_bytes


@dataclass(frozen=True)
class Footprint:
    """The whole model: per-layer parameters and the peak activation RAM of both versions."""

    layers: list[LayerFootprint]
    float_act_peak: int
    quant_act_peak: int
    quant_act_peak_step: int
    #: The quantized side's label: "SQ8", or "POW2-16" / "POW2-8" (16- or 8-bit containers).
    scheme: str = "SQ8"

    @property
    def float_params(self) -> int:
        """Float parameter bytes."""
        return sum(r.float_bytes for r in self.layers)

    @property
    def quant_params(self) -> int:
        """Quantized parameter bytes."""
        return sum(r.quant_bytes for r in self.layers)


def peak_live_bytes(graph: Graph, nbytes: Callable[[str], int]) -> tuple[int, int]:
    """Return (peak bytes, step of the peak) of the tensors alive during each step."""
    last_use: dict[str, int] = {}
    for idx, node in enumerate(graph.nodes):
        for i in node.inputs:
            if i and not graph.tensors[i].is_const:
                last_use[i] = idx
    end = len(graph.nodes)
    for o in graph.outputs:
        last_use[o] = end
    live = {i: nbytes(i) for i in graph.inputs}
    peak, peak_step = sum(live.values()), 0
    for idx, node in enumerate(graph.nodes):
        for o in node.outputs:
            if o:
                live[o] = nbytes(o)
        total = sum(live.values())
        if total > peak:
            peak, peak_step = total, idx
        for name in [n for n in live if last_use.get(n, -1) <= idx]:
            del live[name]
    return peak, peak_step


def footprint(graph: Graph, qstate: Any) -> Footprint:
    """Compute the footprint of ``graph`` float and as quantized by ``qstate``."""
    rows = []
    for node in graph.nodes:
        _, fbytes = node_params(graph, node)
        nq = qstate.nodes.get(node.name)
        c = nq.consts if nq is not None else {}
        w = int(c["weights"].nbytes) if "weights" in c else 0  # int8 (SQ8), int16/int8 (POW2)
        b = int(c["biases"].nbytes) if "biases" in c else 0  # int32 (SQ8), container (POW2)
        m = int(c["mul"].size) * 2 if "mul" in c else 0
        rows.append(LayerFootprint(node.name, fbytes, w, b, m))

    def float_bytes(name: str) -> int:
        return graph.tensors[name].size * 4

    def quant_bytes(name: str) -> int:
        q = qstate.tensors[name]
        return graph.tensors[name].size * int(np.dtype(q.dtype).itemsize)

    fpeak, _ = peak_live_bytes(graph, float_bytes)
    qpeak, qstep = peak_live_bytes(graph, quant_bytes)
    scheme = getattr(qstate, "scheme", "SQ8")
    if scheme == "POW2":
        scheme += f"-{getattr(qstate.options, 'bits', 16)}"
    return Footprint(rows, fpeak, qpeak, qstep, scheme)
