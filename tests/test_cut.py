"""remove / extract / freeze: the kept part computes what the original computed (onnxruntime)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from nnshell.errors import GraphStateError, UsageError
from nnshell.exec.float_exec import run_float
from nnshell.session import Session
from nnshell.session.edits import extract, freeze, remove
from tests.conftest import ROOT, SAMPLE_MODEL

TFLITE = ROOT / "tests" / "data" / "tflite" / "cifar_net.tflite"


def _ort(tensors: list[str], x: np.ndarray) -> list[np.ndarray]:
    """The original model run by onnxruntime, with intermediate tensors made outputs."""
    model = onnx.load(str(SAMPLE_MODEL))
    for t in tensors:
        model.graph.output.append(helper.make_tensor_value_info(t, TensorProto.FLOAT, None))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(tensors, {model.graph.input[0].name: x})


def _session() -> Session:
    s = Session()
    s.open(str(SAMPLE_MODEL))
    return s


def test_extract_range_keeps_the_backbone_outputs() -> None:
    s = _session()
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    out = extract(s, "0:5")  # conv, pool, relu, conv, pool, relu: the feature extractor
    assert len(s.graph.nodes) == 6 and len(out.removed) == 6
    (name,) = s.graph.outputs
    got = run_float(s.graph, {s.graph.inputs[0]: x})[name]
    (ref,) = _ort([name], x)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_extract_one_step_makes_its_input_a_graph_input() -> None:
    s = _session()
    x = np.random.default_rng(1).standard_normal((1, 3, 32, 32)).astype(np.float32)
    orig = s.graph
    node = orig.nodes[3]  # conv2 alone
    extract(s, "3")
    assert [n.name for n in s.graph.nodes] == [node.name]
    assert s.graph.inputs == [node.inputs[0]] and s.graph.outputs == node.outputs[:1]
    feed, ref = _ort([node.inputs[0], node.outputs[0]], x)
    got = run_float(s.graph, {node.inputs[0]: feed})[node.outputs[0]]
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_remove_head_and_up() -> None:
    s = _session()
    head = s.graph.nodes[7].name  # fc1 and everything after it
    out = remove(s, [head])
    assert len(s.graph.nodes) == 7 and out.outputs == [s.graph.nodes[-1].outputs[0]]
    s = _session()
    out = remove(s, [s.graph.nodes[6].name], up=True, leave=True)  # keep Flatten and below
    assert s.graph.nodes[0].op == "Flatten" and s.graph.tensors[out.inputs[0]].dims == (16, 5, 5)
    with pytest.raises(GraphStateError, match="every node"):
        remove(_session(), ["0"])


def test_remove_between_keeps_shapes() -> None:
    s = _session()
    g = s.graph  # conv1(0) pool(1) relu(2) conv2(3): pool changes the shape, relu does not
    with pytest.raises(GraphStateError, match="changes the shape"):
        remove(s, [g.nodes[0].name, g.nodes[2].name])
    removed = remove(s, [g.nodes[1].name, g.nodes[3].name]).removed
    assert removed == [g.nodes[2].name]  # the relu between pool and conv2
    with pytest.raises(UsageError, match="one node only"):
        remove(_session(), ["0", "3"], up=True)


def test_freeze_keeps_tflite_input_order_through_adjust() -> None:
    s = Session()
    s.open(str(TFLITE))
    assert freeze(s, ["input_1"]) == [("input_1", True)]
    s.adjust()
    assert s.graph.tensors["input_1"].dims == (32, 32, 3)  # still HWC
    s2 = Session()
    s2.open(str(SAMPLE_MODEL))
    freeze(s2, ["input_1"], "1,2,0")  # the ONNX CHW model now takes HWC
    assert s2.graph.tensors["input"].dims == (32, 32, 3)
    x = np.random.default_rng(2).standard_normal((1, 3, 32, 32)).astype(np.float32)
    got = run_float(s2.graph, {"input": x.transpose(0, 2, 3, 1)})["output"]
    np.testing.assert_allclose(got, _ort(["output"], x)[0], rtol=1e-5, atol=1e-5)
    assert freeze(s2, ["output_1"]) == [("output", True)]
    assert freeze(s2, ["output_1"]) == [("output", False)]
    with pytest.raises(UsageError, match="not a permutation"):
        freeze(s2, ["input_1"], "0,1")


def test_shell_cut_commands(shell) -> None:  # noqa: ANN001
    assert shell.run(f"open {SAMPLE_MODEL}")[0]
    ok, out, err = shell.run("remove _fc1_Gemm")
    assert ok, err
    assert out.startswith("removed 5 node(s); inputs: input; outputs:")
    ok, out, err = shell.run("extract 0:2")
    assert ok and out.startswith("extract: removed 4 node(s)"), err
    ok, _, err = shell.run("freeze nothing")
    assert not ok and "'nothing' is not a graph input or output" in err
