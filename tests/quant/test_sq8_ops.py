"""SQ8 quantizers and integer kernels of the non-conv ops, one tiny model each.

Every test imports an onnx.helper model, applies the scale8 passes, calibrates with the float
observer, quantizes and runs the integer executor, then checks (a) bit-exactness against a plain
integer reference written here from the SQ8.md formula (Python ints / int64 loops, no nnshell
kernel code) and (b) that the dequantized output is close to the float result.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from nnshell.exec import run_float
from nnshell.exec.int_exec import run_int
from nnshell.importers.onnx_importer import load_onnx
from nnshell.ir import Graph
from nnshell.passes import run_scheme
from nnshell.quant.fixed_point import multiplier
from nnshell.quant.sq8 import QuantOptions, QuantState, quantize_graph
from nnshell.quant.stats import TensorStats

# ------------------------------------------------------------------------------------ helpers


def rhu(v: float) -> int:
    """round_half_up written out: floor(v + 0.5)."""
    return math.floor(v + 0.5)


def rn(v: int, n: int) -> int:
    """SQ8 §1 rnorm on Python ints."""
    return v if n == 0 else (v + (1 << (n - 1))) >> n


def c8(v: int) -> int:
    return min(127, max(-128, v))


def qsnr(ref: np.ndarray, got: np.ndarray) -> float:
    ref = ref.astype(np.float64)
    err = float(((ref - got) ** 2).sum())
    return 10 * math.log10(float((ref**2).sum()) / max(err, 1e-30))


def build(
    tmp: Path,
    nodes: list[onnx.NodeProto],
    inputs: dict[str, tuple[int, ...]],
    inits: dict[str, np.ndarray] | None = None,
    outputs: tuple[str, ...] = ("y",),
) -> Graph:
    g = helper.make_graph(
        nodes,
        "t",
        [
            helper.make_tensor_value_info(k, TensorProto.FLOAT, ["N", *v[1:]])
            for k, v in inputs.items()
        ],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in (inits or {}).items()],
    )
    path = tmp / "m.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    graph = load_onnx(str(path))
    run_scheme(graph, "scale8")
    return graph


class Run:
    """Quantize ``graph`` on ``feeds`` (calibration = test data) and run both executors."""

    def __init__(self, graph: Graph, feeds: dict[str, np.ndarray]) -> None:
        stats: dict[str, TensorStats] = {}
        run_float(
            graph, feeds, observer=lambda n, v, s=stats: s.setdefault(n, TensorStats()).update(v)
        )
        self.graph = graph
        self.qs: QuantState = quantize_graph(graph, stats, QuantOptions())
        keep = [o for n in graph.nodes for o in n.outputs]
        self.fl = run_float(graph, feeds, keep=keep)
        self.it = run_int(graph, self.qs, feeds, keep=keep)
        self.xq = {k: self.qs.tensors[k].quantize(v).astype(np.int64) for k, v in feeds.items()}

    def q(self, name: str):  # noqa: ANN201
        return self.qs.tensors[name]

    def out(self, name: str = "y") -> np.ndarray:
        return self.it[name].astype(np.int64)

    def deq(self, name: str = "y") -> np.ndarray:
        return self.q(name).dequantize(self.it[name])

    def assert_close(self, name: str = "y", lsb: float | None = None, db: float = 30.0) -> None:
        ref, got = self.fl[name].astype(np.float64), self.deq(name)
        if lsb is not None:
            err = float(np.abs(ref - got).max())
            assert err <= lsb * float(self.q(name).scale), f"{name}: error {err:.4g}"
        assert qsnr(ref, got) > db, f"{name}: QSNR {qsnr(ref, got):.1f} dB"


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# ------------------------------------------------------------------------------ pools


def ref_avg_pool(
    xq: np.ndarray, k: int, s: int, pad: int, include_pad: bool, zp: int = 0
) -> np.ndarray:
    """SQ8 §5 average pool with Python ints over every output position (square windows); a
    counted padded position holds the zero point ``zp`` (real 0)."""
    n, c, h, w = xq.shape
    oh, ow = (h + 2 * pad - k) // s + 1, (w + 2 * pad - k) // s + 1
    out = np.zeros((n, c, oh, ow), np.int64)
    for b in range(n):
        for ch in range(c):
            for i in range(oh):
                for j in range(ow):
                    total, count = 0, 0
                    for di in range(k):
                        for dj in range(k):
                            r, q = i * s + di - pad, j * s + dj - pad
                            if 0 <= r < h and 0 <= q < w:
                                total += int(xq[b, ch, r, q])
                                count += 1
                            elif include_pad:
                                total += zp
                                count += 1
                    out[b, ch, i, j] = c8(rn(total * (65536 // count), 16))
    return out


@pytest.mark.parametrize(
    ("k", "s", "pad", "include_pad"), [(2, 2, 0, 0), (3, 2, 1, 0), (3, 1, 1, 1), (3, 3, 0, 0)]
)
def test_average_pool(tmp_path: Path, k: int, s: int, pad: int, include_pad: int) -> None:
    node = helper.make_node(
        "AveragePool",
        ["x"],
        ["y"],
        kernel_shape=[k, k],
        strides=[s, s],
        pads=[pad] * 4,
        count_include_pad=include_pad,
    )
    # y feeds an affine (not a graph output), so the pool keeps an asymmetric input: a padded
    # pool pads with its zero point (issue 17; NNTool forced it symmetric)
    scale = helper.make_node("Mul", ["y", "k"], ["z"])
    x = rng().normal(size=(3, 4, 9, 9)).astype(np.float32)
    x = np.maximum(x, 0)  # min exactly 0: an asymmetric input
    k1 = {"k": np.ones((4, 1, 1))}
    r = Run(build(tmp_path, [node, scale], {"x": x.shape}, k1, ("z",)), {"x": x})
    qx = r.q("x")
    assert r.q("y") == qx  # same qtype in and out
    assert qx.zero_point == -128 and qx.forced_by is None
    want = ref_avg_pool(r.xq["x"], k, s, pad, bool(include_pad), qx.zero_point)
    np.testing.assert_array_equal(r.out(), want)
    r.assert_close(lsb=1.5)


@pytest.mark.parametrize("asym", [False, True])
def test_global_average_pool(tmp_path: Path, asym: bool) -> None:
    node = helper.make_node("GlobalAveragePool", ["x"], ["y"])
    x = (rng(1).normal(size=(4, 6, 5, 7)) + 0.3).astype(np.float32)
    x[0, 0] = -3.0  # a negative mean: exercises the truncating C division
    if asym:  # min exactly 0: an asymmetric input, its zero point subtracted (issue 17)
        x = x - x.min()
    r = Run(build(tmp_path, [node], {"x": x.shape}), {"x": x})
    si, so = float(r.q("x").scale), float(r.q("y").scale)
    zp = r.q("x").zero_point
    assert (zp != 0) is asym and r.q("x").forced_by is None
    m, n = multiplier(si / (so * 128), 1)
    xq = r.xq["x"]
    ref = np.zeros((4, 6, 1, 1), np.int64)
    for b in range(4):
        for c in range(6):
            total = (int(xq[b, c].sum()) - zp * 35) << 7
            t = abs(total) // 35 * (1 if total >= 0 else -1)  # C division truncates
            ref[b, c, 0, 0] = c8(rn(t * m, n))
    np.testing.assert_array_equal(r.out(), ref)
    r.assert_close(lsb=1.5)


def test_global_max_pool_passthrough(tmp_path: Path) -> None:
    node = helper.make_node("GlobalMaxPool", ["x"], ["y"])
    x = rng(2).normal(size=(2, 3, 4, 4)).astype(np.float32)
    r = Run(build(tmp_path, [node], {"x": x.shape}), {"x": x})
    assert r.q("y") == r.q("x")
    np.testing.assert_array_equal(r.out(), r.xq["x"].max(axis=(2, 3), keepdims=True))


@pytest.mark.parametrize("pool", ["AveragePool", "MaxPool", "GlobalAveragePool"])
def test_pool_active_fusion(tmp_path: Path, pool: str) -> None:
    kw = {} if pool.startswith("Global") else {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}
    nodes = [helper.make_node(pool, ["x"], ["p"], **kw), helper.make_node("Relu", ["p"], ["y"])]
    x = rng(3).normal(size=(3, 4, 6, 6)).astype(np.float32)
    g = build(tmp_path, nodes, {"x": x.shape})
    assert [n.op for n in g.nodes] == ["Fused"]
    r = Run(g, {"x": x})
    assert r.q("y").zero_point == 0 and r.q("x").zero_point == 0
    assert int(r.out().min()) >= 0
    # pool then rescale to the (smaller) output scale: 1 output LSB plus the input's rounding
    ratio = float(r.q("x").scale) / float(r.q("y").scale)
    r.assert_close(lsb=1.0 + 0.5 * ratio)


# ------------------------------------------------------------------------------ add / sum


def ref_matadd(codes: list[np.ndarray], scales: list[float], so: float) -> np.ndarray:
    """SQ8 §5 MatAdd: j = the smallest scale, every other input rescaled onto it."""
    j = int(np.argmin(scales))
    mults = [multiplier(s / scales[j], 1) for s in scales]
    mo, no = multiplier(scales[j] / so, 1)
    flat = [np.broadcast_to(c, np.broadcast_shapes(*(x.shape for x in codes))) for c in codes]
    out = np.zeros(flat[0].shape, np.int64)
    for idx in np.ndindex(out.shape):
        acc = int(flat[j][idx])
        for i, c in enumerate(flat):
            if i != j:
                acc += rn(int(c[idx]) * mults[i][0], mults[i][1])
        out[idx] = c8(rn(acc * mo, no))
    return out


def test_add_two_scales(tmp_path: Path) -> None:
    node = helper.make_node("Add", ["a", "b"], ["y"])
    a = rng(4).normal(size=(3, 4, 5, 5)).astype(np.float32)
    b = (3.7 * rng(5).normal(size=(3, 4, 5, 5))).astype(np.float32)
    r = Run(build(tmp_path, [node], {"a": a.shape, "b": b.shape}), {"a": a, "b": b})
    for t in ("a", "b", "y"):
        assert r.q(t).zero_point == 0
    assert "add" in (r.q("a").forced_by or "")
    scales = [float(r.q("a").scale), float(r.q("b").scale)]
    ref = ref_matadd([r.xq["a"], r.xq["b"]], scales, float(r.q("y").scale))
    np.testing.assert_array_equal(r.out(), ref)
    r.assert_close(lsb=2.0)


def test_add_broadcast_and_relu_fusion(tmp_path: Path) -> None:
    nodes = [helper.make_node("Add", ["a", "b"], ["s"]), helper.make_node("Relu", ["s"], ["y"])]
    a = rng(6).normal(size=(2, 4, 5, 5)).astype(np.float32)
    b = (0.3 * rng(7).normal(size=(2, 4, 1, 1))).astype(np.float32)
    g = build(tmp_path, nodes, {"a": a.shape, "b": b.shape})
    assert [n.op for n in g.nodes] == ["Fused"]  # add_active
    r = Run(g, {"a": a, "b": b})
    scales = [float(r.q("a").scale), float(r.q("b").scale)]
    ref = np.maximum(ref_matadd([r.xq["a"], r.xq["b"]], scales, float(r.q("y").scale)), 0)
    np.testing.assert_array_equal(r.out(), ref)
    r.assert_close(lsb=2.0)


def test_sum_of_three(tmp_path: Path) -> None:
    node = helper.make_node("Sum", ["a", "b", "c"], ["y"])
    xs = {k: (s * rng(i).normal(size=(2, 3, 4, 4))).astype(np.float32) for i, (k, s) in
          enumerate((("a", 1.0), ("b", 0.4), ("c", 2.5)))}  # fmt: skip
    g = build(tmp_path, [node], {k: v.shape for k, v in xs.items()})
    assert g.nodes[0].op == "Sum"
    r = Run(g, xs)
    scales = [float(r.q(k).scale) for k in "abc"]
    ref = ref_matadd([r.xq[k] for k in "abc"], scales, float(r.q("y").scale))
    np.testing.assert_array_equal(r.out(), ref)
    r.assert_close(lsb=2.5)


# ------------------------------------------------------------------------------ affine


def ref_affine(xq: np.ndarray, nq, zi: int) -> np.ndarray:  # noqa: ANN001
    """Per-channel affine as a depthwise 1×1 conv: clip8(rnorm((x·Wq + bias_total)·M, N))."""
    wq = nq.consts["weights"].reshape(-1)
    bt, m, n = nq.consts["bias_total"], nq.consts["mul"], nq.consts["shift"]
    out = np.zeros(xq.shape, np.int64)
    for idx in np.ndindex(xq.shape):
        c = idx[1]
        out[idx] = c8(rn((int(xq[idx]) * int(wq[c]) + int(bt[c])) * int(m[c]), int(n[c])))
    # the zero-point offset inside bias_total: -Zi·Wq[c] + round_half_up(Zo·So/(Si·Sw[c]))
    return out


def _check_affine_consts(r: Run, node_name: str, s: np.ndarray, t: np.ndarray) -> None:
    """Weights, bias and multipliers recomputed from SQ8 §3-§4 with plain Python."""
    nq = r.qs.nodes[node_name]
    qi, qo = r.q("x"), r.q("y")
    si, so = float(qi.scale), float(qo.scale)
    for c, (sc, sh) in enumerate(zip(s.astype(np.float64), t.astype(np.float64), strict=True)):
        sw = abs(sc) / 127 if sc != 0 else 1.0
        wq = min(127, max(-127, rhu(sc / sw)))
        assert int(nq.consts["weights"].reshape(-1)[c]) == wq
        bq = rhu(sh / (si * sw))
        off = -qi.zero_point * wq + rhu(qo.zero_point * so / (si * sw))
        assert int(nq.consts["bias_total"][c]) == bq + off
        assert (int(nq.consts["mul"][c]), int(nq.consts["shift"][c])) == multiplier(si * sw / so, 1)


def test_batchnorm_standalone(tmp_path: Path) -> None:
    c = 5
    p = {
        "sc": rng(8).uniform(0.5, 2.0, c) * np.array([1, -1, 1, 1, -1]),
        "bi": rng(9).normal(size=c),
        "mu": rng(10).normal(size=c),
        "var": rng(11).uniform(0.5, 1.5, c),
    }
    node = helper.make_node("BatchNormalization", ["x", "sc", "bi", "mu", "var"], ["y"])
    x = np.maximum(rng(12).normal(size=(3, c, 4, 4)), 0).astype(np.float32)  # asymmetric input
    g = build(tmp_path, [node], {"x": x.shape}, p)
    assert g.nodes[0].op == "BatchNormalization"
    r = Run(g, {"x": x})
    assert r.q("x").zero_point == -128  # no padding: the input keeps its zero point
    inv = p["sc"].astype(np.float32) / np.sqrt(p["var"].astype(np.float32) + np.float32(1e-5))
    shift = p["bi"].astype(np.float32) - p["mu"].astype(np.float32) * inv
    _check_affine_consts(r, g.nodes[0].name, inv, shift)
    nq = r.qs.nodes[g.nodes[0].name]
    np.testing.assert_array_equal(r.out(), ref_affine(r.xq["x"], nq, r.q("x").zero_point))
    r.assert_close(lsb=2.0)


@pytest.mark.parametrize("op", ["Mul", "Add"])
def test_per_channel_constant(tmp_path: Path, op: str) -> None:
    c = 4
    k = (rng(13).uniform(0.3, 2.0, (c, 1, 1)) * np.array([1, -1, 1, 1]).reshape(c, 1, 1)).astype(
        np.float32
    )
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node(op, ["r", "k"], ["y"]),
    ]
    x = rng(14).normal(size=(3, c, 5, 5)).astype(np.float32)
    g = build(tmp_path, nodes, {"x": x.shape}, {"k": k})
    r = Run(g, {"x": x})
    node = g.nodes[-1]
    assert node.op == op
    vec = k.reshape(-1)
    s, t = (vec, np.zeros(c)) if op == "Mul" else (np.ones(c), vec)
    nq = r.qs.nodes[node.name]
    qi = r.q("r")
    # the affine's input is the Relu output (the graph input's qtype: Relu is a passthrough)
    ref_in = np.maximum(r.xq["x"], qi.zero_point)
    np.testing.assert_array_equal(r.out(), ref_affine(ref_in, nq, qi.zero_point))
    assert (int(nq.consts["mul"][0]), int(nq.consts["shift"][0])) == multiplier(
        float(qi.scale) * abs(float(s[0])) / 127 / float(r.q("y").scale), 1
    )
    r.assert_close(lsb=2.0)


def test_add_of_a_spatial_constant_gets_its_own_qtype(tmp_path: Path) -> None:
    """Issue 17: a constant that varies along H and W (a YOLO anchor grid) is no longer refused:
    it gets its own int8 qtype and goes through the broadcasting add (it was "not one value per
    channel" before)."""
    k = rng(15).normal(size=(1, 3, 4, 4)).astype(np.float32)
    node = helper.make_node("Add", ["x", "k"], ["y"])
    x = rng(16).normal(size=(2, 3, 4, 4)).astype(np.float32)
    g = build(tmp_path, [node], {"x": x.shape}, {"k": k})
    Run(g, {"x": x}).assert_close("y", db=30.0)


# ------------------------------------------------------------------------------ softmax


def test_softmax_q15(tmp_path: Path) -> None:
    node = helper.make_node("Softmax", ["x"], ["y"], axis=1)
    x = (2.0 * rng(17).normal(size=(6, 10))).astype(np.float32)
    r = Run(build(tmp_path, [node], {"x": x.shape}), {"x": x})
    qx, qy = r.q("x"), r.q("y")
    assert qx.zero_point == 0 and "softmax" in (qx.forced_by or "")
    assert (float(qy.scale), qy.bits, qy.zero_point) == (2.0**-15, 16, 0)
    assert r.it["y"].dtype == np.int16
    si = float(qx.scale)
    table = [rhu(32768 * math.exp(-d * si)) for d in range(256)]
    ref = np.zeros(x.shape, np.int64)
    for row in range(x.shape[0]):
        codes = [int(v) for v in r.xq["x"][row]]
        mx = max(codes)
        es = [table[mx - v] for v in codes]
        total = sum(es)
        ref[row] = [min(32767, (e << 15) // total) for e in es]
    np.testing.assert_array_equal(r.out(), ref)
    err = np.abs(r.deq() - r.fl["y"]).max()
    assert err < 0.02, err  # the input quantization dominates (Si ~ 2^-5)


def test_softmax_inner_axis_opset13(tmp_path: Path) -> None:
    node = helper.make_node("Softmax", ["x"], ["y"])  # opset 13 default: the last axis
    x = rng(18).normal(size=(2, 3, 7)).astype(np.float32)
    r = Run(build(tmp_path, [node], {"x": x.shape}), {"x": x})
    np.testing.assert_allclose(r.deq().sum(axis=-1), 1.0, atol=2e-3)
    assert np.abs(r.deq() - r.fl["y"]).max() < 0.02


# ------------------------------------------------------------------------------ activations


def test_relu_and_clip_standalone(tmp_path: Path) -> None:
    lo = numpy_helper.from_array(np.array(-0.5, np.float32), "lo")
    hi = numpy_helper.from_array(np.array(0.7, np.float32), "hi")
    nodes = [
        helper.make_node("Relu", ["x"], ["y"]),
        helper.make_node("Clip", ["x2", "lo", "hi"], ["z"]),
    ]
    g = helper.make_graph(
        nodes,
        "t",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 3, 4]) for n in ("x", "x2")],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("y", "z")],
        [lo, hi],
    )
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    graph = load_onnx(str(path))
    run_scheme(graph, "scale8")
    x = rng(19).normal(size=(4, 3, 4)).astype(np.float32)
    r = Run(graph, {"x": x, "x2": x})
    assert r.q("y") == r.q("x") and r.q("z") == r.q("x2")
    np.testing.assert_array_equal(r.out("y"), np.maximum(r.xq["x"], 0))
    s = float(r.q("x2").scale)
    np.testing.assert_array_equal(r.out("z"), np.clip(r.xq["x2"], rhu(-0.5 / s), rhu(0.7 / s)))
    r.assert_close("y", lsb=0.5)
    r.assert_close("z", lsb=0.5)


