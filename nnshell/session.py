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
        #: Calibration statistics of the current graph's tensors, and the files they came from.
        self.stats: dict[str, Any] | None = None
        self.stats_files: list[str] = []
        self.qstate: Any = None
        #: Validated onnxruntime runners per (graph object, all-tensors?) — see exec.ort_backend.
        self._runners: dict[tuple[int, bool], tuple[Graph, Any]] = {}

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
        self._drop_quantization()
        return self.graph

    def _drop_quantization(self) -> bool:
        """Forget statistics and quantization (they name tensors of the old graph)."""
        had = self.qstate is not None or self.stats is not None
        self.stats, self.stats_files, self.qstate = None, [], None
        return had

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
            if result.changed and self._drop_quantization():
                result.notes.append("the graph changed: calibration and quantization dropped")
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
        notes = []
        if not dry_run:
            self.graph = work
            self.prefusion = prefusion
            if scheme is not None:
                self.scheme = scheme
            if (result.changed or rederived) and self._drop_quantization():
                notes.append("the graph changed: calibration and quantization dropped")
        return FusionOutcome(scheme, result, dry_run, rederived, notes)

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

    def fast_runner(self, graph: Graph, probe: np.ndarray, all_tensors: bool) -> Any:
        """A validated onnxruntime runner for ``graph`` (None: use the numpy executor).

        ``set float_backend numpy`` turns the fast path off. The runner is checked against the
        numpy executor on ``probe`` when built and cached for this graph object.
        """
        if self.settings.get("float_backend") == "numpy":
            return None
        key = (id(graph), all_tensors)
        cached = self._runners.get(key)
        if cached is not None and cached[0] is graph:
            return cached[1]
        from nnshell.exec.ort_backend import make_runner

        keep = [o for n in graph.nodes for o in n.outputs if o] if all_tensors else []
        runner = make_runner(graph, probe, keep)
        self._runners[key] = (graph, runner)
        return runner

    # -- quantization ----------------------------------------------------------------------
    def _require_sq8_graph(self) -> Graph:
        graph = self.require_graph()
        if self.scheme != "scale8":
            raise GraphStateError(
                "aquant -s SQ8 needs the SQ8 fusions first"
                + (f" (the graph has the {self.scheme} fusions)" if self.scheme else ""),
                "fusions --scale8",
            )
        from nnshell.quant.sq8 import describe_unquantizable

        bad = describe_unquantizable(graph)
        if bad:
            from nnshell.errors import QuantizationError

            raise QuantizationError(
                f"{len(bad)} layer(s) have no SQ8 quantizer: {', '.join(bad[:6])}"
                + (", ..." if len(bad) > 6 else ""),
                "nnshell never falls back to float silently",
            )
        return graph

    def aquant(
        self,
        files: list[str],
        opts: Any = None,
        mode: str = "minmax",
        symmetric: bool = False,
        per_tensor: bool = False,
        progress: Any = None,
    ) -> Any:
        """Calibrate on ``files`` (or reuse the statistics already collected) and quantize.

        One streaming pass gathers every tensor's statistics; with no files the stored
        statistics are reused, so another ``--mode`` re-quantizes instantly. The session
        changes only when everything succeeded (Ctrl-C leaves the previous quantization).
        """
        from nnshell.images import expand_files, iter_batches
        from nnshell.quant.ranges import parse_mode
        from nnshell.quant.sq8 import QuantOptions, quantize_graph
        from nnshell.quant.stats import collect_stats

        graph = self._require_sq8_graph()
        qopts = QuantOptions(parse_mode(mode), symmetric, per_tensor)
        if files:
            paths = expand_files(files)
            opts = opts if opts is not None else self.input_options()
            expected = graph.tensors[graph.inputs[0]].dims
            import itertools

            batches = iter_batches(paths, opts, expected, int(self.settings["batch_size"]))
            first = next(batches)
            fast = self.fast_runner(graph, first[1][:2], all_tensors=True)
            stats, seen = collect_stats(
                graph, itertools.chain([first], batches), len(paths), progress, fast
            )
            reused = False
        elif self.stats is not None:
            stats, seen, reused = self.stats, self.stats_files, True
        else:
            raise GraphStateError("aquant needs calibration images", "aquant sample_images/calib")
        qstate = quantize_graph(graph, stats, qopts)
        self.stats, self.stats_files, self.qstate = stats, seen, qstate
        return AquantOutcome(qopts, len(seen), reused)

    def require_quantized(self) -> Any:
        """Return the QuantState or raise the error that says to run aquant."""
        self.require_graph()
        if self.qstate is None:
            raise GraphStateError("the graph is not quantized", "aquant <calibration images>")
        return self.qstate

    def validate(
        self,
        specs: list[str],
        opts: Any = None,
        quantized: bool = True,
        labels_csv: str | None = None,
        progress: Any = None,
    ) -> Any:
        """Top-1 accuracy of the float graph and (when quantized) the integer graph."""
        from nnshell.evaluate import validate
        from nnshell.images import expand_files

        graph = self.require_graph()
        qstate = self.qstate if quantized else None
        opts = opts if opts is not None else self.input_options()
        files = expand_files(specs)
        return validate(
            graph,
            files,
            opts,
            qstate,
            labels_csv,
            progress,
            int(self.settings["batch_size"]),
            fast=lambda probe: self.fast_runner(graph, probe, all_tensors=False),
        )

    def footprint(self) -> Any:
        """Parameter bytes and peak activation RAM, float against quantized."""
        from nnshell.footprint import footprint

        return footprint(self.require_graph(), self.require_quantized())


@dataclass
class AquantOutcome:
    """What ``aquant`` did."""

    options: Any
    images: int
    reused: bool
