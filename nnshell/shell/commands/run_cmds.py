"""Commands that run the network on inputs: ``dump``."""

from __future__ import annotations

from typing import Any

import cmd2

from nnshell.shell.commands.base import NnCommandSet
from nnshell.shell.commands.common import add_input_options
from nnshell.shell.parser import NnArgumentParser


class RunCommands(NnCommandSet):
    """dump."""

    DEFAULT_CATEGORY = "Run"

    dump_parser = NnArgumentParser(
        description="Run one input through the float graph and print or store every layer's output."
    )
    dump_parser.add_argument("file", completer=cmd2.Cmd.path_complete, help="input image or .npy")
    dump_parser.add_argument(
        "-P",
        "--save",
        metavar="FILE.npz",
        help="write one array per node name plus each graph output",
    )
    dump_parser.add_argument(
        "-q", "--quantized", action="store_true", help="the integer graph's int8 outputs"
    )
    dump_parser.add_argument(
        "-d", "--dequantize", action="store_true", help="quantized outputs as real values"
    )
    dump_parser.add_argument(
        "-S", "--store", metavar="NAME", help="keep the arrays as tensor set NAME (see tensors)"
    )
    dump_parser.add_argument("-s", "--step", metavar="STEP", help="only this step (a selector)")
    add_input_options(dump_parser)

    @cmd2.with_argparser(dump_parser)
    def do_dump(self, args: Any) -> None:
        """Dump every layer's float output for one input."""
        from nnshell.atomic import atomic_write_npz

        session = self.app.session
        opts = self.image_options(args, args.quantized or args.dequantize)
        arrays = session.dump(
            args.file, opts, args.quantized, args.dequantize, args.step, args.store
        )
        if args.store:
            self.app.poutput(f"dump: stored {len(arrays)} arrays as tensor set '{args.store}'")
        if args.save:
            atomic_write_npz(args.save, arrays)
            self.app.poutput(f"dump: wrote {len(arrays)} arrays to {args.save}")
            return
        from nnshell.report.analysis_views import tensor_stats_table

        kind = "dequantized" if args.dequantize else "quantized" if args.quantized else "float"
        self.app.print_table(tensor_stats_table(f"{kind} outputs for {args.file}", arrays))