TABLE_FUNCS: dict[str, Callable[[float], float]] = {
    "Sigmoid": lambda v: 1 / (1 + math.exp(-v)),
    "Tanh": math.tanh,
    "HardSigmoid": lambda v: max(0.0, min(1.0, 0.2 * v + 0.5)),
    "HardSwish": lambda v: v * max(0.0, min(1.0, v / 6 + 0.5)),
    "LeakyRelu": lambda v: v if v >= 0 else 0.01 * v,
}


@pytest.mark.parametrize("op", sorted(TABLE_FUNCS))
def test_table_activations(tmp_path: Path, op: str) -> None:
    node = helper.make_node(op, ["x"], ["y"])
    x = (3.0 * rng(20).normal(size=(4, 3, 6, 6))).astype(np.float32)
    r = Run(build(tmp_path, [node], {"x": x.shape}), {"x": x})
    qx, qy = r.q("x"), r.q("y")
    if op in ("Sigmoid", "Tanh"):
        assert qx.zero_point == 0 and op.lower() in (qx.forced_by or "")
    if op in ("Sigmoid", "Tanh", "HardSigmoid"):
        assert (float(qy.scale), qy.zero_point) == (1 / 127, 0)
    f = TABLE_FUNCS[op]
    si, so = float(qx.scale), float(qy.scale)
    table = {c: c8(rhu(f((c - qx.zero_point) * si) / so) + qy.zero_point) for c in range(-128, 128)}
    ref = np.vectorize(table.__getitem__)(r.xq["x"])
    np.testing.assert_array_equal(r.out(), ref)
    # one output LSB, plus the input quantization error times the largest slope
    slope = {"Sigmoid": 0.25, "Tanh": 1.0, "HardSigmoid": 0.2, "HardSwish": 1.5, "LeakyRelu": 1}
    r.assert_close(lsb=0.5 + slope[op] * 0.5 * si / so + 1e-9, db=25.0)


