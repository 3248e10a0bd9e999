"""onnxruntime's own int8 quantization, the peer the benchmarks put beside nnshell's.

One place for the settings every comparison uses: ``quantize_static`` with QDQ nodes,
per-channel int8 weights and MinMax calibration; activations int8 (as nnshell's SQ8) or uint8
(onnxruntime's own default, asymmetric).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np


def at_least_opset13(model: Any) -> Any:
    """``model`` converted to opset 13 when older: per-channel QDQ needs DequantizeLinear's axis."""
    from onnx import version_converter

    if max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) < 13:
        return version_converter.convert_version(model, 13)
    return model


def quantize_qdq(
    src: Path,
    dst: Path,
    feeds: Iterable[Mapping[str, np.ndarray]],
    unsigned_activations: bool = False,
) -> Path:
    """Write onnxruntime's int8 QDQ model of ``src`` to ``dst``, calibrated on ``feeds`` (one
    input dict per ``get_next``)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    class Reader:
        def __init__(self) -> None:
            self.items = iter(feeds)

        def get_next(self) -> Mapping[str, np.ndarray] | None:
            return next(self.items, None)

    quantize_static(
        str(src),
        str(dst),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8 if unsigned_activations else QuantType.QInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
    )
    return dst
