"""Node selectors shared by every command that takes ``SEL``.

Grammar: a comma-separated list of items; an item is a step number (negative counts from the
end), an exact node name, a prefix ending in ``*``, or a range ``a:b`` whose ends are steps or
names and may be empty (inclusive of both ends, as NNTool users read step ranges).

A graph input or output also answers to its names (its own, NNTool's ``input_N`` /
``output_N``, the file's; :mod:`nnshell.ir.io_names`): an input selects the first step that reads
it, an output the step that writes it (nnshell's steps are operators; inputs are tensors).
``S<k>`` is NNTool's step number k (docs/nntool-commands.md), which counts inputs and constants.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nnshell.errors import SelectorError

if TYPE_CHECKING:
    from nnshell.ir import Graph


def _step(graph: Graph, token: str) -> int:
    """Resolve one step number or exact node name to a step index."""
    n = len(graph.nodes)
    try:
        k = int(token)
    except ValueError:
        for idx, node in enumerate(graph.nodes):
            if node.name == token:
                return idx
        io_step = _io_step(graph, token)
        if io_step is not None:
            return io_step
        nt_step = _nntool_step(graph, token)
        if nt_step is not None:
            return nt_step
        hint = _suggest(graph, token)
        raise SelectorError(f"no node named '{token}'", hint) from None
    if not -n <= k < n:
        raise SelectorError(f"step {k} is out of range (the graph has steps 0..{n - 1})")
    return k % n


def _io_step(graph: Graph, token: str) -> int | None:
    """The step a graph input (its first reader) or output (its writer) name stands for."""
    from nnshell.ir.io_names import resolve_io

    tensor = resolve_io(graph, token)
    if tensor is None:
        return None
    for idx, node in enumerate(graph.nodes):
        if tensor in (node.outputs if tensor in graph.outputs else node.inputs):
            return idx
    return None


def _nntool_step(graph: Graph, token: str) -> int | None:
    """``S<k>``: NNTool's step k (its numbering counts inputs and constants; the generated
    kernels are named ``S<k>_...``), as the step of that layer, or of the layer that reads a
    constant / input or writes an output."""
    if len(token) < 2 or token[0] not in "Ss" or not token[1:].isdigit():
        return None
    from nnshell.codegen.node_options import resolve
    from nnshell.errors import UsageError

    try:
        target = resolve(graph, token)
    except UsageError as exc:
        raise SelectorError(exc.message, exc.hint) from None
    if target.kind == "node":
        return next(i for i, n in enumerate(graph.nodes) if n.name == target.name)
    if target.kind == "const":
        return next(i for i, n in enumerate(graph.nodes) if target.name in n.inputs)
    return _io_step(graph, target.name)


def _suggest(graph: Graph, token: str) -> str | None:
    import difflib

    from nnshell.ir.io_names import io_names

    names = [nd.name for nd in graph.nodes] + io_names(graph)
    close = difflib.get_close_matches(token, names, n=3)
    return f"did you mean {', '.join(close)}?" if close else "run 'show' to list the node names"


def select_steps(graph: Graph, selector: str | None) -> list[int]:
    """Return the sorted step indices a selector names; None or empty selects every node."""
    if selector is None or not selector.strip():
        return list(range(len(graph.nodes)))
    chosen: set[int] = set()
    for raw in selector.split(","):
        item = raw.strip()
        if not item:
            continue
        if item.endswith("*"):
            prefix = item[:-1]
            hits = [i for i, nd in enumerate(graph.nodes) if nd.name.startswith(prefix)]
            if not hits:
                raise SelectorError(f"no node name starts with '{prefix}'", _suggest(graph, prefix))
            chosen.update(hits)
        elif ":" in item:
            lo_s, hi_s = item.split(":", 1)
            lo = _step(graph, lo_s) if lo_s else 0
            hi = _step(graph, hi_s) if hi_s else len(graph.nodes) - 1
            if lo > hi:
                raise SelectorError(f"range '{item}' is empty (start after end)")
            chosen.update(range(lo, hi + 1))
        else:
            chosen.add(_step(graph, item))
    return sorted(chosen)
