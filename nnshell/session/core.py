"""The Session: the one mutable object of nnshell, and its Python API.

Every shell command is a thin wrapper over one Session method; tests call the same methods.
Methods are transactional: they compute the new state completely and only then assign it, so a
failure (or Ctrl-C) part-way leaves the session exactly as it was.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nnshell import settings as settings_mod
from nnshell.errors import CodegenError, GraphStateError, NnshellError, UsageError
from nnshell.selectors import select_steps
from nnshell.session.analysis import AnalysisMixin
from nnshell.session.tuning import TuningMixin

if TYPE_CHECKING:  # numpy and the op registry load on first use: the shell starts fast
    import numpy as np

    from nnshell.analysis.summary import GraphTotals, LayerInfo
    from nnshell.ir import Graph
    from nnshell.quant.sq8 import QuantState
    from nnshell.quant.stats import TensorStats


@dataclass
class FusionOutcome:
    """What ``fusions`` did (or, with ``dry_run``, would do)."""

    scheme: str | None
    result: Any  # passes.PassResult
    dry_run: bool = False
    rederived: str | None = None
    notes: list[str] = field(default_factory=list)


class Session(TuningMixin, AnalysisMixin):
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
        self.stats: dict[str, TensorStats] | None = None
        self.stats_files: list[str] = []
        #: The image input options the statistics were gathered with (InputOptions): a
        #: quantized graph run on images prepared differently is silently wrong.
        self.calib_inputs: Any = None
        self.qstate: QuantState | None = None
        #: The quantization as last saved or restored (``unsaved_work`` compares with it).
        self.saved_qstate: Any = None
        #: Decoded images kept between commands (aquant, validate, qerror, ... reuse folders).
        self.image_cache: Any = None
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

    def status(self) -> str:
        """A few words for the prompt: the graph, whether fused and how quantized
        (``cifar_net fused SQ8*``; ``*`` marks a quantization not saved yet)."""
        if self.graph is None:
            return ""
        words = [self.graph.name]
        if self.scheme is not None:
            words.append("fused")
        if self.qstate is not None:
            opts = self.qstate.options
            label = f"POW2-{opts.bits}" if hasattr(opts, "bits") else self.qstate.scheme
            words.append(label + ("*" if self.unsaved_work() else ""))
        return " ".join(words)

    def unsaved_work(self) -> str | None:
        """Why closing the session now loses work (a quantization not saved), else None."""
        if self.qstate is None or self.qstate is self.saved_qstate:
            return None
        return f"the {self.qstate.scheme} quantization of {self.name} is not saved (save_state)"

    def record(self, command: str) -> None:
        """Append a state-changing command to the history (saved with the state later)."""
        self.history.append(command)

    # -- commands --------------------------------------------------------------------------
    def open(
        self,
        path: str,
        input_shapes: dict[str, list[int]] | None = None,
        load_quantization: bool = False,
    ) -> Graph:
        """Import an ONNX or TFLite model; on any failure the previously open graph stays open.

        A ``.json`` path is a saved state (see :mod:`nnshell.state`): everything is restored.
        A ``.tflite`` path goes to the TFLite importer (docs/tflite.md); ``load_quantization``
        (NNTool's ``open -q``) keeps a quantized file's scales and zero points: they become the
        quantization of the graph as soon as ``fusions --scale8`` has run.
        """
        from nnshell.importers import is_tflite
        from nnshell.importers.onnx_importer import load_onnx

        if str(path).lower().endswith(".json"):
            from nnshell.state import load_state

            return self._restore(load_state(path))
        if is_tflite(path):
            from nnshell.importers.tflite_importer import load_tflite

            graph = load_tflite(path, input_shapes)
            if load_quantization:
                from nnshell.quant.tflite_quant import require_file_quantization

                require_file_quantization(graph, path)
            graph.meta["load_quantization"] = bool(load_quantization)
        elif load_quantization:
            raise UsageError(
                f"open -q: '{path}' is not a TFLite file; an ONNX model has no quantization to load"
            )
        else:
            graph = load_onnx(path, input_shapes)
        current = graph.copy()  # before any assignment: a failure here changes nothing
        self.imported = graph
        self.graph = current
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
        self.calib_inputs = None
        return had

    def layers(self, selector: str | None = None) -> tuple[list[LayerInfo], GraphTotals]:
        """Return the layer rows a selector names, and the totals of the whole graph."""
        from nnshell.analysis.summary import graph_totals, layer_infos

        graph = self.require_graph()
        rows = layer_infos(graph)
        steps = set(select_steps(graph, selector))
        return [r for r in rows if r.step in steps], graph_totals(graph, rows)

    def set(self, name: str, text: str) -> Any:
        """Change one setting from the text the user typed; return the parsed value."""
        value = settings_mod.parse_value(name, text)
        if name == "input_norm_func" and value is not None:
            from nnshell.input.expr import compile_expression

            compile_expression(value)  # reject a bad expression now, not at aquant time
        self.settings[name] = value
        return value

    def imageformat(
        self, input_name: str, fmt: str | None = None, norm: str | None = None
    ) -> FormatterOutcome:
        """Insert an input formatter (raw uint8 HWC pixels -> the network input), or remove it.

        Run again on the same input with the same FORMAT NORM (or with neither) to remove it;
        other values replace it. A quantized graph is checked: the formatter's codes must be
        its input codes (:func:`nnshell.input.formatter_check.check_formatter`), else nothing
        changes.
        """
        from nnshell.input.formatter import (
            Formatter,
            formatters,
            raw_shape,
            with_formatter,
        )
        from nnshell.ir.io_names import require_input
        from nnshell.quant.tflite_quant import refit_for_formatter

        graph = self.require_graph()
        input_name = require_input(graph, input_name, "imageformat")
        if (fmt is None) != (norm is None):
            raise UsageError("imageformat needs both FORMAT and NORM (or neither, to remove)")
        old = formatters(graph).get(input_name)
        new = Formatter(fmt, norm) if fmt is not None and norm is not None else None
        if new is None and old is None:
            raise UsageError(
                f"imageformat: input '{input_name}' has no formatter to remove",
                f"imageformat {input_name} FORMAT NORM",
            )
        if new is not None and new == old:
            new = None  # the same command again removes it
        if new is not None:
            raw_shape(graph, input_name, new)
        work = graph.copy()
        work.meta = with_formatter(graph.meta, input_name, new)
        refit = refit_for_formatter(work, self, input_name, new)  # else check_formatter refuses
        prefusion = None
        if self.prefusion is not None:
            prefusion = self.prefusion.copy()
            prefusion.meta = with_formatter(self.prefusion.meta, input_name, new)
        qstate = self._formatted_qstate(work)  # POW2: the formatter imposes the input's Q
        self.graph, self.prefusion = work, prefusion if prefusion is not None else self.prefusion
        self.qstate, self.stats = refit if refit is not None else (qstate, self.stats)
        self._runners = {}
        return FormatterOutcome(input_name, new, old)

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
            result.notes += self._carry_tuning()
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
            if work.meta.get("load_quantization"):
                notes += self._apply_file_quantization(work, scheme)
            notes += self._carry_tuning()
        return FusionOutcome(scheme, result, dry_run, rederived, notes)

    def _apply_file_quantization(self, graph: Graph, scheme: str | None) -> list[str]:
        """``open -q``: after ``fusions --scale8`` the file's quantization becomes the
        session's (docs/tflite.md); other schemes are calibrated with aquant as usual."""
        if scheme != "scale8":
            return ["open -q: the file's quantization applies to --scale8 only; run aquant"]
        from nnshell.quant.tflite_quant import quantize_from_file

        fq = quantize_from_file(
            graph,
            str(self.settings.get("relun_range", "bound")),
            int(self.settings.get("file_mult_bits", 30)),
        )
        self.stats, self.stats_files, self.qstate = fq.stats, [], fq.qstate
        notes = [
            f"open -q: the file's quantization applied (no aquant needed): {len(fq.kept)} "
            f"tensor(s) keep the file's scale and zero point, {len(fq.changed)} differ"
        ]
        notes += [f"  {t}: {why}" for t, why in fq.changed.items()]
        return notes

    def dump(
        self,
        path: str,
        opts: Any = None,
        quantized: bool = False,
        dequantize: bool = False,
        selector: str | None = None,
        store: str | None = None,
    ) -> dict[str, np.ndarray]:
        """Run the float graph on one input file; return every node output and graph output.

        Keys are node names (each node's first output) plus each graph output under its ONNX
        tensor name, so the arrays can be compared with any other tool's dump. ``quantized``:
        the integer graph's codes instead; ``dequantize``: those codes as real values (implies
        quantized). ``selector`` keeps only those steps; ``store`` also keeps the arrays in
        :attr:`tensors` under that name.
        """
        from nnshell.exec import run_float
        from nnshell.input.images import load_image

        graph = self.require_graph()
        opts = opts if opts is not None else self.input_options()
        x = load_image(path, opts, graph.tensors[graph.inputs[0]].dims)
        names = [o for n in graph.nodes for o in n.outputs]
        if quantized or dequantize:
            from nnshell.exec.int_exec import run_int

            qstate = self.require_quantized()
            values = run_int(graph, qstate, {graph.inputs[0]: x[None]}, keep=names)
            if dequantize:
                values = {k: qstate.tensors[k].dequantize(v) for k, v in values.items()}
        else:
            values = run_float(graph, {graph.inputs[0]: x[None]}, keep=names)
        steps = set(select_steps(graph, selector))
        out: dict[str, np.ndarray] = {}
        for step, n in enumerate(graph.nodes):
            if step in steps:
                out[n.name] = values[n.outputs[0]][0]
        for o in graph.outputs:
            if any(o in graph.nodes[s].outputs for s in steps):
                out[o] = values[o][0]
        if store:
            self.tensors[store] = out
        return out

    def input_options(self, **overrides: Any) -> Any:
        """The image input options: the ``set input_*`` values, then the command's options."""
        from nnshell.input.formatter import get_formatter
        from nnshell.input.images import InputOptions

        st = self.settings
        fmt = get_formatter(self.graph)
        if fmt is not None and self.graph is not None:  # raw HWC pixels: the formatter
            given = [k for k in ("divisor", "offset", "norm_func") if overrides.get(k) is not None]
            if given:  # normalises and transposes them itself
                raise UsageError(
                    f"input {self.graph.inputs[0]} has the {fmt.fmt} {fmt.norm} formatter: "
                    "it normalises the raw images itself (drop -D/-O/-N)",
                    "imageformat INPUT again removes the formatter",
                )
            return InputOptions(formatter=fmt.spec).with_overrides(
                **{k: v for k, v in overrides.items() if k != "transpose"}
            )
        base = InputOptions(
            transpose=bool(st["input_transpose"]),
            divisor=st["input_divisor"],
            offset=st["input_offset"],
            norm_func=st["input_norm_func"],
        )
        return base.with_overrides(**overrides)

    def _images(self) -> Any:
        """The session's decoded-image cache (created on first use: the shell starts fast)."""
        if self.image_cache is None:
            from nnshell.input.images import DecodeCache

            self.image_cache = DecodeCache()
        return self.image_cache

    def fast_runner(self, graph: Graph, probe: np.ndarray, all_tensors: bool | str) -> Any:
        """A validated onnxruntime runner for ``graph`` (None: use the numpy executor).

        ``set float_backend numpy`` turns the fast path off. The runner is checked against the
        numpy executor on ``probe`` when built and cached for this graph object; ``"heads"``:
        every tensor plus each fused layer's accumulator (serves ``all_tensors=True`` too)."""
        if self.settings.get("float_backend") == "numpy":
            return None
        key = (id(graph), all_tensors)
        cached = self._runners.get(key) or self._runners.get((id(graph), all_tensors and "heads"))
        if cached is not None and cached[0] is graph:
            return cached[1]
        from nnshell.exec.ort_backend import make_runner, runner_outputs

        runner = make_runner(graph, probe, runner_outputs(graph, all_tensors))
        self._runners[key] = (graph, runner)
        return runner

    # -- quantization ----------------------------------------------------------------------
    def _require_scheme_graph(self, scheme: str, qopts: Any = None) -> Graph:
        """The open graph, fused for ``scheme`` ("scale8" or "pow2") and fully quantizable.

        Every layer is checked before any image is read (:mod:`nnshell.quant.preflight`): one
        line lists all the layers the scheme refuses and why. The hint names the other scheme
        only when that scheme would quantize every layer (no sending the user in a circle)."""
        from nnshell.ops.expression import has_expressions

        label = "SQ8" if scheme == "scale8" else "POW2"
        graph = self._without_conversions()
        if self.scheme is None and scheme == "scale8" and has_expressions(graph):
            self.fusions("scale8")  # NNTool: `fusions -a expression_matcher` then aquant
            graph = self._without_conversions()
        if self.scheme != scheme:
            raise GraphStateError(
                f"aquant -s {label} needs the {label} fusions first"
                + (f" (the graph has the {self.scheme} fusions)" if self.scheme else ""),
                f"fusions --{scheme}",
            )
        from nnshell.input.formatter import fixed_qtypes
        from nnshell.quant import preflight

        qopts = qopts if qopts is not None else self._default_qopts(label)
        bad = preflight.refusals(graph, self._probe_stats(graph), label, qopts, fixed_qtypes(graph))
        if bad:
            from nnshell.errors import QuantizationError

            other = "pow2" if scheme == "scale8" else "scale8"
            other_label = "POW2" if label == "SQ8" else "SQ8"
            hint = "nnshell never falls back to float silently"
            if self._scheme_would_work(other):
                hint += f"; fusions --{other}, then aquant -s {other_label} quantizes every layer"
            raise QuantizationError(preflight.refusal_line(bad, label), hint)
        return graph

    def _default_qopts(self, label: str) -> Any:
        """The options ``aquant -s LABEL`` uses when none are given."""
        from nnshell.quant.pow2 import Pow2Options
        from nnshell.quant.sq8 import QuantOptions

        return Pow2Options(bits=16) if label == "POW2" else QuantOptions()

    def _probe_stats(self, graph: Graph) -> dict[str, Any]:
        """Statistics of one synthetic input (for the pre-calibration check only)."""
        from nnshell.quant.preflight import probe_stats

        return probe_stats(graph)

    def _scheme_would_work(self, scheme: str) -> bool:
        """Whether fusing the pre-fusion graph with ``scheme`` gives a fully quantizable graph."""
        from nnshell.passes import run_scheme
        from nnshell.quant import preflight

        if self.prefusion is None:
            return False
        label = "SQ8" if scheme == "scale8" else "POW2"
        try:
            g = self.prefusion.copy()
            run_scheme(g, scheme)
            opts = self._default_qopts(label)
            return not preflight.refusals(g, self._probe_stats(g), label, opts)
        except NnshellError:
            return False

    def aquant(
        self,
        files: list[str],
        opts: Any = None,
        mode: str = "minmax",
        symmetric: bool = False,
        per_tensor: bool = False,
        progress: Any = None,
        scheme: str = "SQ8",
        bits: int = 16,
        nntool_padding: bool = False,
    ) -> Any:
        """Calibrate on ``files`` (or reuse the statistics already collected) and quantize.

        One streaming pass gathers every tensor's statistics; with no files the stored
        statistics are reused, so another ``--mode`` re-quantizes instantly. The session
        changes only when everything succeeded (Ctrl-C leaves the previous quantization).
        ``scheme`` "POW2" (after ``fusions --pow2``) quantizes to ``bits``-wide Qm.n (POW2.md);
        ``symmetric`` / ``per_tensor`` do not apply to it (always both). ``nntool_padding``:
        inputs of padded convs / pools and global average pools symmetric, as NNTool (SQ8).
        """
        from nnshell.quant.pow2 import POW2_BITS, Pow2Options, quantize_graph_pow2
        from nnshell.quant.ranges import parse_mode
        from nnshell.quant.sq8 import QuantOptions, quantize_graph
        from nnshell.quant.stats import collect_stats

        scheme = scheme.upper()
        if scheme not in ("SQ8", "POW2"):
            raise UsageError(f"aquant: unknown scheme '{scheme}'", "aquant -s SQ8 or -s POW2")
        if scheme == "POW2":
            if bits not in POW2_BITS:
                raise UsageError(f"aquant -s POW2: -f {bits} is not 8 or 16", "aquant -s POW2")
            qopts: Any = Pow2Options(parse_mode(mode), True, True, int(bits))
            graph = self._require_scheme_graph("pow2", qopts)
        else:
            qopts = QuantOptions(
                parse_mode(mode),
                symmetric,
                per_tensor,
                relun_range=str(self.settings.get("relun_range", "bound")),
                nntool_padding=bool(nntool_padding),
            )
            graph = self._require_scheme_graph("scale8", qopts)
        if files:
            opts = opts if opts is not None else self.input_options()  # recorded with the stats
            # every tensor + accumulators: 8 bytes a value against the activation budget
            paths, batches, fast = self._analysis_pass(
                files, opts, graph, per=8, all_tensors="heads"
            )
            stats, seen = collect_stats(graph, batches, len(paths), progress, fast)
            reused = False
            calib_inputs = opts
        elif self.stats is not None:
            calib_inputs = self.calib_inputs
            stats, seen, reused = self.stats, self.stats_files, True
        else:
            raise GraphStateError("aquant needs calibration images", "aquant sample_images/calib")
        outcome = AquantOutcome(qopts, len(seen), reused)
        if graph.meta.get("qtune") or graph.meta.get("fquant"):  # nnshell.quant.tuning
            return self._aquant_tuned(stats, seen, calib_inputs, outcome)
        from nnshell.input.formatter import fixed_qtypes

        if scheme == "POW2":
            if fixed_qtypes(graph):
                raise GraphStateError(
                    "aquant -s POW2: input formatters give SQ8 int8 codes", "aquant -s SQ8"
                )
            qstate = quantize_graph_pow2(graph, stats, qopts)
        else:
            qstate = quantize_graph(graph, stats, qopts, fixed_qtypes(graph))
        self.stats, self.stats_files, self.qstate = stats, seen, qstate
        self.calib_inputs = calib_inputs
        return outcome

    def input_drift(self, opts: Any) -> str | None:
        """A warning when ``opts`` differ from the input options of the calibration, else None.

        The quantized graph's input scale and every activation range were measured on images
        prepared one way; fed images prepared another way (``set input_norm_func ""`` after
        calibrating with ``x/128-1``) it computes garbage without any error: top-1 falls to
        chance and nothing says why. Commands that run the quantized graph print this line.
        """
        from nnshell.input.images import describe_inputs

        if self.qstate is None or self.calib_inputs is None or opts is None:
            return None
        if getattr(opts, "formatter", None):  # imageformat checked its codes against the input
            return None
        if opts.to_dict() == self.calib_inputs.to_dict():
            return None
        return (
            f"the quantization was calibrated with input options "
            f"{describe_inputs(self.calib_inputs)} but this run uses {describe_inputs(opts)}: "
            "quantized results will be wrong (give the same options, or aquant again)"
        )

    def require_quantized(self) -> QuantState:
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
        from nnshell.analysis.evaluate import validate
        from nnshell.input.images import expand_files

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
            cache=self._images(),
        )

    def footprint(self) -> Any:
        """Parameter bytes and peak activation RAM, float against quantized."""
        from nnshell.analysis.footprint import footprint

        return footprint(self.require_graph(), self.require_quantized(), self.imported)

    # -- saved state and AutoTiler generation (issue 7) ------------------------------------
    def _restore(self, saved: Any) -> Graph:
        """Replace the whole session by a loaded :class:`nnshell.state.SavedState`."""
        self.graph = saved.graph
        self.imported = saved.imported
        self.prefusion = saved.prefusion
        self.model_path = saved.path
        self.settings = saved.settings
        self.history = list(saved.history)
        self.adjusted = saved.adjusted
        self.scheme = saved.scheme
        self.stats, self.stats_files, self.qstate = saved.stats, saved.stats_files, saved.qstate
        self.calib_inputs = saved.calib_inputs
        self.saved_qstate = saved.qstate
        self._runners = {}
        return saved.graph

    def default_state_path(self) -> str:
        """``<folder of the opened file>/<graph name>.json`` (NNTool's default place)."""
        import os

        graph = self.require_graph()
        folder = os.path.dirname(self.model_path) if self.model_path else ""
        return os.path.join(folder, f"{graph.name}.json")

    def save_state(self, path: str | None = None) -> tuple[Any, Any]:
        """Save everything to ``PATH.json`` + the npz it names (``nnshell.state``); return both.

        No path: ``<folder of the opened model>/<graph name>.json``. A folder: ``<graph
        name>.json`` in it. Another extension is replaced by ``.json``.
        """
        import os

        from nnshell.state import save_state

        self.require_graph()
        if path is None:
            path = self.default_state_path()
        elif os.path.isdir(path):
            path = os.path.join(path, f"{self.require_graph().name}.json")
        written = save_state(self, path)
        self.saved_qstate = self.qstate
        return written

    def gen_autotiler(
        self,
        model_dir: str | None = None,
        model_file: str | None = None,
        tensor_dir: str | None = None,
        header: str | None = None,
        write_tensors: bool = True,
    ) -> list[Any]:
        """Write the AutoTiler model C file, the .tensor files and the header; return paths.

        Defaults come from the settings ``model_directory``, ``model_file`` (``<G>Model.c``)
        and ``tensor_directory``; the header defaults to ``model.h`` in the model directory.
        """
        from nnshell.codegen.autotiler import generate_autotiler

        graph = self.require_graph()
        qstate = self.require_quantized()
        st = self.settings
        return generate_autotiler(
            graph,
            qstate,
            st,
            model_dir if model_dir is not None else st.get("model_directory") or ".",
            model_file if model_file is not None else st.get("model_file"),
            tensor_dir if tensor_dir is not None else st.get("tensor_directory") or "tensors",
            header if header is not None else "model.h",
            write_tensors,
        )

    # -- quantization analysis (issue 6) ---------------------------------------------------
    @property
    def tensors(self) -> dict[str, dict[str, np.ndarray]]:
        """Named tensor sets (``dump -S NAME``), created on first use; ``tensors`` shows them."""
        store = self.__dict__.get("_tensor_store")
        if store is None:
            store = self.__dict__["_tensor_store"] = {}
        return store  # type: ignore[no-any-return]

    def _analysis_pass(
        self,
        files: list[str],
        opts: Any,
        graph: Graph | None = None,
        per: int = 4,
        all_tensors: Any = True,
    ) -> tuple[list[str], Any, Any]:
        """(sample names, batch iterator, validated all-tensor runner or None) for one pass over
        ``graph`` (default: the current graph; several inputs: input/multi_input.py, numpy
        runs); batches capped to the activation budget at ``per`` bytes a value (exec.budget)."""
        import itertools

        from nnshell.exec.budget import images_per_batch
        from nnshell.input.multi_input import input_batches
        from nnshell.ops.expression import has_expressions

        graph = graph if graph is not None else self.require_graph()
        opts = opts if opts is not None else self.input_options()
        bs = images_per_batch(graph, int(self.settings["batch_size"]), per)
        paths, batches = input_batches(graph, files, opts, bs, cache=self._images())
        first = next(batches)
        one = len(graph.inputs) == 1 and not has_expressions(graph)
        fast = self.fast_runner(graph, first[1][:2], all_tensors=all_tensors) if one else None
        return paths, itertools.chain([first], batches), fast

    # -- portable C generation (issue 7) ---------------------------------------------------
    def c_name(self, name: str | None = None) -> str:
        """The C name of the generated graph: ``name``, the ``graph_name`` setting or the
        graph's own name, made C-safe."""
        from nnshell.codegen.c_emitter import c_identifier

        graph = self.require_graph()
        return c_identifier(name or self.settings.get("graph_name") or graph.name)

    def gen_c(self, out_dir: str | None = None, name: str | None = None) -> list[Any]:
        """Write the portable C99 implementation (``gen --target c``); return the paths.

        ``out_dir`` defaults to the ``model_directory`` setting.
        """
        from nnshell.codegen.c_emitter import generate_c

        graph = self.require_graph()
        qstate = self.require_quantized()
        # five files (the model, its header, the harness, the kernels): a folder of their own
        # rather than the current directory, unless model_directory / -M says otherwise
        cname = self.c_name(name)
        out = out_dir if out_dir is not None else self.settings.get("model_directory") or None
        return generate_c(graph, qstate, out if out is not None else f"{cname}_c", cname)

    def gen_verify(
        self,
        specs: list[str],
        opts: Any = None,
        out_dir: str | None = None,
        phase: Any = None,
        sources_only: bool = False,
    ) -> Any:
        """Build the generated C on the host, run it on images and compare every layer's bytes
        with the integer executor (``gen --verify``). Without ``out_dir`` the build happens in
        a temporary folder removed afterwards; with it, the whole build (binary,
        ``inputs.bin``, the per-step dumps: megabytes) lands there, unless ``sources_only``
        (the shell's ``gen -M DIR --verify``): then only the verified C sources are written
        to ``out_dir`` and the build stays temporary. ``phase(text)`` hears of each step."""
        import dataclasses
        import tempfile

        from nnshell.codegen.verify import verify
        from nnshell.input.images import expand_files

        graph = self.require_graph()
        qstate = self.require_quantized()
        files = expand_files(specs)
        opts = opts if opts is not None else self.input_options()
        if out_dir is not None and not sources_only:
            return verify(graph, qstate, files, opts, out_dir, self.c_name(), phase=phase)
        try:
            tmp_dir = tempfile.TemporaryDirectory(prefix="nnshell_verify_")
        except OSError as exc:  # no space or no permission in the temporary folder
            raise CodegenError(
                f"gen --verify cannot create its build folder: {exc.strerror or exc}",
                "free some space, or gen --verify IMAGES -M <folder>",
            ) from None
        with tmp_dir as tmp:
            res = verify(graph, qstate, files, opts, tmp, self.c_name(), phase=phase)
        if out_dir is not None:
            res = dataclasses.replace(res, files=self.gen_c(out_dir))
        return res


@dataclass
class FormatterOutcome:
    """What ``imageformat`` did: the formatter now on ``input`` (None: removed) and before."""

    input: str
    formatter: Any
    previous: Any


@dataclass
class AquantOutcome:
    """What ``aquant`` did."""

    options: Any
    images: int
    reused: bool
