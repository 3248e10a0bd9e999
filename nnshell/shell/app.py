"""NnShell: the cmd2 application that owns one Session.

Error contract (one place for every command): an NnshellError prints one line
``[FILE:LINE: ]error: <message> [hint: ...]``; any other exception is reported as an internal
error naming the command, and the session stays usable. Tracebacks only with ``--debug`` or
``set debug true``. ``last_error`` lets the script runner stop at the first failure.

Shell escapes (untrusted scripts must not run operating-system commands): scripts and models
come from other people, so nnshell runs its own commands only. cmd2's ``shell`` (``!``),
``alias`` and ``macro`` are refused by a post-parsing hook, and also disabled in cmd2 so no
direct call reaches them; ``run_script`` (``@``, ``@@``), ``run_pyscript``, ``edit``, ``py`` and
``ipy`` are not part of nnshell at all, and ``history -e`` (which runs the editor) never works.
Pipes and redirections are not parsed (NnStatementParser leaves ``|``, ``>``, ``>>`` as
characters) and an unquoted ``|`` or ``>`` in a line is refused, so the user learns it did not
redirect. In scripts and ``-c`` (``scripted``) all of this is final, ``history`` is refused too,
as is a ``;`` the script reader took for quoted (cmd2 would drop what follows it), and
``allow_shell`` cannot be set. Interactively, ``set allow_shell true`` brings back
``shell``/``!``, ``alias``, ``macro``, pipes and redirections for that session only: it is a cmd2
setting, not an nnshell setting, so no state file can carry it.
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
from nnshell.shell.commands.equalize_cmds import EqualizeCommands
from nnshell.shell.commands.gen_cmds import GenCommands
from nnshell.shell.commands.graph_cmds import GraphCommands
from nnshell.shell.commands.model_cmds import ModelCommands
from nnshell.shell.commands.nntool_cmds import NntoolCommands
from nnshell.shell.commands.quant_cmds import QuantCommands
from nnshell.shell.commands.run_cmds import RunCommands
from nnshell.shell.commands.state_cmds import StateCommands
from nnshell.shell.commands.transform_cmds import TransformCommands
from nnshell.shell.commands.tune_cmds import TuneCommands
from nnshell.shell.parser import NnArgumentParser, NnStatementParser

#: cmd2 commands that run operating-system commands or define new command lines; interactive
#: sessions get them back with ``set allow_shell true``.
SHELL_COMMANDS = ("shell", "alias", "macro")
#: cmd2 commands nnshell removes for good (they run files of commands, Python or an editor).
REMOVED_COMMANDS = frozenset(
    {"run_script", "_relative_run_script", "run_pyscript", "edit", "py", "ipy"}
)
#: cmd2 settings that mean nothing in nnshell (no editor is ever started, scripts are not
#: cmd2 scripts, tracebacks are nnshell's own, completion menus are small): not listed by ``set``.
CMD2_SETTABLES_REMOVED = (
    "editor",
    "scripts_add_to_history",
    "max_completion_table_items",
    "max_column_completion_results",
    "traceback_show_locals",
    "traceback_width",
)
#: Refused in scripts and ``-c`` only: ``history`` can re-run, write out or edit commands and
#: has no use in a replay.
SCRIPT_REFUSED = frozenset({"history"})


class ShellEscapeError(UsageError):
    """A shell escape (``shell``, ``!``, a pipe, ...) where nnshell does not allow one."""


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
        scripted: bool = False,
    ) -> None:
        """``scripted``: commands come from ``-s``/``-c`` (shell escapes can never be enabled)."""
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
                TuneCommands(),
                EqualizeCommands(),
                GraphCommands(),
            ],
            suggest_similar_command=True,
            auto_suggest=False,
        )
        for name in ("do_run_pyscript", "do_edit", "do_run_script", "do__relative_run_script"):
            setattr(self, name, None)
        old = self.statement_parser
        self.statement_parser = NnStatementParser(
            terminators=old.terminators,
            multiline_commands=old.multiline_commands,
            aliases=old.aliases,
            shortcuts=dict(old.shortcuts),
        )
        self.scripted = scripted
        self._allow_shell = False
        self.allow_redirection = False
        for name in SHELL_COMMANDS:
            self.disable_command(name, str(self._refusal(f"'{name}'")))
        for name in CMD2_SETTABLES_REMOVED:
            if name in self.settables:
                self.remove_settable(name)
        if not scripted:
            self.add_settable(
                cmd2.Settable(
                    "allow_shell",
                    bool,
                    "interactive only: allow shell/!, alias, macro, | and > (runs OS commands)",
                    self,
                )
            )
        self.session = session or Session()
        self.error_prefix = ""
        self.last_error: str | None = None
        self.current_line = ""
        self.default_category = "Shell"
        self.register_postparsing_hook(self._refuse_shell_escapes)
        self.register_precmd_hook(self._before_command)
        self.register_postcmd_hook(self._after_command)
        self.update_prompt()

    # -- prompt and hooks ------------------------------------------------------------------
    def update_prompt(self) -> None:
        """Show the open model's name in the prompt."""
        status = self.session.status()
        self.prompt = f"nnshell ({status}) > " if status else "nnshell > "

    # -- shell escapes ---------------------------------------------------------------------
    @property
    def allow_shell(self) -> bool:
        """Whether cmd2's shell escapes are on (interactive opt-in only)."""
        return self._allow_shell

    @allow_shell.setter
    def allow_shell(self, value: bool) -> None:
        if self.scripted:  # a second lock besides do_set: nothing in a script turns this on
            raise ShellEscapeError("'allow_shell' cannot be set in scripts or -c")
        self._allow_shell = bool(value)
        self.statement_parser.redirection = self._allow_shell
        self.allow_redirection = self._allow_shell
        for name in SHELL_COMMANDS:
            if self._allow_shell:
                self.enable_command(name)
            else:
                self.disable_command(name, str(self._refusal(f"'{name}'")))

    def _refusal(self, what: str) -> ShellEscapeError:
        """The one-line error for a shell escape ``what``, worded for scripts or the shell."""
        if self.scripted:
            return ShellEscapeError(
                f"{what} is not allowed in scripts: scripts and -c run nnshell commands only",
                "run operating-system commands outside nnshell",
            )
        return ShellEscapeError(
            f"{what} is off: it would run operating-system commands",
            "'set allow_shell true' turns on shell, !, alias, macro, | and > for this session",
        )

    def _refuse_shell_escapes(
        self, data: cmd2.plugin.PostparsingData
    ) -> cmd2.plugin.PostparsingData:
        """Stop a shell escape before cmd2 runs or redirects anything (see the module doc)."""
        st = data.statement
        raw = st.raw.lstrip()
        shortcut = next((s for s, _ in self.statement_parser.shortcuts if raw.startswith(s)), "")
        name = f"'{shortcut}' ({st.command})" if shortcut else f"'{st.command}'"
        if st.command in REMOVED_COMMANDS:
            if self.scripted:
                raise self._refusal(name)
            raise ShellEscapeError(
                f"{name} is not available in nnshell",
                "nnshell runs its own commands only (help lists them); scripts: nnshell -s FILE",
            )
        if self.scripted and st.command in SCRIPT_REFUSED:
            raise self._refusal(name)
        if self.scripted and st.suffix:
            # the script reader took this ';' as quoted (a quote inside a word): cmd2 would run
            # the first part and silently drop the rest
            raise ShellEscapeError(
                f"'; {st.suffix}' would be ignored: a quote inside a word hid the ';'",
                'put the whole argument in quotes, e.g. "it\'s.onnx"',
            )
        if not self.allow_shell:
            if st.command in SHELL_COMMANDS:
                raise self._refusal(name)
            for tok in (st.command, *st.arg_list):
                if not cmd2.string_utils.is_quoted(tok) and ("|" in tok or ">" in tok):
                    op = "'|' (a pipe)" if "|" in tok else "'>' (a redirection)"
                    err = self._refusal(op)
                    err.hint = f"{err.hint}; quote the argument to pass it as text"
                    raise err
        return data

    def run_editor(self, file_path: str | None = None) -> None:
        """Never start an editor: it is a shell command, and its file would run as a script."""
        raise ShellEscapeError(
            "editing commands (edit, history -e) is not available in nnshell",
            "leave nnshell to edit files",
        )

    def _before_command(self, data: cmd2.plugin.PrecommandData) -> cmd2.plugin.PrecommandData:
        self.current_line = data.statement.raw
        return data

    def _after_command(self, data: cmd2.plugin.PostcommandData) -> cmd2.plugin.PostcommandData:
        self.update_prompt()
        return data

    # -- output helpers --------------------------------------------------------------------
    def print_table(self, renderable: Any) -> None:
        """Print a rich renderable; off a terminal, at its natural width (never squashed)."""
        width = self.terminal_width()
        if width is not None:
            from rich.table import Table

            from nnshell.report.fit import fit_table

            parts = fit_table(renderable, width) if isinstance(renderable, Table) else [renderable]
            for part in parts:
                self.poutput(part, soft_wrap=False)
            return
        import io

        from rich.console import Console

        width = max(80, Console(width=1000).measure(renderable).maximum)
        buf = io.StringIO()
        Console(file=buf, width=width, color_system=None, force_terminal=False).print(renderable)
        self.poutput(buf.getvalue().rstrip("\n"))

    def terminal_width(self) -> int | None:
        """Columns of the terminal ``stdout`` is, or None off a terminal (files, pipes, tests)."""
        import os

        isatty = getattr(self.stdout, "isatty", lambda: False)
        if not isatty():
            return None
        try:
            return max(20, os.get_terminal_size(self.stdout.fileno()).columns)
        except (OSError, ValueError, AttributeError):
            return 80

    def poutput(self, *objects: Any, **kwargs: Any) -> None:
        """On a terminal, wrap text lines at word boundaries (the terminal would cut a number
        in two at its last column); JSON and other output stay unwrapped."""
        if (
            len(objects) == 1
            and isinstance(objects[0], str)
            and not objects[0].lstrip().startswith(("{", "["))
            and "soft_wrap" not in kwargs
            and self.terminal_width() is not None
        ):
            kwargs["soft_wrap"] = False
        super().poutput(*objects, **kwargs)

    def warn_input_drift(self, opts: Any) -> None:
        """One warning line (stderr) when a command runs the quantized graph on images
        prepared with other input options than the calibration's (see Session.input_drift)."""
        text = self.session.input_drift(opts)
        if text:
            self.pinfo(f"warning: {text}")

    def pinfo(self, text: str) -> None:
        """Status lines go to stderr so ``nnshell M -c "show --json"`` prints pure JSON."""
        import sys

        wrap = getattr(sys.stderr, "isatty", lambda: False)()
        self.print_to(sys.stderr, text, soft_wrap=not wrap)

    # -- the error contract ----------------------------------------------------------------
    def pexcept(self, exception: BaseException, **kwargs: Any) -> None:
        """Print one ``error:`` line (plus a traceback when debugging) and remember it."""
        if isinstance(exception, NnshellError):
            msg = str(exception)
        elif isinstance(exception, IndexError) and self.current_line.split()[:1] == ["history"]:
            # cmd2's own history -r/-o with a number past the end
            msg = "history: no such entry (history lists the numbers)"
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
        if text.startswith("Elapsed: "):  # ``set timing true``: a measurement, not an error
            kwargs.setdefault("style", None)
            super().perror(f"timing: {text[9:]}", **kwargs)
            return
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

    def help_tflite(self) -> None:
        """``help tflite``: the TFLite operators the importer maps (issue 19)."""
        from nnshell.importers.tflite_importer import help_text

        self.poutput(help_text())

    def default(self, statement: cmd2.Statement) -> bool | None:
        """An unknown command is an error (scripts stop), with close matches suggested."""
        import difflib

        close = difflib.get_close_matches(statement.command, self.get_visible_commands(), n=3)
        hint = f"did you mean {', '.join(close)}?" if close else "type help for the commands"
        raise UsageError(f"unknown command '{statement.command}'", hint)

    # -- leaving and replacing the session -------------------------------------------------
    def confirm_discard(self, what: str) -> bool:
        """Ask before ``what`` (quit, open) drops a quantization not saved; True = go on.

        Only a person at a terminal is asked: a script or piped input has no one to answer
        and decided its own order of commands.
        """
        reason = self.session.unsaved_work()
        isatty = getattr(self.stdin, "isatty", lambda: False)
        if reason is None or self.scripted or not isatty():
            return True
        try:
            answer = self.read_input(f"{reason}: {what} anyway? [y/N] ")
        except EOFError:
            answer = ""
        if answer.strip().lower() in ("y", "yes"):
            return True
        self.pinfo(f"{what} cancelled: save_state keeps the session ({what} -f skips the question)")
        return False

    quit_parser = NnArgumentParser(
        description="Leave nnshell. A quantization not saved with save_state is lost: at a "
        "terminal you are asked first."
    )
    quit_parser.add_argument("-f", "--force", action="store_true", help="quit without asking")

    @cmd2.with_argparser(quit_parser)
    def do_quit(self, args: Any) -> bool | None:
        """Leave nnshell (asks first if a quantization is not saved)."""
        if not args.force and not self.confirm_discard("quit"):
            return None
        self.last_result = True
        return True

    # -- set ---------------------------------------------------------------------------------
    def _setting_names(self) -> cmd2.Choices:
        """Tab completion for ``set``: nnshell's settings and the shell's own."""
        return cmd2.Choices.from_values(sorted({*settings_mod.SETTINGS, *self.settables}))

    set_parser = NnArgumentParser(
        description="Show or change a setting (NNTool's names); no argument lists them all."
    )
    set_parser.add_argument(
        "name", nargs="?", choices_provider=_setting_names, help="setting name (Tab completes)"
    )
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
        if args.name == "allow_shell" and self.scripted:
            raise ShellEscapeError(
                "'allow_shell' cannot be set in scripts or -c",
                "shell escapes are only for an interactive session",
            )
        if args.name in self.settables:
            self._set_shell_setting(args.name, text if args.value else None)
            return
        if not args.value:
            settings_mod.lookup(args.name)
            self.poutput(f"{args.name} = {self.session.settings[args.name]!r}")
            return
        value = self.session.set(args.name, text)
        self.poutput(f"{args.name} = {value!r}")

    def _set_shell_setting(self, name: str, text: str | None) -> None:
        """Show (``text`` None) or change one of the shell's own (cmd2) settings."""
        st = self.settables[name]
        if text is not None:
            try:
                st.value = text
            except ValueError as exc:
                raise UsageError(f"set {name}: {exc}") from None
        self.poutput(f"{name} = {st.value!r}")


def make_app(**kwargs: Any) -> NnShell:
    """Build the shell (tests use this with their own stdout; ``scripted=True`` for -s/-c)."""
    return NnShell(**kwargs)


def run_command(app: NnShell, line: str) -> tuple[bool, bool]:
    """Run one command line; return (succeeded, the command asked to stop)."""
    app.last_error = None
    stop = app.onecmd_plus_hooks(line, raise_keyboard_interrupt=True)
    return app.last_error is None, bool(stop)
