"""gen --target autotiler for POW2 graphs (issue 10): generators, tensors, bindings, header.

The generators are the GAP SDK's current POW2 ones: every call carries the Qs of its tensors (the
NodeQuant's ``q_of`` of each tensor, ``info["q_w"]``/``info["q_b"]`` for the constants), the kernels
derive their shifts from them, and the ``AddNode`` bindings are tensors only (no ``Imm``).

The sample LeNet with the golden recipe's normalisation ``(x/255 - 0.5)/0.5`` (input [-1, 1]) is
quantized in 16 bits; the accumulator precision-reduction rule takes two input bits on conv1
(NNTool's split), and the input itself is quantized at Q12 (step 4 of
``nnshell.quant.pow2``) instead of being pre-shifted inside the layer — so the AutoTiler POW2
kernels, which have no input shift, can compute every layer. A layer that still pre-shifts its
input, or whose shifts are not the kernels', is refused with one line (doctored NodeQuants).
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from nnshell.codegen.autotiler import (
    ALIAS_OPS,
    AutoTilerError,
    _activation_pow2,
    _Planner,
    generate_autotiler,
)
from nnshell.quant.fixed_pow2 import pow2_qtype, q_of, qmn
from nnshell.quant.qrecord import NodeQuant
from nnshell.quant.sq8 import QuantState
from nnshell.session import Session
from tests.codegen.test_autotiler import _calls, _defines
from tests.conftest import CALIB_DIR, ROOT, SAMPLE_MODEL

NORM = "x: (x/255 - 0.5)/0.5"
MOBILE = ROOT / "sample_models" / "mobile_net_tiny.onnx"
ONES = ["1", "1", "1", "1"]  # every *_InL3 flag

CIFAR_NAMES = [
    "S3_Conv2d_6x3x5x5_MaxPool_2x2_Relu",
    "S6_Conv2d_16x6x5x5_MaxPool_2x2_Relu",
    "S9_Op__fc1_Gemm_fusion",
    "S12_Op__fc2_Gemm_fusion",
    "S15_Linear_10x84",
]


def _pow2_session(model: Path, images: str, norm: str | None, bits: int) -> Session:
    s = Session()
    s.open(str(model))
    s.set("float_backend", "numpy")
    if norm is not None:
        s.set("input_norm_func", norm)
    s.adjust()
    s.fusions("pow2")
    s.aquant([images], scheme="POW2", bits=bits)
    return s


@pytest.fixture(scope="module")
def s16() -> Session:
    return _pow2_session(SAMPLE_MODEL, str(CALIB_DIR), NORM, 16)


@pytest.fixture(scope="module")
def s8() -> Session:
    return _pow2_session(SAMPLE_MODEL, str(CALIB_DIR), NORM, 8)


@pytest.fixture(scope="module")
def gen16(s16: Session, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    out = tmp_path_factory.mktemp("p16")
    return out, s16.gen_autotiler(model_dir=str(out))


@pytest.fixture(scope="module")
def gen8(s8: Session, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    out = tmp_path_factory.mktemp("p8")
    return out, s8.gen_autotiler(model_dir=str(out))


def _create_graph(text: str) -> tuple[int, list[str], list[str], int, list[str], list[str]]:
    """(CArgs count, names, C types) of the globals, then of the locals."""
    m = re.search(
        r"CreateGraph\(.*?CArgs\((\d+),(.*?)\),\s*/\*.*?\*/\s*CArgs\((\d+),?(.*?)\)\s*\);",
        text,
        re.S,
    )
    assert m is not None
    glob, loc = m.group(2), m.group(4)
    arg = r'TCArgInfo\("([^"]+)", "([^"]+)"'
    g, lo = re.findall(arg, glob), re.findall(arg, loc)
    return (
        int(m.group(1)),
        [n for _, n in g],
        [t for t, _ in g],
        int(m.group(3)),
        [n for _, n in lo],
        [t for t, _ in lo],
    )


def _nodes(text: str) -> list[tuple[str, str, int, list[str]]]:
    """(comment, name, Bindings count, bindings) of every AddNode."""
    found = re.findall(
        r"// ([^\n]*)\n\s*AddNode\(\"([^\"]+)\",\s*Bindings\((\d+),(.*?)\)\s*\);", text, re.S
    )
    return [
        (c, n, int(k), re.findall(r"GNodeArg\(GNA_\w+, \"[^\"]+\", 0\)|Imm\(-?\d+\)", b))
        for c, n, k, b in found
    ]


def _weighted_qs(qs: QuantState, node: Any) -> list[str]:
    """``In_Q, Filter_Q, Bias_Q, Out_Q`` of a conv / linear node, from the tensors and info."""
    info = qs.nodes[node.name].info
    q_in, q_out = q_of(qs.tensors[node.inputs[0]]), q_of(qs.tensors[node.outputs[0]])
    return [str(q) for q in (q_in, info["q_w"], info["q_b"], q_out)]


def _assert_well_formed(text: str) -> None:
    depth = 0
    for ch in text:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        assert depth >= 0
    assert depth == 0 and text.count("{") == text.count("}")
    n_glob, g_names, _, n_loc, l_names, _ = _create_graph(text)
    assert n_glob == len(g_names) and n_loc == len(l_names)
    for _, _, k, binds in _nodes(text):
        assert k == len(binds)
    assert "Imm(" not in text  # the kernels derive every shift from the generators' Qs


# -- cifar_net POW2-16 ----------------------------------------------------------------------------


def test_includes_library_and_sections(gen16: tuple[Path, list[Path]]) -> None:
    text = gen16[1][0].read_text()
    marks = [
        "generated by nnshell (POW2 16-bit)",
        '#include "CNN_Generators.h"',
        '#include "CNN_Copy_Generators.h"',
        "void cifar_netModel(",
        'SetUsedFilesNames(0, 3, "Gap.h", "cifar_net.h", "CNN_BasicKernels.h");',
        "SetMemoryDeviceInfos(4,",
        "LoadCNNLibrary();",
        "// generator for _conv1_Conv_fusion",
        'CreateGraph("cifar_netCNN",',
        'AddNode("S3_Conv2d_6x3x5x5_MaxPool_2x2_Relu",',
        "CloseGraph();",
        "GenerateTilingCode();",
    ]
    pos = [text.find(m) for m in marks]
    assert all(p >= 0 for p in pos), [m for m, p in zip(marks, pos, strict=True) if p < 0]
    assert pos == sorted(pos)
    assert "SQ8" not in text and "Mul_scale" not in text and "_Infos" not in text
    _assert_well_formed(text)


def test_generator_calls(s16: Session, gen16: tuple[Path, list[Path]]) -> None:
    text = gen16[1][0].read_text()
    g, qs = s16.graph, s16.qstate
    q = [_weighted_qs(qs, node) for node in g.nodes]
    # conv1 reads the Q12 input with Q13 weights and a Q15 bias into Q10 (NNTool's formats)
    assert q[0] == ["12", "13", "15", "10"]
    # Name, Ctrl, In/Filter/Bias/Out_DataSize, In/Filter/Bias/Out_Q, In/Filter/Bias/Out_InL3,
    # InFeat, OutFeat, Width, Height, ConvOper, Fcx, Fcy, Dcx, Dcy, Scx, Scy, ConvPad, PoolOper,
    # Fpx, Fpy, Dpx, Dpy, Spx, Spy, PoolPad, ReLUOper
    sizes = ["2", "2", "2", "2"]
    conv = ["KOP_CONV_DP", "5", "5", "1", "1", "1", "1", "0"]
    pool = ["KOP_MAXPOOL", "2", "2", "1", "1", "2", "2", "0"]
    assert _calls(text, "CNN_ConvolutionPoolReLU") == [
        [f'"{CIFAR_NAMES[0]}"', "0", *sizes, *q[0], *ONES, "3", "6", "32", "32", *conv, *pool]
        + ["KOP_RELU"],
        [f'"{CIFAR_NAMES[1]}"', "0", *sizes, *q[1], *ONES, "6", "16", "14", "14", *conv, *pool]
        + ["KOP_RELU"],
    ]
    # Name, Ctrl, 4 data sizes, 4 Qs, 4 InL3 flags, InDim, OutDim, KOP_LINEAR, ReLUOper
    assert _calls(text, "CNN_LinearReLU") == [
        [f'"{CIFAR_NAMES[2]}"', "0", *sizes, *q[2], *ONES, "400", "120", "KOP_LINEAR", "KOP_RELU"],
        [f'"{CIFAR_NAMES[3]}"', "0", *sizes, *q[3], *ONES, "120", "84", "KOP_LINEAR", "KOP_RELU"],
        [f'"{CIFAR_NAMES[4]}"', "0", *sizes, *q[4], *ONES, "84", "10", "KOP_LINEAR", "KOP_NONE"],
    ]
    calls = re.findall(r"^    (CNN_\w+)\(", text, re.M)
    assert calls == ["CNN_ConvolutionPoolReLU"] * 2 + ["CNN_LinearReLU"] * 3


def test_create_graph_and_bindings(s16: Session, gen16: tuple[Path, list[Path]]) -> None:
    text = gen16[1][0].read_text()
    n_glob, g_names, g_types, n_loc, l_names, l_types = _create_graph(text)
    assert n_glob == len(g_names) == 1 + 5 * 2 + 1 and n_loc == len(l_names) == 4
    assert g_names[:3] == ["Input_1", "_conv1_conv_weights", "Constant_conv1_bias"]
    assert g_names[-1] == "Output_1"
    assert set(g_types) == set(l_types) == {"signed short * __restrict__"}
    nodes = _nodes(text)
    assert [n[1] for n in nodes] == CIFAR_NAMES
    for (comment, _, k, binds), node in zip(nodes, s16.graph.nodes, strict=True):
        nq = s16.qstate.nodes[node.name]
        c, info = nq.consts, nq.info
        q_in, q_w, q_b, q_out = (int(v) for v in _weighted_qs(s16.qstate, node))
        # Bindings(4, In, Filter, Bias, Out); the kernels derive NodeQuant's shifts from the Qs
        assert k == 4 and int(c["in_shift"]) == 0
        assert int(c["out_shift"]) == q_in + q_w - q_out == info["q_acc"] - info["q_out"]
        assert int(c["bias_shift"]) == q_in + q_w - q_b == info["q_acc"] - info["q_b"]
        assert binds[0].startswith("GNodeArg(GNA_IN,")
        assert binds[1].endswith('_weights", 0)')
        assert binds[2].endswith(('_bias", 0)', '_biases", 0)'))
        assert binds[3].startswith("GNodeArg(GNA_OUT,")
        assert f"In: {qmn(nq.in_q[0])} " in comment and f"Out: {qmn(nq.out_q)}" in comment
        assert f"Weights: Q{15 - info['q_w']}.{info['q_w']} " in comment
        assert f"Bias: Q{15 - info['q_b']}.{info['q_b']} " in comment
        assert f"Shifts: out {int(c['out_shift'])} bias {int(c['bias_shift'])}" in comment
    assert nodes[0][3][0] == 'GNodeArg(GNA_IN, "Input_1", 0)'
    assert nodes[-1][3][3] == 'GNodeArg(GNA_OUT, "Output_1", 0)'


def test_tensor_files_and_const_info(s16: Session, gen16: tuple[Path, list[Path]]) -> None:
    out, paths = gen16
    text = paths[0].read_text()
    infos = re.findall(r'ConstInfo\("([^"]+)", 1, 1, (\d+), (-?\d+)\)', text)
    assert len(infos) == 10 and {out / p for p, _, _ in infos} == set(paths[2:])
    for k, node in enumerate(s16.graph.nodes):
        nq = s16.qstate.nodes[node.name]
        (wp, wbits, wq), (bp, bbits, bq) = infos[2 * k : 2 * k + 2]
        assert (int(wbits), int(wq)) == (16, nq.info["q_w"])
        assert (int(bbits), int(bq)) == (16, nq.info["q_b"])
        w, b = nq.consts["weights"], nq.consts["biases"]
        assert w.dtype == np.int16 and b.dtype == np.int16
        wb, bb = (out / wp).read_bytes(), (out / bp).read_bytes()
        assert len(wb) == 2 * w.size and len(bb) == 2 * w.shape[0]
        np.testing.assert_array_equal(np.frombuffer(wb, "<i2").reshape(w.shape), w)
        np.testing.assert_array_equal(np.frombuffer(bb, "<i2"), b)
    assert sorted(p.name for p in (out / "tensors").iterdir()) == sorted(
        Path(p).name for p, _, _ in infos
    )


def test_header_q_lines(s16: Session, gen16: tuple[Path, list[Path]]) -> None:
    text = gen16[1][1].read_text()
    assert "real = code * 2^-Q" in text
    defs = _defines(text)
    g, qs = s16.graph, s16.qstate
    outs = [g.inputs[0]] + [n.outputs[0] for n in g.nodes]
    for name, t in zip(["Input_1", *CIFAR_NAMES], outs, strict=True):
        q = q_of(qs.tensors[t])
        assert int(defs[f"CIFAR_NET_{name}_Q"]) == q
        assert float(defs[f"CIFAR_NET_{name}_OUT_SCALE"]) == 2.0**-q
        assert defs[f"CIFAR_NET_{name}_OUT_ZERO_POINT"] == "0"
    assert len(defs) == 5 * len(outs)


def test_deterministic(s16: Session, tmp_path: Path) -> None:
    a = s16.gen_autotiler(model_dir=str(tmp_path / "a"))
    b = s16.gen_autotiler(model_dir=str(tmp_path / "b"))
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    assert str(tmp_path) not in a[0].read_text()


# -- cifar_net POW2-8 ---------------------------------------------------------------------------


def test_pow2_8_sizes_types_and_tensors(s8: Session, gen8: tuple[Path, list[Path]]) -> None:
    out, paths = gen8
    text = paths[0].read_text()
    assert "generated by nnshell (POW2 8-bit)" in text
    calls = _calls(text, "CNN_ConvolutionPoolReLU") + _calls(text, "CNN_LinearReLU")
    assert len(calls) == 5
    for call, node in zip(calls, s8.graph.nodes, strict=True):
        assert call[2:6] == ["1", "1", "1", "1"]  # data sizes
        assert call[6:10] == _weighted_qs(s8.qstate, node)
        assert call[10:14] == ONES
    assert len(_calls(text, "CNN_ConvolutionPoolReLU")) == 2
    _, _, g_types, _, _, l_types = _create_graph(text)
    assert set(g_types) == set(l_types) == {"signed char * __restrict__"}
    infos = re.findall(r'ConstInfo\("([^"]+)", 1, 1, (\d+), (-?\d+)\)', text)
    for k, node in enumerate(s8.graph.nodes):
        nq = s8.qstate.nodes[node.name]
        (wp, wbits, wq), (bp, bbits, bq) = infos[2 * k : 2 * k + 2]
        assert (int(wbits), int(wq), int(bbits), int(bq)) == (8, nq.info["q_w"], 8, nq.info["q_b"])
        assert (out / wp).read_bytes() == nq.consts["weights"].astype(np.int8).tobytes()
        assert (out / bp).read_bytes() == nq.consts["biases"].astype(np.int8).tobytes()
    assert [k for _, _, k, _ in _nodes(text)] == [4] * 5
    defs = _defines(paths[1].read_text())
    assert int(defs["CIFAR_NET_Input_1_Q"]) == q_of(s8.qstate.tensors[s8.graph.inputs[0]])
    _assert_well_formed(text)


# -- what the AutoTiler POW2 kernels cannot compute ---------------------------------------------


def _one_line(exc: AutoTilerError) -> None:
    assert "\n" not in str(exc) and exc.hint is not None and "gen --target c" in exc.hint


def _with_node(qs: QuantState, name: str, out_q: Any = None, **consts: Any) -> QuantState:
    nq = qs.nodes[name]
    new = NodeQuant(nq.in_q, nq.out_q if out_q is None else out_q, {**nq.consts, **consts}, nq.info)
    return QuantState(qs.scheme, qs.options, qs.tensors, {**qs.nodes, name: new}, qs.ranges)


def test_input_pre_shift_is_refused(s16: Session, tmp_path: Path) -> None:
    g, qs = s16.graph, s16.qstate
    assert q_of(qs.tensors[g.inputs[0]]) == 12  # lowered from Q14: conv1 needs no pre-shift
    fake = _with_node(qs, g.nodes[0].name, in_shift=np.array(1, np.int64))
    with pytest.raises(AutoTilerError, match=r"_conv1_Conv_fusion: the input is pre-shifted") as e:
        generate_autotiler(g, fake, s16.settings, tmp_path, None, "t", None, True)
    _one_line(e.value)
    assert not any(tmp_path.iterdir())  # nothing half-written


def test_shifts_not_the_kernels_are_refused(s16: Session, tmp_path: Path) -> None:
    g, qs = s16.graph, s16.qstate
    fc1 = g.nodes[2].name
    shift = int(qs.nodes[fc1].consts["out_shift"])
    fake = _with_node(qs, fc1, out_shift=np.array(shift - 1, np.int64))
    with pytest.raises(AutoTilerError, match=rf"^{fc1}: NodeQuant's out_shift {shift - 1} ") as e:
        generate_autotiler(g, fake, s16.settings, tmp_path, None, "t", None, False)
    assert f"In_Q + Filter_Q - Out_Q = {shift}" in str(e.value)
    _one_line(e.value)
    assert not any(tmp_path.iterdir())


def test_left_shift_and_unknown_scheme_are_refused(s16: Session, tmp_path: Path) -> None:
    g, qs = s16.graph, s16.qstate
    fc1 = g.nodes[2].name
    q_acc = int(qs.nodes[fc1].info["q_acc"])
    # an output one bit finer than the accumulator: out_shift -1, consistent with the Qs
    fake = _with_node(qs, fc1, pow2_qtype(q_acc + 1, 16), out_shift=np.array(-1, np.int64))
    with pytest.raises(AutoTilerError, match=rf"^{fc1}: .* left shift .* only shift right") as e:
        generate_autotiler(g, fake, s16.settings, tmp_path, None, "t", None, False)
    _one_line(e.value)
    other = QuantState("FP16", qs.options, qs.tensors, qs.nodes, qs.ranges)
    with pytest.raises(AutoTilerError, match="SQ8 and POW2 models only, not FP16") as e:
        generate_autotiler(g, other, s16.settings, tmp_path, None, "t", None, False)
    assert "\n" not in str(e.value)
    assert not any(tmp_path.iterdir())


def test_activation_bounds() -> None:
    """ReLU6 is KOP_RELUN when ``6 << Out_Q`` fits, KOP_RELU when nnshell's bound saturates."""

    def clip(hi: float) -> Any:
        return SimpleNamespace(op="Clip", attrs=SimpleNamespace(min=0.0, max=hi))

    assert _activation_pow2([], pow2_qtype(12, 16), "n") == ("KOP_NONE", None)
    assert _activation_pow2([SimpleNamespace(op="Relu")], pow2_qtype(12, 16), "n") == (
        "KOP_RELU",
        None,
    )
    assert _activation_pow2([clip(6.0)], pow2_qtype(12, 16), "n") == ("KOP_RELUN", 6 << 12)
    assert _activation_pow2([clip(6.0)], pow2_qtype(4, 8), "n") == ("KOP_RELUN", 6 << 4)
    # 6 << 13 does not fit int16: nnshell clips at 32767, the container's saturation
    assert _activation_pow2([clip(6.0)], pow2_qtype(13, 16), "n") == ("KOP_RELU", None)
    assert _activation_pow2([clip(float("inf"))], pow2_qtype(12, 16), "n") == ("KOP_RELU", None)
    with pytest.raises(AutoTilerError, match=r"^n: Clip\(0, 4\) clips at code 16384 of Q12") as e:
        _activation_pow2([clip(4.0)], pow2_qtype(12, 16), "n")
    _one_line(e.value)


