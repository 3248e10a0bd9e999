"""NNTool commands without a better home: ``imageformat`` (the input formatter).

``imageformat INPUT FORMAT NORM`` inserts a formatter on a graph input (raw uint8 HWC pixels ->
the network input, :mod:`nnshell.input.formatter`); running it again on the same input removes it.
"""

from __future__ import annotations

import math
from typing import Any

import cmd2

from nnshell.shell.commands.base import NnCommandSet
from nnshell.shell.parser import NnArgumentParser

#: nnshell.input.formatter's FORMATS and NORMS (repeated: that module loads numpy, the shell starts
#: without it; a test keeps them equal)
FORMAT_CHOICES = ("bw8", "bw16", "rgb888", "rgb16", "rgb565_rgb888")
NORM_CHOICES = ("shift_int8", "offset_int8", "out_int16")


class NntoolCommands(NnCommandSet):
    """imageformat."""

    DEFAULT_CATEGORY = "Quantization"

    def input_choices(self) -> cmd2.Choices:
        """Graph input names for tab completion."""
        from nnshell.io_names import io_names

        graph = self.app.session.graph
        return cmd2.Choices.from_values(io_names(graph, "input") if graph is not None else [])

    imageformat_parser = NnArgumentParser(
        description="Insert an input formatter: the input becomes raw unsigned HWC pixels and "
        "the formatter produces the network's CHW input (FORMAT: the raw pixels; NORM: "
        "offset_int8 q = p-128 (x/128-1), shift_int8 q = p>>1 (p/256), out_int16 q = p<<7). "
        "A quantized graph is checked: the formatter's codes must be its input codes. Run "
        "again on the same input (same FORMAT NORM, or none) to remove it; other values "
        "replace it. Raw images then need no -T/-D/-O/-N."
    )
    imageformat_parser.add_argument(
        "input", choices_provider=input_choices, help="graph input: its name or NNTool's input_N"
    )
    imageformat_parser.add_argument(
        "format", nargs="?", choices=FORMAT_CHOICES, help="raw pixel format"
    )
    imageformat_parser.add_argument(
        "norm", nargs="?", choices=NORM_CHOICES, help="integer normalisation"
    )

    @cmd2.with_argparser(imageformat_parser)
    def do_imageformat(self, args: Any) -> None:
        """Insert (or remove) an input formatter."""
        session = self.app.session
        out = session.imageformat(args.input, args.format, args.norm)
        if out.formatter is None:
            prev = out.previous
            self.app.poutput(
                f"removed the {prev.fmt} {prev.norm} formatter of {out.input}: it takes the "
                "normalised CHW tensor again"
            )
            return
        from nnshell.input.formatter import raw_shape

        f = out.formatter
        h, w, c = raw_shape(session.require_graph(), out.input, f)
        was = f" (replaced {out.previous.fmt} {out.previous.norm})" if out.previous else ""
        self.app.poutput(
            f"{out.input}: raw {f.fmt} {h}x{w}x{c} ({f.ctype}, HWC) -> {f.norm} -> CHW "
            f"int{f.bits} codes, S=2^{round(math.log2(f.scale))} Z=0, "
            f"x = {f.norm_func[3:]}{was}"
        )
        if session.qstate is not None:
            self.app.pinfo("checked: the formatter's codes are the quantized input codes")
