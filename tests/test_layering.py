"""Enforce the layering of ARCHITECTURE.md with an import scan of every module."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "nnshell"

#: Third-party modules only some packages may import.
RESTRICTED = {
    "cmd2": ("nnshell.shell",),
    "rich": ("nnshell.report", "nnshell.shell"),
    "onnx": ("nnshell.importers", "nnshell.exporters"),
    "onnxruntime": ("nnshell.exec.ort_backend", "nnshell.exec.ort_timing", "nnshell.exporters"),
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


@cache
def _tree(path: Path) -> ast.Module:
    """A file parsed once for all the tests of this module."""
    return ast.parse(path.read_text(encoding="utf-8"))


def _imports(path: Path) -> list[str]:
    tree = _tree(path)
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
OP_HELPERS = ("_pow2", "_sq8", "_conv_kernel")


def _ops_imported(path: Path) -> list[str]:
    """The ``nnshell.ops`` package and modules ``path`` imports, anywhere in the file."""
    names: list[str] = []
    for node in ast.walk(_tree(path)):
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
    """``_pow2``, ``_sq8``, ``_conv_kernel``: arithmetic only; the hooks live in the op classes."""
    problems = []
    for helper in OP_HELPERS:
        for imp in _ops_imported(PKG / "ops" / f"{helper}.py"):
            last = imp.rsplit(".", 1)[-1]
            if imp == "nnshell.ops" or not (last.startswith("_") or last == "registry"):
                problems.append(f"nnshell.ops.{helper} imports {imp}")
    assert problems == []


# -- import cycles between files -------------------------------------------------------------


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.Module, module_level: bool) -> list[ast.Import | ast.ImportFrom]:
    """The import statements of a file, ``if TYPE_CHECKING:`` blocks left out; with
    ``module_level`` only those run when the module is imported (not inside functions)."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.orelse:
                    visit_stmt(stmt)
                continue
            visit_stmt(child)

    def visit_stmt(child: ast.AST) -> None:
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            found.append(child)
        elif module_level and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.orelse:
                visit_stmt(stmt)
        else:
            visit(child)

    visit(tree)
    return found


def _import_graph(module_level: bool) -> dict[str, set[str]]:
    """``module -> modules of nnshell it imports`` (a ``from P import m`` of a submodule is m)."""
    files = {_module_name(p): p for p in PKG.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for mod, path in files.items():
        deps: set[str] = set()
        for node in _import_nodes(_tree(path), module_level):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                assert node.level == 0, f"{path}: relative import"
                base = node.module or ""
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names
                ]
            for target in targets:
                while target not in files and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target in files and target != mod:
                    deps.add(target)
        graph[mod] = deps
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    x = stack.pop()
                    on_stack.discard(x)
                    comp.append(x)
                    if x == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def test_cycle_finder_finds_a_cycle() -> None:
    """The finder itself: a hand-made graph with one 3-cycle and a tail."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_at_module_level() -> None:
    """No two files import each other, directly or around a loop, when they are loaded."""
    assert _cycles(_import_graph(module_level=True)) == []


def test_no_import_cycle_between_files() -> None:
    """Nor through imports deferred into functions (a lazy import hides a cycle, not removes
    it); only ``if TYPE_CHECKING:`` imports are left out."""
    assert _cycles(_import_graph(module_level=False)) == []
