"""The base of every nnshell CommandSet: access to the shell and node-name completion."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import cmd2

from nnshell.shell.commands.common import input_overrides
from nnshell.shell.parser import NnArgumentParser

if TYPE_CHECKING:
    from nnshell.shell.app import NnShell


class NnCommandSet(cmd2.CommandSet):  # type: ignore[type-arg]
    """What every command group needs: the shell it belongs to and node-name completion."""

    @property
    def app(self) -> NnShell:
        """The shell this set is registered with."""
        return self._cmd  # type: ignore[return-value]

    def node_choices(self) -> cmd2.Choices:
        """Node names of the open graph, for tab completion of selectors (cmd2 passes the
        command's own set as ``self``: it is a subclass of this one)."""
        graph = self.app.session.graph
        if graph is None:
            return cmd2.Choices.from_values([])
        from nnshell.ir.io_names import io_names

        return cmd2.Choices.from_values([n.name for n in graph.nodes] + io_names(graph))

    def image_options(self, args: Any, warn_drift: bool = True) -> Any:
        """The session's input options with this command line's ``-T -D -O …`` on top;
        ``warn_drift``: say so (one line) when they are not the calibration's."""
        opts = self.app.session.input_options(**input_overrides(args))
        if warn_drift:
            self.app.warn_input_drift(opts)
        return opts

    def notes(self, lines: Any) -> None:
        """Print each line as ``note: …`` (what a command chose or skipped, not a warning)."""
        for line in lines:
            self.app.poutput(f"note: {line}")

    def emit(self, blocks: list[Any]) -> None:
        """Print a renderer's blocks in order: strings as output lines, the rest as tables."""
        for block in blocks:
            if isinstance(block, str):
                self.app.poutput(block)
            else:
                self.app.print_table(block)


def add_selector(parser: NnArgumentParser, help: str, optional: bool = True) -> None:
    """The ``selector`` positional of the commands that show some layers (tab-completes node
    names)."""
    extra: dict[str, Any] = {"nargs": "?"} if optional else {}
    parser.add_argument("selector", choices_provider=NnCommandSet.node_choices, help=help, **extra)
