"""POW2 integer building blocks shared by the ops' POW2 hooks (``docs/POW2.md``).

Each op class defines its own ``quantize_pow2``, ``run_int_pow2`` and ``emit_c_pow2`` in its
class body, next to its SQ8 hooks; this module holds only the arithmetic they share (as
:mod:`nnshell.ops._sq8` does for SQ8) and imports no op module: op modules import it, never the
reverse. Every tensor is a Qm.n integer of the container width (``real = code·2^-q``); a kernel
only adds, multiplies integers and shifts (:func:`~nnshell.quant.fixed_pow2.shift_round` then
:func:`~nnshell.quant.fixed_pow2.clip_bits`). Products are exact: float BLAS on integer codes in a
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

import math
from typing import Any

import numpy as np

from nnshell.errors import QuantizationError
from nnshell.ir import Node
from nnshell.quant.fixed_point import exact_float_dtype, rnorm, round_half_up
from nnshell.quant.fixed_pow2 import (
    ACC_BUDGET,
    MAX_PRECISION_LOSS,
    Pow2Context,
    clip_bits,
    int_bits,
    q_fraction_fit,
    q_from_range,
    q_in,
    q_of,
    shift_round,
)
from nnshell.quant.qrecord import NodeQuant

Arr = np.ndarray


def scalar(v: int) -> np.ndarray:
    """A 0-d int64 constant (a shift, a code bound, a Q15 factor)."""
    return np.array(int(v), np.int64)


def bits_of(nq: NodeQuant) -> int:
    """The container width (16 or 8) the node was quantized for."""
    return int(nq.info["bits"])


def store(y: Arr, nq: NodeQuant) -> Arr:
    """Codes in the output's container type (int16 / int8)."""
    return np.asarray(clip_bits(np.asarray(y, np.int64), nq.out_q.bits)).astype(nq.out_q.dtype)


def base_nq(ctx: Pow2Context, consts: dict[str, Arr] | None = None, **info: Any) -> NodeQuant:
    """A POW2 NodeQuant with the common ``info`` fields."""
    ins = [q_of(q) if q is not None else None for q in ctx.in_q]
    head = {"scheme": "POW2", "bits": ctx.bits, "q_in": ins, "q_out": q_of(ctx.out_q)}
    return NodeQuant(list(ctx.in_q), ctx.out_q, dict(consts or {}), {**head, **info})


# -- conv / linear (POW2.md "Conv / linear") ----------------------------------------------------


def split_missing(missing: int, qi: int, qw: int) -> tuple[int, int]:
    """``(input bits, weight bits)`` taken when the accumulator lacks ``missing`` integer bits.

    NNTool's rule (POW2.md "Conv / linear"): each side gives in proportion to its share of the
    accumulator's fractional bits, ``min(floor(0.5 + missing·q/(qi + qw)), q)``, and any bit the
    rounding left over comes from the weights. Both shares round half up, so the two can take one
    bit more than ``missing`` (``missing = 1``, ``qi == qw``); NNTool takes both, and so do we,
    because the formats it writes are the ones the AutoTiler kernels are generated from.
    """
    total = qi + qw
    di = min(math.floor(0.5 + missing * qi / total), qi)
    dw = min(math.floor(0.5 + missing * qw / total), qw)
    return di, dw + max(0, missing - di - dw)


