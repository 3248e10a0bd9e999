"""SQ8 planning: one AutoTiler SQ8 generator call (a :class:`Kernel`) per kernel node (GEN.md A)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
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
    _linear_dims,
    _op_name,
    _pool_head,
    _short_const,
    is_average_pool,
)
from nnshell.codegen.autotiler.plan_base import PlannerBase
from nnshell.ir import Node
from nnshell.ops.registry import get_op


@contextmanager
def _infos_errors() -> Iterator[None]:
    """An Infos value the SQ8 layout cannot hold is an :class:`AutoTilerError` (one line)."""
    try:
        yield
    except inf.InfosError as exc:
        raise AutoTilerError(exc.message) from None


def _kop(act: ActInfo | None) -> str:
    """The activation operator a generator call ends with (``KOP_NONE`` without one)."""
    return act.kop if act else "KOP_NONE"


def _map_args(fwh: tuple[int, int, int], middle: Sequence[str], act: ActInfo | None) -> list[str]:
    """``feat, width, height, <middle>, <activation KOP>``: the arguments of the one-map
    generators (pools, global pools, MatAdd, lone activations)."""
    return [*(str(v) for v in fwh), *middle, _kop(act)]


class Sq8Planning(PlannerBase):
    """The SQ8 generators: conv, linear, pools, MatAdd, softmax, activations."""

    # -- per kind ------------------------------------------------------------------------------
    def _infos(self, step: int, data: np.ndarray, comment: str = "") -> ConstArg:
        """The ``S<step>_Infos`` global: bytes in the ``CNN_Infos_SQ8.h`` layout (at_infos)."""
        return ConstArg(self.unique(f"S{step}_Infos", step), "int8", data, 8, comment)

    def _act(self, parts: Sequence[Any], nq: Any, node: Node) -> ActInfo | None:
        with _infos_errors():
            return sq8_activation(parts, nq.out_q, node.name)

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
        args = [*lay.args, _kop(act)]
        generator = "CNN_ConvolutionPoolAct_SQ8"
        lead = ["4", "1"]
        if lay.group > 1 and not lay.dw:
            generator = "CNN_GroupedConvolutionPoolAct_SQ8"
            lead = [str(lay.in_c // lay.group), str(lay.out_c // lay.group), *lead]
        infos = inf.conv_infos(act)
        return self._one_in_kernel(
            step, cname, node, generator, lead + args, infos, lay.ctrl, nq, weighted=True
        )

    def linear(self, node: Node, step: int) -> Kernel:
        nq = self.nq(node)
        rest, in_dim, out_dim = _linear_dims(self.graph, node, nq)
        act = self._act(rest, nq, node)
        # NNTool names a lone linear layer by its shape, a linear+activation fusion by its node
        name = _op_name(node) if act else f"Linear_{out_dim}x{in_dim}"
        cname = self.unique(f"S{step}_{name}", step)
        args = ["4", "1", str(in_dim), str(out_dim), "KOP_LINEAR", _kop(act)]
        infos = inf.conv_infos(act)
        return self._one_in_kernel(
            step, cname, node, "CNN_LinearAct_SQ8", args, infos, [], nq, weighted=True
        )

    def _rescale(self, nq: Any, node: Node) -> tuple[int, int]:
        with _infos_errors():
            return inf.rescale_of(nq.consts, node.name)

    def pool(self, node: Node, step: int) -> Kernel:
        nq = self.nq(node)
        ph = _pool_head(self.graph, node)
        act = self._act(ph.rest, nq, node)
        cname = self.unique(f"S{step}_{ph.name}{act_label(act and act.name)}", step)
        infos = inf.pool_infos(act, self._rescale(nq, node))
        ctrl = ph.pad_ctrl(node.name)
        return self._one_in_kernel(
            step,
            cname,
            node,
            "CNN_PoolAct_SQ8",
            _map_args(ph.fwh, ph.args, act),
            infos,
            ctrl,
            nq,
        )

    def global_pool(self, node: Node, step: int) -> Kernel:
        nq = self.nq(node)
        rest, parts = _act_parts(node)
        avg = is_average_pool(parts[0].op if parts else node.op)
        x = self.graph.tensors[node.inputs[0]]
        feat, width, height = _hw(x.shape)
        act = self._act(rest, nq, node)
        oper = "KOP_GLOBAL_AVGPOOL" if avg else "KOP_GLOBAL_MAXPOOL"
        # NNTool: a lone global pool is Op_<node>, one fused with an activation is named
        name = _op_name(node)
        if act:
            name = f"{'Average' if avg else 'Max'}Pool_{feat}x1x1_{act.name}"
        with _infos_errors():
            infos = inf.global_pool_infos(act, avg, nq.consts, node.name)
        return self._one_in_kernel(
            step,
            self.unique(f"S{step}_{name}", step),
            node,
            "CNN_GlobalPoolAct_SQ8",
            _map_args((feat, width, height), [oper], act),
            infos,
            [],
            nq,
        )

    def matadd(self, node: Node, step: int) -> Kernel:
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
        feat, width, height = _hw(self.graph.tensors[node.outputs[0]].shape)
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
            _map_args((feat, width, height), ["KOP_MATADD"], act),
            [ins[i], ins[j]],  # In1 is the input rescaled to In2's scale
            node.outputs[0],
            [self._infos(step, infos)],
            ("in", "in", "out", "infos"),
            [],
            self._comment(nq),
        )

    def softmax(self, node: Node, step: int) -> Kernel:
        nq = self.nq(node)
        dim = int(np.prod(self.graph.tensors[node.inputs[0]].shape[1:]))
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
        with _infos_errors():
            act = inf.activation_info(node.op, attrs, nq.out_q, node.name)
        feat, width, height = _hw(self.graph.tensors[node.inputs[0]].shape)
        return self._one_in_kernel(
            step,
            self.unique(f"S{step}_Act_{act.name}", step),
            node,
            "CNN_PoolAct_SQ8",
            _map_args((feat, width, height), ["KOP_NONE", *["0"] * 7], act),
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
        weighted: bool = False,
    ) -> Kernel:
        """A generator call reading the node's first input, writing its output, and taking one
        infos array (pools, global pools, softmax, lone activations); ``weighted`` (conv,
        linear) adds the int8 weights, int32 biases and per-channel scales before the infos."""
        consts = self._weighted_consts(node, step, nq) if weighted else []
        consts.append(self._infos(step, infos))
        roles = ("in", "w", "b", "out", "scale", "scalen", "infos") if weighted else None
        return Kernel(
            step,
            cname,
            node,
            generator,
            args,
            [node.inputs[0]],
            node.outputs[0],
            consts,
            roles or ("in", "out", "infos"),
            ctrl,
            self._comment(nq, weights=weighted),
        )

    def _comment(self, nq: Any, weights: bool = False) -> str:
        ins = ", ".join(_describe_q(q) for q in nq.in_q if q is not None)
        text = f"In: {ins}"
        if weights:
            text += " Weights: int8 per-channel Bias: int32"
        return text + f" Out: {_describe_q(nq.out_q)}"
