"""gen --target c for POW2 graphs (issue 10): the generated C99 (kernels in nn_pow2.c) builds
with -Werror, matches the Python POW2 integer executor bit for bit on every layer of the sample
models in 16 and 8 bits and of a zoo graph exercising every POW2 kernel, carries ``_Q`` in its
header, and its memory figures equal ``footprint``'s."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from nnshell.codegen.c_emitter import render_c, runtime_text, write_model
from nnshell.codegen.verify import CFLAGS, verify_arrays
from nnshell.errors import CodegenError
from nnshell.exec import run_float
from nnshell.importers.onnx_importer import load_onnx
from nnshell.passes import run_scheme
from nnshell.quant.fixed_pow2 import EXP2_TABLE, exp_neg_q15, q_of
from nnshell.quant.pow2 import Pow2Options, quantize_graph_pow2
from nnshell.quant.ranges import RangeMode
from nnshell.quant.stats import TensorStats
from nnshell.session import Session
from tests.conftest import CALIB_DIR, ROOT, SAMPLE_MODEL, TEST_DIR

pytestmark = pytest.mark.skipif(
    shutil.which("gcc") is None, reason="gen --target c tests need gcc on PATH (CI has it)"
)

NORM = "x: (x/255 - 0.5)/0.5"
MOBILE_NET = ROOT / "sample_models" / "mobile_net_tiny.onnx"
TEST_IMAGES = len(list(TEST_DIR.glob("*.png")))


def _session(model: Path, bits: int) -> Session:
    s = Session()
    s.open(str(model))
    s.set("input_norm_func", NORM)
    s.adjust()
    s.fusions("pow2")
    s.aquant([str(CALIB_DIR)], scheme="POW2", bits=bits)
    return s


@pytest.fixture(scope="module")
def lenet16() -> Session:
    return _session(SAMPLE_MODEL, 16)


def _strip_comments(text: str) -> str:
    return re.sub(r"/\*.*?\*/|//[^\n]*", "", text, flags=re.S)


# ------------------------------------------------------------------------- sample models


def test_pow2_16_verify_bit_exact_on_all_test_images(lenet16: Session) -> None:
    res = lenet16.gen_verify([str(TEST_DIR)])
    assert res.ok, res.summary()
    assert res.images == TEST_IMAGES and res.layers == len(lenet16.graph.nodes)
    fp = lenet16.footprint()
    assert res.arena_bytes == fp.quant_act_peak
    assert res.const_bytes == fp.quant_params


@pytest.mark.parametrize(("model", "bits"), [("cifar", 8), ("mobile", 16), ("mobile", 8)])
def test_verify_bit_exact_other_models_and_widths(model: str, bits: int) -> None:
    path = SAMPLE_MODEL if model == "cifar" else MOBILE_NET
    s = _session(path, bits)
    res = s.gen_verify([str(TEST_DIR)])
    assert res.ok, res.summary()
    assert res.images == TEST_IMAGES
    assert res.arena_bytes == s.footprint().quant_act_peak


def test_header_q_defines_and_types(lenet16: Session, tmp_path: Path) -> None:
    paths = lenet16.gen_c(str(tmp_path), "net")
    names = sorted(p.name for p in paths)
    assert names == sorted(
        [
            "net.c",
            "net.h",
            "net_harness.c",
            "nn_kernels.c",
            "nn_kernels.h",
            "nn_pow2.c",
            "nn_pow2.h",
        ]
    )
    header = (tmp_path / "net.h").read_text()
    g, qs = lenet16.graph, lenet16.qstate
    assert f"#define NET_INPUT_0_Q {q_of(qs.tensors[g.inputs[0]])}" in header
    for k, node in enumerate(g.nodes):
        assert f"#define NET_S{k}_Q {q_of(qs.tensors[node.outputs[0]])}" in header
    assert '#include "nn_pow2.h"' in header and "void *net_input(int index);" in header
    source = (tmp_path / "net.c").read_text()
    assert "POW2 integer inference in 5 steps" in source
    assert source.count("nn_p2_conv(") == 2 and source.count("nn_p2_linear(") == 3
    assert "static const int16_t" in source and "int8_t s0_weights" not in source
    code = _strip_comments(source + (tmp_path / "nn_pow2.c").read_text())
    assert not re.search(r"\b(malloc|calloc|realloc|free|float|double)\b", code)
    # generation is deterministic
    again = render_c(g, qs, "net")
    assert again.files["net.c"] == source


def test_generated_code_compiles_pedantic(lenet16: Session, tmp_path: Path) -> None:
    model = render_c(lenet16.graph, lenet16.qstate, "net")
    write_model(model, tmp_path)
    cmd = ["gcc", *CFLAGS, "-pedantic", "-c", *model.sources]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_c_exp_table_is_the_python_table() -> None:
    text = runtime_text("nn_pow2.c")
    body = re.search(r"nn_p2_exp2_table\[257\] = \{(.*?)\};", text, re.S)
    assert body is not None
    values = [int(v) for v in body.group(1).replace("\n", " ").split(",") if v.strip()]
    assert values == EXP2_TABLE.tolist()


def test_c_exp_matches_python_on_every_input(tmp_path: Path) -> None:
    """nn_p2_exp_neg_q15 against fixed_pow2.exp_neg_q15 for d in 0..131071 and several q."""
    for f in ("nn_kernels.h", "nn_kernels.c", "nn_pow2.h", "nn_pow2.c"):
        (tmp_path / f).write_text(runtime_text(f))
    (tmp_path / "main.c").write_text(
        '#include <stdio.h>\n#include "nn_pow2.h"\n'
        "int main(void)\n{\n    int q;\n    long d;\n"
        "    for (q = 0; q <= 15; q += 3) {\n"
        '        for (d = 0; d < 131072; d++) { printf("%lld\\n", '
        "(long long)nn_p2_exp_neg_q15(d, q)); }\n    }\n    return 0;\n}\n"
    )
    cmd = ["gcc", *CFLAGS, "-o", "exp", "main.c", "nn_pow2.c", "nn_kernels.c"]
    subprocess.run(cmd, cwd=tmp_path, check=True, capture_output=True)
    out = subprocess.run([str(tmp_path / "exp")], capture_output=True, text=True, check=True)
    got = np.array(out.stdout.split(), np.int64).reshape(-1, 131072)
    d = np.arange(131072, dtype=np.int64)
    for row, q in zip(got, range(0, 16, 3), strict=True):
        assert np.array_equal(row, exp_neg_q15(d, q)), f"q={q}"


def test_gen_c_of_a_pow2_graph_with_formatter_free_input_writes_int16_codes(
    lenet16: Session,
) -> None:
    model = render_c(lenet16.graph, lenet16.qstate, "net")
    assert model.input_bytes == [3 * 32 * 32 * 2]
    assert model.runtime[-2:] == ("nn_pow2.h", "nn_pow2.c")


# ------------------------------------------------------------------- every POW2 kernel


def _zoo_model(path: Path) -> None:
    """Every op with a POW2 C kernel: padded conv + LeakyReLU, count_include_pad average pool,
    max pool, Concat, dilated depthwise conv + ReLU6, 1x1 conv, Add + ReLU, conv + average pool
    + ReLU, Sigmoid, Tanh, Transpose, global max / average pools, Flatten, Gemm, Softmax."""
    r = np.random.default_rng(7)

    def w(*shape: int, scale: float = 0.3) -> np.ndarray:
        return (r.standard_normal(shape) * scale).astype(np.float32)

    inits = {
        "W1": w(8, 3, 3, 3),
        "B1": w(8),
        "Wd": w(16, 1, 3, 3),
        "lo": np.array(0.0, np.float32),
        "hi": np.array(6.0, np.float32),
        "W3": w(16, 16, 1, 1),
        "W4": w(8, 16, 3, 3),
        "B4": w(8),
        "Wl": w(10, 16),
        "Bl": w(10),
    }
    mk = helper.make_node
    nodes = [
        mk("Conv", ["x", "W1", "B1"], ["c1"], pads=[1, 1, 1, 1]),
        mk("LeakyRelu", ["c1"], ["a1"], alpha=0.1),
        mk(
            "AveragePool",
            ["a1"],
            ["ap"],
            kernel_shape=[3, 3],
            strides=[2, 2],
            pads=[1, 1, 1, 1],
            count_include_pad=1,
        ),
        mk("MaxPool", ["a1"], ["mp"], kernel_shape=[2, 2], strides=[2, 2]),
        mk("Concat", ["ap", "mp"], ["cat"], axis=1),
        mk("Conv", ["cat", "Wd"], ["dw"], group=16, dilations=[2, 2], pads=[2, 2, 2, 2]),
        mk("Clip", ["dw", "lo", "hi"], ["r6"]),
        mk("Conv", ["r6", "W3"], ["c3"]),
        mk("Add", ["c3", "cat"], ["ad"]),
        mk("Relu", ["ad"], ["ar"]),
        mk("Conv", ["ar", "W4", "B4"], ["c4"], pads=[1, 1, 1, 1]),
        mk("AveragePool", ["c4"], ["p4"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        mk("Relu", ["p4"], ["r4"]),
        mk("Sigmoid", ["r4"], ["sg"]),
        mk("Tanh", ["c4"], ["th"]),
        mk("Transpose", ["sg"], ["st"], perm=[0, 1, 3, 2]),
        mk("GlobalMaxPool", ["st"], ["gm"]),
        mk("GlobalAveragePool", ["th"], ["ga"]),
        mk("Concat", ["gm", "ga"], ["cat2"], axis=1),
        mk("Flatten", ["cat2"], ["f"]),
        mk("Gemm", ["f", "Wl", "Bl"], ["lin"], transB=1),
        mk("Softmax", ["lin"], ["y"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "zoo",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 12, 12])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))


@pytest.mark.parametrize("bits", [16, 8])
def test_every_pow2_kernel_bit_exact_on_a_zoo_model(tmp_path: Path, bits: int) -> None:
    _zoo_model(tmp_path / "zoo.onnx")
    graph = load_onnx(str(tmp_path / "zoo.onnx"))
    run_scheme(graph, "pow2")
    xs = np.random.default_rng(1).uniform(-1, 1, (64, 3, 12, 12)).astype(np.float32)
    stats: dict[str, TensorStats] = {}
    run_float(
        graph, {"x": xs}, observer=lambda n, v, s=stats: s.setdefault(n, TensorStats()).update(v)
    )
    opts = Pow2Options(RangeMode("minmax"), True, True, bits)
    qstate = quantize_graph_pow2(graph, stats, opts)
    labels = {
        "+".join(p.op for p in n.attrs.parts) if n.op == "Fused" else n.op for n in graph.nodes
    }
    assert {"Conv+LeakyRelu", "AveragePool", "MaxPool", "Concat", "Conv+Clip"} <= labels
    assert {"Add+Relu", "Conv", "Sigmoid", "Tanh", "Softmax", "Transpose"} <= labels
    assert {"GlobalMaxPool", "GlobalAveragePool", "Linear"} <= labels
    res = verify_arrays(graph, qstate, xs, tmp_path / "build", "zoo")
    assert res.ok, res.summary()
    assert res.layers == len(graph.nodes)


def test_sq8_only_kernel_in_a_pow2_graph_is_refused(lenet16: Session) -> None:
    """A node whose op has no POW2 C hook is refused with the node named, never miscompiled."""
    from nnshell.ops import get_op

    graph, qs = lenet16.graph, lenet16.qstate
    fused = get_op("Fused")
    hook = fused.emit_c_pow2  # type: ignore[attr-defined]
    try:
        del type(fused).emit_c_pow2
        with pytest.raises(CodegenError, match=graph.nodes[0].name):
            render_c(graph, qs, "net")
    finally:
        type(fused).emit_c_pow2 = hook  # type: ignore[attr-defined]


def test_one_liner_pow2_flow_to_verified_c(tmp_path: Path) -> None:
    """The whole POW2-16 flow as a user types it: fusions --pow2, aquant -s POW2 -f 16, the
    footprint in 16-bit sizes, gen --target c --verify on every test image."""
    import sys

    line = (
        f"open {SAMPLE_MODEL}; adjust; fusions --pow2; "
        f'aquant {CALIB_DIR} -s POW2 -f 16 -N "{NORM}"; footprint; '
        f'gen --target c -M {tmp_path / "c"} --verify {TEST_DIR} -N "{NORM}"'
    )
    proc = subprocess.run(
        [sys.executable, "-m", "nnshell", "-c", line],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"gen --verify: bit-exact on {TEST_IMAGES} images, 5 layers" in proc.stdout
    # every parameter (weights and biases) is one int16: 2 bytes each, no multipliers
    params = sum(
        int(np.prod(t.shape)) for t in load_onnx(str(SAMPLE_MODEL)).tensors.values() if t.is_const
    )
    assert f"constants {2 * params} bytes" in proc.stdout and "POW2-16" in proc.stdout
    assert (tmp_path / "c" / "nn_pow2.c").exists()


def test_reopened_state_generates_the_same_c(lenet16: Session, tmp_path: Path) -> None:
    json_path, _ = lenet16.save_state(str(tmp_path / "p2.json"))
    again = Session()
    again.open(str(json_path))
    a = render_c(lenet16.graph, lenet16.qstate, "net")
    b = render_c(again.graph, again.qstate, "net")
    assert a.files == b.files


def test_conv_input_pre_shift_bit_exact(tmp_path: Path) -> None:
    """A tanh output (Q15, a format the op imposes) read by two convs keeps its Q, so the
    accumulator budget pre-shifts it inside each conv (``in_shift`` > 0): the C repeats that
    shift bit for bit. (Any other producer would write the lower Q itself: step 4 of
    ``nnshell.quant.pow2``.)"""
    r = np.random.default_rng(5)
    inits = {
        "Wa": (r.standard_normal((6, 4, 3, 3)) * 0.6).astype(np.float32),
        "Wb": (r.standard_normal((6, 4, 1, 1)) * 0.6).astype(np.float32),
    }
    mk = helper.make_node
    nodes = [
        mk("Tanh", ["x"], ["t"]),
        mk("Conv", ["t", "Wa"], ["a"], pads=[1, 1, 1, 1]),
        mk("Conv", ["t", "Wb"], ["b"]),
        mk("Add", ["a", "b"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "shift",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), tmp_path / "s.onnx"
    )
    g = load_onnx(str(tmp_path / "s.onnx"))
    run_scheme(g, "pow2")
    xs = np.random.default_rng(6).uniform(-0.99, 0.99, (32, 4, 8, 8)).astype(np.float32)
    stats: dict[str, TensorStats] = {}
    run_float(g, {"x": xs}, observer=lambda n, v, s=stats: s.setdefault(n, TensorStats()).update(v))
    qs = quantize_graph_pow2(g, stats, Pow2Options(RangeMode("minmax"), True, True, 16))
    shifts = [int(nq.consts["in_shift"]) for nq in qs.nodes.values() if "in_shift" in nq.consts]
    assert len(shifts) == 2 and min(shifts) > 0, shifts
    assert q_of(qs.tensors["t"]) == 15  # the tanh's own format: never lowered
    res = verify_arrays(g, qs, xs, tmp_path / "build", "shift")
    assert res.ok, res.summary()


@st.composite
def _conv_chains(draw: st.DrawFn) -> dict:
    """A random conv (kernel, stride, dilation, padding, groups) optionally followed by a pool
    and an activation, with random weights."""
    cin = draw(st.sampled_from([1, 2, 4]))
    group = draw(st.sampled_from([g for g in (1, 2, 4) if cin % g == 0]))
    cout = group * draw(st.integers(1, 3))
    k = draw(st.integers(1, 4))
    return {
        "cin": cin,
        "cout": cout,
        "group": group,
        "k": k,
        "stride": draw(st.integers(1, 2)),
        "dil": draw(st.integers(1, 2)),
        "pads": draw(st.lists(st.integers(0, k - 1), min_size=4, max_size=4)),
        "pool": draw(st.sampled_from([None, "MaxPool", "AveragePool"])),
        "act": draw(st.sampled_from([None, "Relu", "LeakyRelu", "Clip"])),
        "bits": draw(st.sampled_from([8, 16])),
        "seed": draw(st.integers(0, 2**16)),
    }


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_conv_chains())
def test_random_conv_chains_bit_exact(spec: dict) -> None:
    """Property: for any conv geometry, with or without a fused pool and activation, in 8 or
    16 bits, the generated C equals the POW2 executor on every layer."""
    import tempfile

    r = np.random.default_rng(spec["seed"])
    w = r.standard_normal((spec["cout"], spec["cin"] // spec["group"], spec["k"], spec["k"]))
    inits = {
        "W": (w * 0.5).astype(np.float32),
        "B": (r.standard_normal(spec["cout"]) * 0.1).astype(np.float32),
        "lo": np.array(0.0, np.float32),
        "hi": np.array(6.0, np.float32),
    }
    mk = helper.make_node
    nodes = [
        mk(
            "Conv",
            ["x", "W", "B"],
            ["c"],
            strides=[spec["stride"]] * 2,
            dilations=[spec["dil"]] * 2,
            pads=spec["pads"],
            group=spec["group"],
        )
    ]
    last = "c"
    if spec["pool"]:
        nodes.append(mk(spec["pool"], [last], ["p"], kernel_shape=[2, 2], strides=[2, 2]))
        last = "p"
    if spec["act"] == "Clip":
        nodes.append(mk("Clip", [last, "lo", "hi"], ["a"]))
        last = "a"
    elif spec["act"]:
        nodes.append(mk(spec["act"], [last], ["a"]))
        last = "a"
    nodes.append(mk("Identity", [last], ["y"]))
    graph = helper.make_graph(
        nodes,
        "prop",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", spec["cin"], 11, 9])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p.onnx"
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
        g = load_onnx(str(path))
        run_scheme(g, "pow2")
        xs = r.uniform(-2, 2, (8, spec["cin"], 11, 9)).astype(np.float32)
        stats: dict[str, TensorStats] = {}
        run_float(
            g,
            {g.inputs[0]: xs},
            observer=lambda n, v, s=stats: s.setdefault(n, TensorStats()).update(v),
        )
        opts = Pow2Options(RangeMode("minmax"), True, True, spec["bits"])
        qs = quantize_graph_pow2(g, stats, opts)
        res = verify_arrays(g, qs, xs, Path(tmp) / "build", "prop")
        assert res.ok, res.summary()


def test_tiny_weights_get_more_fractional_bits_bit_exact(tmp_path: Path) -> None:
    """Issue 17 (PP-OCRv4 det): a conv whose weights are all ~1e-4 reading a ±2000 input. The
    POW2.md rule alone gives them Q15, codes within ±8 (3 bits, output ≈ 20 dB); below half the
    container they get the Q that fills it, within the accumulator budget, and the layer is as
    accurate as one with ordinary weights. Ordinary weights (peak 0.9 here) keep NNTool's Q15.
    The C repeats the larger shifts bit for bit."""
    r = np.random.default_rng(11)
    inits = {
        "Wt": (r.standard_normal((6, 4, 3, 3)) * 1e-4).astype(np.float32),
        "Wn": np.clip(r.standard_normal((6, 6, 1, 1)) * 0.3, -0.9, 0.9).astype(np.float32),
    }
    mk = helper.make_node
    nodes = [
        mk("Conv", ["x", "Wt"], ["t"], pads=[1, 1, 1, 1]),
        mk("Conv", ["t", "Wn"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    onnx.save(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), tmp_path / "t.onnx"
    )
    g = load_onnx(str(tmp_path / "t.onnx"))
    run_scheme(g, "pow2")
    xs = np.random.default_rng(12).uniform(-2000, 2000, (16, 4, 8, 8)).astype(np.float32)
    stats: dict[str, TensorStats] = {}
    run_float(g, {"x": xs}, observer=lambda n, v, s=stats: s.setdefault(n, TensorStats()).update(v))
    qs = quantize_graph_pow2(g, stats, Pow2Options(RangeMode("minmax"), True, True, 16))
    tiny, normal = (qs.nodes[n.name] for n in g.nodes)
    assert tiny.info["q_w"] > 20 and tiny.info["lost_bits"] == 0, tiny.info
    assert normal.info["q_w"] == 15  # NNTool's rule where the weights use the container
    assert np.abs(tiny.consts["weights"]).max() >= 1 << 11  # 12 bits, not 3
    from nnshell.exec.int_exec import dequantize, run_int

    ref = run_float(g, {"x": xs}, keep={"t"})["t"].astype(np.float64)
    got = dequantize(qs, "t", run_int(g, qs, {"x": xs}, keep={"t"})["t"])
    qsnr = 10 * np.log10((ref**2).sum() / ((ref - got) ** 2).sum())
    assert qsnr > 60, qsnr
    res = verify_arrays(g, qs, xs[:4], tmp_path / "build", "tiny")
    assert res.ok, res.summary()
