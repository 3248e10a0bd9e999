"""POW2 planning: one AutoTiler POW2 fixed-point generator call per kernel node (POW2.md)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from nnshell.codegen.at_names import const_cname
from nnshell.codegen.autotiler.common import (
    _ACT_NAMES,
    POW2_FIX,
    AutoTilerError,
    ConstArg,
    Kernel,
    _act_parts,
    _hw,
    _linear_dims,
    _op_name,
    _pool_head,
    _short_const,
    _size,
    is_average_pool,
    is_window_pool,
)
from nnshell.codegen.autotiler.plan_base import PlannerBase
from nnshell.ir import Node
from nnshell.ops.registry import get_op
from nnshell.quant.fixed_point import QType
from nnshell.quant.fixed_pow2 import code_of, pow2_qtype, q_of, qmn


def _activation_pow2(parts: Sequence[Any], out_q: QType, node_name: str) -> tuple[str, int | None]:
    """``(KOP_..., ReLUN bound or None)`` of the activation parts of a POW2 fusion (at most one).

    ReLU is ``KOP_RELU``, and so is a Clip(0, hi) whose bound (the code of ``hi`` at the output
    Q, what nnshell's kernel clips to) is the container's top code, Clip(0, inf) included: the
    output's saturation already clamps there. A Clip(0, hi) clipping at ``6 << Out_Q`` (ReLU6)
    is ``KOP_RELUN``, whose bound the generators derive from Out_Q (their ReluN 6). Anything
    else raises.
    """
    acts = [p for p in parts if not is_window_pool(p.op)]
    if len(acts) > 1:
        raise AutoTilerError(
            f"{node_name}: more than one activation in one fused layer has no AutoTiler POW2 "
            "operator",
            POW2_FIX,
        )
    if not acts:
        return "KOP_NONE", None
    act = acts[0]
    kind = get_op(act.op).at_activation
    if kind == "relu":
        return "KOP_RELU", None
    if kind == "clip" and float(act.attrs.min) == 0.0:
        q, bits = q_of(out_q), out_q.bits
        bound = code_of(float(act.attrs.max), q, bits)
        if bound == (1 << (bits - 1)) - 1:
            return "KOP_RELU", None
        if bound == 6 << q:
            return "KOP_RELUN", bound
        raise AutoTilerError(
            f"{node_name}: Clip(0, {float(act.attrs.max):g}) clips at code {bound} of Q{q} and "
            f"the AutoTiler POW2 KOP_RELUN clamps at 6 << Out_Q = {6 << q}",
            POW2_FIX,
        )
    desc = act.op
    if kind == "clip":
        desc = f"Clip({float(act.attrs.min):g}, {float(act.attrs.max):g})"
    raise AutoTilerError(
        f"{node_name}: {desc} inside a fused layer has no AutoTiler POW2 operator "
        "(KOP_RELU and KOP_RELUN only)",
        POW2_FIX,
    )


class Pow2Planning(PlannerBase):
    """The POW2 generators: conv, linear, pools, MatAdd, softmax."""

    def plan_pow2(self, node: Node, step: int, head: str) -> Kernel:
        """The POW2 generator of one kernel node (module docstring)."""
        generators = {
            "conv": self.conv_pow2,
            "linear": self.linear_pow2,
            "pool": self.pool_pow2,
            "global_pool": self.global_pool_pow2,
            "matadd": self.matadd_pow2,
            "softmax": self.softmax_pow2,
        }
        generator = generators.get(get_op(head).at_generator)
        if generator is not None:
            return generator(node, step)
        raise AutoTilerError(
            f"node '{node.name}' ({head}) has no AutoTiler POW2 generator in nnshell",
            "gen --target c supports more layers",
        )

    def _pow2_no_shift(self, node: Node, why: str) -> None:
        """Refuse a node whose NodeQuant moves Q (``out_shift != 0``) where no kernel can."""
        nq = self.qstate.nodes.get(node.name)
        shift = int(nq.consts.get("out_shift", 0)) if nq is not None else 0
        if shift:
            raise AutoTilerError(
                f"{node.name}: moves its result from Q{q_of(nq.in_q[0])} to Q{q_of(nq.out_q)} "
                f"but {why}",
                POW2_FIX,
            )

    def _no_act(self, node: Node, generator: str) -> None:
        rest, _ = _act_parts(node)
        if rest:
            raise AutoTilerError(
                f"{node.name}: {generator} has no activation, so the fused {rest[0].op} cannot "
                "be expressed",
                POW2_FIX,
            )

    def _pow2_weighted(self, node: Node, step: int, nq: Any) -> tuple[list[ConstArg], list[str]]:
        """Weights and biases globals and the call's ``In_Q, Filter_Q, Bias_Q, Out_Q``.

        The kernels normalise by ``In_Q + Filter_Q - Out_Q`` and shift the bias by ``In_Q +
        Filter_Q - Bias_Q``; NodeQuant's ``out_shift``/``bias_shift`` must be those (module
        docstring), with no input pre-shift and no left shift.
        """
        c, info = nq.consts, nq.info
        in_shift, out_shift = int(c["in_shift"]), int(c["out_shift"])
        bias_shift = int(c["bias_shift"])
        qi, qo = q_of(nq.in_q[0]), q_of(nq.out_q)
        qw, qb = int(info["q_w"]), int(info["q_b"])
        if in_shift:
            raise AutoTilerError(
                f"{node.name}: the input is pre-shifted right by {in_shift} bit(s) (Q{qi} to "
                f"Q{qi - in_shift}, the accumulator precision-reduction rule) and the AutoTiler "
                "POW2 kernels have no input shift",
                POW2_FIX,
            )
        if (out_shift, bias_shift) != (qi + qw - qo, qi + qw - qb):
            raise AutoTilerError(
                f"{node.name}: NodeQuant's out_shift {out_shift} / bias_shift {bias_shift} are "
                f"not the kernels' In_Q + Filter_Q - Out_Q = {qi + qw - qo} / In_Q + Filter_Q - "
                f"Bias_Q = {qi + qw - qb} (In Q{qi}, Filter Q{qw}, Bias Q{qb}, Out Q{qo})",
                POW2_FIX,
            )
        if out_shift < 0 or bias_shift < 0:
            raise AutoTilerError(
                f"{node.name}: the Q{qi + qw} accumulator needs a left shift to the Q{qo} output "
                f"(out_shift {out_shift}, bias_shift {bias_shift}) and the AutoTiler POW2 kernels "
                "only shift right (In_Q + Filter_Q - Out_Q is an unsigned shift count)",
                POW2_FIX,
            )
        b_src = node.inputs[2] if len(node.inputs) > 2 else ""
        w = np.ascontiguousarray(c["weights"])
        b = np.ascontiguousarray(c["biases"]).reshape(-1)
        if {str(w.dtype), str(b.dtype)} - {"int8", "int16"}:
            raise AutoTilerError(f"{node.name}: POW2 weights {w.dtype} / biases {b.dtype}")
        consts = [
            ConstArg(
                self.unique(_short_const(const_cname(self.graph, node, "", "weights")), step),
                str(w.dtype),
                w,
                8 * w.dtype.itemsize,
                f"Weights: {qmn(pow2_qtype(qw, 8 * w.dtype.itemsize))}",
                qw,
            ),
            ConstArg(
                self.unique(_short_const(const_cname(self.graph, node, b_src, "biases")), step),
                str(b.dtype),
                b,
                8 * b.dtype.itemsize,
                f"Biases: {qmn(pow2_qtype(qb, 8 * b.dtype.itemsize))}",
                qb,
            ),
        ]
        return consts, [str(qi), str(qw), str(qb), str(qo)]

    def _pow2_comment(self, nq: Any, weights: bool = False, bound: int | None = None) -> str:
        """The kernel's comment: input / output Q formats; with ``weights``, also the weight,
        bias and accumulator formats, the shifts and the ReLUN ``bound`` when there is one."""
        ins = ", ".join(qmn(q) for q in nq.in_q if q is not None)
        if not weights:
            return f"In: {ins} Out: {qmn(nq.out_q)}"
        info, c = nq.info, nq.consts
        wb = 8 * c["weights"].dtype.itemsize
        bb = 8 * c["biases"].dtype.itemsize
        return (
            f"In: {ins}"
            f" Weights: {qmn(pow2_qtype(int(info['q_w']), wb))}"
            f" Bias: {qmn(pow2_qtype(int(info['q_b']), bb))}"
            f" Acc: Q{int(info['q_acc'])}"
            f" Out: {qmn(nq.out_q)}"
            f" Shifts: out {int(c['out_shift'])} bias {int(c['bias_shift'])}"
        ) + ("" if bound is None else f" ReLUN bound: {bound}")

    def _pow2_same_q(self, node: Node, nq: Any, generator: str, why: str) -> tuple[int, int]:
        """``(In_Q, Out_Q)`` of a node whose kernel keeps its input's Q; refuses a Q move."""
        qi, qo = q_of(nq.in_q[0]), q_of(nq.out_q)
        if qi != qo or int(nq.consts.get("out_shift", 0)):
            raise AutoTilerError(
                f"{node.name}: moves its result from Q{qi} to Q{qo} but {generator} keeps its "
                f"input's Q ({why})",
                POW2_FIX,
            )
        return qi, qo

    def conv_pow2(self, node: Node, step: int) -> Kernel:
        nq = self.nq(node)
        lay = self._conv_layout(node, nq, im2col=False)
        act, bound = _activation_pow2(lay.rest, nq.out_q, node.name)
        pools = [p.op for p in lay.rest if is_window_pool(p.op)]
        # _conv_layout refused an activation before an average pool: here it comes after one
        if act != "KOP_NONE" and not lay.dw and any(map(is_average_pool, pools)):
            raise AutoTilerError(
                f"{node.name}: the activation after the average pool would run before it (the "
                "KOP_CONV_DP reduction applies it, then the pool)",
                POW2_FIX,
            )
        if act == "KOP_RELUN" and lay.dw and pools:
            raise AutoTilerError(
                f"{node.name}: a depthwise conv pools then activates and the AutoTiler POW2 pool "
                "kernels take KOP_RELU only, not KOP_RELUN",
                POW2_FIX,
            )
        name = lay.name + (f"_{_ACT_NAMES[act]}" if act != "KOP_NONE" else "")
        cname = self.unique(f"S{step}_{name}", step)
        consts, qs = self._pow2_weighted(node, step, nq)
        sizes = [_size(nq.in_q[0]), consts[0].bits // 8, consts[1].bits // 8, _size(nq.out_q)]
        args = list(lay.args)
        # one 32-bit accumulator, bias at In_Q + Filter_Q (NNTool's choice for both)
        args[4] = "KOP_CONV_DWDP" if lay.dw else "KOP_CONV_DP"
        generator = "CNN_ConvolutionPoolReLU"
        lead = [*(str(v) for v in sizes), *qs, "1", "1", "1", "1"]
        if lay.group > 1 and not lay.dw:
            generator = "CNN_GroupedConvolutionPoolReLU"
            lead = [str(lay.in_c // lay.group), str(lay.out_c // lay.group), *lead]
        comment = self._pow2_comment(nq, weights=True, bound=bound)
        return Kernel(
            step,
            cname,
            node,
            generator,
            [*lead, *args, act],
            [node.inputs[0]],
            node.outputs[0],
            consts,
            ("in", "w", "b", "out"),
            lay.ctrl,
            comment,
        )

    def linear_pow2(self, node: Node, step: int) -> Kernel:
        nq = self.nq(node)
        rest, in_dim, out_dim = _linear_dims(self.graph, node, nq)
        act, bound = _activation_pow2(rest, nq.out_q, node.name)
        name = _op_name(node) if act != "KOP_NONE" else f"Linear_{out_dim}x{in_dim}"
        cname = self.unique(f"S{step}_{name}", step)
        consts, qs = self._pow2_weighted(node, step, nq)
        sizes = [_size(nq.in_q[0]), consts[0].bits // 8, consts[1].bits // 8, _size(nq.out_q)]
        comment = self._pow2_comment(nq, weights=True, bound=bound)
        return Kernel(
            step,
            cname,
            node,
            "CNN_LinearReLU",
            [*(str(v) for v in sizes), *qs, "1", "1", "1", "1", str(in_dim), str(out_dim)]
            + ["KOP_LINEAR", act],
            [node.inputs[0]],
            node.outputs[0],
            consts,
            ("in", "w", "b", "out"),
            [],
            comment,
        )

    def pool_pow2(self, node: Node, step: int) -> Kernel:
        nq = self.nq(node)
        ph = _pool_head(self.graph, node)
        feat, width, height = ph.fwh
        qi, qo = self._pow2_same_q(
            node, nq, "CNN_PoolReLU", "its kernels take no Q, Out_Q only scales the ReLUN bound"
        )
        act, _ = _activation_pow2(ph.rest, nq.out_q, node.name)
        if act == "KOP_RELUN":
            raise AutoTilerError(
                f"{node.name}: the AutoTiler POW2 pool kernels take KOP_RELU only, not KOP_RELUN",
                POW2_FIX,
            )
        name = ph.name + (f"_{_ACT_NAMES[act]}" if act != "KOP_NONE" else "")
        ctrl = ph.pad_ctrl(node.name)
        head_args = [str(_size(nq.in_q[0])), str(_size(nq.out_q)), str(qi), str(qo), "1", "1"]
        return Kernel(
            step,
            self.unique(f"S{step}_{name}", step),
            node,
            "CNN_PoolReLU",
            [*head_args, str(feat), str(feat), str(width), str(height), *ph.args, act],
            [node.inputs[0]],
            node.outputs[0],
            [],
            ("in", "out"),
            ctrl,
            self._pow2_comment(nq),
        )

    def global_pool_pow2(self, node: Node, step: int) -> Kernel:
        nq = self.nq(node)
        self._no_act(node, "CNN_GlobalPool")
        _, parts = _act_parts(node)
        head_op = parts[0].op if parts else node.op
        x = self.graph.tensors[node.inputs[0]]
        feat, width, height = _hw(x.shape)
        avg = is_average_pool(head_op)
        # nnshell's mean has 7 guard bits and moves Q by out_shift - 7; the kernel's has Out_Q
        # guard bits and moves none: the same mean when Qout == Qin (out_shift 7)
        qi, qo = q_of(nq.in_q[0]), q_of(nq.out_q)
        shift = int(nq.consts.get("out_shift", 0))
        if qi != qo or shift != (7 if avg else 0):
            raise AutoTilerError(
                f"{node.name}: moves its result from Q{qi} to Q{qo} (out_shift {shift}) but "
                "CNN_GlobalPool keeps its input's Q (Out_Q only sets the guard bits of the "
                "average)",
                POW2_FIX,
            )
        head_args = [str(_size(nq.in_q[0])), str(_size(nq.out_q)), str(qi), str(qo), "1", "1"]
        oper = "KOP_GLOBAL_AVGPOOL" if avg else "KOP_GLOBAL_MAXPOOL"
        return Kernel(
            step,
            self.unique(f"S{step}_{_op_name(node)}", step),
            node,
            "CNN_GlobalPool",
            [*head_args, str(feat), str(feat), str(width), str(height), oper],
            [node.inputs[0]],
            node.outputs[0],
            [],
            ("in", "out"),
            [],
            self._pow2_comment(nq),
        )

    def matadd_pow2(self, node: Node, step: int) -> Kernel:
        nq = self.nq(node)
        ins = self.in_acts(node)
        if len(ins) != 2:
            raise AutoTilerError(f"{node.name}: only an Add of two activations is a MatAdd")
        self._no_act(node, "CNN_MatAdd")
        out_shape = tuple(self.graph.tensors[node.outputs[0]].shape)
        if any(tuple(self.graph.tensors[t].shape) != out_shape for t in ins):
            raise AutoTilerError(
                f"{node.name}: a broadcasting Add has no AutoTiler POW2 generator (CNN_MatAdd "
                "adds tensors of one shape)",
                POW2_FIX,
            )
        in_q = [q for q in nq.in_q if q is not None]
        q1, q2 = (q_of(q) for q in in_q)
        qo, qc = q_of(nq.out_q), max(q1, q2)
        c = nq.consts
        in_shifts = [int(v) for v in np.asarray(c.get("in_shifts", [0, 0])).reshape(-1)]
        out_shift = int(c.get("out_shift", 0))
        if in_shifts != [qc - q1, qc - q2] or out_shift != qc - qo:
            raise AutoTilerError(
                f"{node.name}: NodeQuant's in_shifts {in_shifts} / out_shift {out_shift} are not "
                f"the alignment of Q{q1} + Q{q2} to Q{qc} and the move to Q{qo}",
                POW2_FIX,
            )
        sizes = [_size(in_q[0]), _size(in_q[1]), _size(nq.out_q)]
        generator, oper = "CNN_MatAdd", "KOP_MATADD"
        if not q1 == q2 == qo:
            generator, oper = "CNN_MatAddDynAdjust", "KOP_MATADD_DYNADJUST"
            for what, q, size in zip(("In1_Q", "In2_Q", "Out_Q"), (q1, q2, qo), sizes, strict=True):
                if not 0 <= q <= 8 * size - 1:
                    raise AutoTilerError(
                        f"{node.name}: {what} {q} is outside the 0..{8 * size - 1} of "
                        "CNN_MatAddDynAdjust",
                        POW2_FIX,
                    )
        feat, width, height = _hw(out_shape)
        args = [*(str(v) for v in sizes), str(q1), str(q2), str(qo), "1", "1", "1"]
        args += [str(feat), str(feat), str(width), str(height), oper]
        return Kernel(
            step,
            self.unique(f"S{step}_MatAdd_{feat}x{height}x{width}", step),
            node,
            generator,
            args,
            ins,
            node.outputs[0],
            [],
            ("in", "in", "out"),
            [],
            self._pow2_comment(nq),
        )

    def softmax_pow2(self, node: Node, step: int) -> Kernel:
        nq = self.nq(node)
        dim = int(np.prod(self.graph.tensors[node.inputs[0]].shape[1:]))
        if nq.out_q.bits != 16 or q_of(nq.out_q) != 15:
            raise AutoTilerError(f"{node.name}: the AutoTiler POW2 softmax writes int16 Q15 only")
        qi = q_of(nq.in_q[0])
        return Kernel(
            step,
            self.unique(f"S{step}_SoftMax", step),
            node,
            "CNN_SoftMax",
            [str(_size(nq.in_q[0])), "2", str(qi), "15", "1", "1", str(dim), "KOP_SOFTMAX"],
            [node.inputs[0]],
            node.outputs[0],
            [],
            ("in", "out"),
            [],
            self._pow2_comment(nq),
        )
