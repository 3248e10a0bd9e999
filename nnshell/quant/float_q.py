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

from nnshell.ir import Graph, Node
from nnshell.ops._float import FLOAT_TYPES, FloatType, to_bits
from nnshell.quant.qrecord import NodeQuant
from nnshell.quant.ranges import choose_range
from nnshell.quant.scheme import FLOAT
from nnshell.quant.sq8 import QuantOptions, QuantState


@dataclass(frozen=True)
class FloatOptions(QuantOptions):
    """Options of a float graph: the storage type."""

    float_type: str = field(default="bfloat16", kw_only=True)

    def describe(self) -> str:
        """One line for reports."""
        width = "32" if self.float_type == "float32" else "16"
        return f"float {self.float_type} ({width}-bit storage, float32 arithmetic, RNE stores)"


def float_node_quant(graph: Graph, node: Node, in_q: list[Any], ft: FloatType) -> NodeQuant:
    """A float layer's record: its float constants rounded to ``ft`` (``in<k>``), any other
    constant (a shape, an index) unchanged (``raw<k>``), the output stored as ``ft``."""
    consts: dict[str, np.ndarray] = {}
    for k, name in enumerate(node.inputs):
        c = graph.tensors[name].const if name else None
        if c is not None and np.asarray(c).dtype.kind == "f":
            consts[f"in{k}"] = to_bits(c, ft.ftype)
        elif c is not None:
            consts[f"raw{k}"] = np.asarray(c)
    return NodeQuant(in_q, ft, consts, {"float_type": ft.ftype})


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
        in_q = [ft if name and graph.tensors[name].const is None else None for name in node.inputs]
        nodes[node.name] = float_node_quant(graph, node, in_q, ft)
    ranges: dict[str, tuple[float, float]] = {}
    opts = FloatOptions(float_type=float_type)
    for t in acts:
        st = (stats or {}).get(t)
        if st is not None and st.count:
            ranges[t] = choose_range(st, opts.mode)
    return QuantState("FLOAT", opts, tensors, nodes, ranges)


def is_float_state(qstate: Any) -> bool:
    """Whether a QuantState is a float graph."""
    return qstate is not None and qstate.scheme == FLOAT.name


def load_float_state(graph: Graph, options: dict[str, Any], malformed: type[Exception]) -> Any:
    """The float QuantState of a saved state: rebuilt from the graph and the float type (the
    stored arrays are not read, so a state file cannot smuggle weights into the C)."""
    ftype = options.get("float_type")
    if ftype not in FLOAT_TYPES:
        raise malformed(f"quantization.options.float_type: {ftype!r} is not a float type")
    return quantize_graph_float(graph, str(ftype))


# -- mixed graphs: some layers float, the others SQ8, conversion layers between them -----------
def strip_conversions(graph: Graph) -> Graph:
    """A copy of ``graph`` without the FloatConvert layers a mixed quantization inserted."""
    from nnshell.ops.convert import is_conversion

    conv = {n.outputs[0]: n.inputs[0] for n in graph.nodes if is_conversion(n)}
    if not conv:
        return graph
    work = graph.copy()
    work.nodes = [n for n in work.nodes if not is_conversion(n)]
    for n in work.nodes:
        n.inputs = [conv.get(i, i) for i in n.inputs]
    work.outputs = [conv.get(o, o) for o in work.outputs]
    for t in conv:
        work.tensors.pop(t, None)
    return work


def quantize_mixed(
    graph: Graph,
    stats: dict[str, Any],
    float_nodes: dict[str, str],
    opts: QuantOptions,
    fixed: dict[str, Any] | None = None,
) -> tuple[Graph, QuantState]:
    """SQ8 for every layer not in ``float_nodes`` (name -> float type), float for those, and a
    FloatConvert layer wherever a tensor crosses between the two (``ops/convert.py``)."""
    from nnshell.errors import UsageError
    from nnshell.ir import TensorInfo
    from nnshell.ops import get_op
    from nnshell.ops.convert import ConvertAttrs
    from nnshell.quant.qrecord import QuantContext
    from nnshell.quant.sq8 import assign_qtypes

    kinds = set(float_nodes.values())
    if len(kinds) > 1:
        raise UsageError(
            f"qtune: the float layers of a graph share one type, got {', '.join(sorted(kinds))}",
            "qtune * float_type=bfloat16 (or another single type)",
        )
    ftype = next(iter(kinds))
    ft = FloatType(ftype)
    qt, ranges = assign_qtypes(graph, stats, opts, fixed)
    work = graph.copy()
    producer = {o: n for n in work.nodes for o in n.outputs}

    def is_float_tensor(t: str) -> bool:
        p = producer.get(t)
        if p is not None:
            return p.name in float_nodes
        readers = [n for n in work.nodes if t in n.inputs]
        return bool(readers) and all(n.name in float_nodes for n in readers)

    types: dict[str, Any] = {}
    for t in [*work.inputs, *(o for n in work.nodes for o in n.outputs if o)]:
        types[t] = ft if is_float_tensor(t) else qt[t]
    nodes: dict[str, NodeQuant] = {}
    order: list[Node] = []
    made: dict[tuple[str, str], str] = {}
    for node in work.nodes:
        floating = node.name in float_nodes
        for k, t in enumerate(node.inputs):
            if not t or work.tensors[t].is_const or is_float_tensor(t) == floating:
                continue
            to = "float" if floating else "int"
            if (t, to) not in made:
                name = work.unique_name(f"{t}_to_{to}")
                work.tensors[name] = TensorInfo(name, work.tensors[t].shape, work.tensors[t].dtype)
                cnode = Node(work.unique_name(f"{name}_conv"), "FloatConvert", [t], [name])
                cnode.attrs = ConvertAttrs(to)
                types[name] = ft if floating else qt[t]
                qt[name] = qt[t]
                info = {"convert": to, "float_type": ftype}
                nodes[cnode.name] = NodeQuant([types[t]], types[name], {}, info)
                order.append(cnode)
                made[(t, to)] = name
            node.inputs[k] = made[(t, to)]
        order.append(node)
        in_q = [types.get(i) if i and not work.tensors[i].is_const else None for i in node.inputs]
        if floating:
            nodes[node.name] = float_node_quant(work, node, in_q, ft)
        else:
            ctx = QuantContext(work, node, in_q, qt[node.outputs[0]], opts.per_tensor)
            nodes[node.name] = get_op(node.op).quantize_sq8(ctx)
    work.nodes = order
    return work, QuantState("SQ8", opts, types, nodes, ranges)
