"""Import a TFLite flatbuffer into the nnshell IR (the same IR as the ONNX importer).

Why this shape (docs/tflite.md has the whole story):

* The file is read once, bounded by :mod:`nnshell.safeio`, and parsed by the ``tflite``
  package (the flatbuffer schema compiled by the TensorFlow authors), imported lazily so that
  the shell starts fast; nnshell has no hand-written flatbuffer reader.
* Node names follow NNTool's TFLite importer, ``{OPERATOR}_{subgraph}_{index}``
  (``CONV_2D_0_1``), a fused activation is ``{name}_activation``, graph inputs are
  ``input_1``... and outputs ``output_1``..., so NNTool scripts address the same nodes.
* TFLite is NHWC; the IR's convolutions, pools and resizes are NCHW like ONNX. The importer
  keeps, for every TFLite tensor, an IR tensor and whether that IR tensor holds it transposed
  to channel-first. Layout-free ops (activations, binary ops, concat, split, slice, pad, mean)
  follow whatever layout their inputs have; a Transpose is emitted only where an op needs the
  other one (before a reshape, a TFLite TRANSPOSE, a graph output). The input Transpose is then
  folded by ``adjust`` and transposes before a reshape + fully connected fold into its weights,
  exactly as for a TensorFlow-exported ONNX model.
* Quantized files: the float graph uses the real values (weights dequantized, QUANTIZE and
  DEQUANTIZE become aliases). The file's scales and zero points are kept per IR tensor in
  ``graph.meta['tflite_quant']`` for ``open -q`` (:mod:`nnshell.quant.tflite_quant`).
"""

from __future__ import annotations

import hashlib
import os
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nnshell.errors import ModelFileError, NnshellError, ShapeError
from nnshell.importers.tflite_ops import HANDLERS
from nnshell.importers.tflite_reader import (
    MAX_TENSOR_ELEMENTS,
    OPSET,
    Importer,
    TensorQuant,
    is_tflite,
    read_model,
)
from nnshell.ir import Graph


#: The TFLite operators the importer maps (``help tflite`` lists them).
def supported_tflite_ops() -> list[str]:
    """The TFLite builtin operators nnshell imports, sorted."""
    return sorted(HANDLERS)


@dataclass
class TfliteImport:
    """An imported graph and where each TFLite tensor went (tests compare tensor by tensor)."""

    graph: Graph
    #: TFLite tensor index -> (IR tensor, True when the IR tensor is channel-first)
    tensors: dict[int, tuple[str, bool]]
    #: TFLite tensor index -> its name in the file
    names: dict[int, str]


def import_tflite(
    path: str, input_shapes: Mapping[str, Sequence[int]] | None = None
) -> TfliteImport:
    """Import ``path``; also return the TFLite-tensor -> IR-tensor map."""
    if input_shapes:
        raise ShapeError("a TFLite model has static input shapes: --input_shapes does not apply")
    model, data = read_model(path)
    imp = Importer(model, path, HANDLERS)
    try:
        graph = imp.run()
    except NnshellError:
        raise
    except Exception as exc:  # noqa: BLE001 - flatbuffers reads fields lazily: a corrupt
        # offset surfaces wherever it is followed (IndexError, struct.error, numpy errors)
        raise ModelFileError(
            f"'{path}' is not a readable TFLite model ({type(exc).__name__} while importing)",
            "open a .tflite file written by the TensorFlow Lite converter",
        ) from None
    graph.meta.update(
        source=os.path.abspath(path),
        sha256=hashlib.sha256(data).hexdigest(),
        producer=f"TFLite schema v{model.Version()}",
        opset=OPSET,
        input_layout="NHWC",
        format="tflite",
        tflite_quant={k: q.as_dict() for k, q in imp.quant.items() if k in graph.tensors},
    )
    names = {i: (imp.sg.Tensors(i).Name() or b"").decode("utf-8", "replace") for i in imp.values}
    graph.meta["io_file_names"] = _io_file_names(imp.sg, names)
    return TfliteImport(graph, {i: (v.name, v.chw) for i, v in imp.values.items()}, names)


def _io_file_names(sg: Any, names: Mapping[int, str]) -> dict[str, str]:
    """``{"input_1": file tensor name, "output_1": ...}``: the file's own names answer too."""
    out: dict[str, str] = {}
    ins = [int(i) for i in sg.InputsAsNumpy()] if sg.InputsLength() else []
    outs = [int(i) for i in sg.OutputsAsNumpy()] if sg.OutputsLength() else []
    for kind, idxs in (("input", ins), ("output", outs)):
        for k, idx in enumerate(idxs):
            name = names.get(idx) or (sg.Tensors(idx).Name() or b"").decode("utf-8", "replace")
            if name:
                out[f"{kind}_{k + 1}"] = name
    return out


def load_tflite(path: str, input_shapes: Mapping[str, Sequence[int]] | None = None) -> Graph:
    """Import the TFLite model at ``path`` into a Graph with static shapes (NHWC as in the file)."""
    return import_tflite(path, input_shapes).graph


def help_text() -> str:
    """The text of ``help tflite``: what is imported and how (docs/tflite.md has more); every
    line fits an 80-column terminal."""

    def para(text: str, indent: str = "  ") -> list[str]:
        return textwrap.wrap(
            text, width=79, initial_indent=indent, subsequent_indent=indent, break_on_hyphens=False
        )

    return "\n".join(
        [
            "TFLite import: open MODEL.tflite [-q]   (or: nnshell MODEL.tflite [-q])",
            *para(
                "Node names follow NNTool: {OPERATOR}_{subgraph}_{index} (CONV_2D_0_1), fused "
                "activations {name}_activation, inputs input_1..., outputs output_1.... The "
                "graph is NHWC as in the file: run 'adjust' to make it CHW. Quantized files "
                "open as float (weights dequantized); -q keeps the file's scales and zero "
                "points (int8, int16x8, uint8 shifted to int8): 'fusions --scale8' then applies "
                "them and no 'aquant' is needed. Conv and dense layers then requantize with "
                "30-bit multipliers (TFLite's precision; 'set file_mult_bits 8' gives GAP's "
                "8-bit ones, which the AutoTiler target needs)."
            ),
            "Supported operators (with their fused activation NONE, RELU, RELU6,",
            "RELU_N1_TO_1, TANH):",
            *para(", ".join(supported_tflite_ops())),
        ]
    )


__all__ = [
    "MAX_TENSOR_ELEMENTS",
    "TensorQuant",
    "TfliteImport",
    "help_text",
    "import_tflite",
    "is_tflite",
    "load_tflite",
    "supported_tflite_ops",
]
