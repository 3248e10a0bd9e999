"""SQ8 padding with the input zero point (issue 17): padded convs, pools and global average pools
take asymmetric inputs; ``aquant --nntool_padding`` restores NNTool's symmetric rule.

The reference for a padded layer is onnxruntime running the same layer in float on the
dequantized integer input with the dequantized weights: the integer output must equal it within
one output step at every pixel, the border pixels (where padding is read) included.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from nnshell.errors import NnshellError
from nnshell.exec import run_float
from nnshell.exec.int_exec import run_int
from nnshell.ir import Graph
from nnshell.ops.pool import avg_pool_int
from nnshell.quant.sq8 import QuantOptions, QuantState, quantize_graph
from nnshell.quant.stats import TensorStats
from tests.quant.test_sq8_ops import build


def _quantize(graph: Graph, x: np.ndarray, **opts: bool) -> QuantState:
    stats: dict[str, TensorStats] = {}
    run_float(graph, {"x": x}, observer=lambda n, v: stats.setdefault(n, TensorStats()).update(v))
    return quantize_graph(graph, stats, QuantOptions(**opts))


def _hswish_dw(tmp_path: Path) -> Graph:
    """conv 1x1 + HardSwish (asymmetric output, [-0.375, ...]) -> padded 3x3 depthwise conv."""
    r = np.random.default_rng(5)
    inits = {
        "w1": (r.standard_normal((6, 3, 1, 1)) * 0.8).astype(np.float32),
        "b1": (r.standard_normal(6) + 1.0).astype(np.float32),
        "wd": (r.standard_normal((6, 1, 3, 3)) * 0.5 + 0.2).astype(np.float32),
        "bd": (r.standard_normal(6) * 0.1).astype(np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c"]),
        helper.make_node("HardSwish", ["c"], ["h"]),
        helper.make_node("Conv", ["h", "wd", "bd"], ["y"], pads=[1, 1, 1, 1], group=6),
    ]
    return build(tmp_path, nodes, {"x": (1, 3, 10, 10)}, inits)


def _ort_conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, group: int) -> np.ndarray:
    """onnxruntime's float Conv (pads 1) on real inputs."""
    g = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1], group=group)],
        "c",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [
            numpy_helper.from_array(w.astype(np.float32), "w"),
            numpy_helper.from_array(b.astype(np.float32), "b"),
        ],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.asarray(sess.run(None, {"x": x.astype(np.float32)})[0], np.float64)


def test_padded_depthwise_after_hardswish_is_exact_at_the_borders(tmp_path: Path) -> None:
    graph = _hswish_dw(tmp_path)
    x = np.random.default_rng(1).uniform(-2, 2, (8, 3, 10, 10)).astype(np.float32)
    qs = _quantize(graph, x)
    dw = next(n for n in graph.nodes if n.outputs == ["y"])
    h = dw.inputs[0]
    qin = qs.tensors[h]
    assert qin.zero_point != 0 and qin.forced_by is None  # HardSwish output, not forced
    nq = qs.nodes[dw.name]
    got = run_int(graph, qs, {"x": x}, keep=[h])
    x_real = qin.dequantize(got[h])
    w_real = nq.consts["weights"].astype(np.float64) * nq.consts["weights_scale"].reshape(
        -1, 1, 1, 1
    )
    b_real = nq.consts["biases"].astype(np.float64) * float(qin.scale) * nq.consts["weights_scale"]
    ref = _ort_conv(x_real, w_real, b_real, 6)
    y = qs.tensors["y"].dequantize(got["y"])
    step = float(qs.tensors["y"].scale)
    err = np.abs(y - ref)
    border = np.ones(ref.shape[2:], bool)
    border[1:-1, 1:-1] = False
    assert err[..., border].max() <= 1.01 * step, err[..., border].max() / step
    assert err.max() <= 1.01 * step


def test_nntool_padding_restores_symmetric_inputs(tmp_path: Path) -> None:
    graph = _hswish_dw(tmp_path)
    x = np.random.default_rng(1).uniform(-2, 2, (8, 3, 10, 10)).astype(np.float32)
    qs = _quantize(graph, x, nntool_padding=True)
    dw = next(n for n in graph.nodes if n.outputs == ["y"])
    q = qs.tensors[dw.inputs[0]]
    assert q.zero_point == 0 and "conv with padding" in (q.forced_by or "")
    assert "symmetric padded inputs (NNTool)" in qs.options.describe()


