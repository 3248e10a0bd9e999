"""Import an ONNX model into the nnshell IR.

What the import does, in order: load and sanity-check the file; turn initializers into constants
(including old models that also list them as graph inputs); give every graph input a static shape
with the batch dimension set to 1 (other dynamic dimensions need ``input_shapes``); walk the nodes
in order, folding every node whose inputs are all constant (Constant, Shape, Gather, Cast, ...) with
ONNX's reference evaluator, and mapping the rest to registered ops whose shape rules give every
tensor its static shape. Every unsupported op is collected and reported at once; nothing half
imported is ever returned.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, BinaryIO

import numpy as np

from nnshell import safeio
from nnshell.errors import ModelFileError, ShapeError, UnsupportedOpError
from nnshell.importers import onnx_proto
from nnshell.importers.unsupported import raise_unsupported
from nnshell.ir import Graph, Node, TensorInfo, c_safe_name
from nnshell.ops import op_for_onnx
from nnshell.ops.registry import INFER_ERRORS

#: Declared tensors larger than this are refused before any memory is allocated.
MAX_TENSOR_ELEMENTS = 1 << 31
#: Constants computed at import (folded nodes) larger than this are refused before evaluation.
MAX_FOLD_ELEMENTS = 1 << 27


def _attr_value(attr: Any) -> Any:
    """Convert one AttributeProto into plain Python (tuples for lists, str for bytes)."""
    v = onnx_proto.attribute_value(attr)
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")
    if isinstance(v, onnx_proto.pb().TensorProto):
        return onnx_proto.to_array(v)
    if isinstance(v, list):
        return tuple(x.decode() if isinstance(x, bytes) else x for x in v)
    return v


def _read_model(path: str) -> tuple[Any, str]:
    """Load an ONNX file and its external data; return the model and the file's sha256.

    The file is read once, bounded (:mod:`nnshell.safeio`: regular files only, at most
    ``NNSHELL_MAX_MODEL_BYTES``), and parsed from memory; ``onnx.load`` is not used because it
    opens the path itself (a FIFO hangs it, ``/dev/zero`` fills memory) and follows external
    data wherever the model says. Every failure is one ModelFileError line.
    """
    if os.path.isdir(path):  # stat only: never blocks; kept for its established message
        raise ModelFileError(f"'{path}' is a directory, not an ONNX file")
    data = safeio.read_bytes(path, "model file", safeio.MODEL, ModelFileError)
    try:
        model = _parse(data, os.path.splitext(path)[1])
    except Exception as exc:  # noqa: BLE001 - protobuf raises many types for a corrupt file
        other = sniff_model_format(data, path)
        if other is not None:  # "DecodeError" says nothing to someone who opened a .tflite
            raise ModelFileError(
                f"'{path}' is a {other} file, not an ONNX model",
                "convert it to ONNX (e.g. tf2onnx, torch.onnx.export) and open the .onnx",
            ) from None
        raise ModelFileError(
            f"'{path}' is not a readable ONNX model ({type(exc).__name__})",
            "open a .onnx file exported by a framework",
        ) from None
    if len(model.graph.node) == 0:
        raise ModelFileError(f"'{path}' holds no ONNX graph nodes (not an ONNX model?)")
    _check_names(model, path)
    _load_external_data(model, path)
    return model, hashlib.sha256(data).hexdigest()


#: Extensions ``onnx.load`` reads as text formats (onnx.serialization); every other is protobuf.
_TEXT_EXTENSIONS = frozenset(
    {".txtpb", ".textproto", ".prototxt", ".pbtxt", ".json", ".onnxjson", ".onnxtxt", ".onnxtext"}
)


def _parse(data: bytes, ext: str) -> Any:
    """Parse a model the way ``onnx.load`` would for a file with extension ``ext``.

    Binary protobuf (nearly every model) is parsed by the generated classes alone, which skips
    the full package's start-up cost; text formats go through onnx's own serializers.
    """
    if ext in _TEXT_EXTENSIONS:
        from onnx import serialization  # noqa: PLC0415 - rare text formats only

        onnx = onnx_proto.full()
        fmt = serialization.registry.get_format_from_file_extension(ext) or "protobuf"
        return serialization.registry.get(fmt).deserialize_proto(data, onnx.ModelProto())
    from google.protobuf.message import DecodeError  # noqa: PLC0415 - loaded with the classes

    model = onnx_proto.pb().ModelProto()
    decoded = model.ParseFromString(data)
    if decoded is not None and decoded != len(data):  # what onnx's serializer checks too
        raise DecodeError(f"protobuf decoding consumed {decoded} of {len(data)} bytes")
    return model


def sniff_model_format(data: bytes, path: str) -> str | None:
    """The name of a non-ONNX model format recognised by its magic bytes or extension."""
    ext = os.path.splitext(path)[1].lower()
    if data[4:8] == b"TFL3" or ext == ".tflite":
        return "TensorFlow Lite (flatbuffer)"
    if data[:8] == b"\x89HDF\r\n\x1a\n" or ext in (".h5", ".hdf5", ".keras"):
        return "Keras/HDF5"
    if data[:2] == b"PK" and ext in (".pt", ".pth", ".zip", ".keras"):
        return "PyTorch (zip archive)"
    if ext in (".pb", ".pbtxt"):
        return "TensorFlow graph (protobuf)"
    if ext in (".caffemodel", ".prototxt"):
        return "Caffe"
    return None


def _all_tensors(model: Any) -> Iterator[Any]:
    """Every TensorProto of a model that may hold external data: initializers (dense and
    sparse) and node attributes, in subgraphs and functions too (what onnx itself walks)."""

    def of_nodes(nodes: Any) -> Iterator[Any]:
        for node in nodes:
            for a in node.attribute:
                if a.HasField("t"):
                    yield a.t
                yield from a.tensors
                sparse = [a.sparse_tensor] if a.HasField("sparse_tensor") else []
                for sp in [*sparse, *a.sparse_tensors]:
                    yield sp.values
                    yield sp.indices
                if a.HasField("g"):
                    yield from of_graph(a.g)
                for g in a.graphs:
                    yield from of_graph(g)

    def of_graph(g: Any) -> Iterator[Any]:
        yield from g.initializer
        for sp in g.sparse_initializer:
            yield sp.values
            yield sp.indices
        yield from of_nodes(g.node)

    yield from of_graph(model.graph)
    for f in model.functions:
        yield from of_nodes(f.node)


_EXTERNAL_HINT = "keep external data files in the model's folder, named by relative paths"


def _external_file(location: str, folder: str, path: str, tensor: str) -> str:
    """The real path of one external-data file, refused unless it lies inside ``folder``.

    ``location`` comes from the model, so it is an attacker's string: absolute paths, ``..``
    and symbolic links that lead out of the model's folder would read any file the user can
    (``/etc/passwd``, ``/dev/zero``); they are refused before anything is opened.
    """
    where = f"model '{path}': external data of tensor '{tensor}'"
    if not location or "\0" in location:
        raise ModelFileError(f"{where} has no usable location", _EXTERNAL_HINT)
    parts = re.split(r"[/\\]", location)
    if os.path.isabs(location) or location[:1] in "/\\" or re.match(r"[A-Za-z]:", location):
        raise ModelFileError(f"{where} is at absolute path '{location}'", _EXTERNAL_HINT)
    if ".." in parts:
        raise ModelFileError(
            f"{where} is at '{location}', outside the model's folder", _EXTERNAL_HINT
        )
    real_folder = os.path.realpath(folder)
    real = os.path.realpath(os.path.join(folder, location))
    if os.path.commonpath([real, real_folder]) != real_folder:
        raise ModelFileError(
            f"{where} is at '{location}', a link that leads outside the model's folder",
            _EXTERNAL_HINT,
        )
    return real


def _external_int(info: dict[str, str], key: str, where: str) -> int | None:
    """An ``offset`` / ``length`` entry as a non-negative int (None if absent)."""
    if key not in info:
        return None
    try:
        value = int(info[key])
    except ValueError:
        value = -1
    if value < 0:
        raise ModelFileError(f"{where} has {key} '{info[key]}', not a byte count (corrupt model)")
    return value


def _load_external_data(model: Any, path: str) -> None:
    """Read every tensor's external data into the model, bounded and confined to its folder.

    Each file is opened once through :mod:`nnshell.safeio` (regular file only); offset and
    length must lie within it, and all external data together stays within
    ``NNSHELL_MAX_EXTERNAL_DATA_BYTES``. Afterwards no tensor refers to a file any more, so
    nothing later (numpy_helper, the reference evaluator) can open one relative to the cwd.
    """
    external = onnx_proto.pb().TensorProto.EXTERNAL
    folder = os.path.dirname(os.path.abspath(path))
    cap = safeio.EXTERNAL_DATA.bytes
    total = 0
    files: dict[str, tuple[BinaryIO, int]] = {}
    try:
        for tensor in _all_tensors(model):
            if tensor.data_location != external:
                continue
            info = {e.key: e.value for e in tensor.external_data}
            where = f"model '{path}': external data of tensor '{tensor.name}'"
            real = _external_file(info.get("location", ""), folder, path, tensor.name)
            if real not in files:
                fh = safeio.open_regular(
                    real, f"{where}: file", safeio.EXTERNAL_DATA, ModelFileError
                )
                files[real] = (fh, os.fstat(fh.fileno()).st_size)
            fh, size = files[real]
            offset = _external_int(info, "offset", where) or 0
            length = _external_int(info, "length", where)
            length = size - offset if length is None else length
            if offset > size or length > size - offset:
                raise ModelFileError(
                    f"{where} claims bytes {offset}..{offset + length} of "
                    f"'{info['location']}', which holds {size} (corrupt or truncated)"
                )
            total += length
            if total > cap:
                raise ModelFileError(
                    f"model '{path}': external data over the {cap:,}-byte limit",
                    f"set {safeio.EXTERNAL_DATA.env} to a larger number of bytes if genuine",
                )
            fh.seek(offset)
            blob = fh.read(length)
            if len(blob) != length:
                raise ModelFileError(f"{where}: '{info['location']}' shrank while being read")
            tensor.raw_data = blob
            tensor.data_location = onnx_proto.pb().TensorProto.DEFAULT
            del tensor.external_data[:]
    except OSError as exc:
        raise ModelFileError(f"model '{path}': cannot read external data: {exc}") from None
    finally:
        for fh, _ in files.values():
            fh.close()


def _check_names(model: Any, path: str) -> None:
    """Refuse names that are not UTF-8 (protobuf hands them over as bytes: a corrupt file)."""
    g = model.graph
    for k, node in enumerate(g.node):
        texts = [node.name, node.op_type, node.domain, *node.input, *node.output]
        texts += [a.name for a in node.attribute]
        if any(isinstance(t, bytes) for t in texts):
            raise ModelFileError(
                f"'{path}': node {k} has a name or type that is not valid UTF-8 (corrupt file)"
            )
    for what, items in (("initializer", g.initializer), ("input", g.input), ("output", g.output)):
        for k, item in enumerate(items):
            if isinstance(item.name, bytes):
                raise ModelFileError(
                    f"'{path}': {what} {k} has a name that is not valid UTF-8 (corrupt file)"
                )


def _input_shape(vi: Any, overrides: Mapping[str, Sequence[int]], path: str) -> tuple[int, ...]:
    """Return the static shape of a graph input, batch set to 1."""
    if vi.name in overrides:
        shape = [int(d) for d in overrides[vi.name]]
        return (1, *shape) if len(shape) and shape[0] != 1 else tuple(shape)
    dims = vi.type.tensor_type.shape.dim
    shape: list[int] = []
    for i, d in enumerate(dims):
        if d.HasField("dim_value") and d.dim_value > 0:
            shape.append(int(d.dim_value))
        elif i == 0:
            shape.append(1)
        else:
            raise ShapeError(
                f"{path}: input '{vi.name}' has a dynamic dimension {i} ('{d.dim_param or '?'}')",
                f"open {path} --input_shapes {vi.name}=[d1,d2,...] (without the batch)",
            )
    if len(shape) >= 1:
        shape[0] = 1
    return tuple(shape)


def _np_dtype(elem_type: int) -> str:
    try:
        return onnx_proto.numpy_dtype_name(elem_type)
    except Exception:  # noqa: BLE001 - unknown enum values
        return "float32"


class _Importer:
    """State of one import: the IR being built and the list of problems found."""

    def __init__(self, model: Any, path: str, input_shapes: Mapping[str, Sequence[int]]) -> None:
        self.model = model
        self.path = path
        self.input_shapes = input_shapes
        name = os.path.splitext(os.path.basename(path))[0] or "model"
        self.graph = Graph(name=c_safe_name(name))
        self.unsupported: dict[str, list[str]] = {}
        self.unknown: set[str] = set()  # tensors downstream of an unsupported op
        self.node_names: set[str] = set()
        self.opset = {o.domain or "ai.onnx": o.version for o in model.opset_import}

    def run(self) -> Graph:
        g = self.model.graph
        for init in g.initializer:
            self._check_size(init.name, tuple(init.dims))
            try:
                arr = onnx_proto.to_array(init)
            except Exception as exc:  # noqa: BLE001 - onnx raises many types for bad tensor data
                raise ModelFileError(
                    f"'{self.path}': initializer '{init.name}' is corrupt "
                    f"({type(exc).__name__}: {str(exc)[:120]})",
                    "export the model again",
                ) from None
            self._add_const(init.name, arr)
        for vi in g.input:
            if vi.name in self.graph.tensors:
                continue  # old exporters list initializers as inputs too
            self._check_size(vi.name, tuple(d.dim_value for d in vi.type.tensor_type.shape.dim))
            alias = f"input_{len(self.graph.inputs) + 1}"  # NNTool's name answers too
            shapes = self.input_shapes
            if vi.name not in shapes and alias in shapes:
                shapes = {vi.name: shapes[alias]}
            shape = _input_shape(vi, shapes, self.path)
            dtype = _np_dtype(vi.type.tensor_type.elem_type)
            if np.dtype(dtype).kind not in "biuf":
                raise ModelFileError(
                    f"'{self.path}': input '{vi.name}' has element type {dtype}; "
                    "nnshell imports numeric inputs only"
                )
            self.graph.tensors[vi.name] = TensorInfo(vi.name, shape, dtype)
            self.graph.inputs.append(vi.name)
        if not self.graph.inputs:
            raise ModelFileError(f"'{self.path}': the graph has no non-constant input")
        for idx, nproto in enumerate(g.node):
            self._node(idx, nproto)
        self._raise_unsupported()
        for out in g.output:
            t = self.graph.tensors.get(out.name)
            if t is None:
                raise ModelFileError(f"'{self.path}': graph output '{out.name}' is never produced")
            if t.is_const:
                raise ShapeError(f"'{self.path}': graph output '{out.name}' is a constant")
            self.graph.outputs.append(out.name)
        self._prune_unused()
        return self.graph

    def _check_size(self, name: str, dims: tuple[int, ...]) -> None:
        if dims and int(np.prod([max(d, 1) for d in dims], dtype=np.float64)) > MAX_TENSOR_ELEMENTS:
            raise ShapeError(
                f"'{self.path}': tensor '{name}' declares {dims} = more than "
                f"{MAX_TENSOR_ELEMENTS:,} elements; refusing to allocate it"
            )

    def _add_const(self, name: str, arr: np.ndarray) -> None:
        arr = np.asarray(arr)
        if arr.dtype.kind not in "biufc":
            raise ModelFileError(
                f"'{self.path}': constant '{name}' holds {arr.dtype} data; "
                "nnshell imports numeric tensors only"
            )
        self.graph.tensors[name] = TensorInfo(name, tuple(arr.shape), str(arr.dtype), arr)

    def _is_const(self, name: str) -> bool:
        t = self.graph.tensors.get(name)
        return name == "" or (t is not None and t.is_const)

    def _node(self, idx: int, nproto: Any) -> None:
        op_type = nproto.op_type
        domain = nproto.domain or "ai.onnx"
        if domain not in ("ai.onnx", "ai.onnx.ml"):
            op_type = f"{nproto.domain}.{op_type}"
        raw_name = nproto.name or f"{nproto.op_type}_{idx}"
        name = self._unique(c_safe_name(raw_name))
        if any(i in self.unknown for i in nproto.input):
            # downstream of an unsupported op: no shapes, but its own support is still checked
            if domain != "ai.onnx" or op_for_onnx(op_type) is None:
                self.unsupported.setdefault(op_type, []).append(name)
            self.unknown.update(o for o in nproto.output if o)
            return
        missing = [i for i in nproto.input if i and i not in self.graph.tensors]
        if missing:
            raise ModelFileError(
                f"'{self.path}': node '{name}' ({op_type}) reads '{missing[0]}', which no earlier "
                "node, initializer or graph input produces (missing initializer, dangling input, "
                "a cycle or nodes out of topological order)",
                "export the model again",
            )
        if op_type == "Shape" and self._fold_shape(nproto):
            return
        if all(self._is_const(i) for i in nproto.input) and domain == "ai.onnx":
            self._fold(nproto, name)
            return
        opdef = op_for_onnx(op_type) if domain == "ai.onnx" else None
        if opdef is None:
            self.unsupported.setdefault(op_type, []).append(name)
            self.unknown.update(o for o in nproto.output if o)
            return
        attrs = self._attrs(nproto, name)
        try:
            node = Node(name, opdef.name, list(nproto.input), [], opdef.from_onnx(attrs, name))
        except UnsupportedOpError as exc:
            self.unsupported.setdefault(f"{op_type} ({exc.message})", []).append(name)
            self.unknown.update(o for o in nproto.output if o)
            return
        except (TypeError, ValueError, KeyError, IndexError, OverflowError) as exc:
            raise self._bad_node(name, op_type, "attributes", exc) from None
        node.meta["onnx_name"] = raw_name
        node.meta["onnx_op"] = op_type
        node.meta["opset"] = self.opset.get("ai.onnx", 1)  # ops whose semantics vary by opset
        node.meta["n_outputs"] = len(nproto.output)  # Split without sizes needs the count
        try:
            shapes = opdef.infer(node, self.graph.in_infos(node))
        except INFER_ERRORS as e:
            raise self._bad_node(name, op_type, "attributes or input shapes", e) from None
        if len(nproto.output) < len(shapes) or not all(nproto.output[: len(shapes)]):
            raise ModelFileError(
                f"'{self.path}': node '{name}' ({op_type}) names {len(nproto.output)} output(s); "
                f"it produces {len(shapes)}"
            )
        for s in shapes:
            self._check_size(f"{name} output", tuple(int(d) for d in s))
        outs = list(nproto.output)[: len(shapes)]
        for extra in list(nproto.output)[len(shapes) :]:
            if extra:
                self.unknown.add(extra)  # optional outputs nnshell does not compute
        dtype = self.graph.tensors[nproto.input[0]].dtype
        for o, s in zip(outs, shapes, strict=True):
            self.graph.tensors[o] = TensorInfo(o, tuple(int(d) for d in s), dtype)
        node.outputs = outs
        self.graph.nodes.append(node)

    def _attrs(self, nproto: Any, name: str) -> dict[str, Any]:
        """The node's attributes as plain Python; a corrupt attribute is a ModelFileError."""
        out: dict[str, Any] = {}
        declared = self._schema_attr_types(nproto.op_type, nproto.domain)
        for a in nproto.attribute:
            want = declared.get(a.name)
            if want is not None and a.type != want:
                kind = onnx_proto.pb().AttributeProto.AttributeType.Name
                raise ModelFileError(
                    f"'{self.path}': node '{name}' ({nproto.op_type}): attribute '{a.name}' is "
                    f"{kind(a.type) if a.type in range(15) else a.type}, ONNX declares it "
                    f"{kind(want)}",
                    "export the model again",
                )
            try:
                out[a.name] = _attr_value(a)
            except Exception as exc:  # noqa: BLE001 - onnx raises many types for bad attributes
                raise self._bad_node(name, nproto.op_type, f"attribute '{a.name}'", exc) from None
        return out

    def _schema_attr_types(self, op_type: str, domain: str) -> dict[str, int]:
        """Attribute name -> AttributeProto type that the ONNX schema declares (may be empty)."""
        if domain not in ("", "ai.onnx"):
            return {}
        try:
            version = max(1, int(self.opset.get("ai.onnx", 1)))
            return onnx_proto.schema_attr_types(op_type, version)
        except Exception:  # noqa: BLE001 - unknown op or opset: the op's own checks decide
            return {}

    def _bad_node(self, name: str, op_type: str, what: str, exc: BaseException) -> ShapeError:
        return ShapeError(
            f"'{self.path}': node '{name}' ({op_type}) has invalid {what} "
            f"({type(exc).__name__}: {str(exc)[:120]})",
            "check the node with an ONNX viewer or export the model again",
        )

    def _unique(self, name: str) -> str:
        base, k = name, 1
        while name in self.node_names:
            name = f"{base}_{k}"
            k += 1
        self.node_names.add(name)
        return name

    def _fold_shape(self, nproto: Any) -> bool:
        """Replace Shape of a statically shaped tensor by a constant (batch shows as 1)."""
        t = self.graph.tensors.get(nproto.input[0]) if len(nproto.input) == 1 else None
        if t is None or len(nproto.output) != 1 or not nproto.output[0]:
            return False
        shape = np.array(t.shape, dtype=np.int64)
        attrs = self._attrs(nproto, nproto.name or "Shape")
        start, end = attrs.get("start", 0), attrs.get("end")
        if not isinstance(start, int) or not isinstance(end, (int, type(None))):
            return False  # the generic path reports the bad attribute
        self._add_const(nproto.output[0], shape[start:end])
        return True

    def _fold(self, nproto: Any, name: str) -> None:
        """Evaluate a node whose inputs are all constant with onnx's reference evaluator."""
        from onnx.reference import ReferenceEvaluator

        onnx = onnx_proto.full()
        feeds = {i: self.graph.tensors[i].const for i in nproto.input if i}
        ins = [
            onnx.helper.make_tensor_value_info(
                i, onnx.helper.np_dtype_to_tensor_dtype(np.asarray(v).dtype), np.shape(v)
            )
            for i, v in feeds.items()
        ]
        outs = [onnx.helper.make_empty_tensor_value_info(o) for o in nproto.output if o]
        gproto = onnx.helper.make_graph([nproto], "fold", ins, outs)
        mproto = onnx.helper.make_model(gproto, opset_imports=self.model.opset_import)
        self._check_fold_size(nproto, name, feeds)
        try:
            values = ReferenceEvaluator(mproto).run(None, feeds)
        except Exception as exc:  # noqa: BLE001 - the reference evaluator raises anything
            raise UnsupportedOpError(
                f"{name}: cannot fold constant {nproto.op_type} node "
                f"({type(exc).__name__}: {str(exc)[:200]})".replace("\n", " ")
            ) from None
        names = [o for o in nproto.output if o]
        if len(values) != len(names):
            raise ModelFileError(
                f"'{self.path}': node '{name}' ({nproto.op_type}) names {len(names)} output(s); "
                f"it produces {len(values)}"
            )
        for o, v in zip(names, values, strict=True):
            self._add_const(o, np.asarray(v))

    def _check_fold_size(self, nproto: Any, name: str, feeds: dict[str, Any]) -> None:
        """Refuse to fold a node whose output (sized by constant values) would be huge.

        ConstantOfShape, Expand, Tile, Range, Pad, ... take their output size from input values,
        so a tiny file can ask for terabytes. ONNX shape inference sees the sizes first.
        """
        onnx = onnx_proto.full()
        from onnx import numpy_helper

        try:
            inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in feeds.items()]
            outs = [onnx.helper.make_empty_tensor_value_info(o) for o in nproto.output if o]
            g = onnx.helper.make_graph([nproto], "fold", [], outs, inits)
            m = onnx.helper.make_model(g, opset_imports=self.model.opset_import)
            inferred = onnx.shape_inference.infer_shapes(m, data_prop=True).graph.output
        except Exception:  # noqa: BLE001 - no inference: the evaluator decides
            return
        for vi in inferred:
            dims = [d.dim_value for d in vi.type.tensor_type.shape.dim if d.HasField("dim_value")]
            if dims and int(np.prod(dims, dtype=np.float64)) > MAX_FOLD_ELEMENTS:
                raise ShapeError(
                    f"'{self.path}': node '{name}' ({nproto.op_type}) would build a constant "
                    f"of shape {tuple(dims)}, more than {MAX_FOLD_ELEMENTS:,} elements; "
                    "refusing to allocate it"
                )

    def _raise_unsupported(self) -> None:
        raise_unsupported(
            self.path, self.unsupported, "run 'help open' for the list of supported operators"
        )

    def _prune_unused(self) -> None:
        """Drop constants no node reads (folded shape subgraphs leave many behind)."""
        used = {i for n in self.graph.nodes for i in n.inputs} | set(self.graph.outputs)
        used |= set(self.graph.inputs)
        for name in [t for t, info in self.graph.tensors.items() if info.is_const]:
            if name not in used:
                del self.graph.tensors[name]


def load_onnx(path: str, input_shapes: Mapping[str, Sequence[int]] | None = None) -> Graph:
    """Import the ONNX model at ``path`` into a Graph with static shapes."""
    model, digest = _read_model(path)
    graph = _Importer(model, path, input_shapes or {}).run()
    graph.meta.update(
        source=os.path.abspath(path),
        sha256=digest,
        producer=f"{model.producer_name} {model.producer_version}".strip(),
        opset=max(
            (o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0
        ),
        input_layout="NCHW",
    )
    return graph
