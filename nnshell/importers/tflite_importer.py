"""Import a TFLite flatbuffer into the nnshell IR (the same IR as the ONNX importer).

Why this shape (docs/tflite.md has the whole story):

* The file is read once, bounded by :mod:`nnshell.safeio`, and parsed by the ``tflite``
  package (the flatbuffer schema compiled by the TensorFlow authors), imported lazily so that
  the shell starts fast; nnshell has no hand-written flatbuffer reader.
* Node names follow NNTool's TFLite importer, ``{OPERATOR}_{subgraph}_{index}``
  (``CONV_2D_0_1``), a fused activation is ``{name}_activation``, graph inputs are
  ``input_1``... and outputs ``output_1``..., so NNTool scripts address the same nodes.
* TFLite is NHWC; the IR's convolutions, pools and resizes are NCHW like ONNX. The importer
  keeps, for every TFLite tensor, an IR tensor and whether that IR tensor holds it transposed
  to channel-first. Layout-free ops (activations, binary ops, concat, split, slice, pad, mean)
  follow whatever layout their inputs have; a Transpose is emitted only where an op needs the
  other one (before a reshape, a TFLite TRANSPOSE, a graph output). The input Transpose is then
  folded by ``adjust`` and transposes before a reshape + fully connected fold into its weights,
  exactly as for a TensorFlow-exported ONNX model.
* Quantized files: the float graph uses the real values (weights dequantized, QUANTIZE and
  DEQUANTIZE become aliases). The file's scales and zero points are kept per IR tensor in
  ``graph.meta['tflite_quant']`` for ``open -q`` (:mod:`nnshell.quant.tflite_quant`).
"""

from __future__ import annotations

import hashlib
import os
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nnshell import safeio
from nnshell.errors import ModelFileError, NnshellError, ShapeError, UnsupportedOpError
from nnshell.importers.unsupported import raise_unsupported
from nnshell.ir import Graph, Node, TensorInfo, c_safe_name
from nnshell.ops import op_for_onnx

#: Declared tensors larger than this are refused before any memory is allocated.
MAX_TENSOR_ELEMENTS = 1 << 31
#: The ONNX opset whose semantics the emitted nodes follow (Softmax axis, Split, Resize inputs).
_OPSET = 13
#: TFLite's ActivationFunctionType values.
_ACT_NONE, _ACT_RELU, _ACT_RELU_N1_TO_1, _ACT_RELU6, _ACT_TANH, _ACT_SIGN_BIT = range(6)
#: NHWC -> NCHW and back.
TO_CHW = (0, 3, 1, 2)
TO_HWC = (0, 2, 3, 1)


