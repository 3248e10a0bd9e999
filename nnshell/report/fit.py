"""Fit a rich table to a terminal without cutting a number or a name.

Rich's default when a table is wider than the terminal is to shrink every column and end the
cells with "…": at 80 columns ``show`` then reads ``_blo…`` and ``62,0…``, which is worse than
useless (a cut number looks like a different number). :func:`fit_table` instead

* gives every column a minimum width: its longest number-like word (never cut) or, for a
  name, up to ``NAME_MIN`` characters (longer names wrap over several lines: "fold");
* spreads the remaining width over the columns that would like more;
* when even the minimums do not fit, splits the columns over several tables that repeat the
  leading key columns (step, name), like a wide data frame printed page by page.

Nothing here prints; the shell passes the terminal width.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from rich.table import Table
from rich.text import Text

#: Names (words that are not numbers) may wrap down to this width.
NAME_MIN = 10
#: Headers of the columns that identify a row: repeated on each part of a split table.
KEY_HEADERS = frozenset({"#", "Step", "Name", "Layer", "Tensor"})
_NUMBERISH = re.compile(r"\d")


def _plain(cell: Any) -> str:
    """The text of a cell as it will be shown (markup is never used in cells)."""
    if isinstance(cell, Text):
        return cell.plain
    if isinstance(cell, str):
        return cell
    return ""


def is_number_word(word: str) -> bool:
    """A word that must stay whole: it has a digit and few letters (``62,024``, ``S=0.0123``,
    ``3x32x32``, ``1.5e-05``, ``>>12..14``); ``_blocks_0_conv1`` is a name and may wrap."""
    if not _NUMBERISH.search(word):
        return False
    letters = sum(ch.isalpha() and ch != "x" for ch in word)
    return letters <= 3


def _column_texts(col: Any) -> list[str]:
    texts = [_plain(c) for c in col._cells]
    texts += [_plain(col.header), _plain(col.footer)]
    return texts


def column_bounds(col: Any) -> tuple[int, int]:
    """(minimum, natural) width of a column's content."""
    natural, minimum = 1, 1
    for text in _column_texts(col):
        for line in text.splitlines() or [""]:
            natural = max(natural, len(line))
            for word in line.split():
                need = len(word) if is_number_word(word) else min(len(word), NAME_MIN)
                minimum = max(minimum, need)
    if col.no_wrap:  # a column the table asked never to wrap (setting names): whole lines
        minimum = max(len(_plain(c)) for c in col._cells) if col._cells else minimum
    return minimum, natural


def _overhead(ncols: int, table: Table) -> int:
    """Characters a table spends on borders and padding around ``ncols`` columns."""
    edge = 2 if table.show_edge else 0
    pad = table.padding[1] + table.padding[3] if table.padding else 2
    return edge + (ncols - 1) + ncols * pad


def _copy_table(table: Table, columns: list[Any], title: str | None) -> Table:
    new = copy.copy(table)
    new.title = title
    new.columns = []
    for i, col in enumerate(columns):
        c = copy.copy(col)
        c._index = i
        new.columns.append(c)
    new.rows = list(table.rows)
    return new


def _set_widths(table: Table, width: int) -> None:
    """Fixed widths: each column its minimum, the rest shared towards the natural widths."""
    bounds = [column_bounds(c) for c in table.columns]
    avail = width - _overhead(len(bounds), table)
    widths = [lo for lo, _ in bounds]
    extra = avail - sum(widths)

    # the names that identify a row first, then the narrowest wishes: a column that fits
    # entirely reads best
    def order(k: int) -> tuple[bool, int]:
        key = _plain(table.columns[k].header) in KEY_HEADERS
        return (not key, bounds[k][1] - bounds[k][0])

    for i in sorted(range(len(bounds)), key=order):
        want = bounds[i][1] - widths[i]
        give = max(0, min(want, extra))
        widths[i] += give
        extra -= give
    for col, w in zip(table.columns, widths, strict=True):
        col.width = w
        col.min_width = None
        col.max_width = None
        col.no_wrap = False
        col.overflow = "fold"


def fit_table(table: Table, width: int) -> list[Table]:
    """One or more tables that show every cell of ``table`` whole within ``width`` columns."""
    bounds = [column_bounds(c) for c in table.columns]
    if sum(hi for _, hi in bounds) + _overhead(len(bounds), table) <= width:
        return [table]
    if sum(lo for lo, _ in bounds) + _overhead(len(bounds), table) <= width:
        new = _copy_table(table, list(table.columns), table.title)
        _set_widths(new, width)
        return [new]
    nkeys = 0
    for col in table.columns:
        if _plain(col.header) not in KEY_HEADERS:
            break
        nkeys += 1
    nkeys = max(1, min(nkeys, len(table.columns) - 1))
    keys, rest = list(table.columns[:nkeys]), list(table.columns[nkeys:])
    key_min = sum(column_bounds(c)[0] for c in keys)
    groups: list[list[Any]] = []
    for col in rest:
        lo = column_bounds(col)[0]
        if groups:
            used = key_min + sum(column_bounds(c)[0] for c in groups[-1]) + lo
            if used + _overhead(nkeys + len(groups[-1]) + 1, table) <= width:
                groups[-1].append(col)
                continue
        groups.append([col])
    out = []
    for k, group in enumerate(groups):
        title = table.title
        if len(groups) > 1:  # the later parts are often narrow: a short title that fits
            part = f"part {k + 1}/{len(groups)}"
            title = f"{title} ({part})" if title and k == 0 else f"({part}, continued)"
        new = _copy_table(table, keys + group, title)
        _set_widths(new, width)
        out.append(new)
    return out
