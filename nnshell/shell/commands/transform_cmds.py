"""Commands that rewrite the graph: ``adjust`` and ``fusions``."""

from __future__ import annotations

import json
from typing import Any

import cmd2

from nnshell.report.passes_report import pass_json, pass_report, passes_table
from nnshell.shell.commands.base import NnCommandSet
from nnshell.shell.commands.common import add_json_option
from nnshell.shell.parser import NnArgumentParser


class TransformCommands(NnCommandSet):
    """adjust and fusions."""

    DEFAULT_CATEGORY = "Graph"

    def pass_choices(self) -> cmd2.Choices:
        """Pass names for tab completion of ``fusions -a``."""
        from nnshell.passes import PASSES

        return cmd2.Choices.from_values(sorted(PASSES))

    adjust_parser = NnArgumentParser(
        description="Put tensors and filters in the CHW / out_c,in_c,h,w order the kernels use "
        "and eliminate transposes. For a CHW ONNX graph 'nothing to change' is the right answer."
    )
    adjust_parser.add_argument(
        "-n", "--dry-run", action="store_true", help="only say what would change"
    )
    add_json_option(adjust_parser)

    @cmd2.with_argparser(adjust_parser)
    def do_adjust(self, args: Any) -> None:
        """Adjust the layout of the open graph."""
        res = self.app.session.adjust(dry_run=args.dry_run)
        if args.json:
            self.app.poutput(json.dumps(pass_json(res, dry_run=args.dry_run), indent=1))
            return
        if not res.changed:
            head = "adjust: nothing to change (the graph is already CHW)"
        else:
            head = f"adjust: {res.changed} change(s){' (dry run)' if args.dry_run else ''}"
        lines = pass_report(res, head)
        self.app.poutput("\n".join(lines))

    fusions_parser = NnArgumentParser(
        description="Apply the fusion passes of a scheme until nothing changes; print each fusion."
    )
    grp = fusions_parser.add_mutually_exclusive_group()
    grp.add_argument("--scale8", action="store_true", help="the SQ8 pass list (default)")
    grp.add_argument("--pow2", action="store_true", help="the POW2 pass list")
    grp.add_argument(
        "-a",
        "--apply",
        nargs="+",
        metavar="NAME",
        choices_provider=pass_choices,
        help="apply these passes once, in this order",
    )
    grp.add_argument("-l", "--list", action="store_true", help="list the passes")
    fusions_parser.add_argument("--dry-run", action="store_true", help="show what would change")
    add_json_option(fusions_parser)

    @cmd2.with_argparser(fusions_parser)
    def do_fusions(self, args: Any) -> None:
        """Fuse layers into the units the MCU kernels execute."""
        from nnshell.passes import PASSES, SCHEMES

        if args.list:
            self.app.print_table(passes_table(list(PASSES.values()), SCHEMES))
            return
        scheme = "pow2" if args.pow2 else ("scale8" if not args.apply else None)
        out = self.app.session.fusions(scheme, args.apply, dry_run=args.dry_run)
        res = out.result
        if args.json:
            doc = pass_json(res, scheme=scheme, dry_run=args.dry_run, rederived_from=out.rederived)
            self.app.poutput(json.dumps(doc, indent=1))
            return
        what = f"--{scheme}" if scheme else "-a " + " ".join(args.apply)
        head = f"fusions {what}: {len(res.fusions)} fusion(s), {len(res.removed)} removal(s)"
        if args.dry_run:
            head += " (dry run: the graph is unchanged)"
        if out.rederived:
            head += (
                f"\nnote: derived again from the graph before the {out.rederived} fusions "
                "(no reopen needed)"
            )
        if not res.changed:
            head += "\nnothing to change"
        lines = pass_report(res, head) + [f"note: {n}" for n in out.notes]
        self.app.poutput("\n".join(lines))
