"""NNTool's graph-level commands: ``nodeoption``, ``freeze``, ``remove``, ``extract``, ``stats``,
``temps``, ``draw``. Each is a thin wrapper over a library function (the module named in it)."""

from __future__ import annotations

from typing import Any

import cmd2

from nnshell.shell.commands.base import NnCommandSet
from nnshell.shell.parser import NnArgumentParser


class GraphCommands(NnCommandSet):
    """nodeoption, freeze, remove, extract, stats, temps, draw."""

    DEFAULT_CATEGORY = "Graph"

    def option_choices(self, arg_tokens: dict[str, list[str]]) -> list[str]:
        """The options the chosen step accepts."""
        from nnshell.node_options import resolve, valid_options

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
        from nnshell.node_options import describe, set_node_option, show_node_options

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
