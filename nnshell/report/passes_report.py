"""Render what adjust and fusions did: one line per fusion, removals, edits and notes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from nnshell.passes.base import PassDef, PassResult


def fusion_lines(result: PassResult) -> list[str]:
    """``a, b, c  →  a_fusion   (kind)`` lines, aligned, in execution order."""
    if not result.fusions:
        return []
    lefts = [", ".join(f.old) for f in result.fusions]
    mids = [f.new for f in result.fusions]
    lw, mw = max(map(len, lefts)), max(map(len, mids))
    return [
        f"{left.ljust(lw)} → {mid.ljust(mw)}   ({f.kind})"
        for left, mid, f in zip(lefts, mids, result.fusions, strict=True)
    ]


def pass_report(result: PassResult, header: str) -> list[str]:
    """The text printed by ``fusions`` and ``adjust``."""
    lines = [header]
    lines += fusion_lines(result)
    if result.removed:
        lines.append(f"removed: {', '.join(result.removed)}")
    lines += [f"  {e}" for e in result.edits if "→ Linear" not in e]
    lines += [f"note: {n}" for n in result.notes]
    return lines


def pass_json(result: PassResult, **extra: Any) -> dict[str, Any]:
    """The ``--json`` document of fusions/adjust (stable keys)."""
    return {
        **extra,
        "changed": result.changed,
        "fusions": [{"old": list(f.old), "new": f.new, "kind": f.kind} for f in result.fusions],
        "removed": list(result.removed),
        "edits": list(result.edits),
        "notes": list(result.notes),
    }


def passes_table(passes: list[PassDef], schemes: dict[str, list[str]]) -> Table:
    """``fusions -l``: every pass, its description and the schemes that run it."""
    table = Table(title="Passes (run in this order by each scheme)", header_style="bold")
    table.add_column("Pass")
    table.add_column("Schemes")
    table.add_column("What it does")
    for p in passes:
        used = [s for s, names in schemes.items() if p.name in names]
        table.add_row(p.name, ", ".join(used) or "-a only", escape(p.description))
    return table
