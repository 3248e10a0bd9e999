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
