"""POW2 hooks of the ops (``docs/POW2.md``): ``quantize_pow2`` and ``run_int_pow2``.

The POW2 scheme is described here once, for every op that has it, and attached to the op classes
at import time (this module imports every op module it patches), so the SQ8 modules stay
untouched. Every
tensor is a Qm.n integer of the container width (``real = code·2^-q``); a kernel only adds,
multiplies integers and shifts (:func:`~nnshell.fixed_pow2.shift_round` then
:func:`~nnshell.fixed_pow2.clip_bits`). Products are exact: float BLAS on integer codes in a
float type where every partial sum is an exact integer (int16 × int16: float64 while
``K·2^30 <= 2^53``).

NodeQuant layout (what an emitter reads), ``info["scheme"] == "POW2"`` on every node:

* conv / linear (and fusions headed by them): ``consts`` ``weights`` (int16/int8, the float
  weights' shape, at ``q_w``), ``biases`` (int16/int8 per output channel, at ``q_b``),
  ``in_shift`` (input pre-shift, 0 unless the precision-reduction rule took input bits),
  ``bias_shift = q_acc - q_b`` and ``out_shift = q_acc - q_out`` (negative: left shift), all
  0-d int64. ``acc = Σ w·rnorm(x, in_shift) + (b << bias_shift)``,
  ``out = clip_bits(shift_round(acc, out_shift))``, then the fused pool / activations at ``q_out``.
* every other node: ``out_shift`` when its result must move from one Q to the output's (pools,
  ReLU, data movers), ``in_shifts`` (Add / Sum / Concat: ``q_common - q_i`` or ``q_i - q_out``),
  ``lo`` / ``hi`` codes of a Clip, ``alpha_q15`` of a LeakyReLU.
* ``info``: ``bits``, ``q_in`` (list), ``q_out`` and, for weighted layers, ``q_w``, ``q_b``,
  ``q_acc``, ``acc_int_bits``, ``acc_bits``, ``lost_bits`` and ``warnings``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nnshell.errors import QuantizationError
from nnshell.fixed_point import (
    c_div_trunc,
    exact_float_dtype,
    int_matmul_exact,
    rnorm,
    round_half_up,
)
from nnshell.fixed_pow2 import (
    ACC_BUDGET,
    MAX_PRECISION_LOSS,
    Pow2Context,
    clip_bits,
    code_of,
    exp_neg_q15,
    int_bits,
    q_from_range,
    q_in,
    q_of,
    requant,
    shift_round,
)
from nnshell.ir import Node
from nnshell.ops.activation import Clip, LeakyRelu, Sigmoid, Tanh
from nnshell.ops.conv import Conv, conv_float, conv_geometry
from nnshell.ops.elementwise import Add, Sum
from nnshell.ops.fused import Fused, part_node
from nnshell.ops.global_pool import GlobalAveragePool, GlobalMaxPool
from nnshell.ops.linear import Linear
from nnshell.ops.pool import (
    AveragePool,
    MaxPool,
    _window_sum,
    avg_pool_divisors,
    max_pool_float,
    pool_geometry,
)
from nnshell.ops.registry import OpDef, get_op
from nnshell.ops.relu import Relu
from nnshell.ops.reshape import _ShapeOnly
from nnshell.ops.shape_ops import Concat, _Shape
from nnshell.ops.softmax import Softmax, softmax_axis
from nnshell.ops.unary import _PassthroughSQ8
from nnshell.qrecord import NodeQuant

Arr = np.ndarray


def _c(v: int) -> np.ndarray:
    return np.array(int(v), np.int64)


def _bits(nq: NodeQuant) -> int:
    return int(nq.info["bits"])


def _store(y: Arr, nq: NodeQuant) -> Arr:
    """Codes in the output's container type (int16 / int8)."""
    return np.asarray(clip_bits(np.asarray(y, np.int64), nq.out_q.bits)).astype(nq.out_q.dtype)


def base_nq(ctx: Pow2Context, consts: dict[str, Arr] | None = None, **info: Any) -> NodeQuant:
    """A POW2 NodeQuant with the common ``info`` fields."""
    ins = [q_of(q) if q is not None else None for q in ctx.in_q]
    head = {"scheme": "POW2", "bits": ctx.bits, "q_in": ins, "q_out": q_of(ctx.out_q)}
    return NodeQuant(list(ctx.in_q), ctx.out_q, dict(consts or {}), {**head, **info})


# -- conv / linear (POW2.md "Conv / linear") ----------------------------------------------------


