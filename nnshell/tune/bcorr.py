"""``bcorr``: empirical bias correction (Nagel et al. 2019, section 4.2, the empirical variant).

Quantizing the weights (and activations) moves each output channel's mean: ``E[q] ≠ E[f]``.
Over the calibration images, every filter layer is run in float and in integer arithmetic on
the same inputs — its float inputs quantized with their own qtypes, as ``qerror -s`` does, so
each layer's error is its own and correcting all layers at once does not count an upstream
error twice — and the mean difference per output channel is subtracted from the layer's float
bias (a bias is added when the layer has none). The graph is then quantized again from the
same statistics and options: the integer network's channel means match the original float's.

Which positions count: after a ReLU inside the fusion only those where the float output is
positive (elsewhere a bias shift is invisible); after nothing or pools, every position. Layers
followed by another function (HardSwish, sigmoid, ReLU6...) are left alone and named in a note.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from nnshell.errors import GraphStateError
from nnshell.ir import Graph

if TYPE_CHECKING:
    from nnshell.quant.sq8 import QuantState


@dataclass
class BcorrResult:
    """What bcorr changed: per corrected layer the largest |correction| relative to the
    layer's output quantization step, and the layers skipped with why."""

    images: int = 0
    corrected: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


class _Means:
    """Running per-channel sums of (integer − float) output over the counted positions."""

    def __init__(self) -> None:
        self.err: dict[str, np.ndarray] = {}
        self.count: dict[str, np.ndarray] = {}

    def add(self, name: str, diff: np.ndarray, mask: np.ndarray | None) -> None:
        d = diff.reshape(diff.shape[0], diff.shape[1], -1).astype(np.float64)
        m = np.ones_like(d) if mask is None else mask.reshape(d.shape).astype(np.float64)
        e = (d * m).sum(axis=(0, 2))
        c = m.sum(axis=(0, 2))
        if name in self.err:
            self.err[name] += e
            self.count[name] += c
        else:
            self.err[name], self.count[name] = e, c

    def mean(self, name: str) -> np.ndarray:
        c = self.count[name]
        return np.where(c > 0, self.err[name] / np.maximum(c, 1), 0.0)


def channel_errors(
    graph: Graph,
    qstate: QuantState,
    batches: Iterable[tuple[Any, np.ndarray]],
    total: int,
    progress: Callable[[int, int], None] | None = None,
    fast: Any = None,
    reference: Graph | None = None,
) -> tuple[dict[str, np.ndarray], list[str], int]:
    """Mean (integer − float) output per channel of every correctable filter layer.

    ``reference``: the float graph to compare with (same tensor names; by default ``graph``
    itself) — after a correction, the corrected network is judged against the original float.
    """
    from nnshell.analysis.qerror import float_outputs, isolated_outputs
    from nnshell.exec.int_exec import dequantize
    from nnshell.passes.filters import filters

    layers, skipped = {}, []
    for f in filters(graph):
        if f.tail is None:
            skipped.append(f"{f.node}: the function after the filter hides a bias shift")
        else:
            layers[f.node] = f
    sums, seen = _Means(), 0
    for _paths, batch in batches:
        fvals = float_outputs(reference or graph, batch, None if reference else fast)
        ivals = isolated_outputs(graph, qstate, fvals)
        for name, f in layers.items():
            out = graph.node(name).outputs[0]
            ref = np.asarray(fvals[out], np.float64)
            got = np.asarray(dequantize(qstate, out, ivals[out]), np.float64)
            if ref.ndim < 2:
                continue
            sums.add(name, got - ref, ref > 0 if f.tail == "relu" else None)
        seen += len(batch)
        if progress is not None:
            progress(seen, total)
    return {n: sums.mean(n) for n in layers if n in sums.err}, skipped, seen


def corrected_graph(graph: Graph, errors: dict[str, np.ndarray]) -> Graph:
    """A copy of ``graph`` with each layer's bias minus its mean channel error."""
    from nnshell.passes._edit import new_const
    from nnshell.passes.filters import filter_of

    work = graph.copy()
    for name, err in errors.items():
        node = work.node(name)
        f = filter_of(work, node)
        assert f is not None
        w = work.tensors[f.weights].const
        assert w is not None
        if err.size != w.shape[0]:
            continue  # not one value per output channel (a layer with a reshaped output)
        b = np.zeros(w.shape[0]) if f.bias is None else work.tensors[f.bias].const
        new = (np.asarray(b, np.float64).reshape(-1) - err).astype(np.float32)
        while len(node.inputs) < 3:
            node.inputs.append("")
        node.inputs[2] = new_const(work, f"{name}_bcorr_bias", new)
        if f.bias is not None and not work.consumers(f.bias):
            del work.tensors[f.bias]  # no dangling constant (footprint, state, C)
    return work


def bcorr(session: Any, files: list[str], opts: Any = None, progress: Any = None) -> BcorrResult:
    """Correct the biases of the open, quantized graph from calibration images, re-quantize."""
    from nnshell.errors import UsageError

    graph = session.require_graph()
    qstate = session.require_quantized()
    if not files:
        raise UsageError("bcorr needs image files", "bcorr sample_images/calib")
    if session.stats is None:
        raise GraphStateError("bcorr: no calibration statistics to re-quantize with", "aquant")
    paths, batches, fast = session._analysis_pass(files, opts)
    errors, skipped, seen = channel_errors(graph, qstate, batches, len(paths), progress, fast)
    work = corrected_graph(graph, errors)
    from nnshell.tune.equalization import requantize

    new_q = requantize(session, work)
    res = BcorrResult(seen, skipped=skipped)
    for name, err in errors.items():
        out = graph.node(name).outputs[0]
        step = float(np.max(np.atleast_1d(qstate.tensors[out].scale)))
        res.corrected[name] = float(np.abs(err).max() / step) if step > 0 else 0.0
    session.graph, session.qstate, session._runners = work, new_q, {}
    return res
