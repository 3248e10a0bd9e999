"""``open -q``: a TFLite file's own quantization as nnshell's SQ8 quantization.

Why it works this way (docs/tflite.md): nnshell's SQ8 quantizer derives every integer parameter
from per-tensor real ranges and per-channel weight ranges. A TFLite file already fixes both, so
``-q`` turns the file's (scale, zero point) of each activation into the range that gives exactly
that qtype, forces the weights' scales, and then runs the normal SQ8 quantizer: ``qshow``,
``qexplain``, ``validate``, ``qerror``, ``footprint``, ``save_state`` and ``gen`` see an
ordinary quantized graph.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nnshell.errors import ModelFileError, QuantizationError
from nnshell.quant.fixed_point import QType


def require_file_quantization(graph: Any, path: str) -> None:
    """Refuse ``-q`` on a float file: there is nothing to keep."""
    if not graph.meta.get("tflite_quant"):
        raise ModelFileError(
            f"open -q: '{path}' holds no quantization (a float TFLite model)",
            "open it without -q, then aquant",
        )


@dataclass
class FileQuantization:
    """What ``-q`` made of a file's quantization: the SQ8 state and what could not be kept."""

    qstate: Any
    stats: dict[str, Any]
    #: tensors whose qtype is exactly the file's (scale and zero point)
    kept: list[str] = field(default_factory=list)
    #: tensor -> why nnshell's qtype differs from the file's (forced symmetric, 16-bit, ...)
    changed: dict[str, str] = field(default_factory=dict)


def file_qtype(q: Any) -> tuple[QType | None, tuple[float, float], str | None]:
    """The int8 QType a per-tensor file quantization gives, its real range, and why not.

    ``q`` is one entry of ``graph.meta['tflite_quant']`` (``scale``, ``zero_point``, ``dtype``).

    int8 is kept as it is; legacy uint8 moves to int8 with the zero point − 128 (NNTool's rule,
    same scale, so the same real values); int16 (16x8 models) gives only its real range, since
    nnshell's SQ8 kernels are 8-bit.
    """
    dtype = q["dtype"]
    scale = float(q["scale"][0])
    zp = int(q["zero_point"][0]) if q["zero_point"] else 0
    if dtype == "uint8":
        zp -= 128
    if dtype in ("int8", "uint8"):
        lo, hi = (-128 - zp) * scale, (127 - zp) * scale
        return QType(scale, zp, 8, symmetric=zp == 0), (lo, hi), None
    if dtype == "int16":
        lo, hi = (-32768 - zp) * scale, (32767 - zp) * scale
        return None, (lo, hi), "int16 in the file: int8 from its range (SQ8 kernels are 8-bit)"
    return None, (0.0, 0.0), f"{dtype} activations are not supported"


def _fill_missing(graph: Any, ranges: dict[str, tuple[float, float]]) -> None:
    """Give tensors the file does not quantize (an activation nnshell did not fuse, the input
    of a QUANTIZE-less float graph) the range of a neighbour that is equivalent for them.

    A ReLU / ReLU-N / clip reading ``t`` clamps to its output's range anyway, so ``t`` quantized
    to that range gives the same result; a pure data move shares its input's qtype.
    """
    from nnshell.ops import get_op

    acts = {"Relu", "Clip"}
    for _ in range(len(graph.nodes) + 1):
        grew = False
        for node in graph.nodes:
            ins = [i for i in node.inputs if i and not graph.tensors[i].is_const]
            out = node.outputs[0]
            if (
                len(ins) == 1
                and ins[0] not in ranges
                and out in ranges
                and (node.op in acts or get_op(node.op).q_passthrough)
            ):
                ranges[ins[0]] = ranges[out]
                grew = True
            elif (
                len(ins) == 1
                and out not in ranges
                and ins[0] in ranges
                and get_op(node.op).q_passthrough
            ):
                ranges[out] = ranges[ins[0]]
                grew = True
        if not grew:
            return


