"""Commands that open and inspect a model: ``open``, ``show``."""

from __future__ import annotations

import json
import re
from typing import Any

import cmd2

from nnshell.errors import UsageError
from nnshell.report.tables import layer_table, layers_json
from nnshell.shell.commands.base import NnCommandSet, add_selector
from nnshell.shell.commands.common import add_json_option
from nnshell.shell.parser import NnArgumentParser


def parse_input_shapes(items: list[str] | None) -> dict[str, list[int]]:
    """Parse ``NAME=[d1,d2,...]`` (brackets optional) into a dict."""
    out: dict[str, list[int]] = {}
    for item in items or []:
        m = re.fullmatch(r"\s*([^=\s]+)\s*=\s*\[?([\d,\s]+)\]?\s*", item)
        if not m:
            raise UsageError(f"--input_shapes '{item}' is not NAME=[d1,d2,...]")
        out[m.group(1)] = [int(d) for d in m.group(2).replace(" ", "").split(",") if d]
    return out


def _supported_ops_epilog() -> str:
    """The op list for ``help open`` (built on demand: importing the ops loads numpy)."""
    from nnshell.importers.tflite_importer import supported_tflite_ops
    from nnshell.ops import supported_onnx_types

    return (
        "Supported ONNX operators: "
        + ", ".join(supported_onnx_types())
        + ".\nSupported TFLite operators (open MODEL.tflite; see 'help tflite'): "
        + ", ".join(supported_tflite_ops())
    )


class ModelCommands(NnCommandSet):
    """open and show."""

    DEFAULT_CATEGORY = "Model"

    open_parser = NnArgumentParser(
        description="Import an ONNX or TFLite model into the session. Nodes whose inputs are all "
        "constant are folded; every unsupported op is listed at once and the session is left "
        "unchanged. TFLite node names follow NNTool (CONV_2D_0_1).",
    )
    open_parser.epilog_fn = _supported_ops_epilog  # type: ignore[attr-defined]
    open_parser.add_argument(
        "file", completer=cmd2.Cmd.path_complete, help="model .onnx / .tflite file"
    )
    open_parser.add_argument(
        "-q",
        "--load_quantization",
        action="store_true",
        help="TFLite: keep the file's int8 / int16x8 / uint8 quantization (as NNTool's -q)",
    )
    open_parser.add_argument(
        "-f", "--force", action="store_true", help="replace an unsaved quantization without asking"
    )
    open_parser.add_argument(
        "--input_shapes",
        nargs="+",
        metavar="NAME=[d,..]",
        help="static shape (without batch) for inputs with dynamic dimensions",
    )

    @cmd2.with_argparser(open_parser)
    def do_open(self, args: Any) -> None:
        """Import an ONNX or TFLite model; unsupported ops are all listed, the session unchanged."""
        shapes = parse_input_shapes(args.input_shapes)
        if not args.force and not self.app.confirm_discard("open"):
            return
        graph = self.app.session.open(args.file, shapes, args.load_quantization)
        ins = ", ".join(f"{i} {graph.tensors[i].dims}" for i in graph.inputs)
        self.app.pinfo(
            f"opened {args.file}: graph '{graph.name}', {len(graph.nodes)} nodes, input {ins}"
            + (
                " (file quantization kept: applied by fusions --scale8)"
                if args.load_quantization
                else ""
            )
        )

    show_parser = NnArgumentParser(
        description="Layer table: shapes, parameters, activation bytes and MACs, with totals."
    )
    add_selector(show_parser, "step, name, prefix*, range a:b or a comma list (default: all)")
    add_json_option(show_parser)
    show_parser.add_argument(
        "--nntool_steps", action="store_true", help="add NNTool's step numbers (S<k>)"
    )

    @cmd2.with_argparser(show_parser)
    def do_show(self, args: Any) -> None:
        """Show the layers of the open graph."""
        rows, totals = self.app.session.layers(args.selector)
        if args.json:
            self.app.poutput(json.dumps(layers_json(rows, totals), indent=1))
            return
        title = (
            f"{self.app.session.name}: {len(rows)} of {len(self.app.session.graph.nodes)} layers"
        )
        from nnshell.codegen.node_options import layer_nntool_steps
        from nnshell.ir.io_names import io_caption

        partial = len(rows) < len(self.app.session.graph.nodes)
        graph = self.app.session.graph
        nt = layer_nntool_steps(graph) if args.nntool_steps else None
        self.app.print_table(layer_table(rows, totals, title, partial, io_caption(graph), nt))
