"""Broadcasting elementwise arithmetic.

- Add ``y = a + b``, Sub ``y = a - b``, Mul ``y = a · b``, Div ``y = a / b``, Pow ``y = a^b``.
- Sum ``y = Σ x_i``, Max ``y = max_i x_i``, Min ``y = min_i x_i``, Mean ``y = Σ x_i / n``
  (variadic).

Operands follow numpy broadcasting (opset >= 7) or the legacy ``broadcast``/``axis`` rule of
opset < 7 (B's dims aligned at ``axis``). A constant may sit on either side and have fewer dims.
To keep the batch axis apart, every activation operand must have the output's full rank and a
full-rank constant must have 1 on the batch axis.

SQ8 (SQ8.md §5): Add of two equal-shape activations and Sum are the MatAdd kernel (symmetric
inputs and output). Issue 17 (:class:`_Arith`, kernels in :mod:`nnshell.ops._elt`): Add / Sub
of two broadcast activations are a MatAdd with a sign, Mul of two activations NNTool's
``clip8(rnorm((a - Za)·(b - Zb)·M, N) + Zo)``; Add / Sub / Mul / Div by a scalar or per-channel
constant are a per-channel affine (a depthwise 1×1 conv with ``K = 1``, asymmetric input and
output allowed); a constant varying along other axes gets its own qtype and goes through the
broadcasting kernel.
Div of two activations, Pow, Max, Min and Mean have no SQ8 kernel.

POW2: Add and Sum of equal-shape activations align their inputs to the largest Q (exact left
shifts), add, and shift the sum to the output Q (:func:`p2_add_quantize`); broadcasting Add /
Sub / Mul, constant affines and constant operands mirror the SQ8 cases with shifts only.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nnshell.errors import QuantizationError, ShapeError
from nnshell.ir import Node, Shape, TensorInfo
from nnshell.ops import _elt, _pow2
from nnshell.ops._sq8_ext import affine_int, affine_quantize, per_channel_vector
from nnshell.ops.registry import OpDef, register
from nnshell.quant.fixed_point import clip8, multiplier, rnorm
from nnshell.quant.fixed_pow2 import Pow2Context, q_of
from nnshell.quant.qrecord import NodeQuant, QuantContext


@dataclass(frozen=True)
class BinaryAttrs:
    """Legacy (opset < 7) broadcasting attributes; later opsets have none."""

    broadcast: int = 0
    axis: int | None = None


def _legacy_shape(node: Node, a: Shape, b: Shape) -> Shape:
    """Return B's shape padded with trailing 1s per the opset < 7 ``axis`` rule."""
    at: BinaryAttrs = node.attrs
    if not at.broadcast or at.axis is None:
        return b
    axis = at.axis % len(a) if at.axis < 0 else at.axis
    extra = len(a) - axis - len(b)
    if extra < 0:
        raise ShapeError(f"{node.name}: legacy broadcast of {b} at axis {at.axis} into {a}")
    return (*b, *(1,) * extra)


def broadcast_infer(node: Node, shapes: Sequence[Shape], is_const: Sequence[bool]) -> Shape:
    """Return the broadcast output shape, rejecting operands that would mix the batch axis."""
    try:
        out = tuple(int(d) for d in np.broadcast_shapes(*shapes))
    except ValueError:
        raise ShapeError(
            f"{node.name}: shapes {', '.join(map(str, shapes))} do not broadcast"
        ) from None
    for s, c in zip(shapes, is_const, strict=True):
        if not c and len(s) != len(out):
            raise ShapeError(
                f"{node.name}: activation of shape {s} broadcast to {out} would mix the batch axis"
            )
        if c and len(s) == len(out) and s and s[0] != 1:
            raise ShapeError(f"{node.name}: constant of shape {s} varies along the batch axis")
    if any(not c for c in is_const) and out[:1] != (1,):
        raise ShapeError(f"{node.name}: output {out} would mix the batch axis")
    return out