def quantize_from_file(
    graph: Any, relun_range: str = "bound", mult_bits: int = 30
) -> FileQuantization:
    """Quantize the fused ``graph`` with the scales and zero points its TFLite file holds.

    Every activation range comes from the file (``real = (q − zp)·scale`` over the integer
    range); tensors whose file qtype nnshell's SQ8 kernels accept are given exactly that qtype,
    the others (a tensor a consumer needs symmetric, a graph output, 16-bit tensors) get
    nnshell's SQ8 qtype of the same range. Weights are the file's int8 codes dequantized, so
    nnshell's per-channel scales ``max|w|/127`` are the file's. Then the normal SQ8 quantizer
    runs: requantization uses nnshell's multiplier rule from these scales, with ``mult_bits``-bit
    conv/linear multipliers (30: TFLite's precision; 8: SQ8's rule, what GAP's kernels take).
    Padded convs and pools pad with the zero point, as TFLite does, except with 8-bit
    multipliers: the AutoTiler's kernels pad with code 0, so their inputs are made symmetric
    then (NNTool's rule, ``aquant --nntool_padding``; docs/quantization.md).
    """
    from nnshell.input.formatter import fixed_qtypes
    from nnshell.ops import get_op
    from nnshell.quant.sq8 import QuantOptions, qtype_groups, quantize_graph, symmetric_requirements
    from nnshell.quant.stats import TensorStats

    file_q: dict[str, Any] = graph.meta.get("tflite_quant") or {}
    acts = list(graph.inputs) + [o for n in graph.nodes for o in n.outputs]
    ranges: dict[str, tuple[float, float]] = {}
    qtypes: dict[str, QType] = {}
    out = FileQuantization(None, {})
    for t in acts:
        q = file_q.get(t)
        if q is None or len(q["scale"]) != 1:
            continue
        qt, rng, why = file_qtype(q)
        if why is not None and qt is None and rng == (0.0, 0.0):
            raise QuantizationError(f"open -q: tensor '{t}': {why}")
        ranges[t] = rng
        if qt is not None:
            qtypes[t] = qt
        elif why:
            out.changed[t] = why
    _fill_missing(graph, ranges)
    groups = qtype_groups(graph)
    missing = [m[0] for m in groups.values() if not any(t in ranges for t in m) and m[0] in acts]
    if missing:
        raise QuantizationError(
            f"open -q: the file gives no quantization for tensor(s) {', '.join(missing[:4])}",
            "calibrate instead: aquant CALIBRATION_IMAGES",
        )
    # A graph output is symmetric in SQ8 by convention only (no kernel needs it): -q keeps the
    # file's output qtype, as NNTool does, so the outputs' codes are the interpreter's.
    nntool_padding = mult_bits <= 8  # GAP's kernels: NNTool's padding rule too
    req = symmetric_requirements(graph, nntool_padding)
    req = {t: why for t, why in req.items() if why != "graph output"}
    producers = {o: n for n in graph.nodes for o in n.outputs}
    for t, node in producers.items():  # SQ8 kernels whose own output is symmetric (add, tanh)
        op = get_op(node.op)
        if not (op.q_passthrough or op.q_ties_inputs or op.q_asym(node)):
            req.setdefault(t, f"{node.name} ({node.op} output is symmetric in SQ8)")
    fixed: dict[str, QType] = {}
    for members in groups.values():
        forced = next((req[t] for t in members if t in req), None)
        for t in members:
            qt = qtypes.get(t)
            if qt is None:
                continue
            if forced is not None and qt.zero_point != 0:
                out.changed[t] = f"zero point {qt.zero_point} in the file; {forced} needs 0"
                continue
            fixed[t] = qt
    fixed.update(fixed_qtypes(graph))
    stats = {t: TensorStats(min=lo, max=hi, count=1) for t, (lo, hi) in ranges.items()}
    opts = QuantOptions(relun_range=relun_range, mult_bits=mult_bits, nntool_padding=nntool_padding)
    qstate = quantize_graph(graph, stats, opts, fixed)
    for t, qt in qtypes.items():
        got = qstate.tensors.get(t)
        if got is not None and t not in out.changed:
            same = got.zero_point == qt.zero_point and np.isclose(
                float(np.asarray(got.scale)), float(np.asarray(qt.scale)), rtol=1e-9
            )
            if same:
                out.kept.append(t)
            else:
                out.changed[t] = "shares a qtype with a tensor the file quantizes differently"
    qstate.ranges.update({t: r for t, r in ranges.items() if t in qstate.tensors})
    out.qstate, out.stats = qstate, stats
    return out


def refit_for_formatter(work: Any, session: Any, name: str, fmt: Any) -> tuple[Any, Any] | None:
    """The (quantization, statistics) a new input formatter ``fmt`` of input ``name`` gives
    after ``open -q`` (:func:`_refit`), else None once
    :func:`~nnshell.input.formatter_check.check_formatter` accepted ``fmt`` against the session's
    quantization (it raises, naming both, otherwise)."""
    refit = _refit(work, session, name, fmt)
    if refit is None and fmt is not None:
        from nnshell.input.formatter_check import check_formatter

        check_formatter(work, session.qstate, name, fmt)
    return refit


def _refit(work: Any, session: Any, name: str, fmt: Any) -> tuple[Any, Any] | None:
    """``open -q`` then ``imageformat``: the file's quantization derived again with the
    formatter's input codes (``work`` carries the new formatter, or none after a removal).

    A TFLite file usually quantizes a ``[-1, 1]`` input with S = 1/127.5 or 1/127 and the
    formatter's codes are ``p − 128`` at S = 1/128: NNTool's visual-wake script relies on that
    being accepted. The first layers' multipliers are recomputed for the formatter's scale, so
    the codes stay consistent; an input range far from the formatter's (±25%) is not refitted
    (None: ``check_formatter`` then refuses, naming both). None too when the quantization is
    not the file's (after ``aquant``).
    """
    qs = session.qstate
    if not is_file_quantized(work, session):
        return None
    if session.scheme != "scale8" or qs.scheme != "SQ8":
        return None
    if fmt is not None:
        lo, hi = qs.ranges.get(name, (float("nan"), float("nan")))
        flo, fhi = fmt.real_range()
        tol = 0.25 * (fhi - flo)
        if fmt.bits != 8 or not (abs(lo - flo) <= tol and abs(hi - fhi) <= tol):
            return None
    fq = file_quantization(work, session)
    return fq.qstate, fq.stats


def is_file_quantized(work: Any, session: Any) -> bool:
    """Whether the session's quantization is ``open -q``'s (not replaced by ``aquant``)."""
    qs = session.qstate
    return bool(work.meta.get("load_quantization") and qs is not None and not session.stats_files)


def file_quantization(work: Any, session: Any) -> FileQuantization:
    """:func:`quantize_from_file` with the session's settings (ReLU-N rule, multiplier bits)."""
    return quantize_from_file(
        work,
        str(session.settings.get("relun_range", "bound")),
        int(session.settings.get("file_mult_bits", 30)),
    )
