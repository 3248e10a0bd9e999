"""SQ8 integer building blocks shared by conv, linear and their fusions (SQ8.md §3-§6).

``acc[c] = Bq[c] + off[c] + Σ_k Wq[c,k]·Xq[k]`` is computed exactly with float BLAS
(:func:`~nnshell.quant.fixed_point.int_matmul_exact`), then ``y = rnorm(acc·M[c], N[c])`` — the
output zero point is already inside ``off``, so ``y`` is the int8 code before clipping.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nnshell.errors import QuantizationError
from nnshell.ops._conv_kernel import conv_float
from nnshell.quant.fixed_point import (
    int_matmul_exact,
    multiplier_headroom,
    multipliers,
    quantize_bias,
    requant_scale,
    requantize_clip8,
    settle_weak_channels,
    weight_qtype_per_channel,
    zero_point_offset,
)
from nnshell.quant.qrecord import NodeQuant, QuantContext


def quantize_weighted(ctx: QuantContext, w: np.ndarray, b: np.ndarray | None, k: int) -> NodeQuant:
    """Weights, bias, zero-point offset and per-channel (M, N) of a conv or linear layer."""
    name = ctx.node.name
    qin = ctx.in_q[0]
    assert qin is not None
    si, so = float(qin.scale), float(ctx.out_q.scale)
    sw, wq = weight_qtype_per_channel(w, 0, ctx.per_tensor, name)
    bias = np.zeros(w.shape[0]) if b is None else np.asarray(b, np.float64).reshape(-1)
    if not ctx.per_tensor:  # weak/dead channels: exact bias, int32-safe (docs/quantization.md)
        sw, wq, dead = settle_weak_channels(w, sw, bias, si, so, ctx.out_q.zero_point)
        # a dead channel's output is its bias alone: saturate it there rather than overflow
        bias = np.where(dead, np.clip(bias, -512 * so, 512 * so), bias)
    bq = quantize_bias(bias, si, sw, name)
    off = zero_point_offset(wq, qin.zero_point, ctx.out_q.zero_point, so, si, sw)
    m_real = requant_scale(si, sw, so)
    mm, nn = multipliers(m_real, k, name, ctx.mult_bits)
    total = bq.astype(np.int64) + off
    if np.abs(total).max(initial=0) >= 1 << 31:
        raise QuantizationError(f"{name}: bias plus zero-point offset does not fit int32")
    acc_bits, mult_bits = multiplier_headroom(k)
    if ctx.mult_bits > 8:
        mult_bits = ctx.mult_bits
    approx = mm.astype(np.float64) * np.exp2(-nn.astype(np.float64))
    rel = np.abs(approx - m_real) / np.where(m_real > 0, m_real, 1.0)
    return NodeQuant(
        in_q=list(ctx.in_q),
        out_q=ctx.out_q,
        consts={
            "weights": wq,
            "weights_scale": sw,
            "biases": bq.astype(np.int32),
            "bias_total": total.astype(np.int32),
            "mul": mm,
            "shift": nn,
        },
        info={
            "k": k,
            "acc_bits": acc_bits,
            "mult_bits": mult_bits,
            "m_real": m_real,
            "m_rel_err": rel,
        },
    )


def requant_output(acc: np.ndarray, nq: NodeQuant, acc_bound: int | None = None) -> np.ndarray:
    """``clip8(rnorm((acc + bias_total)·M, N))`` with channels on axis 1, as int8.

    ``acc`` may be the exact float accumulator; ``acc_bound`` bounds ``|acc|`` (see
    :func:`~nnshell.quant.fixed_point.requantize_clip8`, which picks int32 arithmetic when it can).
    """
    c = nq.consts
    return requantize_clip8(acc, c["bias_total"], c["mul"], c["shift"], 1, acc_bound)


def _dot_bound(x: np.ndarray, wq: np.ndarray, k: int) -> int:
    """Bound of ``|Σ_k Wq·Xq|`` from the operand types (no pass over the data)."""

    def peak(a: np.ndarray) -> int:
        info = np.iinfo(a.dtype)
        return max(-int(info.min), int(info.max))

    return int(k) * peak(x) * peak(wq)


def linear_int(x: np.ndarray, nq: NodeQuant) -> np.ndarray:
    """Integer linear layer on a batch (input flattened in CHW order)."""
    wq = nq.consts["weights"]
    w2 = wq.reshape(wq.shape[0], -1)
    acc = int_matmul_exact(x.reshape(x.shape[0], -1), w2.T)
    return requant_output(acc, nq, _dot_bound(x, wq, w2.shape[1]))


def _peak(a: np.ndarray) -> int:
    """``max |a|`` of an integer array (one pass; 0 when empty)."""
    return max(-int(a.min()), int(a.max())) if a.size else 0


def exact_conv(x: np.ndarray, wq: np.ndarray, geometry: tuple[Any, ...], group: int) -> np.ndarray:
    """The exact accumulator of an integer convolution, as float32 BLAS wherever it is exact.

    A sum of K products below ``amax·bmax`` each is exact in float32 when ``K·amax·bmax <=
    2^24`` (every partial sum BLAS forms is then a representable integer). Deeper layers
    (ResNet's 3×3 convs over 128+ channels: K >= 1152) split their input channels into slices
    that each meet that bound: each slice is a float32 convolution, and the slices' exact
    integer sums are added in float64 (exact below 2^53). float32 GEMM is about twice float64's
    speed and its column matrix half the memory; the result is the same integers. Grouped
    convolutions whose slices would cross groups keep a single float64 convolution.
    """
    from nnshell.quant.fixed_point import exact_float_dtype

    cg = wq.shape[1]
    per_channel = int(np.prod(wq.shape[2:])) * max(_peak(x), 1) * max(_peak(wq), 1)
    ft = exact_float_dtype(cg, per_channel, 1)
    if ft is np.float32 or group != 1 or per_channel > _F32_EXACT:
        ft = ft or np.float64
        return conv_float(x.astype(ft), wq.astype(ft), None, geometry, group)
    step = -(-cg // -(-cg // (_F32_EXACT // per_channel)))  # equal slices, each exact
    acc = np.zeros((), np.float64)
    for c0 in range(0, cg, step):
        xs = x[:, c0 : c0 + step].astype(np.float32)
        ws = wq[:, c0 : c0 + step].astype(np.float32)
        acc = acc + conv_float(xs, ws, None, geometry, 1)  # exact: |sum| < 2^53
    return acc


#: float32 holds every integer up to 2^24 exactly.
_F32_EXACT = 1 << 24


def pad_zero_point(
    x: np.ndarray, geometry: tuple[Any, ...], zero_point: int
) -> tuple[np.ndarray, tuple[Any, ...]]:
    """``x`` with its explicit pads filled with ``zero_point``, and the geometry without pads.

    Unchanged when nothing is padded or the zero point is 0 (the float kernel pads with 0).
    """
    kernel, strides, dil, pads, outs = geometry
    if not zero_point or not any(pads):
        return x, geometry
    nd = len(kernel)
    widths = [(0, 0), (0, 0)] + [(int(pads[i]), int(pads[nd + i])) for i in range(nd)]
    padded = np.pad(x, widths, constant_values=int(zero_point))
    return padded, (kernel, strides, dil, (0,) * (2 * nd), outs)


def conv_int(
    x: np.ndarray,
    nq: NodeQuant,
    geometry: tuple[Any, ...],
    group: int,
    pre_pool: Any = None,
) -> np.ndarray:
    """Integer convolution: the float kernel run on integer codes in an exact float type.

    Every partial sum of int8×int8 products over K terms is an integer below ``K·128·127``, so
    float32 (K <= 1032) or float64 computes it exactly; reusing the float kernel keeps one
    convolution code path. Padding holds the input zero point Zi (the code of real 0), so
    ``Σ W·(X − Zi)`` — ``bias_total`` carries ``−Zi·ΣW`` — is exact at the borders too
    (:func:`pad_zero_point`; with ``--nntool_padding`` Zi is 0 and this is zero padding).
    ``pre_pool`` (a max pool on the accumulator) runs before the requantization: the
    requantization is monotonic per channel, so max-then-requantize gives the same integers as
    requantize-then-max with a fraction of the work.
    """
    wq = nq.consts["weights"]
    k = int(np.prod(wq.shape[1:]))
    qin = nq.in_q[0] if nq.in_q else None
    x, geometry = pad_zero_point(x, geometry, qin.zero_point if qin is not None else 0)
    acc = exact_conv(x, wq, geometry, group)
    if pre_pool is not None:
        acc = pre_pool(acc)
    return requant_output(acc, nq, _dot_bound(x, wq, k))


def conv_struct(
    ctx: Any,
    key: str,
    x: str,
    outs: Any,
    window: list[int],
    group: int,
    nq: NodeQuant,
    pad: int = 0,
) -> str:
    """The ``nn_conv_t`` of an SQ8 convolution or transposed convolution (the C runtime's one
    struct for both): input and output maps, the ``window`` (``ctx.window``), the group, the
    quantized constants and ``pad``, the code padded positions hold (the input zero point of a
    padded conv); returns its address."""
    c = nq.consts
    return str(
        ctx.struct(
            "nn_conv_t",
            key,
            [
                *ctx.chw(ctx.shape(x)),
                *ctx.chw((1, c["weights"].shape[0], *outs)),
                *window,
                group,
                ctx.const("weights", c["weights"], "int8_t"),
                ctx.const("bias", c["bias_total"], "int32_t"),
                ctx.const("mul", c["mul"], "int32_t"),
                ctx.const("shift", c["shift"], "int8_t"),
                int(pad),
            ],
        )
    )
