"""Quantization analysis commands: ``qerror``, ``qexplain``, ``astats``, ``tensors``.

Thin wrappers: the computations live in :mod:`nnshell.analysis` (plain data) and the Session,
the tables, text charts, JSON documents and PNG pictures in :mod:`nnshell.report.analysis_views`.
"""

from __future__ import annotations

from typing import Any

import cmd2

from nnshell.shell.commands.base import NnCommandSet, add_selector
from nnshell.shell.commands.common import add_input_options, add_json_option
from nnshell.shell.parser import NnArgumentParser


class AnalysisCommands(NnCommandSet):
    """qerror, qexplain, astats, tensors."""

    DEFAULT_CATEGORY = "Analysis"

    # -- qerror ----------------------------------------------------------------------------
    qerror_parser = NnArgumentParser(
        description="Per layer: QSNR (dB), cosine, max abs error and % of outputs saturated at "
        "-128/127 (for an asymmetric ReLU output only 127: -128 is its real 0), averaged over the "
        "images with the worst one named, ranked by the dB lost inside each layer. Default: the "
        "integer network end to end (errors accumulate); -s: each layer fed its predecessors' "
        "float outputs quantized with their output qtypes (the error it adds itself; works on "
        "fused layers)."
    )
    qerror_parser.add_argument("files", nargs="+", completer=cmd2.Cmd.path_complete)
    qerror_parser.add_argument(
        "-s", "--single", action="store_true", help="isolated: each layer on float inputs"
    )
    qerror_parser.add_argument("--png", metavar="FILE", help="write the QSNR bars as a PNG")
    add_json_option(qerror_parser)
    add_input_options(qerror_parser)

    @cmd2.with_argparser(qerror_parser)
    def do_qerror(self, args: Any) -> None:
        """Which layer loses accuracy: QSNR, cosine, max error, saturation per layer."""
        from nnshell.report import analysis_views as views
        from nnshell.shell.progress import image_progress

        session = self.app.session
        opts = self.image_options(args)
        with image_progress("measuring") as progress:
            rep = session.qerror(args.files, opts, args.single, progress)
        if args.png:
            views.qerror_png(args.png, session.name, rep)
        if args.json:
            self.emit([views.json_text(rep.to_dict())])
            return
        self.emit(views.qerror_blocks(rep, session.name, args.png))

    # -- qexplain --------------------------------------------------------------------------
    qexplain_parser = NnArgumentParser(
        description="The integer formula of a layer with its actual numbers: "
        "O1q = clip8(rnorm((B1q + Σ W1q·Iq) · M1, N1)), the real multiplier sI·sW1[c]/sO1 and "
        "its 8-bit approximation M1·2^-N1 with the relative error per channel, the zero-point "
        "offset folded into the bias, and how the input scale chains from the producer's "
        "output scale."
    )
    add_selector(qexplain_parser, "step, name, prefix*, range a:b", optional=False)
    add_json_option(qexplain_parser)

    @cmd2.with_argparser(qexplain_parser)
    def do_qexplain(self, args: Any) -> None:
        """Explain a quantized layer's integer arithmetic with its numbers."""
        from nnshell.report.analysis_views import qexplain_blocks

        self.emit(qexplain_blocks(self.app.session.qexplain(args.selector), args.json))

    # -- astats ----------------------------------------------------------------------------
    astats_parser = NnArgumentParser(
        description="Per layer activation statistics: min, max, mean, std, the range each "
        "--mode would choose, the outliers beyond the percentile clip and the image that set "
        "each extreme. --convergence: how each layer's range moves as images are added "
        "(1, 2, 4, ... N), the image count after which every range is within 5 % of its final "
        "value, and the class coverage of the set. No files: the last aquant's statistics."
    )
    astats_parser.add_argument("files", nargs="*", completer=cmd2.Cmd.path_complete)
    astats_parser.add_argument(
        "--mode", help="the method whose range is charted (default: the current aquant's)"
    )
    astats_parser.add_argument(
        "--convergence", action="store_true", help="ranges as calibration images are added"
    )
    astats_parser.add_argument(
        "--hist",
        nargs="?",
        const="",
        metavar="SEL",
        help="draw the |x| histogram with the chosen clip (all layers, or SEL)",
    )
    astats_parser.add_argument("--png", metavar="FILE", help="write the histograms as a PNG")
    add_json_option(astats_parser)
    add_input_options(astats_parser)

    @cmd2.with_argparser(astats_parser)
    def do_astats(self, args: Any) -> None:
        """Activation statistics, ranges per method, convergence and class coverage."""
        from nnshell.report import analysis_views as views
        from nnshell.shell.progress import image_progress

        session = self.app.session
        opts = self.image_options(args, warn_drift=False)
        with image_progress("statistics") as progress:
            rep = session.astats(args.files, opts, args.convergence, progress, args.mode)
        hist_rows = rep.layers
        if args.hist is not None and args.hist.strip():
            from nnshell.selectors import select_steps

            keep = set(select_steps(session.require_graph(), args.hist))
            hist_rows = [r for r in rep.layers if r.step in keep]
        if args.png:
            views.astats_png(args.png, session.name, rep, hist_rows)
        shown = hist_rows if args.hist is not None else []
        self.emit(views.astats_blocks(rep, session.name, shown, args.json, args.png))

    # -- tensors ---------------------------------------------------------------------------
    tensors_parser = NnArgumentParser(
        description="List the stored tensor sets (dump -S NAME), show one (-t A) or compare two "
        "(-t A B: QSNR, cosine, max error; -Q, -C or -E for one of them). -s STEP picks one "
        "layer, -c CH one channel; --write_numpy writes the selection (.npy, or .npz for a set); "
        "-X prints every value instead of a summary."
    )
    tensors_parser.add_argument("-t", "--tensors", nargs="+", metavar="NAME", help="A [B]")
    tensors_parser.add_argument("-s", "--step", metavar="STEP", help="one layer (step or name)")
    tensors_parser.add_argument("-c", "--channel", type=int, metavar="CH", help="one channel")
    which = tensors_parser.add_mutually_exclusive_group()
    which.add_argument("-Q", "--qsnr", action="store_true", help="compare by QSNR only")
    which.add_argument("-C", "--cosine", action="store_true", help="compare by cosine only")
    which.add_argument("-E", "--error", action="store_true", help="compare by max abs error")
    tensors_parser.add_argument("--write_numpy", metavar="FILE", help="write the selection")
    tensors_parser.add_argument("-X", "--all_values", action="store_true", help="every value")
    add_json_option(tensors_parser)

    @cmd2.with_argparser(tensors_parser)
    def do_tensors(self, args: Any) -> None:
        """List, show or compare stored tensor sets."""
        from nnshell.analysis import tensor_sets as ts
        from nnshell.report import analysis_views as views

        session = self.app.session
        if not args.tensors:
            self.emit(views.tensor_sets_blocks(session.tensors, args.json))
            return
        sets = ts.lookup(session.tensors, args.tensors)
        keys = ts.select_keys(sets[0], args.step, session.require_graph)
        if len(sets) == 1:
            picked = ts.pick_all(sets[0], keys, args.channel)
            if args.write_numpy:
                self._wrote(ts.write_arrays(args.write_numpy, picked), args.write_numpy)
                return
            one_step = args.step is not None
            self.emit(
                views.tensor_show_blocks(
                    args.tensors[0], picked, args.json, one_step, args.all_values
                )
            )
            return
        cmp = ts.compare_sets(sets[0], sets[1], keys, args.channel)
        metrics = ts.metrics_for(args.qsnr, args.cosine, args.error)
        self.emit(views.tensor_compare_blocks(args.tensors, cmp, metrics, args.channel, args.json))
        if args.write_numpy and not args.json:  # the differences A - B
            self._wrote(ts.write_arrays(args.write_numpy, cmp.diffs), args.write_numpy)

    def _wrote(self, count: int, path: str) -> None:
        self.app.poutput(f"tensors: wrote {count} array(s) to {path}")
