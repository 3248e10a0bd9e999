"""Cross-layer weight equalization (Nagel et al. 2019, "Data-Free Quantization Through Weight
Equalization and Bias Correction", section 4.1) — NNTool's ``weight_equalization``.

Why: with one weight scale per tensor, a layer whose output channels have very different weight
ranges wastes most int8 codes on the widest channel. For two consecutive layers joined by a
positive-homogeneous function ``f`` (``f(x/s) = f(x)/s`` for ``s > 0``: ReLU, LeakyReLU, PReLU,
max/average pooling, identity, flatten), dividing output channel ``i`` of the first layer (its
weights and bias) by ``s_i`` and multiplying input channel ``i`` of the second by ``s_i`` leaves
the network's function unchanged. With ``r1_i`` the range of output channel ``i`` of the first
layer and ``r2_i`` the range of input channel ``i`` of the second, ``s_i = sqrt(r1_i / r2_i)``
makes both ``sqrt(r1_i · r2_i)``: the two layers' per-channel ranges match.

A layer in the middle of a chain belongs to two pairs, so the rescaling is repeated over all
pairs until no scale of a sweep moves further than ``threshold`` from 1 (``|s − 1| < threshold``),
at most :data:`MAX_SWEEPS` sweeps. ReLU6 / Clip, sigmoid, hard-swish and every other
non-homogeneous function between two layers ends the chain there (reported as a note): scaling
its input would change its output. Grouped convolutions other than depthwise end chains too.

The graph may be at any stage (imported, adjusted, fused): fused layers are looked into (their
head conv / linear, their tail activations and pools). Only constants change, so the float
outputs equal the original model's up to float32 rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from nnshell.errors import UsageError
from nnshell.ir import Graph, Node

#: Sweeps over all pairs before giving up on convergence (the result is still exact in float).
MAX_SWEEPS = 50
#: NNTool's default convergence threshold.
DEFAULT_THRESHOLD = 0.1

#: Functions that commute with a positive per-channel scale (``f(x/s) = f(x)/s``).
HOMOGENEOUS = frozenset(
    {
        "Relu",
        "LeakyRelu",
        "PRelu",
        "MaxPool",
        "AveragePool",
        "GlobalAveragePool",
        "GlobalMaxPool",
        "Identity",
        "Dropout",
    }
)
#: Data movements that keep the channel-major (CHW) order (only before a linear layer).
FLATTENS = frozenset({"Flatten", "Reshape"})


@dataclass
class Weighted:
    """A layer whose channels can be rescaled: a conv, depthwise conv or linear (maybe fused)."""

    node: Node
    kind: str  # "conv" | "dw" | "linear"
    weights: str
    bias: str | None
    #: Linear weights as (out, in) after this transpose flag (Gemm without transB is (in, out)).
    transposed: bool = False


@dataclass
class EqualizeResult:
    """What weight_equalization did: the pairs, the sweeps, and why chains stopped."""

    pairs: list[tuple[str, str]] = field(default_factory=list)
    sweeps: int = 0
    converged: bool = True
    #: Largest ratio (before / after) of the per-tensor weight range over the per-channel
    #: ranges' mean, per equalized layer — how much closer to per-channel it became.
    spread: dict[str, tuple[float, float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _conv_kind(node: Node, graph: Graph, op: str, attrs: object) -> str | None:
    w = graph.tensors[node.inputs[1]].const if len(node.inputs) > 1 else None
    if w is None:
        return None
    if op == "Linear":
        return "linear" if w.ndim == 2 else None
    if op == "Gemm":
        ok = w.ndim == 2 and not getattr(attrs, "transA", 0)
        return "linear" if ok else None
    if op != "Conv" or w.ndim < 3:
        return None
    group = int(getattr(attrs, "group", 1))
    if group == 1:
        return "conv"
    if w.shape[1] == 1 and w.shape[0] == group:
        return "dw"
    return None


def _weighted(graph: Graph, node: Node, first: bool = True) -> Weighted | None:
    """The node as a rescalable layer, or None. A fusion qualifies when its head does and, as
    the ``first`` layer of a pair (whose output channels are scaled), every later part is
    positive-homogeneous; the second layer's own output does not change, whatever follows."""
    op, attrs = node.op, node.attrs
    if op == "Fused":
        parts = attrs.parts
        if first and any(p.op not in HOMOGENEOUS for p in parts[1:]):
            return None
        op, attrs = parts[0].op, parts[0].attrs
    kind = _conv_kind(node, graph, op, attrs)
    if kind is None:
        return None
    if len(graph.consumers(node.inputs[1])) != 1:
        return None  # shared weights: rescaling them would change the other reader
    bias = node.inputs[2] if len(node.inputs) > 2 and node.inputs[2] else None
    if bias is not None and (graph.tensors[bias].const is None or len(graph.consumers(bias)) != 1):
        return None
    transposed = op == "Gemm" and not getattr(attrs, "transB", 0)
    layer = Weighted(node, kind, node.inputs[1], bias, transposed)
    if bias is not None and graph.tensors[bias].const.size != _w(graph, layer).shape[0]:
        return None  # a broadcast bias cannot take one scale per channel
    return layer


