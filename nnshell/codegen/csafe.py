"""Text from models and states made safe to write into generated C (both targets).

Why this exists: tensor, node and graph names come from ONNX files and state files that other
people wrote, and so do the settings a state carries. Written into generated C unescaped, a
tensor named ``x */ system("...") /*`` closes the comment it was meant to sit in and becomes
code that ``gen --verify`` compiles and runs. Every name, string or number that reaches a
generated file goes through one of these functions instead:

* :func:`c_comment` for text inside ``/* ... */`` or after ``//``: the result cannot end the
  comment, open a nested one, continue a ``//`` comment onto the next line or form a trigraph;
* :func:`c_string` for a C string literal (file names, AutoTiler node and argument names);
* :func:`c_ident` for an identifier (function, macro, array, header guard): checked, not
  repaired, so two different names never silently become one;
* :func:`c_int`, :func:`c_float` and :func:`c_token` for numbers and the symbolic constants of a
  call (``KOP_CONV``, ``AT_MEM_L2``): anything else is refused;
* :func:`plain_file_name` for a file name gen derives from a name or a setting: never a folder,
  never a path that leaves the output folder, never an option to the compiler.

Plain names (``/conv1/Conv_output_0``, ``input.1``) come out unchanged, so generated files stay
byte-identical for ordinary models. Everything refused is a :class:`CodegenError` whose one line
names the offending text (escaped) and what would fix it.
"""

from __future__ import annotations

import hashlib
import math
import re
from numbers import Integral, Real
from typing import Any

from nnshell.errors import CodegenError

_KEYWORD_WORDS = """
    auto break case char const continue default do double else enum extern float for goto if
    inline int long register restrict return short signed sizeof static struct switch typedef
    union unsigned void volatile while _Alignas _Alignof _Atomic _Bool _Complex _Generic
    _Imaginary _Noreturn _Static_assert _Thread_local alignas alignof bool constexpr false
    nullptr static_assert thread_local true typeof typeof_unqual _BitInt _Decimal32 _Decimal64
    _Decimal128
    """
#: C99, C11 and C23 keywords: never an identifier of generated code.
C_KEYWORDS = frozenset(_KEYWORD_WORDS.split())
#: Longest identifier gen writes (C99 guarantees 63 significant characters; names are kept
#: well inside a file name's 255 bytes since they also name files).
MAX_IDENT = 200
#: Longest name text kept in a comment; longer text is cut (with ``...``) so a megabyte-long
#: tensor name cannot blow up every comment that mentions it.
MAX_COMMENT_TEXT = 512
#: Longest plain file name gen writes (POSIX file systems allow 255 bytes).
MAX_FILE_NAME = 200

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_INT_LITERAL = re.compile(r"-?[0-9]+\Z")
_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*\Z")


def shown(text: Any, limit: int = 60) -> str:
    """``text`` for an error message: escaped like a Python literal, cut after ``limit``."""
    s = str(text)
    cut = s[:limit] + ("..." if len(s) > limit else "")
    return repr(cut)


def c_comment(text: Any) -> str:
    """``text`` made safe inside ``/* ... */`` and after ``//`` (ASCII, one line, inert).

    Printable ASCII is kept except where it would act: ``*/`` and ``/*`` get a space between
    the two characters (so the comment neither ends nor nests, which ``-Wcomment`` rejects) and
    so does ``??`` (a trigraph such as ``??/`` is a backslash under ``-std=c99``, and a
    backslash at the end of a ``//`` comment continues it onto the next line). A backslash,
    newline, carriage return, tab, other control characters and every non-ASCII character are
    written as escapes (``\\x5c``, ``\\n``, ``\\u00e9``): a backslash always followed by a letter
    can never splice lines. Text longer than :data:`MAX_COMMENT_TEXT` characters is cut.
    """
    s = str(text)
    if len(s) > MAX_COMMENT_TEXT:
        s = s[:MAX_COMMENT_TEXT] + "..."
    out: list[str] = []
    last = ""
    for ch in s:
        o = ord(ch)
        if ch == "\\":
            piece = "\\x5c"
        elif ch == "\n":
            piece = "\\n"
        elif ch == "\r":
            piece = "\\r"
        elif ch == "\t":
            piece = "\\t"
        elif o < 0x20 or o == 0x7F:
            piece = f"\\x{o:02x}"
        elif o > 0x7F:
            piece = f"\\u{o:04x}" if o <= 0xFFFF else f"\\U{o:08x}"
        else:
            piece = ch
        if (last, piece[0]) in (("*", "/"), ("/", "*"), ("?", "?")):
            out.append(" ")
        out.append(piece)
        last = piece[-1]
    return "".join(out)