# -- mobile_net_tiny POW2-16: dynamic-adjust MatAdd, depthwise ReLU6, global pool --------------


def test_mobile_net_tiny_pow2_16(tmp_path: Path) -> None:
    s = _pow2_session(MOBILE, str(CALIB_DIR), NORM, 16)
    g, qs = s.graph, s.qstate
    steps = {n.name: i for i, n in enumerate((n for n in g.nodes if n.op not in ALIAS_OPS), 1)}
    planner = _Planner(g, qs)
    # the residual Adds mix Qs (Q12 + Q11 -> Q11, Q12 + Q10 -> Q10): CNN_MatAddDynAdjust
    adds = [n for n in g.nodes if n.op == "Add"]
    assert [[q_of(q) for q in qs.nodes[a.name].in_q] for a in adds] == [[12, 11], [12, 10]]
    for add, qs_ in zip(adds, [["12", "11", "11"], ["12", "10", "10"]], strict=True):
        k = planner.matadd_pow2(add, steps[add.name])
        _, c, h, w = g.tensors[add.outputs[0]].shape
        assert (
            k.generator == "CNN_MatAddDynAdjust"
            and k.cname == f"S{steps[add.name]}_MatAdd_{c}x{h}x{w}"
        )
        ins = [i for i in add.inputs if i]
        assert qs_ == [str(q_of(qs.tensors[t])) for t in [*ins, add.outputs[0]]]
        assert k.args == ["2", "2", "2", *qs_, "1", "1", "1", str(c), str(c), str(w), str(h)] + [
            "KOP_MATADD_DYNADJUST"
        ]
        assert k.ins == ins and k.binding == ("in", "in", "out") and k.consts == []
    # the depthwise ReLU6 conv: KOP_CONV_DWDP (NNTool's), KOP_RELUN, the bound 6 << Out_Q
    dw = next(n for n in g.nodes if n.op == "Fused" and n.attrs.parts[0].attrs.group > 1)
    k = planner.conv_pow2(dw, steps[dw.name])
    nq = qs.nodes[dw.name]
    assert k.generator == "CNN_ConvolutionPoolReLU" and k.args[16] == "KOP_CONV_DWDP"
    assert k.args[4:8] == _weighted_qs(qs, dw) and k.args[8:12] == ONES
    assert k.args[-1] == "KOP_RELUN" and k.cname.endswith("x1x3x3_Relu6")
    assert k.binding == ("in", "w", "b", "out")
    assert f"ReLUN bound: {6 << q_of(nq.out_q)}" in k.comment
    # the pointwise convs are double precision
    pw = next(n for n in g.nodes if n.op == "Conv")
    assert planner.conv_pow2(pw, steps[pw.name]).args[16] == "KOP_CONV_DP"
    # the global average pool moves its mean from Q10 to Q12 (Q13 by its range, one bit moved
    # onto it by the linear layer's budget), which CNN_GlobalPool cannot do: the graph stops
    # there, in one line (NNTool labels Q12 and writes Q10: docs/nntool-parity.md)
    gap = next(n for n in g.nodes if n.op == "GlobalAveragePool")
    assert int(qs.nodes[gap.name].consts["out_shift"]) == 10 + 7 - 12
    with pytest.raises(
        AutoTilerError, match=rf"^{gap.name}: moves its result from Q10 to Q12"
    ) as e:
        s.gen_autotiler(model_dir=str(tmp_path))
    assert "CNN_GlobalPool keeps its input's Q" in str(e.value)
    _one_line(e.value)
    assert not any(tmp_path.iterdir())


