"""to_linear: make fully connected layers kernel-shaped, then drop the Flatten before them.

- ``Gemm(x, B, C)`` with constant B (and C), ``transA = 0``: ``Linear(W = alpha·B'^T, b = beta·C)``.
- ``MatMul(x, B)`` with constant 2-D B, optionally followed by ``Add(c)`` with c one value per
  output: ``Linear(W = B^T, b = c)`` (the Add is absorbed: that is the MatMul+Add rule).
- A Flatten or Reshape that only flattens (``(N, ...) -> (N, K)``) in front of a Linear moves no
  data in CHW order, so it is removed and the Linear reads the unflattened tensor.
"""

from __future__ import annotations

import numpy as np

from nnshell.ir import Graph, Node
from nnshell.ops.registry import NoAttrs
from nnshell.passes._edit import act_inputs, const_of, new_const, remove_node, sole_consumer
from nnshell.passes.base import PassResult, register_pass


def _gemm_to_linear(graph: Graph, node: Node) -> str | None:
    at = node.attrs
    b = const_of(graph, node.inputs[1])
    c = const_of(graph, node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else None
    if at.transA or b is None or (len(node.inputs) > 2 and node.inputs[2] and c is None):
        return "input A is transposed or B/C are not constant"
    w = (b.T if not at.transB else b) * np.float32(at.alpha)
    n_out = w.shape[0]
    if c is not None and c.size not in (1, n_out):
        return "C is not one value per output"
    node.op, node.attrs = "Linear", NoAttrs()
    ins = [node.inputs[0], new_const(graph, f"{node.name}_weights", w.astype(np.float32))]
    if c is not None:
        bias = np.broadcast_to(np.asarray(c, np.float32).reshape(-1), (n_out,)) * at.beta
        ins.append(new_const(graph, f"{node.name}_biases", bias.astype(np.float32)))
    node.inputs = ins
    return None


def _matmul_to_linear(graph: Graph, node: Node, res: PassResult) -> str | None:
    b = const_of(graph, node.inputs[1])
    x = graph.tensors[node.inputs[0]]
    if b is None or b.ndim != 2 or len(x.shape) != 2:
        return "B is not a constant matrix or the input is not 2-D"
    node.op, node.attrs = "Linear", NoAttrs()
    node.inputs = [node.inputs[0], new_const(graph, f"{node.name}_weights", b.T.astype(np.float32))]
    add = sole_consumer(graph, node.outputs[0])
    if add is not None and add.op == "Add" and len(act_inputs(graph, add)) == 1:
        cname = next(i for i in add.inputs if i != node.outputs[0])
        c = const_of(graph, cname)
        if c is not None and c.size in (1, b.shape[1]) and c.ndim <= 2:
            bias = np.broadcast_to(np.asarray(c, np.float32).reshape(-1), (b.shape[1],))
            node.inputs.append(new_const(graph, f"{node.name}_biases", bias.copy()))
            remove_node(graph, add)
            res.removed.append(add.name)
            res.edits.append(f"{node.name}, {add.name} → {node.name} (MatMul+Add as linear)")
    return None


def _flattens_only(graph: Graph, node: Node) -> bool:
    ins = act_inputs(graph, node)
    if node.op not in ("Flatten", "Reshape") or len(ins) != 1:
        return False
    out = graph.tensors[node.outputs[0]].shape
    return len(out) == 2 and out[0] == graph.tensors[ins[0]].shape[0]


@register_pass("to_linear", "Turn Gemm and MatMul(+Add) into linear layers; drop Flatten before")
def to_linear(graph: Graph) -> PassResult:
    """Rewrite fully connected layers in place."""
    res = PassResult()
    for node in [n for n in graph.nodes if n.op in ("Gemm", "MatMul")]:
        op = node.op
        why = _gemm_to_linear(graph, node) if op == "Gemm" else _matmul_to_linear(graph, node, res)
        if why:
            res.notes.append(f"{node.name}: {op} kept ({why})")
        else:
            res.edits.append(f"{node.name}: {op} → Linear")
            res.changed += 1
    for node in [n for n in graph.nodes if n.op == "Linear"]:
        prev = graph.producer(node.inputs[0])
        if (
            prev is not None
            and _flattens_only(graph, prev)
            and sole_consumer(graph, prev.outputs[0]) is node
        ):
            remove_node(graph, prev)
            res.removed.append(prev.name)
            res.changed += 1
    return res
