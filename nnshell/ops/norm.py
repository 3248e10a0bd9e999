"""Normalisation layers.

- BatchNormalization (inference): ``y = scale · (x - mean) / √(var + ε) + B`` per channel
  (axis 1), ε = 1e-5 by default. Training mode and the legacy ``spatial=0`` form are rejected.
- LRN (float only): ``y = x / (bias + α/size · Σ_{c' ∈ window(c)} x_{c'}²)^β`` where the window
  covers channels ``c - ⌊(size-1)/2⌋ .. c + ⌈(size-1)/2⌉``.
- InstanceNormalization (float only): ``y = scale · (x - μ) / √(σ² + ε) + B`` where μ and σ²
  are the mean and the (biased) variance of one sample's channel over its spatial axes;
  ``scale`` and ``B`` are constants with one value per channel. Each sample is normalised on
  its own, so a batched run equals N runs of batch 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nnshell.errors import QuantizationError, ShapeError
from nnshell.ir import Node, Shape, TensorInfo
from nnshell.ops import _elt
from nnshell.ops._sq8_ext import affine_int, affine_quantize
from nnshell.ops.registry import OpDef, register
from nnshell.quant.fixed_pow2 import Pow2Context
from nnshell.quant.qrecord import NodeQuant, QuantContext


@dataclass(frozen=True)
class BatchNormAttrs:
    """BatchNormalization attributes that matter at inference time."""

    epsilon: float = 1e-5
    spatial: int = 1
    training_mode: int = 0


@register
class BatchNormalization(OpDef):
    """Inference batch norm: a per-channel affine transform."""

    name = "BatchNormalization"
    onnx_types = ("BatchNormalization",)
    Attrs = BatchNormAttrs
    kind = "norm"
    ignored_attrs = frozenset({"momentum", "is_test", "consumed_inputs"})

    def infer(self, node: Node, ins: Sequence[TensorInfo | None]) -> list[Shape]:
        x = ins[0]
        assert x is not None
        a: BatchNormAttrs = node.attrs
        if a.training_mode:
            raise ShapeError(f"{node.name}: BatchNormalization in training mode is not supported")
        if len(x.shape) < 2:
            raise ShapeError(f"{node.name}: BatchNormalization needs an N×C×... input")
        for i, what in enumerate(("scale", "B", "mean", "var"), start=1):
            t = ins[i] if i < len(ins) else None
            if t is None or t.const is None:
                raise ShapeError(f"{node.name}: BatchNormalization needs a constant {what}")
            if t.const.size != x.shape[1]:
                raise ShapeError(
                    f"{node.name}: {what} has {t.const.size} values for {x.shape[1]} channels"
                    + (" (spatial=0 is not supported)" if not a.spatial else "")
                )
        return [x.shape]

    @staticmethod
    def folded(
        node: Node, scale: np.ndarray, b: np.ndarray, mean: np.ndarray, var: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return the per-channel (multiplier, offset) the normalisation reduces to."""
        inv = scale.astype(np.float32) / np.sqrt(
            var.astype(np.float32) + np.float32(node.attrs.epsilon)
        )
        return inv, b.astype(np.float32) - mean.astype(np.float32) * inv

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        x, scale, b, mean, var = xs[:5]
        assert x is not None and scale is not None and b is not None
        assert mean is not None and var is not None
        c = x.shape[1]
        bshape = (1, c) + (1,) * (x.ndim - 2)
        mul, _ = self.folded(node, scale, b, mean, var)
        # same arithmetic as ``(x - mean) * mul + b``, done in place on one output array
        y = np.subtract(x, mean.reshape(bshape).astype(x.dtype))
        y *= mul.reshape(bshape).astype(x.dtype)
        y += b.reshape(bshape).astype(x.dtype)
        return [y.astype(x.dtype, copy=False)]

    def macs(self, node: Node, ins: Sequence[TensorInfo | None], outs: Sequence[TensorInfo]) -> int:
        return outs[0].size

    # -- SQ8: a BN that could not be folded (after a Concat / MaxPool) -------------------------
    # A per-channel affine: unpadded, so an asymmetric input is fine and the output may be too.
    q_asym_output = True

    def _folded_consts(self, ctx: QuantContext | Pow2Context) -> tuple[np.ndarray, np.ndarray]:
        """The float64 ``(s, t)`` of :meth:`folded` from the node's constant parameters (both
        schemes quantize this per-channel affine)."""
        consts = [ctx.const(i) for i in range(1, 5)]
        if any(c is None for c in consts):
            raise QuantizationError(f"{ctx.node.name}: BatchNormalization parameters not constant")
        scale, b, mean, var = (np.asarray(c) for c in consts)
        mul, add = self.folded(ctx.node, scale, b, mean, var)
        return mul.astype(np.float64), add.astype(np.float64)

    def quantize_sq8(self, ctx: QuantContext) -> NodeQuant:
        """``y[c] = s[c]·x + t[c]`` (``s, t`` from :meth:`folded`) as a depthwise 1×1 conv with
        ``K = 1``: int8 weights ``Wq[c]`` (``Sw[c] = |s[c]|/127``), int32 bias at ``Si·Sw[c]``
        plus the zero-point offsets, ``(M[c], N[c])`` from ``Si·Sw[c]/So`` (SQ8 §3-§4)."""
        return affine_quantize(ctx, *self._folded_consts(ctx))

    def run_int(self, node: Node, nq: NodeQuant, *xs: np.ndarray | None) -> list[np.ndarray]:
        """``clip8(rnorm((x·Wq[c] + bias_total[c])·M[c], N[c]))`` per channel (axis 1)."""
        assert xs[0] is not None
        return [affine_int(xs[0], nq)]

    def emit_c(self, node: Node, nq: NodeQuant, ctx: Any) -> str:
        """The per-channel affine (``nn_affine``)."""
        return str(ctx.affine(nq.consts))

    # -- POW2: the same per-channel affine as a depthwise 1x1 conv (issue 17) ---------------------
    def quantize_pow2(self, ctx: Pow2Context) -> NodeQuant:
        """``y[c] = s[c]·x + t[c]`` with POW2 weights / bias / shifts (``K = 1``, POW2.md)."""
        return _elt.p2_affine_quantize(ctx, 0, *self._folded_consts(ctx))

    def run_int_pow2(self, node: Node, nq: NodeQuant, *xs: np.ndarray | None) -> list[np.ndarray]:
        """``clip(shift_round(x·w[c] + (b[c] << bias_shift), out_shift))`` per channel."""
        assert xs[0] is not None
        return [_elt.p2_affine_int(xs[0], nq)]

    def emit_c_pow2(self, node: Node, nq: NodeQuant, ctx: Any) -> str:
        """``nn_p2_affine``."""
        return _elt.p2_affine_c(node.inputs[0], node.outputs[0], nq, ctx)


