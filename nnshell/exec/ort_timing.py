"""onnxruntime's time per image beside the generated C's (``gen --verify``, issue 21).

The user reading ``gen --verify``'s timing wants to know where the C stands against what they
would otherwise run on the host: onnxruntime on the float network, and onnxruntime on an int8
QDQ model of it. Both are measured here on the graph as nnshell holds it (exported to ONNX, so
fusions and edits are included), batch 1, median over the verify images after one warm-up.
The QDQ model is made by onnxruntime's own static quantizer (MinMax, QInt8 activations and
weights, per-channel when the graph's opset has DequantizeLinear's axis) calibrated on the same
images: it is onnxruntime's int8 speed, not a check of nnshell's quantization. Everything is
lazy-imported and best effort: a model onnxruntime cannot run or quantize gets a reason instead
of a number, never a failed ``gen --verify``.
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nnshell.ir import Graph

#: Images timed (batch 1) and images the QDQ calibration reads: enough for a stable median,
#: few enough that the reference costs a fraction of the verify itself.
MAX_TIMED = 20
MAX_CALIB = 8


@dataclass(frozen=True)
class OrtTimes:
    """onnxruntime's median microseconds per image; ``None`` with ``note`` saying why not."""

    float_us: float | None
    qdq_us: float | None
    note: str = ""

    def describe(self) -> str:
        """``onnxruntime float 812.0 us, int8 QDQ 455.1 us`` (or the reason one is missing)."""

        def fmt(v: float | None) -> str:
            return "n/a" if v is None else f"{v:.1f} us"

        text = f"onnxruntime float {fmt(self.float_us)}, int8 QDQ {fmt(self.qdq_us)}"
        return f"{text} ({self.note})" if self.note else text


def _median_us(session: object, name: str, xs: np.ndarray) -> float:
    run = session.run  # type: ignore[attr-defined]
    run(None, {name: xs[:1]})  # warm-up: first-run allocations are not the network's time
    times = []
    for x in xs:
        t0 = time.perf_counter()
        run(None, {name: x[None]})
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


def _qdq_model(src: Path, dst: Path, name: str, xs: np.ndarray, per_channel: bool) -> None:
    from onnxruntime.quantization import quantize_static

    class Reader:
        """The calibration images, one per call (onnxruntime's CalibrationDataReader)."""

        def __init__(self) -> None:
            self.k = 0

        def get_next(self) -> dict[str, np.ndarray] | None:
            if self.k >= min(len(xs), MAX_CALIB):
                return None
            self.k += 1
            return {name: xs[self.k - 1][None]}

    logging.disable(logging.WARNING)  # its advice to pre-process goes to the root logger
    try:
        _quantize(quantize_static, src, dst, Reader(), per_channel)
    finally:
        logging.disable(logging.NOTSET)


def _quantize(quantize_static: Any, src: Path, dst: Path, reader: Any, per_channel: bool) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType

    quantize_static(
        str(src),
        str(dst),
        reader,
        quant_format=QuantFormat.QDQ,
        per_channel=per_channel,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
    )


def ort_times_on_images(graph: Graph, images: list[str], opts: Any) -> OrtTimes:
    """:func:`ort_times` on the first :data:`MAX_TIMED` of ``images``, loaded as ``gen
    --verify`` loads them (a formatted input's raw pixels go through its formatter)."""
    from nnshell.codegen.verify import load_images
    from nnshell.input.formatter import format_feed

    if len(graph.inputs) != 1 or not images:
        return OrtTimes(None, None, "needs one graph input and at least one image")
    xs = load_images(graph, images[:MAX_TIMED], opts)
    return ort_times(graph, format_feed(graph, graph.inputs[0], xs))


def ort_times(graph: Graph, xs: np.ndarray) -> OrtTimes:
    """Time onnxruntime float and int8 QDQ on float images ``xs`` (the graph's input layout)."""
    try:
        import onnxruntime as ort

        from nnshell.exporters.onnx_export import export_onnx
    except ImportError:
        return OrtTimes(None, None, "onnxruntime is not installed")
    name = graph.inputs[0]
    xs = np.ascontiguousarray(np.asarray(xs, np.float32)[:MAX_TIMED])
    so = ort.SessionOptions()
    so.log_severity_level = 3
    try:
        model = export_onnx(graph).SerializeToString()
        sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
        float_us = _median_us(sess, name, xs)
    except Exception as exc:  # noqa: BLE001 - a reference timing never fails gen --verify
        return OrtTimes(None, None, f"onnxruntime cannot run the graph: {type(exc).__name__}")
    per_channel = int(graph.meta.get("opset", 13) or 13) >= 13
    try:
        with tempfile.TemporaryDirectory(prefix="nnshell_qdq_") as tmp:
            src, dst = Path(tmp) / "float.onnx", Path(tmp) / "qdq.onnx"
            src.write_bytes(model)
            _qdq_model(src, dst, name, xs, per_channel)
            qsess = ort.InferenceSession(str(dst), so, providers=["CPUExecutionProvider"])
        qdq_us = _median_us(qsess, name, xs)
    except Exception as exc:  # noqa: BLE001 - e.g. no onnx package for the quantizer
        return OrtTimes(float_us, None, f"no QDQ model: {type(exc).__name__}: {str(exc)[:80]}")
    return OrtTimes(float_us, qdq_us, "" if per_channel else "QDQ per-tensor: opset < 13")
