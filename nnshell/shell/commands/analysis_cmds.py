"""Quantization analysis commands: ``qerror``, ``qexplain``, ``astats``, ``tensors``.

The computations live in :mod:`nnshell.analysis` (plain data); this module only renders: rich
tables, text bar charts (QSNR per layer, ``|x|`` histograms with the chosen clip, convergence of
the ranges) and the same pictures as PNG files drawn with pillow (``--png FILE``).
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

import cmd2

from nnshell.errors import UsageError
from nnshell.shell.commands.base import NnCommandSet
from nnshell.shell.commands.common import add_input_options, input_overrides
from nnshell.shell.parser import NnArgumentParser
from nnshell.shell.pictures import png_hbars, png_histograms

if TYPE_CHECKING:
    import numpy as np

    from nnshell.shell.app import NnShell

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


def _styled(text: str, style: str) -> Any:
    """A table cell with a style as a rich Text: markup in a plain string would be printed
    literally by a console that does not render markup (cmd2's terminal writer)."""
    from rich.text import Text

    return Text(text, style=style)


def _dumps(doc: Any) -> str:
    def default(o: Any) -> Any:
        try:
            return o.item()
        except AttributeError:
            return str(o)

    return json.dumps(doc, indent=1, default=default)


# -- renderers shared with other command sets ---------------------------------------------------
def print_compare(app: NnShell, rep: Any, as_json: bool = False) -> None:
    """Render an ``aquant --compare`` report (one row per layer, one column per method)."""
    from rich.table import Table

    if as_json:
        app.poutput(_dumps(rep.to_dict()))
        return
    table = Table(title="QSNR (dB) per layer, by range method", header_style="bold")
    table.add_column("Layer")
    for m in rep.modes:
        table.add_column(m, justify="right")
    for i, name in enumerate(rep.layers):
        vals = [rep.qsnr[m][i] for m in rep.modes]
        best = max(vals)
        table.add_row(name, *[_styled(f"{v:.2f}", "bold" if v == best else "") for v in vals])
    if rep.quant_acc:
        accs = [rep.quant_acc[m] for m in rep.modes]
        table.add_row(
            f"top-1 ({rep.validate_images} img)",
            *[_styled(f"{a:.2%}", "bold" if a == max(accs) else "") for a in accs],
            end_section=True,
        )
    app.print_table(table)
    lines = [f"SQ8, {rep.options}; calibration: {rep.calib_images} image(s)"]
    lines.append(rep.verdict())
    lines += [f"note: {n}" for n in rep.notes]
    app.poutput("\n".join(lines))


class AnalysisCommands(NnCommandSet):
    """qerror, qexplain, astats, tensors."""

    DEFAULT_CATEGORY = "Analysis"

    # -- qerror ----------------------------------------------------------------------------
    qerror_parser = NnArgumentParser(
        description="Per layer: QSNR (dB), cosine, max abs error and % of outputs saturated at "
        "-128/127 (for an asymmetric ReLU output only 127: -128 is its real 0), averaged over the "
        "images with the worst one named, ranked by the dB lost inside each layer. Default: the "
        "integer network end to end (errors accumulate); -s: each layer fed its predecessors' "
        "float outputs quantized with their output qtypes (the error it adds itself; works on "
        "fused layers)."
    )
    qerror_parser.add_argument("files", nargs="+", completer=cmd2.Cmd.path_complete)
    qerror_parser.add_argument(
        "-s", "--single", action="store_true", help="isolated: each layer on float inputs"
    )
    qerror_parser.add_argument("--png", metavar="FILE", help="write the QSNR bars as a PNG")
    qerror_parser.add_argument("--json", action="store_true", help="machine-readable output")
    add_input_options(qerror_parser)

    @cmd2.with_argparser(qerror_parser)
    def do_qerror(self, args: Any) -> None:
        """Which layer loses accuracy: QSNR, cosine, max error, saturation per layer."""
        from rich.table import Table

        from nnshell.shell.progress import image_progress

        session = self.app.session
        opts = session.input_options(**input_overrides(args))
        self.app.warn_input_drift(opts)
        with image_progress("measuring") as progress:
            rep = session.qerror(args.files, opts, args.single, progress)
        if args.png:
            png_hbars(
                args.png,
                f"{session.name}: QSNR per layer ({rep.mode}, {rep.images} images)",
                [r.name for r in rep.layers],
                [r.qsnr for r in rep.layers],
                "dB",
            )
        if args.json:
            self.app.poutput(_dumps(rep.to_dict()))
            return
        table = Table(
            title=f"{session.name}: quantization error per layer ({rep.mode}, {rep.images} "
            "images), most harmful first",
            header_style="bold",
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
                _styled(sat, "bold red" if r.saturated_pct >= 1.0 else ""),
                f"{r.worst_file} ({r.worst_qsnr:.1f})",
            )
        self.app.print_table(table)
        vmax = max((r.qsnr for r in rep.layers), default=1.0)
        width = max((len(r.name) for r in rep.layers), default=4)
        lines = ["QSNR per layer (execution order):"]
        for r in rep.layers:
            lines.append(f"  {r.name:<{width}} {hbar(r.qsnr, vmax):<{BAR_WIDTH}} {r.qsnr:6.2f} dB")
        for name, q in rep.input_qsnr.items():
            lines.append(f"graph input '{name}' quantization: {q:.2f} dB")
        lines += [f"note: {n}" for n in rep.notes]
        if args.png:
            lines.append(f"wrote {args.png}")
        self.app.poutput("\n".join(lines))

    # -- qexplain --------------------------------------------------------------------------
    qexplain_parser = NnArgumentParser(
        description="The integer formula of a layer with its actual numbers: "
        "O1q = clip8(rnorm((B1q + Σ W1q·Iq) · M1, N1)), the real multiplier sI·sW1[c]/sO1 and "
        "its 8-bit approximation M1·2^-N1 with the relative error per channel, the zero-point "
        "offset folded into the bias, and how the input scale chains from the producer's "
        "output scale."
    )
    qexplain_parser.add_argument(
        "selector",
        choices_provider=NnCommandSet.node_choices,
        help="step, name, prefix*, range a:b",
    )
    qexplain_parser.add_argument("--json", action="store_true", help="machine-readable output")

    @cmd2.with_argparser(qexplain_parser)
    def do_qexplain(self, args: Any) -> None:
        """Explain a quantized layer's integer arithmetic with its numbers."""
        out = self.app.session.qexplain(args.selector)
        if args.json:
            self.app.poutput(_dumps({"layers": [e.data for e in out]}))
            return
        self.app.poutput("\n\n".join("\n".join(e.lines) for e in out))

    # -- astats ----------------------------------------------------------------------------
    astats_parser = NnArgumentParser(
        description="Per layer activation statistics: min, max, mean, std, the range each "
        "--mode would choose, the outliers beyond the percentile clip and the image that set "
        "each extreme. --convergence: how each layer's range moves as images are added "
        "(1, 2, 4, ... N), the image count after which every range is within 5 % of its final "
        "value, and the class coverage of the set. No files: the last aquant's statistics."
    )
    astats_parser.add_argument("files", nargs="*", completer=cmd2.Cmd.path_complete)
    astats_parser.add_argument(
        "--mode", help="the method whose range is charted (default: the current aquant's)"
    )
    astats_parser.add_argument(
        "--convergence", action="store_true", help="ranges as calibration images are added"
    )
    astats_parser.add_argument(
        "--hist",
        nargs="?",
        const="",
        metavar="SEL",
        help="draw the |x| histogram with the chosen clip (all layers, or SEL)",
    )
    astats_parser.add_argument("--png", metavar="FILE", help="write the histograms as a PNG")
    astats_parser.add_argument("--json", action="store_true", help="machine-readable output")
    add_input_options(astats_parser)

    @cmd2.with_argparser(astats_parser)
    def do_astats(self, args: Any) -> None:
        """Activation statistics, ranges per method, convergence and class coverage."""
        from nnshell.shell.progress import image_progress

        session = self.app.session
        opts = session.input_options(**input_overrides(args))
        with image_progress("statistics") as progress:
            rep = session.astats(args.files, opts, args.convergence, progress, args.mode)
        rows = rep.layers
        if args.hist is not None and args.hist.strip():
            from nnshell.selectors import select_steps

            keep = set(select_steps(session.require_graph(), args.hist))
            hist_rows = [r for r in rows if r.step in keep]
        else:
            hist_rows = rows
        if args.png:
            panels = [
                {
                    "title": f"{r.name} ({r.tensor}): |x|, {rep.mode} range "
                    f"[{r.chosen[0]:.3g}, {r.chosen[1]:.3g}]",
                    "edges": r.hist_edges,
                    "counts": r.hist_counts,
                    "clip": max(-r.chosen[0], r.chosen[1]),
                }
                for r in hist_rows
            ]
            png_histograms(
                args.png, f"{session.name}: activation histograms ({rep.images} images)", panels
            )
        if args.json:
            self.app.poutput(_dumps(rep.to_dict()))
            return
        self._print_astats(rep, hist_rows if args.hist is not None else [])
        if args.png:
            self.app.poutput(f"wrote {args.png}")

    def _print_astats(self, rep: Any, hist_rows: list[Any]) -> None:
        from rich.table import Table

        def rng(r: tuple[float, float]) -> str:
            return f"[{r[0]:.3g}, {r[1]:.3g}]"

        modes = list(rep.layers[0].ranges) if rep.layers else []
        table = Table(
            title=f"{self.app.session.name}: activation statistics ({rep.images} images)",
            header_style="bold",
        )
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
                *[_styled(rng(r.ranges[m]), "bold" if m == rep.mode else "") for m in modes],
                f"{r.outliers} ({r.outlier_pct:.3f}%)",
                f"min {_short(r.argmin_file)}\nmax {_short(r.argmax_file)}",
            )
        self.app.print_table(table)
        lines = []
        for r in hist_rows:
            clip = max(-r.chosen[0], r.chosen[1])
            edges, counts = r.hist_edges, r.hist_counts
            cut = next((i for i, e in enumerate(edges[:-1]) if e >= clip), len(counts))
            lines.append(
                f"{r.name}: |x| over [0, {edges[-1]:.3g}] (log counts), {rep.mode} clip "
                f"{clip:.3g}, {r.clipped_by_chosen} value(s) beyond"
            )
            lines.append("  |" + spark(counts[:cut]) + "┃" + spark(counts)[cut:] + "|")
            lines.append("  0" + " " * max(0, cut - 1) + f"^ {clip:.3g}")
        if lines:
            self.app.poutput("\n".join(lines))
        if rep.convergence is not None:
            self._print_convergence(rep)
        cov = rep.coverage
        if cov is not None:
            counts = ", ".join(f"{k}:{v}" for k, v in sorted(cov.counts.items()))
            text = (
                f"class coverage: {cov.labelled}/{cov.images} labelled images; per class {counts}"
            )
            if cov.classes:
                text += (
                    f"; missing classes: {', '.join(map(str, cov.missing))}"
                    if cov.missing
                    else f"; all {cov.classes} classes present"
                )
            self.app.poutput(text)
        self.app.poutput("\n".join(f"note: {n}" for n in rep.notes))

    def _print_convergence(self, rep: Any) -> None:
        from rich.table import Table

        conv = rep.convergence
        table = Table(
            title=f"range ({conv.mode}) in % of its final width, as calibration images are added",
            header_style="bold",
        )
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
                cells.append(_styled(f"{block} {p:.0f}%", style))
            table.add_row(names.get(t, t), *cells, str(conv.stable_from(t)))
        if conv.classes_seen:
            table.add_row("classes seen", *map(str, conv.classes_seen), "", end_section=True)
        self.app.print_table(table)
        n = conv.checkpoints[-1]
        at = conv.stable_at
        msg = (
            f"every layer's range is within {conv.tolerance:.0%} of its final value from "
            f"{at} image(s) on"
        )
        if at == n and len(conv.checkpoints) > 1:
            msg += " — only with the whole set: more images may still move the ranges"
        self.app.poutput(msg)

    # -- tensors ---------------------------------------------------------------------------
    tensors_parser = NnArgumentParser(
        description="List the stored tensor sets (dump -S NAME), show one (-t A) or compare two "
        "(-t A B: QSNR, cosine, max error; -Q, -C or -E for one of them). -s STEP picks one "
        "layer, -c CH one channel; --write_numpy writes the selection (.npy, or .npz for a set); "
        "-X prints every value instead of a summary."
    )
    tensors_parser.add_argument("-t", "--tensors", nargs="+", metavar="NAME", help="A [B]")
    tensors_parser.add_argument("-s", "--step", metavar="STEP", help="one layer (step or name)")
    tensors_parser.add_argument("-c", "--channel", type=int, metavar="CH", help="one channel")
    which = tensors_parser.add_mutually_exclusive_group()
    which.add_argument("-Q", "--qsnr", action="store_true", help="compare by QSNR only")
    which.add_argument("-C", "--cosine", action="store_true", help="compare by cosine only")
    which.add_argument("-E", "--error", action="store_true", help="compare by max abs error")
    tensors_parser.add_argument("--write_numpy", metavar="FILE", help="write the selection")
    tensors_parser.add_argument("-X", "--all_values", action="store_true", help="every value")
    tensors_parser.add_argument("--json", action="store_true", help="machine-readable output")

    def _keys(self, tset: dict[str, np.ndarray], step: str | None) -> list[str]:
        if step is None:
            return list(tset)
        if step in tset:
            return [step]
        from nnshell.selectors import select_steps

        graph = self.app.session.require_graph()
        names = [graph.nodes[s].name for s in select_steps(graph, step)]
        keys = [n for n in names if n in tset]
        if not keys:
            raise UsageError(f"tensor set has no layer '{step}'", "tensors -t NAME lists them")
        return keys

    def _pick(self, a: np.ndarray, ch: int | None) -> np.ndarray:
        if ch is None:
            return a
        if a.ndim == 0 or not -a.shape[0] <= ch < a.shape[0]:
            raise UsageError(f"channel {ch} out of range for shape {a.shape}")
        return a[ch]

    @cmd2.with_argparser(tensors_parser)
    def do_tensors(self, args: Any) -> None:
        """List, show or compare stored tensor sets."""
        import numpy as np
        from rich.table import Table

        store = self.app.session.tensors
        if not args.tensors:
            if args.json:
                sets = {k: {"tensors": len(v), "keys": list(v)} for k, v in store.items()}
                self.app.poutput(_dumps({"sets": sets}))
                return
            if not store:
                self.app.poutput("no tensor sets stored (dump FILE -S NAME stores one)")
                return
            table = Table(title="stored tensor sets", header_style="bold")
            for col in ("Name", "Tensors", "Types", "Values"):
                table.add_column(col, justify="left" if col == "Name" else "right")
            for k, v in store.items():
                types = sorted({str(a.dtype) for a in v.values()})
                table.add_row(
                    k, str(len(v)), ",".join(types), f"{sum(a.size for a in v.values()):,}"
                )
            self.app.print_table(table)
            return
        if len(args.tensors) > 2:
            raise UsageError("tensors -t takes one set to show or two to compare")
        for name in args.tensors:
            if name not in store:
                known = ", ".join(store) or "none"
                raise UsageError(f"no tensor set '{name}' (stored: {known})", "dump FILE -S NAME")
        a_set = store[args.tensors[0]]
        keys = self._keys(a_set, args.step)
        if len(args.tensors) == 1:
            self._show(a_set, keys, args)
            return
        b_set = store[args.tensors[1]]
        from nnshell.analysis.qerror import compare_arrays

        rows = []
        for k in keys:
            if k not in b_set:
                continue
            a, b = self._pick(a_set[k], args.channel), self._pick(b_set[k], args.channel)
            if a.shape != b.shape:
                raise UsageError(f"'{k}': shapes differ {a.shape} vs {b.shape}")
            rows.append({"name": k, **compare_arrays(a, b)})
        mixed = {a_set[k].dtype.kind == "f" for k in keys if k in b_set} | {
            b_set[k].dtype.kind == "f" for k in keys if k in b_set
        }
        note = (
            "comparing integer codes with real values: store a dequantized dump (dump -d)"
            if len(mixed) > 1
            else None
        )
        metrics = (
            ["qsnr"]
            if args.qsnr
            else ["cosine"]
            if args.cosine
            else ["max_abs"]
            if args.error
            else ["qsnr", "cosine", "max_abs"]
        )
        if args.json:
            doc = {
                "a": args.tensors[0],
                "b": args.tensors[1],
                "tensors": [{"name": r["name"], **{m: r[m] for m in metrics}} for r in rows],
                "note": note,
            }
            self.app.poutput(_dumps(doc))
            return
        title = f"{args.tensors[0]} vs {args.tensors[1]}"
        if args.channel is not None:
            title += f", channel {args.channel}"
        table = Table(title=title, header_style="bold")
        heads = {"qsnr": "QSNR dB", "cosine": "Cosine", "max_abs": "Max abs error"}
        table.add_column("Tensor")
        for m in metrics:
            table.add_column(heads[m], justify="right")
        fmt = {"qsnr": "{:.2f}", "cosine": "{:.6f}", "max_abs": "{:.4g}"}
        for r in rows:
            table.add_row(r["name"], *[fmt[m].format(r[m]) for m in metrics])
        self.app.print_table(table)
        if note:
            self.app.poutput(f"note: {note}")
        if args.write_numpy:
            diff = {
                r["name"]: np.asarray(self._pick(a_set[r["name"]], args.channel), np.float64)
                - np.asarray(self._pick(b_set[r["name"]], args.channel), np.float64)
                for r in rows
            }
            self._write(args.write_numpy, diff)  # the differences A - B

    def _write(self, path: str, arrays: dict[str, np.ndarray]) -> None:
        import numpy as np

        from nnshell.atomic import atomic_write_npz

        if len(arrays) == 1 and not path.endswith(".npz"):
            np.save(path, next(iter(arrays.values())))
        else:
            atomic_write_npz(path, arrays)
        self.app.poutput(f"tensors: wrote {len(arrays)} array(s) to {path}")

    def _show(self, tset: dict[str, np.ndarray], keys: list[str], args: Any) -> None:
        import numpy as np
        from rich.table import Table

        picked = {k: self._pick(tset[k], args.channel) for k in keys}
        if args.write_numpy:
            self._write(args.write_numpy, picked)
            return
        if args.json:
            doc: dict[str, Any] = {"set": args.tensors[0], "tensors": []}
            for k, a in picked.items():
                a64 = a.astype(np.float64)
                entry = {
                    "name": k,
                    "shape": list(a.shape),
                    "dtype": str(a.dtype),
                    "min": float(a64.min()),
                    "max": float(a64.max()),
                    "mean": float(a64.mean()),
                    "std": float(a64.std()),
                }
                if args.step is not None or args.all_values:
                    entry["values"] = a.tolist()
                doc["tensors"].append(entry)
            self.app.poutput(_dumps(doc))
            return
        if args.step is not None:
            opts = {"threshold": np.inf} if args.all_values else {"threshold": 200}
            for k, a in picked.items():
                self.app.poutput(f"{k} {'x'.join(map(str, a.shape))} {a.dtype}:")
                self.app.poutput(np.array2string(a, max_line_width=100, **opts))
            return
        table = Table(title=f"tensor set {args.tensors[0]}", header_style="bold")
        for col in ("Name", "Shape", "Type", "Min", "Max", "Mean", "Std"):
            table.add_column(col, justify="left" if col in ("Name", "Shape", "Type") else "right")
        for k, a in picked.items():
            a64 = a.astype(np.float64)
            table.add_row(
                k,
                "x".join(map(str, a.shape)),
                str(a.dtype),
                f"{a64.min():.4g}",
                f"{a64.max():.4g}",
                f"{a64.mean():.4g}",
                f"{a64.std():.4g}",
            )
        self.app.print_table(table)
        if args.all_values:
            for k, a in picked.items():
                self.app.poutput(f"{k}:\n" + np.array2string(a, threshold=np.inf))


def _short(path: str) -> str:
    import os

    return os.path.basename(path) if path else "-"
