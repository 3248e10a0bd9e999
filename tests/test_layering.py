"""Enforce the layering of ARCHITECTURE.md with an import scan of every module."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "nnshell"

#: Third-party modules only some packages may import.
RESTRICTED = {
    "cmd2": ("nnshell.shell",),
    "rich": ("nnshell.report", "nnshell.shell"),
    "onnx": ("nnshell.importers", "nnshell.exporters"),
    "onnxruntime": ("nnshell.exec.ort_backend", "nnshell.exporters"),
}
#: The IR and the ops must not reach up into the drivers, the session or the shell.
LOWER = {
    "nnshell.ir": (
        "nnshell.ops",
        "nnshell.importers",
        "nnshell.exec",
        "nnshell.session",
        "nnshell.shell",
        "nnshell.report",
    ),
    "nnshell.ops": (
        "nnshell.importers",
        "nnshell.exec",
        "nnshell.session",
        "nnshell.shell",
        "nnshell.report",
    ),
}


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    return ".".join(rel.parts).removesuffix(".__init__")


def test_layering() -> None:
    problems = []
    for path in PKG.rglob("*.py"):
        mod = _module_name(path)
        for imp in _imports(path):
            top = imp.split(".")[0]
            allowed = RESTRICTED.get(top)
            if allowed is not None and not mod.startswith(allowed):
                problems.append(f"{mod} imports {imp}")
            for low, banned in LOWER.items():
                if mod.startswith(low) and imp.startswith(banned):
                    problems.append(f"{mod} imports {imp} (layering)")
    assert problems == []


#: Modules of shared op arithmetic that op modules import, so they must never import an op
#: module back (``nnshell.ops`` itself registers every op, so it counts as one).
OP_HELPERS = ("_pow2",)


def _ops_imported(path: Path) -> list[str]:
    """The ``nnshell.ops`` package and modules ``path`` imports, anywhere in the file."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.name}: relative import"
            mod = node.module or ""
            names.append(mod)
            if mod in ("nnshell", "nnshell.ops"):  # from nnshell.ops import conv, ...
                names += [f"{mod}.{a.name}" for a in node.names]
    return [n for n in names if n == "nnshell.ops" or n.startswith("nnshell.ops.")]


def test_op_helpers_import_no_op_module() -> None:
    """``nnshell.ops._pow2`` holds arithmetic only: the ops' POW2 hooks live in their classes."""
    problems = []
    for helper in OP_HELPERS:
        for imp in _ops_imported(PKG / "ops" / f"{helper}.py"):
            last = imp.rsplit(".", 1)[-1]
            if imp == "nnshell.ops" or not (last.startswith("_") or last == "registry"):
                problems.append(f"nnshell.ops.{helper} imports {imp}")
    assert problems == []
