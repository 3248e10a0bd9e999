"""Script parsing: comments, ';' splitting, variables."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nnshell.script import ScriptError, command_lines, script_lines, split_commands


def test_split_commands_respects_quotes() -> None:
    assert split_commands('a; b "x; y" # c') == ["a", 'b "x; y"']
    assert split_commands("set input_norm_func 'x: x#1'") == ["set input_norm_func 'x: x#1'"]
    assert split_commands("# only a comment") == []


def test_script_lines_numbers_and_expansion(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("FROM_ENV", "envval")
    p = tmp_path / "s.nnscript"
    p.write_text("\n# c\nopen $(A)\nshow ${FROM_ENV}; show 1\n")
    lines = script_lines(str(p), {"A": "m.onnx"})
    assert [(ln.line, ln.text) for ln in lines] == [
        (3, "open m.onnx"),
        (4, "show envval"),
        (4, "show 1"),
    ]


def test_defines_win_over_environment(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("V", "env")
    assert command_lines(["x $(V)"], {"V": "def"})[0].text == "x def"


def test_undefined_variable_names_line(tmp_path: Path) -> None:
    p = tmp_path / "s.nnscript"
    p.write_text("show\nopen $(NOPE_NOT_SET_ANYWHERE)\n")
    with pytest.raises(ScriptError) as exc:
        script_lines(str(p), {})
    assert exc.value.line == 2 and "NOPE_NOT_SET_ANYWHERE" in str(exc.value)


@given(st.lists(st.text(alphabet="abc xyz-_.", min_size=1), min_size=1, max_size=5))
def test_split_roundtrip_without_specials(parts: list[str]) -> None:
    text = ";".join(parts)
    assert split_commands(text) == [p.strip() for p in parts if p.strip()]
