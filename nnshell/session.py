"""The Session: the one mutable object of nnshell, and its Python API.

Every shell command is a thin wrapper over one Session method; tests call the same methods.
Methods are transactional: they compute the new state completely and only then assign it, so a
failure (or Ctrl-C) part-way leaves the session exactly as it was.
"""

from __future__ import annotations

from typing import Any

from nnshell import settings as settings_mod
from nnshell.errors import GraphStateError
from nnshell.ir import Graph
from nnshell.selectors import select_steps
from nnshell.summary import GraphTotals, LayerInfo, graph_totals, layer_infos


class Session:
    """Holds the open graph, the settings and the history of state-changing commands."""

    def __init__(self) -> None:
        self.graph: Graph | None = None
        #: The graph exactly as imported; later schemes derive from it without a reopen.
        self.imported: Graph | None = None
        self.model_path: str | None = None
        self.settings: dict[str, Any] = settings_mod.defaults()
        self.history: list[str] = []

    # -- state -----------------------------------------------------------------------------
    def require_graph(self) -> Graph:
        """Return the open graph or raise the error that tells the user to open one."""
        if self.graph is None:
            raise GraphStateError("no graph open", "open <model.onnx>")
        return self.graph

    @property
    def name(self) -> str | None:
        """The name of the open graph (used in the prompt)."""
        return self.graph.name if self.graph is not None else None

    def record(self, command: str) -> None:
        """Append a state-changing command to the history (saved with the state later)."""
        self.history.append(command)

    # -- commands --------------------------------------------------------------------------
    def open(self, path: str, input_shapes: dict[str, list[int]] | None = None) -> Graph:
        """Import an ONNX model; on any failure the previously open graph stays open."""
        from nnshell.importers.onnx_importer import load_onnx

        graph = load_onnx(path, input_shapes)
        self.imported = graph
        self.graph = graph.copy()
        self.model_path = path
        self.history = []
        return self.graph

    def layers(self, selector: str | None = None) -> tuple[list[LayerInfo], GraphTotals]:
        """Return the layer rows a selector names, and the totals of the whole graph."""
        graph = self.require_graph()
        rows = layer_infos(graph)
        steps = set(select_steps(graph, selector))
        return [r for r in rows if r.step in steps], graph_totals(graph, rows)

    def set(self, name: str, text: str) -> Any:
        """Change one setting from the text the user typed; return the parsed value."""
        value = settings_mod.parse_value(name, text)
        if name == "input_norm_func" and value is not None:
            from nnshell.expr import compile_expression

            compile_expression(value)  # reject a bad expression now, not at aquant time
        self.settings[name] = value
        return value
