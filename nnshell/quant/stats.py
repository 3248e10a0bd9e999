"""Streaming activation statistics: one pass over the calibration images, constant memory.

For every tensor the fused graph quantizes, a :class:`TensorStats` keeps the running min, max,
sum, sum of squares and a histogram of ``|x|`` with a fixed number of bins over ``[0, R]``.
When a batch exceeds ``R``, ``R`` doubles and pairs of bins merge, so the histogram never needs
the data again and its memory does not grow with the number of images. Every range-selection
method (minmax, percentile, mse, kl) works from these numbers, so changing method re-quantizes
without reading an image again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nnshell.exec import run_float
from nnshell.ir import Graph, Node

HIST_BINS = 2048


@dataclass
class TensorStats:
    """Running statistics of one tensor over every calibration image seen so far."""

    min: float = float("inf")
    max: float = float("-inf")
    count: int = 0
    #: running mean and sum of squared deviations (Chan's parallel update: no cancellation)
    mean_: float = 0.0
    m2: float = 0.0
    hist_range: float = 0.0
    hist: np.ndarray = field(default_factory=lambda: np.zeros(HIST_BINS, np.int64))
    #: (file index, value) of the most extreme values, to say which image set each extreme.
    argmin: int = -1
    argmax: int = -1

    def update(self, batch: np.ndarray, first_index: int = 0) -> None:
        """Fold one batch (leading batch axis) into the statistics."""
        flat = batch.reshape(batch.shape[0], -1)
        if flat.dtype != np.float32:  # float32 is widened exactly where float64 is needed
            flat = flat.astype(np.float64, copy=False)
        mins, maxs = flat.min(axis=1), flat.max(axis=1)
        i_lo, i_hi = int(mins.argmin()), int(maxs.argmax())
        lo, hi = float(mins[i_lo]), float(maxs[i_hi])
        if lo < self.min:
            self.min, self.argmin = lo, first_index + i_lo
        if hi > self.max:
            self.max, self.argmax = hi, first_index + i_hi
        n_b = flat.size
        dev = flat.astype(np.float64)  # a fresh float64 copy: centred and squared in place
        mean_b = float(dev.mean())
        np.subtract(dev, mean_b, out=dev)
        m2_b = float(np.square(dev, out=dev).sum())
        del dev
        n = self.count + n_b
        delta = mean_b - self.mean_
        self.mean_ += delta * n_b / n
        self.m2 += m2_b + delta * delta * self.count * n_b / n
        self.count = n
        peak = max(abs(self.min), abs(self.max))
        if peak > self.hist_range:
            self._grow(peak)
        if self.hist_range > 0:
            self.hist += _bin_counts(flat, HIST_BINS / self.hist_range)
        else:
            self.hist[0] += flat.size  # all zeros so far: they stay in bin 0 when R grows

    def _grow(self, peak: float) -> None:
        """Double the histogram range (merging bin pairs) until ``peak`` fits."""
        if self.hist_range == 0.0:
            # floor at 2^-100: denormal peaks would overflow the bin arithmetic
            self.hist_range = float(2.0 ** np.ceil(np.log2(max(peak, 2.0**-100))))
            return
        while self.hist_range < peak:
            merged = self.hist.reshape(-1, 2).sum(axis=1)
            self.hist = np.concatenate([merged, np.zeros(HIST_BINS // 2, np.int64)])
            self.hist_range *= 2.0

    @property
    def mean(self) -> float:
        """Mean over every element seen."""
        return self.mean_

    @property
    def std(self) -> float:
        """Standard deviation over every element seen."""
        return float(np.sqrt(self.m2 / self.count)) if self.count else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready scalars (the histogram travels separately as an array)."""
        return {
            "min": self.min,
            "max": self.max,
            "count": self.count,
            "mean": self.mean_,
            "m2": self.m2,
            "hist_range": self.hist_range,
            "argmin": self.argmin,
            "argmax": self.argmax,
        }


def _bin_counts(flat: np.ndarray, scale: float) -> np.ndarray:
    """Counts of ``floor(|x| * scale)`` clipped to the last bin (``|x| * scale <= HIST_BINS``).

    ``scale`` is a power of two, so for float32 data the product is exact in float32 (or below
    1 where it is not) and the bin of every value is the one float64 arithmetic gives.
    """
    mag = np.abs(flat)  # a fresh array: scaled in place
    if mag.dtype == np.float32 and 2.0**-100 <= scale == float(np.float32(scale)):
        mag *= np.float32(scale)
    else:
        mag = mag.astype(np.float64, copy=False)
        mag *= scale
    counts = np.bincount(mag.astype(np.intp).reshape(-1), minlength=HIST_BINS + 1)
    out = counts[:HIST_BINS].copy()
    out[-1] += counts[HIST_BINS:].sum()  # |x| == R lands in the last bin, as does nothing else
    return out


#: Statistics of a layer's accumulator are kept under ``ACC_PREFIX + node name`` (see
#: :func:`acc_key`), next to the tensors' own; only their min and max are used.
ACC_PREFIX = "acc::"


def acc_key(node_name: str) -> str:
    """The statistics key of the accumulator of layer ``node_name``."""
    return ACC_PREFIX + node_name


