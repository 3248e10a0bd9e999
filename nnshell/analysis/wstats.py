"""Weight statistics per layer and per output channel (NNTool's ``stats``).

Why: a layer whose channels have very different ranges loses the small channels when its
weights are quantized with one scale (per-tensor, as POW2 and ``--per_tensor`` SQ8 do). The
figure that says so is the 8-bit weight QSNR, ``10 log10(sum w^2 / sum (w - q(w))^2)`` in dB,
with ``q`` symmetric int8 rounding at the layer's scale ``max|w| / 127``: computed for the whole
layer and for each output channel at that shared scale; channels under the threshold (NNTool's
default 30 dB) are flagged (``balance_filters`` and per-channel SQ8 fix them). Layers are the
nodes with a constant weight of rank >= 2 (convolutions, linear layers, also when fused).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nnshell.ir import Graph, Node

#: QSNR of an exactly representable tensor (no error): reported as this many dB.
QSNR_EXACT = 200.0


@dataclass(frozen=True)
class ChannelStats:
    """One output channel's weights."""

    channel: int
    min: float
    max: float
    mean: float
    std: float
    qsnr: float


@dataclass(frozen=True)
class LayerWeightStats:
    """One layer's weights: whole-tensor figures and the channels below the QSNR threshold."""

    step: int
    name: str
    shape: tuple[int, ...]
    min: float
    max: float
    mean: float
    std: float
    qsnr: float  # whole layer, 8-bit at the layer's scale
    low_channels: list[int]
    channels: list[ChannelStats]
    bias_min: float | None = None
    bias_max: float | None = None


def qsnr_8bit(w: np.ndarray, scale: float) -> float:
    """QSNR in dB of ``w`` rounded to int8 codes at ``scale`` (symmetric, saturating)."""
    if scale <= 0:
        return QSNR_EXACT
    q = np.clip(np.round(w / scale), -127, 127) * scale
    noise = float(np.sum((w.astype(np.float64) - q) ** 2))
    signal = float(np.sum(w.astype(np.float64) ** 2))
    if noise == 0.0 or signal == 0.0:
        return QSNR_EXACT if noise == 0.0 else 0.0
    return min(QSNR_EXACT, 10.0 * float(np.log10(signal / noise)))


def _weights(graph: Graph, node: Node) -> tuple[np.ndarray, np.ndarray | None] | None:
    consts = [graph.tensors[i].const for i in node.inputs if i and graph.tensors[i].is_const]
    arrays = [c for c in consts if c is not None]
    w = next((c for c in arrays if c.ndim >= 2), None)
    if w is None:
        return None
    b = next((c for c in arrays if c.ndim == 1 and c.shape[0] == w.shape[0]), None)
    return w, b


def layer_stats(graph: Graph, step: int, node: Node, threshold: float) -> LayerWeightStats | None:
    """The statistics of one layer (None: the node has no weights)."""
    found = _weights(graph, node)
    if found is None:
        return None
    w, b = found
    w64 = w.astype(np.float64)
    flat = w64.reshape(w64.shape[0], -1)
    scale = float(np.max(np.abs(flat))) / 127.0
    chans = [
        ChannelStats(
            c,
            float(row.min()),
            float(row.max()),
            float(row.mean()),
            float(row.std()),
            qsnr_8bit(row, scale),
        )
        for c, row in enumerate(flat)
    ]
    return LayerWeightStats(
        step,
        node.name,
        tuple(int(d) for d in w.shape),
        float(flat.min()),
        float(flat.max()),
        float(flat.mean()),
        float(flat.std()),
        qsnr_8bit(flat, scale),
        [c.channel for c in chans if c.qsnr < threshold],
        chans,
        None if b is None else float(b.min()),
        None if b is None else float(b.max()),
    )


def weight_stats(
    graph: Graph, threshold: float = 30.0, steps: list[int] | None = None
) -> list[LayerWeightStats]:
    """Statistics of every weighted layer (or of the layers at ``steps``)."""
    wanted = set(range(len(graph.nodes))) if steps is None else set(steps)
    out = []
    for k, node in enumerate(graph.nodes):
        if k in wanted:
            s = layer_stats(graph, k, node, threshold)
            if s is not None:
                out.append(s)
    return out