@dataclass
class TensorQuant:
    """One tensor's quantization in the file (per channel when ``scale`` has several entries)."""

    scale: np.ndarray
    zero_point: np.ndarray
    dtype: str  # int8, uint8, int16, int32
    axis: int = 0

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able values: ``graph.meta`` goes into saved states."""
        return {
            "scale": [float(v) for v in np.asarray(self.scale).reshape(-1)],
            "zero_point": [int(v) for v in np.asarray(self.zero_point).reshape(-1)],
            "dtype": self.dtype,
            "axis": int(self.axis),
        }


@dataclass
class _Value:
    """Where a TFLite tensor lives in the IR: its tensor, and if that is channel-first."""

    name: str
    chw: bool = False


def _np_type(tflite: Any, code: int) -> str | None:
    t = tflite.TensorType
    return {
        t.FLOAT32: "float32",
        t.FLOAT16: "float16",
        t.INT32: "int32",
        t.UINT8: "uint8",
        t.INT64: "int64",
        t.INT16: "int16",
        t.INT8: "int8",
        t.BOOL: "bool",
    }.get(code)


def _same_pads(size: int, k: int, s: int, d: int) -> tuple[int, int]:
    """TensorFlow's SAME padding of one axis: (begin, end), the extra pixel at the end."""
    eff = (k - 1) * d + 1
    out = -(-size // s)
    total = max((out - 1) * s + eff - size, 0)
    return total // 2, total - total // 2


def _read(path: str) -> tuple[Any, bytes]:
    """Read and parse the file; every failure is one ModelFileError line."""
    if os.path.isdir(path):
        raise ModelFileError(f"'{path}' is a directory, not a TFLite file")
    data = safeio.read_bytes(path, "model file", safeio.MODEL, ModelFileError)
    import tflite

    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelFileError(
            f"'{path}' is not a TFLite model (no TFL3 identifier)",
            "open a .tflite file written by the TensorFlow Lite converter",
        )
    try:
        model = tflite.Model.GetRootAsModel(data, 0)
        if model.SubgraphsLength() < 1:
            raise ValueError("no subgraph")
        model.Subgraphs(0).OperatorsLength()
    except Exception as exc:  # noqa: BLE001 - flatbuffers raises many types on a corrupt file
        raise ModelFileError(
            f"'{path}' is not a readable TFLite model ({type(exc).__name__})",
            "open a .tflite file written by the TensorFlow Lite converter",
        ) from None
    return model, data


def is_tflite(path: str) -> bool:
    """Whether ``path`` names a TFLite file (by extension: opening never sniffs a FIFO)."""
    return str(path).lower().endswith(".tflite")


class _Importer:
    """State of one import: the IR being built and the problems found."""

    def __init__(self, model: Any, path: str) -> None:
        import tflite

        self.tfl = tflite
        self.model = model
        self.path = path
        self.sg = model.Subgraphs(0)
        name = os.path.splitext(os.path.basename(path))[0] or "model"
        self.graph = Graph(name=c_safe_name(name))
        self.values: dict[int, _Value] = {}
        self.unsupported: dict[str, list[str]] = {}
        self.unknown: set[int] = set()
        self.quant: dict[str, TensorQuant] = {}
        self.op_names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if k.isupper()}
        self.cache: dict[tuple[str, tuple[int, ...]], str] = {}

    # -- file access -------------------------------------------------------------------------
    def tensor(self, idx: int) -> Any:
        if not 0 <= idx < self.sg.TensorsLength():
            raise ModelFileError(f"'{self.path}': tensor index {idx} out of range (corrupt file)")
        return self.sg.Tensors(idx)

    def shape(self, idx: int) -> tuple[int, ...]:
        t = self.tensor(idx)
        shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        if any(d < 0 for d in shape[1:]):
            raise ShapeError(f"'{self.path}': tensor {idx} has a dynamic shape {shape}")
        if shape and shape[0] < 1:
            shape = (1, *shape[1:])
        if shape and int(np.prod(shape, dtype=np.float64)) > MAX_TENSOR_ELEMENTS:
            raise ShapeError(f"'{self.path}': tensor {idx} declares {shape}; refusing it")
        return shape

    def tquant(self, idx: int) -> TensorQuant | None:
        t = self.tensor(idx)
        q = t.Quantization()
        if q is None or q.ScaleLength() == 0:
            return None
        dtype = _np_type(self.tfl, t.Type()) or "int8"
        zp = q.ZeroPointAsNumpy() if q.ZeroPointLength() else np.zeros(q.ScaleLength(), np.int64)
        return TensorQuant(
            np.asarray(q.ScaleAsNumpy(), np.float64),
            np.asarray(zp, np.int64),
            dtype,
            int(q.QuantizedDimension()),
        )

    def raw_const(self, idx: int) -> np.ndarray | None:
        """The stored value of tensor ``idx`` (None for an activation)."""
        t = self.tensor(idx)
        b = t.Buffer()
        if b <= 0 or b >= self.model.BuffersLength():
            return None
        buf = self.model.Buffers(b)
        if buf.Offset() > 1:
            raise ModelFileError(f"'{self.path}': buffers stored past 2 GB are not supported")
        if buf.DataLength() == 0:
            return None
        dtype = _np_type(self.tfl, t.Type())
        if dtype is None or dtype == "bool":
            raise ModelFileError(f"'{self.path}': constant {idx} has an unsupported type")
        raw = buf.DataAsNumpy().tobytes()
        shape = self.shape(idx)
        count = int(np.prod(shape, dtype=np.int64))
        arr = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<"))
        if arr.size != count:
            raise ModelFileError(
                f"'{self.path}': constant {idx} holds {arr.size} values for shape {shape}"
            )
        return arr.reshape(shape).astype(np.dtype(dtype))

    def const(self, idx: int) -> np.ndarray | None:
        """The real value of constant ``idx`` (quantized constants dequantized), or None."""
        v = self.values.get(idx)
        if v is not None and v.name in self.graph.tensors and self.graph.tensors[v.name].is_const:
            arr = self.graph.tensors[v.name].const
            assert arr is not None
            return np.transpose(arr, TO_HWC) if v.chw else arr
        arr = self.raw_const(idx)
        if arr is None:
            return None
        q = self.tquant(idx)
        if q is not None and arr.dtype.kind in "iu" and q.scale.size:
            shape = [1] * arr.ndim
            if q.scale.size > 1:
                shape[q.axis] = -1
            s = q.scale.reshape(shape) if q.scale.size > 1 else q.scale[0]
            z = q.zero_point.reshape(shape) if q.zero_point.size > 1 else q.zero_point[0]
            return ((arr.astype(np.float64) - z) * s).astype(np.float32)
        if arr.dtype.kind == "f":
            return arr.astype(np.float32)
        return arr

    def int_const(self, idx: int, what: str, node: str) -> np.ndarray:
        arr = self.raw_const(idx) if idx >= 0 else None
        if arr is None:
            raise UnsupportedOpError(f"{node}: {what} must be a constant")
        return arr.astype(np.int64)

    # -- IR building -------------------------------------------------------------------------
    def add_const(self, name: str, arr: np.ndarray) -> str:
        name = self.graph.unique_name(name)
        self.graph.tensors[name] = TensorInfo(name, tuple(arr.shape), str(arr.dtype), arr)
        return name

    def emit(
        self,
        onnx_type: str,
        name: str,
        inputs: list[str],
        attrs: dict[str, Any] | None = None,
        n_out: int = 1,
    ) -> list[str]:
        """Add one IR node made by the op that imports ONNX ``onnx_type``; return its outputs."""
        opdef = op_for_onnx(onnx_type)
        assert opdef is not None, onnx_type
        return self.emit_op(opdef.name, name, inputs, attrs, n_out)

    def emit_op(
        self,
        op_name: str,
        name: str,
        inputs: list[str],
        attrs: dict[str, Any] | None = None,
        n_out: int = 1,
    ) -> list[str]:
        """Add one node of IR op ``op_name`` with ready-made attributes."""
        from nnshell.ops import get_op

        opdef = get_op(op_name)
        onnx_type = op_name
        name = self.graph.unique_name(name)
        node = Node(name, opdef.name, list(inputs), [], opdef.from_onnx(attrs or {}, name))
        node.meta["opset"] = _OPSET
        node.meta["n_outputs"] = n_out
        try:
            shapes = opdef.infer(node, self.graph.in_infos(node))
        except (TypeError, ValueError, KeyError, IndexError, AssertionError) as e:
            raise ShapeError(
                f"'{self.path}': node '{name}' ({onnx_type}) has invalid parameters "
                f"({type(e).__name__}: {str(e)[:120]})"
            ) from None
        outs = []
        for k, s in enumerate(shapes):
            out = self.graph.unique_name(f"{name}_out" if k == 0 else f"{name}_out_{k}")
            self.graph.tensors[out] = TensorInfo(out, tuple(int(d) for d in s), "float32")
            outs.append(out)
        node.outputs = outs
        self.graph.nodes.append(node)
        return outs

    def value(self, idx: int, chw: bool | None = None) -> str:
        """The IR tensor of TFLite tensor ``idx``, channel-first if ``chw`` (None: as it is)."""
        v = self.values.get(idx)
        if v is None:
            arr = self.const(idx)
            if arr is None:
                raise ModelFileError(
                    f"'{self.path}': tensor {idx} is read before any operator writes it "
                    "(corrupt file or operators out of order)"
                )
            v = _Value(self.add_const(f"tensor_{idx}", arr))
            self.values[idx] = v
        if chw is None or v.chw == chw:
            return v.name
        info = self.graph.tensors[v.name]
        if len(info.shape) != 4:
            raise ShapeError(f"'{self.path}': tensor {idx} is not 4-D; no layout change")
        perm = TO_CHW if chw else TO_HWC
        if info.is_const:
            assert info.const is not None
            return self.add_const(f"{v.name}_t", np.ascontiguousarray(info.const.transpose(perm)))
        key = (v.name, perm)
        if key not in self.cache:
            base = f"{v.name[:-4] if v.name.endswith('_out') else v.name}_{'chw' if chw else 'hwc'}"
            self.cache[key] = self.emit("Transpose", base, [v.name], {"perm": perm})[0]
        return self.cache[key]

    def is4d_act(self, idx: int) -> bool:
        v = self.values.get(idx)
        return (
            v is not None
            and not self.graph.tensors[v.name].is_const
            and len(self.graph.tensors[v.name].shape) == 4
        )

    def set_out(self, idx: int, name: str, chw: bool) -> None:
        self.values[idx] = _Value(name, chw)
        q = self.tquant(idx)
        if q is not None:
            self.quant[name] = q

    def quant_weights(self, name: str, ins: list[int]) -> None:
        """Remember the file's weight (and bias) quantization of node ``name`` (for ``-q``
        reports and tests: SQ8 recomputes the same weight scales from the dequantized codes)."""
        q = self.tquant(ins[1])
        if q is not None:
            self.quant[f"{name}_weights"] = q
        if len(ins) > 2 and ins[2] >= 0:
            qb = self.tquant(ins[2])
            if qb is not None:
                self.quant[f"{name}_biases"] = qb

    def activation(self, name: str, x: str, act: int) -> str:
        """Append the fused activation of a TFLite op (NNTool names it ``{name}_activation``)."""
        n = f"{name}_activation"
        if act == _ACT_NONE:
            return x
        if act == _ACT_RELU:
            return self.emit("Relu", n, [x])[0]
        if act == _ACT_RELU6:
            return self.emit("Clip", n, [x], {"min": 0.0, "max": 6.0})[0]
        if act == _ACT_RELU_N1_TO_1:
            return self.emit("Clip", n, [x], {"min": -1.0, "max": 1.0})[0]
        if act == _ACT_TANH:
            return self.emit("Tanh", n, [x])[0]
        raise UnsupportedOpError(f"{name}: fused activation {act} is not supported")

    # -- the walk ----------------------------------------------------------------------------
    def run(self) -> Graph:
        sg = self.sg
        if self.model.SubgraphsLength() > 1:
            self.unsupported.setdefault("more than one subgraph (control flow)", []).append(
                f"{self.model.SubgraphsLength()} subgraphs"
            )
        for k, idx in enumerate(sg.InputsAsNumpy() if sg.InputsLength() else []):
            idx = int(idx)
            name = f"input_{k + 1}"
            self.graph.tensors[name] = TensorInfo(name, self.shape(idx), "float32")
            self.graph.inputs.append(name)
            self.set_out(idx, name, False)
        if not self.graph.inputs:
            raise ModelFileError(f"'{self.path}': the graph has no input")
        for i in range(sg.OperatorsLength()):
            self.operator(i)
        self.raise_unsupported()
        outs = [int(o) for o in (sg.OutputsAsNumpy() if sg.OutputsLength() else [])]
        if not outs:
            raise ModelFileError(f"'{self.path}': the graph has no output")
        for k, idx in enumerate(outs):
            if idx not in self.values or self.graph.tensors[self.values[idx].name].is_const:
                raise ModelFileError(f"'{self.path}': graph output {idx} is never computed")
            name = self.value(idx, False if self.values[idx].chw else None)
            final = f"output_{k + 1}"
            if name in self.graph.inputs or name in self.graph.outputs:
                name = self.emit("Identity", f"output_{k + 1}_copy", [name])[0]
            self.rename(name, final)
            self.values[idx] = _Value(final, False)
            self.graph.outputs.append(final)
        self.prune()
        return self.graph

    def rename(self, old: str, new: str) -> None:
        from nnshell.passes._edit import rename_tensor

        if old == new:
            return
        rename_tensor(self.graph, old, new)
        if old in self.quant:
            self.quant[new] = self.quant.pop(old)
        for v in self.values.values():
            if v.name == old:
                v.name = new
        self.cache = {k: (new if v == old else v) for k, v in self.cache.items()}

    def prune(self) -> None:
        used = {i for n in self.graph.nodes for i in n.inputs} | set(self.graph.outputs)
        used |= set(self.graph.inputs)
        for name in [t for t, info in self.graph.tensors.items() if info.is_const]:
            if name not in used:
                del self.graph.tensors[name]

    def operator(self, i: int) -> None:
        op = self.sg.Operators(i)
        code_idx = op.OpcodeIndex()
        if not 0 <= code_idx < self.model.OperatorCodesLength():
            raise ModelFileError(f"'{self.path}': operator {i} has a bad opcode (corrupt file)")
        oc = self.model.OperatorCodes(code_idx)
        code = max(int(oc.BuiltinCode()), int(oc.DeprecatedBuiltinCode()))
        if code == self.tfl.BuiltinOperator.CUSTOM:
            opname = f"CUSTOM {(oc.CustomCode() or b'?').decode('utf-8', 'replace')}"
        else:
            opname = self.op_names.get(code, f"BUILTIN_{code}")
        name = f"{opname.split(' ')[0]}_0_{i}"
        ins = [int(x) for x in op.InputsAsNumpy()] if op.InputsLength() else []
        outs = [int(x) for x in op.OutputsAsNumpy()] if op.OutputsLength() else []
        handler = _HANDLERS.get(opname)
        if handler is None or any(x in self.unknown for x in ins if x >= 0):
            if handler is None:
                self.unsupported.setdefault(opname, []).append(name)
            self.unknown.update(outs)
            return
        try:
            handler(self, name, op, ins, outs)
        except UnsupportedOpError as exc:
            self.unsupported.setdefault(f"{opname} ({exc.message})", []).append(name)
            self.unknown.update(outs)

    def raise_unsupported(self) -> None:
        raise_unsupported(
            self.path,
            self.unsupported,
            "run 'help tflite' for the list of supported TFLite operators",
        )

    def options(self, op: Any, cls_name: str) -> Any:
        cls = getattr(self.tfl, cls_name)
        table = op.BuiltinOptions()
        opt = cls()
        if table is None:
            return None
        opt.Init(table.Bytes, table.Pos)
        return opt


