"""``gen --target autotiler``: the GAP AutoTiler *model* C file, its ``.tensor`` files and header.

The model file is a C program that calls the AutoTiler's SQ8 generators (GEN.md §A), or its POW2
fixed-point generators for a POW2 graph (below); it is built later against the GAP SDK, so here
it is checked for structure, not executed. Layout, in order:
includes, ``<G>Model(L1, L2, L3, L3Flash)`` (symbol dynamics, file names, memory devices from the
``l1_size``/``l2_size``/``l3_size``/``l3_flash_mb``/``l3_ram_device``/``l3_flash_device``
settings, library load, one generator call per kernel node in execution order, ``CreateGraph``
with the globals and locals, the ``AddNode`` bindings, ``CloseGraph``) and ``main``.
``AT_SetGraphCtrl`` lines come from the ``graph_*`` settings that differ from their defaults;
argument homes from the ``default_*_location`` settings. An input formatter (``imageformat``,
:mod:`nnshell.formatter`) makes ``Input_<i>`` the raw ``unsigned char``/``unsigned short`` HWC
pixels, adds a ``CNN_Norm`` generator ``S0_Op_Input_<i>_Formatter`` and its node writing the
local ``S0_Output_<i>`` that the first kernels read.

Names and steps are NNTool's (:mod:`nnshell.codegen.at_names`): ``<G>`` is the C-safe graph
name (``set graph_name`` overrides it); steps number every node of NNTool's graph — inputs,
constants, layers, outputs — in its depth-first topological order (the LeNet's layers are S3,
S6, S9, S12, S15) and the generators come in that order; data-moving reshapes are no kernels
(their output is the same buffer). Layers are named after what they do
(``S3_Conv2d_6x3x5x5_MaxPool_2x2_Relu``, ``S15_Linear_10x84``, ``S9_Op__fc1_Gemm_fusion`` for a
linear layer with its activation); graph inputs/outputs are ``Input_<i>``/``Output_<i>``,
intermediate activations ``S<k>_Output``, weights ``<layer>_weights`` and biases
``Constant_<initializer>`` or ``<layer>_biases`` capitalised as NNTool does
(``_conv1_conv_weights``), per-node constants ``S<k>_Mul_scale``, ``S<k>_Mul_shift`` and
``S<k>_Infos``.

Tensor files (raw little-endian, C order): weights int8 ``out_c, in_c, h, w`` (the adjusted
order), biases int32, ``Mul_scale`` uint8 (the SQ8 multiplier ``M``), ``Mul_shift`` int8 (``N``),
``Infos`` int8 (below).

Biases: the file holds the SDK's single int32 bias per channel, ``Bq + off`` (NodeQuant's
``bias_total``): the int32 bias at the accumulator scale plus the zero-point offset of SQ8 §4,
``-Zi·ΣWq + round_half_up(Zo·So/(Si·Sw))``. The input zero point is thus undone and the output
zero point pre-added inside the accumulator, so the kernel computes exactly
``act(clip8(rnorm((Σ Wq·Xq + B)·M, N)))`` — the integers of nnshell's executor.

``Infos``: ``INFOS_SIZE`` = 13 signed bytes per kernel in the layout of the GAP SDK's
``CNN_Infos_SQ8.h``, and the activation operators NNTool emits (``KOP_RELUM`` for an asymmetric
ReLU/ReLU6 output): :mod:`nnshell.codegen.at_infos`.

Header ``<model dir>/<header>`` (default ``model.h``): for the graph input and every kernel
node's output, ``<G>_<name>_OUT_SCALE/_OUT_QSCALE/_OUT_QNORM/_OUT_ZERO_POINT`` with
``So ≈ QS·2^-QN`` from :func:`nnshell.fixed_point.header_qscale_qnorm` (SQ8.md §8).

POW2 (``aquant -s POW2 -f 16|8``, POW2.md; every tensor a Qm.n code, ``real = code·2^-q``): the
same layout with ``#include "CNN_Generators.h"``, ``"CNN_BasicKernels.h"`` in
``SetUsedFilesNames`` and ``LoadCNNLibrary();``, calling the GAP SDK's current POW2 generators
(those of NNTool's ``at_ver 3`` models): each call carries the Q of its tensors and the kernels
derive their normalisation shifts from them, so an ``AddNode`` binds tensors only — ``(In,
Filter, Bias, Out)`` for a conv or linear layer, ``(In, Out)`` or ``(In1, In2, Out)`` otherwise.
Data sizes are in bytes (2 for POW2-16, 1 for POW2-8; the bias in its NodeQuant container); the Qs
are ``q_of`` of the NodeQuant's tensors, ``info["q_w"]`` and ``info["q_b"]`` for the constants.
Every ``*_InL3`` flag is 1, as in NNTool's POW2 models and the SDK examples: the homes are the
ones CreateGraph declares from the ``default_*_location`` settings (constants in L3 flash by
default), like the SQ8 generators, which have no such flags; 1 lets a kernel stage an argument
from L3 through L2.

* conv (+ pool + activation fusions): ``CNN_ConvolutionPoolReLU(Name, Ctrl, In_DataSize,
  Filter_DataSize, Bias_DataSize, Out_DataSize, In_Q, Filter_Q, Bias_Q, Out_Q, In_InL3,
  Filter_InL3, Bias_InL3, Out_InL3, InFeat, OutFeat, Width, Height, ConvOper, Fcx, Fcy, Dcx, Dcy,
  Scx, Scy, ConvPad, PoolOper, Fpx, Fpy, Dpx, Dpy, Spx, Spy, PoolPad, ReLUOper)``;
  ``CNN_GroupedConvolutionPoolReLU(Name, Ctrl, GroupIn, GroupOut, ...)`` for other groups.
  ConvOper is ``KOP_CONV_DP`` (NNTool's choice too): the bias enters a 32-bit accumulator as
  ``Bias << (In_Q + Filter_Q - Bias_Q)`` and the sum is normalised once by ``In_Q + Filter_Q -
  Out_Q`` under the activation's clamp — NodeQuant's ``acc + (b << bias_shift)`` and
  ``shift_round(., out_shift)``. Plain ``KOP_CONV`` would not compute that: it copies the bias
  into the output unshifted (as if ``Bias_Q == Out_Q``) and rounds the running sum to Out_Q after
  every tile of input channels. A depthwise conv is ``KOP_CONV_DWDP``, as NNTool writes it: per
  channel, a 32-bit accumulator, bias shifted by ``In_Q + Filter_Q - Bias_Q``, one normalisation
  — the same integers;
* linear: ``CNN_LinearReLU(Name, Ctrl, In_DataSize, Filter_DataSize, Bias_DataSize,
  Out_DataSize, In_Q, Filter_Q, Bias_Q, Out_Q, In_InL3, Filter_InL3, Bias_InL3, Out_InL3, InDim,
  OutDim, KOP_LINEAR, ReLUOper)``, normalised like a conv. For both, NodeQuant's shifts must be the
  kernels': ``out_shift == In_Q + Filter_Q - Out_Q``, ``bias_shift == In_Q + Filter_Q - Bias_Q``;
* pool: ``CNN_PoolReLU(Name, Ctrl, In_DataSize, Out_DataSize, In_Q, Out_Q, In_InL3, Out_InL3,
  InFeat, OutFeat, Width, Height, PoolOper, Fpx, Fpy, Dpx, Dpy, Spx, Spy, PoolPad, ReLUOper)``
  with ``In_Q == Out_Q``: its kernels take no Q (Out_Q only scales the ReLUN bound), so a pool
  keeps its input's Q;
* global pool: ``CNN_GlobalPool(Name, Ctrl, In_DataSize, Out_DataSize, In_Q, Out_Q, In_InL3,
  Out_InL3, InFeat, OutFeat, Width, Height, KOP_GLOBAL_AVGPOOL|KOP_GLOBAL_MAXPOOL)`` with
  ``In_Q == Out_Q`` too: the max kernel takes no Q and the average one computes
  ``rnorm(trunc((Σx << Out_Q)/HW), Out_Q)``, the mean at the *input's* Q with Out_Q guard bits.
  That is nnshell's ``shift_round(trunc((Σx << 7)/HW), Qin + 7 - Qout)`` when ``Qout == Qin``
  (``out_shift`` 7): equal for a non-negative sum, a negative mean may round one LSB apart (7
  guard bits against Out_Q);
* add: ``CNN_MatAdd(Name, Ctrl, In1_DataSize, In2_DataSize, Out_DataSize, In1_Q, In2_Q, Out_Q,
  In1_InL3, In2_InL3, Out_InL3, InFeat, OutFeat, Width, Height, KOP_MATADD)`` when the three Qs are
  equal (codes added and saturated, as nnshell does), else ``CNN_MatAddDynAdjust(`` the same
  parameters ``, KOP_MATADD_DYNADJUST)``, each Q in ``[0, 8·DataSize - 1]``. Both compute the sum
  of the two inputs at Out_Q from the same Qs. nnshell aligns the inputs to ``q_common = max(In1_Q,
  In2_Q)`` by exact left shifts (NodeQuant's ``in_shifts``), adds, and moves the sum to Out_Q by
  ``shift_round(., q_common - Out_Q)`` (``out_shift``); the SDK kernel aligns the finer input down
  to ``min(In1_Q, In2_Q)`` by an arithmetic right shift, adds, and shifts the sum to Out_Q
  (truncating when it shifts right). The codes are therefore equal when ``In1_Q == In2_Q <=
  Out_Q``, otherwise the SDK's may be below nnshell's by one LSB at ``min(In1_Q, In2_Q)`` (it
  truncates where nnshell rounds half up: mobile_net_tiny's Q12 ``a`` + Q11 ``b`` into Q11 is
  ``b + floor(a/2)`` there, ``b + floor((a+1)/2)`` in nnshell);
* softmax: ``CNN_SoftMax(Name, Ctrl, In_DataSize, Out_DataSize, In_Q, Out_Q, In_InL3, Out_InL3,
  Dim, KOP_SOFTMAX)``; the kernel reads its input at In_Q and writes int16 Q15 (Out_Q 15).

ReLUOper: ``KOP_NONE``, ``KOP_RELU`` (ReLU, or a Clip(0, hi) whose bound saturates the output
container, Clip(0, inf) included) or ``KOP_RELUN`` for ReLU6: the generators clamp at ``6 <<
Out_Q`` themselves (their default ReluN is 6; no binding), and the node's comment keeps that bound.
A ReLU6 whose ``6 << Out_Q`` does not fit the container is ``KOP_RELU`` (nnshell's bound saturates
to the top code there, and the SDK rejects such a ReLUN). The globals are the weights and biases
only (no ``Mul_scale``/``Mul_shift``/``Infos``): ``.tensor`` files in their container type (int16
``signed short``, int8 ``signed char``; same names and order as SQ8) with ``ConstInfo(..., 1, 1,
<bits>, <q>)`` carrying their real Q (``q_w``, ``q_b``); activations are ``signed short`` (16-bit)
or ``signed char`` (8-bit). Each ``AddNode`` is preceded by the Qm.n of its input(s), weights, bias
and output. What the kernels cannot compute raises one :class:`AutoTilerError` naming the node
(``gen --target c`` handles all of it): an input pre-shift (``in_shift != 0``, left by the
accumulator precision-reduction rule only when the input's Q is one an op imposes: softmax, sigmoid,
tanh outputs; any other producer writes the lower Q itself); a negative ``out_shift``/``bias_shift``
(the kernels' ``In_Q + Filter_Q - Out_Q`` is an unsigned right-shift count: an Out_Q finer than the
accumulator is no left shift there); NodeQuant shifts other than the ones the kernels derive; a
pool, global pool or data-moving node that moves Q; an Add whose Qs are outside the dynamic-adjust
range, or that broadcasts; an activation after an Add or a global pool; an activation after an
average pool fused in a conv (the double-precision reduction applies it before the pool); ReLU6 with
a pool in a depthwise conv or a pool layer (their pool kernels take ``KOP_RELU`` only); a Clip other
than ReLU6 or the container's saturation; a LeakyReLU or any other activation. The header gains
``<G>_<name>_Q`` (``real = code·2^-Q``) per output; ``OUT_SCALE`` is then exactly ``2^-Q``.

Paths: a relative ``tensor_dir`` is relative to ``model_dir`` (written there, and written as given
in the ``ConstInfo`` paths, so run the generated tiler from the model directory); the output holds
no timestamps and no absolute path unless one was given, so generating twice gives the same bytes.
Every file is written atomically (temporary file in the same folder, then rename).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nnshell.atomic import atomic_write_files, os_error_text
from nnshell.codegen import at_infos as inf
from nnshell.codegen.at_infos import INFOS_SIZE, ActInfo, sq8_activation
from nnshell.codegen.at_names import act_label, const_cname, head_op, nntool_steps
from nnshell.codegen.at_options import apply_gen_ctrl, arg_scope, out_locations
from nnshell.codegen.checks import check_8bit_multipliers, check_shapes
from nnshell.codegen.csafe import (
    c_comment,
    c_float,
    c_ident,
    c_int,
    c_string,
    c_token,
    is_c_ident,
    plain_file_name,
    short_name,
)
from nnshell.errors import CodegenError, GraphStateError, ModelFileError, NnshellError
from nnshell.fixed_point import QType, header_qscale_qnorm
from nnshell.fixed_pow2 import code_of, pow2_qtype, q_of, qmn
from nnshell.ir import Graph, Node, c_safe_name
from nnshell.ops.fused_act import fused_act
from nnshell.settings import (
    AT_MEMORIES,
    MAX_FLASH_MB,
    MAX_MEMORY_BYTES,
    MEMORY_SETTINGS,
    SETTINGS,
)

#: Data-moving ops that are no kernel: their output shares the input buffer.
ALIAS_OPS = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout"})

_CTYPES = {
    "int8": "signed char * __restrict__",
    "uint8": "unsigned char * __restrict__",
    "int16": "signed short * __restrict__",
    "int32": "signed int * __restrict__",
}

#: NNTool's activation names in POW2 kernel names (``KOP_RELUN`` is always a ReLU6 there).
_ACT_NAMES = {"KOP_RELU": "Relu", "KOP_RELUN": "Relu6"}


class AutoTilerError(NnshellError):
    """A graph that the AutoTiler SQ8 or POW2 generators cannot express."""


#: The fix offered whenever the POW2 AutoTiler kernels cannot compute what nnshell computes.
POW2_FIX = "gen --target c handles it, or fusions --scale8 and aquant -s SQ8 for an AutoTiler model"


@dataclass
class ConstArg:
    """One global constant: C name, element type, values and the ConstInfo bits."""

    name: str
    ctype: str
    data: np.ndarray
    bits: int
    comment: str = ""
    q: int = 0  # the ConstInfo fixed-point format (POW2: the Q of the values; SQ8: 0)


@dataclass
class Kernel:
    """One generator call and its graph node binding."""

    step: int
    cname: str
    node: Node
    generator: str
    args: list[str]
    ins: list[str]  # activation tensor names, in binding order
    out: str
    consts: list[ConstArg] = field(default_factory=list)
    # order of the bindings: "in" activation inputs, "w" weights, "b" biases, "out", then per-node
    binding: tuple[str, ...] = ()
    gen_ctrl: list[tuple[str, str]] = field(default_factory=list)
    comment: str = ""


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _fmt(x: float) -> str:
    """A float as C source: shortest repr that round-trips (deterministic); finite only."""
    return c_float(x, "scale")


#: Longest C-safe tensor name kept whole in a ``Constant_<name>`` (it names a file too).
_MAX_CONST_NAME = 160


def _ctrl_value(val: str) -> str:
    """A generator control value: ``AT_OPT_VAL(<int or constant>)`` or a constant."""
    if val.startswith("AT_OPT_VAL(") and val.endswith(")"):
        return f"AT_OPT_VAL({c_token(val[len('AT_OPT_VAL(') : -1], 'generator control')})"
    return c_token(val, "generator control")


def _memory(settings: Mapping[str, Any], name: str, default: str) -> str:
    """An ``AT_MEM_*`` setting, refused unless it is one of :data:`AT_MEMORIES`."""
    value = settings.get(name, default)
    if value not in AT_MEMORIES:
        raise AutoTilerError(
            f"setting {name} is {value!r}, not an AutoTiler memory",
            f"one of {', '.join(AT_MEMORIES)}",
        )
    return str(value)


def _size_setting(settings: Mapping[str, Any], name: str, default: int, hi: int) -> str:
    """A memory size setting as a C integer, refused outside ``0..hi``."""
    value = settings.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value <= hi:
        raise AutoTilerError(f"setting {name} is {value!r}, not an integer in 0..{hi}")
    return str(int(value))


def _op_name(node: Node) -> str:
    """NNTool's ``Op_<node name>``, with the name made C-safe and bounded (a state may carry
    any text as a node name; names imported from ONNX are already C-safe, so unchanged)."""
    return "Op_" + short_name(c_safe_name(node.name), _MAX_CONST_NAME, node.name)


def _short_const(name: str) -> str:
    """An NNTool-style constant name (``at_names.const_cname``) cut to a bounded length and
    tagged with a hash when cut, so the identifier and its ``.tensor`` file name stay short."""
    return short_name(name, _MAX_CONST_NAME, name)


def _describe_q(q: QType | None) -> str:
    if q is None:
        return "-"
    if q.per_channel:
        return f"int{q.bits} per-channel ({np.asarray(q.scale).size} ch)"
    return f"int{q.bits} S={float(q.scale):.9g} Z={q.zero_point}"


def _hw(shape: Sequence[int]) -> tuple[int, int, int]:
    """(channels, width, height) of an activation shape with batch (``1,C[,H[,W]]``)."""
    dims = list(shape[1:])
    c = int(dims[0]) if dims else 1
    h = int(dims[1]) if len(dims) > 1 else 1
    w = int(dims[2]) if len(dims) > 2 else 1
    if len(dims) > 3:
        raise AutoTilerError(f"activation of shape {tuple(shape)} has more than 3 dimensions")
    return c, w, h


def _act_parts(node: Node) -> tuple[list[Any], list[Any]]:
    """(parts after the head, as given) for Fused nodes; ([], []) otherwise."""
    if node.op != "Fused":
        return [], []
    parts = list(node.attrs.parts)
    return parts[1:], parts


def _pool_args(node: Node, x_shape: Sequence[int]) -> tuple[list[str], str]:
    """Generator arguments ``PoolOper, Fpx, Fpy, Dpx, Dpy, Spx, Spy, PoolPad`` and the name part."""
    from nnshell.ops.pool import pool_geometry

    kernel, strides, dil, pads, _ = pool_geometry(node, tuple(x_shape))
    if len(kernel) != 2:
        raise AutoTilerError(f"{node.name}: only 2-D pools have an AutoTiler generator")
    oper = "KOP_MAXPOOL" if node.op == "MaxPool" else "KOP_AVGPOOL"
    pad = 1 if any(pads) else 0
    args = [oper, kernel[1], kernel[0], dil[1], dil[0], strides[1], strides[0], pad]
    kind = "MaxPool" if node.op == "MaxPool" else "AveragePool"  # NNTool's pool_type names
    return [str(a) for a in args], f"{kind}_{kernel[0]}x{kernel[1]}"


def _pad_ctrl(pads: Sequence[int], node_name: str) -> list[tuple[str, str]]:
    """``PADTYPE`` control when the padding is not balanced (begin vs end)."""
    nd = len(pads) // 2
    before, after = sum(pads[:nd]), sum(pads[nd:])
    if before == after:
        return []
    if any(pads[i] > pads[nd + i] for i in range(nd)) and any(
        pads[i] < pads[nd + i] for i in range(nd)
    ):
        raise AutoTilerError(f"{node_name}: padding {tuple(pads)} is unbalanced both ways")
    side = "AT_PAD_BALANCED_LEFT" if before > after else "AT_PAD_BALANCED_RIGHT"
    return [("PADTYPE", f"AT_OPT_VAL({side})")]


def _size(q: QType) -> int:
    """AutoTiler ``*_DataSize`` (bytes) of a tensor's codes."""
    return 1 if q.bits <= 8 else (2 if q.bits <= 16 else 4)


