"""NnShell: the cmd2 application that owns one Session.

Error contract (one place for every command): an NnshellError prints one line
``[FILE:LINE: ]error: <message> [hint: ...]``; any other exception is reported as an internal
error naming the command, and the session stays usable. Tracebacks only with ``--debug`` or
``set debug true``. ``last_error`` lets the script runner stop at the first failure.
"""

from __future__ import annotations

import traceback
from typing import Any

import cmd2

from nnshell import __version__
from nnshell import settings as settings_mod
from nnshell.errors import NnshellError, UsageError
from nnshell.report.tables import settings_table
from nnshell.session import Session
from nnshell.shell.commands.analysis_cmds import AnalysisCommands
from nnshell.shell.commands.gen_cmds import GenCommands
from nnshell.shell.commands.model_cmds import ModelCommands
from nnshell.shell.commands.nntool_cmds import NntoolCommands
from nnshell.shell.commands.quant_cmds import QuantCommands
from nnshell.shell.commands.run_cmds import RunCommands
from nnshell.shell.commands.state_cmds import StateCommands
from nnshell.shell.commands.transform_cmds import TransformCommands
from nnshell.shell.parser import NnArgumentParser

INTRO = f"nnshell {__version__} — float ONNX to int8 for microcontrollers. Type help or help CMD."