def _acc_layers(graph: Graph) -> list[tuple[Node, Node]]:
    """``(layer, head)`` of every layer whose accumulator can leave the range of its output: a
    fusion headed by a conv / linear with a tail (the activation and pool run on the accumulator
    after it), and every linear layer (NNTool's linear kernel also counts the sum of products
    before the bias). A lone conv's accumulator is its output: nothing to record."""
    from nnshell.ops import get_op

    out = []
    for node in graph.nodes:
        op = get_op(node.op)
        head = op.head(node)
        head_op = get_op(head.op)
        if head_op.weighted and (op.tail_parts(node) or head_op.kind == "linear"):
            out.append((node, head))
    return out


def _acc_update(
    graph: Graph,
    layers: list[tuple[Node, Node]],
    value_of: Callable[[str], np.ndarray | None],
    stats: dict[str, TensorStats],
    first: int,
    head_of: Callable[[str], np.ndarray | None] | None = None,
) -> None:
    """Fold one batch's accumulator values of ``layers`` into ``stats`` (:func:`acc_key`).

    The accumulator is the head's float output (bias included), before any fused activation or
    pool. For a linear layer, the sum of products without the bias, where negative, joins it:
    NNTool sizes a linear accumulator from ``min(Σ w·x, 0)`` per output too (its float linear
    kernel records it), and POW2 parity needs the same integer bits.
    """
    from nnshell.ops import get_op

    for node, head in layers:
        linear = get_op(head.op).kind == "linear"  # its bias-free sum is computed here
        known = head_of(node.name) if head_of is not None and not linear else None
        if known is not None:  # the runner returned the accumulator: no recomputation
            stats.setdefault(acc_key(node.name), TensorStats()).update(known, first)
            continue
        args: list[np.ndarray | None] = []
        for i in node.inputs:
            t = graph.tensors[i] if i else None
            args.append(None if t is None else t.const if t.is_const else value_of(i))
        if args and args[0] is None:
            continue
        op = get_op(head.op)
        st = stats.setdefault(acc_key(node.name), TensorStats())
        st.update(np.asarray(op.run_float(head, *args)[0]), first)
        if op.kind == "linear" and len(args) > 2 and args[2] is not None:
            dot = np.asarray(op.run_float(head, *args[:2])[0])
            st.update(np.minimum(dot, 0), first)


#: ``progress(done, total)`` is called after each batch (the shell draws a progress bar).
Progress = Callable[[int, int], None]


def collect_stats(
    graph: Graph,
    batches: Iterable[tuple[list[str], np.ndarray]],
    total: int,
    progress: Progress | None = None,
    fast: Any = None,
) -> tuple[dict[str, TensorStats], list[str]]:
    """Run the float graph over every batch and gather statistics of every activation tensor.

    Returns the statistics (keyed by tensor name) and the file names in the order seen, so an
    extreme can be traced back to its image. Nothing is kept between batches but the stats.
    ``fast`` is an optional validated onnxruntime runner returning every node output; without
    it the numpy executor runs with an observer.
    """
    from nnshell.input.multi_input import feeds_of
    from nnshell.ops.expression import expand_graph, has_expressions

    if has_expressions(graph):  # inner tensors are calibrated too (ops/expression.py)
        graph, fast = expand_graph(graph), None
    if fast is not None:
        return _collect_fast(graph, batches, total, progress, fast)
    stats: dict[str, TensorStats] = {}
    files: list[str] = []
    layers = _acc_layers(graph)
    wanted = {n.inputs[0] for n, _ in layers if n.inputs}
    for names, batch in batches:
        first = len(files)
        files.extend(names)
        kept: dict[str, np.ndarray] = {}

        def observe(
            name: str, value: np.ndarray, first: int = first, kept: dict[str, np.ndarray] = kept
        ) -> None:
            stats.setdefault(name, TensorStats()).update(value, first)
            if name in wanted:
                kept[name] = value

        run_float(graph, feeds_of(graph, batch), observer=observe)
        _acc_update(graph, layers, kept.get, stats, first)
        if progress is not None:
            progress(len(files), total)
    return stats, files


def _collect_fast(
    graph: Graph,
    batches: Iterable[tuple[list[str], np.ndarray]],
    total: int,
    progress: Progress | None,
    fast: Any,
) -> tuple[dict[str, TensorStats], list[str]]:
    """:func:`collect_stats` with the onnxruntime runner. The runner works on batch k in a
    worker thread (onnxruntime releases the GIL) while this thread folds batch k's input into
    its statistics and reads batch k+1; then batch k's outputs are folded in. Every tensor's
    statistics take the batches in file order, as in a serial loop: the same numbers. At most
    two batches are in memory."""
    from concurrent.futures import ThreadPoolExecutor

    from nnshell.exporters.onnx_export import head_output

    stats: dict[str, TensorStats] = {}
    files: list[str] = []
    name_in = graph.inputs[0]
    outputs = [o for node in graph.nodes for o in node.outputs]
    layers = _acc_layers(graph)
    it = iter(batches)
    item = next(it, None)
    with ThreadPoolExecutor(1, thread_name_prefix="nnshell-ort") as worker:
        while item is not None:
            names, batch = item
            first = len(files)
            files.extend(names)
            running = worker.submit(fast.run, {name_in: batch})
            stats.setdefault(name_in, TensorStats()).update(batch, first)
            item = next(it, None)  # an error here waits for the worker (leaving the with)
            values = running.result()
            for o in outputs:
                if o in values:
                    stats.setdefault(o, TensorStats()).update(values[o], first)
            values.setdefault(name_in, batch)
            heads = {n.name: values.get(head_output(n.name)) for n, _ in layers}
            _acc_update(graph, layers, values.get, stats, first, heads.get)
            if progress is not None:
                progress(len(files), total)
    return stats, files
