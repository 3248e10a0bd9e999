"""SQ8 planning: one AutoTiler SQ8 generator call (a :class:`Kernel`) per kernel node (GEN.md A)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from nnshell.codegen import at_infos as inf
from nnshell.codegen.at_infos import ActInfo, sq8_activation
from nnshell.codegen.at_names import act_label, const_cname
from nnshell.codegen.autotiler.common import (
    AutoTilerError,
    ConstArg,
    Kernel,
    _act_parts,
    _describe_q,
    _hw,
    _op_name,
    _pad_ctrl,
    _pool_args,
    _short_const,
    is_average_pool,
    is_window_pool,
)
from nnshell.codegen.autotiler.plan_base import PlannerBase
from nnshell.ir import Node
from nnshell.ops.registry import get_op


class Sq8Planning(PlannerBase):
    """The SQ8 generators: conv, linear, pools, MatAdd, softmax, activations."""

    # -- per kind ------------------------------------------------------------------------------
    def _infos(self, step: int, data: np.ndarray, comment: str = "") -> ConstArg:
        """The ``S<step>_Infos`` global: bytes in the ``CNN_Infos_SQ8.h`` layout (at_infos)."""
        return ConstArg(self.unique(f"S{step}_Infos", step), "int8", data, 8, comment)

    def _act(self, parts: Sequence[Any], nq: Any, node: Node) -> ActInfo | None:
        try:
            return sq8_activation(parts, nq.out_q, node.name)
        except inf.InfosError as exc:
            raise AutoTilerError(exc.message) from None

    def _weighted_consts(self, node: Node, step: int, nq: Any) -> list[ConstArg]:
        c = nq.consts
        b_src = node.inputs[2] if len(node.inputs) > 2 else ""
        shift = np.asarray(c["shift"], dtype=np.int64)
        if shift.min(initial=0) < -128 or shift.max(initial=0) > 127:
            raise AutoTilerError(f"{node.name}: a shift does not fit the int8 Mul_shift")
        return [
            ConstArg(
                self.unique(_short_const(const_cname(self.graph, node, "", "weights")), step),
                "int8",
                np.ascontiguousarray(c["weights"], dtype=np.int8),
                8,
            ),
            ConstArg(
                self.unique(_short_const(const_cname(self.graph, node, b_src, "biases")), step),
                "int32",
                np.ascontiguousarray(c["bias_total"], dtype=np.int32),
                32,
                "BiasQ: 0 (int32 bias + zero-point offsets)",
            ),
            ConstArg(
                self.unique(f"S{step}_Mul_scale", step),
                "uint8",
                np.ascontiguousarray(c["mul"], dtype=np.uint8).reshape(-1),
                8,
            ),
            ConstArg(
                self.unique(f"S{step}_Mul_shift", step),
                "int8",
                shift.astype(np.int8).reshape(-1),
                8,
            ),
        ]

    def check_padding(self, node: Node) -> None:
        """Refuse a padded conv / pool or a global average pool whose input has a zero point.

        nnshell pads with the input zero point and subtracts it from a global average; the SQ8
        AutoTiler generators have no pad-value argument (``CNN_ConvolutionPoolAct_SQ8``,
        ``CNN_PoolAct_SQ8``, ``CNN_GlobalPoolAct_SQ8``): they pad with code 0, NNTool's rule,
        which ``aquant --nntool_padding`` reproduces.
        """
        op = get_op(node.op)
        nq = self.nq(node)
        qin = nq.in_q[0] if nq.in_q else None
        why, zp = op.q_padded_input(node, 0), qin.zero_point if qin is not None else 0
        if not (why and zp):
            why, zp = op.q_padded_output(node), nq.out_q.zero_point
        if why and zp:
            raise AutoTilerError(
                f"{node.name}: the AutoTiler SQ8 kernels pad a {why} with code 0, but its "
                f"input zero point is {zp}",
                "aquant --nntool_padding (inputs of padded layers symmetric, as NNTool), then gen",
            )

    def sq8_generator(self, kind: str) -> Callable[[Node, int], Kernel]:
        """The SQ8 generator of an op's ``at_generator`` family."""
        return {
            "conv": self.conv,
            "linear": self.linear,
            "pool": self.pool,
            "global_pool": self.global_pool,
            "matadd": self.matadd,
            "softmax": self.softmax,
        }[kind]

    def conv(self, node: Node, step: int) -> Kernel:
        nq = self.nq(node)
        lay = self._conv_layout(node, nq, im2col=True)
        act = self._act(lay.rest, nq, node)
        cname = self.unique(f"S{step}_{lay.name}{act_label(act and act.name)}", step)
        args = [*lay.args, act.kop if act else "KOP_NONE"]
        generator = "CNN_ConvolutionPoolAct_SQ8"
        lead = ["4", "1"]
        if lay.group > 1 and not lay.dw:
            generator = "CNN_GroupedConvolutionPoolAct_SQ8"
            lead = [str(lay.in_c // lay.group), str(lay.out_c // lay.group), *lead]
        consts = self._weighted_consts(node, step, nq)
        consts.append(self._infos(step, inf.conv_infos(act)))
        return Kernel(
            step,
            cname,
            node,
            generator,
            lead + args,
            [node.inputs[0]],
            node.outputs[0],
            consts,
            ("in", "w", "b", "out", "scale", "scalen", "infos"),
            lay.ctrl,
            self._comment(nq, weights=True),
        )

    def linear(self, node: Node, step: int) -> Kernel:
        g = self.graph
        nq = self.nq(node)
        rest, _ = _act_parts(node)
        if any(is_window_pool(p.op) for p in rest):
            raise AutoTilerError(f"{node.name}: a pool after a linear layer is not expressible")
        x = g.tensors[node.inputs[0]]
        wq = nq.consts["weights"]
        in_dim = int(np.prod(x.shape[1:]))
        out_dim = int(wq.shape[0])
        act = self._act(rest, nq, node)
        # NNTool names a lone linear layer by its shape, a linear+activation fusion by its node
        name = _op_name(node) if act else f"Linear_{out_dim}x{in_dim}"
        cname = self.unique(f"S{step}_{name}", step)
        consts = self._weighted_consts(node, step, nq)
        consts.append(self._infos(step, inf.conv_infos(act)))
        return Kernel(
            step,
            cname,
            node,
            "CNN_LinearAct_SQ8",
            ["4", "1", str(in_dim), str(out_dim), "KOP_LINEAR", act.kop if act else "KOP_NONE"],
            [node.inputs[0]],
            node.outputs[0],
            consts,
            ("in", "w", "b", "out", "scale", "scalen", "infos"),
            [],
            self._comment(nq, weights=True),
        )

    def _rescale(self, nq: Any, node: Node) -> tuple[int, int]:
        try:
            return inf.rescale_of(nq.consts, node.name)
        except inf.InfosError as exc:
            raise AutoTilerError(exc.message) from None

    def pool(self, node: Node, step: int) -> Kernel:
        from nnshell.ops.fused import part_node

        g = self.graph
        nq = self.nq(node)
        rest, parts = _act_parts(node)
        head = part_node(parts[0], node.inputs, ["_"]) if parts else node
        x = g.tensors[node.inputs[0]]
        feat, width, height = _hw(x.shape)
        pool_args, pname = _pool_args(head, x.shape)
        act = self._act(rest, nq, node)
        cname = self.unique(f"S{step}_{pname}{act_label(act and act.name)}", step)
        infos = inf.pool_infos(act, self._rescale(nq, node))
        from nnshell.ops.pool import pool_geometry

        ctrl = _pad_ctrl(pool_geometry(head, x.shape)[3], node.name)
        return self._one_in_kernel(
            step,
            cname,
            node,
            "CNN_PoolAct_SQ8",
            [str(feat), str(width), str(height), *pool_args, act.kop if act else "KOP_NONE"],
            infos,
            ctrl,
            nq,
        )

    def global_pool(self, node: Node, step: int) -> Kernel:
        g = self.graph
        nq = self.nq(node)
        rest, parts = _act_parts(node)
        avg = is_average_pool(parts[0].op if parts else node.op)
        x = g.tensors[node.inputs[0]]
        feat, width, height = _hw(x.shape)
        act = self._act(rest, nq, node)
        oper = "KOP_GLOBAL_AVGPOOL" if avg else "KOP_GLOBAL_MAXPOOL"
        # NNTool: a lone global pool is Op_<node>, one fused with an activation is named
        name = _op_name(node)
        if act:
            name = f"{'Average' if avg else 'Max'}Pool_{feat}x1x1_{act.name}"
        try:
            infos = inf.global_pool_infos(act, avg, nq.consts, node.name)
        except inf.InfosError as exc:
            raise AutoTilerError(exc.message) from None
        return self._one_in_kernel(
            step,
            self.unique(f"S{step}_{name}", step),
            node,
            "CNN_GlobalPoolAct_SQ8",
            [str(feat), str(width), str(height), oper, act.kop if act else "KOP_NONE"],
            infos,
            [],
            nq,
        )

    def matadd(self, node: Node, step: int) -> Kernel:
        g = self.graph
        nq = self.nq(node)
        rest, _ = _act_parts(node)
        ins = self.in_acts(node)
        c = nq.consts
        if len(ins) != 2 or "ref_input" not in c:
            raise AutoTilerError(f"{node.name}: only an Add of two activations is a MatAdd")
        if "ew_op" in c:  # issue 17 (elt): the broadcasting kernel nn_ew_sq8
            raise AutoTilerError(
                f"{node.name}: a broadcasting Add has no AutoTiler SQ8 generator (CNN_MatAdd "
                "adds tensors of one shape)",
                "gen --target c supports it",
            )
        j = int(c["ref_input"])
        i = 1 - j
        feat, width, height = _hw(g.tensors[node.outputs[0]].shape)
        act = self._act(rest, nq, node)
        infos = inf.matadd_infos(
            act,
            (int(c["in_mul"][i]), int(c["in_shift"][i])),
            (int(c["mul"]), int(c["shift"])),
        )
        name = f"MatAdd_{feat}x{height}x{width}{act_label(act and act.name)}"
        return Kernel(
            step,
            self.unique(f"S{step}_{name}", step),
            node,
            "CNN_MatAddAct_SQ8",
            [str(feat), str(width), str(height), "KOP_MATADD", act.kop if act else "KOP_NONE"],
            [ins[i], ins[j]],  # In1 is the input rescaled to In2's scale
            node.outputs[0],
            [self._infos(step, infos)],
            ("in", "in", "out", "infos"),
            [],
            self._comment(nq),
        )

    def softmax(self, node: Node, step: int) -> Kernel:
        g = self.graph
        nq = self.nq(node)
        dim = int(np.prod(g.tensors[node.inputs[0]].shape[1:]))
        ctrl = [("OUTPUT_DATASIZE", "AT_OPT_VAL(1)")] if nq.out_q.bits == 8 else []
        infos = inf.softmax_infos(float(nq.in_q[0].scale))
        return self._one_in_kernel(
            step,
            self.unique(f"S{step}_SoftMax", step),
            node,
            "CNN_SoftMax_SQ8",
            [str(dim), "KOP_SOFTMAX"],
            infos,
            ctrl,
            nq,
        )

    def activation(self, node: Node, step: int) -> Kernel:
        """A lone ReLU / ReLU-N / LeakyReLU: ``CNN_PoolAct_SQ8`` without a pool (NNTool's)."""
        from nnshell.ops.activation import Clip

        nq = self.nq(node)
        attrs = node.attrs
        if get_op(node.op).at_activation == "clip":
            consts = [self.graph.tensors[t].const if t else None for t in node.inputs[1:3]]
            lo, hi = Clip().bounds(node, None, *consts)
            attrs = type("ClipBounds", (), {"min": lo, "max": hi})
        try:
            act = inf.activation_info(node.op, attrs, nq.out_q, node.name)
        except inf.InfosError as exc:
            raise AutoTilerError(exc.message) from None
        feat, width, height = _hw(self.graph.tensors[node.inputs[0]].shape)
        return self._one_in_kernel(
            step,
            self.unique(f"S{step}_Act_{act.name}", step),
            node,
            "CNN_PoolAct_SQ8",
            [str(feat), str(width), str(height), "KOP_NONE", *["0"] * 7, act.kop],
            inf.pool_infos(act, self._rescale(nq, node)),
            [],
            nq,
        )

    def _one_in_kernel(
        self,
        step: int,
        cname: str,
        node: Node,
        generator: str,
        args: list[str],
        infos: np.ndarray,
        ctrl: list[tuple[str, str]],
        nq: Any,
    ) -> Kernel:
        """A generator call reading the node's first input, writing its output, and taking one
        infos array (pools, global pools, softmax, lone activations)."""
        return Kernel(
            step,
            cname,
            node,
            generator,
            args,
            [node.inputs[0]],
            node.outputs[0],
            [self._infos(step, infos)],
            ("in", "out", "infos"),
            ctrl,
            self._comment(nq),
        )

    def _comment(self, nq: Any, weights: bool = False) -> str:
        ins = ", ".join(_describe_q(q) for q in nq.in_q if q is not None)
        text = f"In: {ins}"
        if weights:
            text += " Weights: int8 per-channel Bias: int32"
        return text + f" Out: {_describe_q(nq.out_q)}"
