"""The ``fquant`` / ``qtune`` part of :class:`nnshell.session.Session` (kept apart so the session
module stays short): both are settings of the graph (``graph.meta``, see
:mod:`nnshell.quant.tuning`) that quantize again after every graph change."""

from __future__ import annotations

from typing import Any


class TuningMixin:
    """Session methods for fquant and qtune (the attributes are the Session's)."""

    graph: Any
    prefusion: Any
    stats: Any
    stats_files: list[str]
    qstate: Any
    calib_inputs: Any
    scheme: str | None
    settings: dict[str, Any]
    _runners: dict[Any, Any]

    def require_graph(self) -> Any:  # provided by Session
        raise NotImplementedError

    # -- fquant / qtune (nnshell.quant.tuning): settings of the graph, kept through passes ----
    def _carry_tuning(self) -> list[str]:
        """After a graph change: quantize again as ``fquant`` / ``qtune`` said (no images)."""
        graph = self.require_graph()
        if not (graph.meta.get("fquant") or graph.meta.get("qtune")) or self.qstate is not None:
            return []
        return [self._retune()]

    def _retune(self) -> str:
        from nnshell.quant.tuning import retune

        graph = self.require_graph()
        graph, stats, qstate, note = retune(
            graph, self.scheme, self.stats, str(self.settings.get("relun_range", "bound"))
        )
        self.graph = graph
        if graph.meta.get("fquant"):
            self.stats_files, self.calib_inputs = [], None
        self.stats, self.qstate = stats, qstate
        return f"fquant/qtune: {note}"

    def _set_meta(self, key: str, value: Any) -> None:
        """Set one graph setting on the graph and on its pre-fusion copy (None: remove)."""
        for attr in ("graph", "prefusion"):
            g = getattr(self, attr)
            if g is None:
                continue
            work = g.copy()
            work.meta = {k: v for k, v in g.meta.items() if k != key}
            if value is not None:
                work.meta[key] = value
            setattr(self, attr, work)
        self._runners = {}

    def _tuned(self, key: str, value: Any) -> str:
        """Change one fquant/qtune setting and quantize again; nothing changes on error."""
        saved = (self.graph, self.prefusion, self.stats, self.stats_files, self.qstate)
        saved_inputs = self.calib_inputs
        try:
            self._set_meta(key, value)
            return self._retune()
        except BaseException:
            self.graph, self.prefusion, self.stats, self.stats_files, self.qstate = saved
            self.calib_inputs = saved_inputs
            raise

    def _formatted_qstate(self, graph: Any) -> Any:
        """The quantization once ``graph``'s input formatters are set: POW2 pins each
        formatted input at its formatter's Q (``nnshell.input.formatter_pow2``)."""
        if getattr(self.qstate, "scheme", None) != "POW2":
            return self.qstate
        from nnshell.input.formatter_pow2 import requantize_with_formatters

        return requantize_with_formatters(graph, self.qstate, self.stats)

    def _without_conversions(self) -> Any:
        """The open graph without the conversion layers of a mixed quantization (``aquant``
        calibrates and checks the layers themselves; the conversions come back after)."""
        from nnshell.quant.float_q import strip_conversions

        return strip_conversions(self.require_graph())

    def _aquant_tuned(self, stats: Any, seen: list[str], inputs: Any, outcome: Any) -> Any:
        """``aquant`` on a graph with qtune settings: real statistics replace fquant's, then
        the qtune rules decide each layer (float, SQ8, conversions). Changes only on success."""
        from nnshell.quant.tuning import retune

        self.require_graph()
        saved = (self.graph, self.prefusion)
        try:
            self._set_meta("fquant", None)
            graph, stats, qstate, _ = retune(
                self.graph, self.scheme, stats, str(self.settings.get("relun_range", "bound"))
            )
        except BaseException:
            self.graph, self.prefusion = saved
            raise
        self.graph, self.stats, self.stats_files, self.qstate = graph, stats, seen, qstate
        self.calib_inputs = inputs
        return outcome

    def fquant(self, opts: Any = None) -> str:
        """Fake statistics from random inputs (``nnshell.quant.tuning``), kept as a setting
        of the graph: quantization follows now or after ``fusions``. Returns one line."""
        from nnshell.quant.tuning import FakeOptions

        self.require_graph()
        return self._tuned("fquant", (opts or FakeOptions()).to_dict())

    def qtune(self, words: list[str]) -> str:
        """Add one ``qtune`` rule (``SEL key=value ...`` or ``SEL float bfloat16``)."""
        return self.qtune_rules([words])

    def qtune_rules(self, rules: list[list[str]]) -> str:
        """Add ``qtune`` rules at once (``--step`` repeated): every selector is read against
        the graph as ``show`` numbers it now, then the graph is quantized once."""
        from nnshell.errors import UsageError
        from nnshell.ops.convert import is_conversion
        from nnshell.quant.tuning import parse_qtune, select_layers

        graph = self.require_graph()
        new = []
        for words in rules:
            sel, opts = parse_qtune(words)
            steps = select_layers(graph, sel)  # an unknown layer fails before any change
            if sel.strip() != "*":  # steps as `show` numbers them now, kept as layer names
                names = [graph.nodes[k].name for k in steps if not is_conversion(graph.nodes[k])]
                if not names:
                    raise UsageError(
                        f"qtune {sel}: selects only conversion layers (qtune inserts them)",
                        "select the layers around them (see show)",
                    )
                sel = ",".join(names)
            new.append([sel, opts])
        return self._tuned("qtune", [*graph.meta.get("qtune", []), *new])