class _Binary(OpDef):
    kind = "elementwise"
    Attrs = BinaryAttrs
    ignored_attrs = frozenset({"consumed_inputs"})
    fn: Callable[[np.ndarray, np.ndarray], np.ndarray]

    def infer(self, node: Node, ins: Sequence[TensorInfo | None]) -> list[Shape]:
        a, b = ins[0], ins[1]
        assert a is not None and b is not None
        shapes = [a.shape, _legacy_shape(node, a.shape, b.shape)]
        node.meta["const_inputs"] = (a.is_const, b.is_const)
        out = broadcast_infer(node, shapes, [a.is_const, b.is_const])
        # issue 17: a constant that varies along more than the channel axis is quantized as an
        # operand of its own (the kernels that read it need symmetric inputs)
        node.meta["const_tensor"] = any(
            c and any(d != 1 for i, d in enumerate((1,) * (len(out) - len(s)) + s) if i != 1)
            for s, c in zip(shapes, (a.is_const, b.is_const), strict=True)
        )
        return [out]

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        a, b = xs[0], xs[1]
        assert a is not None and b is not None
        at: BinaryAttrs = node.attrs
        if at.broadcast and at.axis is not None:
            axis = at.axis % a.ndim if at.axis < 0 else at.axis
            b = b.reshape((*b.shape, *(1,) * (a.ndim - axis - b.ndim)))
        dt = a.dtype if a.dtype.kind == "f" else b.dtype
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            # division by zero and Pow of negatives give inf/nan silently, as onnxruntime does
            y = type(self).fn(a.astype(dt, copy=False), b.astype(dt, copy=False))
        return [y.astype(dt, copy=False)]


# -- SQ8 ------------------------------------------------------------------------------------


def _has_const_operand(node: Node) -> bool:
    """Whether one operand is a constant (recorded by ``infer``; a fused Add has none)."""
    return any(node.meta.get("const_inputs", ()))


def matadd_quantize(ctx: QuantContext, what: str) -> NodeQuant:
    """The MatAdd of SQ8 §5, for two (Add) or more (Sum) symmetric inputs.

    ``j`` is the input with the smallest scale; every other input ``i`` gets ``(Mi, Ni)`` from
    ``Si/Sj`` and the sum ``(Mo, No)`` from ``Sj/So``::

        out = clip8(rnorm((Xj + Σ_i rnorm(Xi·Mi, Ni))·Mo, No))

    With two inputs this is exactly ``clip8(rnorm((Xj + rnorm(Xi·M1, N1))·Mo, No))``, ``i`` the
    input with the larger scale (equal scales give ``M1 = 1, N1 = 0``: no rounding at all).
    """
    name = ctx.node.name
    ins = [q for q in ctx.in_q if q is not None]
    if len(ins) != len([i for i in ctx.node.inputs if i]) or len(ins) < 2:
        raise QuantizationError(
            f"{name}: {what} of a constant and an activation must be one value per channel",
            "only per-channel constants (an affine) are supported",
        )
    if any(q.zero_point for q in ins) or ctx.out_q.zero_point:
        raise QuantizationError(f"{name}: {what} needs symmetric inputs and output")
    scales = np.array([float(q.scale) for q in ins])
    j = int(np.argmin(scales))
    mul = np.zeros(len(ins), np.int64)
    shift = np.zeros(len(ins), np.int64)
    for i, s in enumerate(scales):
        if i != j:
            mul[i], shift[i] = multiplier(s / scales[j], 1, name)
    mo, no = multiplier(scales[j] / float(ctx.out_q.scale), 1, name)
    return NodeQuant(
        list(ctx.in_q),
        ctx.out_q,
        {
            "ref_input": np.array(j, np.int64),
            "in_mul": mul,
            "in_shift": shift,
            "mul": np.array(mo, np.int64),
            "shift": np.array(no, np.int64),
        },
        {"m_in": scales / scales[j], "m_out": scales[j] / float(ctx.out_q.scale)},
    )


def matadd_int(nq: NodeQuant, xs: list[np.ndarray]) -> np.ndarray:
    """``clip8(rnorm((Xj + Σ_{i≠j} rnorm(Xi·Mi, Ni))·Mo, No))`` on broadcast int64 codes."""
    c = nq.consts
    j = int(c["ref_input"])
    acc = xs[j].astype(np.int64)
    for i, x in enumerate(xs):
        if i != j:
            acc = acc + rnorm(x.astype(np.int64) * c["in_mul"][i], c["in_shift"][i])
    return np.asarray(clip8(rnorm(acc * c["mul"], c["shift"]))).astype(np.int8)


