"""Quantization commands: ``aquant``, ``qshow``, ``validate``, ``footprint``."""

from __future__ import annotations

from typing import Any

import cmd2

from nnshell.shell.commands.base import NnCommandSet, add_selector
from nnshell.shell.commands.common import add_input_options, add_json_option
from nnshell.shell.parser import NnArgumentParser

#: aquant's on/off switches: (on flag, off flag, dest, help of each). Unset (None) keeps what
#: the previous aquant chose.
_AQUANT_SWITCHES = (
    (
        "--symmetric",
        "--asymmetric",
        "symmetric",
        "every zero point 0 (the classic symmetric scheme); kept by later aquant runs",
        "zero points from the ranges (the default)",
    ),
    (
        "--per_tensor",
        "--per_channel",
        "per_tensor",
        "one weight scale per layer instead of per channel; kept by later aquant runs",
        "one weight scale per output channel (the default)",
    ),
    (
        "--nntool_padding",
        "--zero_point_padding",
        "nntool_padding",
        "inputs of padded convs and pools and of global pools symmetric, as NNTool (what "
        "gen --target autotiler needs); kept by later aquant runs",
        "padded convs and pools pad with the input zero point (the default)",
    ),
)


def calibration_line(session: Any) -> str:
    """What the calibration saw: the images and the input options they were prepared with
    (a later run with other options gets a warning; see Session.input_drift)."""
    from nnshell.input.images import describe_inputs
    from nnshell.quant.float_q import is_float_state

    fake = session.graph.meta.get("fquant") if session.graph is not None else None
    if fake:
        return f"statistics of random inputs (fquant, seed {fake.get('seed')}): no images"
    if is_float_state(session.qstate) and not session.stats_files:
        return "float layers: no calibration needed"
    if session.calib_inputs is None:
        return "calibration input options: not recorded (a state saved by an older version)"
    return (
        f"calibrated on {len(session.stats_files)} image(s) with input options "
        f"{describe_inputs(session.calib_inputs)}"
    )


def keep_current_choices(args: Any, qstate: Any) -> list[str]:
    """--symmetric / --per_tensor / --nntool_padding not given: keep the current quantization's
    choice (SQ8 only); return a note for each choice kept so the user knows how to undo it."""
    kept = []
    cur = getattr(qstate, "options", None)
    for flag, on, off in (
        ("symmetric", "--symmetric", "--asymmetric"),
        ("per_tensor", "--per_tensor", "--per_channel"),
        ("nntool_padding", "--nntool_padding", "--zero_point_padding"),
    ):
        if getattr(args, flag) is None:
            value = bool(getattr(cur, flag, False)) and args.scheme == "SQ8"
            setattr(args, flag, value)
            if value:
                kept.append(f"{on} (kept from the current quantization; {off} undoes it)")
    return kept