def _pool_graph(tmp_path: Path, op: str, **attrs: object) -> Graph:
    """A ReLU (asymmetric, Z = -128 over [0, max]) conv feeding a pool."""
    r = np.random.default_rng(2)
    inits = {"w": (r.standard_normal((4, 3, 1, 1))).astype(np.float32)}
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node(op, ["r"], ["p"], **attrs),
        helper.make_node("Conv", ["p", "w2"], ["y"]),
    ]
    inits["w2"] = (r.standard_normal((2, 4, 1, 1))).astype(np.float32)
    return build(tmp_path, nodes, {"x": (1, 3, 7, 7)}, inits)


@pytest.mark.parametrize("include", [0, 1])
def test_padded_average_pool_with_zero_point_matches_float(tmp_path: Path, include: int) -> None:
    attrs = {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}
    graph = _pool_graph(tmp_path, "AveragePool", count_include_pad=include, **attrs)
    x = np.random.default_rng(3).uniform(-1, 1, (6, 3, 7, 7)).astype(np.float32)
    qs = _quantize(graph, x)
    pool = next(n for n in graph.nodes if n.outputs == ["p"])
    q = qs.tensors[pool.inputs[0]]
    assert q.zero_point == -128  # ReLU output [0, max], not forced symmetric by the pool
    got = run_int(graph, qs, {"x": x}, keep=[pool.inputs[0], "p"])
    real_in = q.dequantize(got[pool.inputs[0]]).astype(np.float32)
    # onnxruntime's AveragePool on the dequantized input is the reference
    g = helper.make_graph(
        [helper.make_node("AveragePool", ["r"], ["p"], count_include_pad=include, **attrs)],
        "p",
        [helper.make_tensor_value_info("r", TensorProto.FLOAT, list(real_in.shape))],
        [helper.make_tensor_value_info("p", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    want = sess.run(None, {"r": real_in})[0]
    out = qs.tensors["p"].dequantize(got["p"])
    # rounding (half a step) plus floor(65536/count)'s relative error (< count/65536)
    assert np.abs(out - want).max() <= 0.51 * float(q.scale) + 1e-6


@settings(max_examples=40, deadline=None)
@given(
    zp=st.integers(-128, 127),
    include=st.booleans(),
    seed=st.integers(0, 2**16),
    k=st.sampled_from([2, 3]),
)
def test_average_pool_of_a_constant_real_zero_is_the_zero_point(
    zp: int, include: bool, seed: int, k: int
) -> None:
    """A map of real zeros (every code Zi) averages to Zi everywhere, padded borders included:
    the padding is real 0 too (without the zero point, borders of count_include_pad drift)."""
    from types import SimpleNamespace

    from nnshell.ops.pool import PoolAttrs

    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(k, 8)), int(rng.integers(k, 8))
    attrs = PoolAttrs(kernel_shape=(k, k), pads=(1, 1, 1, 1), count_include_pad=int(include))
    node = SimpleNamespace(name="p", attrs=attrs)
    x = np.full((1, 2, h, w), zp, np.int8)
    y = avg_pool_int(x, node, zp)  # type: ignore[arg-type]
    assert np.all(y == zp)


def test_global_average_pool_subtracts_the_zero_point(tmp_path: Path) -> None:
    graph = _pool_graph(tmp_path, "GlobalAveragePool")
    x = np.random.default_rng(4).uniform(-1, 1, (6, 3, 7, 7)).astype(np.float32)
    qs = _quantize(graph, x)
    gap = next(n for n in graph.nodes if n.outputs == ["p"])
    q = qs.tensors[gap.inputs[0]]
    assert q.zero_point == -128 and int(qs.nodes[gap.name].consts["zin"]) == -128
    got = run_int(graph, qs, {"x": x}, keep=[gap.inputs[0], "p"])
    want = q.dequantize(got[gap.inputs[0]]).mean(axis=(2, 3), keepdims=True)
    out = qs.tensors["p"].dequantize(got["p"])
    c = qs.nodes[gap.name].consts
    m_real = float(qs.nodes[gap.name].info["m_real"])
    rel = abs(int(c["mul"]) * 2.0 ** -int(c["shift"]) - m_real) / m_real
    # half an output step, the 8-bit multiplier's error, the truncated mean (7 fraction bits)
    bound = 0.5 * float(qs.tensors["p"].scale) + np.abs(want) * rel + float(q.scale) / 128
    assert np.all(np.abs(out - want) <= bound * 1.001 + 1e-9)
    sym = _quantize(graph, x, nntool_padding=True)
    assert sym.tensors[gap.inputs[0]].zero_point == 0


def _conv_avgpool(tmp_path: Path) -> Graph:
    """Conv 1x1 + padded AveragePool (fused by scale8), then a 1x1 conv."""
    r = np.random.default_rng(6)
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["p0"]),
        helper.make_node(
            "AveragePool",
            ["p0"],
            ["p"],
            kernel_shape=[3, 3],
            pads=[1, 1, 1, 1],
            count_include_pad=1,
        ),
        helper.make_node("Conv", ["p", "w2"], ["y"]),
    ]
    inits = {"w": r.standard_normal((4, 3, 1, 1)), "w2": r.standard_normal((2, 4, 1, 1))}
    return build(tmp_path, nodes, {"x": (1, 3, 8, 8)}, inits)


