"""SQ8 post-training quantization of a fused graph (SQ8.md), from calibration statistics.

1. Which tensors must be symmetric: walking the graph backwards, every consumer that cannot take
   a zero point (add, softmax, ...) marks its input, and the mark travels up through ops that
   only move data (max pool, reshapes, transposes). Padded convs and pools pad with their input
   zero point and the global average pool subtracts it, so they take any qtype; with
   ``nntool_padding`` (``aquant --nntool_padding``) they mark their input too, NNTool's rule.
   ``qshow`` reports, for every forced qtype, the consumer that forced it.
2. One qtype per group of tensors that must share it (a data-moving op's input and output, a
   Concat's inputs and output — found by union-find), from the union of the members' ranges:
   the graph input is symmetric unless its calibrated min is exactly 0; outputs of
   conv/linear-based layers are asymmetric unless forced (or ``--symmetric``); graph outputs
   are symmetric; a fixed output format (Q15 softmax, 1/127 sigmoid) wins. An asymmetric
   ReLU-N output (ReLU6, any ``Clip(0, N)``) gets exactly ``[0, N]`` whatever the calibration
   saw — NNTool's rule, so the int8 saturation is the clip and its AutoTiler kernels need no
   upper bound (``KOP_RELUM``); ``QuantOptions.relun_range = "calibrated"`` (``set
   relun_range calibrated``) keeps the calibrated range instead. A ReLU-N output that a
   consumer forces symmetric keeps its calibrated range, as in NNTool.
3. Each op's own ``quantize_sq8`` hook turns the qtypes into integer parameters.
An op without a hook is an error naming the node: nnshell never falls back to float silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from nnshell.errors import QuantizationError
from nnshell.ir import Graph, Node
from nnshell.ops import get_op
from nnshell.quant.fixed_point import QType, qtype_from_range
from nnshell.quant.qrecord import NodeQuant, QuantContext
from nnshell.quant.ranges import RangeMode, choose_range
from nnshell.quant.stats import TensorStats
from nnshell.quant.union_find import TensorGroups


@dataclass(frozen=True)
class QuantOptions:
    """The user's choices for ``aquant``."""

    mode: RangeMode = field(default_factory=lambda: RangeMode("minmax"))
    symmetric: bool = False
    per_tensor: bool = False
    #: ReLU-N outputs: "bound" (NNTool's rule, [0, N]) or "calibrated" (the calibrated range).
    #: Keyword-only so the positional fields of subclasses (POW2's ``bits``) keep their place.
    relun_range: str = field(default="bound", kw_only=True)
    #: Width of the conv/linear requantization multipliers: 8 (SQ8, GAP's kernels) or, for a
    #: TFLite file opened with ``-q``, up to 30 (TFLite's own precision; see docs/tflite.md).
    mult_bits: int = field(default=8, kw_only=True)
    #: NNTool's rule: inputs of padded convs and pools and of global average pools symmetric
    #: (``aquant --nntool_padding``); default: they pad with the zero point (docs/quantization.md).
    nntool_padding: bool = field(default=False, kw_only=True)

    def describe(self) -> str:
        """One line for reports: ``SQ8 minmax, asymmetric activations, per-channel weights``."""
        text = (
            f"SQ8 {self.mode}, {'symmetric' if self.symmetric else 'asymmetric'} activations, "
            f"{'per-tensor' if self.per_tensor else 'per-channel'} weights"
        )
        if self.relun_range == "calibrated":
            text += ", calibrated ReLU-N ranges"
        if self.mult_bits != 8:
            text += f", {self.mult_bits}-bit multipliers"
        if self.nntool_padding:
            text += ", symmetric padded inputs (NNTool)"
        return text


def per_tensor_weights(node: Node, opts: QuantOptions) -> bool:
    """Whether ``node``'s weights get one scale: ``--per_tensor`` unless ``balance_filters``
    marked the layer (its channels then keep their own scales, NNTool's multiplicative bias)."""
    return bool(opts.per_tensor) and not node.meta.get("balanced", False)


