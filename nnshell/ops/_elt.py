"""Integer building blocks of broadcasting elementwise ops, constant affines and Resize (issue 17).

Kept apart from ``_sq8.py`` / ``_pow2.py`` so the shared helpers of other ops stay untouched; like
them it imports no op module.

- **Broadcast binary, SQ8** (two activations, numpy broadcasting, batch axis kept):

  * Add / Sub: the MatAdd of SQ8.md §5 with a sign on ``b``: the input with the smaller scale is
    the reference ``j``, the other is rescaled ``rnorm(X·Mi, Ni)``, ``acc = A' ± B'``,
    ``out = clip8(rnorm(acc·Mo, No))`` (symmetric inputs and output).
  * Mul: NNTool's SE-block expression ``out = clip8(rnorm((A - Za)·(B - Zb)·M, N) + Zo)`` with
    ``M·2^-N ≈ Sa·Sb/So`` (inputs and output may be asymmetric: a gate in [0, 1] keeps its
    8 bits).

- **Broadcast binary, POW2**: Add / Sub align both inputs to ``q_common = max(qa, qb)`` by
  exact left shifts, add or subtract, ``shift_round`` to ``q_out``; Mul multiplies the codes
  (``Q(qa+qb)``) and shifts by ``qa + qb - q_out``.

- **Constant affine, POW2** ``y[c] = s[c]·x + t[c]`` (Add / Sub / Mul / Div by a per-channel or
  scalar constant, an unfolded BatchNormalization): a depthwise 1×1 conv with ``K = 1`` through
  :func:`nnshell.ops._pow2.quantize_weighted` (the same weight / bias / accumulator rules).

- **Resize**: nearest is a gather of codes (a data mover); bilinear interpolates codes with
  fixed-point weights ``w = round_half_up(frac·2^F)`` (``F = RESIZE_FRAC``) per axis::

      v = rnorm((2^F - wy)·((2^F - wx)·p00 + wx·p01) + wy·((2^F - wx)·p10 + wx·p11), 2F)

  The weights of each axis sum to ``2^F`` exactly, so the result is a convex combination of codes:
  it needs no zero-point terms, stays inside the container, and the output keeps the input's qtype.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from nnshell.errors import QuantizationError
from nnshell.ir import Node
from nnshell.ops import _pow2
from nnshell.quant.fixed_point import clip8, multiplier, qtype_from_range, rnorm, round_half_up
from nnshell.quant.fixed_pow2 import Pow2Context, clip_bits, pow2_qtype, q_from_range, q_of
from nnshell.quant.qrecord import NodeQuant, QuantContext

#: Fraction bits of the bilinear Resize weights (int64 accumulators in C: 16-bit codes · 2^24).
RESIZE_FRAC = 12

#: Codes of the C ``op`` argument of ``nn_ew_sq8`` / ``nn_p2_ew``.
EW_CODES = {"Add": 0, "Sub": 1, "Mul": 2}


# -- broadcasting ---------------------------------------------------------------------------------


def broadcast_strides(in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> list[int]:
    """Element strides of ``in_shape`` read at every index of ``out_shape`` without its batch axis,
    padded to 4 dims (0 where the input broadcasts); the C kernels walk 4 nested loops."""
    rank = len(out_shape) - 1
    if rank > 4:
        raise QuantizationError(f"broadcast of rank {rank + 1} (at most 5 dims are generated)")
    full = (1,) * (len(out_shape) - len(in_shape)) + tuple(in_shape)
    dims = full[1:]
    strides, acc = [], 1
    for d in reversed(dims):
        strides.append(acc)
        acc *= d
    strides.reverse()
    pairs = zip(dims, out_shape[1:], strides, strict=True)
    st = [0 if d == 1 and o != 1 else s for d, o, s in pairs]
    return [0] * (4 - rank) + st


def out_dims4(out_shape: tuple[int, ...]) -> list[int]:
    """The output shape without the batch axis, padded to 4 dims with leading 1s."""
    dims = list(out_shape[1:])
    return [1] * (4 - len(dims)) + dims


def bcast_struct(ctx: Any, a: tuple[int, ...], b: tuple[int, ...], y: str) -> str:
    """Name of the ``int32_t bc[12]`` geometry (output dims, element strides of shapes ``a``
    and ``b``) the broadcasting C kernels walk."""
    ys = ctx.shape(y)
    if len(ys) > 5:
        ctx.unsupported("a broadcast of rank > 5")
    fields = [*out_dims4(ys), *broadcast_strides(a, ys), *broadcast_strides(b, ys)]
    return str(ctx.const("bcast", np.array(fields, np.int64), "int32_t"))


def operands_c(node: Node, nq: NodeQuant, ctx: Any, ctype: str) -> list[tuple[str, tuple]]:
    """``(C pointer, shape)`` of both operands: an activation in the arena, or the quantized
    constant operand (``const_codes``) declared as a static array."""
    out = []
    for k in (0, 1):
        if "const_codes" in nq.consts and int(nq.consts["const_index"]) == k:
            codes = nq.consts["const_codes"]
            out.append((str(ctx.const("operand", codes, ctype)), tuple(codes.shape)))
        else:
            name = node.inputs[k]
            out.append((str(ctx.ptr(name)), tuple(ctx.shape(name))))
    return out


def with_const(nq: NodeQuant, xs: tuple[np.ndarray | None, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Both operands of a binary kernel, the quantized constant (if any) in its place."""
    ops = list(xs[:2])
    if "const_codes" in nq.consts:
        ops[int(nq.consts["const_index"])] = nq.consts["const_codes"]
    a, b = ops
    assert a is not None and b is not None
    return a, b


