"""Data-movement ops: Transpose, Squeeze, Unsqueeze, Concat, Split, Slice, Gather, Tile.

- Transpose: ``y = x.transpose(perm)`` (default perm reverses the axes).
- Squeeze / Unsqueeze: drop / insert size-1 axes (``axes`` attribute before opset 13, constant
  input from 13); the data order never changes.
- Concat: ``y = [x_1 | x_2 | ...]`` along ``axis``; Split is its inverse (``split`` sizes as
  attribute, constant input or ``num_outputs`` equal chunks).
- Slice: ``y = x[starts:ends:steps]`` on ``axes`` (constant attributes or inputs).
- Gather: ``y = take(x, indices, axis)`` with constant indices.
- Tile: ``y = tile(x, repeats)`` with constant repeats (``nn_tile`` in C, rank <= 5).

Every axis refers to the batched ONNX shape; an op that would move, cut or merge the batch axis
(axis 0) is rejected with a ShapeError so a batched run always equals N runs of batch 1.

SQ8: every one but Concat moves codes with the input's qtype (Concat rescales inputs whose
qtype differs). POW2: every one moves codes unchanged (a shift when its output's Q differs);
Concat shifts each input to the output's Q.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nnshell.errors import QuantizationError, ShapeError, UnsupportedOpError
from nnshell.ir import Node, Shape, TensorInfo
from nnshell.ops import _elt, _pow2
from nnshell.ops._batching import (
    const_flags,
    const_input,
    int_list,
    norm_axis,
    reject_batch_axis,
    with_batch,
)
from nnshell.ops._sq8_ext import rescale_int, rescale_params
from nnshell.ops.registry import OpDef, register
from nnshell.ops.reshape import reshape_batched
from nnshell.quant.fixed_pow2 import Pow2Context, q_of, requant
from nnshell.quant.qrecord import NodeQuant, QuantContext


class _Shape(_pow2.Pow2Mover, OpDef):
    kind = "shape"

    # Data movement only: integer codes move like floats, with the input's qtype.
    q_passthrough = True

    def quantize_sq8(self, ctx: QuantContext) -> NodeQuant:
        """No integer parameters: the output keeps the input's qtype."""
        return NodeQuant(list(ctx.in_q), ctx.out_q)

    def run_int(self, node: Node, nq: NodeQuant, *xs: np.ndarray | None) -> list[np.ndarray]:
        """The float kernel moves integer codes exactly (no arithmetic)."""
        if (
            any(x is None for x, i in zip(xs, node.inputs, strict=False) if i)
            and self.name == "Concat"
        ):
            raise QuantizationError(f"{node.name}: Concat of a constant is not quantized")
        return self.run_float(node, *xs)


@dataclass(frozen=True)
class TransposeAttrs:
    """Transpose permutation (None = reverse the axes)."""

    perm: tuple[int, ...] | None = None


@register
class Transpose(_Shape):
    """Permute axes; the batch axis must stay first."""

    name = "Transpose"
    onnx_types = ("Transpose",)
    Attrs = TransposeAttrs

    @staticmethod
    def perm(node: Node, rank: int) -> tuple[int, ...]:
        """Return the effective permutation for a tensor of ``rank``."""
        p = node.attrs.perm
        return tuple(range(rank - 1, -1, -1)) if p is None else tuple(int(v) for v in p)

    def infer(self, node: Node, ins: Sequence[TensorInfo | None]) -> list[Shape]:
        x = ins[0]
        assert x is not None
        perm = self.perm(node, len(x.shape))
        if sorted(perm) != list(range(len(x.shape))):
            raise ShapeError(
                f"{node.name}: perm {perm} is not a permutation of rank {len(x.shape)}"
            )
        if perm and perm[0] != 0:
            raise ShapeError(
                f"{node.name}: Transpose perm {perm} moves the batch axis",
                "only permutations that keep axis 0 first are supported",
            )
        return [tuple(x.shape[p] for p in perm)]

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        x = xs[0]
        assert x is not None
        return [np.ascontiguousarray(x.transpose(self.perm(node, x.ndim)))]

    def emit_c(self, node: Node, nq: NodeQuant, ctx: Any) -> str:
        """``nn_transpose`` (rank <= 5)."""
        return str(ctx.transpose(self.perm(node, len(ctx.shape(node.inputs[0])))))


