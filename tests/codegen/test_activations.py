"""Issue 17, activations slice: every activation fused into a conv and standalone is bit-exact
in C in SQ8, POW2-16 and POW2-8; ``fusions`` never builds a layer ``aquant`` refuses (every
fusion pattern × every activation × both schemes); QSNR vs float per activation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from nnshell.codegen.verify import verify_arrays
from nnshell.exec import run_float
from nnshell.exec.int_exec import dequantize, run_int
from nnshell.importers.onnx_importer import load_onnx
from nnshell.ir import Graph
from nnshell.ops.fused_act import POW2, SQ8, fusable_activations
from nnshell.passes import run_scheme
from nnshell.quant.pow2 import Pow2Options, quantize_graph_pow2
from nnshell.quant.ranges import RangeMode
from nnshell.quant.sq8 import QuantOptions, quantize_graph
from nnshell.quant.stats import TensorStats
from tests.conftest import ROOT


def _script() -> Any:
    """scripts/make_act_model.py (scripts/ is no package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "make_act_model", ROOT / "scripts" / "make_act_model.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_MAKE = _script()
ACTIVATIONS, build = _MAKE.ACTIVATIONS, _MAKE.build

#: (scheme, bits) of the three integer schemes.
SCHEMES = [("SQ8", 8), ("POW2", 16), ("POW2", 8)]
ALL_ACTS = ["Relu", "Clip", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Swish"]


to_swish = _MAKE.to_swish


def _load(model: onnx.ModelProto, path: Path) -> Graph:
    onnx.save(model, path)
    graph = load_onnx(str(path))
    to_swish(graph)
    return graph


def _quantize(graph: Graph, xs: np.ndarray, scheme: str, bits: int) -> Any:
    stats: dict[str, TensorStats] = {}
    run_float(
        graph,
        {graph.inputs[0]: xs},
        observer=lambda n, v, s=stats: s.setdefault(n, TensorStats()).update(v),
    )
    if scheme == "SQ8":
        return quantize_graph(graph, stats, QuantOptions())
    return quantize_graph_pow2(graph, stats, Pow2Options(RangeMode("minmax"), True, True, bits))


def _labels(graph: Graph) -> set[str]:
    return {"+".join(p.op for p in n.attrs.parts) if n.op == "Fused" else n.op for n in graph.nodes}


def test_every_activation_is_fusable_in_both_schemes() -> None:
    """The registry: an activation is fusable iff its class has the scheme's fused hooks."""
    assert set(ALL_ACTS) <= fusable_activations(SQ8)
    assert set(ALL_ACTS) <= fusable_activations(POW2)
    assert "Elu" not in fusable_activations(SQ8) | fusable_activations(POW2)


@pytest.fixture(scope="module")
def acts_inputs() -> np.ndarray:
    return np.random.default_rng(3).uniform(-2.5, 2.5, (24, 3, 10, 10)).astype(np.float32)


@pytest.mark.parametrize(("scheme", "bits"), SCHEMES)
def test_conv_plus_each_activation_and_each_standalone_bit_exact_in_c(
    tmp_path: Path, acts_inputs: np.ndarray, scheme: str, bits: int
) -> None:
    graph = _load(build(), tmp_path / "acts.onnx")
    run_scheme(graph, "scale8" if scheme == "SQ8" else "pow2")
    labels = _labels(graph)
    assert {f"Conv+{a}" for a in ALL_ACTS} <= labels, labels
    assert set(ALL_ACTS) <= labels, labels
    qstate = _quantize(graph, acts_inputs, scheme, bits)
    res = verify_arrays(graph, qstate, acts_inputs, tmp_path / "build", "acts")
    assert res.ok, res.summary()
    assert res.layers == len(graph.nodes)


def qsnr_table(scheme: str, bits: int, tmp: Path, xs: np.ndarray) -> dict[str, float]:
    """QSNR (dB) of every graph output of the acceptance model vs the float model."""
    graph = _load(build(), tmp / f"q_{scheme}{bits}.onnx")
    run_scheme(graph, "scale8" if scheme == "SQ8" else "pow2")
    qstate = _quantize(graph, xs, scheme, bits)
    ref = run_float(graph, {"x": xs})
    got = run_int(graph, qstate, {"x": xs})
    out: dict[str, float] = {}
    for name in graph.outputs:
        f = np.asarray(ref[name], np.float64)
        q = np.asarray(dequantize(qstate, name, got[name]), np.float64)
        err = float(np.mean((f - q) ** 2))
        out[name] = 10 * np.log10(float(np.mean(f**2)) / max(err, 1e-30))
    return out


@pytest.mark.parametrize(("scheme", "bits"), SCHEMES)
def test_qsnr_of_every_activation(
    tmp_path: Path, acts_inputs: np.ndarray, scheme: str, bits: int
) -> None:
    """>= 25 dB in SQ8 and POW2-8, >= 40 dB in POW2-16, fused and standalone."""
    table = qsnr_table(scheme, bits, tmp_path, acts_inputs)
    floor = 40.0 if bits == 16 else 25.0
    low = {k: round(v, 1) for k, v in table.items() if v < floor}
    assert not low, (scheme, bits, low)


# -- the fusion invariant ---------------------------------------------------------------------

X = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 8, 8])


