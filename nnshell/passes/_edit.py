"""Small graph-editing helpers shared by the passes."""

from __future__ import annotations

import numpy as np

from nnshell.ir import Graph, Node, TensorInfo
from nnshell.ops import get_op


def sole_consumer(graph: Graph, tensor: str) -> Node | None:
    """Return the only node reading ``tensor``, or None (fan-out, or a graph output)."""
    if tensor in graph.outputs:
        return None
    users = graph.consumers(tensor)
    return users[0] if len(users) == 1 else None


def const_of(graph: Graph, name: str) -> np.ndarray | None:
    """Return the constant value of a tensor name, or None when it is an activation."""
    if not name:
        return None
    t = graph.tensors.get(name)
    return t.const if t is not None else None


def act_inputs(graph: Graph, node: Node) -> list[str]:
    """Return the non-constant inputs of a node."""
    return [i for i in node.inputs if i and graph.tensors[i].const is None]


def new_const(graph: Graph, base: str, value: np.ndarray) -> str:
    """Add a constant tensor with a fresh name and return the name."""
    name = graph.unique_name(base)
    value = np.ascontiguousarray(value)
    graph.tensors[name] = TensorInfo(name, tuple(value.shape), str(value.dtype), value)
    return name


def set_input_const(graph: Graph, node: Node, idx: int, value: np.ndarray, role: str) -> None:
    """Give ``node`` a new constant at input ``idx`` (never mutates a shared constant)."""
    while len(node.inputs) <= idx:
        node.inputs.append("")
    node.inputs[idx] = new_const(graph, f"{node.name}_{role}", value.astype(np.float32))


def swap_adjacent(graph: Graph, first: Node, second: Node) -> None:
    """Turn ``x → first → mid → second → out`` into ``x → second → mid → first → out``.

    Both nodes keep their names and attributes; only their first input and output and their
    places in the node list change (the caller re-infers shapes once it is done)."""
    x, mid, out = first.inputs[0], first.outputs[0], second.outputs[0]
    second.inputs[0], second.outputs[0] = x, mid
    first.inputs[0], first.outputs[0] = mid, out
    i, j = graph.nodes.index(first), graph.nodes.index(second)
    graph.nodes[i], graph.nodes[j] = second, first


def remove_node(graph: Graph, node: Node) -> None:
    """Delete ``node``, connecting its readers to its first activation input.

    When the node's output is a graph output the upstream tensor takes over that name so the
    graph's interface does not change.
    """
    src = act_inputs(graph, node)[0]
    out = node.outputs[0]
    graph.nodes.remove(node)
    if out in graph.outputs and src not in graph.inputs:
        rename_tensor(graph, src, out)
    else:
        for n in graph.nodes:
            n.inputs = [src if i == out else i for i in n.inputs]
        graph.outputs = [src if o == out else o for o in graph.outputs]
        graph.tensors.pop(out, None)
    prune_consts(graph)


def rename_tensor(graph: Graph, old: str, new: str) -> None:
    """Rename tensor ``old`` to ``new`` everywhere (``new`` is dropped first if present)."""
    info = graph.tensors.pop(old)
    graph.tensors.pop(new, None)
    info.name = new
    graph.tensors[new] = info
    for n in graph.nodes:
        n.inputs = [new if i == old else i for i in n.inputs]
        n.outputs = [new if o == old else o for o in n.outputs]
    graph.inputs = [new if i == old else i for i in graph.inputs]
    graph.outputs = [new if o == old else o for o in graph.outputs]


def prune_consts(graph: Graph) -> None:
    """Drop constants that no node reads any more."""
    used = {i for n in graph.nodes for i in n.inputs} | set(graph.outputs)
    for name in [k for k, t in graph.tensors.items() if t.is_const and k not in used]:
        del graph.tensors[name]


def reinfer(graph: Graph) -> None:
    """Recompute every activation shape from the graph inputs (after a rewrite)."""
    for node in graph.nodes:
        shapes = get_op(node.op).infer(node, graph.in_infos(node))
        dtype = next(
            (graph.tensors[i].dtype for i in node.inputs if i and not graph.tensors[i].is_const),
            "float32",
        )
        for o, s in zip(node.outputs, shapes, strict=False):
            graph.tensors[o] = TensorInfo(o, tuple(int(d) for d in s), dtype)


def channel_vector(value: np.ndarray, out_shape: tuple[int, ...]) -> np.ndarray | None:
    """Return ``value`` as one number per output channel (axis 1), or None if it varies otherwise.

    ``value`` must broadcast against ``out_shape`` without growing it and be constant along every
    axis but the channel axis.
    """
    rank = len(out_shape)
    v = np.asarray(value)
    if v.ndim > rank:
        return None
    v = v.reshape((1,) * (rank - v.ndim) + v.shape)
    c = out_shape[1]
    for ax, d in enumerate(v.shape):
        if d != 1 and not (ax == 1 and d == c):
            return None
    return np.broadcast_to(v.reshape(-1) if v.size == c else v.reshape(-1)[:1], (c,)).astype(
        np.float32
    )