@dataclass(frozen=True)
class AxesAttrs:
    """Axes attribute of the opset < 13 forms (from 13 the axes are an input)."""

    axes: tuple[int, ...] | None = None


class _Reshaping(_Shape):
    Attrs = AxesAttrs

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        assert xs[0] is not None
        return [reshape_batched(xs[0], node)]

    @staticmethod
    def axes(node: Node, ins: Sequence[TensorInfo | None]) -> tuple[int, ...] | None:
        """Return the axes from the attribute or the constant second input."""
        from_input = int_list(const_input(ins, 1, node, "axes"))
        return from_input if from_input is not None else node.attrs.axes

    def emit_c(self, node: Node, nq: NodeQuant, ctx: Any) -> str:
        """The data order does not change: a copy."""
        return str(ctx.copy())


@register
class Squeeze(_Reshaping):
    """Remove size-1 axes (all non-batch ones when no axes are given)."""

    name = "Squeeze"
    at_alias = True
    onnx_types = ("Squeeze",)

    def infer(self, node: Node, ins: Sequence[TensorInfo | None]) -> list[Shape]:
        x = ins[0]
        assert x is not None
        rank = len(x.shape)
        axes = self.axes(node, ins)
        if axes is None:
            drop = {i for i in range(1, rank) if x.shape[i] == 1}
        else:
            drop = {norm_axis(a, rank, node) for a in axes}
            reject_batch_axis(drop, node, "of")
            bad = [a for a in drop if x.shape[a] != 1]
            if bad:
                raise ShapeError(f"{node.name}: cannot squeeze axes {bad} of shape {x.shape}")
        shape = tuple(d for i, d in enumerate(x.shape) if i not in drop)
        node.meta["out_shape"] = shape
        return [shape]


@register
class Unsqueeze(_Reshaping):
    """Insert size-1 axes at ``axes`` (positions in the output)."""

    name = "Unsqueeze"
    at_alias = True
    onnx_types = ("Unsqueeze",)

    def infer(self, node: Node, ins: Sequence[TensorInfo | None]) -> list[Shape]:
        x = ins[0]
        assert x is not None
        axes = self.axes(node, ins)
        if not axes:
            raise ShapeError(f"{node.name}: Unsqueeze needs axes")
        rank = len(x.shape) + len(axes)
        norm = sorted({norm_axis(a, rank, node) for a in axes})
        if len(norm) != len(axes):
            raise ShapeError(f"{node.name}: repeated Unsqueeze axes {axes}")
        reject_batch_axis(norm, node, "at")
        dims = iter(x.shape)
        shape = tuple(1 if i in norm else next(dims) for i in range(rank))
        node.meta["out_shape"] = shape
        return [shape]


@dataclass(frozen=True)
class AxisAttrs:
    """A single ``axis`` attribute (Concat's ONNX default before opset 4 was 1)."""

    axis: int = 1


def _concat_inputs(ctx: QuantContext | Pow2Context) -> Iterator[tuple[int, Any]]:
    """``(k, qtype)`` of each quantized input of a Concat, in order; a constant input (a
    named input without a qtype) is refused when it is reached."""
    for k, q in enumerate(ctx.in_q):
        if q is None:
            if ctx.node.inputs[k]:
                raise QuantizationError(f"{ctx.node.name}: Concat of a constant is not quantized")
            continue
        yield k, q