@dataclass
class QuantState:
    """The quantization of a graph: one qtype per activation tensor, parameters per node."""

    scheme: str
    options: QuantOptions
    tensors: dict[str, QType]
    nodes: dict[str, NodeQuant]
    ranges: dict[str, tuple[float, float]]

    @property
    def warnings(self) -> list[str]:
        """Warnings the quantizer recorded per node (POW2 precision reduction), graph order."""
        return [w for nq in self.nodes.values() for w in nq.info.get("warnings", [])]


def symmetric_requirements(graph: Graph, nntool_padding: bool = False) -> dict[str, str]:
    """Map each tensor that must be symmetric to the reason (the consumer that forces it);
    ``nntool_padding``: padded convs / pools and global average pools force theirs too."""
    req: dict[str, str] = {}
    for out in graph.outputs:
        req[out] = "graph output"
    for node in reversed(graph.nodes):
        op = get_op(node.op)
        if nntool_padding:
            why = op.q_padded_output(node)
            if why and node.outputs[0] not in req:
                req[node.outputs[0]] = f"{node.name} ({why})"
        for idx, name in enumerate(node.inputs):
            if not name or graph.tensors[name].is_const:
                continue
            why = op.q_symmetric_input(node, idx)
            if not why and nntool_padding:
                why = op.q_padded_input(node, idx)
            if why and name not in req:
                req[name] = f"{node.name} ({why})"
        if op.q_passthrough and node.outputs[0] in req:
            src = node.inputs[0]
            req.setdefault(src, req[node.outputs[0]])
    return req


def qtype_groups(graph: Graph) -> dict[str, list[str]]:
    """Group the tensors that must share one qtype: data-moving ops and Concat tie them.

    A max pool, reshape or transpose moves codes without rescaling, and a Concat copies its
    inputs side by side, so input and output must agree. Union-find over those ties gives each
    group once (keyed by a representative tensor).
    """
    ties = TensorGroups()
    for name in graph.inputs:
        ties.find(name)
    for node in graph.nodes:
        acts = [i for i in node.inputs if i and not graph.tensors[i].is_const]
        out = node.outputs[0]
        ties.find(out)
        op = get_op(node.op)
        if op.q_passthrough and acts and op.q_output_qtype(node, []) is None:
            ties.union(out, acts[0])
        elif op.q_ties_inputs:
            for i in acts:
                # issue 17 (elt): an input of a fixed format (sigmoid 1/127, softmax Q15) is not
                # tied, or it would clip every other branch: the Concat rescales it instead
                if not _fixed_format(graph, i):
                    ties.union(out, i)
    return ties.groups()


def _fixed_format(graph: Graph, t: str) -> bool:
    """Whether tensor ``t`` is produced by an op that imposes its output qtype (issue 17)."""
    node = graph.producer(t)
    return node is not None and get_op(node.op).q_output_qtype(node, []) is not None


def _group_qtype(
    graph: Graph,
    members: list[str],
    stats: dict[str, TensorStats],
    opts: QuantOptions,
    req: dict[str, str],
) -> tuple[QType, tuple[float, float]]:
    """One qtype for a group: the union of the members' ranges, symmetric if any needs it."""
    producers = {o: n for n in graph.nodes for o in n.outputs}
    for t in members:
        node = producers.get(t)
        if node is not None:
            fixed = get_op(node.op).q_output_qtype(node, [])
            if fixed is not None:
                return fixed, (float("nan"), float("nan"))
    why = next((req[t] for t in members if t in req), None)
    sym = opts.symmetric or why is not None
    for t in members:
        node = producers.get(t)
        if node is None and t in graph.inputs:
            st = stats.get(t)
            sym = sym or st is None or st.min != 0.0  # SQ8 §2: inputs symmetric unless min is 0
        elif node is not None:
            op = get_op(node.op)
            if not (op.q_passthrough or op.q_ties_inputs):
                sym = sym or not op.q_asym(node)
    lo, hi = float("inf"), float("-inf")
    for t in members:
        bound = None
        if not sym and opts.relun_range == "bound" and t in producers:
            bound = get_op(producers[t].op).q_output_bound(producers[t], graph)
        st = stats.get(t)
        if bound is not None:
            tlo, thi = bound  # NNTool's ReLU-N rule (SQ8.md §2): [0, N] whatever was seen
        elif st is None or st.count == 0:
            continue
        else:
            tlo, thi = choose_range(st, opts.mode)
        lo, hi = min(lo, tlo), max(hi, thi)
    if lo > hi:
        raise QuantizationError(
            f"tensor '{members[0]}' has no calibration statistics",
            "run aquant on calibration images",
        )
    return qtype_from_range(lo, hi, sym, forced_by=why, name=members[0]), (lo, hi)


