"""adjust: NHWC (TensorFlow-style) graphs lose their layout transposes; CHW graphs are unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from nnshell.exec import run_float
from nnshell.session import Session
from tests.conftest import SAMPLE_MODEL
from tests.helpers import ort_run, rand
from tests.passes import conv_w, model, node

TO_CHW, TO_HWC = [0, 3, 1, 2], [0, 2, 3, 1]


def nhwc_model(act: str = "Relu", flatten: str = "Flatten") -> onnx.ModelProto:
    """input [1,8,8,3] -> T(0,3,1,2) -> Conv -> act -> T(0,2,3,1) -> flatten -> Gemm."""
    shape = {"s": np.array([1, -1], np.int64)} if flatten == "Reshape" else {}
    return model(
        [
            node("Transpose", ["x"], "t0", perm=TO_CHW),
            node("Conv", ["t0", "w", "b"], "c", pads=[1, 1, 1, 1], strides=[2, 2]),
            node(act, ["c"], "a"),
            node("Transpose", ["a"], "t1", perm=TO_HWC),
            node(flatten, ["t1", "s"] if shape else ["t1"], "f"),
            node("Gemm", ["f", "gw", "gb"], "y", transB=1),
        ],
        {"x": [1, 8, 8, 3]},
        ["y"],
        {
            "w": conv_w(5, 3),
            "b": rand((5,), 2),
            "gw": rand((7, 80), 3, 0.2),
            "gb": rand((7,), 4),
            **shape,
        },
    )


def opened(m: onnx.ModelProto, tmp_path: Path) -> Session:
    path = tmp_path / "nhwc.onnx"
    onnx.save(m, str(path))
    s = Session()
    s.open(str(path))
    return s


@pytest.mark.parametrize(("act", "flatten"), [("Relu", "Flatten"), ("Sigmoid", "Reshape")])
def test_nhwc_model_loses_all_transposes(act: str, flatten: str, tmp_path: Path) -> None:
    m = nhwc_model(act, flatten)
    s = opened(m, tmp_path)
    res = s.adjust()
    g = s.graph
    assert res.changed > 0
    assert [n.op for n in g.nodes if n.op == "Transpose"] == []
    (inp,) = g.inputs
    assert g.tensors[inp].dims == (3, 8, 8)
    assert g.meta["source_input_layout"] == "HWC"
    rng = np.random.default_rng(0)
    for _ in range(3):
        x = rng.standard_normal((1, 8, 8, 3)).astype(np.float32)  # HWC images
        want = ort_run(m, {"x": x})["y"]
        got = run_float(g, {inp: x.transpose(0, 3, 1, 2)})["y"]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * float(np.abs(want).max()))
    # and the adjusted graph still fuses
    out = s.fusions("scale8")
    assert [f.kind for f in out.result.fusions] == ["conv_active"]
    got = run_float(s.graph, {inp: x.transpose(0, 3, 1, 2)})["y"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * float(np.abs(want).max()))


def test_adjust_dry_run_leaves_graph(tmp_path: Path) -> None:
    s = opened(nhwc_model(), tmp_path)
    before = s.graph
    res = s.adjust(dry_run=True)
    assert res.changed > 0 and s.graph is before and not s.adjusted
    assert sum(n.op == "Transpose" for n in s.graph.nodes) == 2


def test_channel_shuffle_transpose_is_not_a_layout_change(tmp_path: Path) -> None:
    # Near miss: a 5-D transpose between reshapes (shufflenet's channel shuffle) moves data
    # between channels; adjust keeps it and says so.
    m = model(
        [
            node("Conv", ["x", "w"], "c"),
            node("Reshape", ["c", "s1"], "r1"),
            node("Transpose", ["r1"], "t", perm=[0, 2, 1, 3, 4]),
            node("Reshape", ["t", "s2"], "y"),
        ],
        {"x": [1, 3, 6, 6]},
        ["y"],
        {
            "w": conv_w(4, 3),
            "s1": np.array([1, 2, 2, 4, 4], np.int64),
            "s2": np.array([1, 4, 4, 4], np.int64),
        },
    )
    s = opened(m, tmp_path)
    res = s.adjust()
    assert [n.op for n in s.graph.nodes] == ["Conv", "Reshape", "Transpose", "Reshape"]
    assert res.changed == 0 and any("transposes kept" in n for n in res.notes)
    x = rand((1, 3, 6, 6), 1)
    np.testing.assert_allclose(
        run_float(s.graph, {"x": x})["y"], ort_run(m, {"x": x})["y"], rtol=1e-5, atol=1e-5
    )


def test_sample_model_nothing_to_change() -> None:
    s = Session()
    s.open(str(SAMPLE_MODEL))
    before = s.graph
    res = s.adjust()
    assert res.changed == 0
    assert [n.name for n in s.graph.nodes] == [n.name for n in before.nodes]
    assert "source_input_layout" not in s.graph.meta


def test_tf2onnx_style_transposes_around_every_layer(tmp_path: Path) -> None:
    # tf2onnx wraps each conv in NHWC->NCHW and back; the pairs meet across the Relu and cancel.
    m = model(
        [
            node("Transpose", ["x"], "t0", perm=TO_CHW),
            node("Conv", ["t0", "w"], "c", pads=[1, 1, 1, 1]),
            node("Transpose", ["c"], "t1", perm=TO_HWC),
            node("Relu", ["t1"], "r"),
            node("Transpose", ["r"], "t2", perm=TO_CHW),
            node("Conv", ["t2", "w2"], "c2", strides=[2, 2]),
            node("Transpose", ["c2"], "t3", perm=TO_HWC),
            node("Relu", ["t3"], "r2"),
            node("Reshape", ["r2", "s"], "f"),
            node("MatMul", ["f", "mw"], "y"),
        ],
        {"x": [1, 8, 8, 3]},
        ["y"],
        {
            "w": conv_w(4, 3),
            "w2": conv_w(6, 4, seed=3),
            "s": np.array([1, -1], np.int64),
            "mw": rand((54, 5), 4, 0.2),
        },
    )
    s = opened(m, tmp_path)
    s.adjust()
    g = s.graph
    assert [n.op for n in g.nodes if n.op == "Transpose"] == []
    assert g.tensors[g.inputs[0]].dims == (3, 8, 8)
    x = rand((2, 8, 8, 3), 5)[:1]
    want = ort_run(m, {"x": x})["y"]
    got = run_float(g, {"x": x.transpose(0, 3, 1, 2)})["y"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * float(np.abs(want).max()))
    s.fusions("pow2")
    assert [n.op for n in s.graph.nodes] == ["Fused", "Fused", "Linear"]
    got = run_float(s.graph, {"x": x.transpose(0, 3, 1, 2)})["y"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * float(np.abs(want).max()))
