"""docs/walkthrough.md is current: regenerating it from scripts/lab.nnscript gives the same bytes.

The regeneration runs the whole lab flow (calibration, validation, the one-class experiment, the
C build with --verify) in a temporary folder, so nothing under the repository's build/ changes.
When this fails, run ``python scripts/make_walkthrough.py`` and review the diff.
"""

from __future__ import annotations

import difflib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "make_walkthrough.py"
DOC = ROOT / "docs" / "walkthrough.md"


@pytest.mark.skipif(
    shutil.which("gcc") is None and shutil.which("cc") is None,
    reason="gen --verify needs a host C compiler",
)
def test_walkthrough_is_current(tmp_path: Path) -> None:
    out = tmp_path / "walkthrough.md"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out), "--workdir", str(tmp_path / "work")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    new, old = out.read_bytes(), DOC.read_bytes()
    if new != old:
        diff = difflib.unified_diff(
            old.decode().splitlines(), new.decode().splitlines(), "committed", "regenerated", n=1
        )
        pytest.fail(
            "docs/walkthrough.md is stale (python scripts/make_walkthrough.py):\n"
            + "\n".join(list(diff)[:60])
        )


def test_template_prose_has_no_typed_figures() -> None:
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import make_walkthrough
    finally:
        sys.path.pop(0)
    template = (ROOT / "docs" / "walkthrough.template.md").read_text()
    make_walkthrough.check_prose(template)
    with pytest.raises(SystemExit, match="figures typed"):
        make_walkthrough.check_prose("The drop is 0.19 points.")


# -- the document's command listing reproduces its figures (issue 23) -------------------------
BEGIN, END = "<!-- commands:begin -->", "<!-- commands:end -->"


def listed_commands(doc: str) -> list[str]:
    """The commands of the document's listing, as a reader would type them."""
    assert doc.count(BEGIN) == 1 and doc.count(END) == 1, "the document lists its commands once"
    block = doc.split(BEGIN, 1)[1].split(END, 1)[0]
    body = re.search(r"```text\n(.*?)```", block, re.S)
    assert body is not None, "the listing is a ```text block"
    return [ln for ln in body.group(1).splitlines() if ln.strip()]


def shown_output(doc: str, command: str) -> str:
    """The output the document shows under the first prompt running ``command``."""
    m = re.search(r"^nnshell[^\n>]*> " + re.escape(command) + r"\n(.*?)^```", doc, re.M | re.S)
    assert m is not None, f"the document shows no output of '{command}'"
    return m.group(1)


def figure(text: str, pattern: str) -> str:
    """The first match of ``pattern`` (one group) in ``text``."""
    m = re.search(pattern, text, re.M)
    assert m is not None, f"no '{pattern}' in:\n{text[:2000]}"
    return m.group(1)


#: (command, pattern): key figures a reader checks by hand, from the output of the command.
KEY_FIGURES = [
    ("qshow", r"^│\s+0 │ \S+\s+│ (S=\S+ Z=\S+ \[[^]]*\])"),  # the input's scale and zero point
    ("qexplain _conv1_Conv_fusion", r"^  (sI = \S+, zI = \S+)"),
    ("qexplain _conv1_Conv_fusion", r"^  (channel 0: .* ≈ \d+·2\^-\d+)"),
    ("qexplain _conv1_Conv_fusion", r"(B0q\[0\] = -?\d+)"),  # symbols indexed by step
    ("validate sample_images/test", r"^(float     top-1: .*)$"),
    ("validate sample_images/test", r"^(quantized top-1: .*)$"),
    ("validate sample_images/test", r"^(paired: .*)$"),
    ("validate sample_images/test", r"^(drop 95% interval: .*)$"),
    ("footprint", r"^(\s+float, as imported: .*)$"),
    ("footprint", r"^(\s+SQ8, fused: .*)$"),
    ("gen --target c -M build/lab/c --verify sample_images/test", r"^(gen --verify: .*)$"),
]


@pytest.mark.skipif(
    shutil.which("gcc") is None and shutil.which("cc") is None,
    reason="gen --verify needs a host C compiler",
)
def test_listed_commands_reproduce_the_figures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Type exactly the commands the document lists, in a fresh shell in an empty folder, and
    get the figures it shows: nothing the reader must type is missing from the listing (the
    input normalisation was, once), and the listing is what the document's outputs came from."""
    import contextlib
    import io

    from nnshell.script import script_lines
    from nnshell.shell.app import make_app, run_command

    doc = DOC.read_text()
    commands = listed_commands(doc)
    assert commands == [s.text for s in script_lines(str(ROOT / "scripts" / "lab.nnscript"), {})]
    assert 'set input_norm_func "x: (x/255 - 0.5)/0.5"' in commands
    shown = re.findall(r"^nnshell[^\n>]*> (.+)$", doc, re.M)
    assert shown and set(shown) <= set(commands), set(shown) - set(commands)

    for name in ("sample_models", "sample_images"):
        (tmp_path / name).symlink_to(ROOT / name, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setenv("NO_COLOR", "1")
    app = make_app(stdout=io.StringIO())
    outputs: dict[str, str] = {}
    for line in commands:
        out, err = io.StringIO(), io.StringIO()
        app.stdout = out
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            ok, _ = run_command(app, line)
        assert ok, f"{line}: {err.getvalue()[-2000:]}"
        outputs.setdefault(line, out.getvalue() + err.getvalue())
    for command, pattern in KEY_FIGURES:
        ours = figure(outputs[command], pattern).strip()
        assert ours == figure(shown_output(doc, command), pattern).strip(), (command, pattern)
