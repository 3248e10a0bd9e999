"""Save and restore a whole session: ``save_state`` / ``load_state`` (``nnshell STATE.json``).

A state is two files in one folder, never pickled:

* ``<stem>.json`` — everything that is not a numeric array, as plain JSON (strict: no NaN or
  Infinity literals, keys in a fixed order, so saving the same session twice gives the same bytes);
* ``<stem>.<h>.npz`` — every array (constants, integer parameters, histograms), each stored once
  (identical arrays share one key), where ``<h>`` is the first 16 hex digits of the npz's own
  SHA-256. The JSON names it (``arrays.file``); states written before this naming used
  ``<stem>.npz``, which still loads.

Why the npz name carries its hash: two files cannot be renamed at once, so a save must have a
single commit point. With a content-derived name the new npz never replaces the one the current
JSON needs, and replacing the JSON (last, atomically, with fsync) switches from the old state to
the new in one step; the old npz is removed only afterwards. The name is deterministic, so saving
an unchanged session gives byte-identical files. The file-level protocol (lock against a second
writer, temporary files and their cleanup, SIGINT/SIGTERM deferred during the commit, file modes)
is :mod:`nnshell.state_files`; this module owns what is in the files.

JSON layout (``schema_version`` 1)::

    format          "nnshell-state"
    schema_version  1 (a newer file is refused with both versions named)
    tool_version    nnshell version that wrote it
    arrays          {"file": "<stem>.<h>.npz", "sha256": <hex of the npz bytes>, "count": n}
    source_model    {"path", "sha256"} of the model first opened (graph.meta)
    session         {"adjusted", "scheme", "history": [commands]}
    settings        every ``set`` value by name
    input           normalisation settings and the input layout (informative copy)
    graphs          {"current": G, "imported": G | null, "prefusion": G | null}
    quantization    null | {"scheme", "options": {"mode": {"name", "percentile"}, "symmetric",
                    "per_tensor", "bits" (POW2 only), "relun_range" (SQ8 ReLU-N rule;
                    "calibrated" when absent)}, "tensors": {name: QType.to_dict()},
                    "ranges": {name: [lo, hi]},
                    "nodes": {name: {"in_q": [QType | null], "out_q": QType,
                    "consts": {key: array ref}, "info": value}}}
    calibration     null | {"files": [image paths], "tensors": {name: {TensorStats scalars,
                    "hist": array ref}}}

A graph ``G`` is ``{"name", "inputs", "outputs", "meta", "tensors": [{"name", "shape", "dtype",
"const": array key | null}], "nodes": [{"name", "op", "inputs", "outputs", "attrs", "meta"}]}``.

Values that JSON cannot hold are tagged objects with one ``__tag__`` key: ``{"__nd__": key}``
(an array in the npz), ``{"__tuple__": [...]}``, ``{"__float__": "inf" | "-inf" | "nan"}``,
``{"__np__": dtype, "v": value}`` (a numpy scalar), ``{"__slice__": [start, stop, step]}``,
``{"__map__": [[key, value], ...]}`` (a dict whose keys are not plain strings) and
``{"__dc__": "ClassName", field: value, ...}`` — an op attribute dataclass (``ConvAttrs``,
``FusedAttrs`` with nested ``FusedPart`` tuples, ...). Dataclasses are rebuilt only from a
whitelist: the dataclasses defined in the modules of the registered ops. Nothing is ever
evaluated or unpickled.

A state file may come from anyone, so loading treats it like an ONNX model and validates
everything before the session sees any of it; any failure is one :class:`ModelFileError` line:

* the files: regular files within the size limits of :mod:`nnshell.safeio` (no device, FIFO or
  sparse giant is read); the npz a plain file name in the state's folder with the recorded
  SHA-256 (hashed in chunks), holding exactly the arrays the JSON refers to, each checked from
  its zip and ``.npy`` headers before it is read (:func:`nnshell.state_files.read_arrays`);
* the JSON: strict (a duplicate key, a NaN literal or a number beyond int64/uint64 and float64
  is refused), the schema version, required keys and types, registered op names, whitelisted
  classes;
* each graph, as the importer would build it: unique tensor and node names, topological order,
  one writer per tensor, shapes non-negative with at most 2^31 elements, and every node's output
  shapes re-inferred with its op's shape rule and equal to the recorded ones (an edited shape
  would otherwise reach the kernels and the generated C);
* the numbers: quantization scales finite and > 0, zero points within their integer type, bit
  widths, range mode, statistics;
* an OverflowError, MemoryError or RecursionError anywhere is a refusal too, never an internal
  error.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nnshell import __version__, safeio, state_files
from nnshell import settings as settings_mod
from nnshell.errors import ModelFileError, NnshellError
from nnshell.ir import Graph, Node, TensorInfo

FORMAT = "nnshell-state"
SCHEMA_VERSION = 1

_TAGS = ("__nd__", "__tuple__", "__float__", "__np__", "__slice__", "__map__", "__dc__")
#: Fixed zip entry time: the npz bytes (and so the hash recorded in the JSON) are reproducible.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass
class SavedState:
    """Everything :func:`load_state` restored, ready for ``Session._restore``."""

    path: str
    graph: Graph
    imported: Graph | None
    prefusion: Graph | None
    settings: dict[str, Any]
    history: list[str]
    adjusted: bool
    scheme: str | None
    stats: dict[str, Any] | None
    stats_files: list[str]
    qstate: Any
    tool_version: str
    schema_version: int = SCHEMA_VERSION
    source_sha256: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: The image input options of the calibration (InputOptions), None in older states.
    calib_inputs: Any = None


class _Malformed(Exception):
    """Internal: a structural problem found while decoding (becomes a ModelFileError)."""


# --------------------------------------------------------------------------------------------
# the attribute-class whitelist
# --------------------------------------------------------------------------------------------


def attr_classes() -> dict[str, type]:
    """Dataclasses allowed in a state: those defined in the modules of the registered ops.

    Keyed by class name; a name defined by two modules is keyed ``module.ClassName`` instead.
    """
    from nnshell.ops import all_ops
    from nnshell.ops.registry import NoAttrs

    found: dict[str, list[type]] = {}
    modules = {type(op).__module__ for op in all_ops().values()}
    modules.add(NoAttrs.__module__)
    for modname in sorted(modules):
        mod = sys.modules.get(modname)
        if mod is None:
            continue
        for obj in vars(mod).values():
            if (
                isinstance(obj, type)
                and dataclasses.is_dataclass(obj)
                and obj.__module__ == modname
                and obj not in found.get(obj.__name__, [])
            ):
                found.setdefault(obj.__name__, []).append(obj)
    out: dict[str, type] = {}
    for name, classes in found.items():
        if len(classes) == 1:
            out[name] = classes[0]
        else:
            for cls in classes:
                out[f"{cls.__module__}.{cls.__name__}"] = cls
    return out


def _class_tag(cls: type, whitelist: dict[str, type]) -> str:
    for tag, c in whitelist.items():
        if c is cls:
            return tag
    raise NnshellError(
        f"cannot save a {cls.__module__}.{cls.__name__} value: not an op attribute class"
    )


# --------------------------------------------------------------------------------------------
# encoding
# --------------------------------------------------------------------------------------------


class _Encoder:
    """Turns session values into JSON-ready values; arrays go to :attr:`arrays` (deduplicated)."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}
        self._by_digest: dict[str, str] = {}
        self._by_id: dict[int, tuple[np.ndarray, str]] = {}
        self.whitelist = attr_classes()

    def array(self, arr: np.ndarray) -> str:
        """The npz key of ``arr`` (identical contents share one key)."""
        hit = self._by_id.get(id(arr))
        if hit is not None and hit[0] is arr:
            return hit[1]
        a = np.asarray(arr)
        if a.dtype.hasobject:
            raise NnshellError("cannot save an object array (only numeric arrays are stored)")
        h = hashlib.sha256(f"{a.dtype.str}|{a.shape}|".encode())
        h.update(np.ascontiguousarray(a).tobytes())
        digest = h.hexdigest()
        key = self._by_digest.get(digest)
        if key is None:
            key = f"a{len(self.arrays):05d}"
            self._by_digest[digest] = key
            self.arrays[key] = a
        self._by_id[id(arr)] = (arr, key)
        return key

    def value(self, v: Any) -> Any:
        """Encode a generic value (attrs, meta, info) with the tags of the module docstring."""
        if isinstance(v, np.generic):  # before float: np.float64 subclasses float
            if v.dtype.name not in _NP_SCALARS:
                raise NnshellError(f"cannot save a numpy {v.dtype} scalar")
            return {"__np__": v.dtype.name, "v": self.value(v.item())}
        if v is None or isinstance(v, (bool, str)):
            return v
        if isinstance(v, int):
            return int(v)
        if isinstance(v, float):
            return _float(v)
        if isinstance(v, np.ndarray):
            return {"__nd__": self.array(v)}
        if isinstance(v, tuple):
            return {"__tuple__": [self.value(x) for x in v]}
        if isinstance(v, list):
            return [self.value(x) for x in v]
        if isinstance(v, slice):
            return {"__slice__": [self.value(v.start), self.value(v.stop), self.value(v.step)]}
        if isinstance(v, dict):
            if all(isinstance(k, str) and not k.startswith("__") for k in v):
                return {k: self.value(x) for k, x in v.items()}
            return {"__map__": [[self.value(k), self.value(x)] for k, x in v.items()]}
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            out: dict[str, Any] = {"__dc__": _class_tag(type(v), self.whitelist)}
            for f in dataclasses.fields(v):
                out[f.name] = self.value(getattr(v, f.name))
            return out
        raise NnshellError(f"cannot save a value of type {type(v).__name__}")

    def graph(self, g: Graph) -> dict[str, Any]:
        """Encode one graph (constants by reference into the npz)."""
        return {
            "name": g.name,
            "inputs": list(g.inputs),
            "outputs": list(g.outputs),
            "meta": self.value(dict(g.meta)),
            "tensors": [
                {
                    "name": t.name,
                    "shape": [int(d) for d in t.shape],
                    "dtype": str(t.dtype),
                    "const": self.array(t.const) if t.const is not None else None,
                }
                for t in g.tensors.values()
            ],
            "nodes": [
                {
                    "name": n.name,
                    "op": n.op,
                    "inputs": list(n.inputs),
                    "outputs": list(n.outputs),
                    "attrs": self.value(n.attrs),
                    "meta": self.value(dict(n.meta)),
                }
                for n in g.nodes
            ],
        }