# -- handlers: one per TFLite operator ---------------------------------------------------------
Handler = Callable[[_Importer, str, Any, list[int], list[int]], None]
_HANDLERS: dict[str, Handler] = {}


def _handles(*names: str) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        for n in names:
            _HANDLERS[n] = fn
        return fn

    return deco


def _padding(
    imp: _Importer,
    opt: Any,
    hw: tuple[int, int],
    k: tuple[int, int],
    s: tuple[int, int],
    d: tuple[int, int],
) -> tuple[int, int, int, int]:
    if opt.Padding() == imp.tfl.Padding.SAME:
        (t, b), (lft, r) = (_same_pads(hw[j], k[j], s[j], d[j]) for j in range(2))
        return (t, lft, b, r)
    return (0, 0, 0, 0)


def _bias(imp: _Importer, ins: list[int], n_out: int, name: str) -> str:
    b = imp.const(ins[2]) if len(ins) > 2 and ins[2] >= 0 else None
    return imp.add_const(
        f"{name}_biases", (b if b is not None else np.zeros(n_out)).astype(np.float32)
    )


@_handles("CONV_2D", "DEPTHWISE_CONV_2D")
def _conv(imp: _Importer, name: str, op: Any, ins: list[int], outs: list[int]) -> None:
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
def _fc(imp: _Importer, name: str, op: Any, ins: list[int], outs: list[int]) -> None:
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
    act = opt.FusedActivationFunction() if opt is not None else _ACT_NONE
    imp.set_out(outs[0], imp.activation(name, y, act), False)


