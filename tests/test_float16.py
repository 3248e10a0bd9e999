"""Float layers (issue 20): bfloat16/float16 storage, the executor's order, the C, fquant, qtune.

References nobody here wrote: hand-computed IEEE encodings, float64 numpy (the exact products
and sums the float32 bound is derived against, docs/FLOAT16.md), gcc running the generated C.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from nnshell.errors import NnshellError, UsageError
from nnshell.exec.int_exec import run_int
from nnshell.ops._float import (
    FloatType,
    conv2d_ordered,
    from_bits,
    linear_ordered,
    to_bits,
    unit_roundoff,
)
from nnshell.session import Session

ROOT = Path(__file__).resolve().parents[1]
LENET = ROOT / "sample_models" / "lenet_bw.onnx"
BW_TEST = ROOT / "sample_images" / "bw_test"
RUNTIME = ROOT / "nnshell" / "codegen" / "runtime"
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")


# -- storage: round to nearest, ties to even (hand-computed encodings) --------------------------
def test_bfloat16_and_float16_encodings_by_hand() -> None:
    one = 1.0
    cases_bf16 = {
        one: 0x3F80,
        one + 2.0**-8: 0x3F80,  # a tie between 1 and 1+2^-7: to the even 1.0
        one + 3 * 2.0**-8: 0x3F82,  # a tie between 1+2^-7 (odd) and 1+2^-6 (even)
        one + 2.0**-8 + 2.0**-20: 0x3F81,  # just above the tie: up
        -2.0: 0xC000,
        3.0e38: 0x7F62,  # near FLT_MAX, still finite
    }
    for v, bits in cases_bf16.items():
        assert int(to_bits(np.float32(v), "bfloat16")) == bits, v
    cases_f16 = {
        one: 0x3C00,
        65504.0: 0x7BFF,  # the largest float16
        65519.0: 0x7BFF,  # below the tie with 65536: down
        65520.0: 0x7C00,  # the tie: to even, which is infinity
        2.0**-24: 0x0001,  # the smallest subnormal
        2.0**-25: 0x0000,  # a tie between 0 and 2^-24: to the even 0
        3 * 2.0**-26: 0x0001,  # 0.75 * 2^-24: up
        -(2.0**-14): 0x8400,  # the smallest normal
    }
    for v, bits in cases_f16.items():
        assert int(to_bits(np.float32(v), "float16")) == bits, v
    x = np.float32([1.5, -0.25, 1e-3])
    for ft in ("bfloat16", "float16", "float32"):
        back = from_bits(to_bits(x, ft), ft)
        assert np.all(np.abs(back - x) <= unit_roundoff(ft) * np.abs(x))


@needs_gcc
def test_the_c_conversions_equal_the_executor_bit_for_bit(tmp_path: Path) -> None:
    """nn_f32_to_bf16 / nn_f32_to_f16 (hand-written C) against numpy on edges and 200k values."""
    rng = np.random.default_rng(1)
    vals = np.concatenate(
        [
            rng.standard_normal(100_000).astype(np.float32) * np.float32(30.0),
            (rng.integers(0, 2**32, 100_000, dtype=np.uint64).astype(np.uint32)).view(np.float32),
            np.float32([0.0, -0.0, 65504, 65519.99, 65520, 65536, 2.0**-24, 2.0**-25, 2.0**-15]),
            np.float32([np.inf, -np.inf, 3.4e38, 1.17e-38, 5.96e-8, -5.96e-8, 6.1e-5]),
        ]
    )
    vals = vals[~np.isnan(vals)]
    (tmp_path / "in.bin").write_bytes(vals.tobytes())
    src = tmp_path / "conv.c"
    src.write_text(
        '#include <stdio.h>\n#include "nn_float.h"\n'
        'int main(void) { FILE *f = fopen("in.bin", "rb"); FILE *o = fopen("out.bin", "wb");\n'
        "float v; while (fread(&v, 4, 1, f) == 1) { uint16_t a = nn_f32_to_bf16(v), "
        "b = nn_f32_to_f16(v); float ra = nn_bf16_to_f32(a), rb = nn_f16_to_f32(b);\n"
        "fwrite(&a, 2, 1, o); fwrite(&b, 2, 1, o); fwrite(&ra, 4, 1, o); fwrite(&rb, 4, 1, o); }\n"
        "fclose(f); fclose(o); return 0; }\n"
    )
    for f in ("nn_float.h", "nn_float.c", "nn_kernels.h"):
        shutil.copy(RUNTIME / f, tmp_path / f)
    subprocess.run(
        ["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-O2", "-o", "conv", "conv.c"]
        + ["nn_float.c"],
        cwd=tmp_path,
        check=True,
    )
    subprocess.run(["./conv"], cwd=tmp_path, check=True)
    rec = np.dtype([("a", "<u2"), ("b", "<u2"), ("ra", "<f4"), ("rb", "<f4")])
    out = np.fromfile(tmp_path / "out.bin", dtype=rec)
    assert np.array_equal(out["a"], to_bits(vals, "bfloat16"))
    assert np.array_equal(out["b"], to_bits(vals, "float16"))
    assert np.array_equal(out["ra"], from_bits(out["a"], "bfloat16"), equal_nan=True)
    assert np.array_equal(out["rb"], from_bits(out["b"], "float16"), equal_nan=True)


# -- arithmetic: float32 in a fixed order, within the classic bound of the exact result ---------
def test_ordered_kernels_are_within_the_float32_summation_bound() -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    y = conv2d_ordered(x, w, b, ((3, 3), (2, 1), (1, 1), (1, 1, 1, 1), (5, 8)), 1)
    # float64 reference of the same conv (pads 1, strides (2,1)) and of sum |w x|
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    ref = np.zeros((2, 4, 5, 8))
    mag = np.zeros((2, 4, 5, 8))
    for oy in range(5):
        for ox in range(8):
            patch = xp[:, :, oy * 2 : oy * 2 + 3, ox : ox + 3]
            ref[:, :, oy, ox] = np.einsum("ncij,kcij->nk", patch, w) + b
            mag[:, :, oy, ox] = np.einsum("ncij,kcij->nk", np.abs(patch), np.abs(w)) + np.abs(b)
    n = 3 * 3 * 3 + 1
    u = 2.0**-24
    assert np.all(np.abs(y - ref) <= n * u / (1 - n * u) * mag)
    xl = rng.standard_normal((3, 40)).astype(np.float32)
    wl = rng.standard_normal((7, 40)).astype(np.float32)
    yl = linear_ordered(xl, wl, None)
    refl = xl.astype(np.float64) @ wl.T.astype(np.float64)
    magl = np.abs(xl.astype(np.float64)) @ np.abs(wl.T.astype(np.float64))
    assert np.all(np.abs(yl - refl) <= 40 * u / (1 - 40 * u) * magl)


# -- the session: fquant / qtune before adjust and fusions (NNTool's fp16 script) --------------
def _fp16(ftype: str = "bfloat16") -> Session:
    s = Session()
    s.open(str(LENET))
    s.set("input_norm_func", "x: x/128-1")
    s.fquant()
    s.qtune(["*", "float", ftype])
    s.adjust()
    s.fusions("scale8")
    return s


@pytest.fixture(scope="module")
def bf16() -> Session:
    return _fp16()


def _images(s: Session, n: int = 12) -> np.ndarray:
    from nnshell.input.images import expand_files, iter_batches

    files = expand_files([str(BW_TEST)])[:n]
    g = s.require_graph()
    return np.concatenate(
        [b for _, b in iter_batches(files, s.input_options(), g.tensors[g.inputs[0]].dims, 64)]
    )


def test_quantization_set_before_fusions_survives_them(bf16: Session) -> None:
    qs = bf16.qstate
    assert qs is not None and qs.scheme == "FLOAT"
    assert bf16.scheme == "scale8"
    assert {n.op for n in bf16.graph.nodes} == {"Fused", "Linear"}  # fused, still float
    assert all(isinstance(q, FloatType) and q.ftype == "bfloat16" for q in qs.tensors.values())
    assert set(qs.nodes) == {n.name for n in bf16.graph.nodes}


def test_each_float_layer_is_within_its_derived_bound(bf16: Session) -> None:
    """Per layer, from its own stored inputs: |stored - exact| <= u_T |exact| + gamma_n (1 + u_T)
    sum|w x| (docs/FLOAT16.md §3), exact = float64 of the widened inputs and weights."""
    g, qs = bf16.graph, bf16.qstate
    x = _images(bf16)
    keep = [o for n in g.nodes for o in n.outputs]
    vals = run_int(g, qs, {g.inputs[0]: x}, keep=keep)
    vals[g.inputs[0]] = qs.tensors[g.inputs[0]].quantize(x)
    u_t, u = unit_roundoff("bfloat16"), 2.0**-24
    import dataclasses

    from nnshell.ops import get_op

    for node in g.nodes:
        nq = qs.nodes[node.name]
        xin = from_bits(vals[node.inputs[0]], "bfloat16").astype(np.float64)
        w = from_bits(nq.consts["in1"], "bfloat16").astype(np.float64)
        b = from_bits(nq.consts["in2"], "bfloat16").astype(np.float64)
        op = get_op(node.op)
        exact = op.run_float(node, xin, w, b)[0]
        # sum |w x| through the same layer: |x|, |w|, |b| (ReLU/max pool keep it an upper bound)
        mag = op.run_float(node, np.abs(xin), np.abs(w), np.abs(b))[0]
        got = from_bits(vals[node.outputs[0]], "bfloat16")
        n = int(np.prod(w.shape[1:])) + 1
        bound = u_t * np.abs(exact) + n * u / (1 - n * u) * (1 + u_t) * mag
        assert np.all(np.abs(got - exact) <= bound + 1e-30), node.name
        assert dataclasses.is_dataclass(nq)


@needs_gcc
@pytest.mark.parametrize("ftype", ["bfloat16", "float16"])
def test_generated_c_of_float_layers_is_bit_exact(ftype: str, tmp_path: Path) -> None:
    s = _fp16(ftype)
    from nnshell.codegen.verify import verify_arrays

    res = verify_arrays(s.graph, s.qstate, _images(s, 6), tmp_path)
    assert res.ok, res.summary()
    assert res.layers == 4
    c = (tmp_path / "lenet_bw.c").read_text()
    assert "nn_f_conv(" in c and "nn_f_linear(" in c


def test_states_keep_fquant_and_qtune(bf16: Session, tmp_path: Path) -> None:
    path = tmp_path / "fp.json"
    bf16.save_state(str(path))
    t = Session()
    t.open(str(path))
    assert t.qstate.scheme == "FLOAT" and t.qstate.options.float_type == "bfloat16"
    assert t.graph.meta["qtune"] == [["*", {"scheme": "float", "float_type": "bfloat16"}]]
    assert t.graph.meta["fquant"]["seed"] == 0
    x = _images(t, 4)
    g = t.graph
    a = run_int(g, t.qstate, {g.inputs[0]: x})[g.outputs[0]]
    b = run_int(bf16.graph, bf16.qstate, {g.inputs[0]: x})[g.outputs[0]]
    assert np.array_equal(a, b)
    fp = t.footprint()
    assert fp.scheme == "bfloat16"
    assert sum(r.weight_bytes for r in fp.layers) * 2 == sum(r.float_bytes for r in fp.layers) - (
        2 * sum(r.bias_bytes for r in fp.layers)
    )


def test_fquant_is_seeded_and_integer_quantization_follows_fusions() -> None:
    from nnshell.quant.tuning import FakeOptions

    def run(seed: int) -> Session:
        s = Session()
        s.open(str(LENET))
        s.fquant(FakeOptions(seed=seed))
        assert s.qstate is None and s.stats  # not fused yet: statistics only
        s.adjust()
        s.fusions("scale8")
        return s

    a, b, c = run(3), run(3), run(4)
    assert a.qstate.scheme == "SQ8"
    out = a.graph.outputs[0]
    assert a.stats[out].min == b.stats[out].min and a.stats[out].max == b.stats[out].max
    assert a.stats[out].max != c.stats[out].max
    # qtune after an integer fquant switches schemes and dimensions, whole graph
    a.qtune(["*", "quantized_dimension=tensor"])
    assert a.qstate.scheme == "SQ8" and a.qstate.options.per_tensor
    a.qtune(["*", "float16"])
    assert a.qstate.scheme == "FLOAT" and a.qstate.options.float_type == "float16"


def test_qtune_refusals_are_one_line_and_change_nothing(bf16: Session) -> None:
    import copy

    s = copy.copy(bf16)
    before = (s.graph, s.qstate)
    for words, what in (
        (["*"], "needs a selector and at least one setting"),
        (["*", "colour=red"], "unknown key 'colour'"),
        (["*", "float_type=half"], "float_type=half is not valid"),
        (["*", "banana"], "'banana' is neither KEY=VALUE"),
        (["nosuchnode", "float"], "no node named 'nosuchnode'"),
        (["0", "bits=16"], "bits per layer is not supported yet"),
        (["0", "pow2"], "one integer scheme per graph"),
        (["0", "float16"], "share one type, got bfloat16, float16"),
        (["*", "scaled", "bits=16"], "scheme=scaled is 8-bit only"),
    ):
        with pytest.raises(NnshellError, match=what) as exc:
            s.qtune(words)
        assert "\n" not in str(exc.value)
        assert (s.graph, s.qstate) == before
    with pytest.raises(UsageError):
        s.qtune([])


def test_autotiler_refuses_float_layers_naming_the_node(bf16: Session, tmp_path: Path) -> None:
    with pytest.raises(NnshellError, match="_conv1_Conv_fusion is a bfloat16 float layer"):
        bf16.gen_autotiler(str(tmp_path))


@needs_gcc
def test_mixed_graph_gets_conversion_layers_and_stays_bit_exact(tmp_path: Path) -> None:
    """qtune on one layer: SQ8 elsewhere, FloatConvert layers at both borders, the C matches
    the executor byte for byte; the state keeps it; aquant on images keeps the rules."""
    from nnshell.codegen.verify import verify_arrays
    from nnshell.ops._float import is_float_q

    s = Session()
    s.open(str(LENET))
    s.set("input_norm_func", "x: x/128-1")
    s.adjust()
    s.fusions("scale8")
    s.qtune(["_conv2_Conv", "float", "bfloat16"])  # a part name: it selects the fusion
    assert s.qstate is None  # no statistics yet
    s.aquant([str(ROOT / "sample_images" / "bw_calib")])
    ops = [n.op for n in s.graph.nodes]
    assert ops == ["Fused", "FloatConvert", "Fused", "FloatConvert", "Fused", "Linear"]
    qs = s.qstate
    assert qs.scheme == "SQ8"
    conv2 = s.graph.nodes[2]
    assert is_float_q(qs.tensors[conv2.inputs[0]]) and is_float_q(qs.tensors[conv2.outputs[0]])
    assert not is_float_q(qs.tensors[s.graph.nodes[4].inputs[0]])
    x = _images(s, 8)
    res = verify_arrays(s.graph, qs, x, tmp_path / "c")
    assert res.ok and res.layers == 6, res.summary()
    # the quantize border by hand: codes = clip(floor(x / S + 0.5) + Z)
    keep = [o for n in s.graph.nodes for o in n.outputs]
    vals = run_int(s.graph, qs, {s.graph.inputs[0]: x}, keep=keep)
    back = s.graph.nodes[3]
    q = qs.tensors[back.outputs[0]]
    xf = from_bits(vals[back.inputs[0]], "bfloat16").astype(np.float64)
    want = np.clip(np.floor(xf / float(q.scale) + 0.5) + q.zero_point, -128, 127)
    assert np.abs(vals[back.outputs[0]] - want).max() <= 1  # float32 vs float64 1/S at ties
    path = tmp_path / "mixed.json"
    s.save_state(str(path))
    t = Session()
    t.open(str(path))
    assert [n.op for n in t.graph.nodes] == ops
    y = run_int(t.graph, t.qstate, {t.graph.inputs[0]: x})[t.graph.outputs[0]]
    assert np.array_equal(y, vals[s.graph.outputs[0]])
    with pytest.raises(UsageError, match="selects only conversion layers"):
        t.qtune(["1", "scaled"])
    # --step twice: both selectors read against the graph `show` prints now (steps 2 and 5)
    t.qtune_rules([["2", "scaled"], ["5", "float"]])
    assert [n.op for n in t.graph.nodes] == ["Fused", "Fused", "Fused", "FloatConvert", "Linear"]


def test_a_float_constant_of_the_wrong_size_is_refused(bf16: Session, tmp_path: Path) -> None:
    """An edited state's weights the kernel would read out of bounds: one line, no C written."""
    import copy

    from nnshell.codegen.c_emitter import render_c

    qs = copy.deepcopy(bf16.qstate)
    node = bf16.graph.nodes[1].name
    qs.nodes[node].consts["in1"] = qs.nodes[node].consts["in1"][:10]
    with pytest.raises(NnshellError, match="float constant in1 does not match the graph"):
        render_c(bf16.graph, qs, "m")


