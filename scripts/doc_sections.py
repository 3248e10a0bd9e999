"""Rewrite one ``## section`` of a Markdown document in place, keeping every other section.

Shared by the report and benchmark scripts that write into ``docs/``.
"""

from __future__ import annotations

import re
from pathlib import Path


def write_section(text: str, section: str, doc: Path, title: str) -> None:
    """Replace (or append) ``section`` in ``doc``, keeping every other section."""
    doc.parent.mkdir(parents=True, exist_ok=True)
    old = doc.read_text() if doc.exists() else f"# {title}\n"
    start = old.find(section)
    if start < 0:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        nxt = re.search(r"^#{1,2} ", old[start + len(section) :], re.M)
        end = start + len(section) + nxt.start() if nxt else len(old)
        rest = old[end:]
        new = old[:start] + text + ("\n" + rest if rest else "")
    doc.write_text(new)
