"""Test helpers: build one-node ONNX models and compare nnshell's float run with onnxruntime.

onnxruntime is the reference every float kernel must match; these helpers keep each op test to a
few lines so that attribute combinations can be parametrized cheaply.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from nnshell.exec.float_exec import run_float
from nnshell.importers.onnx_importer import load_onnx
from nnshell.ir import Graph


def one_node_model(
    op_type: str,
    inputs_shapes: Mapping[str, Sequence[int]],
    attrs: Mapping[str, Any] | None = None,
    initializers: Mapping[str, np.ndarray] | None = None,
    opset: int = 13,
    *,
    node_inputs: Sequence[str] | None = None,
    n_outputs: int = 1,
    batch_param: bool = True,
) -> onnx.ModelProto:
    """Return a model with one ``op_type`` node.

    ``inputs_shapes`` are the activation inputs (shape with the batch first; the batch becomes the
    dim_param 'N' when ``batch_param``), ``initializers`` the constant inputs. The node reads
    ``node_inputs`` (default: activations then initializers; "" for an omitted optional input)
    and writes ``y0..y{n_outputs-1}``.
    """
    inits = dict(initializers or {})
    ins = []
    for name, shape in inputs_shapes.items():
        dims: list[int | str] = list(shape)
        if batch_param and dims:
            dims[0] = "N"
        ins.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, dims))
    order = list(node_inputs) if node_inputs is not None else [*inputs_shapes, *inits]
    outs = [f"y{i}" for i in range(n_outputs)]
    node = helper.make_node(op_type, order, outs, name=f"{op_type.lower()}_0", **dict(attrs or {}))
    graph = helper.make_graph(
        [node],
        f"{op_type}_test",
        ins,
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = min(model.ir_version, 8 if opset < 21 else 10)
    return model


def load_model(model: onnx.ModelProto) -> Graph:
    """Import an in-memory model through a temporary file (the importer reads paths)."""
    fd, path = tempfile.mkstemp(suffix=".onnx")
    os.close(fd)
    try:
        onnx.save(model, path)
        return load_onnx(path)
    finally:
        os.unlink(path)


def ort_run(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run ``model`` with onnxruntime's CPU provider; return every graph output by name."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, dict(feeds)), strict=True))


def assert_close(name: str, got: np.ndarray, want: np.ndarray, atol: float) -> None:
    """Assert ``got`` matches ``want`` within ``atol`` times the reference's magnitude (>= 1)."""
    assert got.shape == want.shape, f"{name}: shape {got.shape} != onnxruntime {want.shape}"
    assert got.dtype == want.dtype, f"{name}: dtype {got.dtype} != onnxruntime {want.dtype}"
    scale = max(1.0, float(np.max(np.abs(want))) if want.size else 1.0)
    err = float(np.max(np.abs(got.astype(np.float64) - want))) if want.size else 0.0
    assert err <= atol * scale, f"{name}: max error {err:.3g} > {atol:.1g} × {scale:.3g}"


def compare_with_ort(
    model: onnx.ModelProto, feeds: Mapping[str, np.ndarray], atol: float = 1e-5
) -> dict[str, np.ndarray]:
    """Import ``model``, run it with nnshell and onnxruntime, assert every output agrees."""
    graph = load_model(model)
    want = ort_run(model, feeds)
    got = run_float(graph, feeds)
    for name in graph.outputs:
        assert_close(name, got[name], want[name], atol)
    return got


def rand(shape: Sequence[int], seed: int = 0, scale: float = 1.0) -> np.ndarray:
    """Return seeded standard-normal float32 data of ``shape``."""
    return (np.random.default_rng(seed).standard_normal(tuple(shape)) * scale).astype(np.float32)


def save_xy_model(
    path: os.PathLike[str] | str,
    nodes: Sequence[onnx.NodeProto],
    inits: Mapping[str, np.ndarray],
    in_shape: Sequence[Any],
    name: str = "g",
) -> None:
    """Save an opset-13 model with one float input ``x`` of shape ``["N", *in_shape]`` (batch
    free), one output ``y`` and ``inits`` as initializers: the graphs the C tests build."""
    graph = helper.make_graph(
        list(nodes),
        name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *in_shape])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
