"""The argument parser every nnshell command uses, and the statement parser of the shell.

``NnArgumentParser``: cmd2's parser prints usage and swallows the failure, so a script would
carry on after a typo. Raising UsageError instead lets scripts stop at the bad line like at any
other error.

``NnStatementParser``: cmd2 treats ``|``, ``>`` and ``>>`` in a command line as a pipe to an
operating-system command or a redirection to a file, even in text that came from a ``-D`` value.
nnshell turns that off: unless the interactive user opted in (``set allow_shell true``) they are
ordinary characters, so the parser never produces a redirection. The shell then refuses an
unquoted ``|`` or ``>`` with a message (see ``NnShell``) rather than handing it to a command.
"""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

import cmd2
from cmd2.parsing import Statement, StatementParser

from nnshell.errors import UsageError


class NnArgumentParser(cmd2.Cmd2ArgumentParser):
    """Cmd2ArgumentParser whose errors raise UsageError naming the command."""

    def format_help(self) -> str:
        """Fill a lazily computed epilog (``epilog_fn``) before formatting the help."""
        fn = getattr(self, "epilog_fn", None)
        if fn is not None:
            self.epilog = fn()
        return super().format_help()

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        """Refuse an option given twice: argparse keeps the last one silently, so
        ``gen -M out --verify img.png -M RGB`` would write into ``./RGB``."""
        self._refuse_repeats(list(args) if args is not None else [])
        return super().parse_known_args(args, namespace)

    def _refuse_repeats(self, args: list[str]) -> None:
        seen: dict[int, str] = {}
        for tok in args:
            if tok == "--":
                break
            if not tok.startswith("-") or tok == "-" or tok[1:2].isdigit():
                continue
            name = tok.split("=", 1)[0]
            action = self._option_string_actions.get(name)
            if action is None and name.startswith("--"):  # an abbreviation of a long option
                hits = {a for opt, a in self._option_string_actions.items() if opt.startswith(name)}
                action = next(iter(hits)) if len(hits) == 1 else None
            if action is None or isinstance(
                action, argparse._AppendAction | argparse._CountAction | argparse._HelpAction
            ):
                continue
            if id(action) in seen:
                cmd = self.prog.split()[-1] if self.prog else "command"
                both = "/".join(action.option_strings)
                raise UsageError(
                    f"{cmd}: {both} given twice ({seen[id(action)]} and {tok}): which one?",
                    f"give {both} once (help {cmd})",
                )
            seen[id(action)] = tok

    def error(self, message: str) -> NoReturn:
        """Raise instead of printing usage and exiting."""
        cmd = self.prog.split()[-1] if self.prog else "command"
        raise UsageError(f"{cmd}: {message}", f"help {cmd}")


cmd2.set_default_argument_parser(NnArgumentParser)


class NnStatementParser(StatementParser):
    """cmd2's statement parser with pipes and redirections off unless ``redirection`` is set.

    With ``redirection`` False (the default, and always in scripts and ``-c``) a line is
    tokenised exactly as cmd2 does (shlex, non-POSIX, quotes kept; terminators split off) but
    ``|``, ``>`` and ``>>`` are neither word breaks nor operators: they stay inside the
    arguments, so ``Statement.redirector`` is always empty and nothing reaches a subprocess.
    """

    def __init__(self, *args: object, redirection: bool = False, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.redirection = redirection

    def split_on_punctuation(self, tokens: list[str]) -> list[str]:
        """Split runs of terminators (and, only with redirection on, of ``|`` / ``>``)."""
        if self.redirection:
            return super().split_on_punctuation(tokens)
        out: list[str] = []
        for tok in tokens:
            if len(tok) <= 1 or tok[0] in "\"'":
                out.append(tok)
                continue
            # cmd2's rule with fewer punctuation characters: a token breaks where a run of one
            # terminator character starts or ends
            start = 0
            for i in range(1, len(tok)):
                if self._punct(tok[i]) != self._punct(tok[i - 1]):
                    out.append(tok[start:i])
                    start = i
            out.append(tok[start:])
        return out

    def _punct(self, ch: str) -> str | None:
        """The terminator ``ch`` is, or None for a word character."""
        return ch if ch in self.terminators else None

    def parse(self, line: str) -> Statement:
        """Parse like cmd2 but, with redirection off, never take ``|``/``>``/``>>`` as operators."""
        if self.redirection:
            return super().parse(line)
        terminator = "\n" if line.endswith("\n") else ""
        tokens = self.tokenize(line)
        suffix = ""
        for pos, tok in enumerate(tokens):
            term = next((t for t in self.terminators if tok.startswith(t)), None)
            if term is not None:
                terminator = term
                command, args = self._command_and_args(tokens[:pos])
                suffix = " ".join(tokens[pos + 1 :])
                break
        else:
            command, args = self._command_and_args(tokens)
        return Statement(
            args,
            raw=line,
            command=command,
            multiline_command=command in self.multiline_commands,
            terminator=terminator,
            suffix=suffix,
        )
