"""Tuning commands of NNTool: ``weight_equalization``, ``balance_filters``, ``bcorr``
(thin wrappers over :mod:`nnshell.tune`; docs/equalization.md says what each does and what it
measured)."""

from __future__ import annotations

from typing import Any

import cmd2

from nnshell.shell.commands.base import NnCommandSet
from nnshell.shell.commands.common import add_input_options
from nnshell.shell.parser import NnArgumentParser


class EqualizeCommands(NnCommandSet):
    """weight_equalization, balance_filters, bcorr."""

    DEFAULT_CATEGORY = "Quantization"

    we_parser = NnArgumentParser(
        description="Cross-layer weight equalization (Nagel et al. 2019): rescale the channels "
        "of consecutive conv/linear layers joined by ReLU, pools or nothing so their per-channel "
        "weight ranges match (float outputs unchanged; ReLU6 and other functions end a chain). "
        "Repeated until every scale is within THRESHOLD of 1. Drops the quantization: run aquant."
    )
    we_parser.add_argument(
        "threshold", nargs="?", type=float, default=0.1, help="convergence threshold (0.1)"
    )
    we_parser.add_argument(
        "--exact_scales",
        action="store_true",
        help="NNTool's square-root scales (float outputs equal up to float32 rounding); "
        "default: the scales rounded to powers of two, float outputs unchanged bit for bit",
    )

    @cmd2.with_argparser(we_parser)
    def do_weight_equalization(self, args: Any) -> None:
        """Equalize the weight ranges of consecutive layers."""
        from nnshell.tune.equalization import weight_equalization

        res = weight_equalization(self.app.session, args.threshold, not args.exact_scales)
        if res.pairs:
            state = "converged" if res.converged else "stopped"
            self.app.poutput(
                f"weight_equalization: {len(res.pairs)} layer pair(s), {state} after "
                f"{res.sweeps} sweep(s)"
            )
            for name, (before, after) in res.spread.items():
                self.app.poutput(f"  {name}: channel range max/mean {before:.2f} -> {after:.2f}")
        self.notes(res.notes)

    bf_parser = NnArgumentParser(
        description="Balance filter weights: layers with a channel whose weight range is below "
        "-t of the layer's keep one weight scale per channel even with aquant --per_tensor "
        "(NNTool's multiplicative bias; SQ8 already has a multiplier per channel)."
    )
    bf_parser.add_argument(
        "-s",
        "--step",
        type=int,
        help="balance only this step (NNTool's number: show --nntool_steps)",
    )
    bf_parser.add_argument(
        "-t", "--threshold", type=float, default=0.2, help="precision threshold (0.2)"
    )

    @cmd2.with_argparser(bf_parser)
    def do_balance_filters(self, args: Any) -> None:
        """Give imprecise filters per-channel weight scales."""
        from nnshell.tune.equalization import balance_filters

        res = balance_filters(self.app.session, args.step, args.threshold)
        for name, low in res.balanced:
            self.app.poutput(f"balanced {name} (narrowest channel {low:.3f} of the range)")
        self.notes(res.notes)

    bcorr_parser = NnArgumentParser(
        description="Empirical bias correction: on the images, each filter layer's mean "
        "quantized-minus-float output per channel is subtracted from its bias, then the graph "
        "is quantized again from the same statistics."
    )
    bcorr_parser.add_argument(
        "files", nargs="+", completer=cmd2.Cmd.path_complete, help="image files, folders or globs"
    )
    add_input_options(bcorr_parser)

    @cmd2.with_argparser(bcorr_parser)
    def do_bcorr(self, args: Any) -> None:
        """Correct biases with the mean quantization error."""
        from nnshell.shell.progress import image_progress
        from nnshell.tune.bcorr import bcorr

        session = self.app.session
        opts = self.image_options(args)
        with image_progress("correcting") as progress:
            res = bcorr(session, args.files, opts, progress)
        worst = max(res.corrected.values(), default=0.0)
        self.app.poutput(
            f"bcorr: {len(res.corrected)} layer(s) corrected on {res.images} image(s), "
            f"largest shift {worst:.2f} output step(s); re-quantized"
        )
        self.notes(res.skipped)
