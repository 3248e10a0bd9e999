"""The planner: walks the graph in order and asks the SQ8 or POW2 planning for each kernel node."""

from __future__ import annotations

from nnshell.codegen.at_names import head_op
from nnshell.codegen.autotiler.common import (
    ALIAS_OPS,
    AutoTilerError,
    Kernel,
)
from nnshell.codegen.autotiler.plan_pow2 import Pow2Planning
from nnshell.codegen.autotiler.plan_sq8 import Sq8Planning
from nnshell.ops.fused_act import fused_act


class _Planner(Sq8Planning, Pow2Planning):
    """One pass over the graph: a :class:`Kernel` per kernel node, aliases for data moves."""

    def plan(self) -> list[Kernel]:
        for node in self.graph.nodes:
            if node.op in ALIAS_OPS:
                ins = self.in_acts(node)
                if len(ins) != 1 or len(node.outputs) != 1:
                    raise AutoTilerError(f"{node.name}: {node.op} with several activations")
                self.alias[node.outputs[0]] = ins[0]
                if self.pow2:
                    self._pow2_no_shift(node, "a data-moving node is no AutoTiler kernel")
                continue
            step = self.steps[("node", node.name)]
            head = head_op(node)
            if self.pow2:
                k = self.plan_pow2(node, step, head)
            elif head == "Conv":
                k = self.conv(node, step)
            elif head == "Linear":
                k = self.linear(node, step)
            elif head in ("MaxPool", "AveragePool"):
                k = self.pool(node, step)
            elif head in ("GlobalAveragePool", "GlobalMaxPool"):
                k = self.global_pool(node, step)
            elif head == "Add":
                k = self.matadd(node, step)
            elif head == "Softmax":
                k = self.softmax(node, step)
            elif node.op != "Fused" and fused_act(head, "SQ8") is not None:
                k = self.activation(node, step)
            else:
                raise AutoTilerError(
                    f"node '{node.name}' ({head}) has no AutoTiler SQ8 generator in nnshell",
                    "gen --target c supports more layers",
                )
            self.kernels.append(k)
        self.kernels.sort(key=lambda k: k.step)  # NNTool's generator order (its step order)
        return self.kernels