def _small_weights_q(w_lo: float, w_hi: float, q_rule: int, bits: int, q_room: int) -> int:
    """The weights' Q: the POW2.md (NNTool) rule's ``bits - ib``, unless at that Q the largest
    weight code holds fewer than half of the container's bits; then the Q at which the weights
    fill the container, as far as the accumulator budget leaves room (so the raise never costs
    the input a bit). Weights that use half the container or more keep NNTool's Q (and its
    AutoTiler parity, docs/nntool-parity.md).

    Why (issue 17): the rule never gives more than ``bits - 1`` fractional bits, so weights of
    magnitude 2.5e-4 (PP-OCRv4 det's conv after the Concat, input ±2300) became Q15 codes -8..6,
    3 bits, and that one layer took the detector's POW2-16 output from 70 to 21 dB; at Q26 they
    keep 14 bits.
    """
    peak = max(abs(w_lo), abs(w_hi))
    if peak == 0.0 or round_half_up(peak * 2.0**q_rule) >= 1 << (bits // 2):
        return q_rule
    q_fit = q_fraction_fit(w_lo, w_hi, bits)
    return q_rule if q_fit is None else max(q_rule, min(q_fit, q_room))


def quantize_weighted(ctx: Pow2Context, w: Arr, b: Arr | None, k: int) -> NodeQuant:
    """Weights, bias and shifts of a conv / linear layer, with the accumulator budget rule.

    The budget is sized from ``ctx.out_range``, which :mod:`nnshell.quant.pow2` makes the union
    of the layer's output range and its accumulator range (before any fused activation or pool,
    and for a linear layer the sums without the bias too): the accumulator holds those values,
    not the activation's output. ``ctx.w_cut`` (set when the input's share of the reduction has
    been moved onto the producer's output Q) fixes the weights' share decided the first time.
    """
    name, bits = ctx.layer or ctx.node.name, ctx.bits
    wf = np.asarray(w, np.float64)
    if not bool(np.all(np.isfinite(wf))):
        raise QuantizationError(f"layer '{name}': weights contain NaN or infinity")
    qi = q_in(ctx)
    qo = q_of(ctx.out_q)
    w_name = ctx.node.inputs[1] if len(ctx.node.inputs) > 1 else f"{name} weights"
    w_lo, w_hi = float(wf.min(initial=0.0)), float(wf.max(initial=0.0))
    qw = q_from_range(w_lo, w_hi, bits, w_name)
    lo, hi = ctx.out_range
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise QuantizationError(
            f"layer '{name}': no observed output range for the accumulator budget",
            "run aquant on calibration images",
        )
    acc_ib = int_bits(lo, hi)
    if ctx.w_cut is None:
        qw = _small_weights_q(w_lo, w_hi, qw, bits, ACC_BUDGET - acc_ib - qi)
    qacc0 = qi + qw
    room = ACC_BUDGET - qacc0
    missing = max(0, acc_ib - room)
    warnings: list[str] = []
    dw = di = 0
    if ctx.w_cut is not None:  # the input already arrives at its reduced Q
        dw = ctx.w_cut
        if dw < missing:
            raise QuantizationError(f"layer '{name}': the weights' reduction no longer fits")
        missing = dw
    elif missing:
        if missing > MAX_PRECISION_LOSS * qacc0:
            raise QuantizationError(
                f"layer '{name}': the accumulator needs {acc_ib} integer bits; fitting "
                f"{ACC_BUDGET} bits would lose {missing} of the {qacc0} fractional bits of "
                f"input (Q{qi}) and weights (Q{qw}), more than {MAX_PRECISION_LOSS:.0%}",
                "check the calibration range of this layer's output, or use aquant -s SQ8",
            )
        di, dw = split_missing(missing, qi, qw)
        missing = di + dw
    if missing:
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
            "in_shift": scalar(di),
            "bias_shift": scalar(qacc - qb),
            "out_shift": scalar(qacc - qo),
        },
        k=int(k),
        q_w=qw,
        q_b=qb,
        q_acc=qacc,
        acc_int_bits=acc_ib,
        acc_bits=acc_ib + qacc,
        lost_bits=missing,
        w_cut=dw,
        in_cut=di,
        warnings=warnings,
    )


def float_type(k: int, bits: int, layer: str) -> Any:
    """The float type in which every partial sum of ``k`` ``bits``-bit products is exact."""
    peak = 1 << (bits - 1)
    ft = exact_float_dtype(k, peak, peak)
    if ft is None:
        raise QuantizationError(f"layer '{layer}': {k} terms of {bits}-bit products exceed 2^53")
    return ft