def _w(graph: Graph, layer: Weighted) -> np.ndarray:
    w = graph.tensors[layer.weights].const
    assert w is not None
    return np.asarray(w.T if layer.transposed else w, np.float64)


def _out_ranges(graph: Graph, layer: Weighted) -> np.ndarray:
    w = _w(graph, layer)
    return np.abs(w).reshape(w.shape[0], -1).max(axis=1)


def _in_view(w: np.ndarray, layer: Weighted, channels: int) -> np.ndarray:
    """The weights as (out, channels, rest): axis 1 is the previous layer's channel."""
    if layer.kind == "dw":
        return w.reshape(1, w.shape[0], -1)
    return w.reshape(w.shape[0], channels, -1)


def _in_ranges(graph: Graph, layer: Weighted, channels: int) -> np.ndarray:
    v = np.abs(_in_view(_w(graph, layer), layer, channels))
    return v.max(axis=(0, 2))


def _set(graph: Graph, name: str, value: np.ndarray, transposed: bool = False) -> None:
    t = graph.tensors[name]
    arr = (value.T if transposed else value).astype(t.const.dtype if t.const is not None else "f4")
    t.const = np.ascontiguousarray(arr)


def _scale_out(graph: Graph, layer: Weighted, s: np.ndarray) -> None:
    w = _w(graph, layer)
    w = w / s.reshape((-1,) + (1,) * (w.ndim - 1))
    _set(graph, layer.weights, w, layer.transposed)
    if layer.bias is not None:
        b = np.asarray(graph.tensors[layer.bias].const, np.float64)
        _set(graph, layer.bias, (b.reshape(-1) / s).reshape(b.shape))


def _scale_in(graph: Graph, layer: Weighted, s: np.ndarray) -> None:
    w = _w(graph, layer)
    v = _in_view(w, layer, s.size) * s.reshape(1, -1, 1)
    _set(graph, layer.weights, v.reshape(w.shape), layer.transposed)


def _next_layer(graph: Graph, first: Weighted) -> tuple[Weighted | None, str | None]:
    """The layer fed by ``first`` through homogeneous single-consumer nodes, or why none."""
    channels = _out_ranges(graph, first).size
    tensor, flattened = first.node.outputs[0], False
    while True:
        if tensor in graph.outputs:
            return None, None
        users = graph.consumers(tensor)
        if len(users) != 1:
            return None, None
        node = users[0]
        if node.op in HOMOGENEOUS or node.op in FLATTENS:
            flattened = flattened or node.op in FLATTENS
            tensor = node.outputs[0]
            continue
        nxt = _weighted(graph, node, first=False)
        if nxt is None or node.inputs[0] != tensor:
            why = None
            if node.op in ("Clip", "Sigmoid", "Tanh", "HardSwish", "HardSigmoid", "Swish"):
                why = f"{first.node.name} -> {node.name}: {node.op} is not positive-homogeneous"
            return None, why
        w = _w(graph, nxt)
        fits = (nxt.kind == "dw" and w.shape[0] == channels and not flattened) or (
            nxt.kind == "conv" and w.shape[1] == channels and not flattened
        )
        fits = fits or (nxt.kind == "linear" and w.shape[1] % channels == 0)
        return (nxt, None) if fits else (None, None)


