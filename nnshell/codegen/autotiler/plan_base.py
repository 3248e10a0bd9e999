"""The planner's base: node lookup, unique C names, the convolution layout SQ8 and POW2 share."""

from __future__ import annotations

from typing import Any

from nnshell.codegen.at_names import nntool_steps
from nnshell.codegen.autotiler.common import (
    AutoTilerError,
    Kernel,
    _act_parts,
    _ConvLayout,
    _hw,
    _pad_ctrl,
    _pool_args,
)
from nnshell.codegen.csafe import (
    c_ident,
    is_c_ident,
)
from nnshell.errors import GraphStateError
from nnshell.ir import Graph, Node
from nnshell.quant.scheme import POW2, scheme_of


class PlannerBase:
    """State one planning pass keeps: the graph, its quantization, used names, aliases."""

    def __init__(self, graph: Graph, qstate: Any) -> None:
        self.graph = graph
        self.qstate = qstate
        self.used: set[str] = set()
        self.kernels: list[Kernel] = []
        self.alias: dict[str, str] = {}
        self.pow2 = scheme_of(qstate) is POW2
        self.steps = nntool_steps(graph)  # NNTool's numbering (nnshell.codegen.at_names)

    def unique(self, base: str, step: int) -> str:
        if not is_c_ident(base):  # a name C reserves (``__x``, ``_X``, ``int``): a letter first
            base = "N" + base
        name = base if base not in self.used else f"{base}_S{step}"
        self.used.add(name)
        return c_ident(name, "AutoTiler name")

    def nq(self, node: Node) -> Any:
        try:
            return self.qstate.nodes[node.name]
        except KeyError:
            raise GraphStateError(
                f"node '{node.name}' is not quantized", "aquant <calibration images>"
            ) from None

    def in_acts(self, node: Node) -> list[str]:
        return [i for i in node.inputs if i and not self.graph.tensors[i].is_const]

    def _conv_layout(self, node: Node, nq: Any, im2col: bool) -> _ConvLayout:
        from nnshell.ops.conv import conv_geometry
        from nnshell.ops.fused import part_node

        g = self.graph
        rest, parts = _act_parts(node)
        head = part_node(parts[0], node.inputs, ["_"]) if parts else node
        x = g.tensors[node.inputs[0]]
        wq = nq.consts["weights"]
        kernel, strides, dil, pads, outs = conv_geometry(head, x.shape, wq.shape)
        if len(kernel) != 2:
            raise AutoTilerError(f"{node.name}: only 2-D convolutions have an AutoTiler generator")
        group = int(head.attrs.group)
        in_c, out_c = int(x.shape[1]), int(wq.shape[0])
        _, width, height = _hw(x.shape)
        ctrl = _pad_ctrl(pads, node.name)
        dw = group > 1 and group == in_c == out_c
        name = f"Conv2d_{out_c}x{wq.shape[1]}x{kernel[0]}x{kernel[1]}"
        if im2col and kernel == (1, 1) and group == 1:
            ctrl.append(("ENABLEIM2COL", "AT_OPT_VAL(1)"))
        pool_args = ["KOP_NONE", "0", "0", "0", "0", "0", "0", "0"]
        seen_act = False
        shape = (1, out_c, *outs)
        for p in rest:
            if p.op in ("MaxPool", "AveragePool"):
                if seen_act and p.op == "AveragePool":
                    raise AutoTilerError(
                        f"{node.name}: an activation before an average pool is not expressible"
                    )
                pnode = part_node(p, ["_"], ["_"])
                pool_args, pname = _pool_args(pnode, shape)
                name += f"_{pname}"
            else:
                seen_act = True
        conv_pad = "1" if any(pads) else "0"
        args = [str(in_c), str(out_c), str(width), str(height)]
        args += ["KOP_CONV_DW" if dw else "KOP_CONV", str(kernel[1]), str(kernel[0])]
        args += [str(dil[1]), str(dil[0]), str(strides[1]), str(strides[0]), conv_pad]
        args += pool_args
        return _ConvLayout(name, args, ctrl, rest, group, dw, in_c, out_c)
