"""ONNX protobuf classes and schemas without importing the whole ``onnx`` package.

``import onnx`` costs ~0.6 s of start-up, nearly all of it in ``ml_dtypes`` (float8/int4 dtypes
that ``onnx._mapping`` builds at import), although opening a model needs only the generated
protobuf module (``onnx/onnx_ml_pb2.py``, pure protobuf) and the operator schemas (the
``onnx_cpp2py_export`` extension). This module loads exactly those two files under their
canonical names (``onnx.onnx_ml_pb2``, ``onnx.onnx_cpp2py_export``) without running
``onnx/__init__``; when the full package is imported later, Python finds both already in
``sys.modules`` and reuses them, so there is one ``ModelProto`` class and one descriptor pool
entry either way. Anything rarer than the common tensor and attribute kinds (float8, int4,
strings, sparse tensors, subgraphs) goes to the full package, so the result is exactly what
``onnx.numpy_helper`` / ``onnx.helper`` give.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

_PB = "onnx.onnx_ml_pb2"
_CPP = "onnx.onnx_cpp2py_export"

# TensorProto.DataType values read without conversion: (numpy dtype, typed storage field)
_FLOAT, _UINT8, _INT8, _UINT16, _INT16, _INT32, _INT64, _BOOL, _FLOAT16, _DOUBLE = (
    1, 2, 3, 4, 5, 6, 7, 9, 10, 11
)  # fmt: skip
_PLAIN: dict[int, tuple[str, str]] = {
    _FLOAT: ("float32", "float_data"),
    _INT32: ("int32", "int32_data"),
    _INT64: ("int64", "int64_data"),
    _DOUBLE: ("float64", "double_data"),
}
# types stored in int32_data but held narrower in raw_data (the full package reads the former)
_NARROW: dict[int, str] = {
    _UINT8: "uint8",
    _INT8: "int8",
    _UINT16: "uint16",
    _INT16: "int16",
    _BOOL: "bool",
    _FLOAT16: "float16",
}
_NUMPY_NAMES: dict[int, str] = {**{k: v[0] for k, v in _PLAIN.items()}, **_NARROW}
_NUMPY_NAMES.update({12: "uint32", 13: "uint64", 14: "complex64", 15: "complex128"})


def _onnx_dir() -> Path:
    spec = importlib.util.find_spec("onnx")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the onnx package is not installed (pip install onnx)")
    return Path(next(iter(spec.submodule_search_locations)))


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _module(name: str, pattern: str) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    if "onnx" in sys.modules:  # the full package is there: use its own module
        return importlib.import_module(name)
    found = sorted(_onnx_dir().glob(pattern))
    if not found:
        raise ImportError(f"onnx installation lacks {pattern}")
    return _load(name, found[0])


def pb() -> ModuleType:
    """The generated protobuf module (``ModelProto``, ``TensorProto``, ...)."""
    return _module(_PB, "onnx_ml_pb2.py")


def full() -> ModuleType:
    """The whole ``onnx`` package (for folding, shape inference, rare tensor kinds)."""
    import onnx

    for attr, name in (("onnx_ml_pb2", _PB), ("onnx_cpp2py_export", _CPP)):
        if not hasattr(onnx, attr) and name in sys.modules:
            setattr(onnx, attr, sys.modules[name])  # what a normal import would have bound
    return onnx


_ATTR_TABLE: dict[str, Any] | None = None
#: nnshell's own data file (never a user's path), written by scripts/make_onnx_attr_table.py
_ATTR_TABLE_PATH = Path(__file__).with_name("onnx_attr_types.json")


def _attr_table() -> dict[str, Any]:
    """``onnx_attr_types.json`` (scripts/make_onnx_attr_table.py); empty if unreadable."""
    global _ATTR_TABLE
    if _ATTR_TABLE is None:
        import json

        try:
            _ATTR_TABLE = json.loads(_ATTR_TABLE_PATH.read_text("utf-8"))
        except (OSError, ValueError):
            _ATTR_TABLE = {}
    return _ATTR_TABLE


def schema_attr_types(op_type: str, version: int) -> dict[str, int]:
    """Attribute name -> AttributeProto type that the ONNX schema of ``op_type`` declares.

    The schema in force at opset ``version`` is the one with the largest ``since_version`` not
    above it. Operators nnshell imports are answered from a table written from onnx's schemas
    (loading onnx's C++ extension costs ~30 ms of start-up); anything else, or an opset newer
    than the table's, asks the extension. Raises whatever ``onnx.defs.get_schema`` raises for an
    unknown op or opset.
    """
    table = _attr_table()
    versions = table.get("ops", {}).get(op_type)
    if versions and version <= table.get("max_opset", 0):
        found = [types for since, types in versions if since <= version]
        if found:
            return dict(found[-1])
    defs = _module(_CPP, "onnx_cpp2py_export*.so").defs
    schema = defs.get_schema(op_type, version, "")
    return {k: int(v.type.value) for k, v in schema.attributes.items()}


def attribute_value(attr: Any) -> Any:
    """``onnx.helper.get_attribute_value`` for the scalar and list kinds; the rest via onnx."""
    t = attr.type
    if not attr.ref_attr_name:
        if t == 1:
            return attr.f
        if t == 2:
            return attr.i
        if t == 3:
            return attr.s
        if t == 6:
            return list(attr.floats)
        if t == 7:
            return list(attr.ints)
        if t == 8:
            return list(attr.strings)
    return full().helper.get_attribute_value(attr)


def to_array(tensor: Any) -> np.ndarray:
    """``onnx.numpy_helper.to_array`` for the common numeric types; the rest via onnx.

    Little-endian hosts only take the fast path (the package byte-swaps on big-endian ones).
    """
    dt = tensor.data_type
    fast = sys.byteorder == "little" and not tensor.HasField("segment")
    fast = fast and tensor.data_location == 0  # external data is inlined by the importer
    if fast and tensor.HasField("raw_data") and (dt in _PLAIN or dt in _NARROW):
        dtype = _PLAIN[dt][0] if dt in _PLAIN else _NARROW[dt]
        return np.frombuffer(tensor.raw_data, dtype=dtype).reshape(tensor.dims)
    if fast and dt in _PLAIN:
        dtype, field = _PLAIN[dt]
        return np.asarray(getattr(tensor, field), dtype=dtype).reshape(tensor.dims)
    from onnx import numpy_helper  # noqa: PLC0415 - rare kinds only

    full()
    return numpy_helper.to_array(tensor)


def numpy_dtype_name(elem_type: int) -> str:
    """``str(np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t)))`` for the plain numeric types."""
    if elem_type in _NUMPY_NAMES:
        return _NUMPY_NAMES[elem_type]
    return str(np.dtype(full().helper.tensor_dtype_to_np_dtype(elem_type)))


# -- building models (the exporter): the few onnx.helper constructors, on the bare classes ----
_ELEM_TYPES: dict[str, int] = {v: k for k, v in _NUMPY_NAMES.items()}


def elem_type(dtype: Any) -> int:
    """``onnx.helper.np_dtype_to_tensor_dtype`` for the plain numeric dtypes."""
    name = str(np.dtype(dtype))
    if name in _ELEM_TYPES:
        return _ELEM_TYPES[name]
    return int(full().helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))


def from_array(arr: np.ndarray, name: str) -> Any:
    """``onnx.numpy_helper.from_array`` (little-endian raw data) for the plain numeric dtypes."""
    a = np.asarray(arr)
    if sys.byteorder != "little" or str(a.dtype) not in _ELEM_TYPES:
        from onnx import numpy_helper  # noqa: PLC0415 - rare kinds only

        full()
        return numpy_helper.from_array(a, name)
    t = pb().TensorProto()
    t.name = name
    t.data_type = _ELEM_TYPES[str(a.dtype)]
    t.dims.extend(int(d) for d in a.shape)
    t.raw_data = np.ascontiguousarray(a).tobytes()
    return t


def make_attribute(key: str, value: Any) -> Any:
    """``onnx.helper.make_attribute`` for numbers, strings and flat lists of them."""
    a = pb().AttributeProto()
    a.name = key
    items = list(value) if isinstance(value, (list, tuple)) else None
    if isinstance(value, (bool, int, np.integer)):
        a.type, a.i = 2, int(value)
    elif isinstance(value, (float, np.floating)):
        a.type, a.f = 1, float(value)
    elif isinstance(value, (str, bytes)):
        a.type, a.s = 3, value.encode() if isinstance(value, str) else value
    elif items and all(isinstance(v, (bool, int, np.integer)) for v in items):
        a.type = 7
        a.ints.extend(int(v) for v in items)
    elif items and all(isinstance(v, (bool, int, float, np.integer, np.floating)) for v in items):
        a.type = 6
        a.floats.extend(float(v) for v in items)
    elif items and all(isinstance(v, (str, bytes)) for v in items):
        a.type = 8
        a.strings.extend(v.encode() if isinstance(v, str) else v for v in items)
    else:
        return full().helper.make_attribute(key, value)
    return a


def make_node(op: str, ins: list[str], outs: list[str], name: str, **attrs: Any) -> Any:
    """``onnx.helper.make_node`` (attributes sorted by name, as onnx does)."""
    n = pb().NodeProto()
    n.op_type, n.name = op, name
    n.input.extend(ins)
    n.output.extend(outs)
    n.attribute.extend(make_attribute(k, v) for k, v in sorted(attrs.items()) if v is not None)
    return n


def value_info(name: str, elem: int | None = None, shape: Any = None) -> Any:
    """A ValueInfoProto: name only (``make_empty_tensor_value_info``) or typed with ``shape``
    (strings are symbolic dimensions)."""
    vi = pb().ValueInfoProto()
    vi.name = name
    if elem is not None:
        tt = vi.type.tensor_type
        tt.elem_type = elem
        tt.shape.SetInParent()
        for d in shape or ():
            dim = tt.shape.dim.add()
            if isinstance(d, str):
                dim.dim_param = d
            else:
                dim.dim_value = int(d)
    return vi


def make_model(nodes: list[Any], name: str, inputs: list[Any], outputs: list[Any],
               inits: list[Any], opset: int, producer: str) -> Any:  # fmt: skip
    """A ModelProto of one graph at ``opset`` of the default domain (IR version ≤ 10)."""
    m = pb().ModelProto()
    g = m.graph
    g.name = name
    g.node.extend(nodes)
    g.input.extend(inputs)
    g.output.extend(outputs)
    g.initializer.extend(inits)
    op = m.opset_import.add()
    op.domain, op.version = "", int(opset)
    m.producer_name = producer
    m.ir_version = min(int(pb().IR_VERSION), 10)
    return m
