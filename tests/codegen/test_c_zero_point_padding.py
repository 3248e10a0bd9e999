"""``gen --target c --verify`` with asymmetric inputs to padded layers (issue 17): the C pads with
the input zero point exactly as the integer executor does — padded conv (dense, depthwise,
strided, 1-D), padded average pool (count_include_pad 0 and 1, standalone and fused after a
conv), padded max pool and a global average pool with a zero point — bit for bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx import helper

from nnshell.codegen.verify import verify_arrays
from nnshell.ir import Graph
from nnshell.ops import get_op
from nnshell.quant.sq8 import QuantState
from tests.codegen.c_builds import C_BUILD_FLAGS, sq8_quantized
from tests.helpers import save_xy_model


def _model(path: Path) -> None:
    r = np.random.default_rng(11)
    inits = {
        "w1": (r.standard_normal((6, 3, 1, 1)) * 0.7).astype(np.float32),
        "w2": (r.standard_normal((6, 6, 3, 3)) * 0.3 + 0.05).astype(np.float32),
        "wd": (r.standard_normal((6, 1, 3, 3)) * 0.5 + 0.1).astype(np.float32),
        "bd": (r.standard_normal(6) * 0.2).astype(np.float32),
        "w3": (r.standard_normal((5, 6, 1, 1)) * 0.5).astype(np.float32),
    }
    mk = helper.make_node
    nodes = [
        mk("Conv", ["x", "w1"], ["c1"]),
        mk("Relu", ["c1"], ["r1"]),  # asymmetric [0, max]: Z = -128
        mk("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1]),
        mk("Relu", ["c2"], ["r2"]),
        mk("Conv", ["r2", "wd", "bd"], ["d"], pads=[1, 2, 1, 0], group=6, strides=[1, 2]),
        mk("AveragePool", ["d"], ["a0"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        mk(
            "AveragePool",
            ["a0"],
            ["a1"],
            kernel_shape=[3, 2],
            pads=[1, 1, 0, 1],
            strides=[2, 1],
            count_include_pad=1,
        ),
        mk("MaxPool", ["a1"], ["m"], kernel_shape=[2, 2], pads=[1, 1, 1, 1]),
        mk("Conv", ["m", "w3"], ["c3"]),
        mk(
            "AveragePool",
            ["c3"],
            ["a3"],
            kernel_shape=[3, 3],
            pads=[1, 1, 1, 1],
            count_include_pad=1,
        ),
        mk("GlobalAveragePool", ["a3"], ["g"]),
        mk("Flatten", ["g"], ["y"]),
    ]
    save_xy_model(path, nodes, inits, (3, 11, 13), "zp")


def _quantized(tmp_path: Path, **opts: bool) -> tuple[Graph, QuantState, np.ndarray]:
    _model(tmp_path / "zp.onnx")
    xs = np.random.default_rng(4).uniform(-1, 1, (16, 3, 11, 13)).astype(np.float32)
    return (*sq8_quantized(tmp_path / "zp.onnx", xs, **opts), xs)


@pytest.mark.parametrize("variant", list(C_BUILD_FLAGS))
def test_zero_point_padding_bit_exact_in_c(tmp_path: Path, variant: str) -> None:
    graph, qs, xs = _quantized(tmp_path)
    padded = [
        n
        for n in graph.nodes
        if get_op(n.op).q_padded_input(n, 0) or get_op(n.op).q_padded_output(n)
    ]
    labels = {"+".join(p.op for p in n.attrs.parts) if n.op == "Fused" else n.op for n in padded}
    # the depthwise conv fuses with the first pool (count_include_pad 0), the last 1x1 conv
    # with its pool (count_include_pad 1)
    assert {"Conv+Relu", "Conv+AveragePool", "AveragePool", "MaxPool"} <= labels
    assert "GlobalAveragePool" in labels
    # every padded layer reads codes with a zero point (the fused pool: its own input, the conv's)
    for n in padded:
        q = qs.tensors[n.inputs[0]] if get_op(n.op).q_padded_input(n, 0) else qs.nodes[n.name].out_q
        assert q.zero_point != 0, n.name
    flags = C_BUILD_FLAGS[variant]
    res = verify_arrays(graph, qs, xs[:4], tmp_path / "build", "zp", flags)
    assert res.ok, res.summary()
    assert res.layers == len(graph.nodes)


def test_nntool_padding_is_symmetric_and_bit_exact_in_c(tmp_path: Path) -> None:
    graph, qs, xs = _quantized(tmp_path, nntool_padding=True)
    for n in graph.nodes:
        if get_op(n.op).q_padded_input(n, 0):
            assert qs.tensors[n.inputs[0]].zero_point == 0, n.name
    res = verify_arrays(graph, qs, xs[:2], tmp_path / "build", "zp")
    assert res.ok, res.summary()
