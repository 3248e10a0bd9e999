"""``nnshell.codegen.csafe``: hostile text in comments, strings and identifiers of generated C.

Property tests (hypothesis) on the escaping functions, then one C file holding a few hundred
hostile names in block comments, line comments and string literals, compiled with ``-Werror``
and AddressSanitizer/UBSan and run: every comment stays a comment (the lexer of
``tests.security.csource`` and gcc agree) and every string literal holds exactly the UTF-8 bytes
of its name.
"""

from __future__ import annotations

import random
import re
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnshell.codegen.csafe import (
    C_KEYWORDS,
    MAX_COMMENT_TEXT,
    c_comment,
    c_float,
    c_ident,
    c_int,
    c_string,
    c_token,
    is_c_ident,
    plain_file_name,
)
from nnshell.errors import CodegenError
from tests.security.csource import (
    SANITIZE,
    STRICT,
    c_string_value,
    compile_c,
    has_gcc,
    scan_c,
)

#: Names an attacker would try: comment and string breakers, preprocessor lines, trigraphs,
#: line splices, NUL, control characters, non-ASCII, right-to-left override, very long.
HOSTILE = [
    'r */ { extern int system(const char *); system("touch /tmp/pwned"); } /* ',
    "*/",
    "/*",
    "*/*/",
    "/*/",
    "//",
    "a\n#include </etc/passwd>\n",
    '"); system("id"); //',
    "\\",
    "x\\",
    "??/",
    "??=define X 1",
    "?" * 9 + "/",
    "\x00",
    "a\x00b",
    "\r\n\t\x0b\x0c\x1b[31m\x7f",
    "é模型🙂",
    "\u202e\u200b\ufeff",
    "\ud800",
    "'",
    "\\x41\\101",
    "x" * 5000,
    "*" * 40 + "/" * 40,
]

_HOSTILE_ALPHABET = st.sampled_from(
    list("*/\\\"'?#\n\r\t\x00 aZ9_.-()") + ["é", "模", "🙂", "\u202e", "\ud800", "??/"]
)
hostile_text = st.one_of(
    st.lists(_HOSTILE_ALPHABET, max_size=40).map("".join), st.text(max_size=40)
)


@given(hostile_text)
@settings(max_examples=300, deadline=None)
def test_c_comment_is_inert(text: str) -> None:
    out = c_comment(text)
    assert out.isascii()
    assert all(0x20 <= ord(c) < 0x7F for c in out)
    for bad in ("*/", "/*", "??"):
        assert bad not in out
    assert not out.endswith("\\")
    # every backslash starts an escape (a letter follows), so none can splice lines
    assert all(out[i + 1] in "xnrtuU" for i, c in enumerate(out) if c == "\\")
    # in a comment: the lexer sees exactly one comment, whatever surrounds it
    for wrapped in (f"/* {out} */", f"/*{out}*/", f"// {out}\n", f"//{out}\n"):
        code, comments, _ = scan_c(wrapped)
        assert len(comments) == 1 and code.strip() == ""


@given(hostile_text)
@settings(max_examples=300, deadline=None)
def test_c_string_round_trips(text: str) -> None:
    lit = c_string(text)
    assert lit.startswith('"') and lit.endswith('"') and lit.isascii()
    assert "??" not in lit and "\n" not in lit
    code, _, strings = scan_c(lit)
    assert code == '""' and len(strings) == 1
    assert c_string_value(strings[0]) == text.encode("utf-8", "surrogatepass")


def test_plain_names_are_unchanged() -> None:
    """Byte-identical generated files for ordinary models."""
    for name in ("/conv1/Conv_output_0", "input.1", "_conv1_Conv", "onnx::Gemm_17", "a b-c"):
        assert c_comment(name) == name
        assert c_string(name) == f'"{name}"'
    assert c_string("tensors/Constant_x.tensor") == '"tensors/Constant_x.tensor"'
    assert c_float(0.0078125) == "0.0078125"


def test_long_comment_text_is_cut() -> None:
    out = c_comment("y" * (MAX_COMMENT_TEXT * 3))
    assert len(out) == MAX_COMMENT_TEXT + 3 and out.endswith("...")