@dataclass(frozen=True)
class LRNAttrs:
    """LRN attributes (size is required by ONNX; 0 here means missing)."""

    size: int = 0
    alpha: float = 1e-4
    beta: float = 0.75
    bias: float = 1.0


@register
class LRN(OpDef):
    """Local response normalisation across channels (AlexNet, GoogLeNet)."""

    name = "LRN"
    onnx_types = ("LRN",)
    Attrs = LRNAttrs
    kind = "norm"

    def infer(self, node: Node, ins: Sequence[TensorInfo | None]) -> list[Shape]:
        x = ins[0]
        assert x is not None
        if node.attrs.size < 1:
            raise ShapeError(f"{node.name}: LRN needs a positive 'size'")
        if len(x.shape) < 2:
            raise ShapeError(f"{node.name}: LRN needs an N×C×... input")
        return [x.shape]

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        x = xs[0]
        assert x is not None
        a: LRNAttrs = node.attrs
        before, after = (a.size - 1) // 2, a.size - 1 - (a.size - 1) // 2
        sq = np.square(x)
        widths = [(0, 0), (before, after)] + [(0, 0)] * (x.ndim - 2)
        padded = np.pad(sq, widths)
        c = x.shape[1]
        # window sum over channels [c - before, c + after]: ``size`` shifted slices
        win = padded[:, 0:c].copy()
        for k in range(1, a.size):
            win += padded[:, k : k + c]
        base = np.float32(a.bias) + np.float32(a.alpha / a.size) * win
        return [(x / np.power(base, np.float32(a.beta))).astype(x.dtype, copy=False)]

    def macs(self, node: Node, ins: Sequence[TensorInfo | None], outs: Sequence[TensorInfo]) -> int:
        return outs[0].size * (node.attrs.size + 2)


@dataclass(frozen=True)
class InstanceNormAttrs:
    """InstanceNormalization attribute."""

    epsilon: float = 1e-5


@register
class InstanceNormalization(OpDef):
    """Per-sample, per-channel normalisation over the spatial axes (style transfer, GANs)."""

    name = "InstanceNormalization"
    onnx_types = ("InstanceNormalization",)
    Attrs = InstanceNormAttrs
    kind = "norm"
    ignored_attrs = frozenset({"consumed_inputs"})

    def infer(self, node: Node, ins: Sequence[TensorInfo | None]) -> list[Shape]:
        x = ins[0]
        assert x is not None
        if len(x.shape) < 3:
            raise ShapeError(f"{node.name}: InstanceNormalization needs an N×C×spatial input")
        for i, what in enumerate(("scale", "B"), start=1):
            t = ins[i] if i < len(ins) else None
            if t is None or t.const is None:
                raise ShapeError(f"{node.name}: InstanceNormalization needs a constant {what}")
            if t.const.size != x.shape[1]:
                raise ShapeError(
                    f"{node.name}: {what} has {t.const.size} values for {x.shape[1]} channels"
                )
        return [x.shape]

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        x, scale, b = xs[:3]
        assert x is not None and scale is not None and b is not None
        dt = np.result_type(x.dtype, np.float32)
        x = x.astype(dt, copy=False)
        axes = tuple(range(2, x.ndim))
        bshape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
        y = x - x.mean(axis=axes, keepdims=True)
        var = np.mean(np.square(y), axis=axes, keepdims=True)
        y *= scale.reshape(bshape).astype(dt) / np.sqrt(var + dt.type(node.attrs.epsilon))
        y += b.reshape(bshape).astype(dt)
        return [y]

    def macs(self, node: Node, ins: Sequence[TensorInfo | None], outs: Sequence[TensorInfo]) -> int:
        """Three per element: the mean, the variance and the affine ``(x - μ)·m + B``."""
        return 3 * outs[0].size
