"""Encoding a session as a state: the JSON document, the npz of its arrays, ``save_state``."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from nnshell import __version__
from nnshell.errors import ModelFileError, NnshellError
from nnshell.ir import Graph
from nnshell.state import files as state_files
from nnshell.state.schema import (
    _ZIP_TIME,
    FORMAT,
    SCHEMA_VERSION,
    _class_tag,
    attr_classes,
)
from nnshell.state.validate import (
    _NP_SCALARS,
)


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
            "nntool_padding": bool(getattr(opts, "nntool_padding", False)),
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
    commit point (:func:`nnshell.state.files.commit_state`: lock, temporary files, SIGINT and
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
