"""The start-up fast path (protobuf classes without the ``onnx`` package) imports exactly as the
full package does: same graphs, same constants, same one-line errors, on valid and mutated models.

The pytest process has ``onnx`` imported already (so the importer uses the full package here); a
fresh interpreter that never imports ``onnx`` itself runs the fast path on the same files.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.fuzz.generators import SAMPLE_MODEL, base_models, onnx_cases

#: What opening one file gives: the one-line error, or a hash of the graph (tensors, constants,
#: nodes); run in a fresh interpreter (the fast path) and in this one (the full package).
_OUTCOME = r"""
import hashlib
from nnshell.errors import NnshellError
from nnshell.importers.onnx_importer import load_onnx

def outcome(path):
    try:
        g = load_onnx(path)
    except NnshellError as exc:
        return ["error", type(exc).__name__, str(exc)]
    h = hashlib.sha256()
    for name, t in sorted(g.tensors.items()):
        h.update(repr((name, t.shape, t.dtype)).encode())
        if t.const is not None:
            h.update(str(t.const.dtype).encode() + t.const.tobytes())
    for n in g.nodes:
        h.update(repr((n.name, n.op, n.inputs, n.outputs, repr(n.attrs))).encode())
    return ["ok", len(g.nodes), h.hexdigest()]
"""

_PROBE = (
    _OUTCOME
    + r"""
import json, sys
paths = sys.argv[1:]
first = outcome(paths[0])
full_loaded_by_sample = "onnx" in sys.modules or "ml_dtypes" in sys.modules
extension_loaded_by_sample = "onnx.onnx_cpp2py_export" in sys.modules
print(json.dumps({"sample_needs_onnx": full_loaded_by_sample,
                  "sample_needs_extension": extension_loaded_by_sample,
                  "outcomes": [first] + [outcome(p) for p in paths[1:]]}))
"""
)


def _run_probe_here(paths: list[str]) -> list[list[object]]:
    """The same outcomes in this process (full ``onnx`` package already imported)."""
    space: dict[str, object] = {}
    exec(_OUTCOME, space)  # noqa: S102 - the test's own probe source, shared with the subprocess
    outcome = space["outcome"]
    return [outcome(p) for p in paths]  # type: ignore[operator]


def test_fast_path_matches_full_onnx(tmp_path: Path) -> None:
    paths = [str(SAMPLE_MODEL)]
    for name, data in base_models().items():
        paths.append(str(tmp_path / f"base_{name}.onnx"))
        Path(paths[-1]).write_bytes(data)
    for i, (_base, data, _what) in enumerate(onnx_cases(7, 120)):
        paths.append(str(tmp_path / f"case_{i}.onnx"))
        Path(paths[-1]).write_bytes(data)
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, *paths], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    fast = json.loads(proc.stdout)
    assert not fast["sample_needs_onnx"], "opening the sample model imported the onnx package"
    assert not fast["sample_needs_extension"], "the sample's schemas came from onnx's extension"
    full = _run_probe_here(paths)
    assert len(fast["outcomes"]) == len(full)
    diffs = [
        (p, a, b)
        for p, a, b in zip(paths, fast["outcomes"], full, strict=True)
        if a != [*b]  # json turns tuples into lists
    ]
    assert not diffs, diffs[:3]
    kinds = {o[0] for o in full}
    assert kinds == {"ok", "error"}  # both outcomes are compared


def test_attribute_table_agrees_with_onnx_schemas() -> None:
    """Every answer of the table (scripts/make_onnx_attr_table.py) is what the installed onnx's
    own schema in force at that opset declares; opsets beyond the table go to onnx."""
    import onnx.defs

    from nnshell.importers import onnx_proto
    from nnshell.ops import supported_onnx_types

    table = onnx_proto._attr_table()
    assert set(table["ops"]) == {op for op in supported_onnx_types() if onnx.defs.has(op)}, (
        "run scripts/make_onnx_attr_table.py after adding an operator"
    )
    checked = 0
    for op in table["ops"]:
        for version in range(1, table["max_opset"] + 3):
            try:
                schema = onnx.defs.get_schema(op, version, "")
            except onnx.defs.SchemaError:
                continue
            want = {k: int(v.type.value) for k, v in schema.attributes.items()}
            assert onnx_proto.schema_attr_types(op, version) == want, (op, version)
            checked += 1
    assert checked > 500