def test_fused_conv_padded_average_pool_output_asymmetric(tmp_path: Path) -> None:
    """Conv + padded AveragePool fuse: the fusion's output keeps its zero point (the pool
    pads with it) and matches onnxruntime's pool of the conv; --nntool_padding forces it
    symmetric, as before."""
    graph = _conv_avgpool(tmp_path)
    fused = next(n for n in graph.nodes if n.op == "Fused")
    assert [p.op for p in fused.attrs.parts] == ["Conv", "AveragePool"]
    # spatially constant maps: the pool's interior equals the conv, so its range covers the
    # conv's (the fused conv is requantized to the pool's output qtype) and only rounding differs
    x = np.random.default_rng(7).uniform(-1, 1, (8, 3, 1, 1)).astype(np.float32)
    x = np.ascontiguousarray(np.broadcast_to(x, (8, 3, 8, 8)))
    qs = _quantize(graph, x)
    q = qs.tensors[fused.outputs[0]]
    assert q.zero_point != 0 and q.forced_by is None
    ref = run_float(graph, {"x": x}, keep=[fused.outputs[0]])[fused.outputs[0]]
    got = run_int(graph, qs, {"x": x}, keep=[fused.outputs[0]])[fused.outputs[0]]
    # float pool of the float conv vs integer: the conv's rounding and the pool's, borders too
    assert np.abs(q.dequantize(got) - ref).max() <= 1.1 * float(q.scale)
    sym = _quantize(graph, x, nntool_padding=True)
    q = sym.tensors[fused.outputs[0]]
    assert q.zero_point == 0 and "pool with padding" in (q.forced_by or "")


def test_state_round_trip_keeps_the_option(tmp_path: Path) -> None:
    import json

    from nnshell.session import Session
    from nnshell.state import load_state, save_state
    from tests.conftest import CALIB_DIR, SAMPLE_MODEL

    s = Session()
    s.open(str(SAMPLE_MODEL))
    s.adjust()
    s.fusions("scale8")
    calib = sorted(Path(CALIB_DIR).iterdir())[:4]
    for flag in (True, False):
        s.aquant([str(p) for p in calib], nntool_padding=flag)
        j, _ = save_state(s, tmp_path / f"s{flag}.json")
        loaded = load_state(j)
        assert loaded.qstate.options.nntool_padding is flag
    doc = json.loads(j.read_text())
    del doc["quantization"]["options"]["nntool_padding"]  # a state saved before the option
    j.write_text(json.dumps(doc))
    assert load_state(j).qstate.options.nntool_padding is True
    doc["quantization"]["options"]["nntool_padding"] = "yes"
    j.write_text(json.dumps(doc))
    with pytest.raises(NnshellError) as err:
        load_state(j)
    assert "nntool_padding" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("op", ["AveragePool", "GlobalAveragePool", "Conv", "Conv+AveragePool"])
