"""``load_state``: read, validate and decode a state; every failure is one ModelFileError line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from nnshell import __version__, safeio
from nnshell import settings as settings_mod
from nnshell.errors import ModelFileError
from nnshell.state import files as state_files
from nnshell.state.decode import (
    _Decoder,
)
from nnshell.state.schema import (
    FORMAT,
    SCHEMA_VERSION,
    SavedState,
    _Malformed,
    _req,
    _str_list,
)
from nnshell.state.validate import (
    _array_refs,
    _check_npz_name,
    _one_line,
    _parse_json,
)


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