@_handles("AVERAGE_POOL_2D", "MAX_POOL_2D")
def _pool(imp: _Importer, name: str, op: Any, ins: list[int], outs: list[int]) -> None:
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
def _mean(imp: _Importer, name: str, op: Any, ins: list[int], outs: list[int]) -> None:
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
def _pad(imp: _Importer, name: str, op: Any, ins: list[int], outs: list[int]) -> None:
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
def _reshape(imp: _Importer, name: str, op: Any, ins: list[int], outs: list[int]) -> None:
    x = imp.value(ins[0], False)
    shape = imp.shape(outs[0])
    if not shape:
        raise UnsupportedOpError("a scalar output")
    sname = imp.add_const(f"{name}_shape", np.array(shape, np.int64))
    imp.set_out(outs[0], imp.emit("Reshape", name, [x, sname])[0], False)


@_handles("TRANSPOSE")
def _transpose(imp: _Importer, name: str, op: Any, ins: list[int], outs: list[int]) -> None:
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
def _strided_slice(imp: _Importer, name: str, op: Any, ins: list[int], outs: list[int]) -> None:
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


def _layout_of(imp: _Importer, ins: list[int]) -> bool:
    """Whether a layout-free op on ``ins`` should run channel-first: every activation is 4-D
    and at least one is channel-first already."""
    acts = [
        i for i in ins if i in imp.values and not imp.graph.tensors[imp.values[i].name].is_const
    ]
    return (
        bool(acts) and all(imp.is4d_act(i) for i in acts) and any(imp.values[i].chw for i in acts)
    )