def _activation_pow2(parts: Sequence[Any], out_q: QType, node_name: str) -> tuple[str, int | None]:
    """``(KOP_..., ReLUN bound or None)`` of the activation parts of a POW2 fusion (at most one).

    ReLU is ``KOP_RELU``, and so is a Clip(0, hi) whose bound (the code of ``hi`` at the output
    Q, what nnshell's kernel clips to) is the container's top code, Clip(0, inf) included: the
    output's saturation already clamps there. A Clip(0, hi) clipping at ``6 << Out_Q`` (ReLU6)
    is ``KOP_RELUN``, whose bound the generators derive from Out_Q (their ReluN 6). Anything
    else raises.
    """
    acts = [p for p in parts if p.op not in ("MaxPool", "AveragePool")]
    if len(acts) > 1:
        raise AutoTilerError(
            f"{node_name}: more than one activation in one fused layer has no AutoTiler POW2 "
            "operator",
            POW2_FIX,
        )
    if not acts:
        return "KOP_NONE", None
    act = acts[0]
    if act.op == "Relu":
        return "KOP_RELU", None
    if act.op == "Clip" and float(act.attrs.min) == 0.0:
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
    if act.op == "Clip":
        desc = f"Clip({float(act.attrs.min):g}, {float(act.attrs.max):g})"
    raise AutoTilerError(
        f"{node_name}: {desc} inside a fused layer has no AutoTiler POW2 operator "
        "(KOP_RELU and KOP_RELUN only)",
        POW2_FIX,
    )