def _float(x: float) -> Any:
    x = float(x)
    if math.isfinite(x):
        return x
    return {"__float__": "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")}


def _qstate_doc(enc: _Encoder, qs: Any) -> dict[str, Any]:
    opts = qs.options
    return {
        "scheme": qs.scheme,
        "options": {
            "mode": {"name": opts.mode.name, "percentile": _float(opts.mode.percentile)},
            "symmetric": bool(opts.symmetric),
            "per_tensor": bool(opts.per_tensor),
            **({"bits": int(opts.bits)} if hasattr(opts, "bits") else {}),  # POW2 width
            **({"float_type": str(opts.float_type)} if hasattr(opts, "float_type") else {}),
            "relun_range": str(opts.relun_range),
            **({"mult_bits": int(opts.mult_bits)} if opts.mult_bits != 8 else {}),
        },
        "tensors": {name: q.to_dict() for name, q in qs.tensors.items()},
        # a fixed-format output (Sigmoid / Tanh / Softmax, fused or not) has no calibrated
        # range (NaN): left out, as the loader refuses NaN and every reader uses .get
        "ranges": {
            name: [_float(lo), _float(hi)]
            for name, (lo, hi) in qs.ranges.items()
            if not (math.isnan(lo) or math.isnan(hi))
        },
        "nodes": {
            name: {
                "in_q": [q.to_dict() if q is not None else None for q in nq.in_q],
                "out_q": nq.out_q.to_dict(),
                "consts": {k: {"__nd__": enc.array(a)} for k, a in nq.consts.items()},
                "info": enc.value(dict(nq.info)),
            }
            for name, nq in qs.nodes.items()
        },
    }