class NnShell(cmd2.Cmd):
    """The interactive shell; every command is a thin wrapper over a Session method."""

    def __init__(
        self,
        session: Session | None = None,
        *,
        stdin: Any = None,
        stdout: Any = None,
        persistent_history_file: str = "",
    ) -> None:
        super().__init__(
            stdin=stdin,
            stdout=stdout,
            allow_cli_args=False,
            include_py=False,
            include_ipy=False,
            persistent_history_file=persistent_history_file,
            command_sets=[
                ModelCommands(),
                TransformCommands(),
                QuantCommands(),
                RunCommands(),
                StateCommands(),
                AnalysisCommands(),
                GenCommands(),
                NntoolCommands(),
            ],
            suggest_similar_command=True,
            auto_suggest=False,
        )
        for name in ("do_run_pyscript", "do_edit", "do_run_script", "do__relative_run_script"):
            setattr(self, name, None)
        self.session = session or Session()
        self.error_prefix = ""
        self.last_error: str | None = None
        self.current_line = ""
        self.default_category = "Shell"
        self.register_precmd_hook(self._before_command)
        self.register_postcmd_hook(self._after_command)
        self.update_prompt()

    # -- prompt and hooks ------------------------------------------------------------------
    def update_prompt(self) -> None:
        """Show the open model's name in the prompt."""
        name = self.session.name
        self.prompt = f"nnshell ({name}) > " if name else "nnshell > "

    def _before_command(self, data: cmd2.plugin.PrecommandData) -> cmd2.plugin.PrecommandData:
        self.current_line = data.statement.raw
        return data

    def _after_command(self, data: cmd2.plugin.PostcommandData) -> cmd2.plugin.PostcommandData:
        self.update_prompt()
        return data

    # -- output helpers --------------------------------------------------------------------
    def print_table(self, renderable: Any) -> None:
        """Print a rich renderable; off a terminal, at its natural width (never squashed)."""
        isatty = getattr(self.stdout, "isatty", lambda: False)
        if isatty():
            self.poutput(renderable, soft_wrap=False)
            return
        import io

        from rich.console import Console

        width = max(80, Console(width=1000).measure(renderable).maximum)
        buf = io.StringIO()
        Console(file=buf, width=width, color_system=None, force_terminal=False).print(renderable)
        self.poutput(buf.getvalue().rstrip("\n"))

    def pinfo(self, text: str) -> None:
        """Status lines go to stderr so ``nnshell M -c "show --json"`` prints pure JSON."""
        import sys

        self.print_to(sys.stderr, text)

    # -- the error contract ----------------------------------------------------------------
    def pexcept(self, exception: BaseException, **kwargs: Any) -> None:
        """Print one ``error:`` line (plus a traceback when debugging) and remember it."""
        if isinstance(exception, NnshellError):
            msg = str(exception)
        else:
            cmd = self.current_line.strip() or "?"
            msg = (
                f"internal error while running '{cmd}': {type(exception).__name__}: {exception} "
                "(a bug in nnshell: please report it; --debug shows the traceback)"
            )
        self.last_error = msg
        if self.debug:
            tb = "".join(traceback.format_exception(exception))
            self.perror(tb.rstrip(), style=None)
        self.perror(f"{self.error_prefix}error: {msg}", style=None)

    def perror(self, *objects: Any, **kwargs: Any) -> None:
        """Route cmd2's own error messages (e.g. bad syntax) through the contract too."""
        text = " ".join(str(o) for o in objects)
        if "error:" not in text and not self.debug:
            self.last_error = text
            text = f"{self.error_prefix}error: {text}"
        kwargs.setdefault("style", None)
        super().perror(text, **kwargs)

    def onecmd_plus_hooks(
        self, line: str, *, raise_keyboard_interrupt: bool = False, **kwargs: Any
    ) -> bool:
        """Ctrl-C during a command: one note (cmd2 alone says nothing); the session is as before.

        Session methods assign their results only when complete, so an interrupted command
        leaves the graph and the quantization as they were. Scripts get the interrupt raised.
        """
        try:
            return super().onecmd_plus_hooks(line, raise_keyboard_interrupt=True, **kwargs)
        except KeyboardInterrupt:
            if raise_keyboard_interrupt:
                raise
            self.last_error = "interrupted"
            cmd2.Cmd.perror(self, "interrupted (Ctrl-C): the session is unchanged", style=None)
            return False

    def default(self, statement: cmd2.Statement) -> bool | None:
        """An unknown command is an error (scripts stop), with close matches suggested."""
        import difflib

        close = difflib.get_close_matches(statement.command, self.get_visible_commands(), n=3)
        hint = f"did you mean {', '.join(close)}?" if close else "type help for the commands"
        raise UsageError(f"unknown command '{statement.command}'", hint)

    # -- set ---------------------------------------------------------------------------------
    set_parser = NnArgumentParser(
        description="Show or change a setting (NNTool's names); no argument lists them all."
    )
    set_parser.add_argument("name", nargs="?", help="setting name")
    set_parser.add_argument("value", nargs="*", help="new value (several words are joined)")

    @cmd2.with_argparser(set_parser)
    def do_set(self, args: Any) -> None:
        """Show or change settings: nnshell's (input_norm_func, ...) and the shell's (debug)."""
        if args.name is None:
            values = dict(self.session.settings)
            helps = {n: s.help for n, s in settings_mod.SETTINGS.items()}
            for name, st in self.settables.items():
                values[name] = st.value
                helps[name] = st.description
            self.print_table(settings_table(values, helps))
            return
        text = " ".join(args.value)
        if args.name in self.settables:
            st = self.settables[args.name]
            if not args.value:
                self.poutput(f"{args.name} = {st.value!r}")
                return
            try:
                st.value = text
            except ValueError as exc:
                raise UsageError(f"set {args.name}: {exc}") from None
            self.poutput(f"{args.name} = {st.value!r}")
            return
        if not args.value:
            settings_mod.lookup(args.name)
            self.poutput(f"{args.name} = {self.session.settings[args.name]!r}")
            return
        value = self.session.set(args.name, text)
        self.poutput(f"{args.name} = {value!r}")


def make_app(**kwargs: Any) -> NnShell:
    """Build the shell (tests use this with their own stdout)."""
    return NnShell(**kwargs)


def run_command(app: NnShell, line: str) -> tuple[bool, bool]:
    """Run one command line; return (succeeded, the command asked to stop)."""
    app.last_error = None
    stop = app.onecmd_plus_hooks(line, raise_keyboard_interrupt=True)
    return app.last_error is None, bool(stop)