def test_sigmoid_after_conv_is_fused_and_quantized(tmp_path: Path) -> None:
    """What `fusions` builds `aquant` accepts (issue 17): the conv requantizes to the sigmoid's
    intermediate qtype, a table gives int8 at 1/127 (docs/activations.md)."""
    w = rng(21).normal(size=(2, 3, 1, 1)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node("Sigmoid", ["c"], ["y"])]
    x = rng(22).normal(size=(2, 3, 4, 4)).astype(np.float32)
    g = build(tmp_path, nodes, {"x": x.shape}, {"w": w})
    assert [n.op for n in g.nodes] == ["Fused"]
    r = Run(g, {"x": x})
    assert (float(r.q("y").scale), r.q("y").zero_point) == (1 / 127, 0)
    r.assert_close(lsb=2.0, db=25.0)


# ------------------------------------------------------------------------------ concat


def ref_rescale(x: np.ndarray, qi, qo) -> np.ndarray:  # noqa: ANN001
    if qi == qo:
        return x
    m, n = multiplier(float(qi.scale) / float(qo.scale), 1)
    f = np.vectorize(lambda v: c8(rn((int(v) - qi.zero_point) * m, n) + qo.zero_point))
    return f(x).astype(np.int64)


def test_concat_of_maxpool_and_chained_concat(tmp_path: Path) -> None:
    """A max pool and a Concat feeding a wider Concat share one qtype: nothing is rescaled."""
    nodes = [
        helper.make_node("MaxPool", ["a"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Concat", ["p", "b"], ["c1"], axis=1),
        helper.make_node("Concat", ["c1", "d"], ["y"], axis=1),
    ]
    a = rng(23).normal(size=(3, 2, 8, 8)).astype(np.float32)
    b = (2.0 * rng(24).normal(size=(3, 2, 4, 4))).astype(np.float32)
    d = (5.0 * rng(25).normal(size=(3, 2, 4, 4))).astype(np.float32)
    g = build(tmp_path, nodes, {"a": a.shape, "b": b.shape, "d": d.shape})
    r = Run(g, {"a": a, "b": b, "d": d})
    group = [r.q(t) for t in ("a", "p", "b", "c1", "d", "y")]
    assert all(q == group[0] for q in group)  # one group: the union of the ranges
    assert np.isclose(float(group[0].scale), max(np.abs(x).max() for x in (a, b, d)) / 127)
    pooled = r.xq["a"].reshape(3, 2, 4, 2, 4, 2).max(axis=(3, 5))
    ref = np.concatenate([pooled, r.xq["b"], r.xq["d"]], axis=1)
    np.testing.assert_array_equal(r.out(), ref)
    for node in g.nodes:
        assert not any(k.endswith("_mul") for k in r.qs.nodes[node.name].consts)
    r.assert_close(lsb=2.0)
