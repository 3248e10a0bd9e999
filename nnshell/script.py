"""Parse ``.nnscript`` replay files and ``-c`` one-liners into numbered command lines.

One grammar for all three ways of using nnshell: a line is a shell command; ``#`` starts a
comment outside quotes; ``;`` outside quotes separates commands on one line; ``$(VAR)`` and
``${VAR}`` expand from ``-D`` definitions first, then the environment, and an undefined variable
is an error (an empty string would silently change a command's meaning).

Variables are data, never syntax. Scripts and ``-D`` values come from other people, and a value
pasted into the text before parsing could add a command (``;``), a comment (``#``), a pipe or a
redirection (``|``, ``>``), or extra arguments and options. So a command is first cut into the
tokens the shell will see (the rule cmd2 uses: ``shlex``, non-POSIX, quotes kept), then each token
holding a variable is expanded (inside quotes too, like NNTool) and written back as ONE argument,
quoted unless plain: a value with spaces stays one argument, and ``;``, ``#``, ``|``, ``>`` in it
are plain characters. A value is never expanded again. Tokens without variables
are left exactly as written, so globs keep working (``aquant $(IMAGES)/*``: nnshell expands the
glob itself, from the argument). Refused, with the file and line: a variable in the command name,
a value that turns an argument into an option (starts with ``-`` and is not a number), a value
with a control character, and one holding both kinds of quotes (cmd2 cannot quote it).
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass

from nnshell.errors import NnshellError

_VAR = re.compile(r"\$\((\w+)\)|\$\{(\w+)\}")
#: What argparse reads as a negative number rather than an option (its own rule).
_NEGATIVE_NUMBER = re.compile(r"-\d+|-\d*\.\d+")
_QUOTES = "\"'"
#: A value made only of these characters is one cmd2 token as it stands (no space, quote, ``;``,
#: ``#``, ``|``, ``>``), so it is written without quotes and lines read as the script author wrote.
_PLAIN = re.compile(r"[\w./:@%+=,*?~^\[\]-]+")


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


def tokens_of(text: str) -> list[str]:
    """Split a command like cmd2 does (shlex, non-POSIX, quotes kept); ValueError if unbalanced."""
    return shlex.split(text, comments=False, posix=False)


def strip_quotes(token: str) -> str:
    """The argument a token stands for: cmd2 removes one pair of matching outer quotes."""
    if len(token) > 1 and token[0] == token[-1] and token[0] in _QUOTES:
        return token[1:-1]
    return token


def quote_arg(value: str) -> str:
    """Write ``value`` as one cmd2 token that stands for exactly ``value``.

    A plain value (``_PLAIN``) needs no quotes. Otherwise it is quoted; cmd2 has no escape
    characters (a token quoted with ``"`` ends at the next ``"``), so the other quote is used when
    the value holds one, and a value holding both cannot be one token (ValueError).
    """
    if _PLAIN.fullmatch(value):
        return value
    if '"' not in value:
        return f'"{value}"'
    if "'" not in value:
        return f"'{value}'"
    raise ValueError("it holds both ' and \" quotes")


def expand_vars(
    text: str, defines: Mapping[str, str], origin: str, line: int, use_env: bool = True
) -> str:
    """Replace ``$(VAR)`` / ``${VAR}`` inside arguments, each result one quoted argument.

    ``text`` is one command (already split on ``;`` and cut at ``#``). An undefined variable, or
    a value that would change the command's syntax (see the module doc), raises ScriptError.
    """
    if not _VAR.search(text):
        return text

    def fail(message: str, hint: str | None = None) -> ScriptError:
        return ScriptError(origin, line, message, hint)

    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        if name in defines:
            value = defines[name]
        elif use_env and name in os.environ:
            value = os.environ[name]
        else:
            raise fail(f"undefined variable '{name}'", f"pass -D {name}=VALUE or export it")
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
            raise fail(
                f"the value of '{name}' contains a control character",
                "variables hold one line of text",
            )
        return value

    try:
        tokens = tokens_of(text)
    except ValueError as exc:
        raise fail(f"cannot split '{text}': {exc}", "close the quote") from None
    out: list[str] = []
    for pos, token in enumerate(tokens):
        if not _VAR.search(token):
            out.append(token)
            continue
        if pos == 0:
            raise fail(
                f"a variable cannot name the command ('{token}')",
                "write the command name in the script; variables are arguments",
            )
        written = strip_quotes(token)
        arg = _VAR.sub(repl, written)
        option = arg.startswith("-") and not written.startswith("-")
        if option and not _NEGATIVE_NUMBER.fullmatch(arg):
            raise fail(
                f"'{token}' expands to '{arg}', which would be read as an option",
                "options belong in the script; for a file name use ./NAME",
            )
        try:
            out.append(quote_arg(arg))
        except ValueError as exc:
            raise fail(f"'{token}' cannot be one argument: {exc}") from None
    return " ".join(out)


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
