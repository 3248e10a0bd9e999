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
is :mod:`nnshell.state.files`; this module owns what is in the files.

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
                    "calibrated" when absent), "nntool_padding" (padded-layer inputs
                    symmetric; true when absent)}, "tensors": {name: QType.to_dict()},
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
  its zip and ``.npy`` headers before it is read (:func:`nnshell.state.files.read_arrays`);
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

import os  # noqa: F401 - tests patch ``nnshell.state.os.replace`` (the one os module)

from nnshell.state.load import load_state
from nnshell.state.save import save_state, state_document, state_json_path
from nnshell.state.schema import FORMAT, SCHEMA_VERSION, SavedState, attr_classes

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
