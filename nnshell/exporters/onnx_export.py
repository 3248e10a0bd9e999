"""Export the IR (imported, adjusted or fused) back to an in-memory ONNX model.

Used by the fast float path: onnxruntime runs the exported model, and nnshell's numpy executor
stays the reference it is checked against. Every IR op name is an ONNX op type, except the two
that passes create: ``Linear`` (exported as Flatten + Gemm with ``transB = 1``) and ``Fused``
(exported as its parts in order). Attributes are the op's dataclass fields that the ONNX schema
of the op at the model's opset defines. Shape vectors of Reshape carried the
export-time batch of 1; they are re-emitted as ``(-1, *static dims)`` so any batch runs.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from nnshell.importers import onnx_proto
from nnshell.ir import Graph, Node


class ExportError(Exception):
    """The graph holds something the exporter cannot express (the caller falls back)."""


def _attrs(node: Node, opset: int) -> dict[str, Any]:
    """The node's attributes that the op's ONNX schema at ``opset`` defines."""
    a = node.attrs
    if a is None or not dataclasses.is_dataclass(a):
        return {}
    try:
        known = set(onnx_proto.schema_attr_types(node.op, opset))
    except Exception:  # noqa: BLE001 - an op type onnx does not know: keep every field
        known = None
    out: dict[str, Any] = {}
    for f in dataclasses.fields(a):
        v = getattr(a, f.name)
        if (
            v is None
            or (isinstance(v, tuple) and not v)
            or (known is not None and f.name not in known)
        ):
            continue
        out[f.name] = list(v) if isinstance(v, tuple) else v
    return out


class _Builder:
    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.opset = int(graph.meta.get("opset", 13) or 13)
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.counter = 0

    def const(self, value: np.ndarray, base: str) -> str:
        self.counter += 1
        name = f"__nnshell_{base}_{self.counter}"
        self.inits.append(onnx_proto.from_array(np.asarray(value), name))
        return name

    def temp(self, base: str) -> str:
        self.counter += 1
        return f"__nnshell_t_{base}_{self.counter}"

    def emit(self, op: str, ins: list[str], outs: list[str], name: str, **attrs: Any) -> None:
        self.nodes.append(onnx_proto.make_node(op, ins, outs, name, **attrs))

    def node(self, node: Node, ins: list[str], outs: list[str]) -> None:
        """One IR node as ONNX nodes: the op's own ``onnx_nodes`` hook when it has one (a
        fusion, Linear, Reshape, Clip), its ``onnx_decompose`` (an op with no ONNX type of its
        own: Swish), else one node of the same type with the same attributes."""
        from nnshell.ops import get_op

        op = get_op(node.op)
        write = getattr(op, "onnx_nodes", None)
        if write is not None and write(node, ins, outs, self):
            return
        decompose = getattr(op, "onnx_decompose", None)
        if decompose is not None:
            for k, (d_op, d_ins, d_outs) in enumerate(decompose(ins, outs, self.temp)):
                self.emit(d_op, d_ins, d_outs, f"{node.name}_{k}")
        else:
            self.emit(node.op, ins, outs, node.name, **_attrs(node, self.opset))


def head_output(fused_name: str) -> str:
    """The exported name of a Fused node's first part's output (its accumulator: calibration
    asks onnxruntime for it instead of recomputing the layer in numpy)."""
    return f"__nnshell_head_{fused_name}"


def export_onnx(graph: Graph, extra_outputs: list[str] | None = None) -> Any:
    """Return an onnx ModelProto equivalent to ``graph`` (batch dimension symbolic)."""
    b = _Builder(graph)
    read = {i for n in graph.nodes for i in n.inputs}
    for name, t in graph.tensors.items():
        if t.const is not None and name in read:
            b.inits.append(onnx_proto.from_array(np.asarray(t.const), name))
    for node in graph.nodes:
        b.node(node, list(node.inputs), list(node.outputs))
    inputs = [
        onnx_proto.value_info(
            i, onnx_proto.elem_type(graph.tensors[i].dtype), ["N", *graph.tensors[i].shape[1:]]
        )
        for i in graph.inputs
    ]
    outs = list(dict.fromkeys(list(graph.outputs) + list(extra_outputs or [])))
    outputs = [onnx_proto.value_info(o) for o in outs]
    name = graph.name or "nnshell"
    return onnx_proto.make_model(b.nodes, name, inputs, outputs, b.inits, b.opset, "nnshell")
