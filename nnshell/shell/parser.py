"""The argument parser every nnshell command uses: a parse error is an ordinary nnshell error.

cmd2's parser prints usage and swallows the failure, so a script would carry on after a typo.
Raising UsageError instead lets scripts stop at the bad line like at any other error.
"""

from __future__ import annotations

from typing import NoReturn

import cmd2

from nnshell.errors import UsageError


class NnArgumentParser(cmd2.Cmd2ArgumentParser):
    """Cmd2ArgumentParser whose errors raise UsageError naming the command."""

    def format_help(self) -> str:
        """Fill a lazily computed epilog (``epilog_fn``) before formatting the help."""
        fn = getattr(self, "epilog_fn", None)
        if fn is not None:
            self.epilog = fn()
        return super().format_help()

    def error(self, message: str) -> NoReturn:
        """Raise instead of printing usage and exiting."""
        cmd = self.prog.split()[-1] if self.prog else "command"
        raise UsageError(f"{cmd}: {message}", f"help {cmd}")


cmd2.set_default_argument_parser(NnArgumentParser)