def _act_nodes(op: str, x: str, y: str, tag: str) -> tuple[list[Any], list[Any]]:
    for _, onnx_op, attrs, consts in ACTIVATIONS:
        if onnx_op == op:
            return _MAKE._act(onnx_op, attrs, consts, x, y, tag)  # type: ignore[no-any-return]
    raise AssertionError(op)


def _conv(x: str, y: str, rng: np.random.Generator, tag: str, pads: int = 1) -> tuple[Any, Any]:
    w = numpy_helper.from_array((rng.standard_normal((4, 4, 3, 3)) * 0.4).astype(np.float32), tag)
    return helper.make_node("Conv", [x, tag], [y], pads=[pads] * 4), w


POOL = {"kernel_shape": [2, 2], "strides": [2, 2]}


def _pattern(kind: str, act: str) -> onnx.ModelProto:
    """A small model with fusion pattern ``kind`` ending (or containing) activation ``act``."""
    rng = np.random.default_rng(7)
    mk = helper.make_node
    nodes: list[Any] = []
    inits: list[Any] = []

    def add_act(src: str, dst: str) -> None:
        ns, cs = _act_nodes(act, src, dst, f"a_{dst}")
        nodes.extend(ns)
        inits.extend(cs)

    def conv(x: str, y: str, tag: str) -> None:
        n, w = _conv(x, y, rng, tag)
        nodes.append(n)
        inits.append(w)

    if kind == "conv_active":
        conv("x", "c", "W")
        add_act("c", "y")
    elif kind == "conv_pool_active":
        conv("x", "c", "W")
        nodes.append(mk("MaxPool", ["c"], ["p"], **POOL))
        add_act("p", "y")
    elif kind == "conv_avgpool_active":
        conv("x", "c", "W")
        nodes.append(mk("AveragePool", ["c"], ["p"], **POOL))
        add_act("p", "y")
    elif kind == "conv_active_pool":
        conv("x", "c", "W")
        add_act("c", "a")
        nodes.append(mk("MaxPool", ["a"], ["y"], **POOL))
    elif kind == "linear_active":
        nodes.append(mk("Flatten", ["x"], ["f"]))
        w = numpy_helper.from_array((rng.standard_normal((256, 6)) * 0.1).astype(np.float32), "L")
        inits.append(w)
        nodes.append(mk("MatMul", ["f", "L"], ["m"]))
        add_act("m", "y")
    elif kind == "pool_active":
        nodes.append(mk("MaxPool", ["x"], ["p"], **POOL))
        add_act("p", "y")
    elif kind == "global_pool_active":
        nodes.append(mk("GlobalAveragePool", ["x"], ["p"]))
        add_act("p", "y")
    elif kind == "add_active":
        conv("x", "c1", "W1")
        conv("x", "c2", "W2")
        nodes.append(mk("Add", ["c1", "c2"], ["s"]))
        add_act("s", "y")
    else:
        raise AssertionError(kind)
    graph = helper.make_graph(
        nodes, "p", [X], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])


PATTERNS = [
    "conv_active",
    "conv_pool_active",
    "conv_avgpool_active",
    "conv_active_pool",
    "linear_active",
    "pool_active",
    "global_pool_active",
    "add_active",
]


@pytest.mark.parametrize("act", ALL_ACTS)
@pytest.mark.parametrize("kind", PATTERNS)
def test_fusions_never_build_a_layer_aquant_refuses(tmp_path: Path, kind: str, act: str) -> None:
    """Every pattern × activation × scheme: whatever ``fusions`` built quantizes and runs; the
    activation of a pattern the scheme fuses ends inside a Fused node."""
    xs = np.random.default_rng(2).uniform(-1, 1, (8, 4, 8, 8)).astype(np.float32)
    for scheme, bits in SCHEMES:
        graph = _load(_pattern(kind, act), tmp_path / f"{kind}_{act}.onnx")
        run_scheme(graph, "scale8" if scheme == "SQ8" else "pow2")
        fused_acts = {p.op for n in graph.nodes if n.op == "Fused" for p in n.attrs.parts[1:]}
        if scheme == "SQ8" or act != "Clip":  # POW2 fuses a Clip as ReLU6 (0, 6): it is one
            assert act in fused_acts, (scheme, kind, [n.op for n in graph.nodes])
        qstate = _quantize(graph, xs, scheme, bits)  # never a QuantizationError
        run_int(graph, qstate, {"x": xs})


