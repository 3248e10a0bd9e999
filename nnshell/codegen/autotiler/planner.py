"""The planner: walks the graph in order and asks the SQ8 or POW2 planning for each kernel node."""

from __future__ import annotations

from nnshell.codegen.at_names import head_op
from nnshell.codegen.autotiler.common import (
    AutoTilerError,
    Kernel,
)
from nnshell.codegen.autotiler.plan_pow2 import Pow2Planning
from nnshell.codegen.autotiler.plan_sq8 import Sq8Planning
from nnshell.ops.fused_act import fused_act
from nnshell.ops.registry import get_op


class _Planner(Sq8Planning, Pow2Planning):
    """One pass over the graph: a :class:`Kernel` per kernel node, aliases for data moves."""

    def plan(self) -> list[Kernel]:
        for node in self.graph.nodes:
            if get_op(node.op).at_alias:
                ins = self.in_acts(node)
                if len(ins) != 1 or len(node.outputs) != 1:
                    raise AutoTilerError(f"{node.name}: {node.op} with several activations")
                self.alias[node.outputs[0]] = ins[0]
                if self.pow2:
                    self._pow2_no_shift(node, "a data-moving node is no AutoTiler kernel")
                continue
            step = self.steps[("node", node.name)]
            head = head_op(node)
            op = get_op(node.op)
            if not self.pow2:
                self.check_padding(node)
            if self.pow2:
                k = self.plan_pow2(node, step, head)
            elif get_op(head).at_generator:
                k = self.sq8_generator(get_op(head).at_generator)(node, step)
            elif not op.is_fusion and fused_act(head, "SQ8") is not None:
                k = self.activation(node, step)
            else:
                raise AutoTilerError(
                    f"node '{node.name}' ({head}) has no AutoTiler SQ8 generator in nnshell",
                    "gen --target c supports more layers",
                )
            self.kernels.append(k)
        self.kernels.sort(key=lambda k: k.step)  # NNTool's generator order (its step order)
        return self.kernels
