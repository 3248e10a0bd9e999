"""Write ``nnshell/importers/onnx_attr_types.json``: the attribute types ONNX declares for every
version of every operator nnshell imports.

Opening a model checks each attribute's type against its operator's schema (a corrupt file gets
one line naming the attribute). Reading the schemas means loading onnx's C++ extension, about
a tenth of ``nnshell MODEL -c quit``; this table answers for the operators nnshell supports and
the importer falls back to the extension for anything else (another domain, a newer opset than
the table's, an operator added to nnshell after the table was written). tests/importers checks
every entry against the installed ``onnx``.

Run it again after adding an operator: ``python scripts/make_onnx_attr_table.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "nnshell" / "importers" / "onnx_attr_types.json"


def build() -> dict:
    """``{"max_opset": N, "ops": {op: [[since, {attr: type}], ...]}}``, versions ascending."""
    import onnx.defs

    from nnshell.ops import supported_onnx_types

    wanted = set(supported_onnx_types())
    ops: dict[str, list] = {}
    for schema in onnx.defs.get_all_schemas_with_history():
        if schema.domain in ("", "ai.onnx") and schema.name in wanted:
            types = {k: int(v.type.value) for k, v in sorted(schema.attributes.items())}
            ops.setdefault(schema.name, []).append([schema.since_version, types])
    for versions in ops.values():
        versions.sort(key=lambda e: e[0])
    return {"max_opset": onnx.defs.onnx_opset_version(), "ops": dict(sorted(ops.items()))}


def main() -> int:
    OUT.write_text(json.dumps(build(), separators=(",", ":"), sort_keys=False) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