def quantize_weighted(ctx: Pow2Context, w: Arr, b: Arr | None, k: int) -> NodeQuant:
    """Weights, bias and shifts of a conv / linear layer, with the accumulator budget rule."""
    name, bits = ctx.layer or ctx.node.name, ctx.bits
    wf = np.asarray(w, np.float64)
    if not bool(np.all(np.isfinite(wf))):
        raise QuantizationError(f"layer '{name}': weights contain NaN or infinity")
    qi = q_in(ctx)
    qo = q_of(ctx.out_q)
    w_name = ctx.node.inputs[1] if len(ctx.node.inputs) > 1 else f"{name} weights"
    qw = q_from_range(float(wf.min(initial=0.0)), float(wf.max(initial=0.0)), bits, w_name)
    qacc0 = qi + qw
    lo, hi = ctx.out_range
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise QuantizationError(
            f"layer '{name}': no observed output range for the accumulator budget",
            "run aquant on calibration images",
        )
    acc_ib = int_bits(lo, hi)
    room = ACC_BUDGET - qacc0
    missing = max(0, acc_ib - room)
    warnings: list[str] = []
    dw = di = 0
    if missing:
        if missing > MAX_PRECISION_LOSS * qacc0:
            raise QuantizationError(
                f"layer '{name}': the accumulator needs {acc_ib} integer bits; fitting "
                f"{ACC_BUDGET} bits would lose {missing} of the {qacc0} fractional bits of "
                f"input (Q{qi}) and weights (Q{qw}), more than {MAX_PRECISION_LOSS:.0%}",
                "check the calibration range of this layer's output, or use aquant -s SQ8",
            )
        for _ in range(missing):  # take each bit from whichever has more (weights on ties)
            if qw - dw >= qi - di:
                dw += 1
            else:
                di += 1
        warnings.append(
            f"{name}: accumulator needs {acc_ib} integer bits but Q{qacc0} leaves {room} of "
            f"{ACC_BUDGET}; precision reduced by {missing} bit(s): weights Q{qw}->Q{qw - dw}, "
            f"input Q{qi}->Q{qi - di}"
        )
    qw -= dw
    qacc = qacc0 - missing
    wq = clip_bits(round_half_up(wf * 2.0**qw), bits)
    bf = np.zeros(wf.shape[0]) if b is None else np.asarray(b, np.float64).reshape(-1)
    if not bool(np.all(np.isfinite(bf))):
        raise QuantizationError(f"layer '{name}': bias contains NaN or infinity")
    b_name = ctx.node.inputs[2] if len(ctx.node.inputs) > 2 and ctx.node.inputs[2] else "bias"
    qb = qacc
    if bf.size and bool(np.any(bf != 0)):
        qb = min(q_from_range(float(bf.min()), float(bf.max()), bits, b_name), qacc)
    bq = clip_bits(round_half_up(bf * 2.0**qb), bits)
    dtype = np.int16 if bits > 8 else np.int8
    return base_nq(
        ctx,
        {
            "weights": np.asarray(wq).astype(dtype),
            "biases": np.asarray(bq).astype(dtype),
            "in_shift": _c(di),
            "bias_shift": _c(qacc - qb),
            "out_shift": _c(qacc - qo),
        },
        k=int(k),
        q_w=qw,
        q_b=qb,
        q_acc=qacc,
        acc_int_bits=acc_ib,
        acc_bits=acc_ib + qacc,
        lost_bits=missing,
        warnings=warnings,
    )


def _float_type(k: int, bits: int, layer: str) -> Any:
    peak = 1 << (bits - 1)
    ft = exact_float_dtype(k, peak, peak)
    if ft is None:
        raise QuantizationError(f"layer '{layer}': {k} terms of {bits}-bit products exceed 2^53")
    return ft


def _pre_shift(x: Arr, nq: NodeQuant) -> Arr:
    s = int(nq.consts["in_shift"])
    return np.asarray(rnorm(x.astype(np.int64), s)) if s else x


def weighted_output(acc: Arr, nq: NodeQuant) -> Arr:
    """``clip_bits(shift_round(acc + (b << bias_shift), out_shift))``, channels on axis 1."""
    c = nq.consts
    b = c["biases"].astype(np.int64) << int(c["bias_shift"])
    a = np.asarray(acc).astype(np.int64) + b.reshape((1, -1) + (1,) * (np.ndim(acc) - 2))
    return _store(shift_round(a, int(c["out_shift"])), nq)


def _conv_quantize(self: Conv, ctx: Pow2Context) -> NodeQuant:
    w = ctx.const(1)
    if w is None:
        raise QuantizationError(f"{ctx.node.name}: conv weights are not constant")
    nq = quantize_weighted(ctx, w, ctx.const(2), int(np.prod(w.shape[1:])))
    x = ctx.graph.tensors[ctx.node.inputs[0]]
    nq.info["geometry"] = conv_geometry(ctx.node, x.shape, w.shape)
    return nq