def const_operand_sq8(ctx: QuantContext, idx: int, v: np.ndarray, op: str) -> NodeQuant:
    """A binary op with a constant that is not one value per channel (a YOLO grid, a spatial
    mask): the constant gets its own symmetric int8 qtype from its range and the broadcasting
    kernel runs on its codes (``const_codes``, full rank, batch 1)."""
    name = ctx.node.name
    lo, hi = min(float(v.min()), 0.0), max(float(v.max()), 0.0)
    qc = qtype_from_range(lo, hi, True, name=f"{name} constant operand")
    in_q = [qc if k == idx else ctx.in_q[k] for k in (0, 1)]
    nq = sq8_binary_quantize(dataclasses.replace(ctx, in_q=in_q), op)
    nq.consts["const_codes"] = np.asarray(qc.quantize(v)).astype(np.int8)
    nq.consts["const_index"] = np.array(idx, np.int64)
    nq.in_q = list(ctx.in_q)
    return nq


def const_operand_pow2(ctx: Pow2Context, idx: int, v: np.ndarray, op: str) -> NodeQuant:
    """POW2 twin of :func:`const_operand_sq8`: the constant at its own Q in the container."""
    name = ctx.node.name
    q = q_from_range(float(v.min()), float(v.max()), ctx.bits, f"{name} constant operand")
    in_q = [pow2_qtype(q, ctx.bits) if k == idx else ctx.in_q[k] for k in (0, 1)]
    nq = p2_binary_quantize(dataclasses.replace(ctx, in_q=in_q), op)
    codes = clip_bits(round_half_up(np.asarray(v, np.float64) * 2.0**q), ctx.bits)
    nq.consts["const_codes"] = np.asarray(codes).astype(np.int16 if ctx.bits > 8 else np.int8)
    nq.consts["const_index"] = np.array(idx, np.int64)
    nq.in_q = list(ctx.in_q)
    nq.info["q_const"] = q
    return nq


# -- SQ8 broadcast binary -------------------------------------------------------------------------


