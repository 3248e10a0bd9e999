"""``fquant`` and ``qtune`` (NNTool's names and flags): quantization without images, and the
per-graph quantization settings (:mod:`nnshell.quant.tuning`, docs/FLOAT16.md)."""

from __future__ import annotations

import argparse
from typing import Any

import cmd2

from nnshell.shell.commands.base import NnCommandSet
from nnshell.shell.parser import NnArgumentParser


class TuneCommands(NnCommandSet):
    """fquant, qtune."""

    DEFAULT_CATEGORY = "Quantization"

    fquant_parser = NnArgumentParser(
        description="Quantize with statistics of random inputs (no images): to try "
        "quantization and code generation before real data exists. Kept as a setting of the "
        "graph: adjust and fusions quantize again with it, save_state keeps it."
    )
    fquant_parser.add_argument(
        "-s",
        "--scheme",
        choices=("SQ8", "POW2"),
        default="",
        help="scheme (default: the fusions' scheme, SQ8 before any)",
    )
    fquant_parser.add_argument(
        "-f", "--force_width", type=int, choices=(0, 8, 16), default=0, help="POW2 width"
    )
    fquant_parser.add_argument(
        "--uniform", type=float, default=0.0, help="inputs uniform in [-U, U] instead"
    )
    fquant_parser.add_argument(
        "--normal", type=float, default=0.2, help="inputs normal(0, SIGMA) (default 0.2)"
    )
    fquant_parser.add_argument(
        "--num_inference", type=int, default=1, help="random inputs drawn (default 1)"
    )
    fquant_parser.add_argument(
        "--seed", type=int, default=0, help="random seed (default 0: the same every run)"
    )

    @cmd2.with_argparser(fquant_parser)
    def do_fquant(self, args: Any) -> None:
        """Fake statistics from random inputs."""
        from nnshell.quant.tuning import FakeOptions

        opts = FakeOptions(
            int(args.seed),
            float(args.normal),
            float(args.uniform),
            int(args.num_inference),
            str(args.scheme),
            int(args.force_width),
        )
        self.app.poutput(self.app.session.fquant(opts))

    qtune_parser = NnArgumentParser(
        description="Quantization settings per graph: qtune --step SEL KEY=VALUE ... or "
        "qtune SEL VALUE ... (e.g. qtune * float bfloat16). Keys: scheme=scaled|pow2|float, "
        "float_type=bfloat16|float16|float32, bits=8|16, quantized_dimension=tensor|channel, "
        "clip_type=none|minmax|percentile:P|mse|kl. Kept through adjust, fusions and "
        "save_state. A SEL naming some layers makes them float and the rest SQ8, with "
        "conversion layers between (docs/FLOAT16.md)."
    )
    qtune_parser.add_argument(
        "--step", nargs="+", action="append", metavar="SEL KEY=VALUE", help="a rule"
    )
    qtune_parser.add_argument("words", nargs=argparse.REMAINDER, help="SEL VALUE ...")

    @cmd2.with_argparser(qtune_parser)
    def do_qtune(self, args: Any) -> None:
        """Set quantization options (a float graph: qtune * float bfloat16)."""
        from nnshell.errors import UsageError

        rules = [list(r) for r in args.step or []] + ([list(args.words)] if args.words else [])
        if not rules:
            raise UsageError("qtune needs a rule", "qtune * float bfloat16")
        self.app.poutput(self.app.session.qtune_rules(rules))