def _small_model(folder: Path, act: str = "Clip", pool: int = 2, dw_act: bool = True) -> Path:
    """conv+act, depthwise conv(+act), Add, MaxPool, GlobalAveragePool, Gemm, Softmax (4x8x8).

    With ReLU6 on both branches and small weights, the Add's inputs and output share Q12; without
    the depthwise branch's activation they do not. An 8x8 pool leaves the global average pool a
    1x1 map, whose mean keeps the pool's Q; a 2x2 one does not.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    consts = {
        "w1": rng.normal(0, 0.15, (8, 4, 3, 3)),
        "b1": rng.normal(0, 0.05, 8),
        "w2": rng.normal(0, 0.15, (8, 1, 3, 3)),
        "b2": rng.normal(0, 0.05, 8),
        "w3": rng.normal(0, 0.3, (4, 8)),
        "b3": rng.normal(0, 0.05, 4),
        "lo": np.array(0.0),
        "hi": np.array(6.0),
    }

    def act_node(x: str, y: str) -> Any:
        if act == "Clip":
            return helper.make_node("Clip", [x, "lo", "hi"], [y])
        return helper.make_node("LeakyRelu", [x], [y], alpha=0.1)

    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        act_node("c1", "r1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], group=8),
        act_node("c2", "r2") if dw_act else helper.make_node("Identity", ["c2"], ["r2"]),
        helper.make_node("Add", ["r1", "r2"], ["a"]),
        helper.make_node("MaxPool", ["a"], ["p"], kernel_shape=[pool, pool], strides=[pool, pool]),
        helper.make_node("GlobalAveragePool", ["p"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["y0"], transB=1),
        helper.make_node("Softmax", ["y0"], ["y"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "small",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in consts.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = folder / "small.onnx"
    onnx.save(model, str(path))
    for i in range(16):
        np.save(folder / f"in{i}.npy", rng.normal(0, 1, (4, 8, 8)).astype(np.float32))
    return path


@pytest.mark.parametrize("bits", [16, 8])
def test_depthwise_matadd_pools_softmax(tmp_path: Path, bits: int) -> None:
    s = _pow2_session(_small_model(tmp_path, pool=8), str(tmp_path / "*.npy"), None, bits)
    g, qs = s.graph, s.qstate
    text = s.gen_autotiler(model_dir=str(tmp_path / "gen"))[0].read_text()
    _assert_well_formed(text)
    sz = "2" if bits == 16 else "1"
    calls = re.findall(r"^    (CNN_\w+)\(", text, re.M)
    assert calls == [
        "CNN_ConvolutionPoolReLU",
        "CNN_ConvolutionPoolReLU",
        "CNN_MatAdd",
        "CNN_PoolReLU",
        "CNN_GlobalPool",
        "CNN_LinearReLU",
        "CNN_SoftMax",
    ]
    kernels = [n for n in g.nodes if n.op not in ALIAS_OPS]
    names = [n[1] for n in _nodes(text)]
    by_name = dict(zip(names, kernels, strict=True))

    def q(name: str, i: int = 0) -> str:  # Q of a kernel's i-th activation input
        return str(q_of([t for t in qs.nodes[by_name[name].name].in_q if t is not None][i]))

    def qo(name: str) -> str:
        return str(q_of(qs.nodes[by_name[name].name].out_q))

    conv = _calls(text, "CNN_ConvolutionPoolReLU")
    assert conv[1][0] == '"S6_Conv2d_8x1x3x3_Relu6"'
    assert conv[1][14:19] == ["8", "8", "8", "8", "KOP_CONV_DWDP"]
    assert conv[0][18] == "KOP_CONV_DP" and conv[0][-1] == conv[1][-1] == "KOP_RELUN"
    for call in conv:
        name = call[0].strip('"')
        assert call[2:6] == [sz] * 4
        assert call[6:10] == _weighted_qs(qs, by_name[name]) and call[10:14] == ONES
    # ReLU6 on both branches: one Q for the Add, so plain KOP_MATADD
    qa = q("S7_MatAdd_8x8x8")
    assert qa == q("S7_MatAdd_8x8x8", 1) == qo("S7_MatAdd_8x8x8") == ("12" if bits == 16 else "4")
    assert _calls(text, "CNN_MatAdd") == [
        ['"S7_MatAdd_8x8x8"', "0", sz, sz, sz, qa, qa, qa, "1", "1", "1", "8", "8", "8", "8"]
        + ["KOP_MATADD"]
    ]
    qp = q("S8_MaxPool_8x8")
    assert qp == qo("S8_MaxPool_8x8")
    assert _calls(text, "CNN_PoolReLU") == [
        ['"S8_MaxPool_8x8"', "0", sz, sz, qp, qp, "1", "1", "8", "8", "8", "8"]
        + ["KOP_MAXPOOL", "8", "8", "1", "1", "8", "8", "0", "KOP_NONE"]
    ]
    qg = q("S9_Op_GlobalAveragePool_6")
    assert qg == qo("S9_Op_GlobalAveragePool_6")
    assert int(qs.nodes[by_name["S9_Op_GlobalAveragePool_6"].name].consts["out_shift"]) == 7
    assert _calls(text, "CNN_GlobalPool") == [
        ['"S9_Op_GlobalAveragePool_6"', "0", sz, sz, qg, qg, "1", "1", "8", "8", "1", "1"]
        + ["KOP_GLOBAL_AVGPOOL"]
    ]
    linear = _calls(text, "CNN_LinearReLU")
    assert linear == [
        ['"S12_Linear_4x8"', "0", sz, sz, sz, sz, *_weighted_qs(qs, by_name["S12_Linear_4x8"])]
        + [*ONES, "8", "4", "KOP_LINEAR", "KOP_NONE"]
    ]
    # the softmax writes int16 Q15 whatever the width of its input
    assert _calls(text, "CNN_SoftMax") == [
        ['"S13_SoftMax"', "0", sz, "2", q("S13_SoftMax"), "15", "1", "1", "4", "KOP_SOFTMAX"]
    ]
    nodes = {n[1]: n for n in _nodes(text)}
    for name in ("S3_Conv2d_8x4x3x3_Relu6", "S6_Conv2d_8x1x3x3_Relu6"):
        comment, _, k, binds = nodes[name]
        assert k == 4 and binds[3].startswith("GNodeArg(GNA_OUT,")
        assert f"ReLUN bound: {6 << int(qo(name))}" in comment
    assert nodes["S7_MatAdd_8x8x8"][2] == 3
    single = ("S8_MaxPool_8x8", "S9_Op_GlobalAveragePool_6", "S13_SoftMax")
    assert [nodes[n][2] for n in single] == [2] * 3
    assert 'TCArgInfo("signed short * __restrict__", "Output_1", ARG_SCOPE_ARG' in text


@pytest.mark.parametrize("bits", [16, 8])
def test_matadd_dynadjust_in_a_generated_graph(tmp_path: Path, bits: int) -> None:
    """Without ReLU6 on the depthwise branch, the Add's inputs come at different Qs."""
    model = _small_model(tmp_path, pool=8, dw_act=False)
    s = _pow2_session(model, str(tmp_path / "*.npy"), None, bits)
    g, qs = s.graph, s.qstate
    add = next(n for n in g.nodes if n.op == "Add")
    nq = qs.nodes[add.name]
    q1, q2 = (q_of(q) for q in nq.in_q)
    qo = q_of(nq.out_q)
    assert q1 != q2  # ReLU6's Q against the depthwise conv's own
    text = s.gen_autotiler(model_dir=str(tmp_path / "gen"))[0].read_text()
    _assert_well_formed(text)
    sz = "2" if bits == 16 else "1"
    assert _calls(text, "CNN_MatAdd") == []
    assert _calls(text, "CNN_MatAddDynAdjust") == [
        ['"S7_MatAdd_8x8x8"', "0", sz, sz, sz, str(q1), str(q2), str(qo), "1", "1", "1"]
        + ["8", "8", "8", "8", "KOP_MATADD_DYNADJUST"]
    ]
    # nnshell aligns to the larger Q and moves the sum to Out_Q, with the same Qs
    qc = max(q1, q2)
    assert nq.consts["in_shifts"].tolist() == [qc - q1, qc - q2]
    assert int(nq.consts["out_shift"]) == qc - qo