def _refuse_const_codes(node: Node, xs: Sequence[np.ndarray | None]) -> None:
    """A Concat's integer run needs codes for every named input (no constant input)."""
    if any(x is None for x, i in zip(xs, node.inputs, strict=False) if i):
        raise QuantizationError(f"{node.name}: Concat of a constant is not quantized")


@register
class Concat(_Shape):  # not a passthrough: its inputs are unified by the quantizer
    """Join inputs along a non-batch axis (constants are repeated over the batch)."""

    q_passthrough = False
    q_ties_inputs = True
    name = "Concat"
    at_const_nodes = True
    onnx_types = ("Concat",)
    Attrs = AxisAttrs

    def infer(self, node: Node, ins: Sequence[TensorInfo | None]) -> list[Shape]:
        present = [t for t in ins if t is not None]
        if not present:
            raise ShapeError(f"{node.name}: Concat needs inputs")
        rank = len(present[0].shape)
        axis = norm_axis(node.attrs.axis, rank, node)
        reject_batch_axis([axis], node, "along")
        for t in present:
            s = t.shape
            if len(s) != rank or any(s[i] != present[0].shape[i] for i in range(rank) if i != axis):
                raise ShapeError(
                    f"{node.name}: cannot concatenate {t.name} {s} with {present[0].shape} "
                    f"on axis {axis}"
                )
            if t.is_const and s[0] != 1:
                raise ShapeError(f"{node.name}: constant {t.name} {s} varies along the batch")
        node.meta["const_inputs"] = const_flags(present)
        shape = list(present[0].shape)
        shape[axis] = sum(t.shape[axis] for t in present)
        return [tuple(shape)]

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        arrs = [x for x in xs if x is not None]
        flags = node.meta.get("const_inputs", (False,) * len(arrs))
        n = max(x.shape[0] for x, c in zip(arrs, flags, strict=True) if not c)
        arrs = [with_batch(x, n, c) for x, c in zip(arrs, flags, strict=True)]
        axis = node.attrs.axis % arrs[0].ndim
        dt = next(x.dtype for x, c in zip(arrs, flags, strict=True) if not c)
        return [np.concatenate([x.astype(dt, copy=False) for x in arrs], axis=axis)]

    def quantize_sq8(self, ctx: QuantContext) -> NodeQuant:
        """No arithmetic when every input already has the output's qtype (SQ8 §5 Concat).

        The quantizer gives all inputs one qtype, but a later Concat reading this one's output
        (DenseNet's chained concatenations) may impose a wider scale on it after the fact; each
        input whose qtype differs from the output's then gets a rescale
        ``clip8(rnorm((x - Zi)·M, N) + Zo)`` (``m = Si/So``), stored as ``in<k>_*`` constants.
        """
        consts: dict[str, np.ndarray] = {}
        for k, q in _concat_inputs(ctx):
            for key, val in rescale_params(q, ctx.out_q, ctx.node.name).items():
                consts[key.replace("rescale", f"in{k}")] = val
        return NodeQuant(list(ctx.in_q), ctx.out_q, consts)

    def run_int(self, node: Node, nq: NodeQuant, *xs: np.ndarray | None) -> list[np.ndarray]:
        """Concatenate the codes (each input rescaled first when its qtype differs)."""
        _refuse_const_codes(node, xs)
        ys = [None if x is None else rescale_int(x, nq.consts, f"in{k}") for k, x in enumerate(xs)]
        return self.run_float(node, *ys)

    def emit_c(self, node: Node, nq: NodeQuant, ctx: Any) -> str:
        """``nn_concat``: copies of contiguous blocks, each input rescaled when asked."""
        return str(ctx.concat(node.attrs.axis % len(ctx.shape(node.outputs[0])), nq.consts))

    # -- POW2 ----------------------------------------------------------------------------------
    def quantize_pow2(self, ctx: Pow2Context) -> NodeQuant:
        """One common Q (the quantizer ties the inputs); a shift per input that differs anyway."""
        shifts = [q_of(q) - q_of(ctx.out_q) for _, q in _concat_inputs(ctx)]
        return _pow2.base_nq(ctx, {"in_shifts": np.array(shifts, np.int64)})

    def run_int_pow2(self, node: Node, nq: NodeQuant, *xs: np.ndarray | None) -> list[np.ndarray]:
        """Concatenate ``clip_bits(shift_round(x_i, in_shifts[i]))``."""
        _refuse_const_codes(node, xs)
        shifts = iter(nq.consts["in_shifts"].tolist())
        ys = [
            None if x is None else requant(x, next(shifts), 0, nq.out_q.bits).astype(nq.out_q.dtype)
            for x in xs
        ]
        return self.run_float(node, *ys)

    def emit_c_pow2(self, node: Node, nq: NodeQuant, ctx: Any) -> str:
        """``nn_p2_concat``: blocks of codes, each input shifted to the output Q."""
        ins, y = ctx.act_inputs(), node.outputs[0]
        if len(ins) != len([i for i in node.inputs if i]):
            ctx.unsupported("a concatenation of constants")
        es = _pow2.code_width(ctx, *ins, y)
        shape = ctx.shape(y)
        axis = node.attrs.axis % len(shape)
        inner = int(np.prod(shape[axis + 1 :]))
        blocks = ctx.const("blocks", np.array([ctx.shape(i)[axis] * inner for i in ins]), "int32_t")
        shifts = ctx.const("shift", nq.consts["in_shifts"], "int8_t")
        ptrs = ", ".join(ctx.ptr(i) for i in ins)
        outer = int(np.prod(shape[:axis]))
        call = f"nn_p2_concat(ins, {len(ins)}, {ctx.ptr(y)}, {blocks}, {shifts}, {outer}, {es});"
        return f"{{\n    const void *const ins[{len(ins)}] = {{{ptrs}}};\n    {call}\n}}"


