"""Top-1 accuracy on a labelled folder: float, quantized, the drop and the flipped images."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nnshell import safeio
from nnshell.analysis.paired import PairedComparison, compare_predictions
from nnshell.errors import ImageError
from nnshell.exec import run_float
from nnshell.input.images import InputOptions, iter_batches, label_from_name
from nnshell.ir import Graph

Progress = Callable[[int, int], None]


@dataclass
class ValidationResult:
    """Accuracy figures of one ``validate`` run."""

    files: list[str]
    labels: np.ndarray
    float_pred: np.ndarray
    quant_pred: np.ndarray | None = None
    classes: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def float_acc(self) -> float:
        """Top-1 accuracy of the float graph."""
        return float((self.float_pred == self.labels).mean())

    @property
    def quant_acc(self) -> float | None:
        """Top-1 accuracy of the integer graph (None when not quantized)."""
        if self.quant_pred is None:
            return None
        return float((self.quant_pred == self.labels).mean())

    def flips(self) -> list[tuple[str, int, int, int]]:
        """(file, label, float prediction, quantized prediction) where the two disagree."""
        if self.quant_pred is None:
            return []
        idx = np.nonzero(self.float_pred != self.quant_pred)[0]
        return [
            (self.files[i], int(self.labels[i]), int(self.float_pred[i]), int(self.quant_pred[i]))
            for i in idx
        ]

    def paired(self, confidence: float = 0.95) -> PairedComparison | None:
        """Float against quantized on the same images: the paired test of the drop.

        ``broken``: right in float, wrong quantized; ``fixed``: the reverse. None when not
        quantized.
        """
        if self.quant_pred is None or not len(self.files):
            return None
        return compare_predictions(self.labels, self.float_pred, self.quant_pred, confidence)

    def confusion(self, quantized: bool) -> np.ndarray:
        """Confusion matrix (rows: label, columns: prediction)."""
        pred = self.quant_pred if quantized and self.quant_pred is not None else self.float_pred
        k = max(self.classes, int(self.labels.max()) + 1, int(pred.max()) + 1)
        m = np.zeros((k, k), np.int64)
        np.add.at(m, (self.labels, pred), 1)
        return m


def read_labels(files: Sequence[str], labels_csv: str | None) -> np.ndarray:
    """Labels from the file names (last ``_`` field) or from a ``file,label`` CSV."""
    import os

    table: dict[str, int] = {}
    if labels_csv:
        # bounded and regular files only: a FIFO or /dev/zero as --labels is one error line
        text = safeio.read_text(labels_csv, "labels file", safeio.TEXT, ImageError)
        for line in text.splitlines():
            parts = [p.strip() for p in line.strip().split(",")]
            if len(parts) >= 2 and parts[1].lstrip("-").isdigit():
                table[os.path.basename(parts[0])] = int(parts[1])
    out = []
    for f in files:
        lab = table.get(os.path.basename(f)) if labels_csv else label_from_name(f)
        if lab is None:
            raise ImageError(
                f"no label for '{f}'",
                "name files <anything>_<label>.png or pass --labels FILE.csv",
            )
        out.append(lab)
    return np.array(out, np.int64)


def validate(
    graph: Graph,
    files: Sequence[str],
    opts: InputOptions,
    qstate: Any = None,
    labels_csv: str | None = None,
    progress: Progress | None = None,
    batch_size: int = 64,
    fast: Callable[[np.ndarray], Any] | None = None,
    cache: Any = None,
) -> ValidationResult:
    """Classify every file with the float graph and, when quantized, the integer graph."""
    from nnshell.exec.int_exec import run_int

    labels = read_labels(files, labels_csv)
    expected = graph.tensors[graph.inputs[0]].dims
    fpred, qpred = [], []
    done = 0
    out = graph.outputs[0]
    runner = None
    for names, batch in iter_batches(files, opts, expected, batch_size, cache=cache):
        if fast is not None and runner is None and done == 0:
            runner = fast(batch[:2])  # validated against numpy; None means numpy
        feeds = {graph.inputs[0]: batch}
        values = runner.run(feeds) if runner is not None else run_float(graph, feeds)
        fpred.append(values[out].reshape(len(names), -1))
        if qstate is not None:
            q = run_int(graph, qstate, {graph.inputs[0]: batch})[out]
            qpred.append(q.reshape(len(names), -1))
        done += len(names)
        if progress is not None:
            progress(done, len(files))
    f = np.concatenate(fpred)
    res = ValidationResult(list(files), labels, f.argmax(1), classes=f.shape[1])
    if qpred:
        res.quant_pred = np.concatenate(qpred).argmax(1)
    return res