def sq8_binary_quantize(ctx: QuantContext, op: str) -> NodeQuant:
    """Constants of :func:`sq8_binary_int` for ``op`` in Add / Sub / Mul of two activations."""
    name = ctx.node.name
    qa, qb = ctx.in_q[0], ctx.in_q[1]
    assert qa is not None and qb is not None
    if op != "Mul" and (qa.zero_point or qb.zero_point):
        raise QuantizationError(f"{name}: {op} of two activations needs symmetric inputs")
    sa, sb, so = float(qa.scale), float(qb.scale), float(ctx.out_q.scale)
    c: dict[str, np.ndarray] = {
        "ew_op": np.array(EW_CODES[op], np.int64),
        "za": np.array(qa.zero_point, np.int64),
        "zb": np.array(qb.zero_point, np.int64),
    }
    if op == "Mul":
        mm, nn = multiplier(sa * sb / so, 1, name)
        c.update(
            ref_input=np.array(0, np.int64),
            in_mul=np.array(0, np.int64),
            in_shift=np.array(0, np.int64),
            mul=np.array(mm, np.int64),
            shift=np.array(nn, np.int64),
        )
        info = {"kernel": "broadcast mul clip8(rnorm(a*b*M, N) + Zo)", "m_out": sa * sb / so}
    else:
        if ctx.out_q.zero_point:
            raise QuantizationError(f"{name}: {op} of two activations needs a symmetric output")
        j = 0 if sa <= sb else 1
        s_ref, s_other = (sa, sb) if j == 0 else (sb, sa)
        mi, ni = multiplier(s_other / s_ref, 1, name)
        mo, no = multiplier(s_ref / so, 1, name)
        c.update(
            ref_input=np.array(j, np.int64),
            in_mul=np.array(mi, np.int64),
            in_shift=np.array(ni, np.int64),
            mul=np.array(mo, np.int64),
            shift=np.array(no, np.int64),
        )
        info = {"kernel": f"broadcast {op.lower()} (MatAdd)", "m_out": s_ref / so}
    c["zout"] = np.array(ctx.out_q.zero_point, np.int64)
    return NodeQuant(list(ctx.in_q), ctx.out_q, c, info)