def test_global_pool_moving_q_is_refused(tmp_path: Path) -> None:
    s = _pow2_session(_small_model(tmp_path), str(tmp_path / "*.npy"), None, 16)
    gap = next(n for n in s.graph.nodes if n.op == "GlobalAveragePool")
    nq = s.qstate.nodes[gap.name]
    qi, qo = q_of(nq.in_q[0]), q_of(nq.out_q)
    assert qi != qo  # the mean of a 4x4 map is given a finer Q than its input
    with pytest.raises(
        AutoTilerError, match=rf"^{gap.name}: moves its result from Q{qi} to Q{qo}"
    ) as e:
        s.gen_autotiler(model_dir=str(tmp_path / "gen"))
    _one_line(e.value)


def test_pool_moving_q_is_refused(tmp_path: Path) -> None:
    s = _pow2_session(_small_model(tmp_path, pool=8), str(tmp_path / "*.npy"), None, 16)
    g, qs = s.graph, s.qstate
    pool = next(n for n in g.nodes if n.op == "MaxPool")
    q = q_of(qs.nodes[pool.name].out_q)
    fake = _with_node(qs, pool.name, pow2_qtype(q - 1, 16), out_shift=np.array(1, np.int64))
    with pytest.raises(
        AutoTilerError, match=rf"^{pool.name}: moves its result from Q{q} to Q{q - 1}"
    ) as e:
        generate_autotiler(g, fake, s.settings, tmp_path / "gen", None, "t", None, False)
    assert "CNN_PoolReLU keeps its input's Q" in str(e.value)
    _one_line(e.value)


def test_leaky_relu_is_refused(tmp_path: Path) -> None:
    s = _pow2_session(_small_model(tmp_path, "LeakyRelu"), str(tmp_path / "*.npy"), None, 16)
    assert s.graph.nodes[0].op == "Fused"
    with pytest.raises(AutoTilerError, match=r"LeakyRelu inside a fused layer") as e:
        s.gen_autotiler(model_dir=str(tmp_path / "gen"))
    assert str(e.value).startswith(s.graph.nodes[0].name)
    _one_line(e.value)
