"""``qerror``: how far each layer's quantized output is from the float reference.

For every node output, over every image, the dequantized integer output ``q`` is compared with the
float output ``ref`` of the same (fused) graph:

- QSNR in dB, ``10·log10(Σ ref² / Σ (ref − q)²)``, per image and averaged over the images (in dB;
  the worst image is named). An exact match counts as :data:`QSNR_CAP_DB`, so an all-zero ReLU
  output reproduced exactly does not make the mean infinite. ``qsnr_pooled`` is the same ratio
  with the sums taken over all images at once;
- cosine similarity of ``ref`` and ``q`` per image, averaged (two all-zero vectors count as 1);
- the largest absolute error over all images;
- the percentage of integer outputs saturated at the ends of the int8 range (codes −128 and 127).
  For an asymmetric output whose zero point is −128 (a ReLU output ``[0, hi]``) the code −128 is
  the real value 0 — the floor of the ReLU, not a clipped value — so only 127 counts there.

Two ways to feed the layers:

- cumulative (default): the integer network runs end to end, so a layer's error includes every
  error made before it — what the MCU computes;
- isolated (``-s``): each layer gets the float outputs of its predecessors, quantized with the
  predecessors' output qtypes, so its error is the one it adds itself (input rounding included).

Layers are ranked by harm: ``harm_db`` is the QSNR of the layer's (quantized) inputs minus the QSNR
of its output, the dB lost inside the layer; a deliberately bad output range (saturation) shows up
as a large loss at that layer and a small one after it. Images are processed batch by batch, so
memory does not depend on the number of images.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from nnshell.exec import run_float
from nnshell.exec.int_exec import run_int, run_node_int
from nnshell.ir import Graph

if TYPE_CHECKING:
    from nnshell.quant.sq8 import QuantState

#: The QSNR given to an exact match (and the floor's mirror for a zero reference).
QSNR_CAP_DB = 100.0

Progress = Callable[[int, int], None]


# -- metrics ------------------------------------------------------------------------------------
def _flat64(a: np.ndarray, n: int) -> np.ndarray:
    return np.asarray(a, dtype=np.float64).reshape(n, -1)


def qsnr_from_sums(signal: Any, noise: Any) -> Any:
    """``10·log10(signal/noise)`` clipped to ±:data:`QSNR_CAP_DB` (exact match: the cap)."""
    s = np.asarray(signal, np.float64)
    e = np.asarray(noise, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        db = 10.0 * np.log10(s / e)
    db = np.where(e == 0, QSNR_CAP_DB, db)
    db = np.where((s == 0) & (e > 0), -QSNR_CAP_DB, db)
    return np.clip(db, -QSNR_CAP_DB, QSNR_CAP_DB)


def qsnr_db(ref: np.ndarray, q: np.ndarray) -> float:
    """QSNR in dB of ``q`` against ``ref`` over the whole arrays."""
    r = np.asarray(ref, np.float64).reshape(-1)
    d = r - np.asarray(q, np.float64).reshape(-1)
    return float(qsnr_from_sums(np.dot(r, r), np.dot(d, d)))


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of ``a`` with the same row of ``b`` (2-D arrays)."""
    return _cosine(np.einsum("ij,ij->i", a, a), a, b)


