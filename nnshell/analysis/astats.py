"""``astats``: activation statistics, the range each method would choose, and convergence.

Per quantized tensor (the graph input and every node output): min, max, mean, std, the range each
``--mode`` would choose (minmax, percentile:P, mse, kl — all from the streaming statistics of
:mod:`nnshell.quant.stats`), the outliers beyond the percentile clip (counted on the ``|x|``
histogram, so at its bin resolution), and the calibration image where each extreme occurred.

``--convergence`` answers "how many calibration images are enough": the statistics are updated
image prefix by image prefix in the same single pass (each batch is split at the checkpoints
1, 2, 4, ... N) and the range the chosen mode would pick is recorded at every checkpoint. A
layer is stable from the first checkpoint after which its range stays within ``tolerance``
(5 %) of its final width on both ends; ``stable_at`` is the checkpoint where every layer is.
When the file names carry labels (``..._<label>.png``) the class coverage of the calibration set
is reported too: images per class and the classes never seen.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nnshell.analysis.qerror import float_outputs
from nnshell.input.images import label_from_name
from nnshell.ir import Graph
from nnshell.quant.ranges import RangeMode, choose_range, parse_mode
from nnshell.quant.stats import TensorStats

DEFAULT_MODES = ("minmax", "percentile:99.99", "mse", "kl")
#: A layer's range is "converged" when both ends are within this fraction of the final width.
TOLERANCE = 0.05
#: Bins of the coarse |x| histogram returned for plots.
PLOT_BINS = 32

Progress = Callable[[int, int], None]


@dataclass
class LayerStats:
    """The statistics of one tensor and the ranges the methods choose for it."""

    step: int | None  # None: the graph input
    name: str
    tensor: str
    min: float
    max: float
    mean: float
    std: float
    count: int
    ranges: dict[str, tuple[float, float]]
    chosen: tuple[float, float]
    percentile: float
    percentile_clip: float
    outliers: int
    clipped_by_chosen: int
    argmin_file: str
    argmax_file: str
    hist_edges: list[float] = field(default_factory=list)
    hist_counts: list[int] = field(default_factory=list)

    @property
    def outlier_pct(self) -> float:
        """Outliers as a percentage of every value seen."""
        return 100.0 * self.outliers / self.count if self.count else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures."""
        d = dict(vars(self))
        d["ranges"] = {k: list(v) for k, v in self.ranges.items()}
        d["chosen"] = list(self.chosen)
        d["outlier_pct"] = self.outlier_pct
        return d


