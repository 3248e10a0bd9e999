"""POW2 (issue 10, POW2.md): Q formats, integer kernels against plain references, the sample
model end to end in 16 and 8 bits, state round trip and scheme mismatch errors."""

from __future__ import annotations

import math
import types
from pathlib import Path

import numpy as np
import pytest

from nnshell.errors import GraphStateError, NnshellError, QuantizationError
from nnshell.exec import run_float
from nnshell.exec.int_exec import run_int
from nnshell.input.images import InputOptions, expand_files, iter_batches
from nnshell.ir import Graph, Node, TensorInfo
from nnshell.ops.pool import PoolAttrs
from nnshell.quant.fixed_pow2 import (
    clip_bits,
    exp_neg_q15,
    int_bits,
    pow2_qtype,
    q_from_range,
    q_of,
    qmn,
    shift_round,
)
from nnshell.quant.pow2 import Pow2Options, quantize_graph_pow2
from nnshell.quant.ranges import RangeMode
from nnshell.quant.stats import TensorStats
from nnshell.session import Session
from tests.conftest import CALIB_DIR, SAMPLE_MODEL, TEST_DIR

NORM = "x: (x/255 - 0.5)/0.5"


# -- POW2.md: choosing q ------------------------------------------------------------------------


def test_pow2_md_examples() -> None:
    assert q_from_range(-3.2, 5.7, 16) == 12
    assert q_from_range(-0.9, 0.9, 16) == 15
    assert q_from_range(-0.5, 1.0, 16) == 14  # max exactly 1.0: one integer bit
    assert q_from_range(0.0, 6.0, 16) == 12  # ReLU6
    assert q_from_range(-3.2, 5.7, 8) == 4
    assert int_bits(0, 0) == 1 and int_bits(-8.0, 1) == 5


def test_too_many_integer_bits_names_the_tensor() -> None:
    with pytest.raises(QuantizationError, match="conv1_out"):
        q_from_range(-70000.0, 3.0, 16, "conv1_out")
    with pytest.raises(QuantizationError, match="x"):
        q_from_range(0.0, 200.0, 8, "x")


def test_qtype_helpers() -> None:
    qt = pow2_qtype(12, 16)
    assert q_of(qt) == 12 and qmn(qt) == "Q3.12" and qt.dtype == np.int16
    assert qt.quantize(np.array([1.0, -8.0, 9.0])).tolist() == [4096, -32768, 32767]
    assert q_of(pow2_qtype(7, 8)) == 7 and pow2_qtype(7, 8).dtype == np.int8
    assert shift_round(5, 1) == 3 and shift_round(-5, 1) == -2 and shift_round(3, -2) == 12
    assert clip_bits(40000, 16) == 32767 and clip_bits(-200, 8) == -128


def test_integer_exp_is_close_to_exp() -> None:
    d = np.arange(0, 1 << 16, dtype=np.int64)
    for q in (4, 12, 15):
        ref = 32768 * np.exp(-d / 2.0**q)
        assert np.abs(exp_neg_q15(d, q) - ref).max() <= 1.0
    assert int(exp_neg_q15(np.array([0]), 12)[0]) == 32768


# -- kernels bit-exact against plain references --------------------------------------------------


def _ref_rnorm(v: int, n: int) -> int:
    return v if n <= 0 else (v + (1 << (n - 1))) >> n


def _graph_conv(rng: np.random.Generator, act: str | None) -> tuple[Graph, dict]:
    from nnshell.ops.conv import ConvAttrs
    from nnshell.ops.fused import FusedAttrs, FusedPart

    g = Graph("t")
    w = rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32)
    b = rng.normal(0, 0.2, 4).astype(np.float32)
    g.tensors["x"] = TensorInfo("x", (1, 3, 6, 6), "float32")
    g.tensors["w"] = TensorInfo("w", w.shape, "float32", w)
    g.tensors["b"] = TensorInfo("b", b.shape, "float32", b)
    g.tensors["y"] = TensorInfo("y", (1, 4, 3, 3), "float32")
    conv = FusedPart("Conv", ConvAttrs(pads=(1, 1, 1, 1)), "c")
    pool = FusedPart("MaxPool", PoolAttrs(kernel_shape=(2, 2), strides=(2, 2)), "p")
    parts = [conv, pool]
    if act == "relu6":
        from nnshell.ops.activation import ClipAttrs

        parts.append(FusedPart("Clip", ClipAttrs(0.0, 6.0), "a"))
    g.nodes.append(Node("f", "Fused", ["x", "w", "b"], ["y"], FusedAttrs(tuple(parts), "cpa")))
    g.inputs, g.outputs = ["x"], ["y"]
    return g, {"w": w, "b": b}