@pytest.mark.parametrize(
    "name", ["x", "S1_Conv2d_6x3x5x5", "_conv", "m_int", "cifar_netModel", "a" * 200]
)
def test_c_ident_accepts(name: str) -> None:
    assert c_ident(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "1x",
        "a-b",
        "a b",
        "a*/",
        "int",
        "while",
        "_Bool",
        "__x",
        "_X",
        "a" * 201,
        "é",
        "a\n",
        None,
        3,
    ],
)
def test_c_ident_refuses_in_one_line(name: object) -> None:
    with pytest.raises(CodegenError) as info:
        c_ident(name, "test name")
    assert "\n" not in str(info.value) and "test name" in str(info.value)


def test_keywords_are_never_identifiers() -> None:
    assert not any(is_c_ident(k) for k in C_KEYWORDS)


def test_numbers_and_tokens() -> None:
    import numpy as np

    assert c_int(np.int8(-5)) == "-5" and c_token(np.int64(7)) == "7"
    assert c_token("KOP_CONV") == "KOP_CONV" and c_token("-12") == "-12"
    for bad in ('1); system("id"); (1', "1.5", "a b", "", "0x10", 1.0, None):
        with pytest.raises(CodegenError):
            c_token(bad)
    for bad in (float("inf"), float("nan"), "1.0", None):
        with pytest.raises(CodegenError):
            c_float(bad)
    with pytest.raises(CodegenError):
        c_int(5, "x", 0, 4)


@pytest.mark.parametrize(
    "name", ["../x.c", "/tmp/x.c", "a/b.c", ".hidden", "-o", "..", ".", "a b.c", "x\0.c", ""]
)
def test_plain_file_name_refuses(name: str) -> None:
    with pytest.raises(CodegenError):
        plain_file_name(name)


def test_plain_file_name_accepts() -> None:
    for name in ("cifar_netModel.c", "model.h", "lenet-v2.c", "a+b.h"):
        assert plain_file_name(name) == name


@pytest.mark.skipif(not has_gcc(), reason="needs gcc")
def test_hostile_names_compile_and_round_trip_under_sanitizers(tmp_path: Path) -> None:
    """A few hundred hostile names (fixed ones and seeded random ones) in comments and string
    literals of one C file: it compiles with -Werror and ASan/UBSan, and prints each string's
    bytes exactly."""
    rng = random.Random(20240611)
    alphabet = list("*/\\\"'?#\n\r\t\x00 az_.-(){};") + ["é", "🙂", "\u202e", "??/", "*/", "/*"]
    names = list(HOSTILE)
    names += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 30))) for _ in range(300)]
    lines = ["#include <stdio.h>", "", "static const char *const names[] = {"]
    for name in names:
        lines.append(f"    /* {c_comment(name)} */")
        lines.append(f"    // {c_comment(name)}")
        lines.append(f"    {c_string(name)}, /*{c_comment(name)}*/")
    lines += [
        "};",
        "",
        "int main(void)",
        "{",
        "    size_t i;",
        "    const unsigned char *p;",
        "    for (i = 0; i < sizeof names / sizeof names[0]; i++) {",
        "        for (p = (const unsigned char *)names[i]; *p; p++) {",
        '            printf("%02x", *p);',
        "        }",
        '        printf("\\n");',
        "    }",
        "    return 0;",
        "}",
        "",
    ]
    src = "\n".join(lines)
    code, _, _ = scan_c(src)
    assert not re.search(r"\bsystem\b", code)
    (tmp_path / "names.c").write_text(src)
    proc = compile_c(tmp_path, ["names.c"], (*STRICT, *SANITIZE), out="names")
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = subprocess.run(
        [str(tmp_path / "names")], capture_output=True, text=True, check=False, timeout=60
    )
    assert run.returncode == 0, run.stderr[-2000:]
    got = run.stdout.splitlines()
    assert len(got) == len(names)
    for name, hexed in zip(names, got, strict=True):
        # C strings stop at the first NUL: what precedes it must be exact
        want = name.encode("utf-8", "surrogatepass").split(b"\0")[0]
        assert bytes.fromhex(hexed) == want, name
