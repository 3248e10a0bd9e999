"""Rich tables of ``stats`` (weight statistics) and ``temps`` (live activations per step)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.table import Table

from nnshell.report.tables import human_bytes

if TYPE_CHECKING:
    from nnshell.analysis.temps import StepTemps
    from nnshell.analysis.wstats import LayerWeightStats


def _g(x: float) -> str:
    return f"{x:.4g}"


def stats_table(rows: Sequence[LayerWeightStats], threshold: float, detailed: bool) -> Table:
    """One row per weighted layer; channels under ``threshold`` dB are listed (flagged red)."""
    t = Table(title=f"weight statistics (8-bit QSNR, flag < {threshold:g} dB)", header_style="bold")
    for col, justify in (
        ("Step", "right"),
        ("Name", "left"),
        ("Shape", "left"),
        ("Min", "right"),
        ("Max", "right"),
    ):
        t.add_column(col, justify=justify)
    if detailed:
        for col in ("Mean", "Std", "Bias min", "Bias max", "Worst ch QSNR"):
            t.add_column(col, justify="right")
    t.add_column("QSNR", justify="right")
    t.add_column("Channels < threshold")
    for r in rows:
        low = ", ".join(str(c) for c in r.low_channels[:12])
        if len(r.low_channels) > 12:
            low += f" (+{len(r.low_channels) - 12})"
        cells = [str(r.step), r.name, "x".join(map(str, r.shape)), _g(r.min), _g(r.max)]
        if detailed:
            worst = min(c.qsnr for c in r.channels)
            cells += [
                _g(r.mean),
                _g(r.std),
                "" if r.bias_min is None else _g(r.bias_min),
                "" if r.bias_max is None else _g(r.bias_max),
                f"{worst:.1f}",
            ]
        cells += [f"{r.qsnr:.1f}", f"[red]{low}[/red]" if low else ""]
        t.add_row(*cells)
    return t


def channel_table(row: LayerWeightStats, threshold: float) -> Table:
    """``stats -s STEP``: one row per output channel of one layer."""
    t = Table(title=f"{row.name}: weights per output channel", header_style="bold")
    for col in ("Channel", "Min", "Max", "Mean", "Std", "QSNR"):
        t.add_column(col, justify="right")
    t.add_column("")
    for c in row.channels:
        flag = "[red]< threshold[/red]" if c.qsnr < threshold else ""
        cells = [str(c.channel), _g(c.min), _g(c.max), _g(c.mean), _g(c.std), f"{c.qsnr:.1f}"]
        t.add_row(*cells, flag)
    return t


def temps_table(rows: Sequence[StepTemps]) -> Table:
    """One row per step: the live tensors and their bytes (the largest row is the peak)."""
    quant = any(r.quant_bytes is not None for r in rows)
    peak = max((r.float_bytes for r in rows), default=0)
    t = Table(title="live activations per step", header_style="bold")
    t.add_column("Step", justify="right")
    t.add_column("Name")
    t.add_column("Out", justify="right")
    t.add_column("Live float", justify="right")
    if quant:
        t.add_column("Live quantized", justify="right")
    t.add_column("Live tensors")
    for r in rows:
        mark = " *" if r.float_bytes == peak else ""
        cells = [str(r.step), r.name, human_bytes(r.out_bytes), human_bytes(r.float_bytes) + mark]
        if quant:
            cells.append(human_bytes(r.quant_bytes or 0))
        t.add_row(*cells, ", ".join(r.live))
    return t