@pytest.mark.parametrize("bits", [16, 8])
def test_fused_conv_pool_relu6_bit_exact(bits: int) -> None:
    rng = np.random.default_rng(1)
    g, c = _graph_conv(rng, "relu6")
    x = rng.uniform(-2, 2, (5, 3, 6, 6)).astype(np.float32)
    stats = {"x": TensorStats(), "y": TensorStats()}
    stats["x"].update(x)
    stats["y"].update(run_float(g, {"x": x})["y"])
    qs = quantize_graph_pow2(g, stats, Pow2Options(RangeMode("minmax"), True, True, bits))
    nq = qs.nodes["f"]
    assert q_of(qs.tensors["y"]) == bits - 4  # ReLU6 bound 6
    xq = qs.tensors["x"].quantize(x)
    got = run_int(g, qs, {"x": xq})["y"]
    assert got.dtype == (np.int16 if bits == 16 else np.int8)
    # plain reference: Python ints, loops
    wq, bq = nq.consts["weights"].astype(int), nq.consts["biases"].astype(int)
    s_in, s_b, s_out = (int(nq.consts[k]) for k in ("in_shift", "bias_shift", "out_shift"))
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    xp = np.pad(xq.astype(int), ((0, 0), (0, 0), (1, 1), (1, 1)))
    ref = np.zeros((5, 4, 3, 3), int)
    six = min(hi, math.floor(6 * 2.0 ** q_of(qs.tensors["y"]) + 0.5))
    for n in range(5):
        conv = np.zeros((4, 6, 6), int)
        for m in range(4):
            for i in range(6):
                for j in range(6):
                    acc = sum(
                        int(wq[m, ci, a, bb]) * _ref_rnorm(int(xp[n, ci, i + a, j + bb]), s_in)
                        for ci in range(3)
                        for a in range(3)
                        for bb in range(3)
                    )
                    acc += int(bq[m]) << s_b
                    v = _ref_rnorm(acc, s_out) if s_out >= 0 else acc << -s_out
                    conv[m, i, j] = min(hi, max(lo, v))
        pooled = conv.reshape(4, 3, 2, 3, 2).max(axis=(2, 4))
        ref[n] = np.clip(pooled, 0, six)
    assert np.array_equal(got.astype(int), ref)


def _one_node_graph(op: str, attrs: object, shapes: list[tuple[int, ...]], out: tuple) -> Graph:
    g = Graph("t")
    names = [f"x{i}" for i in range(len(shapes))]
    for n, s in zip(names, shapes, strict=True):
        g.tensors[n] = TensorInfo(n, s, "float32")
    g.tensors["y"] = TensorInfo("y", out, "float32")
    g.nodes.append(Node("n", op, names, ["y"], attrs, {}))
    g.inputs, g.outputs = names, ["y"]
    return g


def _quantize_one(g: Graph, feeds: dict, bits: int = 16):  # noqa: ANN202
    stats = {}
    vals = run_float(g, feeds, keep=["y"])
    for k, v in {**feeds, "y": vals["y"]}.items():
        stats[k] = TensorStats()
        stats[k].update(v)
    qs = quantize_graph_pow2(g, stats, Pow2Options(RangeMode("minmax"), True, True, bits))
    qfeeds = {k: qs.tensors[k].quantize(v) for k, v in feeds.items()}
    return qs, qfeeds, run_int(g, qs, qfeeds)["y"], vals["y"]


def test_add_aligns_by_shifts() -> None:
    from nnshell.ops.elementwise import BinaryAttrs

    rng = np.random.default_rng(2)
    a = rng.uniform(-0.9, 0.9, (4, 2, 3, 3)).astype(np.float32)  # Q15
    b = rng.uniform(-5, 5, (4, 2, 3, 3)).astype(np.float32)  # Q12
    g = _one_node_graph("Add", BinaryAttrs(), [a.shape, b.shape], a.shape)
    qs, qf, got, _ = _quantize_one(g, {"x0": a, "x1": b})
    qa, qb, qo = (q_of(qs.tensors[t]) for t in ("x0", "x1", "y"))
    qc = max(qa, qb)
    ref = [
        min(32767, max(-32768, _ref_rnorm((int(u) << (qc - qa)) + (int(v) << (qc - qb)), qc - qo)))
        for u, v in zip(qf["x0"].reshape(-1), qf["x1"].reshape(-1), strict=True)
    ]
    assert got.reshape(-1).tolist() == ref


