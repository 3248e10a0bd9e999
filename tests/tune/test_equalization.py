"""weight_equalization and balance_filters (issue 20): library functions and one shell run.

Float results are checked against onnxruntime on the ORIGINAL model; the equalized ranges
against the paper's fixed point (each pair's ranges equal) computed here from the weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from nnshell.errors import GraphStateError, UsageError
from nnshell.exec import run_float
from nnshell.passes import equalize as eq
from nnshell.session import Session
from nnshell.tune.equalization import balance_filters, channel_precision, weight_equalization
from tests.conftest import CALIB_DIR, ROOT, SAMPLE_MODEL

NORM = "x: (x/255 - 0.5)/0.5"
MOBILE = ROOT / "sample_models" / "mobile_net_tiny.onnx"


def _ort(path: Path, x: np.ndarray) -> list[np.ndarray]:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})


def _max_rel(graph, path: Path, x: np.ndarray) -> float:  # noqa: ANN001
    got = run_float(graph, {graph.inputs[0]: x})
    worst = 0.0
    for o, want in zip(graph.outputs, _ort(path, x), strict=True):
        rng = float(want.max() - want.min())
        worst = max(worst, float(np.abs(np.asarray(got[o]) - want).max()) / rng)
    return worst


def _chain_model(path: Path) -> Path:
    """conv(3->8) -> relu -> depthwise(8) -> leaky relu -> conv(8->6) -> relu -> maxpool ->
    flatten -> gemm(transB=0): every kind of pair, with channel ranges spread over 1000x."""
    rng = np.random.default_rng(3)
    spread = np.logspace(-1.5, 1.5, 8).astype(np.float32)

    def init(name: str, a: np.ndarray) -> onnx.TensorProto:
        return numpy_helper.from_array(a.astype(np.float32), name)

    inits = [
        init("w1", rng.standard_normal((8, 3, 3, 3)) * spread[:, None, None, None]),
        init("b1", rng.standard_normal(8)),
        init("w2", rng.standard_normal((8, 1, 3, 3)) / spread[:, None, None, None]),
        init("b2", rng.standard_normal(8)),
        init("w3", rng.standard_normal((6, 8, 1, 1))),
        init("w4", rng.standard_normal((6 * 4 * 4, 5))),
        init("b4", rng.standard_normal(5)),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], group=8),
        helper.make_node("LeakyRelu", ["c2"], ["r2"], alpha=0.1),
        helper.make_node("Conv", ["r2", "w3"], ["c3"]),
        helper.make_node("Relu", ["c3"], ["r3"]),
        helper.make_node("MaxPool", ["r3"], ["p3"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p3"], ["f3"]),
        helper.make_node("Gemm", ["f3", "w4", "b4"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, path)
    return path


def test_chain_pairs_match_their_ranges_and_keep_the_float_outputs(tmp_path: Path) -> None:
    path = _chain_model(tmp_path / "chain.onnx")
    s = Session()
    s.open(str(path))
    x = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)
    before = _max_rel(s.graph, path, x)
    res = weight_equalization(s, 0.001, pow2=False)  # NNTool's exact square-root scales
    assert [len(p) for p in res.pairs] == [2, 2, 2] and res.converged
    assert _max_rel(s.graph, path, x) < 1e-5 and before < 1e-5
    # the paper's fixed point: output ranges of the first = input ranges of the second
    pairs, _ = eq.find_pairs(s.graph)
    for first, second in pairs:
        r1 = eq._out_ranges(s.graph, first)
        r2 = eq._in_ranges(s.graph, second, r1.size)
        np.testing.assert_allclose(r1, r2, rtol=0.01)
    # the 1000x spread of the first conv's channels is gone
    w1 = s.graph.tensors[s.graph.nodes[0].inputs[1]].const
    r = np.abs(w1).reshape(8, -1).max(axis=1)
    assert r.max() / r.min() < 30


def test_power_of_two_scales_keep_every_float_output_bit_for_bit(tmp_path: Path) -> None:
    """The default: scales rounded to powers of two, applied once: the float outputs are the
    unequalized graph's bit for bit, and each pair's ranges match within a small factor."""
    from nnshell.exec import run_float

    path = _chain_model(tmp_path / "chain.onnx")
    s = Session()
    s.open(str(path))
    x = np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32)
    original = s.graph
    res = weight_equalization(s, 0.001)
    assert res.converged and len(res.pairs) == 3
    want = run_float(original, {"x": x})
    got = run_float(s.graph, {"x": x})
    assert np.array_equal(got["y"], want["y"])
    pairs, _ = eq.find_pairs(s.graph)
    for first, second in pairs:
        r1 = eq._out_ranges(s.graph, first)
        r2 = eq._in_ranges(s.graph, second, r1.size)
        ratio = np.maximum(r1 / r2, r2 / r1)
        # each rounded scale is within √2 of the exact one; a middle layer's output range also
        # moves with its own input scale (the neighbouring pair's rounding): at most 2 x 2
        assert ratio.max() <= 4.0
    w1 = s.graph.tensors[s.graph.nodes[0].inputs[1]].const
    r = np.abs(w1).reshape(8, -1).max(axis=1)
    assert r.max() / r.min() < 60


@pytest.mark.parametrize("fused", [False, True])
def test_sample_float_outputs_stay_within_1e5_of_range(fused: bool) -> None:
    s = Session()
    s.open(str(SAMPLE_MODEL))
    s.adjust()
    if fused:
        s.fusions("scale8")
    x = np.random.default_rng(1).uniform(-1, 1, (8, 3, 32, 32)).astype(np.float32)
    res = weight_equalization(s, 0.1)
    assert len(res.pairs) == 4
    assert _max_rel(s.graph, SAMPLE_MODEL, x) < 1e-5


def test_relu6_is_not_positive_homogeneous_so_mobile_net_tiny_is_left_alone() -> None:
    s = Session()
    s.open(str(MOBILE))
    s.adjust()
    s.fusions("scale8")
    graph = s.graph
    res = weight_equalization(s, 0.1)
    assert res.pairs == [] and s.graph is graph  # nothing changed, not even a copy
    assert any("Clip is not positive-homogeneous" in n for n in res.notes)
    x = np.random.default_rng(2).uniform(-1, 1, (2, 3, 32, 32)).astype(np.float32)
    assert _max_rel(s.graph, MOBILE, x) < 1e-5


def test_equalization_drops_the_quantization_and_refuses_a_bad_threshold() -> None:
    s = Session()
    s.open(str(SAMPLE_MODEL))
    s.adjust()
    s.fusions("scale8")
    s.aquant([str(p) for p in sorted(CALIB_DIR.iterdir())[:8]], s.input_options(norm_func=NORM))
    with pytest.raises(UsageError, match="threshold"):
        weight_equalization(s, 0.0)
    assert s.qstate is not None  # a refusal changes nothing
    res = weight_equalization(s, 0.1)
    assert s.qstate is None and any("aquant" in n for n in res.notes)


def test_channel_precision_is_the_channel_range_over_the_tensor_range() -> None:
    w = np.array([[0.0, 1.0], [0.0, 0.1], [-1.0, 1.0]])
    np.testing.assert_allclose(channel_precision(w), [0.5, 0.05, 1.0])


def test_balance_filters_gives_the_imprecise_layers_per_channel_scales() -> None:
    s = Session()
    s.open(str(SAMPLE_MODEL))
    s.adjust()
    s.fusions("scale8")
    files = [str(p) for p in sorted(CALIB_DIR.iterdir())[:8]]
    s.aquant(files, s.input_options(norm_func=NORM), per_tensor=True)
    graph = s.graph
    precs = {
        n.name: float(channel_precision(graph.tensors[n.inputs[1]].const).min())
        for n in graph.nodes
    }
    res = balance_filters(s, threshold=0.2)
    want = sorted(n for n, p in precs.items() if p < 0.2)
    assert want and sorted(n for n, _ in res.balanced) == want
    for node in s.graph.nodes:
        assert node.meta.get("balanced", False) == (node.name in want)
        sw = s.qstate.nodes[node.name].consts.get("weights_scale")
        if sw is not None and node.name in precs:
            # one scale for the whole tensor unless balanced (then one per channel)
            assert (np.ptp(np.atleast_1d(sw)) > 0) == (node.name in want), node.name


def test_balance_filters_refusals() -> None:
    s = Session()
    s.open(str(SAMPLE_MODEL))
    s.adjust()
    with pytest.raises(UsageError, match="-t"):
        balance_filters(s, threshold=1.5)
    from nnshell.codegen.node_options import layer_nntool_steps

    steps = layer_nntool_steps(s.graph)
    pool = next(n.name for n in s.graph.nodes if n.op == "MaxPool")
    with pytest.raises(UsageError, match="MaxPool.* has no filter weights"):
        balance_filters(s, step=steps[pool])
    assert not any(n.meta.get("balanced") for n in s.graph.nodes)
    s.fusions("scale8")
    s.fusions("pow2")
    with pytest.raises(GraphStateError, match="POW2"):
        balance_filters(s)


def test_shell_weight_equalization_and_balance_filters(shell) -> None:  # noqa: ANN001
    for line in (f"open {SAMPLE_MODEL}", "adjust", "fusions --scale8"):
        assert shell.run(line)[0]
    ok, out, err = shell.run("weight_equalization 0.05")
    assert ok, err
    assert "4 layer pair(s), converged" in out and "_fc1_Gemm_fusion: channel range" in out
    ok, out, err = shell.run("weight_equalization 12")
    assert not ok and "threshold 12.0 is not in (0, 10)" in err and "Traceback" not in err
    ok, out, err = shell.run("balance_filters -t 0.2")
    assert ok and "balanced _fc1_Gemm_fusion" in out
    ok, out, err = shell.run("balance_filters -s 6")  # NNTool's S6: the second conv
    assert ok and out.startswith("balanced _conv2_Conv_fusion"), out + err


def test_equalized_weights_and_balance_marks_survive_save_state(tmp_path: Path) -> None:

    model = tmp_path / "cifar_net.onnx"
    model.write_bytes(SAMPLE_MODEL.read_bytes())
    s = Session()
    s.open(str(model))
    s.adjust()
    s.fusions("scale8")
    weight_equalization(s, 0.1)
    s.aquant([str(p) for p in sorted(CALIB_DIR.iterdir())[:8]], s.input_options(norm_func=NORM))
    res = balance_filters(s, threshold=0.2)
    json_path, _npz = s.save_state(str(tmp_path / "st.json"))
    back = Session()
    back.open(str(json_path))
    for node in s.graph.nodes:
        other = back.graph.node(node.name)
        assert other.meta.get("balanced", False) == any(n == node.name for n, _ in res.balanced)
        for a, b in zip(node.inputs, other.inputs, strict=True):
            ca, cb = s.graph.tensors[a].const, back.graph.tensors[b].const
            assert (ca is None) == (cb is None) and (ca is None or np.array_equal(ca, cb))


def test_balancing_every_layer_is_exactly_the_per_channel_quantization() -> None:
    files = [str(p) for p in sorted(CALIB_DIR.iterdir())[:8]]
    qs = {}
    for per_tensor in (True, False):
        s = Session()
        s.open(str(SAMPLE_MODEL))
        s.adjust()
        s.fusions("scale8")
        s.aquant(files, s.input_options(norm_func=NORM), per_tensor=per_tensor)
        if per_tensor:
            plain = s.qstate
            res = balance_filters(s, threshold=1.0)
            assert len(res.balanced) == 5 and s.qstate is not plain
        qs[per_tensor] = s.qstate
    for name, nq in qs[False].nodes.items():
        other = qs[True].nodes[name]
        assert sorted(nq.consts) == sorted(other.consts)
        for key, value in nq.consts.items():
            assert np.array_equal(value, other.consts[key]), (name, key)
