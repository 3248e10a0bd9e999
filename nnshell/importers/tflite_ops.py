"""The TFLite operator handlers: one function per TFLite builtin operator (or group of them),
each emitting the IR nodes of one operator through the importer state of ``tflite_reader``.
``HANDLERS`` is their table by TFLite operator name (``help tflite`` lists it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from nnshell.errors import UnsupportedOpError
from nnshell.importers.tflite_reader import (
    ACT_NONE,
    TO_CHW,
    TO_HWC,
    Handler,
    Importer,
    Value,
    same_pads,
)

# -- handlers: one per TFLite operator ---------------------------------------------------------
HANDLERS: dict[str, Handler] = {}


def _handles(*names: str) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        for n in names:
            HANDLERS[n] = fn
        return fn

    return deco


def _padding(
    imp: Importer,
    opt: Any,
    hw: tuple[int, int],
    k: tuple[int, int],
    s: tuple[int, int],
    d: tuple[int, int],
) -> tuple[int, int, int, int]:
    if opt.Padding() == imp.tfl.Padding.SAME:
        (t, b), (lft, r) = (same_pads(hw[j], k[j], s[j], d[j]) for j in range(2))
        return (t, lft, b, r)
    return (0, 0, 0, 0)


def _bias(imp: Importer, ins: list[int], n_out: int, name: str) -> str:
    b = imp.const(ins[2]) if len(ins) > 2 and ins[2] >= 0 else None
    return imp.add_const(
        f"{name}_biases", (b if b is not None else np.zeros(n_out)).astype(np.float32)
    )


@_handles("CONV_2D", "DEPTHWISE_CONV_2D")
def _conv(imp: Importer, name: str, op: Any, ins: list[int], outs: list[int]) -> None:
    depthwise = name.startswith("DEPTHWISE_CONV_2D")
    opt = imp.options(op, "DepthwiseConv2DOptions" if depthwise else "Conv2DOptions")
    w = imp.const(ins[1])
    if w is None:
        raise UnsupportedOpError("weights must be constant")
    x = imp.value(ins[0], True)
    cin = imp.graph.tensors[x].shape[1]
    if depthwise:
        w_ir = np.ascontiguousarray(w[0].transpose(2, 0, 1)[:, None])  # (C*m, 1, kh, kw)
        group = cin
    else:
        w_ir = np.ascontiguousarray(w.transpose(0, 3, 1, 2))  # OHWI -> OIHW
        group = cin // w_ir.shape[1]
    k = (int(w_ir.shape[2]), int(w_ir.shape[3]))
    s = (int(opt.StrideH()), int(opt.StrideW()))
    d = (int(opt.DilationHFactor()) or 1, int(opt.DilationWFactor()) or 1)
    hw = tuple(imp.graph.tensors[x].shape[2:4])
    pads = _padding(imp, opt, hw, k, s, d)  # type: ignore[arg-type]
    wname = imp.add_const(f"{name}_weights", w_ir.astype(np.float32))
    bname = _bias(imp, ins, w_ir.shape[0], name)
    y = imp.emit(
        "Conv",
        name,
        [x, wname, bname],
        {"kernel_shape": k, "strides": s, "dilations": d, "pads": pads, "group": group},
    )[0]
    imp.quant_weights(name, ins)
    imp.set_out(outs[0], imp.activation(name, y, opt.FusedActivationFunction()), True)


@_handles("FULLY_CONNECTED")
def _fc(imp: Importer, name: str, op: Any, ins: list[int], outs: list[int]) -> None:
    opt = imp.options(op, "FullyConnectedOptions")
    w = imp.const(ins[1])
    if w is None or w.ndim != 2:
        raise UnsupportedOpError("weights must be a 2-D constant")
    x = imp.value(ins[0], False)
    shape = imp.graph.tensors[x].shape
    if opt is not None and opt.KeepNumDims() and len(shape) > 2:
        raise UnsupportedOpError("keep_num_dims on a tensor of rank > 2")
    if len(shape) != 2 or shape[1] != w.shape[1]:
        shp = imp.add_const(f"{name}_shape", np.array([-1, w.shape[1]], np.int64))
        x = imp.emit("Reshape", f"{name}_reshape", [x, shp])[0]
    wname = imp.add_const(f"{name}_weights", w.astype(np.float32))
    bname = _bias(imp, ins, w.shape[0], name)
    y = imp.emit("Gemm", name, [x, wname, bname], {"transB": 1})[0]
    imp.quant_weights(name, ins)
    act = opt.FusedActivationFunction() if opt is not None else ACT_NONE
    imp.set_out(outs[0], imp.activation(name, y, act), False)


@_handles("AVERAGE_POOL_2D", "MAX_POOL_2D")
def _pool(imp: Importer, name: str, op: Any, ins: list[int], outs: list[int]) -> None:
    opt = imp.options(op, "Pool2DOptions")
    x = imp.value(ins[0], True)
    k = (int(opt.FilterHeight()), int(opt.FilterWidth()))
    s = (int(opt.StrideH()), int(opt.StrideW()))
    hw = tuple(imp.graph.tensors[x].shape[2:4])
    pads = _padding(imp, opt, hw, k, s, (1, 1))  # type: ignore[arg-type]
    average = name.startswith("AVERAGE")
    kind = "AveragePool" if average else "MaxPool"
    attrs: dict[str, Any] = {"kernel_shape": k, "strides": s, "pads": pads}
    if average:
        attrs["count_include_pad"] = 0  # TFLite averages the pixels inside the image only
    y = imp.emit(kind, name, [x], attrs)[0]
    imp.set_out(outs[0], imp.activation(name, y, opt.FusedActivationFunction()), True)


def _axis_chw(axis: int, rank: int) -> int:
    """The channel-first position of NHWC axis ``axis`` of a 4-D tensor."""
    axis = axis + rank if axis < 0 else axis
    return {0: 0, 1: 2, 2: 3, 3: 1}[axis]


@_handles("MEAN")
def _mean(imp: Importer, name: str, op: Any, ins: list[int], outs: list[int]) -> None:
    opt = imp.options(op, "ReducerOptions")
    axes = [int(a) for a in imp.int_const(ins[1], "axes", name).reshape(-1)]
    keep = bool(opt.KeepDims()) if opt is not None else False
    v = imp.values[ins[0]]
    rank = len(imp.graph.tensors[v.name].shape)
    axes = sorted({a + rank if a < 0 else a for a in axes})
    chw = v.chw and rank == 4 and (keep or axes == [1, 2])
    x = imp.value(ins[0], bool(chw))
    ir_axes = tuple(sorted(_axis_chw(a, 4) for a in axes)) if chw else tuple(axes)
    if chw and ir_axes == (2, 3):
        # a global average pool (NNTool's mapping too): it has SQ8 and C kernels
        pooled = y = imp.emit("GlobalAveragePool", name, [x])[0]
        if not keep:
            y = imp.emit("Flatten", f"{name}_flatten", [y], {"axis": 1})[0]
        imp.set_out(outs[0], y, keep)
        if y in imp.quant:  # fusions may drop the flatten: the pool's output has the same codes
            imp.quant[pooled] = imp.quant[y]
        return
    y = imp.emit("ReduceMean", name, [x], {"axes": ir_axes, "keepdims": int(keep)})[0]
    imp.set_out(outs[0], y, chw and keep)


@_handles("PAD", "PADV2")
def _pad(imp: Importer, name: str, op: Any, ins: list[int], outs: list[int]) -> None:
    pads = imp.int_const(ins[1], "paddings", name).reshape(-1, 2)
    v = imp.values.get(ins[0])
    chw = v is not None and v.chw and pads.shape[0] == 4
    x = imp.value(ins[0], True if chw else None if v is None else False)
    if chw:
        pads = pads[list(TO_CHW)]
    value = 0.0
    if len(ins) > 2 and ins[2] >= 0:
        c = imp.const(ins[2])
        value = float(c.reshape(-1)[0]) if c is not None else 0.0
    pname = imp.add_const(f"{name}_pads", np.concatenate([pads[:, 0], pads[:, 1]]).astype(np.int64))
    cname = imp.add_const(f"{name}_value", np.array([value], np.float32))
    y = imp.emit("Pad", name, [x, pname, cname])[0]
    imp.set_out(outs[0], y, chw)


@_handles("RESHAPE", "SQUEEZE", "EXPAND_DIMS")
def _reshape(imp: Importer, name: str, op: Any, ins: list[int], outs: list[int]) -> None:
    x = imp.value(ins[0], False)
    shape = imp.shape(outs[0])
    if not shape:
        raise UnsupportedOpError("a scalar output")
    sname = imp.add_const(f"{name}_shape", np.array(shape, np.int64))
    imp.set_out(outs[0], imp.emit("Reshape", name, [x, sname])[0], False)


@_handles("TRANSPOSE")
def _transpose(imp: Importer, name: str, op: Any, ins: list[int], outs: list[int]) -> None:
    perm = tuple(int(p) for p in imp.int_const(ins[1], "perm", name).reshape(-1))
    v = imp.values.get(ins[0])
    if v is not None and v.chw and len(perm) == 4:
        # x_hwc = T_HWC(x_chw): compose so the node reads the channel-first tensor directly
        perm = tuple(TO_HWC[p] for p in perm)
        x = v.name
    else:
        x = imp.value(ins[0], False)
    imp.set_out(outs[0], imp.emit("Transpose", name, [x], {"perm": perm})[0], False)


@_handles("STRIDED_SLICE")
def _strided_slice(imp: Importer, name: str, op: Any, ins: list[int], outs: list[int]) -> None:
    opt = imp.options(op, "StridedSliceOptions")
    if opt is not None and (opt.EllipsisMask() or opt.NewAxisMask()):
        raise UnsupportedOpError("ellipsis and new-axis masks")
    begin = imp.int_const(ins[1], "begin", name).reshape(-1)
    end = imp.int_const(ins[2], "end", name).reshape(-1)
    steps = imp.int_const(ins[3], "strides", name).reshape(-1)
    bm = opt.BeginMask() if opt is not None else 0
    em = opt.EndMask() if opt is not None else 0
    shrink = opt.ShrinkAxisMask() if opt is not None else 0
    n = len(begin)
    starts, ends = [], []
    big = (1 << 31) - 1
    for a in range(n):
        st, en = int(begin[a]), int(end[a])
        if shrink >> a & 1:
            en = st + 1 if st != -1 else big
        if bm >> a & 1:
            st = 0 if steps[a] > 0 else big
        if em >> a & 1 and not shrink >> a & 1:
            en = big if steps[a] > 0 else -big
        starts.append(st)
        ends.append(en)
    v = imp.values.get(ins[0])
    chw = v is not None and v.chw and n == 4 and not shrink
    axes = [_axis_chw(a, 4) for a in range(n)] if chw else list(range(n))
    x = imp.value(ins[0], bool(chw))
    keep = [a for a in range(n) if not (axes[a] == 0 and starts[a] == 0 and steps[a] == 1)]
    consts = [
        imp.add_const(f"{name}_{w}", np.array([vals[a] for a in keep], np.int64))
        for w, vals in (("starts", starts), ("ends", ends), ("axes", axes), ("steps", steps))
    ]
    y = imp.emit("Slice", name, [x, *consts])[0]
    if shrink:
        sname = imp.add_const(f"{name}_shape", np.array(imp.shape(outs[0]) or (1,), np.int64))
        y = imp.emit("Reshape", f"{name}_shrink", [y, sname])[0]
    imp.set_out(outs[0], y, chw)


def _layout_of(imp: Importer, ins: list[int]) -> bool:
    """Whether a layout-free op on ``ins`` should run channel-first: every activation is 4-D
    and at least one is channel-first already."""
    acts = [
        i for i in ins if i in imp.values and not imp.graph.tensors[imp.values[i].name].is_const
    ]
    return (
        bool(acts) and all(imp.is4d_act(i) for i in acts) and any(imp.values[i].chw for i in acts)
    )


def _const_operand(imp: Importer, idx: int, chw: bool, name: str) -> str:
    """A constant operand of a binary op, broadcast-compatible with the chosen layout."""
    arr = imp.const(idx)
    assert arr is not None
    if chw:
        arr = arr.reshape((1,) * (4 - arr.ndim) + arr.shape).transpose(TO_CHW)
    return imp.add_const(name, np.ascontiguousarray(arr.astype(np.float32)))


@_handles("CONCATENATION")
def _concat(imp: Importer, name: str, op: Any, ins: list[int], outs: list[int]) -> None:
    opt = imp.options(op, "ConcatenationOptions")
    rank = len(imp.shape(outs[0]))
    axis = int(opt.Axis())
    axis = axis + rank if axis < 0 else axis
    chw = rank == 4 and _layout_of(imp, ins)
    xs = [
        imp.value(i, chw) if i in imp.values else _const_operand(imp, i, chw, f"{name}_in")
        for i in ins
    ]
    y = imp.emit("Concat", name, xs, {"axis": _axis_chw(axis, 4) if chw else axis})[0]
    imp.set_out(outs[0], imp.activation(name, y, opt.FusedActivationFunction()), chw)


@_handles("SPLIT", "SPLIT_V")
def _split(imp: Importer, name: str, op: Any, ins: list[int], outs: list[int]) -> None:
    if name.startswith("SPLIT_V"):
        x_idx, sizes, axis = ins[0], imp.int_const(ins[1], "size_splits", name), ins[2]
        axis_v = int(imp.int_const(axis, "axis", name).reshape(-1)[0])
    else:
        x_idx, sizes = ins[1], None
        axis_v = int(imp.int_const(ins[0], "axis", name).reshape(-1)[0])
    rank = len(imp.shape(x_idx))
    axis_v = axis_v + rank if axis_v < 0 else axis_v
    chw = rank == 4 and _layout_of(imp, [x_idx])
    x = imp.value(x_idx, chw)
    ir_axis = _axis_chw(axis_v, 4) if chw else axis_v
    inputs = [x]
    if sizes is not None:
        if (sizes < 0).any():
            raise UnsupportedOpError("a size of -1")
        inputs.append(imp.add_const(f"{name}_split", sizes.reshape(-1).astype(np.int64)))
    ys = imp.emit("Split", name, inputs, {"axis": ir_axis}, n_out=len(outs))
    for o, y in zip(outs, ys, strict=True):
        imp.set_out(o, y, chw)


@_handles("ADD", "SUB", "MUL")
def _binary(imp: Importer, name: str, op: Any, ins: list[int], outs: list[int]) -> None:
    kind = name.split("_")[0]
    opt = imp.options(op, {"ADD": "AddOptions", "SUB": "SubOptions", "MUL": "MulOptions"}[kind])
    rank = len(imp.shape(outs[0]))
    chw = rank == 4 and _layout_of(imp, ins)
    xs = [
        imp.value(i, chw) if i in imp.values else _const_operand(imp, i, chw, f"{name}_const")
        for i in ins
    ]
    if kind == "SUB" and len(ins) == 2 and ins[1] not in imp.values:
        # x - c is x + (-c): SQ8 has an add-a-constant kernel, no subtract
        c = imp.graph.tensors[xs[1]].const
        assert c is not None
        xs[1] = imp.add_const(f"{name}_const", np.negative(c))
        kind = "ADD"
    y = imp.emit(kind.capitalize(), name, xs)[0]
    act = opt.FusedActivationFunction() if opt is not None else ACT_NONE
    imp.set_out(outs[0], imp.activation(name, y, act), chw)


@_handles("MAXIMUM", "MINIMUM")
def _max_min(imp: Importer, name: str, op: Any, ins: list[int], outs: list[int]) -> None:
    """Elementwise max / min of two operands (numpy broadcasting), as ONNX Max / Min."""
    rank = len(imp.shape(outs[0]))
    chw = rank == 4 and _layout_of(imp, ins)
    xs = [
        imp.value(i, chw) if i in imp.values else _const_operand(imp, i, chw, f"{name}_const")
        for i in ins
    ]
    kind = "Max" if name.startswith("MAXIMUM") else "Min"
    imp.set_out(outs[0], imp.emit(kind, name, xs)[0], chw)


@_handles("SOFTMAX")
def _softmax(imp: Importer, name: str, op: Any, ins: list[int], outs: list[int]) -> None:
    opt = imp.options(op, "SoftmaxOptions")
    if opt is not None and abs(float(opt.Beta()) - 1.0) > 1e-6:
        raise UnsupportedOpError(f"beta {opt.Beta()} (only 1)")
    v = imp.values[ins[0]]
    chw = v.chw and imp.is4d_act(ins[0])
    axis = 1 if chw else -1
    imp.set_out(outs[0], imp.emit("Softmax", name, [v.name], {"axis": axis})[0], chw)


def _unary(
    onnx_type: str, attrs: Callable[[Importer, Any], dict[str, Any]] | None = None
) -> Handler:
    def handler(imp: Importer, name: str, op: Any, ins: list[int], outs: list[int]) -> None:
        v = imp.values.get(ins[0])
        x = imp.value(ins[0])
        a = attrs(imp, op) if attrs is not None else {}
        imp.set_out(outs[0], imp.emit(onnx_type, name, [x], a)[0], bool(v and v.chw))

    return handler


HANDLERS.update(
    {
        "LOGISTIC": _unary("Sigmoid"),
        "TANH": _unary("Tanh"),
        "RELU": _unary("Relu"),
        "RELU6": _unary("Clip", lambda imp, op: {"min": 0.0, "max": 6.0}),
        "RELU_N1_TO_1": _unary("Clip", lambda imp, op: {"min": -1.0, "max": 1.0}),
        "HARD_SWISH": _unary("HardSwish"),
        "LEAKY_RELU": _unary(
            "LeakyRelu",
            lambda imp, op: {"alpha": float(imp.options(op, "LeakyReluOptions").Alpha())},
        ),
    }
)


@_handles("RESIZE_NEAREST_NEIGHBOR")
def _resize_nearest(imp: Importer, name: str, op: Any, ins: list[int], outs: list[int]) -> None:
    opt = imp.options(op, "ResizeNearestNeighborOptions")
    size = imp.int_const(ins[1], "size", name).reshape(-1)
    x = imp.value(ins[0], True)
    n, c = imp.graph.tensors[x].shape[:2]
    align = bool(opt.AlignCorners()) if opt is not None else False
    half = bool(opt.HalfPixelCenters()) if opt is not None else False
    if align:
        attrs = {
            "coordinate_transformation_mode": "align_corners",
            "nearest_mode": "round_prefer_ceil",
        }
    elif half:
        attrs = {"coordinate_transformation_mode": "tf_half_pixel_for_nn", "nearest_mode": "floor"}
    else:
        attrs = {"coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}
    sizes = imp.add_const(f"{name}_sizes", np.array([n, c, *size[:2]], np.int64))
    y = imp.emit("Resize", name, [x, "", "", sizes], attrs)[0]
    imp.set_out(outs[0], y, True)


@_handles("RESIZE_BILINEAR")
def _resize_bilinear(imp: Importer, name: str, op: Any, ins: list[int], outs: list[int]) -> None:
    """ONNX Resize in linear mode: TFLite's source coordinate ``(i+½)·L/O − ½`` (half-pixel
    centres), ``i·(L−1)/(O−1)`` (align corners) or ``i·L/O`` is ONNX's ``half_pixel``,
    ``align_corners`` or ``asymmetric``, and TFLite's clamping of the two taps to the image is
    ONNX's clamping of the coordinate (same taps, same weights) — so the quantized Resize
    kernels (SQ8, POW2, C) serve TFLite files too."""
    opt = imp.options(op, "ResizeBilinearOptions")
    size = imp.int_const(ins[1], "size", name).reshape(-1)
    x = imp.value(ins[0], True)
    n, c = imp.graph.tensors[x].shape[:2]
    if opt is not None and opt.AlignCorners():
        ctm = "align_corners"
    elif opt is not None and opt.HalfPixelCenters():
        ctm = "half_pixel"
    else:
        ctm = "asymmetric"
    sizes = imp.add_const(f"{name}_sizes", np.array([n, c, *size[:2]], np.int64))
    attrs = {"mode": "linear", "coordinate_transformation_mode": ctm}
    imp.set_out(outs[0], imp.emit("Resize", name, [x, "", "", sizes], attrs)[0], True)


@_handles("QUANTIZE", "DEQUANTIZE")
def _quantize(imp: Importer, name: str, op: Any, ins: list[int], outs: list[int]) -> None:
    """Real values do not change: the output is the input (its quantization is remembered)."""
    v = imp.values.get(ins[0])
    if v is None:  # DEQUANTIZE of a float16 / int8 constant
        imp.values[outs[0]] = Value(imp.value(ins[0]))
        return
    q = imp.tquant(outs[0])
    if q is not None and v.name not in imp.quant:
        imp.quant[v.name] = q
    imp.values[outs[0]] = Value(v.name, v.chw)
