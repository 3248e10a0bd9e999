"""What the AutoTiler planners and writers share: the kernel records, the error, small helpers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nnshell.codegen.csafe import (
    c_float,
    c_token,
    short_name,
)
from nnshell.errors import NnshellError
from nnshell.ir import Node, c_safe_name
from nnshell.ops.registry import all_ops, get_op
from nnshell.quant.fixed_point import QType
from nnshell.settings import (
    AT_MEMORIES,
)

#: The ops whose output aliases their input buffer (their op class sets ``at_alias``).
ALIAS_OPS = frozenset(name for name, op in all_ops().items() if op.at_alias)

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


def is_window_pool(op: str) -> bool:
    """Whether ``op`` is a windowed pool (max or average), fused after a conv or alone."""
    return get_op(op).at_generator == "pool"


def is_average_pool(op: str) -> bool:
    """Whether ``op`` averages its window (an average pool, windowed or global)."""
    return get_op(op).pool_reduce == "average"


def _act_parts(node: Node) -> tuple[list[Any], list[Any]]:
    """(parts after the head, as given) for Fused nodes; ([], []) otherwise."""
    if not get_op(node.op).is_fusion:
        return [], []
    parts = list(node.attrs.parts)
    return parts[1:], parts


def _pool_args(node: Node, x_shape: Sequence[int]) -> tuple[list[str], str]:
    """Generator arguments ``PoolOper, Fpx, Fpy, Dpx, Dpy, Spx, Spy, PoolPad`` and the name part."""
    from nnshell.ops.pool import pool_geometry

    kernel, strides, dil, pads, _ = pool_geometry(node, tuple(x_shape))
    if len(kernel) != 2:
        raise AutoTilerError(f"{node.name}: only 2-D pools have an AutoTiler generator")
    is_max = get_op(node.op).pool_reduce == "max"
    oper = "KOP_MAXPOOL" if is_max else "KOP_AVGPOOL"
    pad = 1 if any(pads) else 0
    args = [oper, kernel[1], kernel[0], dil[1], dil[0], strides[1], strides[0], pad]
    kind = "MaxPool" if is_max else "AveragePool"  # NNTool's pool_type names
    return [str(a) for a in args], f"{kind}_{kernel[0]}x{kernel[1]}"


@dataclass(frozen=True)
class _PoolHead:
    """What both schemes' pool planners read off a (possibly fused) pool node."""

    rest: list[Any]  #: the fused parts after the pool (its activation)
    head: Node  #: the pool itself (the fused node's first part, or the node)
    x_shape: tuple[int, ...]
    fwh: tuple[int, int, int]  #: (feat, width, height) of the input
    args: list[str]  #: ``PoolOper, Fpx, Fpy, Dpx, Dpy, Spx, Spy, PoolPad``
    name: str  #: the kernel-name part (``MaxPool_2x2`` …)

    def pad_ctrl(self, node_name: str) -> list[tuple[str, str]]:
        """The ``PADTYPE`` control of the pool's padding."""
        from nnshell.ops.pool import pool_geometry

        return _pad_ctrl(pool_geometry(self.head, self.x_shape)[3], node_name)


def _pool_head(graph: Any, node: Node) -> _PoolHead:
    """The pool part of a pool node (fused with an activation or not) and its arguments."""
    from nnshell.ops.fused import part_node

    rest, parts = _act_parts(node)
    head = part_node(parts[0], node.inputs, ["_"]) if parts else node
    x_shape = tuple(graph.tensors[node.inputs[0]].shape)
    fwh = _hw(x_shape)
    args, name = _pool_args(head, x_shape)
    return _PoolHead(rest, head, x_shape, fwh, args, name)


def _linear_dims(graph: Any, node: Node, nq: Any) -> tuple[list[Any], int, int]:
    """A linear layer's fused activation parts and its (in, out) sizes; a fused pool is
    refused (no linear generator takes one)."""
    rest, _ = _act_parts(node)
    if any(is_window_pool(p.op) for p in rest):
        raise AutoTilerError(f"{node.name}: a pool after a linear layer is not expressible")
    in_dim = int(np.prod(graph.tensors[node.inputs[0]].shape[1:]))
    return rest, in_dim, int(nq.consts["weights"].shape[0])


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
