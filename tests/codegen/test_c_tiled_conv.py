"""The tiled convolution of the C runtime (issue 21) on the shapes its register tiles do not
divide: channel counts that are not multiples of 4 (also inside groups), odd widths and pixel
counts, strided 1x1 and padded 3x3 windows, fused max / average pools over channel chunks.
Each build (default tiles, small odd tiles, the untiled row kernels) must match the integer
executor byte for byte on every layer (gcc is the reference for the C)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx import helper

from nnshell.codegen.verify import verify_arrays
from tests.codegen.c_builds import layer_labels, sq8_quantized
from tests.helpers import save_xy_model


def _odd_model(path: Path) -> None:
    r = np.random.default_rng(21)

    def w(*shape: int) -> np.ndarray:
        return (r.standard_normal(shape) * 0.3).astype(np.float32)

    inits = {
        "W1": w(6, 3, 3, 3),
        "B1": w(6),
        "Ws": w(10, 6, 1, 1),
        "Wg": w(10, 5, 3, 3),
        "Wb": w(5, 10, 1, 1),
        "Wc": w(7, 5, 3, 3),
    }
    mk = helper.make_node
    nodes = [
        mk("Conv", ["x", "W1", "B1"], ["c1"], pads=[1, 1, 1, 1]),
        mk("MaxPool", ["c1"], ["m1"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        mk("Relu", ["m1"], ["r1"]),
        mk("Conv", ["r1", "Ws"], ["s2"], strides=[2, 2]),
        mk("Conv", ["s2", "Wg"], ["g3"], group=2, pads=[1, 1, 1, 1]),
        mk("Relu", ["g3"], ["r3"]),
        mk("Conv", ["r3", "Wb"], ["b4"]),
        mk("Conv", ["b4", "Wc"], ["c5"], pads=[1, 1, 1, 1]),
        mk(
            "AveragePool",
            ["c5"],
            ["y"],
            kernel_shape=[3, 3],
            strides=[2, 2],
            pads=[1, 1, 1, 1],
            count_include_pad=0,
        ),
    ]
    save_xy_model(path, nodes, inits, (3, 21, 23), "odd")


# small_tiles: 5-pixel gathered tiles (k = 27, padded to 32), the pooled 6 channels in chunks of
# 4 + 2
_FLAGS = {
    "default": (),
    "small_tiles": ("-DNN_COL_BUF=168", "-DNN_POOL_BUF=300"),
    "untiled": ("-DNN_COL_BUF=1",),
}


@pytest.mark.parametrize("variant", list(_FLAGS))
def test_tiled_convolution_remainders_bit_exact(tmp_path: Path, variant: str) -> None:
    _odd_model(tmp_path / "odd.onnx")
    xs = np.random.default_rng(2).uniform(-1, 1, (4, 3, 21, 23)).astype(np.float32)
    graph, qstate = sq8_quantized(tmp_path / "odd.onnx", xs)
    labels = layer_labels(graph)
    assert {"Conv+MaxPool+Relu", "Conv+AveragePool"} <= labels, labels
    res = verify_arrays(graph, qstate, xs, tmp_path / "build", "odd", _FLAGS[variant])
    assert res.ok, res.summary()
    assert res.layers == len(graph.nodes)
