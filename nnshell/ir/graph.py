"""The intermediate representation: tensors, nodes and the graph that orders them.

Shapes follow one convention everywhere: an *activation* tensor (one that depends on a graph
input) carries its ONNX shape with the batch dimension fixed to 1, so op attributes such as
``axis`` or ``perm`` keep their ONNX meaning; ``TensorInfo.dims`` strips that leading 1 for
display. At run time activations have a leading batch axis of any size. A *constant* tensor
(weights, biases, shape vectors) keeps its ONNX shape and has no batch axis.

The IR knows nothing of ONNX, the shell or rendering.
"""

from __future__ import annotations

import copy as _copy
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nnshell.errors import GraphStateError

Shape = tuple[int, ...]

_C_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


def c_safe_name(name: str) -> str:
    """Return ``name`` with every character that is not legal in a C identifier made ``_``.

    This is NNTool's convention, so ``/conv1/Conv`` becomes ``_conv1_Conv``.
    """
    safe = _C_UNSAFE.sub("_", name)
    if not safe or safe[0].isdigit():
        safe = "_" + safe
    return safe


@dataclass
class TensorInfo:
    """A named tensor: its shape and dtype, and its value when it is a constant."""

    name: str
    shape: Shape
    dtype: str = "float32"
    const: np.ndarray | None = None

    @property
    def is_const(self) -> bool:
        """Whether the tensor is a constant (weights, bias, folded shape)."""
        return self.const is not None

    @property
    def dims(self) -> Shape:
        """The shape a user sees: without the batch axis for activations."""
        if self.is_const or not self.shape:
            return self.shape
        return self.shape[1:]

    @property
    def size(self) -> int:
        """Number of elements (of one batch item for activations)."""
        return int(np.prod(self.dims, dtype=np.int64))


@dataclass
class Node:
    """One operator instance; ``attrs`` is the op's frozen attribute dataclass."""

    name: str
    op: str
    inputs: list[str]
    outputs: list[str]
    attrs: Any = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Graph:
    """Nodes in topological order and the tensors they connect."""

    name: str
    nodes: list[Node] = field(default_factory=list)
    tensors: dict[str, TensorInfo] = field(default_factory=dict)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def tensor(self, name: str) -> TensorInfo:
        """Return the tensor called ``name``; a missing name is a graph bug."""
        try:
            return self.tensors[name]
        except KeyError:
            raise GraphStateError(f"tensor '{name}' is not in graph '{self.name}'") from None

    def node(self, name: str) -> Node:
        """Return the node called ``name``."""
        for n in self.nodes:
            if n.name == name:
                return n
        raise GraphStateError(f"no node named '{name}' in graph '{self.name}'")

    def producer(self, tensor: str) -> Node | None:
        """Return the node that writes ``tensor`` (None for inputs and constants)."""
        for n in self.nodes:
            if tensor in n.outputs:
                return n
        return None

    def consumers(self, tensor: str) -> list[Node]:
        """Return the nodes that read ``tensor``, in execution order."""
        return [n for n in self.nodes if tensor in n.inputs]

    def in_infos(self, node: Node) -> list[TensorInfo | None]:
        """Return the TensorInfo of each input of ``node`` (None for an omitted optional input)."""
        return [self.tensors[i] if i else None for i in node.inputs]

    def out_infos(self, node: Node) -> list[TensorInfo]:
        """Return the TensorInfo of each output of ``node``."""
        return [self.tensors[o] for o in node.outputs]

    def unique_name(self, base: str) -> str:
        """Return ``base`` or ``base_<k>``, whichever is first free among nodes and tensors."""
        taken = {n.name for n in self.nodes} | set(self.tensors)
        if base not in taken:
            return base
        k = 1
        while f"{base}_{k}" in taken:
            k += 1
        return f"{base}_{k}"

    def copy(self) -> Graph:
        """Return a deep copy; constant arrays are shared because passes replace, never mutate."""
        memo = {id(t.const): t.const for t in self.tensors.values() if t.const is not None}
        return _copy.deepcopy(self, memo)