def _const_operand(ctx: QuantContext) -> tuple[int, np.ndarray]:
    """``(index, per-channel vector)`` of the constant operand of a binary op."""
    node = ctx.node
    idx = 1 if ctx.const(1) is not None else 0
    v = ctx.const(idx)
    assert v is not None
    x_name = node.inputs[1 - idx]
    if idx == 1:
        v = v.reshape(_legacy_shape(node, ctx.graph.tensors[x_name].shape, v.shape))
    out_shape = ctx.graph.tensors[node.outputs[0]].shape
    return idx, per_channel_vector(v, out_shape, node.name)


def _activation_operand(xs: tuple[np.ndarray | None, ...]) -> np.ndarray:
    """The non-constant operand (the executor passes constants as None)."""
    return next(v for v in xs[:2] if v is not None)


# -- POW2 (Add and Sum) -------------------------------------------------------------------------


def p2_add_quantize(ctx: Pow2Context) -> NodeQuant:
    """Align the inputs to ``q_common = max q_i`` (exact left shifts), sum, shift to ``q_out``."""
    acts = [q for q in ctx.in_q if q is not None]
    if len(acts) != len([i for i in ctx.node.inputs if i]) or len(acts) < 2:
        raise QuantizationError(
            f"{ctx.node.name}: POW2 adds two or more activations only (no constant operand)"
        )
    qs = [q_of(q) for q in acts]
    qc = max(qs)
    return _pow2.base_nq(
        ctx,
        {
            "in_shifts": np.array([qc - q for q in qs], np.int64),
            "out_shift": _pow2.scalar(qc - q_of(ctx.out_q)),
        },
        q_common=qc,
    )


def p2_add_int(nq: NodeQuant, xs: Sequence[np.ndarray | None]) -> np.ndarray:
    """``clip_bits(shift_round(Σ_i (x_i << in_shifts[i]), out_shift))``."""
    acts = [x for x in xs if x is not None]
    sh = nq.consts["in_shifts"]
    acc = sum(np.left_shift(x.astype(np.int64), int(s)) for x, s in zip(acts, sh, strict=True))
    return _pow2.to_out(np.asarray(acc), nq)


def p2_add_c(node: Node, nq: NodeQuant, ctx: Any) -> str:
    """``nn_p2_add`` of same-shaped inputs (no broadcasting in C)."""
    ins, y = ctx.act_inputs(), node.outputs[0]
    if any(ctx.shape(i) != ctx.shape(y) for i in ins):
        ctx.unsupported("a broadcasting add has no C kernel")
    es = _pow2.code_width(ctx, *ins, y)
    shifts = ctx.const("in_shift", nq.consts["in_shifts"], "int8_t")
    ptrs = ", ".join(ctx.ptr(i) for i in ins)
    shift = _pow2.out_shift(nq)
    call = f"nn_p2_add(ins, {len(ins)}, {ctx.ptr(y)}, {shifts}, {shift}, {ctx.size(y)}, {es});"
    return f"{{\n    const void *const ins[{len(ins)}] = {{{ptrs}}};\n    {call}\n}}"


