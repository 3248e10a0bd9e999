"""The Session: the one mutable object of nnshell, and its Python API.

Every shell command is a thin wrapper over one Session method; tests call the same methods.
Methods are transactional: they compute the new state completely and only then assign it, so a
failure (or Ctrl-C) part-way leaves the session exactly as it was.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nnshell import settings as settings_mod
from nnshell.errors import GraphStateError, UsageError
from nnshell.selectors import select_steps

if TYPE_CHECKING:  # numpy and the op registry load on first use: the shell starts fast
    import numpy as np

    from nnshell.ir import Graph
    from nnshell.summary import GraphTotals, LayerInfo


@dataclass
class FusionOutcome:
    """What ``fusions`` did (or, with ``dry_run``, would do)."""

    scheme: str | None
    result: Any  # passes.PassResult
    dry_run: bool = False
    rederived: str | None = None
    notes: list[str] = field(default_factory=list)


class Session:
    """Holds the open graph, the settings and the history of state-changing commands."""

    def __init__(self) -> None:
        self.graph: Graph | None = None
        #: The graph exactly as imported; later schemes derive from it without a reopen.
        self.imported: Graph | None = None
        self.model_path: str | None = None
        self.settings: dict[str, Any] = settings_mod.defaults()
        self.history: list[str] = []
        #: The graph after adjust and before any fusion: schemes are derived from it.
        self.prefusion: Graph | None = None
        self.adjusted = False
        self.scheme: str | None = None

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
        self.prefusion = None
        self.adjusted = False
        self.scheme = None
        return self.graph

    def layers(self, selector: str | None = None) -> tuple[list[LayerInfo], GraphTotals]:
        """Return the layer rows a selector names, and the totals of the whole graph."""
        from nnshell.summary import graph_totals, layer_infos

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

    def adjust(self, dry_run: bool = False) -> Any:
        """Put tensors in CHW order and remove layout transposes (see passes.adjust)."""
        from nnshell.passes.adjust import adjust_layout

        graph = self.require_graph()
        if self.scheme is not None:
            raise GraphStateError(
                "adjust must run before fusions", "open the model again, then adjust, fusions"
            )
        work = graph.copy()
        result = adjust_layout(work)
        if self.adjusted and not result.changed:
            result.notes.insert(0, "already adjusted: nothing to change")
        if not dry_run:
            self.graph = work
            self.adjusted = True
        return result

    def fusions(
        self, scheme: str | None = None, names: list[str] | None = None, dry_run: bool = False
    ) -> FusionOutcome:
        """Apply a scheme's pass list (or the named passes) until nothing changes.

        A scheme different from the one already applied is derived again from the graph as it
        was before any fusion, so ``--pow2`` after ``--scale8`` needs no reopen.
        """
        from nnshell.passes import get_pass, run_passes, run_scheme

        graph = self.require_graph()
        for n in names or []:
            get_pass(n)  # unknown names fail before anything changes
        rederived = None
        base = graph
        if scheme is not None and self.scheme not in (None, scheme):
            assert self.prefusion is not None
            base = self.prefusion
            rederived = self.scheme
        work = base.copy()
        prefusion = self.prefusion if self.prefusion is not None else graph.copy()
        if scheme is not None:
            result = run_scheme(work, scheme)
        elif names:
            result = run_passes(work, names, until_stable=False)
        else:
            raise UsageError("fusions needs --scale8, --pow2, -a NAME or -l", "help fusions")
        if not dry_run:
            self.graph = work
            self.prefusion = prefusion
            if scheme is not None:
                self.scheme = scheme
        return FusionOutcome(scheme, result, dry_run, rederived)

    def dump(self, path: str, opts: Any = None) -> dict[str, np.ndarray]:
        """Run the float graph on one input file; return every node output and graph output.

        Keys are node names (each node's first output) plus each graph output under its ONNX
        tensor name, so the arrays can be compared with any other tool's dump.
        """
        from nnshell.exec import run_float
        from nnshell.images import load_image

        graph = self.require_graph()
        opts = opts if opts is not None else self.input_options()
        x = load_image(path, opts, graph.tensors[graph.inputs[0]].dims)
        names = [o for n in graph.nodes for o in n.outputs]
        values = run_float(graph, {graph.inputs[0]: x[None]}, keep=names)
        out: dict[str, np.ndarray] = {}
        for n in graph.nodes:
            out[n.name] = values[n.outputs[0]][0]
        for o in graph.outputs:
            out[o] = values[o][0]
        return out

    def input_options(self, **overrides: Any) -> Any:
        """The image input options: the ``set input_*`` values, then the command's options."""
        from nnshell.images import InputOptions

        st = self.settings
        base = InputOptions(
            transpose=bool(st["input_transpose"]),
            divisor=st["input_divisor"],
            offset=st["input_offset"],
            norm_func=st["input_norm_func"],
        )
        return base.with_overrides(**overrides)