def c_string(text: Any) -> str:
    """A C string literal (with its quotes) holding the UTF-8 bytes of ``text``.

    Backslash and double quote are escaped, newline, tab and carriage return use their letter
    escapes, every other byte outside printable ASCII is a three-digit octal escape (three
    digits, so a following digit can never extend it, unlike ``\\x``), and the second ``?`` of
    ``??`` is ``\\?`` so no trigraph forms.
    """
    data = str(text).encode("utf-8", "surrogatepass")
    out: list[str] = ['"']
    prev = 0
    for b in data:
        if b == 0x5C:
            out.append("\\\\")
        elif b == 0x22:
            out.append('\\"')
        elif b == 0x0A:
            out.append("\\n")
        elif b == 0x09:
            out.append("\\t")
        elif b == 0x0D:
            out.append("\\r")
        elif b == 0x3F and prev == 0x3F:
            out.append("\\?")
        elif 0x20 <= b < 0x7F:
            out.append(chr(b))
        else:
            out.append(f"\\{b:03o}")
        prev = b
    out.append('"')
    return "".join(out)


def is_c_ident(name: Any) -> bool:
    """Whether ``name`` is an identifier gen may write: the C grammar, at most
    :data:`MAX_IDENT` characters, no keyword, not reserved (``__x``, ``_X``)."""
    return (
        isinstance(name, str)
        and len(name) <= MAX_IDENT
        and _IDENT.match(name) is not None
        and name not in C_KEYWORDS
        and not name.startswith("__")
        and not (len(name) > 1 and name[0] == "_" and name[1].isupper())
    )


def c_ident(name: Any, what: str = "C name") -> str:
    """``name`` itself when :func:`is_c_ident` accepts it; a :class:`CodegenError` otherwise.

    Checked, not repaired: the callers build identifiers from names that are already C-safe,
    so a failure means a name came from somewhere it should not (a hand-edited state).
    """
    if not is_c_ident(name):
        raise CodegenError(
            f"{what} {shown(name)} is not a usable C identifier (letters, digits and _, not "
            f"starting with a digit, at most {MAX_IDENT} characters, no C keyword, not "
            "starting with __ or _ and a capital)",
            "set graph_name NAME, or open the ONNX model again",
        )
    return name


def c_int(value: Any, what: str = "value", lo: int | None = None, hi: int | None = None) -> str:
    """The decimal text of an integer (``bool`` and numpy integers included), range-checked."""
    if not isinstance(value, Integral):
        raise CodegenError(f"{what} {shown(value)} is not an integer (corrupt or edited state?)")
    v = int(value)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise CodegenError(f"{what} {v} is outside {lo}..{hi}")
    return str(v)


def c_float(value: Any, what: str = "value") -> str:
    """A finite real as C source: Python's shortest round-trip ``repr`` (deterministic).

    ``inf`` and ``nan`` would be identifiers in C, so they are refused.
    """
    if isinstance(value, Real) or (hasattr(value, "dtype") and getattr(value, "size", 0) == 1):
        f = float(value)
        if math.isfinite(f):
            return repr(f)
    raise CodegenError(f"{what} {shown(value)} is not a finite number (corrupt or edited state?)")


def c_token(value: Any, what: str = "argument") -> str:
    """One argument of a generated call: an integer, or a symbolic constant (identifier).

    This is what a generator or kernel argument list may contain, so a string from a model or a
    state that is neither cannot become code.
    """
    if isinstance(value, Integral):
        return str(int(value))
    if isinstance(value, str) and (_INT_LITERAL.match(value) or is_c_ident(value)):
        return value
    raise CodegenError(
        f"{what} {shown(value)} is not an integer or a C constant name (corrupt or edited state?)"
    )


#: Longest model name gen derives from a graph name (it prefixes every generated identifier).
MAX_MODEL_NAME = 64


def short_name(name: str, limit: int = MAX_MODEL_NAME, source: str | None = None) -> str:
    """``name`` (already C-safe) cut to ``limit`` characters, tagged with 8 hex digits of the
    SHA-256 of ``source`` (default ``name``) when cut, so long names stay distinct and every
    identifier built from them stays within :data:`MAX_IDENT`. Short names are unchanged."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha256((source or name).encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{name[: limit - 9]}_{digest}"


def plain_file_name(name: Any, what: str = "file name") -> str:
    """``name`` when it is a plain file name gen may create inside its output folder.

    Plain means: letters, digits and ``_ . + -``, not starting with ``.`` or ``-`` (no hidden
    file, no ``..``, nothing a compiler reads as an option), no folder part, at most
    :data:`MAX_FILE_NAME` characters. Everything else is a :class:`CodegenError`.
    """
    if not isinstance(name, str) or len(name) > MAX_FILE_NAME or not _FILE_NAME.match(name):
        raise CodegenError(
            f"{what} {shown(name)} is not a plain file name (letters, digits, _ . + -, not "
            f"starting with . or -, no folder, at most {MAX_FILE_NAME} characters)",
            "give the folder with -M and a plain file name",
        )
    return name


__all__ = [
    "C_KEYWORDS",
    "MAX_COMMENT_TEXT",
    "MAX_FILE_NAME",
    "MAX_IDENT",
    "MAX_MODEL_NAME",
    "c_comment",
    "c_float",
    "c_ident",
    "c_int",
    "c_string",
    "c_token",
    "is_c_ident",
    "plain_file_name",
    "short_name",
    "shown",
]
