"""``weight_equalization`` and ``balance_filters`` on a session (the graph logic is in
:mod:`nnshell.passes.equalize` and :mod:`nnshell.passes.filters`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nnshell.errors import GraphStateError, UsageError


def weight_equalization(session: Any, threshold: float = 0.1, pow2: bool = True) -> Any:
    """Equalize the open graph's consecutive conv/linear pairs (Nagel et al. 2019).

    The float outputs do not change (bit for bit with ``pow2``, the default: power-of-two
    scales; up to float32 rounding with NNTool's exact scales), but the weights and the
    activations between the layers of a pair do (scaled per channel): the calibration
    statistics no longer hold, so the quantization is dropped and ``aquant`` must run again. Returns
    :class:`~nnshell.passes.equalize.EqualizeResult`.
    """
    from nnshell.passes.equalize import equalize

    graph = session.require_graph()
    work = graph.copy()
    res = equalize(work, float(threshold), pow2)
    if not res.pairs:
        return res
    if work.meta.get("load_quantization") and session.qstate is not None:
        res.notes.append("the file's quantization (open -q) no longer fits the new weights")
    session.graph = work
    session._runners = {}
    if session._drop_quantization():
        res.notes.append("the weights changed: calibration and quantization dropped (aquant)")
    if session.scheme is not None:
        res.notes.append(
            "fusions with another scheme starts again from the graph before fusions: "
            "run weight_equalization again after it"
        )
    return res


@dataclass
class BalanceResult:
    """What balance_filters did: the layers given per-channel weight scales and why."""

    balanced: list[tuple[str, float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def channel_precision(w: Any) -> Any:
    """Each output channel's weight range (max − min) as a fraction of the whole tensor's:
    NNTool's ``avg_prec``. A channel at 0.05 uses 1/20 of a per-tensor int8 scale's codes."""
    import numpy as np

    w = np.asarray(w, np.float64).reshape(w.shape[0], -1)
    whole = float(w.max() - w.min())
    if whole <= 0:
        return np.ones(w.shape[0])
    return np.ptp(w, axis=1) / whole


def balance_filters(session: Any, step: int | None = None, threshold: float = 0.2) -> BalanceResult:
    """Give filters whose channels use few per-tensor codes one weight scale per channel.

    NNTool divides each output channel's weights by its own range and multiplies the output by
    that range again (a "multiplicative bias"); in SQ8 every channel already has its own
    output multiplier (M, N), so balancing a layer means its weight scale becomes per channel
    even under ``aquant --per_tensor``. The layers chosen are those with a channel whose range
    is below ``threshold`` of the tensor's range (``-t``), or the one step ``-s`` names (NNTool's
    step number, as in ``nodeoption``: ``show --nntool_steps``). No float
    value changes: a quantization is re-derived from the same statistics at once.
    """
    from nnshell.passes.filters import filter_of, filters
    from nnshell.selectors import select_steps

    graph = session.require_graph()
    if session.scheme == "pow2":
        raise GraphStateError(
            "balance_filters: POW2 weights are per-tensor powers of two",
            "use fusions --scale8 (SQ8 has a multiplier per channel)",
        )
    if not 0 < threshold <= 1:
        raise UsageError(
            f"balance_filters: -t {threshold} is not in (0, 1]", "balance_filters -t 0.2"
        )
    if step is not None:  # NNTool's step number, as nodeoption (show --nntool_steps)
        picked = [graph.nodes[i] for i in select_steps(graph, f"S{step}")]
        found = [f for f in (filter_of(graph, n) for n in picked) if f is not None]
        if not found:
            raise UsageError(
                f"balance_filters: step {step} ({picked[0].op if picked else '?'}) has no filter "
                "weights",
                "show lists the steps; pick a convolution or linear layer",
            )
    else:
        found = filters(graph)
    res = BalanceResult()
    work = graph.copy()
    for f in found:
        prec = channel_precision(graph.tensors[f.weights].const)
        low = float(prec.min())
        if step is not None or low < threshold:
            work.node(f.node).meta["balanced"] = True
            res.balanced.append((f.node, low))
    if not res.balanced:
        res.notes.append(f"no filter has a channel below {threshold} of its tensor's range")
        return res
    qstate = requantize(session, work)
    session.graph, session._runners = work, {}
    if qstate is not None:
        if not getattr(session.qstate.options, "per_tensor", True):
            res.notes.append("the weights are quantized per channel already: nothing changes")
        session.qstate = qstate
        res.notes.append("re-quantized from the same statistics")
    return res


def requantize(session: Any, work: Any) -> Any:
    """``work`` quantized as the session's graph is: from the same statistics and options, or
    from the TFLite file's scales after ``open -q`` (None when the session is not quantized)."""
    qs = session.qstate
    if qs is None or session.stats is None:
        return None
    from nnshell.input.formatter import fixed_qtypes
    from nnshell.quant.tflite_quant import file_quantization, is_file_quantized

    if is_file_quantized(work, session):
        return file_quantization(work, session).qstate
    if qs.scheme == "SQ8":
        from nnshell.quant.sq8 import quantize_graph

        return quantize_graph(work, session.stats, qs.options, fixed_qtypes(work))
    from nnshell.quant.pow2 import quantize_graph_pow2

    return quantize_graph_pow2(work, session.stats, qs.options)
