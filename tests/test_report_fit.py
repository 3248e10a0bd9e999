"""fit_table: a table squeezed into a narrow terminal keeps every number and name whole."""

from __future__ import annotations

import io
import re

from rich.console import Console
from rich.table import Table

from nnshell.report.fit import fit_table, is_number_word


def _render(tables: list[Table], width: int) -> str:
    buf = io.StringIO()
    console = Console(file=buf, width=width, color_system=None, force_terminal=False)
    for t in tables:
        console.print(t)
    return buf.getvalue()


def _wide_table() -> Table:
    table = Table(title="wide", show_footer=True)
    table.add_column("Step", justify="right")
    table.add_column("Name", footer="Total")
    for head in ("In dims", "Out dims", "Params", "Param bytes", "Act bytes", "MACs", "Scale"):
        table.add_column(head, justify="right", footer="123,456,789" if head == "MACs" else "")
    for i in range(4):
        table.add_row(
            str(i),
            f"_block{i}_pw_pw_0_Conv_fusion",
            "16x16x16",
            "32x8x8",
            f"{4640 * (i + 1):,}",
            "18.1 KiB",
            "16.0 KiB",
            f"{294912 * (i + 1):,}",
            "S=0.0067182 Z=-128",
        )
    return table


def test_numbers_never_cut() -> None:
    for width in (60, 80, 120):
        text = _render(fit_table(_wide_table(), width), width)
        assert "…" not in text
        assert all(len(line) <= width for line in text.splitlines()), text
        for number in ("123,456,789", "1,179,648", "18,560", "16x16x16", "S=0.0067182"):
            assert number in text, (width, number, text)
        # a name may wrap over lines, never end in an ellipsis: its start is always there
        assert re.search(r"│ _block3_pw", text), text


def test_table_that_fits_is_unchanged() -> None:
    table = _wide_table()
    assert fit_table(table, 400) == [table]


def test_number_words() -> None:
    assert is_number_word("62,024") and is_number_word("S=0.00123") and is_number_word("3x32x32")
    assert is_number_word(">>12..14") and is_number_word("1.5e-05")
    assert not is_number_word("_blocks_0__conv1_Conv") and not is_number_word("Conv")
