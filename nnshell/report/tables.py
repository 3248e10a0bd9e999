"""Turn plain result data into rich renderables; nothing here prints."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.table import Table

if TYPE_CHECKING:
    from nnshell.analysis.summary import GraphTotals, LayerInfo


def dims_text(dims: Sequence[Sequence[int]]) -> str:
    """Format a list of shapes as ``3x32x32, 10``."""
    return ", ".join("x".join(str(d) for d in s) or "scalar" for s in dims)


def human_bytes(n: int) -> str:
    """Format a byte count with a binary unit."""
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n / (1024 * 1024):.2f} MiB"


def layer_table(
    rows: Sequence[LayerInfo],
    totals: GraphTotals,
    title: str,
    partial: bool = False,
    caption: str | None = None,
    nntool_steps: dict[str, int] | None = None,
) -> Table:
    """Render the ``show`` layer table with its totals row.

    ``partial`` (a selector picked some layers): the footer sums the rows shown, so ``show 2``
    never prints the whole graph's totals under one layer; the activation peak is a property
    of the whole graph and is left out.
    """
    if partial:
        from nnshell.analysis.summary import GraphTotals as _Totals

        totals = _Totals(
            params=sum(r.params for r in rows),
            param_bytes=sum(r.param_bytes for r in rows),
            macs=sum(r.macs for r in rows),
            peak_act_bytes=0,
        )
    table = Table(
        title=title, caption=caption, show_footer=True, header_style="bold", footer_style="bold"
    )
    table.add_column("Step", justify="right", footer="")
    if nntool_steps is not None:
        table.add_column("NNTool", justify="right", footer="")
    table.add_column("Name", footer=f"Total of these {len(rows)}" if partial else "Total")
    table.add_column("Op")
    table.add_column("In dims")
    table.add_column("Out dims")
    table.add_column("Inputs")
    table.add_column("Params", justify="right", footer=f"{totals.params:,}")
    table.add_column("Param bytes", justify="right", footer=human_bytes(totals.param_bytes))
    table.add_column(
        "Act bytes",
        justify="right",
        footer="" if partial else f"peak {human_bytes(totals.peak_act_bytes)}",
    )
    table.add_column("MACs", justify="right", footer=f"{totals.macs:,}")
    for r in rows:
        nt = [] if nntool_steps is None else [f"S{nntool_steps[r.name]}"]
        table.add_row(
            str(r.step),
            *nt,
            r.name,
            r.op,
            dims_text(r.in_dims),
            dims_text(r.out_dims),
            ", ".join(r.inputs),
            f"{r.params:,}" if r.params else "",
            human_bytes(r.param_bytes) if r.param_bytes else "",
            human_bytes(r.act_bytes),
            f"{r.macs:,}" if r.macs else "",
        )
    return table


def layers_json(rows: Sequence[LayerInfo], totals: GraphTotals) -> dict[str, Any]:
    """Return the ``show --json`` document (stable keys)."""
    return {
        "layers": [
            {
                "step": r.step,
                "name": r.name,
                "op": r.op,
                "in_dims": [list(d) for d in r.in_dims],
                "out_dims": [list(d) for d in r.out_dims],
                "inputs": list(r.inputs),
                "params": r.params,
                "param_bytes": r.param_bytes,
                "act_bytes": r.act_bytes,
                "macs": r.macs,
            }
            for r in rows
        ],
        "totals": {
            "params": totals.params,
            "param_bytes": totals.param_bytes,
            "macs": totals.macs,
            "peak_act_bytes": totals.peak_act_bytes,
        },
    }


def settings_table(values: dict[str, Any], helps: dict[str, str]) -> Table:
    """Render ``set`` with no arguments: every setting, its value and what it does."""
    table = Table(title="Settings", header_style="bold")
    table.add_column("Name", no_wrap=True)  # the name one types: never wrapped
    table.add_column("Value")
    table.add_column("Meaning")
    for name in sorted(values):
        table.add_row(
            name,
            repr(values[name]) if isinstance(values[name], str) else str(values[name]),
            helps.get(name, ""),
        )
    return table
