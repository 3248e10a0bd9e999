"""The fast float path: the IR exported to ONNX and run by onnxruntime, checked against numpy.

The numpy executor is the reference; this backend exists because calibration and validation run
the float network over hundreds of images and onnxruntime's kernels are several times faster
than numpy's. A runner is built once per graph version and validated on a probe batch against
the numpy executor (every requested tensor within 1e-4 of its range); if export, session
creation or that check fails, callers get ``None`` and use the numpy executor instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from nnshell.exec.float_exec import run_float
from nnshell.ir import Graph

PROBE_TOLERANCE = 1e-4


class OrtRunner:
    """An onnxruntime session for one graph, returning the graph outputs plus ``keep``."""

    def __init__(self, graph: Graph, keep: Iterable[str] = ()) -> None:
        import onnxruntime as ort

        from nnshell.exporters.onnx_export import export_onnx

        self.graph = graph
        self.keep = [k for k in keep if k not in graph.outputs]
        model = export_onnx(graph, self.keep)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        # onnxruntime's threads spin for a while after each run; nnshell interleaves runs with
        # numpy work (integer executor, statistics) whose BLAS threads they would starve
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(
            model.SerializeToString(), opts, providers=["CPUExecutionProvider"]
        )
        self.names = [o.name for o in self.session.get_outputs()]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run a batch; same contract as :func:`nnshell.exec.run_float` with ``keep``."""
        values = self.session.run(None, {k: np.asarray(v, np.float32) for k, v in feeds.items()})
        return dict(zip(self.names, values, strict=True))


def runner_outputs(graph: Graph, all_tensors: bool | str) -> list[str]:
    """The tensors a runner returns besides the graph outputs: none, every node output
    (``True``), or those plus each fused layer's accumulator (``"heads"``, for calibration)."""
    keep = [o for n in graph.nodes for o in n.outputs if o] if all_tensors else []
    if all_tensors == "heads":
        from nnshell.exporters.onnx_export import head_output

        keep += [head_output(n.name) for n in graph.nodes if getattr(n.attrs, "parts", None)]
    return keep


def make_runner(graph: Graph, probe: np.ndarray, keep: Iterable[str] = ()) -> OrtRunner | None:
    """Build and validate a runner on ``probe`` (a small batch); None if anything disagrees."""
    keep = list(keep)
    try:
        runner = OrtRunner(graph, keep)
        got = runner.run({graph.inputs[0]: probe})
    except Exception:  # noqa: BLE001 - any export/runtime failure means "use numpy"
        return None
    ref = run_float(graph, {graph.inputs[0]: probe}, keep=keep)
    for name, want in ref.items():
        have = got.get(name)
        if have is None or have.shape != want.shape:
            return None
        scale = float(np.max(np.abs(want))) if want.size else 0.0
        if float(np.max(np.abs(have - want), initial=0.0)) > PROBE_TOLERANCE * max(scale, 1.0):
            return None
    return runner