def sq8_binary_int(nq: NodeQuant, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The integer kernel of :func:`sq8_binary_quantize` on broadcast int8 codes."""
    c = nq.consts
    op = int(c["ew_op"])
    a64, b64 = a.astype(np.int64), b.astype(np.int64)
    if op == EW_CODES["Mul"]:
        a64, b64 = a64 - int(c.get("za", 0)), b64 - int(c.get("zb", 0))
        y = rnorm(a64 * b64 * int(c["mul"]), int(c["shift"])) + int(c["zout"])
        return np.asarray(clip8(y)).astype(np.int8)
    if int(c["ref_input"]) == 0:
        b64 = np.asarray(rnorm(b64 * int(c["in_mul"]), int(c["in_shift"])))
    else:
        a64 = np.asarray(rnorm(a64 * int(c["in_mul"]), int(c["in_shift"])))
    acc = a64 - b64 if op == EW_CODES["Sub"] else a64 + b64
    return np.asarray(clip8(rnorm(acc * int(c["mul"]), int(c["shift"])))).astype(np.int8)


def sq8_binary_c(node: Node, nq: NodeQuant, ctx: Any) -> str:
    """``nn_ew_sq8`` (the C of :func:`sq8_binary_int`)."""
    y = node.outputs[0]
    for name in ctx.act_inputs():
        ctx.ptr8(name)  # refuses 16-bit codes
    (pa, sa), (pb, sb) = operands_c(node, nq, ctx, "int8_t")
    bc = bcast_struct(ctx, sa, sb, y)
    c = nq.consts
    keys = ("ew_op", "ref_input", "in_mul", "in_shift", "mul", "shift", "za", "zb", "zout")
    args = ", ".join(str(int(c[k])) for k in keys)
    return f"nn_ew_sq8({pa}, {pb}, {ctx.ptr8(y)}, {bc}, {args});"


# -- POW2 broadcast binary ------------------------------------------------------------------------


def p2_binary_quantize(ctx: Pow2Context, op: str) -> NodeQuant:
    """Shifts of :func:`p2_binary_int`: Add / Sub align to ``max(qa, qb)``; Mul works at
    ``qa + qb``; then ``out_shift`` to ``q_out``."""
    qa, qb = ctx.in_q[0], ctx.in_q[1]
    assert qa is not None and qb is not None
    a, b, qo = q_of(qa), q_of(qb), q_of(ctx.out_q)
    if op == "Mul":
        sh = (0, 0)
        qc = a + b
    else:
        qc = max(a, b)
        sh = (qc - a, qc - b)
    return _pow2.base_nq(
        ctx,
        {
            "ew_op": _pow2.scalar(EW_CODES[op]),
            "in_shifts": np.array(sh, np.int64),
            "out_shift": _pow2.scalar(qc - qo),
        },
        q_common=qc,
    )


def p2_binary_int(nq: NodeQuant, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``clip(shift_round(op(a << sa, b << sb), out_shift))`` on broadcast codes."""
    c = nq.consts
    op = int(c["ew_op"])
    sa, sb = (int(v) for v in c["in_shifts"])
    a64 = np.left_shift(a.astype(np.int64), sa)
    b64 = np.left_shift(b.astype(np.int64), sb)
    if op == EW_CODES["Mul"]:
        acc = a64 * b64
    elif op == EW_CODES["Sub"]:
        acc = a64 - b64
    else:
        acc = a64 + b64
    return _pow2.to_out(acc, nq)


def p2_binary_c(node: Node, nq: NodeQuant, ctx: Any) -> str:
    """``nn_p2_ew`` (the C of :func:`p2_binary_int`)."""
    y = node.outputs[0]
    es = _pow2.code_width(ctx, *ctx.act_inputs(), y)
    (pa, sha), (pb, shb) = operands_c(node, nq, ctx, _pow2.CTYPE[es])
    bc = bcast_struct(ctx, sha, shb, y)
    c = nq.consts
    sa, sb = (int(v) for v in c["in_shifts"])
    return (
        f"nn_p2_ew({pa}, {pb}, {ctx.ptr(y)}, {bc}, {int(c['ew_op'])}, "
        f"{sa}, {sb}, {int(c['out_shift'])}, {es});"
    )


# -- POW2 constant affine -------------------------------------------------------------------------


def p2_affine_quantize(
    ctx: Pow2Context, x_idx: int, scale: np.ndarray, shift: np.ndarray
) -> NodeQuant:
    """``y[c] = scale[c]·x + shift[c]`` as a depthwise 1×1 conv (``K = 1``) of POW2.md."""
    pc = dataclasses.replace(ctx, in_q=[ctx.in_q[x_idx]])
    w = np.asarray(scale, np.float64).reshape(-1, 1)
    nq = _pow2.quantize_weighted(pc, w, np.asarray(shift, np.float64).reshape(-1), 1)
    nq.in_q = list(ctx.in_q)
    nq.info["kernel"] = "channel affine (depthwise 1x1)"
    return nq


def p2_affine_int(x: np.ndarray, nq: NodeQuant) -> np.ndarray:
    """``clip(shift_round(rnorm(x, in_shift)·w[c] + (b[c] << bias_shift), out_shift))``."""
    w = nq.consts["weights"].astype(np.int64).reshape((1, -1) + (1,) * (x.ndim - 2))
    return _pow2.weighted_output(np.asarray(_pow2.pre_shift(x, nq), np.int64) * w, nq)


def p2_affine_c(x: str, y: str, nq: NodeQuant, ctx: Any) -> str:
    """``nn_p2_affine`` (the C of :func:`p2_affine_int`)."""
    es = _pow2.code_width(ctx, x, y)
    c = nq.consts
    if c["weights"].dtype.itemsize != es:
        ctx.unsupported("weights and activations have different code widths")
    ch, inner = ctx.c_hw(ctx.shape(y))
    w = ctx.const("weights", c["weights"].reshape(-1), _pow2.CTYPE[es])
    b = ctx.const("bias", c["biases"].reshape(-1), _pow2.CTYPE[es])
    shifts = ", ".join(str(int(c[k])) for k in ("in_shift", "bias_shift", "out_shift"))
    return f"nn_p2_affine({ctx.ptr(x)}, {ctx.ptr(y)}, {ch}, {inner}, {w}, {b}, {shifts}, {es});"


# -- Resize ---------------------------------------------------------------------------------------


def resize_int(x: np.ndarray, meta: dict[str, Any]) -> np.ndarray:
    """Nearest: gather the codes; bilinear: the fixed-point interpolation of the module docstring
    (int64, vectorised), stored in ``x``'s dtype."""
    if "resize_linear" not in meta:
        y = x
        for d, idx in enumerate(meta["resize_index"], start=1):
            if idx is not None:
                y = np.take(y, idx, axis=d)
        return np.ascontiguousarray(y)
    (y0, y1, wy), (x0, x1, wx) = meta["resize_linear"]
    one = 1 << RESIZE_FRAC
    v = x.astype(np.int64)
    rows0, rows1 = v[:, :, y0, :], v[:, :, y1, :]

    def horiz(r: np.ndarray) -> np.ndarray:
        return (one - wx) * r[..., x0] + wx * r[..., x1]

    wyc = wy.reshape(-1, 1)
    acc = (one - wyc) * horiz(rows0) + wyc * horiz(rows1)
    return np.asarray(rnorm(acc, 2 * RESIZE_FRAC)).astype(x.dtype)


def resize_c(node: Node, ctx: Any) -> str:
    """``nn_resize_nearest`` / ``nn_resize_bilinear`` of a 4-D tensor (only H and W resized)."""
    x, y = node.inputs[0], node.outputs[0]
    xs, ys = ctx.shape(x), ctx.shape(y)
    if len(xs) != 4 or xs[1] != ys[1]:
        ctx.unsupported("only a 4-D Resize of the two spatial axes has a C kernel")
    es = ctx.esize(y)
    dims = f"{xs[1]}, {xs[2]}, {xs[3]}, {ys[2]}, {ys[3]}"
    if "resize_linear" in node.meta:
        (y0, y1, wy), (x0, x1, wx) = node.meta["resize_linear"]
        arrs = [
            ctx.const("y0", y0, "int32_t"),
            ctx.const("y1", y1, "int32_t"),
            ctx.const("wy", wy, "int32_t"),
            ctx.const("x0", x0, "int32_t"),
            ctx.const("x1", x1, "int32_t"),
            ctx.const("wx", wx, "int32_t"),
        ]
        return (
            f"nn_resize_bilinear({ctx.ptr(x)}, {ctx.ptr(y)}, {dims}, {', '.join(arrs)}, "
            f"{RESIZE_FRAC}, {es});"
        )
    idx = node.meta["resize_index"]
    iy = idx[1] if idx[1] is not None else np.arange(xs[2])
    ix = idx[2] if idx[2] is not None else np.arange(xs[3])
    if idx[0] is not None:
        ctx.unsupported("a Resize of the channel axis")
    ay, ax = ctx.const("iy", iy, "int32_t"), ctx.const("ix", ix, "int32_t")
    return f"nn_resize_nearest({ctx.ptr(x)}, {ctx.ptr(y)}, {dims}, {ay}, {ax}, {es});"


# -- Slice / Split --------------------------------------------------------------------------------


def slice_geometry(in_shape: tuple[int, ...], slices: tuple[slice, ...]) -> list[int]:
    """``[dims4, strides4, offset]`` of ``nn_slice``: the output dims without the batch axis
    padded to 4, the input element stride of each (times the step, negative when reversed) and
    the element offset of the first value read."""
    dims = in_shape[1:]
    if len(dims) > 4:
        raise QuantizationError(f"a slice of rank {len(in_shape)} (at most 5 dims are generated)")
    contiguous, acc = [], 1
    for d in reversed(dims):
        contiguous.append(acc)
        acc *= d
    contiguous.reverse()
    out, strides, offset = [], [], 0
    for d, s, cs in zip(dims, slices[1:], contiguous, strict=True):
        start, stop, step = s.indices(d)
        out.append(len(range(start, stop, step)))
        strides.append(cs * step)
        offset += start * cs
    pad = 4 - len(dims)
    return [1] * pad + out + [0] * pad + strides + [offset]


def slice_c(ctx: Any, x: str, y: str, slices: tuple[slice, ...], key: str) -> str:
    """``nn_slice`` of ``x`` into ``y`` (any code width)."""
    if len(ctx.shape(x)) > 5:
        ctx.unsupported("a slice of rank > 5")
    geom = slice_geometry(ctx.shape(x), slices)
    name = ctx.const(key, np.array(geom, np.int64), "int32_t")
    return f"nn_slice({ctx.ptr(x)}, {ctx.ptr(y)}, {name}, {ctx.esize(y)});"


def split_slices(node: Node, rank: int) -> list[tuple[slice, ...]]:
    """The slice of each output of a Split (consecutive parts along its axis)."""
    axis = node.attrs.axis % rank
    out, start = [], 0
    for size in node.meta["split_sizes"]:
        sl = [slice(None)] * rank
        sl[axis] = slice(start, start + size)
        out.append(tuple(sl))
        start += size
    return out