@needs_gcc
def test_float_c_of_a_mobilenet_block_is_bit_exact(tmp_path: Path) -> None:
    """Depthwise convs, ReLU6 (Clip), residual Add and the global average pool in float16."""
    from nnshell.codegen.verify import verify_arrays

    s = Session()
    s.open(str(ROOT / "sample_models" / "mobile_block.onnx"))
    s.adjust()
    s.fusions("scale8")
    s.qtune(["*", "float16"])
    g = s.graph
    x = np.random.default_rng(5).uniform(-1, 1, (3, *g.tensors[g.inputs[0]].dims))
    res = verify_arrays(g, s.qstate, x.astype(np.float32), tmp_path)
    assert res.ok and res.layers == len(g.nodes) == 10, res.summary()
    c = (tmp_path / "mobile_block.c").read_text()
    assert c.count("nn_f_add(") == 2 and "nn_f_avgpool_global(" in c


@needs_gcc
def test_the_float_exp_is_accurate_and_the_same_in_c(tmp_path: Path) -> None:
    """nn_f_exp (C) and exp_f32 (numpy) agree bit for bit; both within 2.5e-7 of float64 exp."""
    from nnshell.ops._float import exp_f32, softmax_rows

    v = np.concatenate([-np.linspace(0, 90, 100_001), [-87.0, -86.99, -0.0, -1e-30]])
    v = v.astype(np.float32)
    ref = np.exp(v.astype(np.float64))
    got = exp_f32(v)
    live = ref > 1e-37
    assert np.max(np.abs(got[live] - ref[live]) / ref[live]) < 2.5e-7
    assert np.all(got[v < -87] == 0)
    (tmp_path / "in.bin").write_bytes(v.tobytes())
    (tmp_path / "e.c").write_text(
        '#include <stdio.h>\n#include "nn_float.h"\n'
        'int main(void) { FILE *f = fopen("in.bin", "rb"); FILE *o = fopen("out.bin", "wb");\n'
        "float v, e; while (fread(&v, 4, 1, f) == 1) { e = nn_f_exp(v); fwrite(&e, 4, 1, o); }\n"
        "fclose(f); fclose(o); return 0; }\n"
    )
    for f in ("nn_float.h", "nn_float.c", "nn_kernels.h"):
        shutil.copy(RUNTIME / f, tmp_path / f)
    cmd = ["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-O2", "-o", "e", "e.c", "nn_float.c"]
    subprocess.run(cmd, cwd=tmp_path, check=True)
    subprocess.run(["./e"], cwd=tmp_path, check=True)
    assert np.array_equal(np.fromfile(tmp_path / "out.bin", dtype="<f4"), got)
    rows = np.float32([[1.0, 2.0, 3.0], [0.0, 0.0, -100.0]])
    want = np.exp(rows - rows.max(1, keepdims=True))
    want /= want.sum(1, keepdims=True)
    assert np.allclose(softmax_rows(rows), want, rtol=1e-6, atol=1e-37)  # e^-100 flushes to 0