def _conv_run(self: Conv, node: Node, nq: NodeQuant, *xs: Arr | None) -> list[Arr]:
    x = xs[0]
    assert x is not None
    kernel, strides, dil, pads, outs = nq.info["geometry"]
    wq = nq.consts["weights"]
    ft = _float_type(int(np.prod(wq.shape[1:])), _bits(nq), node.name)
    xf = _pre_shift(x, nq).astype(ft)
    acc = conv_float(xf, wq.astype(ft), None, kernel, strides, dil, pads, outs, node.attrs.group)
    return [weighted_output(acc, nq)]


def _linear_quantize(self: Linear, ctx: Pow2Context) -> NodeQuant:
    w = ctx.const(1)
    if w is None:
        raise QuantizationError(f"{ctx.node.name}: linear weights are not constant")
    return quantize_weighted(ctx, w, ctx.const(2), int(w.shape[1]))


def _linear_run(self: Linear, node: Node, nq: NodeQuant, *xs: Arr | None) -> list[Arr]:
    x = xs[0]
    assert x is not None
    wq = nq.consts["weights"]
    xs2 = _pre_shift(x, nq).reshape(x.shape[0], -1)
    return [weighted_output(int_matmul_exact(xs2, wq.reshape(wq.shape[0], -1).T), nq)]


# -- activations -------------------------------------------------------------------------------


def activation_codes(op: str, attrs: Any, y: Arr, q: int, bits: int, name: str) -> Arr:
    """A scale-preserving activation on codes at ``q`` (ReLU, ReLU6 / Clip, LeakyReLU)."""
    y = np.asarray(y, np.int64)
    if op == "Relu":
        return np.maximum(y, 0)
    if op == "Clip":
        return np.clip(y, code_of(attrs.min, q, bits), code_of(attrs.max, q, bits))
    if op == "LeakyRelu":
        a = int(round_half_up(float(attrs.alpha) * 32768))
        return np.where(y >= 0, y, np.asarray(rnorm(y * a, 15)))
    raise QuantizationError(
        f"{name}: activation {op} inside a fused layer has no POW2 kernel",
        "POW2 fused layers support ReLU, ReLU6 and LeakyReLU",
    )


def _passthrough_quant(ctx: Pow2Context, **consts: Arr) -> NodeQuant:
    """A data-moving / scale-preserving op: an ``out_shift`` only when input and output Q differ."""
    qin = ctx.in_q[0]
    c = dict(consts)
    if qin is not None and q_of(qin) != q_of(ctx.out_q):
        c["out_shift"] = _c(q_of(qin) - q_of(ctx.out_q))
    return base_nq(ctx, c)


def _to_out(y: Arr, nq: NodeQuant) -> Arr:
    """Move codes to the output Q when the node has an ``out_shift``, then store."""
    if "out_shift" in nq.consts:
        y = shift_round(np.asarray(y, np.int64), int(nq.consts["out_shift"]))
    return _store(y, nq)


def _relu_run(self: Relu, node: Node, nq: NodeQuant, *xs: Arr | None) -> list[Arr]:
    assert xs[0] is not None
    return [_to_out(np.maximum(xs[0].astype(np.int64), 0), nq)]


def _clip_quantize(self: Clip, ctx: Pow2Context) -> NodeQuant:
    lo, hi = self.bounds(ctx.node, None, ctx.const(1), ctx.const(2))
    qi = q_in(ctx)
    return _passthrough_quant(
        ctx, lo=_c(code_of(lo, qi, ctx.bits)), hi=_c(code_of(hi, qi, ctx.bits))
    )


def _clip_run(self: Clip, node: Node, nq: NodeQuant, *xs: Arr | None) -> list[Arr]:
    assert xs[0] is not None
    c = nq.consts
    return [_to_out(np.clip(xs[0].astype(np.int64), int(c["lo"]), int(c["hi"])), nq)]


def _leaky_quantize(self: LeakyRelu, ctx: Pow2Context) -> NodeQuant:
    a = int(round_half_up(float(ctx.node.attrs.alpha) * 32768))
    return _passthrough_quant(ctx, alpha_q15=_c(a))


def _leaky_run(self: LeakyRelu, node: Node, nq: NodeQuant, *xs: Arr | None) -> list[Arr]:
    assert xs[0] is not None
    x = xs[0].astype(np.int64)
    y = np.where(x >= 0, x, np.asarray(rnorm(x * int(nq.consts["alpha_q15"]), 15)))
    return [_to_out(y, nq)]