@dataclass
class _ConvLayout:
    """What the SQ8 and POW2 convolution generators share."""

    name: str  # S<k>_ name part without the activation
    args: list[str]  # InFeat .. PoolPad
    ctrl: list[tuple[str, str]]
    rest: list[Any]  # fused parts after the conv
    group: int
    dw: bool
    in_c: int
    out_c: int


# --------------------------------------------------------------------------------------------
# planning: one Kernel per kernel node
# --------------------------------------------------------------------------------------------


class _Planner:
    def __init__(self, graph: Graph, qstate: Any) -> None:
        self.graph = graph
        self.qstate = qstate
        self.used: set[str] = set()
        self.kernels: list[Kernel] = []
        self.alias: dict[str, str] = {}
        self.pow2 = getattr(qstate, "scheme", "SQ8") == "POW2"
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
        if any(p.op in ("MaxPool", "AveragePool") for p in rest):
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
        return Kernel(
            step,
            cname,
            node,
            "CNN_PoolAct_SQ8",
            [str(feat), str(width), str(height), *pool_args, act.kop if act else "KOP_NONE"],
            [node.inputs[0]],
            node.outputs[0],
            [self._infos(step, infos)],
            ("in", "out", "infos"),
            ctrl,
            self._comment(nq),
        )

    def global_pool(self, node: Node, step: int) -> Kernel:
        g = self.graph
        nq = self.nq(node)
        rest, parts = _act_parts(node)
        avg = (parts[0].op if parts else node.op) == "GlobalAveragePool"
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
        return Kernel(
            step,
            self.unique(f"S{step}_{name}", step),
            node,
            "CNN_GlobalPoolAct_SQ8",
            [str(feat), str(width), str(height), oper, act.kop if act else "KOP_NONE"],
            [node.inputs[0]],
            node.outputs[0],
            [self._infos(step, infos)],
            ("in", "out", "infos"),
            [],
            self._comment(nq),
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
        return Kernel(
            step,
            self.unique(f"S{step}_SoftMax", step),
            node,
            "CNN_SoftMax_SQ8",
            [str(dim), "KOP_SOFTMAX"],
            [node.inputs[0]],
            node.outputs[0],
            [self._infos(step, infos)],
            ("in", "out", "infos"),
            ctrl,
            self._comment(nq),
        )

    def activation(self, node: Node, step: int) -> Kernel:
        """A lone ReLU / ReLU-N / LeakyReLU: ``CNN_PoolAct_SQ8`` without a pool (NNTool's)."""
        from nnshell.ops.activation import Clip

        nq = self.nq(node)
        attrs = node.attrs
        if node.op == "Clip":
            consts = [self.graph.tensors[t].const if t else None for t in node.inputs[1:3]]
            lo, hi = Clip().bounds(node, None, *consts)
            attrs = type("ClipBounds", (), {"min": lo, "max": hi})
        try:
            act = inf.activation_info(node.op, attrs, nq.out_q, node.name)
        except inf.InfosError as exc:
            raise AutoTilerError(exc.message) from None
        feat, width, height = _hw(self.graph.tensors[node.inputs[0]].shape)
        return Kernel(
            step,
            self.unique(f"S{step}_Act_{act.name}", step),
            node,
            "CNN_PoolAct_SQ8",
            [str(feat), str(width), str(height), "KOP_NONE", *["0"] * 7, act.kop],
            [node.inputs[0]],
            node.outputs[0],
            [self._infos(step, inf.pool_infos(act, self._rescale(nq, node)))],
            ("in", "out", "infos"),
            [],
            self._comment(nq),
        )

    # -- POW2 ---------------------------------------------------------------------------------
    def plan_pow2(self, node: Node, step: int, head: str) -> Kernel:
        """The POW2 generator of one kernel node (module docstring)."""
        if head == "Conv":
            return self.conv_pow2(node, step)
        if head == "Linear":
            return self.linear_pow2(node, step)
        if head in ("MaxPool", "AveragePool"):
            return self.pool_pow2(node, step)
        if head in ("GlobalAveragePool", "GlobalMaxPool"):
            return self.global_pool_pow2(node, step)
        if head == "Add":
            return self.matadd_pow2(node, step)
        if head == "Softmax":
            return self.softmax_pow2(node, step)
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

    def _pow2_comment(self, nq: Any, weights: bool = False) -> str:
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
        )

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
        pools = {p.op for p in lay.rest if p.op in ("MaxPool", "AveragePool")}
        # _conv_layout refused an activation before an average pool: here it comes after one
        if act != "KOP_NONE" and not lay.dw and "AveragePool" in pools:
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
        comment = self._pow2_comment(nq, weights=True)
        if bound is not None:
            comment += f" ReLUN bound: {bound}"
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
        rest, _ = _act_parts(node)
        if any(p.op in ("MaxPool", "AveragePool") for p in rest):
            raise AutoTilerError(f"{node.name}: a pool after a linear layer is not expressible")
        x = self.graph.tensors[node.inputs[0]]
        in_dim = int(np.prod(x.shape[1:]))
        out_dim = int(nq.consts["weights"].shape[0])
        act, bound = _activation_pow2(rest, nq.out_q, node.name)
        name = _op_name(node) if act != "KOP_NONE" else f"Linear_{out_dim}x{in_dim}"
        cname = self.unique(f"S{step}_{name}", step)
        consts, qs = self._pow2_weighted(node, step, nq)
        sizes = [_size(nq.in_q[0]), consts[0].bits // 8, consts[1].bits // 8, _size(nq.out_q)]
        comment = self._pow2_comment(nq, weights=True)
        if bound is not None:
            comment += f" ReLUN bound: {bound}"
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
        from nnshell.ops.fused import part_node
        from nnshell.ops.pool import pool_geometry

        nq = self.nq(node)
        rest, parts = _act_parts(node)
        head = part_node(parts[0], node.inputs, ["_"]) if parts else node
        x = self.graph.tensors[node.inputs[0]]
        feat, width, height = _hw(x.shape)
        pool_args, pname = _pool_args(head, x.shape)
        qi, qo = self._pow2_same_q(
            node, nq, "CNN_PoolReLU", "its kernels take no Q, Out_Q only scales the ReLUN bound"
        )
        act, _ = _activation_pow2(rest, nq.out_q, node.name)
        if act == "KOP_RELUN":
            raise AutoTilerError(
                f"{node.name}: the AutoTiler POW2 pool kernels take KOP_RELU only, not KOP_RELUN",
                POW2_FIX,
            )
        name = pname + (f"_{_ACT_NAMES[act]}" if act != "KOP_NONE" else "")
        ctrl = _pad_ctrl(pool_geometry(head, x.shape)[3], node.name)
        head_args = [str(_size(nq.in_q[0])), str(_size(nq.out_q)), str(qi), str(qo), "1", "1"]
        return Kernel(
            step,
            self.unique(f"S{step}_{name}", step),
            node,
            "CNN_PoolReLU",
            [*head_args, str(feat), str(feat), str(width), str(height), *pool_args, act],
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
        avg = head_op == "GlobalAveragePool"
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

    def _comment(self, nq: Any, weights: bool = False) -> str:
        ins = ", ".join(_describe_q(q) for q in nq.in_q if q is not None)
        text = f"In: {ins}"
        if weights:
            text += " Weights: int8 per-channel Bias: int32"
        return text + f" Out: {_describe_q(nq.out_q)}"


# --------------------------------------------------------------------------------------------
# emission
# --------------------------------------------------------------------------------------------


def _ctype_of(q: QType) -> str:
    return _CTYPES["int8" if q.bits <= 8 else ("int16" if q.bits <= 16 else "int32")]


#: ``set graph_*`` settings -> AutoTiler graph controls (emitted when not at the default)
GRAPH_CONTROLS = (
    "graph_monitor_cycles",
    "graph_produce_node_names",
    "graph_produce_operinfos",
    "graph_reorder_constant_in",
    "graph_warm_construct",
    "graph_dump_tensor",
    "graph_trace_exec",
    "graph_const_exec_from_flash",
    "graph_size_opt",
    "graph_noinline_node",
    "graph_checksum",
)
_NORM_KOP = {
    "bw8": "KOP_NORM_BW",
    "bw16": "KOP_NORM_BW16",
    "rgb888": "KOP_NORM_RGB888",
    "rgb16": "KOP_NORM_RGB16",
    "rgb565_rgb888": "KOP_NORM_RGB565",
}
_NORM_TEXT = {"offset_int8": "q = p - 128", "shift_int8": "q = p >> 1", "out_int16": "q = p << 7"}


def graph_controls(settings: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(AT_GRAPH_<NAME>, AT_OPT_ON|AT_OPT_OFF|AT_OPT_VAL(n))`` for each ``graph_*`` setting
    that differs from its default (NNTool's names, see :mod:`nnshell.settings`)."""
    out = []
    for name in GRAPH_CONTROLS:
        sd = SETTINGS[name]
        val = settings.get(name, sd.default)
        if val == sd.default:
            continue
        ctrl = "AT_GRAPH_" + name[len("graph_") :].upper()
        if sd.type is bool:
            out.append((ctrl, "AT_OPT_ON" if val else "AT_OPT_OFF"))
        else:
            out.append((ctrl, f"AT_OPT_VAL({c_int(val, name, 0, 1 << 30)})"))
    return out


def graph_c_name(graph: Graph, settings: Mapping[str, Any]) -> str:
    """The ``<G>`` of the generated names: ``set graph_name``, else the C-safe graph name.

    A name longer than 64 characters is cut and tagged with a hash (:func:`short_name`), so
    the identifiers built from it stay short; a name C reserves (``__x``, ``_X``) is prefixed
    with ``m``; every identifier built from ``<G>`` (``<G>Model``, ``<G>_L1_Memory``) is then
    checked by :func:`c_ident`.
    """
    raw = str(settings.get("graph_name") or graph.name)
    g = short_name(c_safe_name(raw), source=raw)
    if not is_c_ident(g + "Model"):
        g = "m" + g
    c_ident(g + "Model", "graph name")
    return g


class _Emitter:
    def __init__(
        self, graph: Graph, qstate: Any, settings: Mapping[str, Any], tensor_dir: str
    ) -> None:
        self.graph = graph
        self.qstate = qstate
        self.settings = settings
        self.tensor_dir = tensor_dir.replace(os.sep, "/").rstrip("/") or "."
        self.g = graph_c_name(graph, settings)
        from nnshell.formatter import formatters

        self.memory = {
            name: _memory(settings, name, SETTINGS[name].default) for name in MEMORY_SETTINGS
        }
        self.formatters = formatters(graph)
        self.pow2 = getattr(qstate, "scheme", "SQ8") == "POW2"
        planner = _Planner(graph, qstate)
        self.kernels = planner.plan()
        apply_gen_ctrl(self.graph, self.kernels)  # nodeoption's generator controls
        self.alias = planner.alias
        self.cnames = self._tensor_names()

    def root(self, t: str) -> str:
        while t in self.alias:
            t = self.alias[t]
        return t

    def _tensor_names(self) -> dict[str, str]:
        names: dict[str, str] = {}
        for i, t in enumerate(self.graph.inputs, start=1):
            # a formatted input: the kernels read the formatter's output (step 0)
            names[t] = f"S0_Output_{i}" if t in self.formatters else f"Input_{i}"
        for i, t in enumerate(self.graph.outputs, start=1):
            r = self.root(t)
            if r in names:
                raise AutoTilerError(f"graph output '{t}' is a graph input: nothing to generate")
            names[r] = f"Output_{i}"
        for k in self.kernels:
            names.setdefault(k.out, f"S{k.step}_Output")
        return names

    def cname(self, t: str) -> str:
        return self.cnames[self.root(t)]

    def qtype(self, t: str) -> QType:
        q = self.qstate.tensors.get(t)
        return q if q is not None else self.qstate.tensors[self.root(t)]

    @staticmethod
    def _tcarg(*fields: str, const: str = "0") -> str:
        ctype, name, *rest = fields
        args = ", ".join(c_token(r, "CreateGraph argument") for r in rest)
        return f"TCArgInfo({c_string(ctype)}, {c_string(c_ident(name))}, {args}, {const})"

    def model_c(self, model_file_h: str) -> str:
        g, st = self.g, self.settings
        out: list[str] = []
        w = out.append
        scheme = f"POW2 {self._pow2_bits()}-bit" if self.pow2 else "SQ8"
        w(
            f"/* AutoTiler model of graph '{c_comment(self.graph.name)}', generated by nnshell "
            f"({scheme}). */"
        )
        w("#include <stdint.h>")
        w("#include <stdio.h>")
        w('#include "AutoTilerLib.h"')
        if not self.pow2:
            w('#include "CNN_Generators_SQ8.h"')
        if self.formatters or self.pow2:
            w('#include "CNN_Generators.h"')
        w('#include "CNN_Copy_Generators.h"')
        w("")
        w(
            f"void {g}Model(unsigned int L1Memory, unsigned int L2Memory, "
            "unsigned int L3Memory, unsigned int L3Flash)"
        )
        w("{")
        w("    KernelOper_T Cop = KOP_CONV;")
        w("")
        w("    SetSymbolDynamics();")
        w("")
        kernels_h = "CNN_BasicKernels.h" if self.pow2 else "CNN_BasicKernels_SQ8.h"
        w(
            f'    SetUsedFilesNames(0, 3, "Gap.h", {c_string(plain_file_name(model_file_h))}, '
            f'"{kernels_h}");'
        )
        w(f"    SetGeneratedFilesNames({c_string(g + 'Kernels.c')}, {c_string(g + 'Kernels.h')});")
        w("")
        for ctrl, val in graph_controls(st):
            w(f"    AT_SetGraphCtrl({ctrl}, {val});")
        if graph_controls(st):
            w("")
        mem = self.memory
        w("    SetMemoryDeviceInfos(4,")
        w(f"        AT_MEM_L1, L1Memory, {c_string(g + '_L1_Memory')}, 0, 0,")
        l2_ext = 1 if st.get("l2_ram_ext_managed", True) else 0
        w(f"        AT_MEM_L2, L2Memory, {c_string(g + '_L2_Memory')}, 0, {l2_ext},")
        w(f"        {mem['l3_ram_device']}, L3Memory, {c_string(g + '_L3_Memory')}, 0, 0,")
        w(
            f"        {mem['l3_flash_device']}, L3Flash, {c_string(g + '_L3_Flash')}, "
            f"{c_string(g + '_L3_Flash_Const.dat')}, 0);"
        )
        w("")
        if not self.pow2:
            w("    LoadCNN_SQ8_Library();")
        if self.formatters or self.pow2:
            w("    LoadCNNLibrary();")
        w("")
        for i, t in enumerate(self.graph.inputs, start=1):
            f = self.formatters.get(t)
            if f is not None:
                _, h, wd = (int(d) for d in self.graph.tensors[t].dims)
                w(
                    f"    // input formatter of {c_comment(t)}: raw {f.fmt} HWC {f.ctype} "
                    f"{h}x{wd} -> CHW int8, {f.norm} ({_NORM_TEXT[f.norm]})"
                )
                w(
                    f"    CNN_Norm({c_string(self._formatter_name(i))}, {c_int(wd)}, {c_int(h)}, "
                    f"{1 if f.norm == 'offset_int8' else 0}, {_NORM_KOP[f.fmt]});"
                )
                w("")
        for k in self.kernels:
            w(f"    // generator for {c_comment(k.node.name)}")
            ctrl = "0"
            if k.gen_ctrl:
                gc = c_ident(f"gen_ctrl_{k.cname}", "generator control name")
                w(f"    CNN_GenControl_T {gc};")
                w(f"    CNN_InitGenCtrl(&{gc});")
                for key, val in k.gen_ctrl:
                    w(f"    CNN_SetGenCtrl(&{gc}, {c_string(key)}, {_ctrl_value(val)});")
                ctrl = f"&{gc}"
            args = ", ".join(
                [c_string(c_ident(k.cname)), ctrl, *(c_token(a, k.node.name) for a in k.args)]
            )
            w(f"    {c_ident(k.generator)}({args});")
            w("")
        # CreateGraph
        globals_: list[str] = []
        for i, t in enumerate(self.graph.inputs, start=1):
            f = self.formatters.get(t)
            globals_.append(
                self._tcarg(
                    f"{f.ctype} * __restrict__" if f else _ctype_of(self.qstate.tensors[t]),
                    f"Input_{i}",
                    arg_scope(self.graph, "input", t),
                    "ARG_DIR_IN",
                    self.memory["default_input_home_location"],
                    self.memory["default_input_exec_location"],
                )
            )
        for k in self.kernels:
            for c in k.consts:
                path = c_string(f"{self.tensor_dir}/{c_ident(c.name)}.tensor")
                ci = f"ConstInfo({path}, 1, 1, {c_int(c.bits)}, {c_int(c.q)})"
                arg = self._tcarg(
                    _CTYPES[c.ctype],
                    c.name,
                    "ARG_SCOPE_GLOBAL",
                    "ARG_DIR_CONSTIN",
                    self.memory["default_global_home_location"],
                    self.memory["default_global_exec_location"],
                    const=ci,
                )
                note = f"// {c_comment(c.comment)}\n            " if c.comment else ""
                globals_.append(note + arg)
        for t in self.graph.outputs:
            globals_.append(
                self._tcarg(
                    _ctype_of(self.qtype(t)),
                    self.cname(t),
                    arg_scope(self.graph, "output", t),
                    "ARG_DIR_OUT",
                    self.memory["default_output_home_location"],
                    self.memory["default_output_exec_location"],
                )
            )
        outputs = {self.root(t) for t in self.graph.outputs}
        loc = self.memory["default_local_location"]
        locals_ = [
            self._tcarg(
                _ctype_of(self.qstate.tensors[t]),
                self.cname(t),
                "ARG_SCOPE_LOCAL",
                "ARG_DIR_INOUT",
                loc,
                loc,
            )
            for t in self.graph.inputs
            if t in self.formatters
        ]
        locals_ += [
            self._tcarg(
                _ctype_of(self.qstate.tensors[k.out]),
                self.cname(k.out),
                "ARG_SCOPE_LOCAL",
                "ARG_DIR_INOUT",
                *out_locations(self.graph, k.node, loc),
            )
            for k in self.kernels
            if k.out not in outputs
        ]
        w(f"    CreateGraph({c_string(g + 'CNN')},")
        w("        /* Arguments either passed or globals */")
        w(f"        CArgs({len(globals_)}" + ("," if globals_ else ""))
        w(",\n".join(f"            {a}" for a in globals_))
        w("        ),")
        w("        /* Locals, allocated dynamically */")
        w(f"        CArgs({len(locals_)}" + ("," if locals_ else ""))
        if locals_:
            w(",\n".join(f"            {a}" for a in locals_))
        w("        )")
        w("    );")
        w("")
        w("    /* no concats in graph so not stacked tensors created */")
        w("")
        for i, t in enumerate(self.graph.inputs, start=1):
            if t in self.formatters:
                w(f"    // input formatter: raw Input_{i} -> {self.cname(t)}")
                w(f"    AddNode({c_string(self._formatter_name(i))},")
                w("        Bindings(2,")
                w(f'            GNodeArg(GNA_IN, "Input_{i}", 0),')
                w(f"            GNodeArg(GNA_OUT, {c_string(c_ident(self.cname(t)))}, 0)")
                w("        )")
                w("    );")
        for k in self.kernels:
            binds = self._bindings(k)
            w(f"    // {c_comment(k.comment)}")
            w(f"    AddNode({c_string(c_ident(k.cname))},")
            w(f"        Bindings({len(binds)},")
            w(",\n".join(f"            {b}" for b in binds))
            w("        )")
            w("    );")
        w("    CloseGraph();")
        w("}")
        w("")
        w("int main(int argc, char **argv)")
        w("{")
        w("    if (TilerParseOptions(argc, argv)) {")
        w('        printf("Failed to initialize or incorrect output arguments directory.\\n");')
        w("        return 1;")
        w("    }")
        l1 = _size_setting(st, "l1_size", 64000, MAX_MEMORY_BYTES)
        l2 = _size_setting(st, "l2_size", 300000, MAX_MEMORY_BYTES)
        l3 = _size_setting(st, "l3_size", 8000000, MAX_MEMORY_BYTES)
        fl = _size_setting(st, "l3_flash_mb", 64, MAX_FLASH_MB)
        w(f"    {g}Model({l1}, {l2}, {l3}, {fl}*1024*1024);")
        w("    GenerateTilingCode();")
        w("    return 0;")
        w("}")
        return "\n".join(out) + "\n"

    @staticmethod
    def _formatter_name(i: int) -> str:
        return f"S0_Op_Input_{i}_Formatter"

    def _pow2_bits(self) -> int:
        return int(getattr(self.qstate.options, "bits", 16))

    def _bindings(self, k: Kernel) -> list[str]:
        ins = iter(k.ins)
        consts = {c.name: c for c in k.consts}
        order = list(consts)
        cmap = {  # SQ8 (w, b, scale, scalen, infos) or (infos); POW2 (w, b) or ()
            "w": order[0] if len(order) > 1 else None,
            "b": order[1] if len(order) > 1 else None,
            "scale": order[2] if len(order) > 3 else None,
            "scalen": order[3] if len(order) > 3 else None,
            "infos": order[-1] if order else None,
        }
        out = []
        for role in k.binding:
            if role == "in":
                name = self.cname(next(ins))
            elif role == "out":
                name = self.cname(k.out)
            else:
                name = str(cmap[role])
            kind = "GNA_OUT" if role == "out" else "GNA_IN"
            out.append(f"GNodeArg({kind}, {c_string(c_ident(name))}, 0)")
        return out

    def header(self, guard_name: str) -> str:
        g = self.g.upper()
        if not is_c_ident(g + "_X"):  # "_abc" is fine, "_ABC" is reserved in C
            g = "M" + g
        guard = c_safe_name(guard_name).upper().lstrip("_") + "_"
        guard = c_ident(f"H_{guard}" if guard[0].isdigit() else guard, "header guard")
        pow2 = getattr(self.qstate, "scheme", "SQ8") == "POW2"
        out = [f"#ifndef {guard}", f"#define {guard}", ""]
        if pow2:
            out += [
                f"/* Output quantization of graph '{c_comment(self.graph.name)}' (POW2.md): "
                "Qm.n codes,",
                " * real = code * 2^-Q (ZERO_POINT 0, SCALE = 2^-Q ~= QSCALE * 2^-QNORM). */",
            ]
        else:
            out += [
                f"/* Output quantization of graph '{c_comment(self.graph.name)}' (SQ8.md "
                "section 8):",
                " * real = (q - ZERO_POINT) * SCALE, SCALE ~= QSCALE * 2^-QNORM (7-bit QSCALE). */",
            ]
        entries = [
            (f"Input_{i}", self.qstate.tensors[t]) for i, t in enumerate(self.graph.inputs, 1)
        ]
        entries += [(k.cname, self.qstate.tensors[k.out]) for k in self.kernels]
        for name, q in entries:
            scale = _fmt(q.scale)
            s = float(scale)
            qs, qn = header_qscale_qnorm(s)
            prefix = c_ident(f"{g}_{name}", "header macro")
            out.append(f"// {name}")
            out.append(f"#define {prefix}_OUT_SCALE\t{scale}")
            out.append(f"#define {prefix}_OUT_QSCALE\t{c_int(qs)}")
            out.append(f"#define {prefix}_OUT_QNORM\t{c_int(qn)}")
            out.append(f"#define {prefix}_OUT_ZERO_POINT\t{c_int(q.zero_point)}")
            if pow2:  # POW2.md: real = code * 2^-Q
                out.append(f"#define {prefix}_Q\t{c_int(q_of(q))}")
        out += ["", f"#endif /* {guard} */", ""]
        return "\n".join(out)


def generate_autotiler(
    graph: Graph,
    qstate: Any,
    settings: Mapping[str, Any],
    model_dir: str | os.PathLike[str],
    model_file: str | None,
    tensor_dir: str | os.PathLike[str],
    header: str | None,
    write_tensors: bool = True,
) -> list[Path]:
    """Write the AutoTiler model C file, one ``.tensor`` per constant and the header.

    ``model_file`` defaults to ``<G>Model.c`` and ``header`` to ``model.h`` (both inside
    ``model_dir``); a relative ``tensor_dir`` is inside ``model_dir``. Returns the written paths
    (model file, header, then the tensor files in CreateGraph order).
    """
    if qstate is None:
        raise GraphStateError("the graph is not quantized", "aquant <calibration images>")
    scheme = getattr(qstate, "scheme", "SQ8")
    if scheme == "FLOAT":  # docs/FLOAT16.md: the fp16 AutoTiler generators are not emitted
        first = graph.nodes[0].name if graph.nodes else "?"
        raise AutoTilerError(
            f"gen --target autotiler: {first} is a {qstate.options.float_type} float layer and "
            "nnshell emits no AutoTiler float (fp16) generator yet",
            "gen --target c runs float layers (gen --verify checks them); or qtune * scaled",
        )
    if scheme not in ("SQ8", "POW2"):
        raise AutoTilerError(
            f"gen --target autotiler writes SQ8 and POW2 models only, not {scheme} ones",
            "fusions --scale8 and aquant -s SQ8, or fusions --pow2 and aquant -s POW2",
        )
    check_shapes(graph, qstate)
    check_8bit_multipliers(qstate)
    em = _Emitter(graph, qstate, settings, str(tensor_dir))
    mdir = Path(model_dir)
    model_name = plain_file_name(model_file or f"{em.g}Model.c", "model file name")
    header_name = plain_file_name(header or "model.h", "header file name")
    if model_name == header_name:
        raise CodegenError(f"gen autotiler: the model file and the header are both '{model_name}'")
    if "\0" in str(tensor_dir) or "\0" in str(model_dir):
        raise CodegenError("gen autotiler: a folder name holds a NUL character")
    tdir = Path(tensor_dir)
    if not tdir.is_absolute():
        tdir = mdir / tdir
    for d in (mdir, tdir) if write_tensors else (mdir,):
        if d.exists() and not d.is_dir():
            raise ModelFileError(f"gen autotiler: cannot write to '{d}': it is a file")
    # everything is rendered before anything is written; then one atomic set of files
    files: dict[Path, bytes] = {
        mdir / model_name: em.model_c(f"{em.g}.h").encode(),
        mdir / header_name: em.header(header_name).encode(),
    }
    if write_tensors:
        for k in em.kernels:
            for c in k.consts:
                data = np.ascontiguousarray(c.data, dtype=np.dtype(c.ctype).newbyteorder("<"))
                files[tdir / f"{c_ident(c.name)}.tensor"] = data.tobytes()
    try:
        mdir.mkdir(parents=True, exist_ok=True)
        if write_tensors:
            tdir.mkdir(parents=True, exist_ok=True)
        return atomic_write_files(files)
    except OSError as exc:
        raise ModelFileError(
            f"gen autotiler: cannot write {os_error_text(exc, mdir)}",
            "free some space or choose another folder (-M)",
        ) from None


__all__ = [
    "GRAPH_CONTROLS",
    "INFOS_SIZE",
    "AutoTilerError",
    "generate_autotiler",
    "graph_c_name",
    "graph_controls",
]