def _const_operand(imp: _Importer, idx: int, chw: bool, name: str) -> str:
    """A constant operand of a binary op, broadcast-compatible with the chosen layout."""
    arr = imp.const(idx)
    assert arr is not None
    if chw:
        arr = arr.reshape((1,) * (4 - arr.ndim) + arr.shape).transpose(TO_CHW)
    return imp.add_const(name, np.ascontiguousarray(arr.astype(np.float32)))


@_handles("CONCATENATION")
def _concat(imp: _Importer, name: str, op: Any, ins: list[int], outs: list[int]) -> None:
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
def _split(imp: _Importer, name: str, op: Any, ins: list[int], outs: list[int]) -> None:
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
def _binary(imp: _Importer, name: str, op: Any, ins: list[int], outs: list[int]) -> None:
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
    act = opt.FusedActivationFunction() if opt is not None else _ACT_NONE
    imp.set_out(outs[0], imp.activation(name, y, act), chw)


@_handles("MAXIMUM", "MINIMUM")
def _max_min(imp: _Importer, name: str, op: Any, ins: list[int], outs: list[int]) -> None:
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
def _softmax(imp: _Importer, name: str, op: Any, ins: list[int], outs: list[int]) -> None:
    opt = imp.options(op, "SoftmaxOptions")
    if opt is not None and abs(float(opt.Beta()) - 1.0) > 1e-6:
        raise UnsupportedOpError(f"beta {opt.Beta()} (only 1)")
    v = imp.values[ins[0]]
    chw = v.chw and imp.is4d_act(ins[0])
    axis = 1 if chw else -1
    imp.set_out(outs[0], imp.emit("Softmax", name, [v.name], {"axis": axis})[0], chw)


