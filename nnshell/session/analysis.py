"""The analysis part of :class:`nnshell.session.Session` (``qerror``, ``qexplain``, ``astats``,
``aquant --compare``): each reads the session's graph, quantization and statistics, runs one
function of :mod:`nnshell.analysis` over an image pass, and changes nothing but the statistics
``--compare`` may keep. Kept apart so that the session module stays short."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nnshell.errors import GraphStateError, UsageError
from nnshell.quant.scheme import scheme_of
from nnshell.selectors import select_steps

if TYPE_CHECKING:
    from nnshell.session.core import Session


class AnalysisMixin:
    """Session methods over :mod:`nnshell.analysis` (the attributes are the Session's)."""

    def qerror(
        self: Session,
        files: list[str],
        opts: Any = None,
        isolated: bool = False,
        progress: Any = None,
    ) -> Any:
        """Per-layer QSNR, cosine, max error and saturation (see analysis.qerror)."""
        from nnshell.analysis.qerror import qerror

        graph = self.require_graph()
        qstate = self.require_quantized()
        if not files:
            raise UsageError("qerror needs image files", "qerror sample_images/test")
        paths, batches, fast = self._analysis_pass(files, opts, per=12)
        return qerror(graph, qstate, batches, len(paths), isolated, progress, fast)

    def qexplain(self: Session, selector: str | None) -> list[Any]:
        """The integer formula of each selected layer with its numbers (analysis.qexplain)."""
        graph = self.require_graph()
        qstate = self.require_quantized()
        explain = scheme_of(qstate).explain()
        return [explain(graph, qstate, step) for step in select_steps(graph, selector)]

    def astats(
        self: Session,
        files: list[str],
        opts: Any = None,
        convergence: bool = False,
        progress: Any = None,
        mode: str | None = None,
    ) -> Any:
        """Activation statistics, ranges per method, convergence (analysis.astats).

        With no files the statistics of the last ``aquant`` are reused (no convergence then).
        The session does not change.
        """
        from nnshell.analysis.astats import astats

        graph = self.require_graph()
        if mode is None:
            mode = str(self.qstate.options.mode) if self.qstate is not None else "minmax"
        if files:
            paths, batches, fast = self._analysis_pass(files, opts)
            return astats(
                graph,
                batches,
                len(paths),
                mode,
                convergence=convergence,
                progress=progress,
                fast=fast,
            )
        if self.stats is not None and not convergence:
            return astats(graph, None, 0, mode, stats=self.stats, files=self.stats_files)
        raise GraphStateError(
            "astats needs calibration images"
            + (" (--convergence reads them again)" if convergence else ""),
            "astats sample_images/calib",
        )

    def compare_modes(
        self: Session,
        files: list[str],
        modes: list[str],
        opts: Any = None,
        validate_dir: str | None = None,
        progress: Any = None,
        symmetric: bool = False,
        per_tensor: bool = False,
        nntool_padding: bool = False,
    ) -> Any:
        """``aquant --compare``: per-layer QSNR of each range method, top-1 per method.

        Images are read once. The quantization is left as it was; when the session had no
        statistics yet, the ones just collected are kept (a following ``aquant --mode M`` with
        no files is then instant).
        """
        from nnshell.analysis.compare import SAMPLE_BYTES, compare_modes
        from nnshell.input.images import expand_files, iter_batches

        graph = self._require_scheme_graph("scale8")
        opts = opts if opts is not None else self.input_options()
        expected = graph.tensors[graph.inputs[0]].dims
        bs = int(self.settings["batch_size"])
        stats, sample, batches, total, fast = None, None, None, 0, None
        if files:
            paths, batches, fast = self._analysis_pass(files, opts)
            total = len(paths)
        elif self.stats is not None and self.stats_files:
            stats, total, sample, used = self.stats, len(self.stats_files), [], 0
            for names, batch in iter_batches(
                self.stats_files, opts, expected, bs, cache=self._images()
            ):
                if sample and used + batch.nbytes > SAMPLE_BYTES:
                    break
                sample.append((names, batch))
                used += batch.nbytes
            fast = self.fast_runner(graph, sample[0][1][:2], all_tensors=True)
        else:
            raise GraphStateError(
                "aquant --compare needs calibration images",
                "aquant sample_images/calib --compare minmax,mse",
            )
        vbatches, vtotal = None, 0
        if validate_dir:
            vpaths = expand_files([validate_dir])
            vbatches, vtotal = (
                iter_batches(vpaths, opts, expected, bs, cache=self._images()),
                len(vpaths),
            )
        report, new_stats, seen = compare_modes(
            graph,
            modes,
            batches,
            total,
            symmetric,
            per_tensor,
            vbatches,
            vtotal,
            progress,
            fast,
            stats,
            sample,
            nntool_padding=nntool_padding,
        )
        if self.stats is None and batches is not None:
            self.stats, self.stats_files = new_stats, seen
            self.calib_inputs = opts
        return report