def find_pairs(graph: Graph) -> tuple[list[tuple[Weighted, Weighted]], list[str]]:
    """Every pair of consecutive rescalable layers, and a note per chain cut by a function that
    is not positive-homogeneous."""
    pairs, notes = [], []
    for node in graph.nodes:
        first = _weighted(graph, node)
        if first is None:
            if node.op == "Fused" and _weighted(graph, node, first=False) is not None:
                tail = "+".join(p.op for p in node.attrs.parts[1:])
                nxt = _next_layer(graph, _weighted(graph, node, first=False))[0]  # type: ignore[arg-type]
                if nxt is not None:
                    notes.append(
                        f"{node.name} -> {nxt.node.name}: {tail} is not positive-homogeneous"
                    )
            continue
        nxt, why = _next_layer(graph, first)
        if nxt is not None:
            pairs.append((first, nxt))
        elif why:
            notes.append(why)
    return pairs, notes


def _spread(graph: Graph, layer: Weighted) -> float:
    r = _out_ranges(graph, layer)
    return float(r.max() / r.mean()) if r.size and r.mean() > 0 else 1.0


def _pow2(s: np.ndarray) -> np.ndarray:
    """Each scale rounded to the nearest power of two (in log scale)."""
    return np.exp2(np.round(np.log2(s)))


def equalize(
    graph: Graph, threshold: float = DEFAULT_THRESHOLD, pow2: bool = True
) -> EqualizeResult:
    """Equalize ``graph`` in place (the caller works on a copy) and say what changed.

    ``pow2`` (the default): the scales found by the sweeps are multiplied up per pair and
    channel, rounded to powers of two and applied once to the original constants. Scaling a
    float by a power of two is exact, so the float outputs are the original model's bit for bit
    (the per-channel ranges then match within a factor of √2 instead of exactly). ``pow2=False``
    applies the exact square-root scales (NNTool's), equal to the original up to float32
    rounding of the rescaled weights.
    """
    if not (0 < threshold < 10) or math.isnan(threshold):
        raise UsageError(
            f"weight_equalization: threshold {threshold} is not in (0, 10)",
            "weight_equalization 0.1",
        )
    pairs, notes = find_pairs(graph)
    res = EqualizeResult([(a.node.name, b.node.name) for a, b in pairs], notes=notes)
    if not pairs:
        res.notes.insert(0, "no pair of consecutive conv/linear layers to equalize")
        return res
    layers = {lay.node.name: lay for pair in pairs for lay in pair}
    before = {n: _spread(graph, lay) for n, lay in layers.items()}
    # Work in float64 and round to the constants' own dtype once at the end: rounding after
    # every sweep would add float32 error per sweep (visible after a deep net's sigmoid).
    names = {t for lay in layers.values() for t in (lay.weights, lay.bias) if t is not None}
    dtypes = {t: graph.tensors[t].const.dtype for t in names}  # type: ignore[union-attr]
    originals = {t: graph.tensors[t].const for t in names}
    total = [np.ones(_out_ranges(graph, first).size) for first, _ in pairs]
    for t in names:
        graph.tensors[t].const = np.asarray(graph.tensors[t].const, np.float64)
    res.converged = False
    for sweep in range(1, MAX_SWEEPS + 1):
        worst = 0.0
        for k in reversed(range(len(pairs))):
            first, second = pairs[k]
            r1 = _out_ranges(graph, first)
            r2 = _in_ranges(graph, second, r1.size)
            ok = (r1 > 0) & (r2 > 0)
            s = np.ones_like(r1)
            s[ok] = np.sqrt(r1[ok] / r2[ok])
            _scale_out(graph, first, s)
            _scale_in(graph, second, s)
            total[k] *= s
            worst = max(worst, float(np.abs(s - 1).max()))
        res.sweeps = sweep
        if worst < threshold:
            res.converged = True
            break
    if pow2:  # start again from the original constants with the rounded scales, once
        for t in names:
            graph.tensors[t].const = np.asarray(originals[t], np.float64)
        for (first, second), s in zip(pairs, total, strict=True):
            _scale_out(graph, first, _pow2(s))
            _scale_in(graph, second, _pow2(s))
    for t in names:
        graph.tensors[t].const = np.ascontiguousarray(graph.tensors[t].const.astype(dtypes[t]))
    if not res.converged:
        res.notes.append(f"not converged under {threshold} after {MAX_SWEEPS} sweeps")
    res.spread = {n: (before[n], _spread(graph, lay)) for n, lay in layers.items()}
    return res
