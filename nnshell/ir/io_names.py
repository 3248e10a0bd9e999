"""The names graph inputs and outputs answer to: their own and NNTool's ``input_N`` / ``output_N``.

NNTool calls graph inputs ``input_1``, ``input_2``... and outputs ``output_1``... (1-based, in the
graph's order) whatever the model file calls them, and its example scripts say
``imageformat input_1 ...``. nnshell keeps the file's names (an ONNX input ``data`` stays
``data``) and accepts NNTool's names everywhere a command takes an input, an output or a node
selector. The TFLite importer already names the IR tensors ``input_N`` / ``output_N`` (as NNTool
does) and keeps the file's own tensor names in ``graph.meta['io_file_names']``, so those answer too.

When a file name and an NNTool name collide (an ONNX model whose first input is called
``input_2``), the file's exact name wins: it is what ``show`` prints beside the tensor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from nnshell.ir import Graph

Kind = Literal["input", "output"]


def nntool_name(graph: Graph, tensor: str) -> str | None:
    """NNTool's name of a graph input/output tensor (``input_1``...), None for other tensors."""
    if tensor in graph.inputs:
        return f"input_{graph.inputs.index(tensor) + 1}"
    if tensor in graph.outputs:
        return f"output_{graph.outputs.index(tensor) + 1}"
    return None


def file_name(graph: Graph, tensor: str) -> str:
    """The file's name of a graph input/output (its IR name unless the importer renamed it)."""
    alias = nntool_name(graph, tensor)
    names = graph.meta.get("io_file_names") or {}
    if alias is not None and isinstance(names.get(alias), str) and names[alias]:
        return str(names[alias])
    return tensor


def io_label(graph: Graph, tensor: str) -> str:
    """``input_1 (data)``: both names when they differ, one when they are the same."""
    alias = nntool_name(graph, tensor)
    if alias is None:
        return tensor
    other = tensor if tensor != alias else file_name(graph, tensor)
    return alias if other == alias else f"{alias} ({other})"


def resolve_io(graph: Graph, name: str, kind: Kind | None = None) -> str | None:
    """The graph input/output tensor ``name`` means (its own, NNTool's or the file's name).

    ``kind`` limits the answer to inputs or outputs; None when nothing matches.
    """
    pools = {"input": graph.inputs, "output": graph.outputs}
    kinds = [kind] if kind else ["input", "output"]
    for k in kinds:
        if name in pools[k]:
            return name
    for k in kinds:
        for t in pools[k]:
            if nntool_name(graph, t) == name:
                return t
    for k in kinds:
        for t in pools[k]:
            if file_name(graph, t) == name:
                return t
    return None


def io_names(graph: Graph, kind: Kind | None = None) -> list[str]:
    """Every name the inputs (and/or outputs) answer to, for completion: IR, NNTool, file."""
    pools = {"input": graph.inputs, "output": graph.outputs}
    out: list[str] = []
    for k in [kind] if kind else ["input", "output"]:
        for t in pools[k]:
            for n in (t, nntool_name(graph, t), file_name(graph, t)):
                if n and n not in out:
                    out.append(n)
    return out


def require_input(graph: Graph, name: str, command: str) -> str:
    """The graph input ``name`` means, or the one-line error listing the names inputs answer to."""
    from nnshell.errors import UsageError

    found = resolve_io(graph, name, "input")
    if found is not None:
        return found
    import difflib

    names = io_names(graph, "input")
    close = difflib.get_close_matches(name, names, n=3)
    raise UsageError(
        f"{command}: '{name}' is not a graph input",
        f"inputs: {', '.join(io_label(graph, t) for t in graph.inputs)}"
        + (f"; did you mean {', '.join(close)}?" if close else ""),
    )


def io_caption(graph: Graph) -> str:
    """One line for ``show``: every input and output with both its names."""
    ins = ", ".join(io_label(graph, t) for t in graph.inputs)
    outs = ", ".join(io_label(graph, t) for t in graph.outputs)
    return f"inputs: {ins}; outputs: {outs}"
