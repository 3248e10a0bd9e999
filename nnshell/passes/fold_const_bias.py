"""fold_const_bias: fold a constant per-channel Add/Sub/Mul/Div after a conv/linear.

ConvTranspose counts as a conv (issue 17: Paddle exports its bias as a separate Add, and the
BatchNormalization after that Add then folds too).

``layer(x) + c = layer'(x)`` with ``b' = b + c``; ``layer(x) · c = layer'(x)`` with
``W'[o] = W[o] · c[o]`` and ``b' = b · c`` (Sub and Div use ``-c`` and ``1/c``). The constant must
be one value per output channel (or a scalar), and the layer's output must have no other reader.

ConvTranspose (PP-OCRv4's detector adds its bias this way) folds the same way: its weights are
``(C_in, C_out/group, k...)``, so a Mul scales axis 1 (group 1 only; a grouped layer's output
channels interleave the groups) and an Add goes to the bias.
"""

from __future__ import annotations

import numpy as np

from nnshell.ir import Graph, Node
from nnshell.passes._edit import (
    act_inputs,
    channel_vector,
    const_of,
    remove_node,
    set_input_const,
    sole_consumer,
)
from nnshell.passes.base import PassResult, register_pass
from nnshell.passes.fold_batchnorm import out_channels, scale_out_channels


def _fold(graph: Graph, layer: Node, op: str, c: np.ndarray) -> None:
    w = np.asarray(const_of(graph, layer.inputs[1]), np.float64)
    n_out = out_channels(layer, w)
    b = const_of(graph, layer.inputs[2]) if len(layer.inputs) > 2 and layer.inputs[2] else None
    b = np.zeros(n_out) if b is None else np.asarray(b, np.float64).reshape(-1)
    c = np.asarray(c, np.float64)
    if op in ("Add", "Sub"):
        set_input_const(graph, layer, 2, b + (c if op == "Add" else -c), "biases")
        return
    k = c if op == "Mul" else 1.0 / c
    set_input_const(graph, layer, 1, scale_out_channels(layer, w, k), "weights")
    set_input_const(graph, layer, 2, b * k, "biases")


@register_pass("fold_const_bias", "Fold a constant Add/Mul after a conv/linear into bias/weights")
def fold_const_bias(graph: Graph) -> PassResult:
    """Fold constant channel-wise arithmetic into the layer before it."""
    res = PassResult()
    for node in [n for n in graph.nodes if n.op in ("Add", "Sub", "Mul", "Div")]:
        acts = act_inputs(graph, node)
        if len(acts) != 1 or node not in graph.nodes:
            continue
        layer = graph.producer(acts[0])
        if layer is None or layer.op not in ("Conv", "ConvTranspose", "Linear"):
            continue
        if const_of(graph, layer.inputs[1]) is None:
            continue
        if node.op in ("Sub", "Div") and node.inputs[0] != acts[0]:
            continue  # c - y and c / y are not affine in y's scale
        if sole_consumer(graph, acts[0]) is not node:
            res.notes.append(f"{node.name}: {layer.name}'s output has other readers; kept")
            continue
        cname = next(i for i in node.inputs if i and i != acts[0])
        out_shape = graph.tensors[acts[0]].shape
        vec = channel_vector(const_of(graph, cname), out_shape)
        if vec is None or graph.tensors[node.outputs[0]].shape != out_shape:
            res.notes.append(f"{node.name}: constant is not one value per channel; kept")
            continue
        _fold(graph, layer, node.op, vec)
        remove_node(graph, node)
        res.edits.append(f"{node.name} folded into {layer.name}")
        res.removed.append(node.name)
        res.changed += 1
    return res
