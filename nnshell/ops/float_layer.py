"""The float layer as the executor runs it and as the C calls it (docs/FLOAT16.md): widen the
stored inputs, compute in float32 with the op's ``run_float_t`` hook, store the output; and the
``nn_f_*`` call of a float layer. The arithmetic itself (storage types, ordered reductions) is in
``ops._float``, which op classes use; this driver sits above the op classes and the registry, so
that neither imports it back (the float scheme in ``quant/scheme.py`` names it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from nnshell.ops._float import FLOAT_TYPES, from_bits, is_float_q, to_bits
from nnshell.ops.conv import conv_geometry
from nnshell.ops.fused import part_node
from nnshell.ops.pool import pool_geometry
from nnshell.ops.registry import get_op


def _ftype_of(q: Any) -> str:
    if not is_float_q(q):
        raise ValueError("an integer tensor feeds a float layer")
    return str(q.ftype)


def run_node_float(node: Any, nq: Any, *args: np.ndarray | None) -> list[np.ndarray]:
    """One float layer on stored values: widen inputs and constants (stored in ``nq.consts``
    as ``in<k>``), compute in float32 with the op's ``run_float_t`` hook, store the output."""

    if nq.info.get("convert"):  # a conversion layer of a mixed graph (ops/convert.py)
        assert args[0] is not None
        return [get_op(node.op).run_convert(node, nq, args[0])]  # type: ignore[attr-defined]
    full: list[np.ndarray | None] = []
    for k, a in enumerate(args):
        stored = nq.consts.get(f"in{k}")
        if stored is not None:
            full.append(from_bits(stored, str(nq.info["float_type"])))
        elif a is None:
            full.append(None)
        else:
            full.append(from_bits(a, _ftype_of(nq.in_q[k])))
        raw = nq.consts.get(f"raw{k}")  # a non-float constant (a shape): as it is
        if raw is not None:
            full[-1] = raw
    ys = get_op(node.op).run_float_t(node, *full)
    # ``+ 0.0`` stores a zero as +0 (-0 + +0 = +0 in IEEE, x + 0 = x otherwise), as nn_f_store
    return [to_bits(np.asarray(y, np.float32) + np.float32(0), _ftype_of(nq.out_q)) for y in ys]


# -- the C of a float layer (nn_float.h) ---------------------------------------------------------
def _aptr(ctx: Any, name: str) -> str:
    if name not in ctx.offsets:
        ctx.unsupported(f"tensor '{name}' is not an activation in the arena")
    return f"NN_A8({int(ctx.offsets[name])})"


def _fbits(v: float) -> int:
    return int(np.asarray(v, np.float32).view(np.int32))


def _act_fields(node: Any, ctx: Any, acts: Sequence[Any]) -> list[int]:
    if not acts:
        return [0, 0, 0]
    if len(acts) > 1:
        ctx.unsupported("more than one activation in a float fusion")
    part = acts[0]
    if part.op == "Relu":
        return [1, 0, 0]
    if part.op == "Clip":
        if len(getattr(part, "inputs", ())) > 1:
            ctx.unsupported("a Clip with bound inputs in a float layer")
        lo, hi = float(part.attrs.min), float(part.attrs.max)
        return [2, _fbits(lo), _fbits(hi)]
    ctx.unsupported(f"the float C runtime has no {part.op} activation")


def _const(ctx: Any, nq: Any, key: str) -> str:
    arr = nq.consts.get(key)
    if arr is None:
        return "NULL"
    # the kernel indexes it by the graph's shapes: a state's array of another size (corrupt or
    # edited) would be read out of bounds, so it is refused
    name = ctx.node.inputs[int(key[2:])] if key[2:].isdigit() else ""
    want = ctx.graph.tensors[name].const if name in ctx.graph.tensors else None
    if want is None or np.asarray(arr).size != np.asarray(want).size:
        ctx.unsupported(f"its float constant {key} does not match the graph (corrupt state?)")
    if np.asarray(arr).dtype not in (np.uint16, np.float32):
        ctx.unsupported(f"its float constant {key} holds {np.asarray(arr).dtype} values")
    if arr.dtype == np.float32:
        return str(ctx.const(key, arr.view(np.int32), "int32_t"))
    return str(ctx.const(key, arr.astype(np.uint16).view(np.int16), "int16_t"))


def _pool_fields(pnode: Any, shape: Sequence[int], ctx: Any) -> list[int]:

    kernel, strides, dil, pads, outs = pool_geometry(pnode, tuple(shape))
    c, h, w = ctx.chw(shape)
    oh, ow = (1, outs[0]) if len(outs) == 1 else outs
    return [c, h, w, oh, ow, *ctx.window(kernel, strides, dil, pads)]


