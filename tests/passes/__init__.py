"""Tests of the graph passes, one file per pass, and the small builders they share.

Each test builds a pattern with ``onnx.helper`` (small shapes), imports it, applies one pass with
``run_passes(graph, [name])`` and checks the rewrite (nodes and ops) and that the float output is
unchanged against the graph before the pass, on seeded random input.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from nnshell.exec import run_float
from nnshell.ir import Graph
from nnshell.passes import PassResult, run_passes
from tests.helpers import load_model, rand

#: Relative tolerance (against the output's magnitude) of before/after float comparisons: the
#: passes reorder float arithmetic (folded weights), so results agree to rounding only.
RTOL = 1e-5


def node(op: str, ins: Sequence[str], outs: Sequence[str] | str, **attrs: Any) -> onnx.NodeProto:
    """An ONNX node named after its first output (``n_<out>``)."""
    outs = [outs] if isinstance(outs, str) else list(outs)
    return helper.make_node(op, list(ins), outs, name=f"n_{outs[0]}", **attrs)


def model(
    nodes: Sequence[onnx.NodeProto],
    inputs: Mapping[str, Sequence[int]],
    outputs: Sequence[str],
    inits: Mapping[str, np.ndarray] | None = None,
    opset: int = 13,
) -> onnx.ModelProto:
    """A model from nodes, activation inputs (full shapes), outputs and initializers."""
    g = helper.make_graph(
        list(nodes),
        "pattern",
        [helper.make_tensor_value_info(k, TensorProto.FLOAT, list(v)) for k, v in inputs.items()],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def feeds_for(graph: Graph, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded random input for every graph input (batch as declared)."""
    return {
        name: rand(graph.tensors[name].shape, seed=seed + i) for i, name in enumerate(graph.inputs)
    }


def ops(graph: Graph) -> list[str]:
    """The graph's ops in order; a fusion shows as ``Fused(Conv+Relu)``."""
    return [
        f"Fused({'+'.join(p.op for p in n.attrs.parts)})" if n.op == "Fused" else n.op
        for n in graph.nodes
    ]


def assert_same_outputs(
    before: Graph, after: Graph, feeds: Mapping[str, np.ndarray], rtol: float = RTOL
) -> None:
    """The two graphs have the same output names and values (within ``rtol`` of the range)."""
    assert after.outputs == before.outputs
    want = run_float(before, feeds)
    got = run_float(after, feeds)
    for name in before.outputs:
        w, g = want[name], got[name]
        assert g.shape == w.shape, name
        scale = max(float(np.abs(w).max()), 1e-6)
        err = float(np.abs(g.astype(np.float64) - w).max())
        assert err <= rtol * scale, f"{name}: error {err:.3g} > {rtol} x {scale:.3g}"


def apply(
    m: onnx.ModelProto, names: Sequence[str] | str, rtol: float = RTOL, seed: int = 0
) -> tuple[Graph, Graph, PassResult]:
    """Import ``m``, run the passes on a copy, check the numbers; return (before, after, result)."""
    names = [names] if isinstance(names, str) else list(names)
    before = load_model(m)
    after = before.copy()
    res = run_passes(after, names)
    assert_same_outputs(before, after, feeds_for(before, seed), rtol)
    return before, after, res


def conv_w(c_out: int, c_in: int, k: int = 3, seed: int = 1) -> np.ndarray:
    """Seeded conv weights (out, in, k, k)."""
    return rand((c_out, c_in, k, k), seed=seed, scale=0.3)
