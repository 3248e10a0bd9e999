"""``open -q``: a TFLite file's own quantization as nnshell's SQ8 quantization.

Why it works this way (docs/tflite.md): nnshell's SQ8 quantizer derives every integer parameter
from per-tensor real ranges and per-channel weight ranges. A TFLite file already fixes both, so
``-q`` turns the file's (scale, zero point) of each activation into the range that gives exactly
that qtype, forces the weights' scales, and then runs the normal SQ8 quantizer: ``qshow``,
``qexplain``, ``validate``, ``qerror``, ``footprint``, ``save_state`` and ``gen`` see an
ordinary quantized graph.
"""

from __future__ import annotations

from typing import Any

from nnshell.errors import ModelFileError


def require_file_quantization(graph: Any, path: str) -> None:
    """Refuse ``-q`` on a float file: there is nothing to keep."""
    if not graph.meta.get("tflite_quant"):
        raise ModelFileError(
            f"open -q: '{path}' holds no quantization (a float TFLite model)",
            "open it without -q, then aquant",
        )