def test_avg_and_global_pool_and_softmax_reference() -> None:
    from nnshell.ops.softmax import SoftmaxAttrs

    rng = np.random.default_rng(3)
    x = rng.uniform(-3, 3, (3, 2, 4, 4)).astype(np.float32)
    g = _one_node_graph(
        "AveragePool", PoolAttrs(kernel_shape=(2, 2), strides=(2, 2)), [x.shape], (1, 2, 2, 2)
    )
    qs, qf, got, ref_f = _quantize_one(g, {"x0": x})
    xi = qf["x0"].astype(int)
    win = xi.reshape(3, 2, 2, 2, 2, 2).sum(axis=(3, 5))
    ref = np.vectorize(lambda v: _ref_rnorm(v * (65536 // 4), 16))(win)
    assert np.array_equal(got.astype(int), ref)
    assert np.abs(qs.tensors["y"].dequantize(got) - ref_f).max() < 2e-3

    g = _one_node_graph("GlobalAveragePool", None, [x.shape], (1, 2, 1, 1))
    qs, qf, got, ref_f = _quantize_one(g, {"x0": x})
    s = qf["x0"].astype(int).sum(axis=(2, 3), keepdims=True) * 128
    t = np.sign(s) * (np.abs(s) // 16)
    sh = q_of(qs.tensors["x0"]) + 7 - q_of(qs.tensors["y"])
    assert np.array_equal(got.astype(int), np.vectorize(lambda v: _ref_rnorm(int(v), sh))(t))

    z = rng.uniform(-4, 4, (5, 10)).astype(np.float32)
    g = _one_node_graph("Softmax", SoftmaxAttrs(axis=1), [z.shape], z.shape)
    g.nodes[0].meta["opset"] = 13
    qs, qf, got, ref_f = _quantize_one(g, {"x0": z})
    assert got.dtype == np.int16 and q_of(qs.tensors["y"]) == 15
    e = exp_neg_q15(
        qf["x0"].max(axis=1, keepdims=True) - qf["x0"].astype(np.int64), q_of(qs.tensors["x0"])
    )
    assert np.array_equal(got, np.minimum(32767, (e << 15) // e.sum(axis=1, keepdims=True)))
    assert np.abs(got / 32768 - ref_f).max() < 1e-3


@pytest.mark.parametrize("op", ["Sigmoid", "Tanh"])
@pytest.mark.parametrize("bits", [16, 8])
def test_sigmoid_tanh_formats(op: str, bits: int) -> None:
    x = np.linspace(-6, 6, 97, dtype=np.float32).reshape(1, 97)
    g = _one_node_graph(op, None, [x.shape], x.shape)
    qs, _, got, ref = _quantize_one(g, {"x0": x}, bits)
    assert q_of(qs.tensors["y"]) == (15 if bits == 16 else 7)
    tol = 1e-4 if bits == 16 else 1.01 / 128
    assert np.abs(qs.tensors["y"].dequantize(got) - ref).max() <= tol


def test_concat_common_q_and_reshape_passthrough() -> None:
    from nnshell.ops.shape_ops import AxisAttrs

    rng = np.random.default_rng(4)
    a = rng.uniform(-0.5, 0.5, (2, 2, 3)).astype(np.float32)
    b = rng.uniform(-6, 6, (2, 3, 3)).astype(np.float32)
    g = _one_node_graph("Concat", AxisAttrs(1), [a.shape, b.shape], (1, 5, 3))
    qs, qf, got, _ = _quantize_one(g, {"x0": a, "x1": b})
    assert q_of(qs.tensors["x0"]) == q_of(qs.tensors["x1"]) == q_of(qs.tensors["y"]) == 12
    assert np.array_equal(got, np.concatenate([qf["x0"], qf["x1"]], axis=1))


# -- the sample model -------------------------------------------------------------------------


def _session(bits: int = 16) -> Session:
    s = Session()
    s.open(str(SAMPLE_MODEL))
    s.set("input_norm_func", NORM)
    s.adjust()
    s.fusions("pow2")
    s.aquant([str(CALIB_DIR)], scheme="POW2", bits=bits)
    return s


@pytest.fixture(scope="module")
def session() -> Session:
    return _session(16)


@pytest.fixture(scope="module")
def test_set() -> np.ndarray:
    files = expand_files([str(TEST_DIR)])
    opts = InputOptions(norm_func=NORM)
    return np.concatenate([b for _, b in iter_batches(files, opts, (3, 32, 32), 256)])


def _layer_qsnr(s: Session, xs: np.ndarray) -> dict[str, float]:
    g, qs = s.graph, s.qstate
    names = [n.outputs[0] for n in g.nodes]
    fl = run_float(g, {g.inputs[0]: xs}, keep=names)
    it = run_int(g, qs, {g.inputs[0]: xs}, keep=names)
    out = {}
    for name in names:
        ref = fl[name].reshape(len(xs), -1).astype(np.float64)
        deq = qs.tensors[name].dequantize(it[name]).reshape(len(xs), -1)
        err = np.maximum(((ref - deq) ** 2).sum(1), 1e-30)
        out[name] = float((10 * np.log10((ref**2).sum(1) / err)).mean())
    return out


def test_pow2_16_qsnr_accuracy_and_codes(session: Session, test_set: np.ndarray) -> None:
    for name, db in _layer_qsnr(session, test_set).items():
        assert db >= 60.0, f"{name}: {db:.1f} dB"
    res = session.validate([str(TEST_DIR)])
    assert res.quant_acc is not None and res.float_acc - res.quant_acc <= 0.003
    g, qs = session.graph, session.qstate
    assert qs.scheme == "POW2"
    assert all(nq.info["scheme"] == "POW2" for nq in qs.nodes.values())
    assert all(q.bits == 16 and q.zero_point == 0 for q in qs.tensors.values())
    # the precision-reduction rule fired on the first conv and left its warning: its
    # accumulator (before the pool and the ReLU) needs 6 integer bits, input Q14 + weights Q15
    # leave 2, so 4 bits go, split 2 / 2 in proportion (NNTool's Q12 / Q13); the input's share
    # went to the graph input's own Q (step 4 of nnshell.quant.pow2): no input pre-shift
    nq1 = qs.nodes[g.nodes[0].name]
    assert q_of(qs.tensors[g.inputs[0]]) == 14 - nq1.info["input_lowered_bits"] == 12
    assert nq1.info["q_w"] == 13 and nq1.info["lost_bits"] == 4
    assert all(int(n.consts["in_shift"]) == 0 for n in qs.nodes.values() if "in_shift" in n.consts)
    assert any(g.nodes[0].name in w and "precision reduced" in w for w in qs.warnings)
    assert any(
        "input Q14->Q12; input 'input' quantized at Q12 by its producer" in w for w in qs.warnings
    )


def test_pow2_16_footprint_is_16_bit(session: Session) -> None:
    fp = session.footprint()
    g = session.graph
    weights = sum(
        int(np.prod(t.shape)) for t in g.tensors.values() if t.is_const and len(t.shape) > 1
    )
    assert sum(r.weight_bytes for r in fp.layers) == 2 * weights
    assert fp.scheme == "POW2-16"
    act = sum(g.tensors[t].size for t in g.inputs) * 2
    assert fp.quant_act_peak >= act and fp.quant_act_peak * 2 == fp.float_act_peak


def test_pow2_8_and_requantize_without_images(test_set: np.ndarray) -> None:
    s = _session(16)
    before = s.stats
    out = s.aquant([], scheme="POW2", bits=8)
    assert out.reused and s.stats is before  # no new pass over the images
    assert all(q.bits == 8 for t, q in s.qstate.tensors.items())
    res = s.validate([str(TEST_DIR)])
    assert res.quant_acc is not None and res.float_acc - res.quant_acc <= 0.02
    assert min(_layer_qsnr(s, test_set).values()) >= 20.0
    fp = s.footprint()
    assert fp.scheme == "POW2-8" and fp.quant_act_peak * 4 == fp.float_act_peak


def test_state_round_trip(session: Session, tmp_path: Path, test_set: np.ndarray) -> None:
    json_path, _ = session.save_state(str(tmp_path / "p.json"))
    s2 = Session()
    s2.open(str(json_path))
    qa, qb = session.qstate, s2.qstate
    assert qb.scheme == "POW2" and qb.options == qa.options and qb.options.bits == 16
    assert qb.options.describe() == qa.options.describe()
    assert qb.tensors == qa.tensors and qb.warnings == qa.warnings
    g = s2.graph
    a = run_int(session.graph, qa, {g.inputs[0]: test_set[:32]})
    b = run_int(g, qb, {g.inputs[0]: test_set[:32]})
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_qshow_footprint_and_aquant_commands(shell) -> None:  # noqa: ANN001
    ok, _, err = shell.run(f"open {SAMPLE_MODEL}")
    assert ok, err
    for line in (f'set input_norm_func "{NORM}"', "adjust", "fusions --pow2"):
        assert shell.run(line)[0]
    ok, out, err = shell.run(f"aquant {CALIB_DIR} -s pow2 -f 16")
    assert ok, err
    assert "POW2 16-bit" in out and "precision reduced" in out
    ok, out, _ = shell.run("qshow")
    assert ok and "Q3.12" in out and "Q15" in out  # the input, lowered from Q1.14 (step 4)
    ok, out, _ = shell.run("qexplain 0")
    assert ok and "POW2 16-bit" in out and "acc = Σ w·x + (b << 10)" in out and "warning" in out
    ok, out, _ = shell.run(f"qerror {TEST_DIR}")
    assert ok and "_fc3_Gemm" in out
    ok, out, _ = shell.run("footprint")
    assert ok and "POW2-16" in out and "Int16 weights" in out
    ok, out, err = shell.run("aquant -s SQ8")
    assert not ok and "fusions --scale8" in out + err


def test_scheme_mismatch_errors() -> None:
    s = Session()
    s.open(str(SAMPLE_MODEL))
    s.adjust()
    s.fusions("scale8")
    with pytest.raises(GraphStateError, match="POW2") as exc:
        s.aquant([str(CALIB_DIR)], scheme="POW2")
    assert exc.value.hint == "fusions --pow2"
    s.fusions("pow2")
    with pytest.raises(GraphStateError, match="SQ8") as exc:
        s.aquant([str(CALIB_DIR)], scheme="SQ8")
    assert exc.value.hint == "fusions --scale8"
    with pytest.raises(NnshellError, match="8 or 16"):
        s.aquant([str(CALIB_DIR)], scheme="POW2", bits=12)


#: Every op with a POW2 quantizer: its own class's hooks, or a data mover base's (_Shape,
#: _ShapeOnly, _PassthroughSQ8) inherited by its subclasses.
POW2_OPS = {
    *("Conv", "Linear", "Fused", "MaxPool", "AveragePool", "GlobalMaxPool", "GlobalAveragePool"),
    *("Add", "Sum", "Concat", "Relu", "Clip", "LeakyRelu", "Sigmoid", "Tanh", "Softmax"),
    *("HardSigmoid", "HardSwish", "Swish"),
    *("Transpose", "Squeeze", "Unsqueeze", "Split", "Slice", "Gather", "Flatten", "Reshape"),
    *("Identity", "Dropout", "Tile", "ConvTranspose"),
    # issue 17: broadcasting binaries and constant affines, Resize, unfolded BatchNormalization
    *("Sub", "Mul", "Div", "Resize", "Upsample", "BatchNormalization"),
    # issue 19: Pad (TFLite PAD / PADV2) moves codes
    "Pad",
}


def test_ops_with_a_pow2_quantizer_and_the_check_naming_the_others() -> None:
    """The pre-calibration check sees each class's own or inherited hook; an op without one
    (Elu, an activation without POW2 hooks; Pow, no quantizer at all) is named."""
    from nnshell.ops import all_ops
    from nnshell.ops.registry import OpDef
    from nnshell.quant.sq8 import describe_unquantizable

    base = OpDef.quantize_pow2
    assert {n for n, op in all_ops().items() if type(op).quantize_pow2 is not base} == POW2_OPS
    for name in POW2_OPS:  # a quantizer comes with its integer kernel and its C emitter
        cls = type(all_ops()[name])
        assert cls.run_int_pow2 is not OpDef.run_int_pow2 and hasattr(cls, "emit_c_pow2")
    ops = ["Conv", "Identity", "Squeeze", "Concat", "Elu", "Pow"]
    graph = types.SimpleNamespace(nodes=[types.SimpleNamespace(name=f"n{o}", op=o) for o in ops])
    bad = describe_unquantizable(graph, "quantize_pow2")  # type: ignore[arg-type]
    assert bad == ["nElu (Elu)", "nPow (Pow)"]
    sq8 = describe_unquantizable(graph, "quantize_sq8")  # type: ignore[arg-type]
    assert sq8 == ["nElu (Elu)", "nPow (Pow)"]
