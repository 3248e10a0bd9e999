"""Renderers of the analysis commands (``qerror``, ``qexplain``, ``astats``, ``tensors``,
``dump``, ``aquant --compare``): rich tables, text bar charts and sparklines, JSON documents
and the PNG pictures.

Nothing here prints: a renderer returns *blocks*, a list of rich renderables (printed with the
shell's table printer) and strings (printed as one output call each), in output order. The shell
prints them with ``NnCommandSet.emit``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:
    import numpy as np
    from rich.table import Table

    from nnshell.analysis.tensor_sets import SetComparison

Block = Union["Table", str]

BLOCKS = " ▁▂▃▄▅▆▇█"
BAR_WIDTH = 40


# -- text pictures --------------------------------------------------------------------------------
def hbar(value: float, vmax: float, width: int = BAR_WIDTH) -> str:
    """A horizontal bar of ``value/vmax`` of ``width`` cells (eighths of a cell resolved)."""
    if vmax <= 0 or value <= 0 or not math.isfinite(value):
        return ""
    eighths = int(round(min(value / vmax, 1.0) * width * 8))
    full, part = divmod(eighths, 8)
    return "█" * full + (BLOCKS[part] if part else "")


def spark(counts: list[int], log: bool = True) -> str:
    """One character per bin, height from the (log) count."""
    vals = [math.log1p(c) if log else float(c) for c in counts]
    top = max(vals, default=0.0)
    if top <= 0:
        return " " * len(counts)
    return "".join(BLOCKS[int(round(v / top * 8))] if v > 0 else " " for v in vals)


def styled(text: str, style: str) -> Any:
    """A table cell with a style as a rich Text: markup in a plain string would be printed
    literally by a console that does not render markup (cmd2's terminal writer)."""
    from rich.text import Text

    return Text(text, style=style)


def json_text(doc: Any) -> str:
    """A JSON document, numpy scalars as numbers and anything else unknown as its text."""

    def default(o: Any) -> Any:
        try:
            return o.item()
        except AttributeError:
            return str(o)

    return json.dumps(doc, indent=1, default=default)


def _table(title: str) -> Table:
    from rich.table import Table

    return Table(title=title, header_style="bold")


def _short(path: str) -> str:
    return os.path.basename(path) if path else "-"


# -- aquant --compare -----------------------------------------------------------------------------
def compare_blocks(rep: Any, as_json: bool = False) -> list[Block]:
    """An ``aquant --compare`` report: one row per layer, one column per method."""
    if as_json:
        return [json_text(rep.to_dict())]
    table = _table("QSNR (dB) per layer, by range method")
    table.add_column("Layer")
    for m in rep.modes:
        table.add_column(m, justify="right")
    for i, name in enumerate(rep.layers):
        vals = [rep.qsnr[m][i] for m in rep.modes]
        best = max(vals)
        table.add_row(name, *[styled(f"{v:.2f}", "bold" if v == best else "") for v in vals])
    if rep.quant_acc:
        accs = [rep.quant_acc[m] for m in rep.modes]
        table.add_row(
            f"top-1 ({rep.validate_images} img)",
            *[styled(f"{a:.2%}", "bold" if a == max(accs) else "") for a in accs],
            end_section=True,
        )
    lines = [f"SQ8, {rep.options}; calibration: {rep.calib_images} image(s)"]
    lines.append(rep.verdict())
    lines += [f"note: {n}" for n in rep.notes]
    return [table, "\n".join(lines)]


# -- qerror ---------------------------------------------------------------------------------------
def qerror_png(path: str, model: str | None, rep: Any) -> None:
    """The QSNR bars of a qerror report as a PNG."""
    from nnshell.report.pictures import png_hbars

    png_hbars(
        path,
        f"{model}: QSNR per layer ({rep.mode}, {rep.images} images)",
        [r.name for r in rep.layers],
        [r.qsnr for r in rep.layers],
        "dB",
    )


def qerror_blocks(rep: Any, model: str | None, png: str | None) -> list[Block]:
    """The qerror table (most harmful layer first) and the QSNR bars in execution order."""
    table = _table(
        f"{model}: quantization error per layer ({rep.mode}, {rep.images} "
        "images), most harmful first"
    )
    cols = ("#", "Step", "Name", "Op", "QSNR dB", "Lost dB", "Cosine", "Max err", "Sat %")
    for col in cols + ("Worst image (dB)",):
        table.add_column(col, justify="left" if col in ("Name", "Op") else "right")
    for rank, r in enumerate(rep.ranked(), 1):
        sat = f"{r.saturated_pct:.2f}"
        table.add_row(
            str(rank),
            str(r.step),
            r.name,
            r.op,
            f"{r.qsnr:.2f}",
            f"{r.harm_db:+.2f}",
            f"{r.cosine:.5f}",
            f"{r.max_abs:.4g}",
            styled(sat, "bold red" if r.saturated_pct >= 1.0 else ""),
            f"{r.worst_file} ({r.worst_qsnr:.1f})",
        )
    vmax = max((r.qsnr for r in rep.layers), default=1.0)
    width = max((len(r.name) for r in rep.layers), default=4)
    lines = ["QSNR per layer (execution order):"]
    for r in rep.layers:
        lines.append(f"  {r.name:<{width}} {hbar(r.qsnr, vmax):<{BAR_WIDTH}} {r.qsnr:6.2f} dB")
    for name, q in rep.input_qsnr.items():
        lines.append(f"graph input '{name}' quantization: {q:.2f} dB")
    lines += [f"note: {n}" for n in rep.notes]
    if png:
        lines.append(f"wrote {png}")
    return [table, "\n".join(lines)]


# -- qexplain -------------------------------------------------------------------------------------
def qexplain_blocks(out: list[Any], as_json: bool) -> list[Block]:
    """The explained layers as text, or their numbers as JSON."""
    if as_json:
        return [json_text({"layers": [e.data for e in out]})]
    return ["\n\n".join("\n".join(e.lines) for e in out)]


# -- astats ---------------------------------------------------------------------------------------
def astats_png(path: str, model: str | None, rep: Any, rows: list[Any]) -> None:
    """The ``|x|`` histograms of ``rows`` with each chosen clip, as a PNG."""
    from nnshell.report.pictures import png_histograms

    panels = [
        {
            "title": f"{r.name} ({r.tensor}): |x|, {rep.mode} range "
            f"[{r.chosen[0]:.3g}, {r.chosen[1]:.3g}]",
            "edges": r.hist_edges,
            "counts": r.hist_counts,
            "clip": max(-r.chosen[0], r.chosen[1]),
        }
        for r in rows
    ]
    png_histograms(path, f"{model}: activation histograms ({rep.images} images)", panels)


def _rng(r: tuple[float, float]) -> str:
    return f"[{r[0]:.3g}, {r[1]:.3g}]"


def astats_table(rep: Any, model: str | None) -> Table:
    """One row per tensor: statistics, the range of every method (the chosen one bold)."""
    modes = list(rep.layers[0].ranges) if rep.layers else []
    table = _table(f"{model}: activation statistics ({rep.images} images)")
    for col in ("Step", "Layer", "Min", "Max", "Mean", "Std", *modes, "Outliers", "Extremes"):
        table.add_column(col, justify="left" if col in ("Layer", "Extremes") else "right")
    for r in rep.layers:
        table.add_row(
            "in" if r.step is None else str(r.step),
            r.name,
            f"{r.min:.4g}",
            f"{r.max:.4g}",
            f"{r.mean:.4g}",
            f"{r.std:.4g}",
            *[styled(_rng(r.ranges[m]), "bold" if m == rep.mode else "") for m in modes],
            f"{r.outliers} ({r.outlier_pct:.3f}%)",
            f"min {_short(r.argmin_file)}\nmax {_short(r.argmax_file)}",
        )
    return table


def histogram_lines(rep: Any, rows: list[Any]) -> list[str]:
    """A log-count sparkline of ``|x|`` per row with the chosen clip marked."""
    lines = []
    for r in rows:
        clip = max(-r.chosen[0], r.chosen[1])
        edges, counts = r.hist_edges, r.hist_counts
        cut = next((i for i, e in enumerate(edges[:-1]) if e >= clip), len(counts))
        lines.append(
            f"{r.name}: |x| over [0, {edges[-1]:.3g}] (log counts), {rep.mode} clip "
            f"{clip:.3g}, {r.clipped_by_chosen} value(s) beyond"
        )
        lines.append("  |" + spark(counts[:cut]) + "┃" + spark(counts)[cut:] + "|")
        lines.append("  0" + " " * max(0, cut - 1) + f"^ {clip:.3g}")
    return lines


def coverage_line(cov: Any) -> str:
    """How many labelled images per class the set holds, and the classes missing."""
    counts = ", ".join(f"{k}:{v}" for k, v in sorted(cov.counts.items()))
    text = f"class coverage: {cov.labelled}/{cov.images} labelled images; per class {counts}"
    if cov.classes:
        text += (
            f"; missing classes: {', '.join(map(str, cov.missing))}"
            if cov.missing
            else f"; all {cov.classes} classes present"
        )
    return text


def convergence_blocks(rep: Any) -> list[Block]:
    """Each range in % of its final width as images are added, and when all are stable."""
    conv = rep.convergence
    table = _table(f"range ({conv.mode}) in % of its final width, as calibration images are added")
    table.add_column("Layer")
    for cp in conv.checkpoints:
        table.add_column(str(cp), justify="right")
    table.add_column("stable from", justify="right")
    names = {r.tensor: r.name for r in rep.layers}
    for t in conv.ranges:
        pct, dev = conv.pct_of_final(t), conv.deviation(t)
        cells = []
        for p, d in zip(pct, dev, strict=True):
            block = BLOCKS[max(1, min(8, int(round(min(p, 100.0) / 12.5))))]
            style = "green" if d <= conv.tolerance else "yellow"
            cells.append(styled(f"{block} {p:.0f}%", style))
        table.add_row(names.get(t, t), *cells, str(conv.stable_from(t)))
    if conv.classes_seen:
        table.add_row("classes seen", *map(str, conv.classes_seen), "", end_section=True)
    n = conv.checkpoints[-1]
    at = conv.stable_at
    msg = (
        f"every layer's range is within {conv.tolerance:.0%} of its final value from "
        f"{at} image(s) on"
    )
    if at == n and len(conv.checkpoints) > 1:
        msg += " — only with the whole set: more images may still move the ranges"
    return [table, msg]


def astats_blocks(
    rep: Any, model: str | None, hist_rows: list[Any], as_json: bool, png: str | None
) -> list[Block]:
    """The astats report: table, histograms, convergence, class coverage, notes."""
    if as_json:
        return [json_text(rep.to_dict())]
    blocks: list[Block] = [astats_table(rep, model)]
    lines = histogram_lines(rep, hist_rows)
    if lines:
        blocks.append("\n".join(lines))
    if rep.convergence is not None:
        blocks += convergence_blocks(rep)
    if rep.coverage is not None:
        blocks.append(coverage_line(rep.coverage))
    blocks.append("\n".join(f"note: {n}" for n in rep.notes))
    if png:
        blocks.append(f"wrote {png}")
    return blocks


# -- tensors and dump -----------------------------------------------------------------------------
def tensor_stats_table(
    title: str, arrays: Mapping[str, np.ndarray], with_type: bool = False
) -> Table:
    """Name, shape (type), min, max, mean and std of each array: ``dump`` and ``tensors -t A``."""
    from nnshell.analysis.tensor_sets import tensor_stats

    table = _table(title)
    cols = ("Name", "Shape", "Type") if with_type else ("Name", "Shape")
    for col in (*cols, "Min", "Max", "Mean", "Std"):
        table.add_column(col, justify="left" if col in cols else "right")
    for k, a in arrays.items():
        s = tensor_stats(a)
        head = [k, "x".join(map(str, a.shape))] + ([str(a.dtype)] if with_type else [])
        table.add_row(*head, *(f"{s[m]:.4g}" for m in ("min", "max", "mean", "std")))
    return table


def tensor_sets_blocks(store: Mapping[str, Mapping[str, np.ndarray]], as_json: bool) -> list[Block]:
    """The stored tensor sets, as a table or a JSON document."""
    from nnshell.analysis.tensor_sets import set_summaries

    sums = set_summaries(store)
    if as_json:
        return [
            json_text(
                {"sets": {s["name"]: {"tensors": len(s["keys"]), "keys": s["keys"]} for s in sums}}
            )
        ]
    if not sums:
        return ["no tensor sets stored (dump FILE -S NAME stores one)"]
    table = _table("stored tensor sets")
    for col in ("Name", "Tensors", "Types", "Values"):
        table.add_column(col, justify="left" if col == "Name" else "right")
    for s in sums:
        table.add_row(s["name"], str(len(s["keys"])), ",".join(s["types"]), f"{s['values']:,}")
    return [table]


def tensor_show_blocks(
    name: str, picked: Mapping[str, np.ndarray], as_json: bool, one_step: bool, all_values: bool
) -> list[Block]:
    """One tensor set: statistics per tensor; with a step, its values; -X every value."""
    import numpy as np

    from nnshell.analysis.tensor_sets import tensor_stats

    if as_json:
        doc: dict[str, Any] = {"set": name, "tensors": []}
        for k, a in picked.items():
            entry = {"name": k, "shape": list(a.shape), "dtype": str(a.dtype), **tensor_stats(a)}
            if one_step or all_values:
                entry["values"] = a.tolist()
            doc["tensors"].append(entry)
        return [json_text(doc)]
    if one_step:
        threshold = np.inf if all_values else 200
        out: list[Block] = []
        for k, a in picked.items():
            out.append(f"{k} {'x'.join(map(str, a.shape))} {a.dtype}:")
            out.append(np.array2string(a, max_line_width=100, threshold=threshold))
        return out
    blocks: list[Block] = [tensor_stats_table(f"tensor set {name}", picked, with_type=True)]
    if all_values:
        blocks += [f"{k}:\n" + np.array2string(a, threshold=np.inf) for k, a in picked.items()]
    return blocks


def tensor_compare_blocks(
    names: list[str], cmp: SetComparison, metrics: list[str], channel: int | None, as_json: bool
) -> list[Block]:
    """Two tensor sets compared: one row per tensor, the chosen figures, and the note."""
    if as_json:
        rows = [{"name": r["name"], **{m: r[m] for m in metrics}} for r in cmp.rows]
        return [json_text({"a": names[0], "b": names[1], "tensors": rows, "note": cmp.note})]
    title = f"{names[0]} vs {names[1]}"
    if channel is not None:
        title += f", channel {channel}"
    table = _table(title)
    heads = {"qsnr": "QSNR dB", "cosine": "Cosine", "max_abs": "Max abs error"}
    table.add_column("Tensor")
    for m in metrics:
        table.add_column(heads[m], justify="right")
    fmt = {"qsnr": "{:.2f}", "cosine": "{:.6f}", "max_abs": "{:.4g}"}
    for r in cmp.rows:
        table.add_row(r["name"], *[fmt[m].format(r[m]) for m in metrics])
    return [table] + ([f"note: {cmp.note}"] if cmp.note else [])
