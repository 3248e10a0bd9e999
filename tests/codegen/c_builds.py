"""What the C kernels' bit-exactness tests share: the runtime builds they run in (compiler
flags) and the SQ8 quantization of their test models."""

from __future__ import annotations

from typing import Any

# NN_MAX_ROW=4: rows split in chunks, fused pools one conv pixel at a time; NN_COL_BUF=1: no
# tiled convolution (the row kernels); NN_COL_BUF=150 / NN_POOL_BUF=600: small odd tiles and
# channel chunks (every remainder of the 4 x 2 register tiles and of the pooled row slots)
C_BUILD_FLAGS: dict[str, tuple[str, ...]] = {
    "default": (),
    "narrow_rows": ("-DNN_MAX_ROW=4",),
    "untiled": ("-DNN_COL_BUF=1",),
    "small_tiles": ("-DNN_COL_BUF=150", "-DNN_POOL_BUF=600"),
}


def sq8_quantized(path: Any, xs: Any, **opts: Any) -> tuple[Any, Any]:
    """(graph, qstate): the ONNX model at ``path`` fused for SQ8 and quantized from the float
    statistics of the images ``xs`` (the numpy executor's observer), ``QuantOptions(**opts)``."""
    from nnshell.exec import run_float
    from nnshell.importers.onnx_importer import load_onnx
    from nnshell.passes import run_scheme
    from nnshell.quant.sq8 import QuantOptions, quantize_graph
    from nnshell.quant.stats import TensorStats

    graph = load_onnx(str(path))
    run_scheme(graph, "scale8")
    stats: dict[str, TensorStats] = {}
    run_float(graph, {"x": xs}, observer=lambda n, v: stats.setdefault(n, TensorStats()).update(v))
    return graph, quantize_graph(graph, stats, QuantOptions(**opts))


def layer_labels(graph: Any) -> set[str]:
    """The ops of the graph's layers as reports name them (``Conv+MaxPool+Relu``)."""
    from nnshell.ops.fused import op_label

    return {op_label(n) for n in graph.nodes}
