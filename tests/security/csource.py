"""Helpers of the code-generation security tests: a C lexer that checks every comment and
string is closed where it should be, compiler drivers (strict warnings, sanitizers) and a stub
AutoTiler API so the AutoTiler model file can be compiled on the host (syntax and names only).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

STRICT = ("-std=c99", "-Wall", "-Wextra", "-Werror")
SANITIZE = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g", "-O1")
#: Words an injection payload uses: none of them may appear in generated code (outside
#: comments and string literals).
PAYLOAD_WORDS = ("system", "extern", "touch", "pwned", "include", "popen", "execl", "unlink")

_TRIGRAPH = re.compile(r"\?\?[=(/)'<!>-]")


def has_gcc() -> bool:
    """Whether the host has gcc (the C tests skip without it)."""
    return shutil.which("gcc") is not None


def scan_c(text: str) -> tuple[str, list[str], list[str]]:
    """Split C source into (code, comments, string literals), checking the lexical structure.

    Raises AssertionError on a trigraph anywhere, an unterminated comment or string, ``/*``
    inside a block comment, a backslash-newline inside a ``//`` comment, a newline inside a
    string, or a ``#include`` of anything but the expected headers (checked by the caller).
    Comments become one space (plus their newlines, so lines stay aligned) and strings ``""``
    in the returned code.
    """
    assert not _TRIGRAPH.search(text), f"trigraph in generated C: {_TRIGRAPH.search(text)}"
    code: list[str] = []
    comments: list[str] = []
    strings: list[str] = []
    i, n = 0, len(text)
    while i < n:
        two = text[i : i + 2]
        c = text[i]
        if two == "/*":
            end = text.find("*/", i + 2)
            assert end >= 0, f"unterminated comment at {i}: {text[i : i + 80]!r}"
            body = text[i + 2 : end]
            assert "/*" not in body, f"'/*' inside a comment: {body[:120]!r}"
            comments.append(body)
            code.append(" " + "\n" * body.count("\n"))  # keep the line numbers
            i = end + 2
        elif two == "//":
            end = text.find("\n", i)
            end = n if end < 0 else end
            body = text[i + 2 : end]
            assert not body.endswith("\\"), f"'//' comment continued by a backslash: {body!r}"
            comments.append(body)
            code.append(" ")
            i = end
        elif c in "\"'":
            j = i + 1
            while True:
                assert j < n and text[j] != "\n", f"unterminated literal at {i}: {text[i:j]!r}"
                if text[j] == "\\":
                    j += 2
                    continue
                if text[j] == c:
                    break
                j += 1
            if c == '"':
                strings.append(text[i + 1 : j])
            code.append('""' if c == '"' else "' '")
            i = j + 1
        else:
            code.append(c)
            i += 1
    return "".join(code), comments, strings


def check_generated(text: str, allowed_includes: set[str]) -> str:
    """Lex ``text`` (:func:`scan_c`), check includes and that no payload word is code; return
    the code without comments and strings."""
    code, _, _ = scan_c(text)
    lines = text.split("\n")
    for k, line in enumerate(code.split("\n")):
        if re.match(r"\s*#\s*include\b", line):  # a real directive, not text in a comment
            m = re.match(r'\s*#\s*include\s*(<[^>]*>|"[^"]*")\s*$', lines[k])
            assert m and m.group(1) in allowed_includes, f"unexpected include {lines[k]!r}"
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", code))
    bad = [w for w in PAYLOAD_WORDS if w in words and w != "include"]
    assert not bad, f"payload words in generated code: {bad}"
    return code


def c_string_value(literal_body: str) -> bytes:
    """The bytes of a C string literal body written by ``csafe.c_string`` (its escapes only)."""
    out = bytearray()
    i = 0
    simple = {"n": 10, "t": 9, "r": 13, "\\": 92, '"': 34, "?": 63}
    while i < len(literal_body):
        ch = literal_body[i]
        if ch != "\\":
            out += ch.encode("ascii")
            i += 1
            continue
        nxt = literal_body[i + 1]
        if nxt in simple:
            out.append(simple[nxt])
            i += 2
        else:
            out.append(int(literal_body[i + 1 : i + 4], 8))
            i += 4
    return bytes(out)


