"""NNTool's step numbers and names for the AutoTiler model file, so nnshell's files diff cleanly
against NNTool's.

Steps. NNTool numbers every node of its graph — graph inputs, constant nodes (a layer's weights
and biases), layers and graph outputs — in the order of a depth-first topological walk: it starts
from each graph input, then from each constant node, and descends into a consumer as soon as all
of the consumer's inputs have been walked. A layer therefore comes right after its last constant:
on the LeNet the input is S0, conv1's weights and biases S1 and S2, conv1 S3, and so on (S3, S6,
S9, S12, S15 for the five layers, S16 for the output). The constants are taken in the order of
their consumers, weights before biases, as NNTool's ONNX importer creates them. Per-layer
globals (``S<k>_Mul_scale``, ``S<k>_Infos``), the layer's output ``S<k>_Output`` and its name
``S<k>_...`` carry that step.

Names (NNTool's naming convention): a conv is ``Conv2d_<out>x<in/group>x<kh>x<kw>``, followed by
``_<Max|Average>Pool_<h>x<w>`` when a pool is fused and ``_<Relu|Relu6|Relun|Leaky>`` when an
activation is; a lone linear layer ``Linear_<out>x<in>``; a pool ``MaxPool_2x2`` (``_<Act>``
when fused); an add ``MatAdd_<c>x<h>x<w>`` (``_<Act>``); ``SoftMax``; a lone activation
``Act_<Act>``; anything else — a linear layer with its activation, a global pool alone — is
``Op_<node name>``. A constant is named after its ONNX node, capitalised as NNTool does
(``str.capitalize``: first letter up, the rest lower case): conv and linear weights
``<layer>_weights`` (``_conv1_conv_weights``), a bias that was an ONNX initializer
``Constant_<initializer>`` (``Constant_conv1_bias``), one created by a pass ``<layer>_biases``.
"""

from __future__ import annotations

from collections.abc import Iterator

from nnshell.ir import Graph, Node, c_safe_name
from nnshell.ops.registry import get_op

Key = tuple[str, str]  # ("input" | "const" | "node" | "output", name)


def head_op(node: Node) -> str:
    """The first op of a fusion, or the node's own op."""
    return str(node.attrs.parts[0].op) if get_op(node.op).is_fusion else node.op


def head_name(node: Node) -> str:
    """The original node name of a fusion's first part (NNTool names constants after it)."""
    return str(node.attrs.parts[0].name) if get_op(node.op).is_fusion else node.name


def const_inputs(graph: Graph, node: Node) -> list[str]:
    """The constant inputs of ``node`` that are constant nodes in NNTool's graph, in order."""
    # heads whose constant inputs are constant nodes of their own in NNTool's graph (weights,
    # biases, constant operands); other ops' constants (Clip bounds, shapes) are attributes there
    if not get_op(head_op(node)).at_const_nodes:
        return []
    return [i for i in node.inputs if i and graph.tensors[i].is_const]


def _edges(graph: Graph) -> tuple[dict[Key, list[Key]], dict[Key, list[Key]]]:
    """(out edges, in edges) of NNTool's view of the graph, out edges in creation order."""
    producer: dict[str, Key] = {t: ("input", t) for t in graph.inputs}
    out: dict[Key, list[Key]] = {}
    ins: dict[Key, list[Key]] = {}

    def link(src: Key, dst: Key) -> None:
        out.setdefault(src, []).append(dst)
        ins.setdefault(dst, []).append(src)
        out.setdefault(dst, [])

    for node in graph.nodes:
        key: Key = ("node", node.name)
        consts = set(const_inputs(graph, node))
        for t in node.inputs:
            if t in consts:
                link(("const", t), key)
            elif t and not graph.tensors[t].is_const:
                link(producer[t], key)
        for o in node.outputs:
            if o:
                producer[o] = key
        for o in node.outputs:  # the output node is connected as soon as its producer exists
            if o in graph.outputs:
                link(key, ("output", o))
    return out, ins


def _walk(start: list[Key], out: dict[Key, list[Key]], ins: dict[Key, list[Key]]) -> Iterator[Key]:
    """Depth-first topological order: descend into a consumer once all its inputs are walked."""
    seen: dict[Key, int] = {}
    for root in start:
        stack = [iter([root])]
        while stack:
            dst = next(stack[-1], None)
            if dst is None:
                stack.pop()
                continue
            if dst is not root:
                seen[dst] = seen.get(dst, 0) + 1
                if seen[dst] < len(ins.get(dst, [])):
                    continue
            yield dst
            stack.append(iter(out.get(dst, [])))


def nntool_steps(graph: Graph) -> dict[Key, int]:
    """NNTool's step number of every input, constant node, layer and output (module docstring)."""
    out, ins = _edges(graph)
    start: list[Key] = [("input", t) for t in graph.inputs]
    start += [("const", t) for n in graph.nodes for t in const_inputs(graph, n)]
    return {key: step for step, key in enumerate(_walk(start, out, ins))}


def const_cname(graph: Graph, node: Node, tensor: str, role: str) -> str:
    """The C name of a layer's weights (``role`` "weights") or biases ("biases")."""
    head = c_safe_name(head_name(node))  # a state may carry any text; ONNX names are C-safe
    generated = f"{head}_{role}"
    if role == "weights" or not tensor or tensor not in graph.tensors:
        name = generated  # NNTool's importer renames every filter to <layer>_weights
    elif tensor.startswith(generated):
        name = generated  # made by a pass (to_linear, fold_batchnorm): <layer>_biases
    else:
        name = "constant_" + c_safe_name(tensor)  # an ONNX initializer used as it is
    return name.capitalize()


def act_label(name: str | None) -> str:
    """``_<Act>`` for a kernel name, or "" without an activation."""
    return f"_{name}" if name else ""


__all__ = ["act_label", "const_cname", "const_inputs", "head_name", "head_op", "nntool_steps"]