def assign_qtypes(
    graph: Graph,
    stats: dict[str, TensorStats],
    opts: QuantOptions,
    fixed: dict[str, QType] | None = None,
) -> tuple[dict[str, QType], dict[str, tuple[float, float]]]:
    """Give every activation tensor its qtype (step 1 and 2 of the module docstring).

    ``fixed`` imposes qtypes on tensors (an input formatter's codes): their group takes it.
    """
    req = symmetric_requirements(graph, opts.nntool_padding)
    qt: dict[str, QType] = {}
    ranges: dict[str, tuple[float, float]] = {}
    for members in qtype_groups(graph).values():
        q, rng = _group_qtype(graph, members, stats, opts, req)
        q = next((fixed[t] for t in members if fixed and t in fixed), q)
        for t in members:
            qt[t] = q
            ranges[t] = rng
    return qt, ranges


def node_context(
    graph: Graph, node: Node, qt: Mapping[str, QType], opts: QuantOptions
) -> QuantContext:
    """What an op's SQ8 quantizer is given for ``node``: its activation input qtypes (None for
    constants), its output qtype and the weight granularity the options ask for."""
    in_q = [qt.get(i) if i and not graph.tensors[i].is_const else None for i in node.inputs]
    return QuantContext(
        graph,
        node,
        in_q,
        qt[node.outputs[0]],
        per_tensor_weights(node, opts),
        mult_bits=opts.mult_bits,
    )


def quantize_graph(
    graph: Graph,
    stats: dict[str, TensorStats],
    opts: QuantOptions,
    fixed: dict[str, QType] | None = None,
) -> QuantState:
    """Quantize every node; the first node that cannot be quantized raises, naming it.

    ``fixed``: qtypes imposed on tensors (see :func:`assign_qtypes`). Expressions are
    quantized part by part on their expanded view, then folded back (ops/expression.py).
    """
    from nnshell.ops.expression import collapse_quant, expand_graph, has_expressions

    if has_expressions(graph):
        qs = quantize_graph(expand_graph(graph), stats, opts, fixed)
        return collapse_quant(graph, qs)  # type: ignore[no-any-return]
    qt, ranges = assign_qtypes(graph, stats, opts, fixed)
    nodes: dict[str, NodeQuant] = {}
    for node in graph.nodes:
        nodes[node.name] = get_op(node.op).quantize_sq8(node_context(graph, node, qt, opts))
    return QuantState("SQ8", opts, qt, nodes, ranges)


def describe_unquantizable(graph: Graph, hook: str = "quantize_sq8") -> list[str]:
    """Names of nodes whose op lacks the scheme's quantizer ``hook`` (checked before any
    calibration work): ``quantize_sq8`` or ``quantize_pow2``."""
    from nnshell.ops.registry import OpDef

    base = getattr(OpDef, hook)
    return [
        f"{node.name} ({node.op})"
        for node in graph.nodes
        if getattr(type(get_op(node.op)), hook) is base
    ]


__all__ = [
    "QuantOptions",
    "QuantState",
    "assign_qtypes",
    "describe_unquantizable",
    "quantize_graph",
    "symmetric_requirements",
]
