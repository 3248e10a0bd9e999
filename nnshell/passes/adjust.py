"""adjust: put every tensor in the CHW order the kernels use and eliminate the transposes.

ONNX graphs exported from PyTorch are CHW already, so for them the right answer is "nothing to
change". TensorFlow exports carry NHWC inputs with a Transpose to NCHW in front of the first conv
and a Transpose back before the classifier. Rules, applied until none fires:

1. an input read only by Transposes of one permutation takes that permutation itself (the graph
   input becomes CHW; ``meta['source_input_layout']`` records what the model was exported with);
2. a Transpose followed by a unary elementwise op swaps with it (``f(T(x)) = T(f(x))``), so
   transposes meet;
3. two consecutive Transposes compose; an identity permutation is removed;
4. a Transpose before a flatten and a linear layer is folded into the weights' column order:
   with ``y = T_p(x)``, ``W_x = W_y.reshape(out, *dims(y)).transpose(0, *inv(p)[1:])``;
5. a constant Pad of a graph input (or of a Transpose's output) followed by a Transpose swaps
   with it, its pads permuted (``T_p(pad(x, a)) = pad(T_p(x), a∘p)``): TFLite models pad the
   NHWC input before the first conv, and the transpose must reach the input (rule 1) for the
   Pad to meet the conv (fold_pad).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from nnshell.ir import Graph, Node
from nnshell.passes._edit import (
    act_inputs,
    const_of,
    new_const,
    reinfer,
    remove_node,
    set_input_const,
    sole_consumer,
    swap_adjacent,
)
from nnshell.passes.base import PassResult

_UNARY = {"Relu", "Clip", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Identity"}
_LAYOUT_NAMES = {(0, 3, 1, 2): "HWC", (0, 2, 3, 1): "CHW->HWC", (0, 2, 1): "WC"}


def _perm(node: Node) -> tuple[int, ...]:
    return tuple(int(p) for p in node.attrs.perm)


def _fold_input_transposes(graph: Graph, res: PassResult) -> bool:
    from nnshell.passes.cut import frozen

    pinned = frozen(graph)  # freeze: these inputs keep their order
    for name in graph.inputs:
        if name in pinned:
            continue
        users = graph.consumers(name)
        if not users or any(u.op != "Transpose" for u in users) or name in graph.outputs:
            continue
        perms = {_perm(u) for u in users}
        if len(perms) != 1:
            continue
        perm = perms.pop()
        info = graph.tensors[name]
        info.shape = tuple(info.shape[p] for p in perm)
        for u in users:
            remove_node(graph, u)
        graph.meta["source_input_layout"] = _LAYOUT_NAMES.get(perm, f"perm {perm}")
        graph.meta["input_layout"] = "CHW"
        res.edits.append(
            f"input {name}: transpose {perm} folded into the input, now {info.dims} (CHW)"
        )
        return True
    return False


def _swap_with_unary(graph: Graph, res: PassResult) -> bool:
    for t in [n for n in graph.nodes if n.op == "Transpose"]:
        nxt = sole_consumer(graph, t.outputs[0])
        if nxt is None or nxt.op not in _UNARY or len(act_inputs(graph, nxt)) != 1:
            continue
        after = sole_consumer(graph, nxt.outputs[0])
        if after is None or after.op not in _UNARY | {"Transpose", "Flatten", "Reshape"}:
            continue  # only move when it brings the transpose towards something it can meet
        swap_adjacent(graph, t, nxt)
        reinfer(graph)
        res.edits.append(f"{t.name} moved below {nxt.name}")
        return True
    return False


def _compose_pairs(graph: Graph, res: PassResult) -> bool:
    for t in [n for n in graph.nodes if n.op == "Transpose"]:
        if _perm(t) == tuple(range(len(_perm(t)))):
            remove_node(graph, t)
            res.edits.append(f"{t.name}: identity transpose removed")
            res.removed.append(t.name)
            return True
        nxt = sole_consumer(graph, t.outputs[0])
        if nxt is None or nxt.op != "Transpose":
            continue
        p1, p2 = _perm(t), _perm(nxt)
        composed = tuple(p1[i] for i in p2)
        nxt.inputs[0] = t.inputs[0]
        nxt.attrs = dataclasses.replace(nxt.attrs, perm=composed)
        graph.nodes.remove(t)
        graph.tensors.pop(t.outputs[0], None)
        res.edits.append(f"{t.name}, {nxt.name}: transposes composed to {composed}")
        res.removed.append(t.name)
        return True
    return False


def _linear_weights(graph: Graph, lin: Node) -> tuple[np.ndarray, str] | None:
    """Return the weights as (out, in) rows and how they are stored, or None."""
    w = const_of(graph, lin.inputs[1])
    if w is None or w.ndim != 2:
        return None
    if lin.op == "Gemm" and lin.attrs.transB:
        return w, "rows"
    if lin.op == "Linear":
        return w, "rows"
    if lin.op in ("Gemm", "MatMul"):
        return w.T, "cols"
    return None


def _fold_into_linear(graph: Graph, res: PassResult) -> bool:
    for t in [n for n in graph.nodes if n.op == "Transpose"]:
        flat = sole_consumer(graph, t.outputs[0])
        if flat is None or flat.op not in ("Flatten", "Reshape"):
            continue
        lin = sole_consumer(graph, flat.outputs[0])
        if (
            lin is None
            or lin.op not in ("Gemm", "MatMul", "Linear")
            or lin.inputs[0] != flat.outputs[0]
        ):
            continue
        found = _linear_weights(graph, lin)
        ydims = graph.tensors[t.outputs[0]].shape[1:]
        if found is None or len(graph.tensors[flat.outputs[0]].shape) != 2:
            continue
        w, how = found
        perm = _perm(t)
        inv = [perm.index(j) for j in range(len(perm))]
        wx = w.reshape((w.shape[0], *ydims)).transpose(0, *inv[1:]).reshape(w.shape[0], -1)
        set_input_const(graph, lin, 1, wx if how == "rows" else wx.T, "weights")
        remove_node(graph, t)
        reinfer(graph)
        res.edits.append(f"{t.name}: folded into the weight columns of {lin.name}")
        res.removed.append(t.name)
        return True
    return False


def _swap_pad_transpose(graph: Graph, res: PassResult) -> bool:
    for t in [n for n in graph.nodes if n.op == "Transpose"]:
        pad = graph.producer(t.inputs[0])
        if pad is None or pad.op != "Pad" or sole_consumer(graph, pad.outputs[0]) is not t:
            continue
        src = graph.producer(pad.inputs[0])
        if not (pad.inputs[0] in graph.inputs or (src is not None and src.op == "Transpose")):
            continue
        pads = const_of(graph, pad.inputs[1]) if len(pad.inputs) > 1 and pad.inputs[1] else None
        if pads is None or getattr(pad.attrs, "mode", "constant") != "constant":
            continue
        perm = _perm(t)
        pads = np.asarray(pads, np.int64).reshape(2, -1)
        if pads.shape[1] != len(perm):
            continue
        swap_adjacent(graph, pad, t)
        pad.inputs[1] = new_const(graph, f"{pad.name}_pads", pads[:, list(perm)].reshape(-1))
        reinfer(graph)
        res.edits.append(f"{t.name} moved above {pad.name}")
        return True
    return False


def adjust_layout(graph: Graph) -> PassResult:
    """Eliminate layout transposes in place; an already-CHW graph is left unchanged."""
    res = PassResult()
    graph.meta.setdefault("input_layout", "CHW")
    rules = (
        _fold_input_transposes,
        _compose_pairs,
        _fold_into_linear,
        _swap_with_unary,
        _swap_pad_transpose,
    )
    for _ in range(10 * (len(graph.nodes) + 1)):
        if not any(rule(graph, res) for rule in rules):
            break
        res.changed += 1
    if res.changed:
        reinfer(graph)
    left = [n.name for n in graph.nodes if n.op == "Transpose"]
    if left:
        res.notes.append(f"transposes kept (not layout changes): {', '.join(left)}")
    return res