@dataclass(frozen=True)
class SplitAttrs:
    """Split attributes (``split`` moved to an input in opset 13, ``num_outputs`` came in 18)."""

    axis: int = 0
    split: tuple[int, ...] | None = None
    num_outputs: int | None = None


@register
class Split(_Shape):
    """Cut along a non-batch axis into consecutive parts."""

    name = "Split"
    onnx_types = ("Split",)
    Attrs = SplitAttrs

    def infer(self, node: Node, ins: Sequence[TensorInfo | None]) -> list[Shape]:
        x = ins[0]
        assert x is not None
        a: SplitAttrs = node.attrs
        axis = norm_axis(a.axis, len(x.shape), node)
        reject_batch_axis([axis], node, "along")
        dim = x.shape[axis]
        sizes = int_list(const_input(ins, 1, node, "split"))
        if sizes is None:
            sizes = a.split
        if sizes is None:
            n = a.num_outputs or node.meta.get("n_outputs") or len(node.outputs)
            if not n:
                raise ShapeError(f"{node.name}: Split needs split sizes or an output count")
            chunk = -(-dim // n)
            sizes = tuple(min(chunk, dim - i * chunk) for i in range(n))
        if sum(sizes) != dim or min(sizes) < 0:
            raise ShapeError(f"{node.name}: split sizes {sizes} do not add up to {dim}")
        node.meta["split_sizes"] = tuple(sizes)
        return [tuple(s if i == axis else d for i, d in enumerate(x.shape)) for s in sizes]

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        x = xs[0]
        assert x is not None
        axis = node.attrs.axis % x.ndim
        cuts = np.cumsum(node.meta["split_sizes"])[:-1]
        return list(np.split(x, cuts, axis=axis))

    def emit_c(self, node: Node, nq: NodeQuant, ctx: Any) -> str:
        """One ``nn_slice`` per output (issue 17): the parts are strided copies."""
        x = node.inputs[0]
        parts = _elt.split_slices(node, len(ctx.shape(x)))
        pairs = zip(node.outputs, parts, strict=True)
        return "\n".join(_elt.slice_c(ctx, x, y, s, f"slice{k}") for k, (y, s) in enumerate(pairs))

    def emit_c_pow2(self, node: Node, nq: NodeQuant, ctx: Any) -> str:
        """The copies, then every output's shift when the outputs have their own Q."""
        code = self.emit_c(node, nq, ctx)
        if "out_shift" not in nq.consts:
            return code
        shift = int(nq.consts["out_shift"])
        for y in node.outputs:
            p = ctx.ptr(y)
            code += f"\nnn_p2_act({p}, {p}, {ctx.size(y)}, {ctx.esize(y)}, NULL, 0, {shift});"
        return code


@dataclass(frozen=True)
class SliceAttrs:
    """Slice attributes of opset < 10 (later opsets take constant inputs)."""

    starts: tuple[int, ...] | None = None
    ends: tuple[int, ...] | None = None
    axes: tuple[int, ...] | None = None


def _slice_1d(dim: int, start: int, end: int, step: int) -> slice:
    """Return the Python slice equal to ONNX Slice's clamping rules on one axis."""
    if step == 0:
        raise ValueError("step 0")
    start = start + dim if start < 0 else start
    end = end + dim if end < 0 else end
    if step > 0:
        return slice(min(max(start, 0), dim), min(max(end, 0), dim), step)
    start = min(max(start, 0), dim - 1)
    end = min(max(end, -1), dim - 1)
    return slice(start, None if end < 0 else end, step)


@register
class Slice(_Shape):
    """Crop with constant starts/ends/steps on non-batch axes."""

    name = "Slice"
    onnx_types = ("Slice",)
    Attrs = SliceAttrs

    def infer(self, node: Node, ins: Sequence[TensorInfo | None]) -> list[Shape]:
        x = ins[0]
        assert x is not None
        a: SliceAttrs = node.attrs
        rank = len(x.shape)
        if len(ins) > 1:
            starts = int_list(const_input(ins, 1, node, "starts"))
            ends = int_list(const_input(ins, 2, node, "ends"))
            axes = int_list(const_input(ins, 3, node, "axes"))
            steps = int_list(const_input(ins, 4, node, "steps"))
        else:
            starts, ends, axes, steps = a.starts, a.ends, a.axes, None
        if starts is None or ends is None or len(starts) != len(ends):
            raise ShapeError(f"{node.name}: Slice needs starts and ends of equal length")
        axes = axes if axes is not None else tuple(range(len(starts)))
        steps = steps if steps is not None else (1,) * len(starts)
        sl = [slice(None)] * rank
        for ax, s, e, k in zip(axes, starts, ends, steps, strict=True):
            ax = norm_axis(ax, rank, node)
            if k == 0:
                raise ShapeError(f"{node.name}: Slice step 0")
            if ax == 0:
                if s == 0 and k == 1 and e >= 1 << 30:
                    continue  # the whole batch axis: a no-op
                reject_batch_axis([0], node, "along")
            sl[ax] = _slice_1d(x.shape[ax], s, e, k)
        node.meta["slices"] = tuple(sl)
        shape = tuple(len(range(*s.indices(d))) for s, d in zip(sl, x.shape, strict=True))
        if min(shape, default=1) < 1:
            raise ShapeError(f"{node.name}: Slice gives an empty tensor {shape}")
        return [shape]

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        x = xs[0]
        assert x is not None
        return [np.ascontiguousarray(x[node.meta["slices"]])]

    def emit_c(self, node: Node, nq: NodeQuant, ctx: Any) -> str:
        """``nn_slice`` (issue 17): a strided copy."""
        return _elt.slice_c(ctx, node.inputs[0], node.outputs[0], node.meta["slices"], "slice")


@dataclass(frozen=True)
class GatherAttrs:
    """Gather axis."""

    axis: int = 0


@register
class Gather(_Shape):
    """Pick entries of a non-batch axis with constant indices."""

    name = "Gather"
    onnx_types = ("Gather",)
    Attrs = GatherAttrs

    def infer(self, node: Node, ins: Sequence[TensorInfo | None]) -> list[Shape]:
        x = ins[0]
        assert x is not None
        if x.is_const:
            raise ShapeError(
                f"{node.name}: Gather from a constant with computed indices (embedding lookup) "
                "is not supported"
            )
        idx = const_input(ins, 1, node, "indices")
        assert idx is not None
        axis = norm_axis(node.attrs.axis, len(x.shape), node)
        reject_batch_axis([axis], node, "along")
        dim = x.shape[axis]
        if idx.size and (idx.min() < -dim or idx.max() >= dim):
            raise ShapeError(f"{node.name}: Gather indices out of range for size {dim}")
        return [(*x.shape[:axis], *idx.shape, *x.shape[axis + 1 :])]

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        x, idx = xs[0], xs[1]
        assert x is not None and idx is not None
        return [np.take(x, idx.astype(np.int64), axis=node.attrs.axis % x.ndim)]


@register
class Tile(_Shape):
    """Repeat the input ``repeats[i]`` times along each non-batch axis ``i``.

    A data mover (``_Shape``): the codes are tiled unchanged in SQ8 and POW2 (plus the POW2
    output shift when its Q differs); ``nn_tile`` in C for ranks up to 5.
    """

    name = "Tile"
    onnx_types = ("Tile",)

    def infer(self, node: Node, ins: Sequence[TensorInfo | None]) -> list[Shape]:
        x = ins[0]
        assert x is not None
        if len(ins) > 2:
            raise UnsupportedOpError(
                f"{node.name}: the Tile-1 form (tiles and axis inputs) is not supported"
            )
        reps = int_list(const_input(ins, 1, node, "repeats"))
        if reps is None:
            raise ShapeError(f"{node.name}: Tile needs a repeats input")
        if len(reps) != len(x.shape):
            raise ShapeError(
                f"{node.name}: Tile repeats {reps} do not have one value per axis of {x.shape}"
            )
        if min(reps) < 1:
            raise ShapeError(f"{node.name}: Tile repeats {reps} must be positive")
        if reps[0] != 1:
            reject_batch_axis([0], node, "repeats along")
        node.meta["tile_reps"] = tuple(int(r) for r in reps)
        return [tuple(d * r for d, r in zip(x.shape, reps, strict=True))]

    @staticmethod
    def reps(node: Node, given: np.ndarray | None = None) -> tuple[int, ...]:
        """The repeats: the constant input when given (float run), else those of ``infer``
        (the integer executors pass constants as None)."""
        if given is not None:
            return tuple(int(r) for r in np.asarray(given).reshape(-1))
        return tuple(node.meta["tile_reps"])

    def run_float(self, node: Node, *xs: np.ndarray | None) -> list[np.ndarray]:
        x = xs[0]
        assert x is not None
        reps = self.reps(node, xs[1] if len(xs) > 1 else None)
        return [np.tile(x, (1, *reps[1:]))]

    def emit_c(self, node: Node, nq: NodeQuant, ctx: Any) -> str:
        """``nn_tile`` of a tensor padded to 5-D (its input shape and the repeats)."""
        x, y = node.inputs[0], node.outputs[0]
        shape = ctx.shape(x)
        pad = 5 - len(shape)
        if pad < 0:
            ctx.unsupported("a tile of rank > 5")
        reps = (1,) * pad + (1, *self.reps(node)[1:])
        shape5 = ctx.const("shape", np.array((1,) * pad + shape), "int32_t")
        reps5 = ctx.const("reps", np.array(reps), "int32_t")
        return f"nn_tile({ctx.ptr(x)}, {ctx.ptr(y)}, {shape5}, {reps5}, {ctx.esize(y)});"
