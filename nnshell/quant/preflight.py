"""Check that every layer can be quantized before any calibration image is read (issue 17).

Calibrating a large model takes minutes; finding out afterwards that layer 58 has no kernel,
then fixing it and finding layer 59, sends the user round in circles. ``aquant`` therefore runs
each layer's quantizer once on statistics from one synthetic probe (seeded noise through the
float graph: every tensor gets a plausible range in a single inference) and collects *every*
structural refusal — a missing quantizer, an activation without a fused kernel, a Mul of two
activations — into one line. Refusals that depend on the calibrated ranges (a multiplier or bias
out of range) are not structural: real statistics decide them, so they are left to the real run.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np

from nnshell.errors import NnshellError
from nnshell.ir import Graph, Node
from nnshell.quant.ranges import choose_range
from nnshell.quant.stats import TensorStats

#: Message fragments of refusals that depend on the calibrated ranges, not on the graph.
_DATA_DEPENDENT = (
    "requantization scale",
    "does not fit int32",
    "calibrated range",
    "range [",
    "accumulator needs",
    "exceed 2^53",
    "no calibration statistics",
    "no observed output range",
    "unusable scale",
    "nan or infinity",
)


def is_data_dependent(err: NnshellError) -> bool:
    """The refusal depends on calibrated ranges (real statistics may not trigger it)."""
    text = f"{err.message} {err.hint or ''}".lower()
    return "calibration" in text or any(f in text for f in _DATA_DEPENDENT)


def probe_stats(
    graph: Graph, run_all: Callable[[np.ndarray], dict[str, np.ndarray]] | None = None
) -> dict[str, TensorStats]:
    """Statistics of every tensor for one seeded uniform[-1, 1] input (batch 1).

    ``run_all`` maps the input batch to every node output (the onnxruntime runner); without it
    the numpy executor runs with an observer."""
    from nnshell.exec import run_float
    from nnshell.ops.expression import expand_graph

    graph = expand_graph(graph)  # an expression's inner tensors are checked too
    rng = np.random.default_rng(17)
    feeds: dict[str, np.ndarray] = {}
    stats: dict[str, TensorStats] = {}
    for name in graph.inputs:
        shape = (1, *(int(d) for d in graph.tensors[name].shape[1:]))
        feeds[name] = rng.uniform(-1.0, 1.0, shape).astype(np.float32)
        stats[name] = TensorStats()
        stats[name].update(feeds[name])
    name = graph.inputs[0]
    x = feeds[name]
    if run_all is not None and len(feeds) == 1:
        for k, v in run_all(x).items():
            stats.setdefault(k, TensorStats()).update(v)
        return stats
    run_float(graph, feeds, observer=lambda k, v: stats.setdefault(k, TensorStats()).update(v))
    return stats


def _describe(node: Node) -> str:
    from nnshell.ops import get_op

    return f"{node.name} ({get_op(node.op).label(node)})"


def _reason(node: Node, err: NnshellError) -> str:
    """The error message without the layer name it starts with."""
    msg = err.message
    for prefix in (f"{node.name}: ", f"layer '{node.name}': "):
        if msg.startswith(prefix):
            return msg[len(prefix) :]
    return re.sub(r"^layer '[^']*': ", "", msg)


def _check(node: Node, bad: list[str], quantize: Callable[[], Any]) -> None:
    """Run one layer's quantizer; record a structural refusal (or a quantizer crash) in ``bad``.

    A crash other than an NnshellError is a bug of that quantizer, but for the user it is the
    same fact — this layer cannot be quantized — so it is listed, not raised as a traceback."""
    try:
        quantize()
    except NnshellError as e:
        if not is_data_dependent(e):
            bad.append(f"{_describe(node)}: {_reason(node, e)}")
    except Exception as e:  # noqa: BLE001 - see the docstring
        detail = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        bad.append(f"{_describe(node)}: its quantizer failed ({detail.splitlines()[0]})")


def refusals(
    graph: Graph, stats: dict[str, TensorStats], scheme: str, opts: Any, fixed: Any = None
) -> list[str]:
    """``"name (Op): reason"`` for every layer the scheme ("SQ8"/"POW2") cannot quantize."""
    from nnshell.ops import get_op
    from nnshell.ops.expression import expand_graph

    graph = expand_graph(graph)  # expressions quantize part by part
    bad: list[str] = []
    if scheme == "SQ8":
        from nnshell.quant.qrecord import QuantContext
        from nnshell.quant.sq8 import assign_qtypes, per_tensor_weights

        try:
            qt, _ = assign_qtypes(graph, stats, opts, fixed)
        except NnshellError as e:
            return [] if is_data_dependent(e) else [f"graph: {e.message}"]
        for node in graph.nodes:
            in_q = [qt.get(i) if i and not graph.tensors[i].is_const else None for i in node.inputs]
            ctx = QuantContext(
                graph,
                node,
                in_q,
                qt[node.outputs[0]],
                per_tensor_weights(node, opts),
                mult_bits=opts.mult_bits,
            )
            _check(node, bad, lambda ctx=ctx: get_op(ctx.node.op).quantize_sq8(ctx))
        return bad
    from nnshell.quant import pow2

    try:
        qt, ranges = pow2.assign_q(graph, stats, opts)
    except NnshellError as e:
        if is_data_dependent(e) and opts.bits != 16:
            # a range too wide for 8 bits on the probe: the layers' structure is the same in
            # 16 bits, so check them there (the real range decides -f 8 after calibration)
            import dataclasses

            return refusals(graph, stats, scheme, dataclasses.replace(opts, bits=16), fixed)
        return [] if is_data_dependent(e) else [f"graph: {e.message}"]
    for node in graph.nodes:
        st = stats.get(node.outputs[0])
        out_range = (
            choose_range(st, opts.mode) if st is not None and st.count else ranges[node.outputs[0]]
        )
        _check(
            node,
            bad,
            lambda n=node, r=out_range: pow2._quantize_node(graph, n, qt, opts.bits, r, ranges),
        )
    return bad


def refusal_line(bad: list[str], label: str) -> str:
    """One line: ``N layer(s) cannot be quantized in SQ8: A (Op): reason; B (Op): reason``."""
    return f"{len(bad)} layer(s) cannot be quantized in {label}: " + "; ".join(bad)
