"""SQ8 post-training quantization of a fused graph (SQ8.md), from calibration statistics.

1. Which tensors must be symmetric: walking the graph backwards, every consumer that cannot take
   a zero point (padded conv, padded pool, global average pool, add, softmax, ...) marks its input,
   and the mark travels up through ops that only move data (max pool, reshapes, transposes).
   ``qshow`` reports, for every forced qtype, the consumer that forced it.
2. One qtype per activation tensor, in execution order: the graph input is symmetric unless its
   calibrated min is exactly 0; outputs of conv/linear-based layers are asymmetric unless forced
   (or ``--symmetric``); graph outputs are symmetric; data-moving ops keep their input's qtype;
   Concat imposes the largest input scale on all its inputs.
3. Each op's own ``quantize_sq8`` hook turns the qtypes into integer parameters.
An op without a hook is an error naming the node: nnshell never falls back to float silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nnshell.errors import QuantizationError
from nnshell.fixed_point import QType, qtype_from_range
from nnshell.ir import Graph
from nnshell.ops import get_op
from nnshell.qrecord import NodeQuant, QuantContext
from nnshell.quant.ranges import RangeMode, choose_range
from nnshell.quant.stats import TensorStats


@dataclass(frozen=True)
class QuantOptions:
    """The user's choices for ``aquant``."""

    mode: RangeMode = field(default_factory=lambda: RangeMode("minmax"))
    symmetric: bool = False
    per_tensor: bool = False

    def describe(self) -> str:
        """One line for reports: ``SQ8 minmax, asymmetric activations, per-channel weights``."""
        return (
            f"SQ8 {self.mode}, {'symmetric' if self.symmetric else 'asymmetric'} activations, "
            f"{'per-tensor' if self.per_tensor else 'per-channel'} weights"
        )


@dataclass
class QuantState:
    """The quantization of a graph: one qtype per activation tensor, parameters per node."""

    scheme: str
    options: QuantOptions
    tensors: dict[str, QType]
    nodes: dict[str, NodeQuant]
    ranges: dict[str, tuple[float, float]]


def symmetric_requirements(graph: Graph) -> dict[str, str]:
    """Map each tensor that must be symmetric to the reason (the consumer that forces it)."""
    req: dict[str, str] = {}
    for out in graph.outputs:
        req[out] = "graph output"
    for node in reversed(graph.nodes):
        op = get_op(node.op)
        for idx, name in enumerate(node.inputs):
            if not name or graph.tensors[name].is_const:
                continue
            why = op.q_symmetric_input(node, idx)
            if why and name not in req:
                req[name] = f"{node.name} ({why})"
        if op.q_passthrough and node.outputs[0] in req:
            src = node.inputs[0]
            req.setdefault(src, req[node.outputs[0]])
    return req


def _tensor_qtype(
    name: str, st: TensorStats | None, mode: RangeMode, symmetric: bool, why: str | None
) -> tuple[QType, tuple[float, float]]:
    if st is None or st.count == 0:
        raise QuantizationError(
            f"tensor '{name}' has no calibration statistics", "run aquant on calibration images"
        )
    lo, hi = choose_range(st, mode)
    return qtype_from_range(lo, hi, symmetric, forced_by=why, name=name), (lo, hi)


def assign_qtypes(
    graph: Graph, stats: dict[str, TensorStats], opts: QuantOptions
) -> tuple[dict[str, QType], dict[str, tuple[float, float]]]:
    """Give every activation tensor its qtype (step 1 and 2 of the module docstring)."""
    req = symmetric_requirements(graph)
    qt: dict[str, QType] = {}
    ranges: dict[str, tuple[float, float]] = {}
    for name in graph.inputs:
        st = stats.get(name)
        sym = opts.symmetric or name in req or st is None or st.min != 0.0
        qt[name], ranges[name] = _tensor_qtype(name, st, opts.mode, sym, req.get(name))
    for node in graph.nodes:
        op = get_op(node.op)
        ins = [qt.get(i) for i in node.inputs if i and not graph.tensors[i].is_const]
        out = node.outputs[0]
        fixed = op.q_output_qtype(node, ins)
        if fixed is not None:
            qt[out] = fixed
        elif op.q_passthrough:
            qt[out] = ins[0]
            ranges[out] = ranges.get(node.inputs[0], (0.0, 0.0))
        elif node.op == "Concat":
            forced = next((req[i] for i in node.inputs if i in req), req.get(out))
            widest = max(ins, key=lambda q: float(q.scale))
            if forced and not widest.symmetric:
                lo, hi = ranges[node.inputs[0]]
                widest = qtype_from_range(lo, hi, True, forced_by=forced)
            for i in node.inputs:
                if i and not graph.tensors[i].is_const:
                    qt[i] = widest
            qt[out] = widest
        else:
            sym = opts.symmetric or not op.q_asym(node) or out in req
            qt[out], ranges[out] = _tensor_qtype(out, stats.get(out), opts.mode, sym, req.get(out))
    return qt, ranges


def quantize_graph(graph: Graph, stats: dict[str, TensorStats], opts: QuantOptions) -> QuantState:
    """Quantize every node; the first node that cannot be quantized raises, naming it."""
    qt, ranges = assign_qtypes(graph, stats, opts)
    nodes: dict[str, NodeQuant] = {}
    for node in graph.nodes:
        in_q = [qt.get(i) if i and not graph.tensors[i].is_const else None for i in node.inputs]
        ctx = QuantContext(graph, node, in_q, qt[node.outputs[0]], opts.per_tensor)
        nodes[node.name] = get_op(node.op).quantize_sq8(ctx)
    return QuantState("SQ8", opts, qt, nodes, ranges)


def describe_unquantizable(graph: Graph) -> list[str]:
    """Names of nodes whose op has no SQ8 quantizer (checked before any calibration work)."""
    from nnshell.ops.registry import OpDef

    bad = []
    for node in graph.nodes:
        op = get_op(node.op)
        if type(op).quantize_sq8 is OpDef.quantize_sq8:
            bad.append(f"{node.name} ({node.op})")
    return bad


__all__ = [
    "QuantOptions",
    "QuantState",
    "assign_qtypes",
    "describe_unquantizable",
    "quantize_graph",
    "symmetric_requirements",
]
