"""What quantization records per node, and what an op's quantizer is given.

Kept beside ``fixed_point`` at the bottom of the layering so the op modules can describe their
own quantizer and integer kernel (one op described once) without importing the quant driver.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nnshell.ir import Graph, Node
from nnshell.quant.fixed_point import QType


@dataclass
class NodeQuant:
    """The integer parameters of one node.

    ``consts`` holds arrays the integer kernel reads (int8 weights, int32 biases, uint8
    multipliers, shifts, tables); ``info`` holds figures for reports (accumulator bits,
    multiplier bits, the real multipliers and their relative error, notes).
    """

    in_q: list[QType | None]
    out_q: QType
    consts: dict[str, np.ndarray] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class QuantContext:
    """Everything an op's ``quantize_sq8`` needs: graph, node qtypes and the user's options."""

    graph: Graph
    node: Node
    in_q: list[QType | None]
    out_q: QType
    per_tensor: bool = False
    #: conv/linear multiplier width (8: SQ8's rule; more: ``open -q``'s TFLite precision)
    mult_bits: int = field(default=8, kw_only=True)

    def const(self, idx: int) -> np.ndarray | None:
        """The constant value of input ``idx`` (None when absent or not constant)."""
        if idx >= len(self.node.inputs) or not self.node.inputs[idx]:
            return None
        return self.graph.tensors[self.node.inputs[idx]].const
