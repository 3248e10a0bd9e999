"""NNTool's graph-level commands: ``nodeoption``, ``freeze``, ``remove``, ``extract``, ``stats``,
``temps``, ``draw``. Each is a thin wrapper over a library function (the module named in it)."""

from __future__ import annotations

from typing import Any

import cmd2

from nnshell.shell.commands.base import NnCommandSet
from nnshell.shell.commands.common import add_json_option
from nnshell.shell.parser import NnArgumentParser


def json_rows(rows: Any) -> str:
    """A list of report dataclasses as a JSON document."""
    import dataclasses
    import json

    return json.dumps([dataclasses.asdict(r) for r in rows], indent=1)


class GraphCommands(NnCommandSet):
    """nodeoption, freeze, remove, extract, stats, temps, draw."""

    DEFAULT_CATEGORY = "Graph"

    def option_choices(self, arg_tokens: dict[str, list[str]]) -> list[str]:
        """The options the chosen step accepts."""
        from nnshell.codegen.node_options import resolve, valid_options

        graph = self.app.session.graph
        try:
            return sorted(valid_options(graph, resolve(graph, arg_tokens["step"][0])))
        except Exception:  # noqa: BLE001 - completion never raises
            return []

    nodeoption_parser = NnArgumentParser(
        description="Per-node AutoTiler generator options (NNTool's nodeoption): written by "
        "'gen --target autotiler' (generator controls such as PARALLELFEATURES, ALLOCATE on a "
        "graph input/output, OUT_HOME_MEM_LOC / OUT_EXEC_MEM_LOC of a layer's output). STEP is "
        "NNTool's step number (it counts inputs and constants: 0 is the first graph input; "
        "S<k> too), a node name or an input/output name. No arguments: every option set; "
        "STEP alone: that node's options and the valid ones; no VALUE: remove the option."
    )
    nodeoption_parser.add_argument(
        "step", nargs="?", choices_provider=NnCommandSet.node_choices, help="NNTool step or name"
    )
    nodeoption_parser.add_argument(
        "option", nargs="?", choices_provider=option_choices, help="option name"
    )
    nodeoption_parser.add_argument("value", nargs="?", help="integer or memory area")

    @cmd2.with_argparser(nodeoption_parser)
    def do_nodeoption(self, args: Any) -> None:
        """Set, remove or list per-node AutoTiler generator options."""
        from nnshell.codegen.node_options import describe, set_node_option, show_node_options

        session = self.app.session
        if args.option is None:
            shown = show_node_options(session, args.step)
            for o in shown:
                opts = ", ".join(f"{k}={v}" for k, v in o.options.items()) or "no options set"
                self.app.poutput(f"{describe(session.graph, o.target)}: {opts}")
                if o.valid:
                    self.app.poutput(f"  valid: {', '.join(o.valid)}")
            if not shown:
                self.app.poutput("no nodeoptions set")
            return
        o = set_node_option(session, args.step, args.option, args.value)
        what = "removed" if o.value is None else f"set to {o.value}"
        self.app.poutput(f"{describe(session.graph, o.target)}: {o.option} {what}")

    def _edited(self, out: Any, what: str) -> None:
        ins, outs = ", ".join(out.inputs), ", ".join(out.outputs)
        self.app.poutput(f"{what} {len(out.removed)} node(s); inputs: {ins}; outputs: {outs}")
        for note in out.notes:
            self.app.pinfo(note)

    remove_parser = NnArgumentParser(
        description="Remove nodes (NNTool's remove). One node: it and everything below it; "
        "the activations it read become graph outputs (drop a detection head). --up: it and "
        "everything above it; what the rest read from there becomes graph inputs. --leave: "
        "keep the node itself. Two nodes A B: remove what is between them (shape unchanged)."
    )
    remove_parser.add_argument(
        "nodes", nargs="+", choices_provider=NnCommandSet.node_choices, help="node (or from to)"
    )
    remove_parser.add_argument("-u", "--up", action="store_true", help="remove upwards")
    remove_parser.add_argument("--leave", action="store_true", help="keep the node itself")

    @cmd2.with_argparser(remove_parser)
    def do_remove(self, args: Any) -> None:
        """Remove a node and what is below (or above) it, or the nodes between two."""
        from nnshell.session.edits import remove

        self._edited(remove(self.app.session, args.nodes, args.up, args.leave), "removed")

    extract_parser = NnArgumentParser(
        description="Keep one step (NNTool's extract) or a range a:b (nnshell) as the whole "
        "graph: what it reads from outside becomes graph inputs, what leaves it outputs."
    )
    extract_parser.add_argument(
        "step", choices_provider=NnCommandSet.node_choices, help="step, name or range a:b"
    )

    @cmd2.with_argparser(extract_parser)
    def do_extract(self, args: Any) -> None:
        """Keep only a step (or a range of steps) of the graph."""
        from nnshell.session.edits import extract

        self._edited(extract(self.app.session, args.step), "extract: removed")

    freeze_parser = NnArgumentParser(
        description="Toggle freezing of the channel order of graph inputs/outputs: adjust does "
        "not change a frozen input's order. --transpose AXES (e.g. 1,2,0, without the batch) "
        "first gives the tensor that axis order (a Transpose joins it to the network)."
    )
    freeze_parser.add_argument(
        "node_names", nargs="+", choices_provider=NnCommandSet.node_choices, help="input/output"
    )
    freeze_parser.add_argument("--transpose", metavar="AXES", help="axes separated by commas")

    @cmd2.with_argparser(freeze_parser)
    def do_freeze(self, args: Any) -> None:
        """Toggle freezing of graph inputs/outputs' channel order."""
        from nnshell.session.edits import freeze

        for name, on in freeze(self.app.session, args.node_names, args.transpose):
            dims = self.app.session.graph.tensors[name].dims
            self.app.poutput(f"{name} {'frozen' if on else 'unfrozen'} {dims}")

    stats_parser = NnArgumentParser(
        description="Weight statistics per layer (NNTool's stats): range and 8-bit weight "
        "QSNR at the layer's scale; output channels under the threshold are listed."
    )
    stats_parser.add_argument("-d", "--detailed", action="store_true", help="more columns")
    stats_parser.add_argument(
        "-q", "--qsnr", type=float, default=30.0, help="QSNR threshold in dB (default 30)"
    )
    stats_parser.add_argument(
        "-s", "--step", nargs="+", metavar="STEP", help="per-channel table of these steps"
    )
    add_json_option(stats_parser)

    @cmd2.with_argparser(stats_parser)
    def do_stats(self, args: Any) -> None:
        """Weight statistics per layer and channel."""
        from nnshell.analysis.wstats import weight_stats
        from nnshell.report.graph_tables import channel_table, stats_table
        from nnshell.selectors import select_steps

        graph = self.app.session.require_graph()
        steps = select_steps(graph, ",".join(args.step)) if args.step else None
        rows = weight_stats(graph, args.qsnr, steps)
        if args.json:
            self.app.poutput(json_rows(rows))
        elif not rows:
            self.app.poutput("no weighted layer selected")
        elif args.step:
            for r in rows:
                self.app.print_table(channel_table(r, args.qsnr))
        else:
            self.app.print_table(stats_table(rows, args.qsnr, args.detailed))

    temps_parser = NnArgumentParser(
        description="Activation memory per step (NNTool's temps): the tensors live while each "
        "step runs and their bytes, float and (when quantized) quantized; * marks the peak."
    )
    add_json_option(temps_parser)

    @cmd2.with_argparser(temps_parser)
    def do_temps(self, args: Any) -> None:
        """Live activations per step."""
        from nnshell.analysis.temps import temps
        from nnshell.report.graph_tables import temps_table

        session = self.app.session
        rows = temps(session.require_graph(), session.qstate)
        if args.json:
            self.app.poutput(json_rows(rows))
        else:
            self.app.print_table(temps_table(rows))

    draw_parser = NnArgumentParser(
        description="Draw the graph (NNTool's draw): -f FILE.png / .svg / .dot writes a "
        "picture (no graphviz needed), without -f a compact text drawing. -F shows fusions as "
        "groups of their operators, -q labels edges with quantization instead of shapes."
    )
    draw_parser.add_argument(
        "step", nargs="?", choices_provider=NnCommandSet.node_choices, help="selector (all)"
    )
    draw_parser.add_argument("-F", "--fusions", action="store_true", help="fusions as groups")
    draw_parser.add_argument(
        "-q", "--quant_labels", action="store_true", help="label edges with quantization"
    )
    draw_parser.add_argument(
        "-f", "--file", metavar="GRAPH_FILE", completer=cmd2.Cmd.path_complete, help="output"
    )

    @cmd2.with_argparser(draw_parser)
    def do_draw(self, args: Any) -> None:
        """Draw the graph to a picture or the terminal."""
        from nnshell.report.draw import draw_graph
        from nnshell.selectors import select_steps

        session = self.app.session
        graph = session.require_graph()
        steps = select_steps(graph, args.step) if args.step else None
        width = self.app.terminal_width() or 80
        out = draw_graph(
            graph, session.qstate, steps, args.fusions, args.quant_labels, args.file, width
        )
        if args.file:
            self.app.pinfo(f"draw: wrote {out}")
        else:
            self.app.poutput(out)