def test_swish_exports_to_onnx_for_the_fast_float_path(tmp_path: Path) -> None:
    """ONNX has no Swish: the exporter writes Mul(x, Sigmoid(x)), fused or not, and
    onnxruntime then computes what the float executor computes."""
    import onnxruntime as ort

    from nnshell.exporters.onnx_export import export_onnx

    graph = _load(build(), tmp_path / "acts.onnx")
    run_scheme(graph, "scale8")
    assert "Swish" in _labels(graph) and "Conv+Swish" in _labels(graph)
    xs = np.random.default_rng(4).uniform(-3, 3, (2, 3, 10, 10)).astype(np.float32)
    sess = ort.InferenceSession(export_onnx(graph).SerializeToString())
    names = [o.name for o in sess.get_outputs()]
    got = dict(zip(names, sess.run(None, {"x": xs}), strict=True))
    want = run_float(graph, {"x": xs})
    for name in ("solo_swish", "conv_swish_out"):
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("act", "kop"),
    [
        ("Sigmoid", "KOP_SIGMOID"),
        ("Tanh", "KOP_TANH"),
        ("HardSigmoid", "KOP_HSIGMOID"),
        ("HardSwish", "KOP_HSWISH"),
        ("Swish", "KOP_SWISH"),
    ],
)
def test_autotiler_sq8_refuses_a_fused_function_activation_naming_the_node(
    tmp_path: Path, act: str, kop: str
) -> None:
    """nnshell's int8-table function activations are not the AutoTiler's Q12 kernels: one
    line naming the fused node and the operator, never a silently different model."""
    from nnshell.codegen.autotiler import AutoTilerError, generate_autotiler

    graph = _load(_pattern("conv_active", act), tmp_path / "m.onnx")
    run_scheme(graph, "scale8")
    xs = np.random.default_rng(2).uniform(-1, 1, (8, 4, 8, 8)).astype(np.float32)
    qstate = _quantize(graph, xs, "SQ8", 8)
    fused = next(n for n in graph.nodes if n.op == "Fused")
    with pytest.raises(AutoTilerError, match=kop) as exc:
        generate_autotiler(graph, qstate, {}, tmp_path, None, "t", None, False)
    assert fused.name in str(exc.value)


def test_autotiler_sq8_maps_fused_leaky_relu_to_kop_leakyrelu_with_the_q7_slope(
    tmp_path: Path,
) -> None:
    """NNTool's conv + LeakyReLU: symmetric output, slope 0.1 -> 13 (Q7), KOP_LEAKYRELU."""
    from nnshell.codegen.autotiler import generate_autotiler

    graph = _load(_pattern("conv_active", "LeakyRelu"), tmp_path / "m.onnx")
    run_scheme(graph, "scale8")
    xs = np.random.default_rng(2).uniform(-1, 1, (8, 4, 8, 8)).astype(np.float32)
    qstate = _quantize(graph, xs, "SQ8", 8)
    fused = next(n for n in graph.nodes if n.op == "Fused")
    assert qstate.tensors[fused.outputs[0]].zero_point == 0
    paths = generate_autotiler(graph, qstate, {}, tmp_path, None, "t", None, False)
    text = "".join(Path(p).read_text() for p in paths if str(p).endswith(".c"))
    assert "KOP_LEAKYRELU" in text


def _all_patterns(act: str) -> onnx.ModelProto:
    """Every pattern of :data:`PATTERNS` with ``act``, side by side on one input."""
    nodes: list[Any] = []
    inits: list[Any] = []
    outs: list[Any] = []
    for k, kind in enumerate(PATTERNS):
        g = _pattern(kind, act).graph

        def ren(n: str, k: int = k) -> str:
            return n if n in ("x", "") else f"p{k}_{n}"

        for n in g.node:
            new = onnx.NodeProto()
            new.CopyFrom(n)
            new.name = ren(n.name or n.output[0])
            new.ClearField("input")
            new.ClearField("output")
            new.input.extend(ren(i) for i in n.input)
            new.output.extend(ren(o) for o in n.output)
            nodes.append(new)
        for t in g.initializer:
            new_t = onnx.TensorProto()
            new_t.CopyFrom(t)
            new_t.name = ren(t.name)
            inits.append(new_t)
        outs.append(helper.make_tensor_value_info(ren("y"), TensorProto.FLOAT, None))
    graph = helper.make_graph(nodes, "all", [X], outs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])


