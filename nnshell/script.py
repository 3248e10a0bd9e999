"""Parse ``.nnscript`` replay files and ``-c`` one-liners into numbered command lines.

One grammar for all three ways of using nnshell: a line is a shell command; ``#`` starts a
comment outside quotes; ``;`` outside quotes separates commands on one line; ``$(VAR)`` and
``${VAR}`` expand from ``-D`` definitions first, then the environment, and an undefined variable
is an error (an empty string would silently change a command's meaning).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from nnshell.errors import NnshellError

_VAR = re.compile(r"\$\((\w+)\)|\$\{(\w+)\}")


class ScriptError(NnshellError):
    """A script that cannot be read or expanded; carries the file and line."""

    def __init__(self, origin: str, line: int, message: str, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.origin = origin
        self.line = line


@dataclass(frozen=True)
class ScriptLine:
    """One command to run, with where it came from (for ``FILE:LINE:`` messages)."""

    origin: str
    line: int
    text: str


def split_commands(text: str) -> list[str]:
    """Split on ``;`` and cut at ``#``, both only outside single or double quotes."""
    parts: list[str] = []
    cur: list[str] = []
    quote: str | None = None
    for ch in text:
        if quote:
            cur.append(ch)
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
            cur.append(ch)
        elif ch == "#":
            break
        elif ch == ";":
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


def expand_vars(
    text: str, defines: Mapping[str, str], origin: str, line: int, use_env: bool = True
) -> str:
    """Replace ``$(VAR)`` / ``${VAR}``; an undefined variable raises ScriptError."""

    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        if name in defines:
            return defines[name]
        if use_env and name in os.environ:
            return os.environ[name]
        raise ScriptError(
            origin, line, f"undefined variable '{name}'", f"pass -D {name}=VALUE or export it"
        )

    return _VAR.sub(repl, text)


def parse_defines(items: list[str]) -> dict[str, str]:
    """Turn ``-D VAR=VALUE`` options into a dict."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not re.fullmatch(r"\w+", name):
            raise NnshellError(f"-D '{item}' is not of the form VAR=VALUE")
        out[name] = value
    return out


def script_lines(path: str, defines: Mapping[str, str]) -> list[ScriptLine]:
    """Read a script file into expanded command lines (all errors found before anything runs)."""
    from nnshell import safeio

    try:  # bounded, regular files only: `-s FIFO` or `-s /dev/zero` is one line, not a hang
        raw = safeio.read_text(path, "script", safeio.SCRIPT, NnshellError).splitlines()
    except NnshellError as exc:
        raise ScriptError(path, 0, exc.message, exc.hint) from None
    out = []
    for lineno, text in enumerate(raw, start=1):
        for cmd in split_commands(text):
            out.append(ScriptLine(path, lineno, expand_vars(cmd, defines, path, lineno)))
    return out


def command_lines(commands: list[str], defines: Mapping[str, str]) -> list[ScriptLine]:
    """Turn ``-c`` options into command lines; origin ``-c``, line = option number."""
    out = []
    for k, text in enumerate(commands, start=1):
        for cmd in split_commands(text):
            out.append(ScriptLine("-c", k, expand_vars(cmd, defines, "-c", k)))
    return out