def pre_shift(x: Arr, nq: NodeQuant) -> Arr:
    """``rnorm(x, in_shift)``: the input bits the accumulator budget took (none when 0)."""
    s = int(nq.consts["in_shift"])
    return np.asarray(rnorm(x.astype(np.int64), s)) if s else x


def weighted_output(acc: Arr, nq: NodeQuant) -> Arr:
    """``clip_bits(shift_round(acc + (b << bias_shift), out_shift))``, channels on axis 1."""
    c = nq.consts
    b = c["biases"].astype(np.int64) << int(c["bias_shift"])
    a = np.asarray(acc).astype(np.int64) + b.reshape((1, -1) + (1,) * (np.ndim(acc) - 2))
    return store(shift_round(a, int(c["out_shift"])), nq)


# -- activations and data movers ---------------------------------------------------------------


def passthrough_quant(ctx: Pow2Context, **consts: Arr) -> NodeQuant:
    """A data-moving / scale-preserving op: an ``out_shift`` only when input and output Q differ."""
    qin = ctx.in_q[0]
    c = dict(consts)
    if qin is not None and q_of(qin) != q_of(ctx.out_q):
        c["out_shift"] = scalar(q_of(qin) - q_of(ctx.out_q))
    return base_nq(ctx, c)


def to_out(y: Arr, nq: NodeQuant) -> Arr:
    """Move codes to the output Q when the node has an ``out_shift``, then store."""
    if "out_shift" in nq.consts:
        y = shift_round(np.asarray(y, np.int64), int(nq.consts["out_shift"]))
    return store(y, nq)


def unit_out(y15: Arr, nq: NodeQuant, negative: Arr | None = None) -> Arr:
    """Q15 magnitudes to the output Q (15 or 7), sign applied after the rounding."""
    y = shift_round(y15, 15 - q_of(nq.out_q))
    if negative is not None:
        y = np.where(negative, -y, y)
    return store(y, nq)


def mover_int(op: Any, node: Node, nq: NodeQuant, *xs: Arr | None) -> list[Arr]:
    """A data mover's integer kernel: ``op``'s own data movement on the codes, then
    ``clip_bits(shift_round(y, out_shift))`` when the output Q differs."""
    ys: list[Arr] = op.run_float(node, *xs)
    if "out_shift" not in nq.consts:
        return ys
    return [to_out(y.astype(np.int64), nq) for y in ys]


# -- C (gen --target c): the calls of nnshell/codegen/runtime/nn_pow2.h ------------------------
# Each op's ``emit_c_pow2`` writes the C call that repeats its ``run_int_pow2`` integer for
# integer; ``ctx`` is a :class:`nnshell.codegen.c_context.CContext`.

#: The C type of a code of each width (bytes).
CTYPE = {1: "int8_t", 2: "int16_t"}


def code_width(ctx: Any, *tensors: str) -> int:
    """The one code width (bytes) of ``tensors``; mixed widths have no kernel."""
    sizes = {ctx.esize(t) for t in tensors}
    if len(sizes) != 1:
        ctx.unsupported(f"tensors {', '.join(tensors)} mix code widths")
    return sizes.pop()


def out_shift(nq: NodeQuant) -> int:
    """The node's ``out_shift`` (0 when its output keeps the input Q)."""
    return int(nq.consts["out_shift"]) if "out_shift" in nq.consts else 0


