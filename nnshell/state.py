"""Save and restore a whole session: ``save_state`` / ``load_state`` (``nnshell STATE.json``).

A state is two files in one folder, written atomically, never pickled:

* ``<stem>.json`` — everything that is not a numeric array, as plain JSON (strict: no NaN or
  Infinity literals, keys in a fixed order, so saving the same session twice gives the same bytes);
* ``<stem>.npz`` — every array (constants, integer parameters, histograms), each stored once
  (identical arrays share one key), read back with ``np.load(..., allow_pickle=False)``.

JSON layout (``schema_version`` 1)::

    format          "nnshell-state"
    schema_version  1 (a newer file is refused with both versions named)
    tool_version    nnshell version that wrote it
    arrays          {"file": "<stem>.npz", "sha256": <hex of the npz bytes>, "count": n}
    source_model    {"path", "sha256"} of the model first opened (graph.meta)
    session         {"adjusted", "scheme", "history": [commands]}
    settings        every ``set`` value by name
    input           normalisation settings and the input layout (informative copy)
    graphs          {"current": G, "imported": G | null, "prefusion": G | null}
    quantization    null | {"scheme", "options": {"mode": {"name", "percentile"}, "symmetric",
                    "per_tensor", "bits" (POW2 only)}, "tensors": {name: QType.to_dict()},
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

Loading validates everything before the session sees any of it (the schema version, required keys
and types, the npz: a plain file name in the state's folder, present, with the recorded SHA-256,
registered op names, whitelisted classes); any failure is one :class:`ModelFileError` line.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nnshell import __version__
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
        },
        "tensors": {name: q.to_dict() for name, q in qs.tensors.items()},
        "ranges": {name: [_float(lo), _float(hi)] for name, (lo, hi) in qs.ranges.items()},
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


def _stats_doc(enc: _Encoder, stats: dict[str, Any], files: list[str]) -> dict[str, Any]:
    tensors = {}
    for name, st in stats.items():
        d = {k: _float(v) if isinstance(v, float) else v for k, v in st.to_dict().items()}
        d["hist"] = {"__nd__": enc.array(st.hist)}
        tensors[name] = d
    return {"files": list(files), "tensors": tensors}


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
            _stats_doc(enc, src.stats, src.stats_files) if src.stats is not None else None
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


def state_paths(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """``(json path, npz path)`` of a state: ``X.json`` and ``X.npz`` side by side."""
    p = Path(path)
    if p.suffix.lower() != ".json":
        p = p.with_name(p.name + ".json") if not p.suffix else p.with_suffix(".json")
    return p, p.with_suffix(".npz")


def save_state(src: Any, path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write the state of the session-like ``src`` to ``path`` (``.json``) and its ``.npz``.

    Both files are written to temporary names in the target folder, then renamed (the npz first,
    the JSON last), so an interrupted save leaves the previous state readable or detectably
    inconsistent (its recorded npz hash no longer matches), never half-written.
    """
    json_path, npz_path = state_paths(path)
    doc, arrays = state_document(src, npz_path.name)
    blob = npz_bytes(arrays)
    doc["arrays"]["sha256"] = hashlib.sha256(blob).hexdigest()
    text = dump_json(doc)
    folder = json_path.parent if str(json_path.parent) else Path(".")
    if not folder.is_dir():
        try:  # like `gen -M`, a missing output folder is created
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ModelFileError(
                f"cannot save state '{json_path}': cannot create folder '{folder}' "
                f"({exc.strerror or type(exc).__name__})"
            ) from None
    tmps: list[str] = []
    try:
        staged = []
        for target, data in ((npz_path, blob), (json_path, text)):
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
            tmps.append(tmp)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            staged.append((tmp, target))
        for tmp, target in staged:
            os.replace(tmp, target)
    except OSError as exc:
        raise ModelFileError(
            f"cannot save state '{json_path}': {exc.strerror or exc}",
            "choose a writable folder",
        ) from None
    finally:
        for tmp in tmps:
            if os.path.exists(tmp):
                os.remove(tmp)
    return json_path, npz_path


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
            return np.dtype(body).type(self.value(v.get("v"), where))
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
            shape = _req(t, "shape", list, tw)
            if not all(isinstance(s, int) and not isinstance(s, bool) for s in shape):
                raise _Malformed(f"{tw}.shape is not a list of integers")
            dtype = _req(t, "dtype", str, tw)
            ref = _req(t, "const", (str, type(None)), tw)
            const = self.array(ref, tw) if ref is not None else None
            if const is not None and tuple(const.shape) != tuple(shape):
                raise _Malformed(f"{tw}: array shape {const.shape} is not {tuple(shape)}")
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
        return g

    def qtype(self, d: Any, where: str) -> Any:
        from nnshell.fixed_point import QType

        if not isinstance(d, dict):
            raise _Malformed(f"{where} is not a quantization type")
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
        o = _req(d, "options", dict, w)
        m = _req(o, "mode", dict, f"{w}.options")
        mname = _req(m, "name", str, f"{w}.options.mode")
        if mname not in MODES:
            raise _Malformed(f"{w}.options.mode: unknown range mode '{mname}'")
        mode = RangeMode(mname, self.number(m.get("percentile"), f"{w}.options.mode.percentile"))
        opts = QuantOptions(
            mode, _req(o, "symmetric", bool, f"{w}.options"), _req(o, "per_tensor", bool, w)
        )
        if scheme == "POW2":
            from nnshell.quant.pow2 import POW2_BITS, Pow2Options

            bits = _req(o, "bits", int, f"{w}.options")
            if bits not in POW2_BITS:
                raise _Malformed(f"{w}.options.bits: POW2 width {bits} is not 8 or 16")
            opts = Pow2Options(opts.mode, opts.symmetric, opts.per_tensor, bits)
        tensors = {
            k: self.qtype(v, f"{w}.tensors.{k}") for k, v in _req(d, "tensors", dict, w).items()
        }
        ranges = {}
        for k, v in _req(d, "ranges", dict, w).items():
            if not isinstance(v, list) or len(v) != 2:
                raise _Malformed(f"{w}.ranges.{k} is not [lo, hi]")
            ranges[k] = (self.number(v[0], f"{w}.ranges"), self.number(v[1], f"{w}.ranges"))
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
            consts = {}
            for ck, ref in _req(v, "consts", dict, nw).items():
                if not isinstance(ref, dict) or set(ref) != {"__nd__"}:
                    raise _Malformed(f"{nw}.consts.{ck} is not an array reference")
                consts[ck] = self.array(ref["__nd__"], f"{nw}.consts.{ck}")
            info = self.value(_req(v, "info", dict, nw), f"{nw}.info")
            nodes[k] = NodeQuant(in_q, self.qtype(v.get("out_q"), f"{nw}.out_q"), consts, info)
        return QuantState(scheme, opts, tensors, nodes, ranges)

    def stats(self, d: Any) -> tuple[dict[str, Any], list[str]]:
        from nnshell.quant.stats import TensorStats

        w = "calibration"
        files = _str_list(_req(d, "files", list, w), f"{w}.files")
        out = {}
        for name, v in _req(d, "tensors", dict, w).items():
            sw = f"{w}.tensors.{name}"
            hist = self.value(_req(v, "hist", dict, sw), f"{sw}.hist")
            if not isinstance(hist, np.ndarray) or hist.ndim != 1:
                raise _Malformed(f"{sw}.hist is not a 1-D array")
            out[name] = TensorStats(
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
        return out, files


_NP_SCALARS = {
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


def load_state(path: str | os.PathLike[str]) -> SavedState:
    """Read and validate a state written by :func:`save_state`; raise one ModelFileError line."""
    json_path = Path(path)
    if not json_path.is_file():
        raise ModelFileError(f"state file '{json_path}' not found", "check the path")
    try:
        raw = json_path.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"cannot read state file '{json_path}': {exc.strerror}") from None
    try:
        doc = json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise ModelFileError(
            f"state file '{json_path}' is not a state (JSON nested too deeply)"
        ) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(
            f"state file '{json_path}' is not valid JSON (corrupt or truncated: "
            f"{_one_line(getattr(exc, 'msg', str(exc)))} at byte {getattr(exc, 'pos', '?')})",
            "save the state again",
        ) from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ModelFileError(f"'{json_path}' is not an nnshell state file (no format '{FORMAT}')")
    version = doc.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelFileError(f"state file '{json_path}': invalid schema_version {version!r}")
    if version > SCHEMA_VERSION:
        raise ModelFileError(
            f"state file '{json_path}' has schema version {version} (written by nnshell "
            f"{doc.get('tool_version', '?')}); this nnshell {__version__} reads schema version "
            f"{SCHEMA_VERSION} at most",
            "upgrade nnshell",
        )
    arrays_doc = doc.get("arrays")
    if not isinstance(arrays_doc, dict):
        raise ModelFileError(f"state file '{json_path}' is malformed: no 'arrays' section")
    npz_path = _check_npz_name(arrays_doc.get("file"), json_path)
    if not npz_path.is_file():
        raise ModelFileError(
            f"state file '{json_path}': its array file '{npz_path}' is missing",
            "copy the .npz together with the .json",
        )
    blob = npz_path.read_bytes()
    if hashlib.sha256(blob).hexdigest() != arrays_doc.get("sha256"):
        raise ModelFileError(
            f"state file '{json_path}': '{npz_path.name}' does not match the state (SHA-256 "
            "differs: modified, truncated or from another save)",
            "save the state again",
        )
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except Exception as exc:  # noqa: BLE001 - zipfile/numpy raise many types for bad data
        raise ModelFileError(
            f"state file '{json_path}': '{npz_path.name}' is not readable ({type(exc).__name__})"
        ) from None
    try:
        return _decode(doc, arrays, json_path)
    except _Malformed as exc:
        raise ModelFileError(
            f"state file '{json_path}' is malformed: {_one_line(str(exc))}", "save the state again"
        ) from None
    except RecursionError:
        raise ModelFileError(
            f"state file '{json_path}' is malformed: values nested too deeply"
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
    stats, files = None, []
    if doc.get("calibration") is not None:
        stats, files = dec.stats(doc["calibration"])
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
    "state_paths",
]
