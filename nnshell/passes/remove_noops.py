"""remove_noops: delete nodes that do not change their input.

Identity and inference-time Dropout return their input; a Reshape or Flatten whose output shape
equals its input shape moves no data. Each is removed and its readers read its input directly.
"""

from __future__ import annotations

from nnshell.ir import Graph
from nnshell.passes._edit import act_inputs, remove_node
from nnshell.passes.base import PassResult, register_pass

_ALWAYS = {"Identity", "Dropout"}
_IF_SAME_SHAPE = {"Reshape", "Flatten", "Squeeze", "Unsqueeze"}


@register_pass("remove_noops", "Remove Identity, Dropout and reshapes to the same shape")
def remove_noops(graph: Graph) -> PassResult:
    """Remove no-op nodes in place."""
    res = PassResult()
    for node in list(graph.nodes):
        ins = act_inputs(graph, node)
        if len(ins) != 1:
            continue
        same = graph.tensors[ins[0]].shape == graph.tensors[node.outputs[0]].shape
        if node.op in _ALWAYS or (node.op in _IF_SAME_SHAPE and same):
            if len([o for o in node.outputs if graph.consumers(o) or o in graph.outputs]) > 1:
                res.notes.append(f"{node.name}: second output is used; kept")
                continue
            remove_node(graph, node)
            res.removed.append(node.name)
            res.changed += 1
    return res