def _unit_quantize(self: OpDef, ctx: Pow2Context) -> NodeQuant:
    """Sigmoid / Tanh: Q15 (16-bit) or Q7 (8-bit) output, computed with the integer exp."""
    q_in(ctx)
    return base_nq(ctx)


def _sigmoid_run(self: Sigmoid, node: Node, nq: NodeQuant, *xs: Arr | None) -> list[Arr]:
    """``p = 2^30 / (2^15 + E(|x|))`` (Q15 of ``1/(1+e^-|x|)``), ``2^15 - p`` for ``x < 0``."""
    x = xs[0]
    assert x is not None
    xi = x.astype(np.int64)
    e = exp_neg_q15(np.abs(xi), int(nq.info["q_in"][0]))
    p = (1 << 30) // (32768 + e)
    return [_unit_out(np.where(xi >= 0, p, 32768 - p), nq)]


def _tanh_run(self: Tanh, node: Node, nq: NodeQuant, *xs: Arr | None) -> list[Arr]:
    """``t = ((2^15 - E(2|x|)) << 15) / (2^15 + E(2|x|))`` (Q15 of ``tanh|x|``), sign of x."""
    x = xs[0]
    assert x is not None
    xi = x.astype(np.int64)
    e = exp_neg_q15(2 * np.abs(xi), int(nq.info["q_in"][0]))
    t = ((32768 - e) << 15) // (32768 + e)
    return [_unit_out(t, nq, negative=xi < 0)]


def _unit_out(y15: Arr, nq: NodeQuant, negative: Arr | None = None) -> Arr:
    """Q15 magnitudes to the output Q (15 or 7), sign applied after the rounding."""
    y = shift_round(y15, 15 - q_of(nq.out_q))
    if negative is not None:
        y = np.where(negative, -y, y)
    return _store(y, nq)


def _softmax_quantize(self: Softmax, ctx: Pow2Context) -> NodeQuant:
    q_in(ctx)
    return base_nq(ctx)


