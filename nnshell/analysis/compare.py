"""``aquant --compare``: which range method quantizes this network best, in one table.

The calibration images are read once: one streaming pass gathers the statistics (every method
works from them, :mod:`nnshell.quant.ranges`) while a bounded sample of the decoded batches is
kept in memory (:data:`SAMPLE_BYTES`). For each method the graph is quantized from the same
statistics and the per-layer QSNR (cumulative, :mod:`nnshell.analysis.qerror`) is measured on that
sample. With a labelled folder, each validation batch is read once too: the float graph runs once
and every method's integer graph runs on the same decoded batch, giving top-1 per method.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nnshell.analysis.evaluate import read_labels
from nnshell.analysis.qerror import qerror
from nnshell.exec.int_exec import run_int
from nnshell.ir import Graph
from nnshell.quant.ranges import parse_mode
from nnshell.quant.sq8 import QuantOptions, quantize_graph
from nnshell.quant.stats import TensorStats, collect_stats

DEFAULT_COMPARE = ("minmax", "percentile:99.99", "mse", "kl")
#: At most this many bytes of decoded calibration batches are kept for the QSNR evaluation.
SAMPLE_BYTES = 64 << 20

Progress = Callable[[int, int], None]
Batches = Iterable[tuple[list[str], np.ndarray]]


@dataclass
class CompareReport:
    """Per-layer QSNR of every method, and top-1 per method on a labelled folder."""

    modes: list[str]
    options: str
    calib_images: int
    sample_images: int
    layers: list[str]
    qsnr: dict[str, list[float]]
    saturated: dict[str, list[float]]
    float_acc: float | None = None
    quant_acc: dict[str, float] | None = None
    validate_images: int = 0
    notes: list[str] = field(default_factory=list)

    def output_qsnr(self, mode: str) -> float:
        """QSNR of the last layer (the graph output) for ``mode``."""
        return self.qsnr[mode][-1]

    def ranking(self) -> list[str]:
        """Methods best first: top-1 when measured, then the output QSNR, then mean QSNR."""

        def key(m: str) -> tuple[float, float, float]:
            acc = self.quant_acc[m] if self.quant_acc else 0.0
            return (-acc, -self.output_qsnr(m), -float(np.mean(self.qsnr[m])))

        return sorted(self.modes, key=key)

    @property
    def best(self) -> str:
        """The best method (see :meth:`ranking`)."""
        return self.ranking()[0]

    def verdict(self) -> str:
        """The best method by output QSNR and by top-1, and by how much (one or two lines)."""

        def vs(best: str, others: list[str], fn: Any, unit: str) -> str:
            return ", ".join(f"{fn(best) - fn(m):+.2f}{unit} vs {m}" for m in others)

        by_q = sorted(self.modes, key=lambda m: -self.output_qsnr(m))
        best_q = by_q[0]
        text = (
            f"highest output QSNR: {best_q} {self.output_qsnr(best_q):.2f} dB "
            f"({vs(best_q, by_q[1:], self.output_qsnr, ' dB')})"
        )
        if self.quant_acc:
            qa = self.quant_acc
            by_a = sorted(self.modes, key=lambda m: (-qa[m], -self.output_qsnr(m)))
            best_a = by_a[0]
            n = self.validate_images
            diffs = ", ".join(
                f"{100 * (qa[best_a] - qa[m]):+.2f} points ({round((qa[best_a] - qa[m]) * n):d} "
                f"img) vs {m}"
                for m in by_a[1:]
            )
            text += f"\nbest top-1: {best_a} {qa[best_a]:.2%} ({diffs})"
            if self.float_acc is not None:
                text += f"; float {self.float_acc:.2%}"
        return text

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` document."""
        return {
            "modes": self.modes,
            "options": self.options,
            "calib_images": self.calib_images,
            "sample_images": self.sample_images,
            "layers": [
                {
                    "name": name,
                    "qsnr": {m: self.qsnr[m][i] for m in self.modes},
                    "saturated_pct": {m: self.saturated[m][i] for m in self.modes},
                }
                for i, name in enumerate(self.layers)
            ],
            "float_top1": self.float_acc,
            "quant_top1": self.quant_acc,
            "validate_images": self.validate_images,
            "ranking": self.ranking(),
            "best": self.best,
            "verdict": self.verdict(),
            "notes": self.notes,
        }