def _stats_doc(
    enc: _Encoder, stats: dict[str, Any], files: list[str], inputs: Any = None
) -> dict[str, Any]:
    tensors = {}
    for name, st in stats.items():
        d = {k: _float(v) if isinstance(v, float) else v for k, v in st.to_dict().items()}
        d["hist"] = {"__nd__": enc.array(st.hist)}
        tensors[name] = d
    doc: dict[str, Any] = {"files": list(files), "tensors": tensors}
    if inputs is not None:  # how the images were prepared: a later run must match
        doc["input_options"] = inputs.to_dict()
    return doc


def state_document(src: Any, npz_name: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Build the JSON document (without the npz hash) and the arrays of a session-like object.

    ``src`` needs ``graph``, ``imported``, ``prefusion``, ``settings``, ``history``,
    ``adjusted``, ``scheme``, ``stats``, ``stats_files`` and ``qstate`` attributes.
    """
    graph: Graph | None = src.graph
    if graph is None:
        from nnshell.errors import GraphStateError

        raise GraphStateError("no graph open: nothing to save", "open <model.onnx>")
    enc = _Encoder()
    st = dict(src.settings)
    doc: dict[str, Any] = {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "tool_version": __version__,
        "arrays": {"file": npz_name, "sha256": "", "count": 0},
        "source_model": {
            "path": graph.meta.get("source"),
            "sha256": graph.meta.get("sha256"),
        },
        "session": {
            "adjusted": bool(src.adjusted),
            "scheme": src.scheme,
            "history": [str(h) for h in src.history],
        },
        "settings": {k: enc.value(v) for k, v in st.items()},
        "input": {
            "norm_func": st.get("input_norm_func"),
            "divisor": enc.value(st.get("input_divisor")),
            "offset": enc.value(st.get("input_offset")),
            "transpose": st.get("input_transpose"),
            "layout": graph.meta.get("input_layout"),
            "source_layout": graph.meta.get("source_input_layout"),
        },
        "graphs": {
            "current": enc.graph(graph),
            "imported": enc.graph(src.imported) if src.imported is not None else None,
            "prefusion": enc.graph(src.prefusion) if src.prefusion is not None else None,
        },
        "quantization": _qstate_doc(enc, src.qstate) if src.qstate is not None else None,
        "calibration": (
            _stats_doc(enc, src.stats, src.stats_files, getattr(src, "calib_inputs", None))
            if src.stats is not None
            else None
        ),
    }
    doc["arrays"]["count"] = len(enc.arrays)
    return doc, enc.arrays


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An uncompressed .npz (readable by ``np.load``) with fixed zip metadata: reproducible."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for key in sorted(arrays):
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_TIME)
            info.external_attr = 0o644 << 16
            with zf.open(info, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asarray(arrays[key]), allow_pickle=False)
    return buf.getvalue()


def dump_json(doc: dict[str, Any]) -> bytes:
    """The JSON bytes of a state document (strict JSON, stable formatting)."""
    return (json.dumps(doc, indent=1, allow_nan=False, ensure_ascii=False) + "\n").encode()


def state_json_path(path: str | os.PathLike[str]) -> Path:
    """The JSON path of a state named ``path``: ``X.json`` as given, another suffix replaced."""
    p = Path(path)
    if p.suffix.lower() != ".json":
        p = p.with_name(p.name + ".json") if not p.suffix else p.with_suffix(".json")
    return p


def save_state(src: Any, path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write the state of the session-like ``src`` as ``path`` (``.json``) and its npz.

    The npz is ``<stem>.<16 hex of its SHA-256>.npz`` and the JSON, replaced last, is the one
    commit point (:func:`nnshell.state_files.commit_state`: lock, temporary files, SIGINT and
    SIGTERM deferred, fsync): an interrupted save leaves the previous state or the new one, never
    a mix. The folder must exist: a mistyped path is refused rather than silently created.
    Returns ``(json path, npz path)``.
    """
    json_path = state_json_path(path)
    folder = json_path.parent
    if not folder.is_dir():
        raise ModelFileError(
            f"cannot save state '{json_path}': folder '{folder}' does not exist",
            "create it first, or check the path",
        )
    doc, arrays = state_document(src, "")
    blob = npz_bytes(arrays)
    digest = hashlib.sha256(blob).hexdigest()
    npz = state_files.npz_name(json_path.stem, digest)
    doc["arrays"]["file"] = npz
    doc["arrays"]["sha256"] = digest
    return state_files.commit_state(json_path, dump_json(doc), npz, blob)


# --------------------------------------------------------------------------------------------
# decoding
# --------------------------------------------------------------------------------------------


def _req(d: Any, key: str, types: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(d, dict):
        raise _Malformed(f"{where} is not an object")
    if key not in d:
        raise _Malformed(f"{where} has no '{key}'")
    v = d[key]
    if not isinstance(v, types) or (isinstance(v, bool) and bool not in _as_tuple(types)):
        raise _Malformed(f"{where}.{key} has the wrong type ({type(v).__name__})")
    return v


def _as_tuple(t: type | tuple[type, ...]) -> tuple[type, ...]:
    return t if isinstance(t, tuple) else (t,)


def _str_list(v: Any, where: str) -> list[str]:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise _Malformed(f"{where} is not a list of strings")
    return list(v)


#: Element types a tensor of a state may declare (what the importer and the passes create).
_TENSOR_DTYPES = frozenset(
    {
        "bool",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "float32",
        "float64",
    }
)


def _check_shape(shape: list[int] | tuple[int, ...], where: str) -> None:
    """Non-negative dimensions, a sane rank, at most ``MAX_ELEMENTS`` elements (the importer's)."""
    if len(shape) > state_files.MAX_RANK:
        raise _Malformed(f"{where}: shape of rank {len(shape)}")
    count = 1
    for dim in shape:
        if dim < 0:
            raise _Malformed(f"{where}: shape {tuple(shape)} has a negative dimension")
        count *= dim
    if count > state_files.MAX_ELEMENTS:
        raise _Malformed(
            f"{where}: shape {tuple(shape)} is more than {state_files.MAX_ELEMENTS:,} elements"
        )


def _check_graph(g: Graph, where: str) -> None:
    """The checks of an ONNX import, on a graph read from a state.

    Unique node names; topological order (every input is a graph input, a constant or an output
    of an earlier node); one writer per tensor, never a graph input or a constant; every graph
    output produced; and every node's output shapes re-inferred with its op's shape rule and
    equal to the recorded ones, so an edited shape cannot reach the kernels or the generated C.
    """
    from nnshell.ops import get_op
    from nnshell.ops.registry import INFER_ERRORS

    names: set[str] = set()
    available = {t for t in g.inputs} | {k for k, t in g.tensors.items() if t.is_const}
    for t in g.inputs:
        if g.tensors[t].is_const:
            raise _Malformed(f"{where}: graph input '{t}' is a constant")
    writer: dict[str, str] = {}
    for node in g.nodes:
        label = f"{where}: node '{node.name}' ({node.op})"
        if node.name in names:
            raise _Malformed(f"{where}: two nodes are called '{node.name}'")
        names.add(node.name)
        for t in node.inputs:
            if t and t not in available:
                raise _Malformed(
                    f"{label} reads '{t}' before any node writes it (nodes out of order, "
                    "a cycle or a dangling input)"
                )
        for t in node.outputs:
            if not t:
                raise _Malformed(f"{label} has an unnamed output")
            if t in writer:
                raise _Malformed(f"{label} writes '{t}', already written by '{writer[t]}'")
            if t in available:
                raise _Malformed(f"{label} writes '{t}', a graph input or a constant")
            writer[t] = node.name
        probe = Node(node.name, node.op, list(node.inputs), list(node.outputs), node.attrs)
        probe.meta = dict(node.meta)  # shape rules may note things in meta: not in the state's
        try:
            shapes = get_op(node.op).infer(probe, g.in_infos(node))
        except (NnshellError, *INFER_ERRORS) as exc:
            msg = exc.message if isinstance(exc, NnshellError) else f"{type(exc).__name__} {exc}"
            raise _Malformed(
                f"{label}: its output shapes cannot be inferred ({_one_line(msg)[:160]})"
            ) from None
        if len(shapes) < len(node.outputs):
            raise _Malformed(
                f"{label} names {len(node.outputs)} outputs; its op produces {len(shapes)}"
            )
        for t, shape in zip(node.outputs, shapes, strict=False):
            inferred = tuple(int(s) for s in shape)
            recorded = g.tensors[t].shape
            if inferred != recorded:
                raise _Malformed(
                    f"{label}: output '{t}' is recorded as {list(recorded)} but its inputs "
                    f"give {list(inferred)} (the state was edited)"
                )
        available.update(node.outputs)
    for t in g.outputs:
        if t not in available:
            raise _Malformed(f"{where}: graph output '{t}' is never produced")


class _Decoder:
    """The inverse of :class:`_Encoder`, checking every structure it reads."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays = arrays
        self.whitelist = attr_classes()

    def array(self, key: Any, where: str) -> np.ndarray:
        if not isinstance(key, str) or key not in self.arrays:
            raise _Malformed(f"{where} refers to array {key!r}, which the npz does not hold")
        return self.arrays[key]

    def number(self, v: Any, where: str) -> float:
        if isinstance(v, dict) and set(v) == {"__float__"}:
            t = v["__float__"]
            if t not in ("inf", "-inf", "nan"):
                raise _Malformed(f"{where}: bad float tag {t!r}")
            return float(t)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise _Malformed(f"{where} is not a number")
        return float(v)

    def value(self, v: Any, where: str) -> Any:
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        if isinstance(v, list):
            return [self.value(x, where) for x in v]
        if not isinstance(v, dict):
            raise _Malformed(f"{where}: unexpected {type(v).__name__}")
        tags = [k for k in v if k in _TAGS]
        if not tags:
            return {k: self.value(x, f"{where}.{k}") for k, x in v.items()}
        tag = tags[0]
        body = v[tag]
        if tag == "__dc__":
            return self.dataclass(v, where)
        if len(v) != (2 if tag == "__np__" else 1):
            raise _Malformed(f"{where}: malformed {tag} value")
        if tag == "__nd__":
            return self.array(body, where)
        if tag == "__tuple__":
            if not isinstance(body, list):
                raise _Malformed(f"{where}: __tuple__ is not a list")
            return tuple(self.value(x, where) for x in body)
        if tag == "__float__":
            return self.number(v, where)
        if tag == "__np__":
            if not isinstance(body, str) or body not in _NP_SCALARS:
                raise _Malformed(f"{where}: numpy scalar type {body!r} not allowed")
            raw = self.value(v.get("v"), where)
            try:
                return np.dtype(body).type(raw)
            except (OverflowError, ValueError, TypeError):
                raise _Malformed(f"{where}: {raw!r} is not a {body}") from None
        if tag == "__slice__":
            if not isinstance(body, list) or len(body) != 3:
                raise _Malformed(f"{where}: malformed slice")
            return slice(*(self.value(x, where) for x in body))
        # __map__
        if not isinstance(body, list) or not all(isinstance(p, list) and len(p) == 2 for p in body):
            raise _Malformed(f"{where}: malformed __map__")
        out = {}
        for k, x in body:
            key = self.value(k, where)
            if isinstance(key, list):
                raise _Malformed(f"{where}: unhashable map key")
            out[key] = self.value(x, where)
        return out

    def dataclass(self, v: dict[str, Any], where: str) -> Any:
        tag = v["__dc__"]
        cls = self.whitelist.get(tag) if isinstance(tag, str) else None
        if cls is None:
            raise _Malformed(f"{where}: attribute class {tag!r} is not an op attribute class")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        kwargs, late = {}, {}
        for k, x in v.items():
            if k == "__dc__":
                continue
            if k not in fields:
                raise _Malformed(f"{where}: {tag} has no field '{k}'")
            (kwargs if fields[k].init else late)[k] = self.value(x, f"{where}.{k}")
        try:
            obj = cls(**kwargs)
        except (TypeError, ValueError) as exc:
            raise _Malformed(f"{where}: cannot rebuild {tag} ({exc})") from None
        for k, x in late.items():
            object.__setattr__(obj, k, x)
        return obj

    def graph(self, d: Any, where: str) -> Graph:
        """Rebuild one graph and check it as strictly as an ONNX import (:func:`_check_graph`)."""
        from nnshell.ops import all_ops

        ops = all_ops()
        name = _req(d, "name", str, where)
        g = Graph(name)
        g.inputs = _str_list(_req(d, "inputs", list, where), f"{where}.inputs")
        g.outputs = _str_list(_req(d, "outputs", list, where), f"{where}.outputs")
        meta = self.value(_req(d, "meta", dict, where), f"{where}.meta")
        g.meta = meta
        for i, t in enumerate(_req(d, "tensors", list, where)):
            tw = f"{where}.tensors[{i}]"
            tname = _req(t, "name", str, tw)
            if tname in g.tensors:
                raise _Malformed(f"{tw}: tensor '{tname}' is declared twice")
            shape = _req(t, "shape", list, tw)
            if not all(isinstance(s, int) and not isinstance(s, bool) for s in shape):
                raise _Malformed(f"{tw}.shape is not a list of integers")
            _check_shape(shape, f"{tw} ('{tname}')")
            dtype = _req(t, "dtype", str, tw)
            if dtype not in _TENSOR_DTYPES:
                raise _Malformed(f"{tw}: tensor '{tname}' has dtype {dtype!r}")
            ref = _req(t, "const", (str, type(None)), tw)
            const = self.array(ref, tw) if ref is not None else None
            if const is not None and tuple(const.shape) != tuple(shape):
                raise _Malformed(f"{tw}: array shape {const.shape} is not {tuple(shape)}")
            if const is not None and str(const.dtype) != dtype:
                raise _Malformed(f"{tw}: array dtype {const.dtype} is not {dtype}")
            g.tensors[tname] = TensorInfo(tname, tuple(shape), dtype, const)
        for i, n in enumerate(_req(d, "nodes", list, where)):
            nw = f"{where}.nodes[{i}]"
            op = _req(n, "op", str, nw)
            if op not in ops:
                raise _Malformed(f"{nw}: operator '{op}' is not registered in this nnshell")
            node = Node(
                _req(n, "name", str, nw),
                op,
                _str_list(_req(n, "inputs", list, nw), f"{nw}.inputs"),
                _str_list(_req(n, "outputs", list, nw), f"{nw}.outputs"),
                self.value(n.get("attrs"), f"{nw}.attrs"),
                self.value(_req(n, "meta", dict, nw), f"{nw}.meta"),
            )
            expected = ops[op].Attrs
            if node.attrs is not None and not isinstance(node.attrs, expected) and op != "Fused":
                raise _Malformed(f"{nw}: attributes {type(node.attrs).__name__} are not {op}'s")
            for t in [*node.inputs, *node.outputs]:
                if t and t not in g.tensors:
                    raise _Malformed(f"{nw}: tensor '{t}' is not declared")
            g.nodes.append(node)
        for t in [*g.inputs, *g.outputs]:
            if t not in g.tensors:
                raise _Malformed(f"{where}: graph tensor '{t}' is not declared")
        _check_graph(g, where)
        from nnshell.node_options import check_records

        try:
            check_records(g, where)  # nodeoption records: as strict as the other fields
        except ValueError as exc:
            raise _Malformed(str(exc)) from None
        return g

    def qtype(self, d: Any, where: str) -> Any:
        from nnshell.fixed_point import QType

        if not isinstance(d, dict):
            raise _Malformed(f"{where} is not a quantization type")
        if set(d) == {"float_type"}:  # a float layer's tensor (qtune, docs/FLOAT16.md)
            from nnshell.ops._float import FLOAT_TYPES, FloatType

            if d["float_type"] not in FLOAT_TYPES:
                raise _Malformed(f"{where}: unknown float type {d['float_type']!r}")
            return FloatType(str(d["float_type"]))
        try:
            return QType.from_dict(d)
        except ModelFileError as exc:
            raise _Malformed(f"{where}: {exc.message}") from None

    def qstate(self, d: Any, graph: Graph) -> Any:
        from nnshell.qrecord import NodeQuant
        from nnshell.quant.ranges import MODES, RangeMode
        from nnshell.quant.sq8 import QuantOptions, QuantState

        w = "quantization"
        scheme = _req(d, "scheme", str, w)
        if scheme == "FLOAT":  # derived from the graph alone: no array of the file is read
            from nnshell.quant.float_q import load_float_state

            return load_float_state(graph, _req(d, "options", dict, w), _Malformed)
        if scheme not in ("SQ8", "POW2"):
            raise _Malformed(f"{w}.scheme: unknown scheme {scheme!r}")
        o = _req(d, "options", dict, w)
        m = _req(o, "mode", dict, f"{w}.options")
        mname = _req(m, "name", str, f"{w}.options.mode")
        if mname not in MODES:
            raise _Malformed(f"{w}.options.mode: unknown range mode '{mname}'")
        pct = self.number(m.get("percentile"), f"{w}.options.mode.percentile")
        if not 50.0 < pct <= 100.0:  # what parse_mode accepts
            raise _Malformed(f"{w}.options.mode.percentile: {pct} is not in (50, 100]")
        mode = RangeMode(mname, pct)
        relun = o.get("relun_range", "calibrated")  # states saved before the rule: calibrated
        if relun not in ("bound", "calibrated"):
            raise _Malformed(f"{w}.options.relun_range: '{relun}' is not bound or calibrated")
        mult_bits = o.get("mult_bits", 8)
        if type(mult_bits) is not int or not 8 <= mult_bits <= 30:
            raise _Malformed(f"{w}.options.mult_bits: {mult_bits!r} is not an integer in 8..30")
        opts = QuantOptions(
            mode,
            _req(o, "symmetric", bool, f"{w}.options"),
            _req(o, "per_tensor", bool, w),
            relun_range=relun,
            mult_bits=mult_bits,
        )
        if scheme == "POW2":
            from nnshell.quant.pow2 import POW2_BITS, Pow2Options

            bits = _req(o, "bits", int, f"{w}.options")
            if bits not in POW2_BITS:
                raise _Malformed(f"{w}.options.bits: POW2 width {bits} is not 8 or 16")
            opts = Pow2Options(opts.mode, opts.symmetric, opts.per_tensor, bits, relun_range=relun)
        # QType itself refuses a scale that is not finite and > 0, a zero point outside its
        # integer type and a width outside 2..32 bits (from_dict: one _Malformed line)
        tensors = {}
        for k, v in _req(d, "tensors", dict, w).items():
            if k not in graph.tensors:
                raise _Malformed(f"{w}.tensors: the graph has no tensor '{k}'")
            tensors[k] = self.qtype(v, f"{w}.tensors.{k}")
        ranges = {}
        for k, v in _req(d, "ranges", dict, w).items():
            if not isinstance(v, list) or len(v) != 2:
                raise _Malformed(f"{w}.ranges.{k} is not [lo, hi]")
            if k not in graph.tensors:
                raise _Malformed(f"{w}.ranges: the graph has no tensor '{k}'")
            lo, hi = (self.number(x, f"{w}.ranges.{k}") for x in v)
            if math.isnan(lo) or math.isnan(hi):
                raise _Malformed(f"{w}.ranges.{k}: [{lo}, {hi}] is not a range")
            ranges[k] = (lo, hi)
        nodes = {}
        names = {n.name for n in graph.nodes}
        for k, v in _req(d, "nodes", dict, w).items():
            nw = f"{w}.nodes.{k}"
            if k not in names:
                raise _Malformed(f"{nw}: the graph has no node '{k}'")
            in_q = [
                self.qtype(q, f"{nw}.in_q") if q is not None else None
                for q in _req(v, "in_q", list, nw)
            ]
            if len(in_q) != len(graph.node(k).inputs):
                raise _Malformed(
                    f"{nw}.in_q has {len(in_q)} entries for {len(graph.node(k).inputs)} inputs"
                )
            consts = {}
            for ck, ref in _req(v, "consts", dict, nw).items():
                if not isinstance(ref, dict) or set(ref) != {"__nd__"}:
                    raise _Malformed(f"{nw}.consts.{ck} is not an array reference")
                consts[ck] = self.array(ref["__nd__"], f"{nw}.consts.{ck}")
            info = self.value(_req(v, "info", dict, nw), f"{nw}.info")
            nodes[k] = NodeQuant(in_q, self.qtype(v.get("out_q"), f"{nw}.out_q"), consts, info)
        return QuantState(scheme, opts, tensors, nodes, ranges)

    def input_options(self, d: Any) -> Any:
        """The calibration's input options (absent in older states: None)."""
        from nnshell.errors import NnshellError
        from nnshell.images import InputOptions

        if d is None:
            return None
        w = "calibration.input_options"
        if not isinstance(d, dict) or not all(
            v is None or isinstance(v, str | int | float | bool) for v in d.values()
        ):
            raise _Malformed(f"{w} is not a mapping of plain values")
        try:
            return InputOptions.from_dict(d)
        except (NnshellError, TypeError) as exc:
            raise _Malformed(f"{w}: {exc}") from None

    def stats(self, d: Any) -> tuple[dict[str, Any], list[str]]:
        from nnshell.quant.stats import HIST_BINS, TensorStats

        w = "calibration"
        files = _str_list(_req(d, "files", list, w), f"{w}.files")
        out = {}
        for name, v in _req(d, "tensors", dict, w).items():
            sw = f"{w}.tensors.{name}"
            hist = self.value(_req(v, "hist", dict, sw), f"{sw}.hist")
            if not isinstance(hist, np.ndarray) or hist.shape != (HIST_BINS,):
                raise _Malformed(f"{sw}.hist is not a 1-D array of {HIST_BINS} bins")
            if hist.dtype.kind not in "iu" or (hist.size and int(hist.min()) < 0):
                raise _Malformed(f"{sw}.hist is not a histogram (counts must be integers >= 0)")
            st = TensorStats(
                min=self.number(v.get("min"), f"{sw}.min"),
                max=self.number(v.get("max"), f"{sw}.max"),
                count=_req(v, "count", int, sw),
                mean_=self.number(v.get("mean"), f"{sw}.mean"),
                m2=self.number(v.get("m2"), f"{sw}.m2"),
                hist_range=self.number(v.get("hist_range"), f"{sw}.hist_range"),
                hist=np.array(hist, dtype=np.int64),  # its own writable copy: update() adds to it
                argmin=_req(v, "argmin", int, sw),
                argmax=_req(v, "argmax", int, sw),
            )
            _check_stats(st, sw)
            out[name] = st
        return out, files


def _check_stats(st: Any, where: str) -> None:
    """Statistics a calibration can produce: finite figures (min/max too once a value was seen),
    a non-negative count, variance and histogram range, image indices >= -1."""
    if st.count < 0 or st.argmin < -1 or st.argmax < -1:
        raise _Malformed(f"{where}: negative count or image index")
    figures = [st.mean_, st.m2, st.hist_range]
    if st.count > 0:
        figures += [st.min, st.max]
        if st.min > st.max:
            raise _Malformed(f"{where}: min {st.min} > max {st.max}")
    if not all(math.isfinite(x) for x in figures) or st.m2 < 0 or st.hist_range < 0:
        raise _Malformed(f"{where}: statistics out of range")


#: numpy scalar types a state may hold: the tensor element types.
_NP_SCALARS = _TENSOR_DTYPES


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _check_npz_name(name: Any, json_path: Path) -> Path:
    """The npz next to the JSON; refuse anything that is not a plain file name in that folder."""
    if (
        not isinstance(name, str)
        or not name
        or name in (".", "..")
        or "/" in name
        or "\\" in name
        or "\0" in name
        or os.path.basename(name) != name
        or Path(name).is_absolute()
        or not name.endswith(".npz")
    ):
        raise ModelFileError(
            f"state file '{json_path}': array file name {name!r} is not a plain .npz file name "
            "in the state's folder"
        )
    return json_path.parent / name


class _JsonRefused(Exception):
    """Internal: the JSON text parses but breaks the state's stricter rules."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _JsonRefused(f"key '{_one_line(k)[:60]}' appears twice in one object")
        out[k] = v
    return out


def _bounded_int(text: str) -> int:
    # a state holds int64 / uint64 values at most; longer literals are refused before int()
    if len(text) > 21:
        raise _JsonRefused(f"integer {text[:24]}... is out of range")
    v = int(text)
    if not -(1 << 63) <= v < (1 << 64):
        raise _JsonRefused(f"integer {text} is out of range")
    return v


def _finite_float(text: str) -> float:
    v = float(text)
    if not math.isfinite(v):
        raise _JsonRefused(f"number {text[:24]} is out of range (non-finite values are tagged)")
    return v


def _no_constant(text: str) -> Any:
    raise _JsonRefused(f"'{text}' is not JSON (non-finite values are tagged)")


def _parse_json(raw: bytes, json_path: Path) -> Any:
    """Strict JSON: no duplicate keys, no NaN/Infinity literals, numbers within int64/float64."""
    try:
        return json.loads(
            raw.decode("utf-8"),
            object_pairs_hook=_unique_keys,
            parse_int=_bounded_int,
            parse_float=_finite_float,
            parse_constant=_no_constant,
        )
    except _JsonRefused as exc:
        raise ModelFileError(
            f"state file '{json_path}' is not a state written by nnshell ({exc})",
            "save the state again",
        ) from None
    except RecursionError:
        raise ModelFileError(
            f"state file '{json_path}' is not a state (JSON nested too deeply)"
        ) from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise ModelFileError(
            f"state file '{json_path}' is not valid JSON (corrupt or truncated: "
            f"{_one_line(getattr(exc, 'msg', str(exc)))} at byte {getattr(exc, 'pos', '?')})",
            "save the state again",
        ) from None


def _array_refs(doc: dict[str, Any]) -> set[str]:
    """Every npz key the document refers to: ``{"__nd__": key}`` anywhere, tensor constants.

    Only these members of the npz are ever read. Iterative: the JSON parser already bounded the
    nesting, this walk must not hit the recursion limit either.
    """
    refs: set[str] = set()
    graphs = doc.get("graphs")
    if isinstance(graphs, dict):
        for g in graphs.values():
            tensors = g.get("tensors") if isinstance(g, dict) else None
            for t in tensors if isinstance(tensors, list) else []:
                if isinstance(t, dict) and isinstance(t.get("const"), str):
                    refs.add(t["const"])
    stack: list[Any] = [doc]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            if isinstance(v.get("__nd__"), str):
                refs.add(v["__nd__"])
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return refs


def load_state(path: str | os.PathLike[str]) -> SavedState:
    """Read and validate a state written by :func:`save_state`; raise one ModelFileError line.

    A number too large for Python, an allocation that fails or a structure nested too deeply
    anywhere in the decoding is a refusal of the state too, never an internal error.
    """
    json_path = Path(path)
    try:
        return _load_state(json_path)
    except RecursionError:
        raise ModelFileError(
            f"state file '{json_path}' is malformed: values nested too deeply"
        ) from None
    except OverflowError as exc:
        raise ModelFileError(
            f"state file '{json_path}' is malformed: a number is out of range "
            f"({_one_line(str(exc))[:120]})",
            "save the state again",
        ) from None
    except MemoryError:
        raise ModelFileError(
            f"state file '{json_path}' needs more memory than is available: it declares "
            "arrays too large for this machine"
        ) from None


def _load_state(json_path: Path) -> SavedState:
    raw = safeio.read_bytes(json_path, "state file", safeio.STATE_JSON)
    doc = _parse_json(raw, json_path)
    del raw
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ModelFileError(f"'{json_path}' is not an nnshell state file (no format '{FORMAT}')")
    version = doc.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelFileError(f"state file '{json_path}': invalid schema_version {version!r}")
    if version > SCHEMA_VERSION:
        raise ModelFileError(
            f"state file '{json_path}' has schema version {version} (written by nnshell "
            f"{_one_line(str(doc.get('tool_version', '?')))[:40]}); this nnshell {__version__} "
            f"reads schema version {SCHEMA_VERSION} at most",
            "upgrade nnshell",
        )
    arrays_doc = doc.get("arrays")
    if not isinstance(arrays_doc, dict):
        raise ModelFileError(f"state file '{json_path}' is malformed: no 'arrays' section")
    npz_path = _check_npz_name(arrays_doc.get("file"), json_path)
    digest = arrays_doc.get("sha256")
    if not isinstance(digest, str) or len(digest) != 64:
        raise ModelFileError(
            f"state file '{json_path}' is malformed: arrays.sha256 is not a SHA-256",
            "save the state again",
        )
    if not os.path.lexists(npz_path):
        raise ModelFileError(
            f"state file '{json_path}': its array file '{npz_path}' is missing",
            "copy the .npz together with the .json",
        )
    arrays = state_files.read_arrays(npz_path, digest, _array_refs(doc), json_path)
    try:
        return _decode(doc, arrays, json_path)
    except _Malformed as exc:
        raise ModelFileError(
            f"state file '{json_path}' is malformed: {_one_line(str(exc))}", "save the state again"
        ) from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise ModelFileError(
            f"state file '{json_path}' is malformed: {type(exc).__name__} {_one_line(str(exc))}",
            "save the state again",
        ) from None


def _decode(doc: dict[str, Any], arrays: dict[str, np.ndarray], json_path: Path) -> SavedState:
    dec = _Decoder(arrays)
    graphs = _req(doc, "graphs", dict, "state")
    graph = dec.graph(_req(graphs, "current", dict, "graphs"), "graphs.current")
    imported = (
        dec.graph(graphs["imported"], "graphs.imported")
        if graphs.get("imported") is not None
        else None
    )
    prefusion = (
        dec.graph(graphs["prefusion"], "graphs.prefusion")
        if graphs.get("prefusion") is not None
        else None
    )
    sess = _req(doc, "session", dict, "state")
    history = _str_list(_req(sess, "history", list, "session"), "session.history")
    adjusted = _req(sess, "adjusted", bool, "session")
    scheme = _req(sess, "scheme", (str, type(None)), "session")
    settings = settings_mod.defaults()
    for name, v in _req(doc, "settings", dict, "state").items():
        sd = settings_mod.SETTINGS.get(name)
        if sd is None:
            continue  # a setting this version does not know: ignored
        val = dec.value(v, f"settings.{name}")
        ok = (val is None and sd.optional) or (
            isinstance(val, sd.type) and not (isinstance(val, bool) and sd.type is not bool)
        )
        if sd.type is float and isinstance(val, int) and not isinstance(val, bool):
            val, ok = float(val), True
        if not ok:
            raise _Malformed(f"settings.{name}: {val!r} is not a {sd.type.__name__}")
        settings[name] = settings_mod.validate_loaded(name, val, f"state file '{json_path}'")
    qstate = None
    if doc.get("quantization") is not None:
        qstate = dec.qstate(doc["quantization"], graph)
    stats, files, calib_inputs = None, [], None
    if doc.get("calibration") is not None:
        stats, files = dec.stats(doc["calibration"])
        calib_inputs = dec.input_options(doc["calibration"].get("input_options"))
    src = doc.get("source_model") or {}
    return SavedState(
        path=str(json_path),
        graph=graph,
        imported=imported,
        prefusion=prefusion,
        settings=settings,
        history=history,
        adjusted=adjusted,
        scheme=scheme,
        stats=stats,
        stats_files=files,
        qstate=qstate,
        calib_inputs=calib_inputs,
        tool_version=str(doc.get("tool_version", "?")),
        schema_version=int(doc["schema_version"]),
        source_sha256=src.get("sha256") if isinstance(src, dict) else None,
    )


__all__ = [
    "FORMAT",
    "SCHEMA_VERSION",
    "SavedState",
    "attr_classes",
    "load_state",
    "save_state",
    "state_document",
    "state_json_path",
]
