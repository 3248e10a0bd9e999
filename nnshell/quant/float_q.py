"""Float "quantization" (``qtune * float bfloat16``): every layer stored in a float type.

NNTool's ``qtune * float bfloat16`` makes every layer a float layer: no statistics are needed
(``fquant`` before it only gives the integer layers something to start from). The QuantState it
builds has scheme ``FLOAT``: every activation gets a :class:`~nnshell.ops._float.FloatType`,
every node its float constants already rounded to the storage type (``in<k>``; a non-float
constant such as a shape travels unchanged as ``raw<k>``). The arithmetic contract is in
``nnshell.ops._float`` and docs/FLOAT16.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nnshell.ir import Graph
from nnshell.ops._float import FLOAT_TYPES, FloatType, to_bits
from nnshell.qrecord import NodeQuant
from nnshell.quant.ranges import choose_range
from nnshell.quant.sq8 import QuantOptions, QuantState


@dataclass(frozen=True)
class FloatOptions(QuantOptions):
    """Options of a float graph: the storage type."""

    float_type: str = field(default="bfloat16", kw_only=True)

    def describe(self) -> str:
        """One line for reports."""
        width = "32" if self.float_type == "float32" else "16"
        return f"float {self.float_type} ({width}-bit storage, float32 arithmetic, RNE stores)"


def quantize_graph_float(
    graph: Graph, float_type: str, stats: dict[str, Any] | None = None
) -> QuantState:
    """Make every layer of ``graph`` a float layer stored as ``float_type``."""
    if float_type not in FLOAT_TYPES:
        raise ValueError(f"unknown float type {float_type!r}")
    ft = FloatType(float_type)
    acts = [*graph.inputs, *(o for n in graph.nodes for o in n.outputs if o)]
    tensors: dict[str, Any] = {t: ft for t in acts}
    nodes: dict[str, NodeQuant] = {}
    for node in graph.nodes:
        consts: dict[str, np.ndarray] = {}
        in_q: list[Any] = []
        for k, name in enumerate(node.inputs):
            c = graph.tensors[name].const if name else None
            if c is not None and np.asarray(c).dtype.kind == "f":
                consts[f"in{k}"] = to_bits(c, float_type)
            elif c is not None:
                consts[f"raw{k}"] = np.asarray(c)
            in_q.append(ft if name and c is None else None)
        nodes[node.name] = NodeQuant(in_q, ft, consts, {"float_type": float_type})
    ranges: dict[str, tuple[float, float]] = {}
    opts = FloatOptions(float_type=float_type)
    for t in acts:
        st = (stats or {}).get(t)
        if st is not None and st.count:
            ranges[t] = choose_range(st, opts.mode)
    return QuantState("FLOAT", opts, tensors, nodes, ranges)


def is_float_state(qstate: Any) -> bool:
    """Whether a QuantState is a float graph."""
    return getattr(qstate, "scheme", None) == "FLOAT"


def load_float_state(graph: Graph, options: dict[str, Any], malformed: type[Exception]) -> Any:
    """The float QuantState of a saved state: rebuilt from the graph and the float type (the
    stored arrays are not read, so a state file cannot smuggle weights into the C)."""
    ftype = options.get("float_type")
    if ftype not in FLOAT_TYPES:
        raise malformed(f"quantization.options.float_type: {ftype!r} is not a float type")
    return quantize_graph_float(graph, str(ftype))
