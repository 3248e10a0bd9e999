"""gen --target c and gen --verify: the generated C99 builds with -Werror, matches the Python
integer executor bit for bit on every layer, is deterministic, has no malloc or floating point
in the inference code, and its arena equals footprint's peak of live activations."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from onnx import helper

from nnshell.codegen.c_emitter import CModel, Step, render_c
from nnshell.codegen.memory import ArenaPlan, Block, peak_live, plan_arena
from nnshell.codegen.verify import CFLAGS, compare_steps, verify_arrays
from nnshell.errors import CodegenError
from nnshell.session import Session
from tests.codegen.c_builds import C_BUILD_FLAGS, layer_labels, sq8_quantized
from tests.conftest import CALIB_DIR, ROOT, SAMPLE_MODEL, TEST_DIR
from tests.helpers import save_xy_model

pytestmark = pytest.mark.skipif(
    shutil.which("gcc") is None, reason="gen --target c tests need gcc on PATH (CI has it)"
)

NORM = "x: (x/255 - 0.5)/0.5"
MOBILE_NET = ROOT / "sample_models" / "mobile_net_tiny.onnx"
TEST_IMAGES = len(list(TEST_DIR.glob("*.png")))


def _session(model: Path) -> Session:
    s = Session()
    s.open(str(model))
    s.set("input_norm_func", NORM)
    s.adjust()
    s.fusions("scale8")
    s.aquant([str(CALIB_DIR)])
    return s


@pytest.fixture(scope="module")
def lenet() -> Session:
    return _session(SAMPLE_MODEL)


@pytest.fixture(scope="module")
def mobile_net() -> Session:
    if not MOBILE_NET.exists():
        pytest.fail(f"{MOBILE_NET} is missing: run scripts/make_sample2.py")
    return _session(MOBILE_NET)


def _strip_comments(text: str) -> str:
    return re.sub(r"/\*.*?\*/|//[^\n]*", "", text, flags=re.S)


# ------------------------------------------------------------------------- sample models


def test_generated_code_compiles_with_werror(lenet: Session, tmp_path: Path) -> None:
    paths = lenet.gen_c(str(tmp_path), "lenet")
    assert sorted(p.name for p in paths) == [
        "lenet.c",
        "lenet.h",
        "lenet_harness.c",
        "nn_kernels.c",
        "nn_kernels.h",
    ]
    for src in ("lenet.c", "nn_kernels.c", "lenet_harness.c"):
        proc = subprocess.run(
            ["gcc", *CFLAGS, "-pedantic", "-c", src, "-o", f"{src}.o"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr


def test_verify_lenet_bit_exact_on_all_test_images(lenet: Session) -> None:
    res = lenet.gen_verify([str(TEST_DIR)])
    assert res.ok, res.summary()
    assert res.summary() == f"bit-exact on {TEST_IMAGES} images, 5 layers"
    assert res.c_us_per_image > 0 and res.py_us_per_image > 0


def test_verify_mobile_net_tiny_bit_exact_on_all_test_images(mobile_net: Session) -> None:
    ops = {n.op for n in mobile_net.graph.nodes}
    assert {"Add", "GlobalAveragePool", "Fused"} <= ops
    res = mobile_net.gen_verify([str(TEST_DIR)])
    assert res.ok, res.summary()
    assert res.images == TEST_IMAGES and res.layers == len(mobile_net.graph.nodes)


def _live_peak_by_simulation(graph: object, nbytes: dict[str, int]) -> int:
    """An oracle written for this test, independent of codegen.memory and footprint: run the
    graph's schedule, allocating each step's outputs and freeing a tensor once its last reader
    has run (graph outputs are never freed), and take the largest total held at any step."""
    remaining: dict[str, int] = {}
    for node in graph.nodes:  # type: ignore[attr-defined]
        for i in node.inputs:
            if i in nbytes:
                remaining[i] = remaining.get(i, 0) + 1
    keep = set(graph.outputs)  # type: ignore[attr-defined]
    held = {t: nbytes[t] for t in graph.inputs}  # type: ignore[attr-defined]
    peak = 0
    for node in graph.nodes:  # type: ignore[attr-defined]
        held.update({o: nbytes[o] for o in node.outputs if o})
        peak = max(peak, sum(held.values()))
        for i in node.inputs:
            if i in nbytes:
                remaining[i] -= 1
        for t in [*node.inputs, *node.outputs]:
            if t in held and remaining.get(t, 0) == 0 and t not in keep:
                del held[t]
    return peak


@pytest.mark.parametrize("model", ["lenet", "mobile_net"])
def test_arena_equals_independent_live_peak(model: str, request: pytest.FixtureRequest) -> None:
    s: Session = request.getfixturevalue(model)
    g = s.graph
    assert g is not None
    # bytes of every activation from its shape (batch 1) and its quantized width
    acts = [*g.inputs, *(o for n in g.nodes for o in n.outputs if o)]
    nbytes = {
        t: int(np.prod(g.tensors[t].shape[1:])) * -(-s.qstate.tensors[t].bits // 8) for t in acts
    }
    oracle = _live_peak_by_simulation(g, nbytes)
    cm = render_c(g, s.qstate)
    assert cm.arena.peak_live == oracle
    assert cm.arena.size >= oracle  # no arena can hold less than the live peak
    assert cm.arena.size == oracle  # and first-fit reaches it on these chains
    assert s.footprint().quant_act_peak == oracle
    header = next(t for n, t in cm.files.items() if n.endswith(".h"))
    assert f"_ARENA_BYTES {oracle}\n" in header
    assert f"_CONST_BYTES {cm.const_bytes}\n" in header


def test_live_peak_oracle_on_a_hand_computed_chain() -> None:
    """The oracle itself, on a graph small enough to count by hand: x(100) -> a(50) -> b(30),
    with x also read by the last step -> y(10). Step 0 holds x+a = 150, step 1 x+a+b = 180
    (a is read here, x later), step 2 x+b+y = 140 once a is freed."""

    class N:
        def __init__(self, ins: list[str], outs: list[str]) -> None:
            self.inputs, self.outputs = ins, outs

    class G:
        inputs = ["x"]
        outputs = ["y"]
        nodes = [N(["x"], ["a"]), N(["a"], ["b"]), N(["b", "x"], ["y"])]

    assert _live_peak_by_simulation(G(), {"x": 100, "a": 50, "b": 30, "y": 10}) == 180
    blocks = [Block("x", 100, 1, 0, 2), Block("a", 50, 1, 0, 1), Block("b", 30, 1, 1, 2)]
    assert peak_live([*blocks, Block("y", 10, 1, 2, 3)]) == 180


def test_const_bytes_equal_footprint_params_for_conv_and_linear(lenet: Session) -> None:
    # int8 weights, int32 biases, multiplier + int8 shift: footprint counts GAP's uint8
    # multipliers; the C target stores them as int32 (one kernel for SQ8's 8-bit multipliers
    # and open -q's 30-bit ones), 3 more bytes per output channel of a conv or linear layer
    channels = sum(
        nq.consts["mul"].size for nq in lenet.qstate.nodes.values() if "mul" in nq.consts
    )
    assert channels == 6 + 16 + 120 + 84 + 10
    want = lenet.footprint().quant_params + 3 * channels
    assert render_c(lenet.graph, lenet.qstate).const_bytes == want


def test_generation_is_deterministic(lenet: Session, tmp_path: Path) -> None:
    a = lenet.gen_c(str(tmp_path / "a"))
    b = lenet.gen_c(str(tmp_path / "b"))
    assert [p.name for p in a] == [p.name for p in b]
    for pa, pb in zip(a, b, strict=True):
        assert pa.read_bytes() == pb.read_bytes(), pa.name
        assert str(tmp_path).encode() not in pa.read_bytes()


def test_no_malloc_or_float_in_the_inference_source(lenet: Session, tmp_path: Path) -> None:
    paths = {p.name: p for p in lenet.gen_c(str(tmp_path), "net")}
    for name in ("net.c", "nn_kernels.c", "nn_kernels.h"):
        code = _strip_comments(paths[name].read_text())
        bad = re.findall(r"\b(malloc|calloc|realloc|free|float|double)\b|\d\.\d", code)
        assert not bad, f"{name}: {bad}"


def test_graph_name_setting_names_the_files(lenet: Session, tmp_path: Path) -> None:
    lenet.set("graph_name", "my-net.v2")
    try:
        names = sorted(p.name for p in lenet.gen_c(str(tmp_path)))
    finally:
        lenet.set("graph_name", "none")
    assert "my_net_v2.c" in names and "my_net_v2_harness.c" in names


def test_op_without_c_kernel_is_a_codegen_error_naming_the_node(lenet: Session) -> None:
    g = lenet.graph.copy()
    g.nodes[-1].op = "Gather"  # an op with an integer kernel but no C kernel
    with pytest.raises(CodegenError, match=g.nodes[-1].name):
        render_c(g, lenet.qstate)


def test_gen_command_verify_and_write(shell, tmp_path: Path) -> None:  # noqa: ANN001
    for line in (
        f"open {SAMPLE_MODEL}",
        f'set input_norm_func "{NORM}"',
        "adjust",
        "fusions --scale8",
        f"aquant {CALIB_DIR}",
    ):
        ok, _, err = shell.run(line)
        assert ok, err
    ok, out, err = shell.run(f"gen --verify {TEST_DIR}/00*.png -M {tmp_path / 'v'}")
    assert ok, err
    assert (
        "bit-exact on 100 images, 5 layers" in out
        and "C harness" in out
        and "Python integer executor" in out
    )
    # issue 21: onnxruntime's float and int8 QDQ time per image beside the C's, as numbers
    assert re.search(r"onnxruntime float \d+\.\d us, int8 QDQ \d+\.\d us", out), out
    ok, out, err = shell.run(f"gen -M {tmp_path / 'c'} -m tiny.c")
    assert ok, err
    assert (tmp_path / "c" / "tiny.c").exists() and (tmp_path / "c" / "nn_kernels.c").exists()
    ok, _, err = shell.run("gen --verify")
    assert not ok and "needs images" in err


# ------------------------------------------------------------------- every other kernel


def _zoo_model(path: Path) -> None:
    """One model with every kernel the sample models do not use (opset 13)."""
    r = np.random.default_rng(7)

    def w(*shape: int, scale: float = 0.3) -> np.ndarray:
        return (r.standard_normal(shape) * scale).astype(np.float32)

    inits = {
        "W1": w(8, 3, 3, 3),
        "B1": w(8),
        "bn_s": (1 + 0.2 * r.standard_normal(16)).astype(np.float32),
        "bn_b": w(16),
        "bn_m": w(16, scale=0.1),
        "bn_v": (1 + 0.1 * r.random(16)).astype(np.float32),
        "Wd": w(16, 1, 3, 3),
        "lo": np.array(0.0, np.float32),
        "hi": np.array(6.0, np.float32),
        "W3": w(16, 16, 1, 1),
        "mc": (0.5 + r.random((1, 16, 1, 1))).astype(np.float32),
        "W4": w(8, 16, 3, 3),
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
        mk("BatchNormalization", ["cat", "bn_s", "bn_b", "bn_m", "bn_v"], ["bn"]),
        mk("Conv", ["bn", "Wd"], ["dw"], group=16, dilations=[2, 2], pads=[2, 2, 2, 2]),
        mk("Clip", ["dw", "lo", "hi"], ["r6"]),
        mk("Conv", ["r6", "W3"], ["c3"]),
        mk("Add", ["c3", "bn"], ["ad"]),
        mk("Relu", ["ad"], ["ar"]),
        mk("Mul", ["ar", "mc"], ["mu"]),
        mk("Conv", ["mu", "W4"], ["c4"], pads=[1, 1, 1, 1]),
        mk("AveragePool", ["c4"], ["p4"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        mk("Relu", ["p4"], ["r4"]),
        mk("Sigmoid", ["r4"], ["sg"]),
        mk("Transpose", ["sg"], ["st"], perm=[0, 1, 3, 2]),
        mk("GlobalMaxPool", ["st"], ["gm"]),
        mk("GlobalAveragePool", ["sg"], ["ga"]),
        mk("Concat", ["gm", "ga"], ["cat2"], axis=1),
        mk("Transpose", ["cat2"], ["t"], perm=[0, 2, 3, 1]),
        mk("Flatten", ["t"], ["f"]),
        mk("Gemm", ["f", "Wl", "Bl"], ["lin"], transB=1),
        mk("Softmax", ["lin"], ["y"], axis=1),
    ]
    save_xy_model(path, nodes, inits, (3, 12, 12), "zoo")


@pytest.mark.parametrize("variant", list(C_BUILD_FLAGS))
def test_every_kernel_bit_exact_on_a_zoo_model(tmp_path: Path, variant: str) -> None:
    _zoo_model(tmp_path / "zoo.onnx")
    xs = np.random.default_rng(1).uniform(-1, 1, (64, 3, 12, 12)).astype(np.float32)
    graph, qstate = sq8_quantized(tmp_path / "zoo.onnx", xs)
    labels = layer_labels(graph)
    assert {"Conv+LeakyRelu", "AveragePool", "Concat", "BatchNormalization", "Conv+Clip"} <= labels
    assert {"Add+Relu", "Mul", "Conv+AveragePool+Relu", "Sigmoid", "Softmax"} <= labels
    assert {"Transpose", "GlobalMaxPool", "GlobalAveragePool", "Linear"} <= labels
    flags = C_BUILD_FLAGS[variant]
    res = verify_arrays(graph, qstate, xs, tmp_path / "build", "zoo", flags)
    assert res.ok, res.summary()
    assert res.layers == len(graph.nodes)


def _zoo_1d_model(path: Path) -> None:
    """1-D windows (conv, ceil_mode average pool, max pool), Tanh, a 3-input Sum, reshapes."""
    r = np.random.default_rng(3)
    inits = {
        "W": (r.standard_normal((8, 4, 3)) * 0.4).astype(np.float32),
        "shape": np.array([0, 8, 2, 4], np.int64),
        "axes": np.array([2, 3], np.int64),
    }
    mk = helper.make_node
    nodes = [
        mk("Conv", ["x", "W"], ["c"], pads=[1, 1], strides=[1]),
        mk("Relu", ["c"], ["cr"]),
        mk("Tanh", ["cr"], ["t"]),
        mk("AveragePool", ["t"], ["p"], kernel_shape=[3], strides=[2], ceil_mode=1),
        mk("MaxPool", ["t"], ["m"], kernel_shape=[2], strides=[2]),
        mk("Sum", ["p", "m", "p"], ["s"]),
        mk("Reshape", ["s", "shape"], ["rs"]),
        mk("GlobalAveragePool", ["rs"], ["g"]),
        mk("Squeeze", ["g", "axes"], ["y"]),
    ]
    save_xy_model(path, nodes, inits, (4, 16), "zoo1d")


def test_1d_windows_sum_and_reshapes_bit_exact(tmp_path: Path) -> None:
    _zoo_1d_model(tmp_path / "zoo1d.onnx")
    xs = np.random.default_rng(2).uniform(-2, 2, (32, 4, 16)).astype(np.float32)
    graph, qstate = sq8_quantized(tmp_path / "zoo1d.onnx", xs)
    ops = {n.op for n in graph.nodes}
    assert {"Fused", "Tanh", "AveragePool", "MaxPool", "Sum", "Reshape", "Squeeze"} <= ops
    res = verify_arrays(graph, qstate, xs, tmp_path / "build", "zoo1d")
    assert res.ok, res.summary()


def test_first_difference_names_step_image_channel_position(tmp_path: Path) -> None:
    py = np.zeros((2, 3, 2, 2), np.int8)
    c = py.copy()
    c[1, 2, 1, 0] = 5
    c.tofile(tmp_path / "S0.bin")
    model = CModel("m", {}, ArenaPlan({}, 0, 0, ""), 0, [Step(0, "conv1", "Conv", "t", 12)], [0])
    bad = compare_steps(model, {"t": py}, tmp_path, 2)
    assert bad is not None
    assert (bad.step, bad.node, bad.image, bad.channel, bad.position) == (0, "conv1", 1, 2, (1, 0))
    assert (bad.c_value, bad.py_value) == (5, 0)
    assert "image 1, channel 2, position (1,0): C 5, Python 0" in bad.describe()


# ------------------------------------------------------------------------------ the arena


def test_first_fit_reaches_the_live_peak_on_a_chain_with_a_skip() -> None:
    blocks = [
        Block("in", 100, 1, 0, 1),
        Block("a", 50, 1, 0, 2),
        Block("b", 80, 1, 1, 2),
        Block("c", 60, 2, 2, 3),
    ]
    plan = plan_arena(blocks)
    assert peak_live(blocks) == 230
    assert plan.size == 230
    for x in blocks:
        assert plan.offsets[x.name] % x.align == 0
        for y in blocks:
            overlap_t = x.start <= y.end and y.start <= x.end
            ox, oy = plan.offsets[x.name], plan.offsets[y.name]
            if x is not y and overlap_t:
                assert ox + x.nbytes <= oy or oy + y.nbytes <= ox