@dataclass
class Convergence:
    """How each tensor's chosen range moves as calibration images are added."""

    mode: str
    checkpoints: list[int]
    ranges: dict[str, list[tuple[float, float]]]
    tolerance: float = TOLERANCE
    classes_seen: list[int] = field(default_factory=list)

    def final(self, tensor: str) -> tuple[float, float]:
        """The range on every image."""
        return self.ranges[tensor][-1]

    def pct_of_final(self, tensor: str) -> list[float]:
        """Width of the range at each checkpoint, in % of the final width."""
        lo_f, hi_f = self.final(tensor)
        w = hi_f - lo_f
        return [100.0 * (hi - lo) / w if w > 0 else 100.0 for lo, hi in self.ranges[tensor]]

    def deviation(self, tensor: str) -> list[float]:
        """The larger end's distance to the final range, as a fraction of the final width."""
        lo_f, hi_f = self.final(tensor)
        w = hi_f - lo_f
        if w <= 0:
            return [0.0 for _ in self.ranges[tensor]]
        return [max(abs(lo - lo_f), abs(hi - hi_f)) / w for lo, hi in self.ranges[tensor]]

    def stable_from(self, tensor: str) -> int:
        """The first checkpoint (in images) from which the range stays within the tolerance."""
        dev = self.deviation(tensor)
        j = len(dev)
        while j > 0 and dev[j - 1] <= self.tolerance + 1e-12:
            j -= 1
        return self.checkpoints[min(j, len(dev) - 1)]

    @property
    def stable_at(self) -> int:
        """Images after which every tensor's range is within the tolerance of its final value."""
        return max((self.stable_from(t) for t in self.ranges), default=0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready convergence data."""
        return {
            "mode": self.mode,
            "checkpoints": self.checkpoints,
            "tolerance": self.tolerance,
            "stable_at": self.stable_at,
            "classes_seen": self.classes_seen,
            "layers": {
                t: {
                    "ranges": [list(r) for r in rs],
                    "pct_of_final": self.pct_of_final(t),
                    "deviation": self.deviation(t),
                    "stable_from": self.stable_from(t),
                }
                for t, rs in self.ranges.items()
            },
        }


@dataclass
class Coverage:
    """Class coverage of a calibration set whose file names carry labels."""

    images: int
    labelled: int
    classes: int | None
    counts: dict[int, int]
    missing: list[int]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready coverage."""
        return {
            "images": self.images,
            "labelled": self.labelled,
            "classes": self.classes,
            "counts": {str(k): v for k, v in sorted(self.counts.items())},
            "missing": self.missing,
        }


@dataclass
class AStatsReport:
    """Everything ``astats`` prints."""

    images: int
    mode: str
    layers: list[LayerStats]
    convergence: Convergence | None = None
    coverage: Coverage | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` document."""
        return {
            "images": self.images,
            "mode": self.mode,
            "layers": [r.to_dict() for r in self.layers],
            "convergence": self.convergence.to_dict() if self.convergence else None,
            "coverage": self.coverage.to_dict() if self.coverage else None,
            "notes": self.notes,
        }


# -- pieces -------------------------------------------------------------------------------------
def tensor_names(graph: Graph) -> list[tuple[int | None, str, str]]:
    """(step, layer name, tensor) of the graph input(s) and every node's first output."""
    out: list[tuple[int | None, str, str]] = [(None, "graph input", i) for i in graph.inputs]
    out += [(s, n.name, n.outputs[0]) for s, n in enumerate(graph.nodes)]
    return out


def percentile_outliers(st: TensorStats, p: float) -> tuple[float, int]:
    """The percentile clip of ``|x|`` and how many values lie beyond it (bin resolution)."""
    if st.hist_range == 0.0 or st.count == 0:
        return 0.0, 0
    cum = np.cumsum(st.hist)
    k = int(np.searchsorted(cum, cum[-1] * p / 100.0))
    clip = (k + 1) * st.hist_range / st.hist.size
    return float(clip), int(cum[-1] - cum[min(k, cum.size - 1)])


def beyond(st: TensorStats, c: float) -> int:
    """Values whose ``|x|`` bin lies wholly beyond ``c`` (what a clip at ``c`` saturates)."""
    if st.hist_range == 0.0 or c <= 0:
        return 0
    width = st.hist_range / st.hist.size
    first = int(np.ceil(c / width - 1e-9))
    return int(st.hist[first:].sum())


def coarse_hist(st: TensorStats, bins: int = PLOT_BINS) -> tuple[list[float], list[int]]:
    """``bins`` counts of ``|x|`` over ``[0, max|x|]`` (for the terminal and PNG plots)."""
    peak = max(abs(st.min), abs(st.max)) if st.count else 0.0
    if st.hist_range == 0.0 or peak == 0.0:
        return [0.0, 1.0], [int(st.count)]
    n = st.hist.size
    used = max(bins, min(n, int(np.ceil(peak / st.hist_range * n))))
    group = int(np.ceil(used / bins))
    h = st.hist[: group * bins] if group * bins <= n else np.pad(st.hist, (0, group * bins - n))
    counts = h.reshape(bins, group).sum(axis=1)
    width = st.hist_range / n * group
    return [float(i * width) for i in range(bins + 1)], [int(v) for v in counts]


def class_coverage(files: list[str], classes: int | None) -> Coverage | None:
    """Images per class from the file names; None when no file name carries a label."""
    labels = [label_from_name(f) for f in files]
    known = [lab for lab in labels if lab is not None]
    if not known:
        return None
    counts = Counter(known)
    missing = [c for c in range(classes) if counts.get(c, 0) == 0] if classes else []
    return Coverage(len(files), len(known), classes, dict(counts), missing)


def output_classes(graph: Graph) -> int | None:
    """The number of classes of a classifier (the size of its single output), else None."""
    if len(graph.outputs) != 1:
        return None
    dims = graph.tensors[graph.outputs[0]].dims
    size = int(np.prod(dims)) if dims else 0
    return size if 1 < size <= 100_000 else None


def checkpoints_for(total: int) -> list[int]:
    """1, 2, 4, ... below ``total``, then ``total``."""
    out, k = [], 1
    while k < total:
        out.append(k)
        k *= 2
    return out + [total] if total else []


def collect(
    graph: Graph,
    batches: Iterable[tuple[list[str], np.ndarray]],
    total: int,
    mode: RangeMode | None = None,
    progress: Progress | None = None,
    fast: Any = None,
) -> tuple[dict[str, TensorStats], list[str], Convergence | None]:
    """One pass: statistics of every tensor, and (with ``mode``) the range at each checkpoint."""
    names = [t for _, _, t in tensor_names(graph)]
    stats = {t: TensorStats() for t in names}
    files: list[str] = []
    cps = checkpoints_for(total) if mode is not None else []
    cp_set = set(cps)
    snaps: dict[str, list[tuple[float, float]]] = {t: [] for t in names}
    taken: list[int] = []
    for chunk, batch in batches:
        values = float_outputs(graph, batch, fast)
        done0, n = len(files), len(chunk)
        files.extend(chunk)
        cuts = [cp - done0 for cp in cps if done0 < cp < done0 + n] + [n]
        prev = 0
        for cut in cuts:
            for t in names:
                stats[t].update(values[t][prev:cut], done0 + prev)
            if done0 + cut in cp_set and mode is not None:
                taken.append(done0 + cut)
                for t in names:
                    snaps[t].append(choose_range(stats[t], mode))
            prev = cut
        if progress is not None:
            progress(len(files), total)
    conv = None
    if mode is not None and taken:
        labels = [label_from_name(f) for f in files]
        seen = [len({lab for lab in labels[:cp] if lab is not None}) for cp in taken]
        conv = Convergence(str(mode), taken, snaps, TOLERANCE, seen)
    return stats, files, conv


def layer_stats(
    graph: Graph,
    stats: dict[str, TensorStats],
    files: list[str],
    modes: list[RangeMode],
    chosen: RangeMode,
) -> list[LayerStats]:
    """The per-tensor rows of the report."""
    p = chosen.percentile if chosen.name == "percentile" else 99.99
    rows = []
    for step, name, t in tensor_names(graph):
        st = stats.get(t)
        if st is None or st.count == 0:
            continue
        ranges = {str(m): choose_range(st, m) for m in modes}
        lo, hi = choose_range(st, chosen)
        clip, outliers = percentile_outliers(st, p)
        edges, counts = coarse_hist(st)

        def file_at(i: int) -> str:
            return files[i] if 0 <= i < len(files) else ""

        rows.append(
            LayerStats(
                step=step,
                name=name,
                tensor=t,
                min=st.min,
                max=st.max,
                mean=st.mean,
                std=st.std,
                count=st.count,
                ranges=ranges,
                chosen=(lo, hi),
                percentile=p,
                percentile_clip=clip,
                outliers=outliers,
                clipped_by_chosen=beyond(st, max(-lo, hi)),
                argmin_file=file_at(st.argmin),
                argmax_file=file_at(st.argmax),
                hist_edges=edges,
                hist_counts=counts,
            )
        )
    return rows


def astats(
    graph: Graph,
    batches: Iterable[tuple[list[str], np.ndarray]] | None,
    total: int,
    mode: str = "minmax",
    modes: Iterable[str] = DEFAULT_MODES,
    convergence: bool = False,
    progress: Progress | None = None,
    fast: Any = None,
    stats: dict[str, TensorStats] | None = None,
    files: list[str] | None = None,
) -> AStatsReport:
    """Statistics over ``batches`` (or the given ``stats`` of ``files``), ranges and convergence."""
    chosen = parse_mode(mode)
    parsed = [parse_mode(m) for m in modes]
    if str(chosen) not in {str(m) for m in parsed}:
        parsed.append(chosen)
    conv = None
    if batches is not None:
        stats, files, conv = collect(
            graph, batches, total, chosen if convergence else None, progress, fast
        )
    assert stats is not None
    files = files or []
    rows = layer_stats(graph, stats, files, parsed, chosen)
    notes = [
        f"outliers: values whose |x| lies beyond the percentile:{rows[0].percentile:g} clip "
        "(histogram resolution)"
        if rows
        else "no statistics",
        "argmin/argmax: the calibration image where the extreme value occurred",
    ]
    if conv is not None:
        notes.append(
            f"convergence: range of mode {conv.mode} at 1, 2, 4, ... {conv.checkpoints[-1]} "
            f"images; every layer within {conv.tolerance:.0%} of its final range from "
            f"{conv.stable_at} images on"
        )
    cov = class_coverage(files, output_classes(graph))
    return AStatsReport(len(files), str(chosen), rows, conv, cov, notes)


__all__ = [
    "DEFAULT_MODES",
    "TOLERANCE",
    "AStatsReport",
    "Convergence",
    "Coverage",
    "LayerStats",
    "astats",
    "beyond",
    "checkpoints_for",
    "class_coverage",
    "coarse_hist",
    "collect",
    "layer_stats",
    "output_classes",
    "percentile_outliers",
    "tensor_names",
]
