"""docs/walkthrough.md is current: regenerating it from scripts/lab.nnscript gives the same bytes.

The regeneration runs the whole lab flow (calibration, validation, the one-class experiment, the
C build with --verify) in a temporary folder, so nothing under the repository's build/ changes.
When this fails, run ``python scripts/make_walkthrough.py`` and review the diff.
"""

from __future__ import annotations

import difflib
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