class QuantCommands(NnCommandSet):
    """aquant, qshow, validate, footprint."""

    DEFAULT_CATEGORY = "Quantization"

    aquant_parser = NnArgumentParser(
        description="Calibrate on images (one streaming pass, progress bar) and quantize. With no "
        "files the statistics already collected are reused: a new --mode is instant."
    )
    aquant_parser.add_argument(
        "files", nargs="*", completer=cmd2.Cmd.path_complete, help="image files, folders or globs"
    )
    aquant_parser.add_argument(
        "-s",
        "--scheme",
        default="SQ8",
        type=str.upper,
        choices=["SQ8", "POW2"],
        help="quantization scheme: SQ8 (after fusions --scale8) or POW2 (after fusions --pow2)",
    )
    aquant_parser.add_argument(
        "-f",
        "--bits",
        type=int,
        default=16,
        choices=[8, 16],
        help="POW2 container width: 16 (default) or 8 bits",
    )
    aquant_parser.add_argument(
        "--mode", default="minmax", help="range: minmax (default), percentile:P, mse, kl"
    )
    for on, off, dest, on_help, off_help in _AQUANT_SWITCHES:
        pair = aquant_parser.add_mutually_exclusive_group()
        pair.add_argument(on, dest=dest, action="store_true", default=None, help=on_help)
        pair.add_argument(off, dest=dest, action="store_false", help=off_help)
    aquant_parser.add_argument(
        "--compare",
        metavar="M1,M2,...",
        help="compare range methods (e.g. minmax,percentile:99.99,mse,kl): per-layer QSNR "
        "table, images read once; the quantization is left unchanged",
    )
    aquant_parser.add_argument(
        "--validate", metavar="DIR", help="with --compare: top-1 per method on a labelled folder"
    )
    add_json_option(aquant_parser, "with --compare: JSON")
    add_input_options(aquant_parser)

    @cmd2.with_argparser(aquant_parser)
    def do_aquant(self, args: Any) -> None:
        """Calibrate and quantize the fused graph (SQ8, or POW2 with -s POW2).

        --symmetric / --per_tensor / --nntool_padding not given: the current quantization's
        choice is kept (a restored state too), so ``aquant --mode kl`` after ``aquant
        --per_tensor`` changes only the range method.
        """
        from nnshell.shell.progress import image_progress

        session = self.app.session
        kept = keep_current_choices(args, session.qstate)
        opts = self.image_options(args, warn_drift=False)
        if args.compare:
            self._compare(args, opts)
            return
        with image_progress("calibrating") as progress:
            out = session.aquant(
                args.files,
                opts,
                args.mode,
                args.symmetric,
                args.per_tensor,
                progress,
                scheme=args.scheme,
                bits=args.bits,
                nntool_padding=args.nntool_padding,
            )
        self._report(out, kept)

    def _report(self, out: Any, kept: list[str]) -> None:
        """The one-line summary of an aquant run, the choices kept and the warnings."""
        how = (
            f"reused the statistics of {out.images} image(s): no image read"
            if out.reused
            else f"calibrated on {out.images} image(s)"
        )
        self.app.poutput(f"aquant: {out.options.describe()}; {how}. Use qshow to see the result.")
        self.notes(kept)
        for warning in getattr(self.app.session.qstate, "warnings", []):
            self.app.poutput(f"warning: {warning}")

    def _compare(self, args: Any, opts: Any) -> None:
        """``aquant --compare``: per-layer QSNR of several range methods, nothing changed."""
        from nnshell.report.analysis_views import compare_blocks
        from nnshell.shell.progress import image_progress

        modes = [m.strip() for m in args.compare.split(",") if m.strip()]
        with image_progress("comparing") as progress:
            rep = self.app.session.compare_modes(
                args.files,
                modes,
                opts,
                args.validate,
                progress,
                args.symmetric,
                args.per_tensor,
                nntool_padding=args.nntool_padding,
            )
        self.emit(compare_blocks(rep, args.json))

    qshow_parser = NnArgumentParser(
        description="Show the quantization of each layer.",
        epilog="How to read it (SQ8): a tensor is int8 with real value = S·(q − Z). "
        "S: the scale (real units per code); Z: the zero point (the code of real 0); "
        "[lo, hi]: the calibrated range. Weights: int8, one scale per output channel "
        "(S min..max) or per layer; Bias: int32 at the accumulator scale S_in·S_w. Mult/shift: "
        "the output is rescaled by the integer multiplier M and a right shift >>N, i.e. "
        "x·M·2^-N ≈ x·S_in·S_w/S_out; 'M a..b >>c..d (16 ch)' gives the spread over the "
        "channels, '8b>>N M=m' a single value. Acc: bits the int32 accumulator really needs "
        "for these weights and inputs. Forced by: another layer that imposed this output's "
        "quantization (an add needs equal input scales, the graph output is symmetric; with "
        "--nntool_padding a padded conv or pool and a global average pool, as NNTool). POW2: "
        "Qm.n formats (n fractional bits) and the shift of the accumulator. The line under the "
        "table names the calibration's images and input options.",
    )
    add_selector(qshow_parser, "step, name, prefix*, range a:b (default: all)")
    add_json_option(qshow_parser)

    @cmd2.with_argparser(qshow_parser)
    def do_qshow(self, args: Any) -> None:
        """Quantization table: qtypes, weight scales, multipliers, forced qtypes."""
        from nnshell.report.quant_docs import qshow_json
        from nnshell.report.quant_tables import qshow_table
        from nnshell.selectors import select_steps

        session = self.app.session
        qstate = session.require_quantized()
        steps = select_steps(session.graph, args.selector)
        if args.json:
            self.app.poutput(qshow_json(session.graph, qstate, steps, session.calib_inputs))
            return
        title = f"{session.name}: {qstate.options.describe()}"
        self.app.print_table(qshow_table(session.graph, qstate, steps, title))
        self.app.poutput(calibration_line(session))

    validate_parser = NnArgumentParser(
        description="Top-1 accuracy on a labelled folder (label = last _ field of the file "
        "name, or --labels CSV): float, quantized, the drop and the images that flipped, and the "
        "paired test of the drop on the same images (exact McNemar on the images right in only "
        "one version; 95% intervals: paired Wald and Newcombe)."
    )
    validate_parser.add_argument("files", nargs="+", completer=cmd2.Cmd.path_complete)
    validate_parser.add_argument(
        "-q", "--float_only", action="store_true", help="only the float graph"
    )
    validate_parser.add_argument("--labels", metavar="FILE.csv", help="file,label lines")
    validate_parser.add_argument(
        "--confusion", action="store_true", help="print confusion matrices"
    )
    add_json_option(validate_parser)
    add_input_options(validate_parser)

    @cmd2.with_argparser(validate_parser)
    def do_validate(self, args: Any) -> None:
        """Measure the accuracy lost by quantization."""
        from nnshell.report.quant_docs import validate_json
        from nnshell.report.quant_tables import confusion_table, validate_lines
        from nnshell.shell.progress import image_progress

        session = self.app.session
        opts = self.image_options(args, not args.float_only)
        with image_progress("validating") as progress:
            res = session.validate(args.files, opts, not args.float_only, args.labels, progress)
        if args.json:
            self.app.poutput(validate_json(res))
            return
        self.app.poutput("\n".join(validate_lines(res)))
        if args.confusion:
            self.app.print_table(confusion_table(res.confusion(False), "float"))
            if res.quant_pred is not None:
                self.app.print_table(confusion_table(res.confusion(True), "quantized"))

    footprint_parser = NnArgumentParser(
        description="Memory footprint, float vs quantized: parameter bytes (weights, biases, "
        "multipliers) and peak activation RAM from tensor lifetimes, step by step (the float "
        "model as imported, the fused float graph, the quantized one, with the tensors at each "
        "peak), and where the quantized model goes on GAP8 under the l1_size/l2_size budgets."
    )
    add_json_option(footprint_parser)

    @cmd2.with_argparser(footprint_parser)
    def do_footprint(self, args: Any) -> None:
        """Compare the memory of the float and the quantized model."""
        from nnshell.analysis.footprint import gap8_placement
        from nnshell.report.quant_docs import footprint_json
        from nnshell.report.quant_tables import footprint_summary, footprint_table, gap8_lines

        session = self.app.session
        fp = session.footprint()
        place = gap8_placement(fp, session.settings)
        if args.json:
            self.app.poutput(footprint_json(fp, place))
            return
        self.app.print_table(footprint_table(fp))
        self.app.poutput("\n".join([*footprint_summary(fp), *gap8_lines(place)]))