class _Arith(_Binary):
    """Add / Sub / Mul / Div: the quantization hooks they share (issue 17).

    - Two activations: SQ8 MatAdd (Add of equal shapes, SQ8 §5), otherwise the broadcasting
      kernels of :mod:`nnshell.ops._elt` (Add / Sub MatAdd with a sign, Mul
      ``clip8(rnorm((a - Za)·(b - Zb)·M, N) + Zo)``); POW2 ``nn_p2_add`` for an equal-shape Add,
      otherwise the broadcasting ``nn_p2_ew``. Div of two activations has no kernel.
    - An activation and a per-channel or scalar constant: the per-channel affine
      ``y = s[c]·x + t[c]`` (SQ8: ``nn_affine``; POW2: ``nn_p2_affine``) — what stays after the
      normalisation passes folded what they could into a neighbour.
    """

    #: the reason a two-activation kernel needs symmetric inputs (None: it has no such kernel)
    sym_why: str | None = None

    def q_asym(self, node: Node) -> bool:
        """An affine (per-channel constant operand) may have an asymmetric output."""
        return _has_const_operand(node) and not node.meta.get("const_tensor")

    def q_symmetric_input(self, node: Node, idx: int) -> str | None:
        """The two-operand kernels add / multiply codes with no zero-point terms."""
        if _has_const_operand(node) and not node.meta.get("const_tensor"):
            return None
        return self.sym_why or self.name.lower()

    def _const_tensor(self, ctx: QuantContext) -> tuple[int, np.ndarray, str]:
        """``(index, full-rank value, kernel op)`` of a constant that is not per channel; a
        Div by it is a Mul by its reciprocal."""
        idx = 1 if ctx.const(1) is not None else 0
        v = np.asarray(ctx.const(idx), np.float64)
        if idx == 1:
            x_shape = ctx.graph.tensors[ctx.node.inputs[0]].shape
            v = v.reshape(_legacy_shape(ctx.node, x_shape, v.shape))
        rank = len(ctx.graph.tensors[ctx.node.outputs[0]].shape)
        v = v.reshape((1,) * (rank - v.ndim) + v.shape)
        if self.name != "Div":
            return idx, v, self.name
        if idx == 0 or not np.all(v != 0):
            raise QuantizationError(f"{ctx.node.name}: Div by this constant has no kernel")
        return idx, 1.0 / v, "Mul"

    def affine_of(self, idx: int, v: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(scale, shift)`` of ``y = scale·x + shift`` when operand ``idx`` is the constant
        ``v`` (one value per channel)."""
        raise NotImplementedError

    def _affine(self, ctx: QuantContext) -> tuple[int, np.ndarray, np.ndarray]:
        """``(activation index, scale, shift)`` of the constant operand's affine."""
        idx, v = _const_operand(ctx)
        scale, shift = self.affine_of(idx, v, ctx.node.name)
        return 1 - idx, scale, shift

    def _two_activations(
        self,
        ctx: Any,
        scheme: str,
        add: Callable[[Any], NodeQuant],
        binary: Callable[[Any, str], NodeQuant],
    ) -> NodeQuant:
        """Both operands are activations: ``add`` for an equal-shape Add, ``binary`` (the
        broadcasting kernel) otherwise; a Div of two activations has no kernel in either scheme."""
        shapes = {tuple(ctx.graph.tensors[i].shape) for i in ctx.node.inputs[:2]}
        if self.name == "Add" and len(shapes) == 1:
            return add(ctx)
        if self.name == "Div":
            raise QuantizationError(
                f"{ctx.node.name}: Div of two activations has no {scheme} kernel",
                "only a division by a constant (a scale) is supported",
            )
        return binary(ctx, self.name)

    # -- SQ8 ----------------------------------------------------------------------------------
    def quantize_sq8(self, ctx: QuantContext) -> NodeQuant:
        """MatAdd, the broadcasting binary kernel, or the per-channel affine."""
        if ctx.const(0) is None and ctx.const(1) is None:
            add = functools.partial(matadd_quantize, what="add")
            return self._two_activations(ctx, "SQ8", add, _elt.sq8_binary_quantize)
        if ctx.node.meta.get("const_tensor"):
            return _elt.const_operand_sq8(ctx, *self._const_tensor(ctx))
        xi, scale, shift = self._affine(ctx)
        sub = dataclasses.replace(ctx, in_q=[ctx.in_q[xi]])
        nq = affine_quantize(sub, scale, shift)
        nq.in_q = list(ctx.in_q)
        nq.info["kernel"] = f"{self.name.lower()} by a per-channel constant (affine)"
        return nq

    def run_int(self, node: Node, nq: NodeQuant, *xs: np.ndarray | None) -> list[np.ndarray]:
        """The integer kernel :meth:`quantize_sq8` chose."""
        if "weights" in nq.consts:
            return [affine_int(_activation_operand(xs), nq)]
        a, b = _elt.with_const(nq, xs)
        if "ew_op" in nq.consts:
            return [_elt.sq8_binary_int(nq, a, b)]
        return [matadd_int(nq, [a, b])]

    def emit_c(self, node: Node, nq: NodeQuant, ctx: Any) -> str:
        """``nn_affine``, ``nn_ew_sq8`` or ``nn_matadd``."""
        if "weights" in nq.consts:
            return str(ctx.affine(nq.consts))
        if "ew_op" in nq.consts:
            return _elt.sq8_binary_c(node, nq, ctx)
        return str(ctx.matadd(nq.consts))

    # -- POW2 ---------------------------------------------------------------------------------
    def quantize_pow2(self, ctx: Pow2Context) -> NodeQuant:
        """``nn_p2_add`` (equal-shape Add), the broadcasting binary, or the channel affine."""
        if ctx.const(0) is None and ctx.const(1) is None:
            return self._two_activations(ctx, "POW2", p2_add_quantize, _elt.p2_binary_quantize)
        if ctx.node.meta.get("const_tensor"):
            return _elt.const_operand_pow2(ctx, *self._const_tensor(ctx))
        xi, scale, shift = self._affine(ctx)
        return _elt.p2_affine_quantize(ctx, xi, scale, shift)

    def run_int_pow2(self, node: Node, nq: NodeQuant, *xs: np.ndarray | None) -> list[np.ndarray]:
        """The integer kernel :meth:`quantize_pow2` chose."""
        if "weights" in nq.consts:
            return [_elt.p2_affine_int(_activation_operand(xs), nq)]
        a, b = _elt.with_const(nq, xs)
        if "ew_op" in nq.consts:
            return [_elt.p2_binary_int(nq, a, b)]
        return [p2_add_int(nq, xs)]

    def emit_c_pow2(self, node: Node, nq: NodeQuant, ctx: Any) -> str:
        """``nn_p2_affine``, ``nn_p2_ew`` or ``nn_p2_add``."""
        if "weights" in nq.consts:
            return _elt.p2_affine_c(ctx.act_inputs()[0], node.outputs[0], nq, ctx)
        if "ew_op" in nq.consts:
            return _elt.p2_binary_c(node, nq, ctx)
        return p2_add_c(node, nq, ctx)


@register
class Add(_Arith):
    """Addition (residual joins, bias adds)."""

    name = "Add"
    at_generator = "matadd"
    at_const_nodes = True
    onnx_types = ("Add",)
    fn = staticmethod(np.add)
    sym_why = "add"

    def affine_of(self, idx: int, v: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``x + t = 1·x + t``."""
        return np.ones_like(v), v


@register
class Sub(_Arith):
    """Subtraction."""

    name = "Sub"
    at_const_nodes = True
    onnx_types = ("Sub",)
    fn = staticmethod(np.subtract)
    sym_why = "sub"

    def affine_of(self, idx: int, v: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``x - t = 1·x - t``; ``t - x = -1·x + t``."""
        return (np.ones_like(v), -v) if idx == 1 else (-np.ones_like(v), v)


@register
class Mul(_Arith):
    """Multiplication (scales, gates)."""

    name = "Mul"
    at_const_nodes = True
    onnx_types = ("Mul",)
    fn = staticmethod(np.multiply)
    sym_why = "mul"

    def q_asym(self, node: Node) -> bool:
        """The affine and ``clip8(rnorm((a - Za)·(b - Zb)·M, N) + Zo)`` both take zero points."""
        return True

    def q_symmetric_input(self, node: Node, idx: int) -> str | None:
        """No requirement: the product subtracts the inputs' zero points."""
        return None

    def affine_of(self, idx: int, v: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``s·x = s·x + 0``."""
        return v, np.zeros_like(v)


@register
class Div(_Arith):
    """Division."""

    name = "Div"
    onnx_types = ("Div",)
    fn = staticmethod(np.divide)

    def affine_of(self, idx: int, v: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``x / c = (1/c)·x``; a constant divided by an activation is not affine."""
        if idx == 0:
            raise QuantizationError(f"{name}: a constant divided by an activation has no kernel")
        if not np.all(np.isfinite(1.0 / np.where(v == 0, np.nan, v))):
            raise QuantizationError(f"{name}: division by zero")
        return 1.0 / v, np.zeros_like(v)


@register
class Pow(_Binary):
    """Power (usually with a constant exponent such as 2 or 0.5)."""

    name = "Pow"
    onnx_types = ("Pow",)
    fn = staticmethod(np.power)


class _Variadic(OpDef):
    kind = "elementwise"
    ignored_attrs = frozenset({"consumed_inputs"})
    fn: Callable[[np.ndarray, np.ndarray], np.ndarray]

    def infer(self, node: Node, ins: Sequence[TensorInfo | None]) -> list[Shape]:
        present = [t for t in ins if t is not None]
        if not present:
            raise ShapeError(f"{node.name}: {self.name} needs at least one input")
        shapes = [t.shape for t in present]
        node.meta["const_inputs"] = tuple(t.is_const for t in present)
        return [broadcast_infer(node, shapes, [t.is_const for t in present])]

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        arrs = [x for x in xs if x is not None]
        dt = next((x.dtype for x in arrs if x.dtype.kind == "f"), arrs[0].dtype)
        y = arrs[0].astype(dt, copy=False)
        for x in arrs[1:]:
            y = type(self).fn(y, x.astype(dt, copy=False))
        return [self.finish(y, len(arrs)).astype(dt, copy=False)]

    def finish(self, y: np.ndarray, n: int) -> np.ndarray:
        """Post-process the reduction over the ``n`` inputs (identity except for Mean)."""
        return y


@register
class Sum(_Variadic):
    """Sum of any number of inputs (ResNet residual joins in Caffe2 exports)."""

    name = "Sum"
    onnx_types = ("Sum",)
    fn = staticmethod(np.add)

    def q_symmetric_input(self, node: Node, idx: int) -> str | None:
        """The n-input MatAdd adds codes with no zero-point terms: inputs symmetric."""
        return "sum"

    def quantize_sq8(self, ctx: QuantContext) -> NodeQuant:
        """The MatAdd of :func:`matadd_quantize` over all inputs (one rescale per input that
        is not the smallest-scale one, one output requantization); constants are refused."""
        return matadd_quantize(ctx, "sum")

    def run_int(self, node: Node, nq: NodeQuant, *xs: np.ndarray | None) -> list[np.ndarray]:
        """``clip8(rnorm((Xj + Σ_{i≠j} rnorm(Xi·Mi, Ni))·Mo, No))``."""
        return [matadd_int(nq, [x for x in xs if x is not None])]

    def emit_c(self, node: Node, nq: NodeQuant, ctx: Any) -> str:
        """The n-input MatAdd (``nn_matadd``)."""
        return str(ctx.matadd(nq.consts))

    # -- POW2: the Add of :func:`p2_add_quantize` over every input ------------------------------
    def quantize_pow2(self, ctx: Pow2Context) -> NodeQuant:
        """``in_shifts = q_common - q_i`` (``q_common = max q_i``), ``out_shift = q_common -
        q_out``; constants are refused."""
        return p2_add_quantize(ctx)

    def run_int_pow2(self, node: Node, nq: NodeQuant, *xs: np.ndarray | None) -> list[np.ndarray]:
        """``clip_bits(shift_round(Σ_i (x_i << in_shifts[i]), out_shift))``."""
        return [p2_add_int(nq, xs)]

    def emit_c_pow2(self, node: Node, nq: NodeQuant, ctx: Any) -> str:
        """``nn_p2_add`` of same-shaped inputs."""
        return p2_add_c(node, nq, ctx)


@register
class Max(_Variadic):
    """Elementwise maximum."""

    name = "Max"
    onnx_types = ("Max",)
    fn = staticmethod(np.maximum)


@register
class Min(_Variadic):
    """Elementwise minimum."""

    name = "Min"
    onnx_types = ("Min",)
    fn = staticmethod(np.minimum)


@register
class Mean(_Variadic):
    """Elementwise mean."""

    name = "Mean"
    onnx_types = ("Mean",)
    fn = staticmethod(np.add)

    def finish(self, y: np.ndarray, n: int) -> np.ndarray:
        return y / np.asarray(n, dtype=y.dtype)