def act_call(ctx: Any, rows: list[list[Any]], nq: NodeQuant) -> str:
    """``nn_p2_act`` of a standalone activation: ``clip(shift_round(act(x), out_shift))``."""
    x, y = ctx.act_inputs()[0], ctx.node.outputs[0]
    es = code_width(ctx, x, y)
    rows = [[*r, *([0] * (5 - len(r)))] for r in rows]  # every nn_p2act_t field (-Wextra)
    acts = ctx.struct_array("nn_p2act_t", "act", rows)
    return (
        f"nn_p2_act({ctx.ptr(x)}, {ctx.ptr(y)}, {ctx.size(y)}, {es}, {acts}, {len(rows)}, "
        f"{out_shift(nq)});"
    )


def mover_c(op: Any, node: Node, nq: NodeQuant, ctx: Any) -> str:
    """A data mover's C: ``op``'s data movement (its SQ8 C: a copy or a transpose), then the
    output's shift (``nn_p2_act`` in place, no activation)."""
    sq8 = getattr(op, "emit_c", None)
    if sq8 is None:
        ctx.unsupported("no C kernel moves its data")
    code = str(sq8(node, NodeQuant(nq.in_q, nq.out_q), ctx))
    if "out_shift" not in nq.consts:
        return code
    y = node.outputs[0]
    shift = f"nn_p2_act({ctx.ptr(y)}, {ctx.ptr(y)}, {ctx.size(y)}, {ctx.esize(y)}, NULL, 0"
    return f"{code}\n{shift}, {out_shift(nq)});"


__all__ = [
    "CTYPE",
    "act_call",
    "base_nq",
    "bits_of",
    "code_width",
    "float_type",
    "mover_c",
    "mover_int",
    "out_shift",
    "passthrough_quant",
    "pre_shift",
    "quantize_weighted",
    "scalar",
    "split_missing",
    "store",
    "to_out",
    "unit_out",
    "weighted_output",
]


class Pow2Mover:
    """The POW2 hooks of a data-moving op (reshape, transpose, identity, ...), mixed into its
    base class before ``OpDef``: no parameters, the op's own data movement on the codes, then
    ``clip_bits(shift_round(y, out_shift))`` when the output has its own Q."""

    def quantize_pow2(self, ctx: Pow2Context) -> NodeQuant:
        """No parameters, an ``out_shift = q_in - q_out`` when the output has its own Q."""
        return passthrough_quant(ctx)

    def run_int_pow2(self, node: Node, nq: NodeQuant, *xs: Arr | None) -> list[Arr]:
        """The op's float kernel on the codes (exact: it only moves them), then the shift."""
        return mover_int(self, node, nq, *xs)

    def emit_c_pow2(self, node: Node, nq: NodeQuant, ctx: Any) -> str:
        """The op's SQ8 C of the data movement (a copy or a transpose), then ``nn_p2_act`` in
        place for the shift; an op without one (Split, Slice, Gather) has no C kernel."""
        return mover_c(self, node, nq, ctx)


def conv_struct(
    ctx: Any,
    node: Node,
    nq: NodeQuant,
    key: str,
    kernel: Any,
    strides: Any,
    dil: Any,
    pads: Any,
    outs: Any,
) -> str:
    """``&name`` of the ``nn_p2conv_t`` of a conv or transposed conv (``pads``: the conv's
    leading pads, or the transposed conv's crop begins); weights, biases and activations must
    share one code width."""
    c = nq.consts
    x, y = node.inputs[0], node.outputs[0]
    es = code_width(ctx, x, y)
    if c["weights"].dtype.itemsize != es:
        ctx.unsupported("weights and activations have different code widths")
    return str(
        ctx.struct(
            "nn_p2conv_t",
            key,
            [
                *ctx.chw(ctx.shape(x)),
                *ctx.chw((1, c["weights"].shape[0], *outs)),
                *ctx.window(kernel, strides, dil, pads),
                node.attrs.group,
                es,
                int(c["in_shift"]),
                int(c["bias_shift"]),
                int(c["out_shift"]),
                ctx.const("weights", c["weights"], CTYPE[es]),
                ctx.const("bias", c["biases"], CTYPE[es]),
            ],
        )
    )
