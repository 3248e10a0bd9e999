"""Reading a TFLite flatbuffer for the importer (``tflite_importer``): the file's tensors,
constants and quantization, and the state of one import (the IR being built, where every TFLite
tensor went, the problems found). The operator handlers are in ``tflite_ops``; this module knows
none of them (the importer hands their table in), so the two import in one direction only.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from nnshell import safeio
from nnshell.errors import ModelFileError, ShapeError, UnsupportedOpError
from nnshell.importers import is_tflite  # noqa: F401 - re-exported by tflite_importer
from nnshell.importers.unsupported import raise_unsupported
from nnshell.ir import Graph, Node, TensorInfo, c_safe_name
from nnshell.ops import op_for_onnx

#: Declared tensors larger than this are refused before any memory is allocated.
MAX_TENSOR_ELEMENTS = 1 << 31
#: The ONNX opset whose semantics the emitted nodes follow (Softmax axis, Split, Resize inputs).
OPSET = 13
#: TFLite's ActivationFunctionType values.
ACT_NONE, ACT_RELU, ACT_RELU_N1_TO_1, ACT_RELU6, ACT_TANH, ACT_SIGN_BIT = range(6)
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
class Value:
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


def same_pads(size: int, k: int, s: int, d: int) -> tuple[int, int]:
    """TensorFlow's SAME padding of one axis: (begin, end), the extra pixel at the end."""
    eff = (k - 1) * d + 1
    out = -(-size // s)
    total = max((out - 1) * s + eff - size, 0)
    return total // 2, total - total // 2


def read_model(path: str) -> tuple[Any, bytes]:
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


#: What converts one TFLite operator: (importer, node name, operator, inputs, outputs).
Handler = Callable[["Importer", str, Any, list[int], list[int]], None]


class Importer:
    """State of one import: the IR being built and the problems found."""

    def __init__(self, model: Any, path: str, handlers: Mapping[str, Handler]) -> None:
        import tflite

        self.handlers = handlers
        self.tfl = tflite
        self.model = model
        self.path = path
        self.sg = model.Subgraphs(0)
        name = os.path.splitext(os.path.basename(path))[0] or "model"
        self.graph = Graph(name=c_safe_name(name))
        self.values: dict[int, Value] = {}
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
        node.meta["opset"] = OPSET
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
            v = Value(self.add_const(f"tensor_{idx}", arr))
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
        self.values[idx] = Value(name, chw)
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
        if act == ACT_NONE:
            return x
        if act == ACT_RELU:
            return self.emit("Relu", n, [x])[0]
        if act == ACT_RELU6:
            return self.emit("Clip", n, [x], {"min": 0.0, "max": 6.0})[0]
        if act == ACT_RELU_N1_TO_1:
            return self.emit("Clip", n, [x], {"min": -1.0, "max": 1.0})[0]
        if act == ACT_TANH:
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
            self.values[idx] = Value(final, False)
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
        handler = self.handlers.get(opname)
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