def test_autotiler_refuses_a_zero_point_in_one_line(tmp_path: Path, op: str) -> None:
    from nnshell.codegen.autotiler import generate_autotiler
    from nnshell.settings import defaults

    if op == "Conv+AveragePool":  # the fused pool pads the conv's own output
        x = np.random.default_rng(1).uniform(-2, 2, (8, 3, 8, 8)).astype(np.float32)
        graph = _conv_avgpool(tmp_path)
        qs = _quantize(graph, x)
        fused = next(n for n in graph.nodes if n.op == "Fused")
        with pytest.raises(NnshellError) as err:
            generate_autotiler(graph, qs, defaults(), tmp_path, None, "t", None, False)
        assert str(err.value).startswith(f"{fused.name}: ") and "--nntool_padding" in str(err.value)
        qs = _quantize(graph, x, nntool_padding=True)
        generate_autotiler(graph, qs, defaults(), tmp_path, None, "t", None, False)
        return
    if op == "Conv":
        attrs: dict[str, object] = {"pads": [1, 1, 1, 1], "kernel_shape": [3, 3]}
    elif op == "GlobalAveragePool":
        attrs = {}
    else:
        attrs = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}
    if op == "Conv":
        r = np.random.default_rng(2)
        nodes = [
            helper.make_node("Conv", ["x", "w"], ["c"]),
            helper.make_node("Relu", ["c"], ["r"]),
            helper.make_node("Conv", ["r", "w3"], ["p"], **attrs),
            helper.make_node("Conv", ["p", "w2"], ["y"]),
        ]
        inits = {
            "w": r.standard_normal((4, 3, 1, 1)),
            "w3": r.standard_normal((4, 4, 3, 3)),
            "w2": r.standard_normal((2, 4, 1, 1)),
        }
        graph = build(tmp_path, nodes, {"x": (1, 3, 7, 7)}, inits)
    else:
        graph = _pool_graph(tmp_path, op, **attrs)
    x = np.random.default_rng(1).uniform(-2, 2, (8, 3, 7, 7)).astype(np.float32)
    qs = _quantize(graph, x)
    layer = next(n for n in graph.nodes if n.outputs == ["p"])
    assert qs.tensors[layer.inputs[0]].zero_point == -128
    with pytest.raises(NnshellError) as err:
        generate_autotiler(graph, qs, defaults(), tmp_path, None, "t", None, False)
    msg = str(err.value)
    assert msg.startswith(f"{layer.name}: ") and "aquant --nntool_padding" in msg, msg
    assert "\n" not in msg
    qs = _quantize(graph, x, nntool_padding=True)
    paths = generate_autotiler(graph, qs, defaults(), tmp_path, None, "t", None, False)
    assert "_SQ8(" in paths[0].read_text()


def test_aquant_flag_is_kept_by_later_runs_and_undone(tmp_path: Path) -> None:
    """``aquant --nntool_padding``; a later ``aquant`` keeps it (with a note naming the undo),
    ``--zero_point_padding`` undoes it."""
    import io

    from nnshell.session import Session
    from nnshell.shell.app import make_app, run_command
    from tests.conftest import CALIB_DIR, SAMPLE_MODEL

    s = Session()
    s.open(str(SAMPLE_MODEL))
    s.adjust()
    s.fusions("scale8")
    buf = io.StringIO()
    app = make_app(session=s, stdout=buf)
    calib = " ".join(str(p) for p in sorted(Path(CALIB_DIR).iterdir())[:4])
    assert run_command(app, f"aquant {calib} --nntool_padding")[0]
    assert s.qstate.options.nntool_padding
    assert run_command(app, "aquant --mode mse")[0]
    assert s.qstate.options.nntool_padding
    assert "--nntool_padding (kept from the current quantization; --zero_point_padding" in (
        buf.getvalue()
    )
    assert run_command(app, "aquant --zero_point_padding")[0]
    assert not s.qstate.options.nntool_padding


@settings(max_examples=15, deadline=None)
@given(
    k=st.sampled_from([1, 2, 3]),
    pads=st.tuples(*[st.integers(0, 2)] * 4),
    stride=st.sampled_from([1, 2]),
    dil=st.sampled_from([1, 2]),
    depthwise=st.booleans(),
)
def test_padded_conv_of_real_zero_is_the_bias_everywhere(
    tmp_path_factory: pytest.TempPathFactory,
    k: int,
    pads: tuple[int, int, int, int],
    stride: int,
    dil: int,
    depthwise: bool,
) -> None:
    """An image of real zeros (every input code Zi) through a padded conv gives each channel one
    value at every pixel, borders included: the padding is real 0 as well."""
    if k == 1 and not any(pads):
        pads = (1, 0, 0, 1)
    r = np.random.default_rng(k * 7 + stride)
    c = 4
    w = r.standard_normal((c, 1 if depthwise else c, k, k)).astype(np.float32)
    attrs = {"pads": list(pads), "strides": [stride] * 2, "dilations": [dil] * 2}
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], group=c if depthwise else 1, **attrs)
    inits = {"w": w, "b": r.standard_normal(c)}
    graph = build(tmp_path_factory.mktemp("c"), [node], {"x": (1, c, 7, 8)}, inits)
    x = r.uniform(0, 1, (6, c, 7, 8)).astype(np.float32)
    x[0, 0, 0, 0] = 0.0  # calibrated min exactly 0: an asymmetric input (Z = -128)
    qs = _quantize(graph, x)
    assert qs.tensors["x"].zero_point == -128
    y = run_int(graph, qs, {"x": np.zeros((1, c, 7, 8), np.float32)})["y"]
    for ch in range(c):
        assert np.all(y[0, ch] == y[0, ch].flat[0]), (ch, y[0, ch])