def _cosine(aa: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """:func:`cosine_rows` given each row's ``Σ a²`` (qerror has it already: the signal)."""
    na = np.sqrt(aa)
    nb = np.sqrt(np.einsum("ij,ij->i", b, b))
    dot = np.einsum("ij,ij->i", a, b)
    with np.errstate(divide="ignore", invalid="ignore"):
        cos = dot / (na * nb)
    cos = np.where((na == 0) & (nb == 0), 1.0, cos)
    return np.where((na == 0) ^ (nb == 0), 0.0, cos)


def compare_arrays(ref: np.ndarray, other: np.ndarray) -> dict[str, float]:
    """QSNR (dB), cosine similarity and max absolute error of ``other`` against ``ref``."""
    r = np.asarray(ref, np.float64).reshape(1, -1)
    o = np.asarray(other, np.float64).reshape(1, -1)
    if r.shape != o.shape:
        raise ValueError(f"shapes differ: {np.shape(ref)} vs {np.shape(other)}")
    return {
        "qsnr": qsnr_db(r, o),
        "cosine": float(cosine_rows(r, o)[0]),
        "max_abs": float(np.max(np.abs(r - o), initial=0.0)),
    }


def saturated_count(codes: np.ndarray, qtype: Any) -> int:
    """Integer outputs at the ends of the range; the low end only when it is not the real 0."""
    if getattr(qtype, "is_float", False):  # a float layer: only infinities saturate
        return int(np.count_nonzero(np.isinf(qtype.dequantize(codes))))
    n = int(np.count_nonzero(codes == qtype.qmax))
    if qtype.zero_point != qtype.qmin:
        n += int(np.count_nonzero(codes == qtype.qmin))
    return n


# -- results ------------------------------------------------------------------------------------
@dataclass
class LayerError:
    """The error figures of one layer's output over every image."""

    step: int
    name: str
    op: str
    tensor: str
    qsnr: float
    qsnr_pooled: float
    cosine: float
    max_abs: float
    saturated_pct: float
    worst_file: str
    worst_qsnr: float
    input_qsnr: float
    harm_db: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures (stable keys)."""
        return dict(vars(self))


@dataclass
class QErrorReport:
    """Every layer's error, in execution order; :meth:`ranked` orders them by harm."""

    mode: str  # "cumulative" or "isolated"
    images: int
    layers: list[LayerError]
    input_qsnr: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def ranked(self) -> list[LayerError]:
        """Most harmful first: the most dB lost inside the layer, then the lowest QSNR."""
        return sorted(self.layers, key=lambda r: (-r.harm_db, r.qsnr, r.step))

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` document."""
        return {
            "mode": self.mode,
            "images": self.images,
            "qsnr_cap_db": QSNR_CAP_DB,
            "graph_input_qsnr": self.input_qsnr,
            "layers": [r.to_dict() for r in self.layers],
            "ranking": [r.name for r in self.ranked()],
            "notes": self.notes,
        }


class _TensorAcc:
    """Streaming sums of one tensor's error figures (constant memory)."""

    def __init__(self) -> None:
        self.images = 0
        self.qsnr_sum = 0.0
        self.cos_sum = 0.0
        self.signal = 0.0
        self.noise = 0.0
        self.max_abs = 0.0
        self.saturated = 0
        self.elements = 0
        self.worst = (np.inf, "")

    def add(
        self,
        ref: np.ndarray,
        deq: np.ndarray,
        files: list[str],
        codes: np.ndarray | None = None,
        qtype: Any = None,
    ) -> None:
        n = len(files)
        r, q = _flat64(ref, n), _flat64(deq, n)
        d = r - q
        sig = np.einsum("ij,ij->i", r, r)
        err = np.einsum("ij,ij->i", d, d)
        per = qsnr_from_sums(sig, err)
        self.images += n
        self.qsnr_sum += float(per.sum())
        self.cos_sum += float(_cosine(sig, r, q).sum())
        self.signal += float(sig.sum())
        self.noise += float(err.sum())
        self.max_abs = max(self.max_abs, float(np.max(np.abs(d), initial=0.0)))
        i = int(per.argmin())
        if per[i] < self.worst[0]:
            self.worst = (float(per[i]), files[i])
        if codes is not None:
            self.saturated += saturated_count(codes, qtype)
            self.elements += codes.size

    @property
    def qsnr(self) -> float:
        return self.qsnr_sum / self.images if self.images else QSNR_CAP_DB


# -- running ------------------------------------------------------------------------------------
def _activation_names(graph: Graph) -> list[str]:
    return [o for n in graph.nodes for o in n.outputs if o]


def float_outputs(graph: Graph, batch: np.ndarray, fast: Any = None) -> dict[str, np.ndarray]:
    """Every activation of the float graph on a batch (the graph input included)."""
    from nnshell.input.multi_input import feeds_of

    feeds = feeds_of(graph, batch)
    if fast is not None:
        values = dict(fast.run(feeds))
    else:
        values = run_float(graph, feeds, keep=_activation_names(graph))
    values.update(feeds)
    return values


def isolated_outputs(
    graph: Graph, qstate: QuantState, fvals: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Each node's integer output when fed its float inputs quantized with their own qtypes."""
    out: dict[str, np.ndarray] = {}
    quantized: dict[str, np.ndarray] = {}
    for node in graph.nodes:
        args: list[np.ndarray | None] = []
        for i in node.inputs:
            if not i or graph.tensors[i].is_const:
                args.append(None)
                continue
            if i not in quantized:
                quantized[i] = qstate.tensors[i].quantize(fvals[i])
            args.append(quantized[i])
        outs = run_node_int(node, qstate, *args)
        for name, val in zip(node.outputs, outs, strict=False):
            out[name] = val
    return out


def qerror(
    graph: Graph,
    qstate: QuantState,
    batches: Iterable[tuple[list[str], np.ndarray]],
    total: int,
    isolated: bool = False,
    progress: Progress | None = None,
    fast: Any = None,
) -> QErrorReport:
    """Measure every layer's error over ``batches`` (see the module docstring).

    ``fast`` is an optional validated onnxruntime runner returning every node output (the float
    reference); without it the numpy executor runs.
    """
    tensors = [o for n in graph.nodes for o in n.outputs if o]  # every output of an expression
    consumed = sorted(
        {i for n in graph.nodes for i in n.inputs if i and not graph.tensors[i].is_const}
    )
    acc = {t: _TensorAcc() for t in tensors}
    in_acc = {t: _TensorAcc() for t in consumed}
    if not isolated:  # an input that is a layer's output in the chain: one set of sums
        in_acc.update({t: acc[t] for t in consumed if t in acc and t not in graph.inputs})
    seen = 0
    keep = _activation_names(graph)
    from nnshell.input.multi_input import feeds_of

    for files, batch in batches:
        fvals = float_outputs(graph, batch, fast)
        if isolated:
            ivals = isolated_outputs(graph, qstate, fvals)
        else:
            ivals = run_int(graph, qstate, feeds_of(graph, batch), keep=keep)
        for t in consumed:
            qt = qstate.tensors[t]
            if isolated or t in graph.inputs:
                # the layer's input: its float value quantized with the producer's qtype
                in_acc[t].add(fvals[t], qt.dequantize(qt.quantize(fvals[t])), files)
            elif t not in acc:  # else the same figures as its producer's output: shared below
                in_acc[t].add(fvals[t], qt.dequantize(ivals[t]), files)
        for t in tensors:
            qt = qstate.tensors[t]
            acc[t].add(fvals[t], qt.dequantize(ivals[t]), files, ivals[t], qt)
        seen += len(files)
        if progress is not None:
            progress(seen, total)
    from nnshell.ops.fused import op_label

    layers = []
    outs = [(s, n, t) for s, n in enumerate(graph.nodes) for t in n.outputs if t]
    for step, node, t in outs:
        a = acc[t]
        ins = [i for i in node.inputs if i and not graph.tensors[i].is_const]
        in_q = min((in_acc[i].qsnr for i in ins), default=QSNR_CAP_DB)
        layers.append(
            LayerError(
                step=step,
                name=node.name if t == node.outputs[0] else f"{node.name}:{t}",
                op=op_label(node),
                tensor=t,
                qsnr=a.qsnr,
                qsnr_pooled=float(qsnr_from_sums(a.signal, a.noise)),
                cosine=a.cos_sum / a.images if a.images else 1.0,
                max_abs=a.max_abs,
                saturated_pct=100.0 * a.saturated / a.elements if a.elements else 0.0,
                worst_file=a.worst[1],
                worst_qsnr=a.worst[0] if a.images else QSNR_CAP_DB,
                input_qsnr=in_q,
                harm_db=in_q - a.qsnr,
            )
        )
    notes = [
        "saturated: codes at -128 or 127; for an asymmetric output with zero point -128 (a ReLU "
        "floor) -128 is the real 0, so only 127 counts",
        "cumulative: the integer network end to end (errors accumulate)"
        if not isolated
        else "isolated (-s): each layer fed its predecessors' float outputs, quantized with their "
        "output qtypes (the error the layer adds itself)",
    ]
    return QErrorReport(
        "isolated" if isolated else "cumulative",
        seen,
        layers,
        {i: in_acc[i].qsnr for i in graph.inputs if i in in_acc},
        notes,
    )


__all__ = [
    "QSNR_CAP_DB",
    "LayerError",
    "QErrorReport",
    "compare_arrays",
    "cosine_rows",
    "float_outputs",
    "isolated_outputs",
    "qerror",
    "qsnr_db",
    "qsnr_from_sums",
    "saturated_count",
]