def _unary(
    onnx_type: str, attrs: Callable[[_Importer, Any], dict[str, Any]] | None = None
) -> Handler:
    def handler(imp: _Importer, name: str, op: Any, ins: list[int], outs: list[int]) -> None:
        v = imp.values.get(ins[0])
        x = imp.value(ins[0])
        a = attrs(imp, op) if attrs is not None else {}
        imp.set_out(outs[0], imp.emit(onnx_type, name, [x], a)[0], bool(v and v.chw))

    return handler


_HANDLERS.update(
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
def _resize_nearest(imp: _Importer, name: str, op: Any, ins: list[int], outs: list[int]) -> None:
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
def _resize_bilinear(imp: _Importer, name: str, op: Any, ins: list[int], outs: list[int]) -> None:
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
def _quantize(imp: _Importer, name: str, op: Any, ins: list[int], outs: list[int]) -> None:
    """Real values do not change: the output is the input (its quantization is remembered)."""
    v = imp.values.get(ins[0])
    if v is None:  # DEQUANTIZE of a float16 / int8 constant
        imp.values[outs[0]] = _Value(imp.value(ins[0]))
        return
    q = imp.tquant(outs[0])
    if q is not None and v.name not in imp.quant:
        imp.quant[v.name] = q
    imp.values[outs[0]] = _Value(v.name, v.chw)


#: The TFLite operators the importer maps (``help tflite`` lists them).
def supported_tflite_ops() -> list[str]:
    """The TFLite builtin operators nnshell imports, sorted."""
    return sorted(_HANDLERS)


@dataclass
class TfliteImport:
    """An imported graph and where each TFLite tensor went (tests compare tensor by tensor)."""

    graph: Graph
    #: TFLite tensor index -> (IR tensor, True when the IR tensor is channel-first)
    tensors: dict[int, tuple[str, bool]]
    #: TFLite tensor index -> its name in the file
    names: dict[int, str]


def import_tflite(
    path: str, input_shapes: Mapping[str, Sequence[int]] | None = None
) -> TfliteImport:
    """Import ``path``; also return the TFLite-tensor -> IR-tensor map."""
    if input_shapes:
        raise ShapeError("a TFLite model has static input shapes: --input_shapes does not apply")
    model, data = _read(path)
    imp = _Importer(model, path)
    try:
        graph = imp.run()
    except NnshellError:
        raise
    except Exception as exc:  # noqa: BLE001 - flatbuffers reads fields lazily: a corrupt
        # offset surfaces wherever it is followed (IndexError, struct.error, numpy errors)
        raise ModelFileError(
            f"'{path}' is not a readable TFLite model ({type(exc).__name__} while importing)",
            "open a .tflite file written by the TensorFlow Lite converter",
        ) from None
    graph.meta.update(
        source=os.path.abspath(path),
        sha256=hashlib.sha256(data).hexdigest(),
        producer=f"TFLite schema v{model.Version()}",
        opset=_OPSET,
        input_layout="NHWC",
        format="tflite",
        tflite_quant={k: q.as_dict() for k, q in imp.quant.items() if k in graph.tensors},
    )
    names = {i: (imp.sg.Tensors(i).Name() or b"").decode("utf-8", "replace") for i in imp.values}
    graph.meta["io_file_names"] = _io_file_names(imp.sg, names)
    return TfliteImport(graph, {i: (v.name, v.chw) for i, v in imp.values.items()}, names)


def _io_file_names(sg: Any, names: Mapping[int, str]) -> dict[str, str]:
    """``{"input_1": file tensor name, "output_1": ...}``: the file's own names answer too."""
    out: dict[str, str] = {}
    ins = [int(i) for i in sg.InputsAsNumpy()] if sg.InputsLength() else []
    outs = [int(i) for i in sg.OutputsAsNumpy()] if sg.OutputsLength() else []
    for kind, idxs in (("input", ins), ("output", outs)):
        for k, idx in enumerate(idxs):
            name = names.get(idx) or (sg.Tensors(idx).Name() or b"").decode("utf-8", "replace")
            if name:
                out[f"{kind}_{k + 1}"] = name
    return out


def load_tflite(path: str, input_shapes: Mapping[str, Sequence[int]] | None = None) -> Graph:
    """Import the TFLite model at ``path`` into a Graph with static shapes (NHWC as in the file)."""
    return import_tflite(path, input_shapes).graph


def help_text() -> str:
    """The text of ``help tflite``: what is imported and how (docs/tflite.md has more); every
    line fits an 80-column terminal."""

    def para(text: str, indent: str = "  ") -> list[str]:
        return textwrap.wrap(
            text, width=79, initial_indent=indent, subsequent_indent=indent, break_on_hyphens=False
        )

    return "\n".join(
        [
            "TFLite import: open MODEL.tflite [-q]   (or: nnshell MODEL.tflite [-q])",
            *para(
                "Node names follow NNTool: {OPERATOR}_{subgraph}_{index} (CONV_2D_0_1), fused "
                "activations {name}_activation, inputs input_1..., outputs output_1.... The "
                "graph is NHWC as in the file: run 'adjust' to make it CHW. Quantized files "
                "open as float (weights dequantized); -q keeps the file's scales and zero "
                "points (int8, int16x8, uint8 shifted to int8): 'fusions --scale8' then applies "
                "them and no 'aquant' is needed. Conv and dense layers then requantize with "
                "30-bit multipliers (TFLite's precision; 'set file_mult_bits 8' gives GAP's "
                "8-bit ones, which the AutoTiler target needs)."
            ),
            "Supported operators (with their fused activation NONE, RELU, RELU6,",
            "RELU_N1_TO_1, TANH):",
            *para(", ".join(supported_tflite_ops())),
        ]
    )
