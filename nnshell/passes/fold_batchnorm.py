"""fold_batchnorm: fold an inference BatchNormalization into the conv/linear before it.

With ``s[c] = gamma[c] / sqrt(var[c] + eps)`` (ONNX default ``eps = 1e-5``):
``W'[c] = W[c] · s[c]`` (a ConvTranspose's output channel ``c = g·Mg + m`` is the weights'
axis 1 within group ``g``: DBNet heads put a BN after each transposed conv) and
``b'[c] = (b[c] - mean[c]) · s[c] + beta[c]``, so
``BN(conv(x)) = conv'(x)`` exactly in real arithmetic. A BatchNormalization that does not follow
a single-consumer Conv/ConvTranspose/Linear/Gemm stays (the quantizer treats it as a per-channel
scale-shift).
"""

from __future__ import annotations

import numpy as np

from nnshell.ir import Graph, Node
from nnshell.passes._edit import const_of, remove_node, set_input_const, sole_consumer
from nnshell.passes.base import PassResult, register_pass

_FOLDABLE = {"Conv", "ConvTranspose", "Linear", "Gemm"}


def scale_out_channels(layer: Node, w: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Weights of a conv-like layer with output channel ``c`` scaled by ``s[c]``.

    A ConvTranspose's weights are ``(C, M/group, *k)``: output channel ``g·Mg + m`` is
    ``w[g·Cg : (g+1)·Cg, m]``, so the scale goes along axis 1 within each group.
    """
    w = np.asarray(w, np.float64)
    s = np.asarray(s, np.float64).reshape(-1)
    if layer.op == "ConvTranspose":
        g = int(layer.attrs.group)
        wg = w.reshape(g, w.shape[0] // g, w.shape[1], -1)
        return (wg * s.reshape(g, 1, w.shape[1], 1)).reshape(w.shape)
    return w * s.reshape((-1,) + (1,) * (w.ndim - 1))


def out_channels(layer: Node, w: np.ndarray) -> int:
    """Number of output channels of a conv-like layer with weights ``w``."""
    return int(w.shape[1]) * int(layer.attrs.group) if layer.op == "ConvTranspose" else w.shape[0]


def _scale_shift(graph: Graph, bn: Node) -> tuple[np.ndarray, np.ndarray] | None:
    vals = [const_of(graph, i) for i in bn.inputs[1:5]]
    if any(v is None for v in vals):
        return None
    gamma, beta, mean, var = (np.asarray(v, np.float64) for v in vals)
    s = gamma / np.sqrt(var + float(bn.attrs.epsilon))
    return s, beta - mean * s


def _fold_into(graph: Graph, layer: Node, s: np.ndarray, t: np.ndarray) -> bool:
    w = const_of(graph, layer.inputs[1])
    if w is None:
        return False
    b = const_of(graph, layer.inputs[2]) if len(layer.inputs) > 2 else None
    n_out = s.shape[0]
    if layer.op == "Gemm":
        at = layer.attrs
        if at.transA or at.alpha != 1.0 or at.beta != 1.0 or (b is not None and b.size != n_out):
            return False
        w = np.asarray(w, np.float64)
        w_new = w * s[None, :] if not at.transB else w * s[:, None]
    else:
        w_new = scale_out_channels(layer, w, s)
    b_old = np.zeros(n_out) if b is None else np.asarray(b, np.float64).reshape(-1)
    set_input_const(graph, layer, 1, w_new, "weights")
    set_input_const(graph, layer, 2, b_old * s + t, "biases")
    return True


@register_pass("fold_batchnorm", "Fold BatchNormalization into the previous conv/linear")
def fold_batchnorm(graph: Graph) -> PassResult:
    """Fold every foldable BatchNormalization in place."""
    res = PassResult()
    for bn in [n for n in graph.nodes if n.op == "BatchNormalization"]:
        layer = graph.producer(bn.inputs[0])
        if layer is None or layer.op not in _FOLDABLE:
            what = layer.op if layer is not None else "the graph input"
            res.notes.append(f"{bn.name}: follows {what}, not a conv/linear; kept")
            continue
        if sole_consumer(graph, layer.outputs[0]) is not bn:
            res.notes.append(f"{bn.name}: {layer.name}'s output has other readers; kept")
            continue
        st = _scale_shift(graph, bn)
        if st is None or not _fold_into(graph, layer, *st):
            res.notes.append(f"{bn.name}: statistics or weights are not constant; kept")
            continue
        remove_node(graph, bn)
        res.edits.append(f"{bn.name} folded into {layer.name}")
        res.removed.append(bn.name)
        res.changed += 1
    return res
