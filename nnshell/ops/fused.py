"""Fused: several layers executed as one kernel call (conv + pool + activation, ...).

A fused node reads the inputs of its first part (e.g. a Conv's input, weights and bias); every
later part is a one-input op (pool, activation) applied to the previous part's result in order.
Each hook composes the parts' own hooks, so a fusion adds no arithmetic of its own and its float
output equals the unfused graph's exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nnshell.ir import Node, Shape, TensorInfo
from nnshell.ops.registry import OpDef, get_op, register


@dataclass(frozen=True)
class FusedPart:
    """One layer inside a fusion: its op, attributes and original node name."""

    op: str
    attrs: Any
    name: str
    meta: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class FusedAttrs:
    """The parts of a fusion in execution order and the fusion's NNTool-style kind."""

    parts: tuple[FusedPart, ...]
    fusion: str


def part_node(part: FusedPart, inputs: list[str], outputs: list[str]) -> Node:
    """Rebuild a stand-alone node for one part (used by the hooks and by quantization)."""
    return Node(part.name, part.op, inputs, outputs, part.attrs, dict(part.meta))


@register
class Fused(OpDef):
    """A chain of layers run as one kernel."""

    name = "Fused"

    def infer(self, node: Node, ins: Sequence[TensorInfo | None]) -> list[Shape]:
        parts: tuple[FusedPart, ...] = node.attrs.parts
        first = parts[0]
        shape = get_op(first.op).infer(part_node(first, node.inputs, ["_"]), ins)[0]
        dtype = ins[0].dtype if ins[0] is not None else "float32"
        for p in parts[1:]:
            t = TensorInfo("_", shape, dtype)
            shape = get_op(p.op).infer(part_node(p, ["_"], ["_"]), [t])[0]
        return [shape]

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        parts: tuple[FusedPart, ...] = node.attrs.parts
        y = get_op(parts[0].op).run_float(part_node(parts[0], node.inputs, ["_"]), *xs)[0]
        for p in parts[1:]:
            y = get_op(p.op).run_float(part_node(p, ["_"], ["_"]), y)[0]
        return [y]

    def macs(self, node: Node, ins: Sequence[TensorInfo | None], outs: Sequence[TensorInfo]) -> int:
        parts: tuple[FusedPart, ...] = node.attrs.parts
        first = parts[0]
        fnode = part_node(first, node.inputs, ["_"])
        shape = get_op(first.op).infer(fnode, ins)[0]
        dtype = outs[0].dtype
        out = TensorInfo("_", shape, dtype)
        total = get_op(first.op).macs(fnode, ins, [out])
        for p in parts[1:]:
            pin = out
            pnode = part_node(p, ["_"], ["_"])
            out = TensorInfo("_", get_op(p.op).infer(pnode, [pin])[0], dtype)
            total += get_op(p.op).macs(pnode, [pin], [out])
        return total


def op_label(node: Node) -> str:
    """How reports name a node's op: ``Conv+MaxPool+Relu`` for fusions."""
    if node.op == "Fused":
        return "+".join(p.op for p in node.attrs.parts)
    return node.op