def _softmax_run(self: Softmax, node: Node, nq: NodeQuant, *xs: Arr | None) -> list[Arr]:
    """``e_i = E(max - x_i)`` (Q15 integer exp), ``y_i = min(32767, (e_i << 15) / Σ e)``."""
    x = xs[0]
    assert x is not None
    axis, legacy = softmax_axis(node, x.ndim)
    v = x.reshape(int(np.prod(x.shape[:axis])), -1) if legacy else x
    ax = 1 if legacy else axis
    xi = v.astype(np.int64)
    e = exp_neg_q15(xi.max(axis=ax, keepdims=True) - xi, int(nq.info["q_in"][0]))
    y = np.minimum(32767, (e << 15) // e.sum(axis=ax, keepdims=True))
    return [y.reshape(x.shape).astype(np.int16)]


# -- pools ---------------------------------------------------------------------------------------


def _pool_quantize(self: OpDef, ctx: Pow2Context) -> NodeQuant:
    return _passthrough_quant(ctx)


def _maxpool_run(self: MaxPool, node: Node, nq: NodeQuant, *xs: Arr | None) -> list[Arr]:
    x = xs[0]
    assert x is not None
    y = max_pool_float(x.astype(np.float32), node).astype(np.int64)  # int16 exact in float32
    return [_to_out(y, nq)]


def _avgpool_run(self: AveragePool, node: Node, nq: NodeQuant, *xs: Arr | None) -> list[Arr]:
    """``rnorm(Σ_window x · floor(65536/count), 16)`` at the input Q (as SQ8 §5)."""
    x = xs[0]
    assert x is not None
    kernel, strides, dil, pads, outs = pool_geometry(node, x.shape)
    total = _window_sum(x.astype(np.int64), kernel, strides, dil, pads, outs)
    y = np.asarray(rnorm(total * avg_pool_divisors(node, x.shape), 16))
    y = clip_bits(y, nq.in_q[0].bits if nq.in_q[0] is not None else _bits(nq))
    return [_to_out(y, nq)]


def _gmax_run(self: GlobalMaxPool, node: Node, nq: NodeQuant, *xs: Arr | None) -> list[Arr]:
    x = xs[0]
    assert x is not None
    return [_to_out(x.max(axis=tuple(range(2, x.ndim)), keepdims=True).astype(np.int64), nq)]


def _gavg_quantize(self: GlobalAveragePool, ctx: Pow2Context) -> NodeQuant:
    """The mean carries 7 extra fraction bits: ``out_shift = q_in + 7 - q_out``."""
    return base_nq(ctx, {"out_shift": _c(q_in(ctx) + 7 - q_of(ctx.out_q))})


def _gavg_run(self: GlobalAveragePool, node: Node, nq: NodeQuant, *xs: Arr | None) -> list[Arr]:
    """``t = trunc((Σ_hw x << 7) / HW)`` (C division), ``clip_bits(shift_round(t, out_shift))``."""
    x = xs[0]
    assert x is not None
    hw = int(np.prod(x.shape[2:]))
    s = x.astype(np.int64).sum(axis=tuple(range(2, x.ndim)), keepdims=True)
    return [_to_out(c_div_trunc(s * 128, np.int64(hw)), nq)]


# -- add / sum / concat / data movers ------------------------------------------------------------


def _add_quantize(self: OpDef, ctx: Pow2Context) -> NodeQuant:
    """Align the inputs to ``q_common = max q_i`` (exact left shifts), sum, shift to ``q_out``."""
    acts = [q for q in ctx.in_q if q is not None]
    if len(acts) != len([i for i in ctx.node.inputs if i]) or len(acts) < 2:
        raise QuantizationError(
            f"{ctx.node.name}: POW2 adds two or more activations only (no constant operand)"
        )
    qs = [q_of(q) for q in acts]
    qc = max(qs)
    return base_nq(
        ctx,
        {
            "in_shifts": np.array([qc - q for q in qs], np.int64),
            "out_shift": _c(qc - q_of(ctx.out_q)),
        },
        q_common=qc,
    )


def _add_run(self: OpDef, node: Node, nq: NodeQuant, *xs: Arr | None) -> list[Arr]:
    acts = [x for x in xs if x is not None]
    sh = nq.consts["in_shifts"]
    acc = sum(np.left_shift(x.astype(np.int64), int(s)) for x, s in zip(acts, sh, strict=True))
    return [_to_out(np.asarray(acc), nq)]


def _concat_quantize(self: Concat, ctx: Pow2Context) -> NodeQuant:
    """One common Q (the quantizer ties the inputs); a shift per input that differs anyway."""
    shifts = []
    for k, q in enumerate(ctx.in_q):
        if q is None:
            if ctx.node.inputs[k]:
                raise QuantizationError(f"{ctx.node.name}: Concat of a constant is not quantized")
            continue
        shifts.append(q_of(q) - q_of(ctx.out_q))
    return base_nq(ctx, {"in_shifts": np.array(shifts, np.int64)})


def _concat_run(self: Concat, node: Node, nq: NodeQuant, *xs: Arr | None) -> list[Arr]:
    if any(x is None for x, i in zip(xs, node.inputs, strict=False) if i):
        raise QuantizationError(f"{node.name}: Concat of a constant is not quantized")
    shifts = iter(nq.consts["in_shifts"].tolist())
    ys = [
        None if x is None else requant(x, next(shifts), 0, nq.out_q.bits).astype(nq.out_q.dtype)
        for x in xs
    ]
    return self.run_float(node, *ys)


def _mover_quantize(self: OpDef, ctx: Pow2Context) -> NodeQuant:
    return _passthrough_quant(ctx)


def _mover_run(self: OpDef, node: Node, nq: NodeQuant, *xs: Arr | None) -> list[Arr]:
    ys = self.run_float(node, *xs)
    if "out_shift" not in nq.consts:
        return ys
    return [_to_out(y.astype(np.int64), nq) for y in ys]


# -- fusions -------------------------------------------------------------------------------------

_FUSED_ACTS = ("Relu", "Clip", "LeakyRelu")


def _fused_quantize(self: Fused, ctx: Pow2Context) -> NodeQuant:
    """The head at the fusion's output Q; pools and ReLU / ReLU6 / LeakyReLU keep that Q."""
    parts = ctx.node.attrs.parts
    for p in parts[1:]:
        if get_op(p.op).kind != "pool" and p.op not in _FUSED_ACTS:
            raise QuantizationError(
                f"{ctx.node.name}: {p.op} inside a fused layer has no POW2 kernel",
                "POW2 fused layers support ReLU, ReLU6 and LeakyReLU",
            )
    head = part_node(parts[0], ctx.node.inputs, ["_"])
    hctx = Pow2Context(
        ctx.graph,
        head,
        ctx.in_q,
        ctx.out_q,
        True,
        ctx.bits,
        ctx.out_range,
        ctx.ranges,
        ctx.node.name,
    )
    nq = get_op(parts[0].op).quantize_pow2(hctx)
    return nq  # type: ignore[no-any-return]


def _fused_run(self: Fused, node: Node, nq: NodeQuant, *xs: Arr | None) -> list[Arr]:
    parts = node.attrs.parts
    y = get_op(parts[0].op).run_int_pow2(part_node(parts[0], node.inputs, ["_"]), nq, *xs)[0]
    same = NodeQuant([nq.out_q], nq.out_q, {}, {"bits": _bits(nq), "scheme": "POW2"})
    q, bits = q_of(nq.out_q), nq.out_q.bits
    for p in parts[1:]:
        if get_op(p.op).kind == "pool":
            y = get_op(p.op).run_int_pow2(part_node(p, ["_"], ["_"]), same, y)[0]
        else:
            y = _store(activation_codes(p.op, p.attrs, y, q, bits, node.name), nq)
    return [y]


# -- C (gen --target c): the calls of nnshell/codegen/runtime/nn_pow2.h ------------------------
# Each hook writes the C call that repeats its ``run_int_pow2`` integer for integer; ``ctx`` is a
# :class:`nnshell.codegen.c_context.CContext`.

_CTYPE = {1: "int8_t", 2: "int16_t"}


def _width(ctx: Any, *tensors: str) -> int:
    """The one code width (bytes) of ``tensors``; mixed widths have no kernel."""
    sizes = {ctx.esize(t) for t in tensors}
    if len(sizes) != 1:
        ctx.unsupported(f"tensors {', '.join(tensors)} mix code widths")
    return sizes.pop()


def _shift(nq: NodeQuant) -> int:
    return int(nq.consts["out_shift"]) if "out_shift" in nq.consts else 0


def _conv_emit(self: Conv, node: Node, nq: NodeQuant, ctx: Any) -> str:
    """``nn_p2_conv``; a conv-headed fusion passes its pool and activations in ``ctx.tail``."""
    kernel, strides, dil, pads, outs = nq.info["geometry"]
    c = nq.consts
    x, y = node.inputs[0], node.outputs[0]
    es = _width(ctx, x, y)
    if c["weights"].dtype.itemsize != es:
        ctx.unsupported("weights and activations have different code widths")
    conv = ctx.struct(
        "nn_p2conv_t",
        "conv",
        [
            *ctx.chw(ctx.shape(x)),
            *ctx.chw((1, c["weights"].shape[0], *outs)),
            *ctx.window(kernel, strides, dil, pads),
            node.attrs.group,
            es,
            int(c["in_shift"]),
            int(c["bias_shift"]),
            int(c["out_shift"]),
            ctx.const("weights", c["weights"], _CTYPE[es]),
            ctx.const("bias", c["biases"], _CTYPE[es]),
        ],
    )
    pool, pre, post = ctx.tail
    return f"nn_p2_conv({ctx.ptr(x)}, {ctx.ptr(y)}, {conv}, {pool}, {pre}, {post});"


def _linear_emit(self: Linear, node: Node, nq: NodeQuant, ctx: Any) -> str:
    """``nn_p2_linear`` over the flattened input."""
    c = nq.consts
    w = c["weights"]
    x, y = node.inputs[0], node.outputs[0]
    es = _width(ctx, x, y)
    if w.dtype.itemsize != es:
        ctx.unsupported("weights and activations have different code widths")
    args = [
        ctx.const("weights", w, _CTYPE[es]),
        ctx.const("bias", c["biases"], _CTYPE[es]),
        int(c["in_shift"]),
        int(c["bias_shift"]),
        int(c["out_shift"]),
    ]
    call = f"nn_p2_linear({ctx.ptr(x)}, {ctx.ptr(y)}, {w.shape[1]}, {w.shape[0]}, {es}"
    return f"{call}, {', '.join(map(str, args))});"


def _act_call(ctx: Any, rows: list[list[Any]], nq: NodeQuant) -> str:
    """``nn_p2_act`` of a standalone activation: ``clip(shift_round(act(x), out_shift))``."""
    x, y = ctx.act_inputs()[0], ctx.node.outputs[0]
    es = _width(ctx, x, y)
    acts = ctx.struct_array("nn_p2act_t", "act", rows)
    return (
        f"nn_p2_act({ctx.ptr(x)}, {ctx.ptr(y)}, {ctx.size(y)}, {es}, {acts}, {len(rows)}, "
        f"{_shift(nq)});"
    )


def _relu_emit(self: Relu, node: Node, nq: NodeQuant, ctx: Any) -> str:
    top = (1 << (nq.out_q.bits - 1)) - 1
    return _act_call(ctx, [["NN_ACT_CLAMP", 0, top, 0]], nq)


def _clip_emit(self: Clip, node: Node, nq: NodeQuant, ctx: Any) -> str:
    c = nq.consts
    return _act_call(ctx, [["NN_ACT_CLAMP", int(c["lo"]), int(c["hi"]), 0]], nq)


def _leaky_emit(self: LeakyRelu, node: Node, nq: NodeQuant, ctx: Any) -> str:
    return _act_call(ctx, [["NN_ACT_LEAKY", 0, 0, int(nq.consts["alpha_q15"])]], nq)


def _unit_emit(fn: str) -> Any:
    def emit(self: OpDef, node: Node, nq: NodeQuant, ctx: Any) -> str:
        """``nn_p2_sigmoid`` / ``nn_p2_tanh`` from Q``q_in`` to Q``q_out``."""
        x, y = node.inputs[0], node.outputs[0]
        qi, qo = int(nq.info["q_in"][0]), q_of(nq.out_q)
        return (
            f"{fn}({ctx.ptr(x)}, {ctx.ptr(y)}, {ctx.size(y)}, {ctx.esize(x)}, {ctx.esize(y)}, "
            f"{qi}, {qo});"
        )

    return emit


def _softmax_emit(self: Softmax, node: Node, nq: NodeQuant, ctx: Any) -> str:
    """``nn_p2_softmax`` over the axis (and opset rule) of the executor, Q15 int16 output."""
    x, y = node.inputs[0], node.outputs[0]
    if ctx.esize(y) != 2:
        ctx.unsupported("the POW2 softmax writes int16 Q15 codes")
    shape = ctx.shape(x)
    axis, legacy = softmax_axis(node, len(shape))
    outer = int(np.prod(shape[:axis]))
    inner = 1 if legacy else int(np.prod(shape[axis + 1 :]))
    length = int(np.prod(shape)) // (outer * inner)
    qi = int(nq.info["q_in"][0])
    return (
        f"nn_p2_softmax({ctx.ptr(x)}, {ctx.ptr(y)}, {outer}, {length}, {inner}, "
        f"{ctx.esize(x)}, {qi});"
    )


def _pool_emit(self: OpDef, node: Node, nq: NodeQuant, ctx: Any) -> str:
    """``nn_p2_pool`` with the window descriptor of the SQ8 kernel (``c_pool``)."""
    x, y = node.inputs[0], node.outputs[0]
    es = _width(ctx, x, y)
    c, h, w = ctx.chw(ctx.shape(x))
    pool = self.c_pool(node, ctx.shape(x), ctx)  # type: ignore[attr-defined]
    return f"nn_p2_pool({ctx.ptr(x)}, {ctx.ptr(y)}, {c}, {h}, {w}, {es}, {pool}, {_shift(nq)});"


def _global_emit(fn: str) -> Any:
    def emit(self: OpDef, node: Node, nq: NodeQuant, ctx: Any) -> str:
        """``nn_p2_global_max`` / ``nn_p2_global_avg`` per channel."""
        x, y = node.inputs[0], node.outputs[0]
        es = _width(ctx, x, y)
        c, hw = ctx.c_hw(ctx.shape(x))
        return f"{fn}({ctx.ptr(x)}, {ctx.ptr(y)}, {c}, {hw}, {es}, {_shift(nq)});"

    return emit


def _add_emit(self: OpDef, node: Node, nq: NodeQuant, ctx: Any) -> str:
    """``nn_p2_add`` of same-shaped inputs (no broadcasting in C)."""
    ins, y = ctx.act_inputs(), node.outputs[0]
    if any(ctx.shape(i) != ctx.shape(y) for i in ins):
        ctx.unsupported("a broadcasting add has no C kernel")
    es = _width(ctx, *ins, y)
    shifts = ctx.const("in_shift", nq.consts["in_shifts"], "int8_t")
    ptrs = ", ".join(ctx.ptr(i) for i in ins)
    call = f"nn_p2_add(ins, {len(ins)}, {shifts}, {_shift(nq)}, {ctx.ptr(y)}, {ctx.size(y)}, {es});"
    return f"{{\n    const void *const ins[{len(ins)}] = {{{ptrs}}};\n    {call}\n}}"


def _concat_emit(self: Concat, node: Node, nq: NodeQuant, ctx: Any) -> str:
    """``nn_p2_concat``: blocks of codes, each input shifted to the output Q."""
    ins, y = ctx.act_inputs(), node.outputs[0]
    if len(ins) != len([i for i in node.inputs if i]):
        ctx.unsupported("a concatenation of constants")
    es = _width(ctx, *ins, y)
    shape = ctx.shape(y)
    axis = node.attrs.axis % len(shape)
    inner = int(np.prod(shape[axis + 1 :]))
    blocks = ctx.const("blocks", np.array([ctx.shape(i)[axis] * inner for i in ins]), "int32_t")
    shifts = ctx.const("shift", nq.consts["in_shifts"], "int8_t")
    ptrs = ", ".join(ctx.ptr(i) for i in ins)
    outer = int(np.prod(shape[:axis]))
    call = f"nn_p2_concat(ins, {len(ins)}, {blocks}, {shifts}, {outer}, {es}, {ctx.ptr(y)});"
    return f"{{\n    const void *const ins[{len(ins)}] = {{{ptrs}}};\n    {call}\n}}"


def _mover_emit(self: OpDef, node: Node, nq: NodeQuant, ctx: Any) -> str:
    """The op's data movement (its SQ8 C: a copy or a transpose), then the output's shift."""
    sq8 = getattr(self, "emit_c", None)
    if sq8 is None:
        ctx.unsupported("no C kernel moves its data")
    code = str(sq8(node, NodeQuant(nq.in_q, nq.out_q), ctx))
    if "out_shift" not in nq.consts:
        return code
    y = node.outputs[0]
    shift = f"nn_p2_act({ctx.ptr(y)}, {ctx.ptr(y)}, {ctx.size(y)}, {ctx.esize(y)}, NULL, 0"
    return f"{code}\n{shift}, {_shift(nq)});"


def _fused_emit(self: Fused, node: Node, nq: NodeQuant, ctx: Any) -> str:
    """A conv head runs the whole chain in one ``nn_p2_conv`` (pool on the fly, activations
    before and after it); a linear head writes its output, then ``nn_p2_act`` runs in place."""
    parts = node.attrs.parts
    head, tail = part_node(parts[0], node.inputs, node.outputs), parts[1:]
    pools = [i for i, p in enumerate(tail) if get_op(p.op).kind == "pool"]
    if parts[0].op == "Conv" and len(pools) <= 1:
        cut = pools[0] if pools else len(tail)
        pool = "NULL"
        if pools:
            conv_shape = (1, nq.consts["weights"].shape[0], *nq.info["geometry"][4])
            pnode = part_node(tail[cut], ["_"], ["_"])
            pool = get_op(tail[cut].op).c_pool(pnode, conv_shape, ctx)  # type: ignore[attr-defined]
        pre = ctx.p2_acts("pre", tail[:cut], nq.out_q)
        ctx.tail = (pool, pre, ctx.p2_acts("post", tail[cut + 1 :], nq.out_q))
        return _conv_emit(get_op("Conv"), head, nq, ctx)  # type: ignore[arg-type]
    head_emit = getattr(get_op(parts[0].op), "emit_c_pow2", None)
    if pools or head_emit is None:
        ctx.unsupported(f"{'+'.join(p.op for p in parts)} has no POW2 C kernel")
    code = head_emit(head, nq, ctx)
    y = node.outputs[0]
    acts = ctx.p2_acts("acts", tail, nq.out_q)
    return (
        f"{code}\nnn_p2_act({ctx.ptr(y)}, {ctx.ptr(y)}, {ctx.size(y)}, {ctx.esize(y)}, {acts}, 0);"
    )


# -- attach ----------------------------------------------------------------------------------


def _attach(cls: type[OpDef], quantize: Any, run: Any, emit: Any = None) -> None:
    cls.quantize_pow2 = quantize  # type: ignore[method-assign]
    cls.run_int_pow2 = run  # type: ignore[method-assign]
    if emit is not None:
        cls.emit_c_pow2 = emit  # type: ignore[attr-defined]


_attach(Conv, _conv_quantize, _conv_run, _conv_emit)
_attach(Linear, _linear_quantize, _linear_run, _linear_emit)
_attach(Fused, _fused_quantize, _fused_run, _fused_emit)
_attach(MaxPool, _pool_quantize, _maxpool_run, _pool_emit)
_attach(AveragePool, _pool_quantize, _avgpool_run, _pool_emit)
_attach(GlobalMaxPool, _pool_quantize, _gmax_run, _global_emit("nn_p2_global_max"))
_attach(GlobalAveragePool, _gavg_quantize, _gavg_run, _global_emit("nn_p2_global_avg"))
_attach(Add, _add_quantize, _add_run, _add_emit)
_attach(Sum, _add_quantize, _add_run, _add_emit)
_attach(Concat, _concat_quantize, _concat_run, _concat_emit)
_attach(Relu, _pool_quantize, _relu_run, _relu_emit)
_attach(Clip, _clip_quantize, _clip_run, _clip_emit)
_attach(LeakyRelu, _leaky_quantize, _leaky_run, _leaky_emit)
_attach(Sigmoid, _unit_quantize, _sigmoid_run, _unit_emit("nn_p2_sigmoid"))
_attach(Tanh, _unit_quantize, _tanh_run, _unit_emit("nn_p2_tanh"))
_attach(Softmax, _softmax_quantize, _softmax_run, _softmax_emit)
for _cls in (_Shape, _ShapeOnly, _PassthroughSQ8):
    _attach(_cls, _mover_quantize, _mover_run, _mover_emit)