def emit_float(node: Any, nq: Any, ctx: Any) -> str:
    """The ``nn_f_*`` call of a float layer: a conv or linear head (or a max pool, or an
    activation alone) with at most one max pool and one ReLU / clip after it."""
    parts = list(node.attrs.parts) if node.op == "Fused" else [node]
    head, rest = parts[0], parts[1:]
    pools = [p for p in rest if p.op == "MaxPool"]
    acts = [p for p in rest if p.op in ("Relu", "Clip")]
    if len(pools) + len(acts) != len(rest) or len(pools) > 1:
        ctx.unsupported("the float C runtime runs conv/linear + max pool + ReLU/clip chains")
    t = FLOAT_TYPES[str(nq.info["float_type"])]
    x, y = node.inputs[0], node.outputs[0]
    xin, yout = _aptr(ctx, x), _aptr(ctx, y)
    if head.op == "Conv":
        w = ctx.graph.tensors[node.inputs[1]].const
        hnode = head if node.op != "Fused" else _part_node(head, node)
        kernel, strides, dil, pads, outs = conv_geometry(hnode, ctx.shape(x), w.shape)
        cin, h, wd = ctx.chw(ctx.shape(x))
        oh, ow = (1, outs[0]) if len(outs) == 1 else outs
        win = ctx.window(kernel, strides, dil, pads)
        conv = ctx.struct(
            "nn_f_conv_t",
            "fconv",
            [cin, h, wd, int(w.shape[0]), oh, ow, *win, hnode.attrs.group, t],
        )
        pool = "NULL"
        if pools:
            pnode = _part_node(pools[0], node)
            pool = ctx.struct(
                "nn_f_pool_t", "fpool", _pool_fields(pnode, (1, int(w.shape[0]), oh, ow), ctx)
            )
        act = ctx.struct("nn_f_act_t", "fact", _act_fields(node, ctx, acts))
        wc, bc = _const(ctx, nq, "in1"), _const(ctx, nq, "in2")
        return f"nn_f_conv({xin}, {yout}, {conv}, {pool}, {act}, {wc}, {bc});"
    if pools:
        ctx.unsupported("a max pool after a linear layer")
    if head.op == "GlobalAveragePool" and not rest:
        c, hw = ctx.c_hw(ctx.shape(x))
        return f"nn_f_avgpool_global({xin}, {yout}, {c}, {hw}, {t});"
    if head.op == "Softmax" and not rest:
        rows = get_op(head.op).float_rows(head, ctx.shape(x))  # type: ignore[attr-defined]
        if rows is None:
            ctx.unsupported("a float softmax along an axis other than the last")
        return f"nn_f_softmax({xin}, {yout}, {rows[0]}, {rows[1]}, {t});"
    if head.op in _COPIES and not rest and ctx.size(x) == ctx.size(y):
        return f"nn_f_copy({xin}, {yout}, {ctx.size(y)}, {t});"
    alone = head.op in ("Relu", "Clip") and not rest  # an activation layer of its own
    act = ctx.struct("nn_f_act_t", "fact", _act_fields(node, ctx, [head] if alone else acts))
    if alone:
        return f"nn_f_act({xin}, {yout}, {ctx.size(y)}, {t}, {act});"
    if head.op == "Linear":
        w = ctx.graph.tensors[node.inputs[1]].const
        wc, bc = _const(ctx, nq, "in1"), _const(ctx, nq, "in2")
        nout, nin = int(w.shape[0]), int(w.shape[1])
        return f"nn_f_linear({xin}, {yout}, {nin}, {nout}, {t}, {wc}, {bc}, {act});"
    if head.op == "MaxPool":
        pool = ctx.struct("nn_f_pool_t", "fpool", _pool_fields(head, ctx.shape(x), ctx))
        return f"nn_f_maxpool({xin}, {yout}, {pool}, {t}, {act});"
    if head.op == "Add" and len(ctx.act_inputs()) == 2:
        a, b = ctx.act_inputs()
        if ctx.size(a) != ctx.size(y) or ctx.size(b) != ctx.size(y):
            ctx.unsupported("a broadcasting Add in a float layer")
        return f"nn_f_add({_aptr(ctx, a)}, {_aptr(ctx, b)}, {yout}, {ctx.size(y)}, {t}, {act});"
    ctx.unsupported(f"the float C runtime has no {head.op} kernel")


#: ops that keep the CHW order of the values: their float C is a copy
_COPIES = ("Reshape", "Flatten", "Squeeze", "Unsqueeze")


def _part_node(part: Any, node: Any) -> Any:
    return part_node(part, node.inputs, ["_"])