class _Sampler:
    """Pass batches through while keeping the first ones up to a byte budget."""

    def __init__(self, batches: Batches, budget: int) -> None:
        self.batches = batches
        self.budget = budget
        self.kept: list[tuple[list[str], np.ndarray]] = []
        self.used = 0

    def __iter__(self) -> Iterator[tuple[list[str], np.ndarray]]:
        for names, batch in self.batches:
            if self.used + batch.nbytes <= self.budget or not self.kept:
                self.kept.append((names, batch))
                self.used += batch.nbytes
            yield names, batch

    @property
    def images(self) -> int:
        return sum(len(n) for n, _ in self.kept)


def compare_modes(
    graph: Graph,
    modes: list[str],
    calib: Batches | None,
    calib_total: int,
    symmetric: bool = False,
    per_tensor: bool = False,
    validate: Batches | None = None,
    validate_total: int = 0,
    progress: Progress | None = None,
    fast: Any = None,
    stats: dict[str, TensorStats] | None = None,
    sample: list[tuple[list[str], np.ndarray]] | None = None,
    sample_bytes: int = SAMPLE_BYTES,
    nntool_padding: bool = False,
) -> tuple[CompareReport, dict[str, TensorStats], list[str]]:
    """Compare range methods; return the report and the statistics (with their files).

    Either ``calib`` (streamed once: statistics plus a kept sample) or ``stats`` with a
    ``sample`` of batches already decoded. ``progress(done, total)`` counts calibration then
    validation images.
    """
    parsed = [parse_mode(m) for m in modes]
    names = [str(m) for m in parsed]
    if len(set(names)) != len(names):
        raise ValueError("a method is listed twice")
    grand = calib_total + validate_total
    files: list[str] = []
    if calib is not None:
        sampler = _Sampler(calib, sample_bytes)

        def calib_progress(done: int, total: int) -> None:
            if progress is not None:
                progress(done, grand)

        stats, files = collect_stats(graph, sampler, calib_total, calib_progress, fast)
        sample = sampler.kept
    assert stats is not None and sample is not None
    n_sample = sum(len(n) for n, _ in sample)
    from nnshell.input.formatter import fixed_qtypes

    fixed = fixed_qtypes(graph)  # an input formatter fixes the input codes
    how = {"nntool_padding": nntool_padding}
    qstates = {
        name: quantize_graph(graph, stats, QuantOptions(m, symmetric, per_tensor, **how), fixed)
        for name, m in zip(names, parsed, strict=True)
    }
    qsnr: dict[str, list[float]] = {}
    sat: dict[str, list[float]] = {}
    rows: list[str] = []  # one per node output (an expression has several)
    for name, qs in qstates.items():
        rep = qerror(graph, qs, sample, n_sample, fast=fast)
        rows = [r.name for r in rep.layers]
        qsnr[name] = [r.qsnr for r in rep.layers]
        sat[name] = [r.saturated_pct for r in rep.layers]
    opts = QuantOptions(parsed[0], symmetric, per_tensor, **how).describe().split(" ", 2)[-1]
    report = CompareReport(
        names,
        opts,
        len(files) if calib is not None else calib_total,
        n_sample,
        rows,
        qsnr,
        sat,
    )
    report.notes.append(
        f"QSNR: cumulative (integer network end to end), mean over {n_sample} calibration "
        "image(s) read once; every method quantized from the same statistics"
    )
    if validate is not None:
        out = graph.outputs[0]
        correct = dict.fromkeys(names, 0)
        fcorrect, seen = 0, 0
        for vnames, batch in validate:
            labels = read_labels(vnames, None)
            feeds = {graph.inputs[0]: batch}
            if fast is not None:
                fout = fast.run(feeds)[out]
            else:
                from nnshell.exec import run_float

                fout = run_float(graph, feeds)[out]
            fcorrect += int((fout.reshape(len(vnames), -1).argmax(1) == labels).sum())
            for name, qs in qstates.items():
                q = run_int(graph, qs, feeds)[out].reshape(len(vnames), -1)
                correct[name] += int((q.argmax(1) == labels).sum())
            seen += len(vnames)
            if progress is not None:
                progress(calib_total + seen, grand)
        if seen:
            report.float_acc = fcorrect / seen
            report.quant_acc = {m: correct[m] / seen for m in names}
            report.validate_images = seen
            report.notes.append(f"top-1 on {seen} labelled image(s), each read once")
    return report, stats, files


__all__ = ["DEFAULT_COMPARE", "SAMPLE_BYTES", "CompareReport", "compare_modes"]