def compile_c(
    folder: Path, sources: list[str], flags: tuple[str, ...] = STRICT, out: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Compile ``sources`` in ``folder`` (``-c`` without ``out``); never through a shell."""
    cmd = ["gcc", *flags, *(["-o", out] if out else ["-c"]), *sources]
    return subprocess.run(cmd, cwd=folder, capture_output=True, text=True, check=False)


#: The AutoTiler API the generated model calls, as stubs: enough for gcc to check the model's
#: syntax, its identifiers and its call shapes without the GAP SDK. Constants are enumerators;
#: anything the model uses that is not declared here is a compile error under -Werror.
_STUB_FUNC_WORDS = (
    "SetSymbolDynamics SetUsedFilesNames SetGeneratedFilesNames AT_SetGraphCtrl "
    "SetMemoryDeviceInfos LoadCNN_SQ8_Library LoadCNNLibrary CreateGraph CArgs TCArgInfo "
    "ConstInfo AddNode Bindings GNodeArg CloseGraph TilerParseOptions GenerateTilingCode "
    "CNN_InitGenCtrl CNN_SetGenCtrl CNN_Norm CNN_ConvolutionPoolAct_SQ8 "
    "CNN_GroupedConvolutionPoolAct_SQ8 CNN_LinearAct_SQ8 CNN_PoolAct_SQ8 CNN_GlobalPoolAct_SQ8 "
    "CNN_MatAddAct_SQ8 CNN_SoftMax_SQ8 CNN_ConvolutionPoolReLU CNN_GroupedConvolutionPoolReLU "
    "CNN_LinearReLU CNN_PoolReLU CNN_GlobalPool CNN_MatAdd CNN_MatAddDynAdjust CNN_SoftMax"
)
AUTOTILER_STUB_FUNCS = tuple(_STUB_FUNC_WORDS.split())
_CONST_PREFIX = re.compile(r"\b((?:KOP|AT_MEM|AT_OPT|AT_GRAPH|AT_PAD|ARG|GNA)_[A-Z0-9_]+)\b")


def autotiler_stub(model_text: str, memories: tuple[str, ...]) -> str:
    """A header declaring the AutoTiler API for :data:`AUTOTILER_STUB_FUNCS`.

    The memory names are the fixed list (never taken from the model); the other constants are
    the ``KOP_*``/``AT_OPT_*``/... words of the model (code only, not comments or strings).
    """
    code, _, _ = scan_c(model_text)
    consts = sorted({m for m in _CONST_PREFIX.findall(code) if not m.startswith("AT_MEM_")})
    consts = [c for c in consts if c != "AT_OPT_VAL"]
    lines = [
        "#ifndef AT_STUB_H",
        "#define AT_STUB_H",
        "typedef int KernelOper_T;",
        "typedef struct { int unused; } CNN_GenControl_T;",
        f"enum at_mem {{ {', '.join(memories)} }};",
    ]
    if consts:
        lines.append(f"enum at_consts {{ {', '.join(consts)} }};")
    lines.append("#define AT_OPT_VAL(x) (x)")
    lines += [f"int {f}();" for f in AUTOTILER_STUB_FUNCS]
    lines.append("#endif")
    return "\n".join(lines) + "\n"


def compile_autotiler_model(folder: Path, model: Path, memories: tuple[str, ...]) -> None:
    """Syntax-check the AutoTiler model file against :func:`autotiler_stub` (asserts)."""
    text = model.read_text()
    stub = autotiler_stub(text, memories)
    for h in (
        "AutoTilerLib.h",
        "CNN_Generators_SQ8.h",
        "CNN_Generators.h",
        "CNN_Copy_Generators.h",
    ):
        (folder / h).write_text(stub)
    proc = compile_c(
        folder,
        [model.name],
        ("-std=c99", "-Wall", "-Werror", "-Wno-unused-variable", "-fsyntax-only"),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