@pytest.mark.parametrize("act", ALL_ACTS)
def test_every_pattern_with_each_activation_is_bit_exact_in_c(tmp_path: Path, act: str) -> None:
    """The C of every fusion head (conv with pools, linear, pool, global pool, add) with each
    activation repeats the integer executor in SQ8, POW2-16 and POW2-8."""
    xs = np.random.default_rng(5).uniform(-1, 1, (8, 4, 8, 8)).astype(np.float32)
    for scheme, bits in SCHEMES:
        graph = _load(_all_patterns(act), tmp_path / f"all_{act}.onnx")
        run_scheme(graph, "scale8" if scheme == "SQ8" else "pow2")
        qstate = _quantize(graph, xs, scheme, bits)
        res = verify_arrays(graph, qstate, xs, tmp_path / f"b_{scheme}{bits}", "pats")
        assert res.ok, (scheme, bits, res.summary())


def test_state_with_fused_fixed_format_activations_round_trips(tmp_path: Path) -> None:
    """A fused Sigmoid / Tanh output has a fixed qtype and no calibrated range: save_state
    leaves the NaN range out, so the state reopens (it was refused as malformed)."""
    from PIL import Image

    from nnshell.session import Session
    from nnshell.state import load_state

    graph_model = _pattern("conv_active", "Tanh")
    onnx.save(graph_model, tmp_path / "m.onnx")
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    r = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(r.integers(0, 255, (8, 8, 4), dtype=np.uint8)).save(imgs / f"{i}.png")
    s = Session()
    s.open(str(tmp_path / "m.onnx"))
    s.set("input_norm_func", "x: x/128-1")
    s.fusions("scale8")
    s.aquant([str(imgs)])
    json_path, _ = s.save_state(str(tmp_path / "m.json"))
    st = load_state(json_path)
    assert st is not None


def test_sq8_fused_hardswish_intermediate_spans_minus3_to_the_output_top(tmp_path: Path) -> None:
    """Issue 17 (PP-OCR cls): a conv head requantizes for its HardSwish to int8 over [-3, hi]
    with a zero point (the function is 0 below -3), not over [-hi, hi]: with hi ≈ 12 that is
    about 1.6× finer (here the output's own rounding dominates: 37.1 → 37.7 dB; on the cls
    model, whose depthwise convs amplify it, 10.8 → 13.2 dB). An Add head, whose kernel has no
    zero point, keeps the symmetric intermediate. Bit-exact in C either way."""
    rng = np.random.default_rng(7)
    conv, w = _conv("x", "c", rng, "W", pads=0)
    conv2, w2 = _conv("x", "d", rng, "W2", pads=0)
    nodes = [
        conv,
        helper.make_node("HardSwish", ["c"], ["y"]),
        conv2,
        helper.make_node("Add", ["d", "d"], ["e"]),
        helper.make_node("HardSwish", ["e"], ["z"]),
    ]
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("y", "z")]
    g = helper.make_graph(nodes, "hsw", [X], outs, [w, w2])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])
    graph = _load(model, tmp_path / "hsw.onnx")
    run_scheme(graph, "scale8")
    xs = rng.uniform(-1, 1, (16, 4, 8, 8)).astype(np.float32) * 4
    qs = _quantize(graph, xs, "SQ8", 8)
    by_out = {n.outputs[0]: n for n in graph.nodes}
    conv_nq, add_nq = qs.nodes[by_out["y"].name], qs.nodes[by_out["z"].name]
    hi = (127 - qs.tensors["y"].zero_point) * float(qs.tensors["y"].scale)
    assert hi > 6
    assert conv_nq.info["act_in_scale"] == pytest.approx((hi + 3) / 255, rel=0.02)
    if "act_in_scale" in add_nq.info:  # Add + HardSwish fused: symmetric intermediate
        hz = (127 - qs.tensors["z"].zero_point) * float(qs.tensors["z"].scale)
        assert add_nq.info["act_in_scale"] == pytest.approx(max(3.0, hz) / 127)
    ref = run_float(graph, {"x": xs})["y"].astype(np.float64)
    got = dequantize(qs, "y", run_int(graph, qs, {"x": xs})["y"])
    qsnr = 10 * np.log10((ref**2).sum() / ((ref - got) ** 2).sum())
    assert qsnr > 35
    res = verify_arrays(graph, qs, xs[:4], tmp_path / "build", "hsw")
    assert res.ok, res.summary()
