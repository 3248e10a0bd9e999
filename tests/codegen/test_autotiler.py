"""gen --target autotiler on the sample LeNet: generator calls, CreateGraph, tensors, header."""

from __future__ import annotations

import importlib.util
import io
import json
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nnshell.codegen.autotiler import INFOS_SIZE, generate_autotiler
from nnshell.errors import GraphStateError
from nnshell.quant.fixed_point import QType, header_qscale_qnorm
from nnshell.quant.sq8 import QuantState
from tests.conftest import ROOT


def _load_golden_script() -> Any:
    spec = importlib.util.spec_from_file_location(
        "update_golden", ROOT / "scripts" / "update_golden.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


GOLDEN = _load_golden_script()


@pytest.fixture(scope="module")
def session() -> Any:
    return GOLDEN.build_session()


@pytest.fixture(scope="module")
def generated(session: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    out = tmp_path_factory.mktemp("at")
    return out, session.gen_autotiler(model_dir=str(out))


def _model_c(generated: tuple[Path, list[Path]]) -> str:
    return generated[1][0].read_text()


def _calls(text: str, generator: str) -> list[list[str]]:
    return [
        [a.strip() for a in m.group(1).split(",")]
        for m in re.finditer(rf"\b{generator}\((.*?)\);", text, re.S)
    ]


def _qshow_json(session: Any) -> dict[str, Any]:
    from nnshell.shell.app import make_app, run_command

    buf = io.StringIO()
    app = make_app(session=session, stdout=buf)
    ok, _ = run_command(app, "qshow --json")
    assert ok, app.last_error
    return json.loads(buf.getvalue())  # type: ignore[no-any-return]


# -- structure ------------------------------------------------------------------------------


def test_sections_in_order(generated: tuple[Path, list[Path]]) -> None:
    text = _model_c(generated)
    assert generated[1][0].name == "cifar_netModel.c"
    marks = [
        '#include "CNN_Generators_SQ8.h"',
        '#include "CNN_Copy_Generators.h"',
        "void cifar_netModel(unsigned int L1Memory, unsigned int L2Memory, "
        "unsigned int L3Memory, unsigned int L3Flash)",
        "KernelOper_T Cop = KOP_CONV;",
        "SetSymbolDynamics();",
        'SetUsedFilesNames(0, 3, "Gap.h", "cifar_net.h", "CNN_BasicKernels_SQ8.h");',
        'SetGeneratedFilesNames("cifar_netKernels.c", "cifar_netKernels.h");',
        "SetMemoryDeviceInfos(4,",
        "LoadCNN_SQ8_Library();",
        "// generator for _conv1_Conv_fusion",
        'CreateGraph("cifar_netCNN",',
        "/* no concats in graph so not stacked tensors created */",
        'AddNode("S3_Conv2d_6x3x5x5_MaxPool_2x2_Relu",',
        "CloseGraph();",
        "int main(int argc, char **argv)",
        "TilerParseOptions(argc, argv)",
        "cifar_netModel(64000, 300000, 8000000, 64*1024*1024);",
        "GenerateTilingCode();",
    ]
    pos = [text.find(m) for m in marks]
    assert all(p >= 0 for p in pos), [m for m, p in zip(marks, pos, strict=True) if p < 0]
    assert pos == sorted(pos)
    mem = re.search(r"SetMemoryDeviceInfos\((.*?)\);", text, re.S)
    assert mem is not None
    args = [a.strip() for a in mem.group(1).split(",")]
    assert args == [
        "4",
        *["AT_MEM_L1", "L1Memory", '"cifar_net_L1_Memory"', "0", "0"],
        *["AT_MEM_L2", "L2Memory", '"cifar_net_L2_Memory"', "0", "1"],
        *["AT_MEM_L3_HRAM", "L3Memory", '"cifar_net_L3_Memory"', "0", "0"],
        *["AT_MEM_L3_HFLASH", "L3Flash", '"cifar_net_L3_Flash"', '"cifar_net_L3_Flash_Const.dat"'],
        "0",
    ]


def test_memory_settings_are_used(session: Any, tmp_path: Path) -> None:
    st = {
        **session.settings,
        "l1_size": 128000,
        "l3_flash_mb": 16,
        "l3_ram_device": "AT_MEM_L3_OSPIRAM",
    }
    paths = generate_autotiler(session.graph, session.qstate, st, tmp_path, None, "t", None, False)
    text = paths[0].read_text()
    assert "cifar_netModel(128000, 300000, 8000000, 16*1024*1024);" in text
    assert 'AT_MEM_L3_OSPIRAM, L3Memory, "cifar_net_L3_Memory"' in text
    assert not (tmp_path / "t").exists()  # write_tensors=False


def test_two_conv_pool_act_calls(generated: tuple[Path, list[Path]]) -> None:
    calls = _calls(_model_c(generated), "CNN_ConvolutionPoolAct_SQ8")
    assert len(calls) == 2
    # Name, Ctrl, Bias_DataSize, Scale_DataSize, InFeat, OutFeat, Width, Height,
    # ConvOper, Fcx, Fcy, Dcx, Dcy, Scx, Scy, ConvPad, PoolOper, Fpx, Fpy, Dpx, Dpy, Spx, Spy,
    # PoolPad, ActOper
    conv = ["KOP_CONV", "5", "5", "1", "1", "1", "1", "0"]
    pool = ["KOP_MAXPOOL", "2", "2", "1", "1", "2", "2", "0"]
    assert calls[0] == [
        '"S3_Conv2d_6x3x5x5_MaxPool_2x2_Relu"', "0", "4", "1",
        "3", "6", "32", "32", *conv, *pool, "KOP_RELUM",
    ]  # fmt: skip
    assert calls[1] == [
        '"S6_Conv2d_16x6x5x5_MaxPool_2x2_Relu"', "0", "4", "1",
        "6", "16", "14", "14", *conv, *pool, "KOP_RELUM",
    ]  # fmt: skip


def test_three_linear_calls(generated: tuple[Path, list[Path]]) -> None:
    calls = _calls(_model_c(generated), "CNN_LinearAct_SQ8")
    # Name, Ctrl, Bias_DataSize, Scale_DataSize, InDim, OutDim, KOP_LINEAR, ActOper; NNTool
    # names a linear+ReLU fusion Op_<node>, steps count inputs and constants (S9, S12, S15);
    # the ReLU outputs are asymmetric (Z = -128): KOP_RELUM
    assert calls == [
        ['"S9_Op__fc1_Gemm_fusion"', "0", "4", "1", "400", "120", "KOP_LINEAR", "KOP_RELUM"],
        ['"S12_Op__fc2_Gemm_fusion"', "0", "4", "1", "120", "84", "KOP_LINEAR", "KOP_RELUM"],
        ['"S15_Linear_10x84"', "0", "4", "1", "84", "10", "KOP_LINEAR", "KOP_NONE"],
    ]


def test_create_graph_globals_and_locals(generated: tuple[Path, list[Path]]) -> None:
    text = _model_c(generated)
    m = re.search(
        r"CreateGraph\(.*?CArgs\((\d+),(.*?)\),\s*/\*.*?\*/\s*CArgs\((\d+),(.*?)\)\s*\);",
        text,
        re.S,
    )
    assert m is not None
    n_glob, glob, n_loc, loc = int(m.group(1)), m.group(2), int(m.group(3)), m.group(4)
    g_names = re.findall(r'TCArgInfo\("[^"]+", "([^"]+)"', glob)
    l_names = re.findall(r'TCArgInfo\("[^"]+", "([^"]+)"', loc)
    assert n_glob == len(g_names) == 1 + 5 * 5 + 1
    assert n_loc == len(l_names) == 4
    assert g_names[0] == "Input_1" and g_names[-1] == "Output_1"
    assert g_names[1:6] == [
        "_conv1_conv_weights",
        "Constant_conv1_bias",
        "S3_Mul_scale",
        "S3_Mul_shift",
        "S3_Infos",
    ]
    assert l_names == ["S3_Output", "S6_Output", "S9_Output", "S12_Output"]
    assert "ARG_SCOPE_ARG, ARG_DIR_IN" in glob and "ARG_SCOPE_ARG, ARG_DIR_OUT" in glob
    assert glob.count("ARG_SCOPE_GLOBAL, ARG_DIR_CONSTIN, AT_MEM_L3_HFLASH, AT_MEM_UNDEF") == 25
    assert loc.count("ARG_SCOPE_LOCAL, ARG_DIR_INOUT, AT_MEM_UNDEF, AT_MEM_UNDEF, 0") == 4
    nodes = re.findall(r'AddNode\("([^"]+)",\s*Bindings\((\d+),(.*?)\)\s*\);', text, re.S)
    assert [n[0] for n in nodes] == [
        "S3_Conv2d_6x3x5x5_MaxPool_2x2_Relu",
        "S6_Conv2d_16x6x5x5_MaxPool_2x2_Relu",
        "S9_Op__fc1_Gemm_fusion",
        "S12_Op__fc2_Gemm_fusion",
        "S15_Linear_10x84",
    ]
    first = re.findall(r"GNodeArg\((GNA_\w+), \"([^\"]+)\", 0\)", nodes[0][2])
    assert first == [
        ("GNA_IN", "Input_1"),
        ("GNA_IN", "_conv1_conv_weights"),
        ("GNA_IN", "Constant_conv1_bias"),
        ("GNA_OUT", "S3_Output"),
        ("GNA_IN", "S3_Mul_scale"),
        ("GNA_IN", "S3_Mul_shift"),
        ("GNA_IN", "S3_Infos"),
    ]
    assert all(int(n[1]) == 7 for n in nodes)
    last = re.findall(r"GNodeArg\((GNA_\w+), \"([^\"]+)\", 0\)", nodes[4][2])
    assert last[0] == ("GNA_IN", "S12_Output") and last[3] == ("GNA_OUT", "Output_1")


# -- tensors ---------------------------------------------------------------------------------


def test_every_tensor_file_exists_with_right_size_and_values(
    session: Any, generated: tuple[Path, list[Path]]
) -> None:
    out, paths = generated
    text = _model_c(generated)
    infos = re.findall(r'ConstInfo\("([^"]+)", 1, 1, (\d+), 0\)', text)
    assert len(infos) == 25
    assert {out / p for p, _ in infos} == set(paths[2:])
    nodes = session.graph.nodes
    for k, node in enumerate(nodes, start=1):
        c = session.qstate.nodes[node.name].consts
        out_c = c["weights"].shape[0]
        files = [out / p for p, _ in infos[(k - 1) * 5 : k * 5]]
        bits = [int(b) for _, b in infos[(k - 1) * 5 : k * 5]]
        assert bits == [8, 32, 8, 8, 8]
        w, b, ms, mn, inf = (f.read_bytes() for f in files)
        assert len(w) == c["weights"].size and w == c["weights"].astype(np.int8).tobytes()
        assert len(b) == 4 * out_c
        np.testing.assert_array_equal(np.frombuffer(b, "<i4"), c["bias_total"])
        assert ms == c["mul"].astype(np.uint8).tobytes() and len(ms) == out_c
        np.testing.assert_array_equal(np.frombuffer(mn, np.int8), c["shift"])
        assert len(inf) == INFOS_SIZE == 13
        zo = session.qstate.nodes[node.name].out_q.zero_point
        relu = node.op == "Fused"  # ReLU: ACTSCALE 1, ACTSCALEN 0, A0 = Zo; else all 0
        expected = [1, 0, zo, 0, *[0] * 9] if relu else [0] * 13
        assert np.frombuffer(inf, np.int8).tolist() == expected
    assert files[0].name == "_fc3_gemm_weights.tensor"


# -- header ----------------------------------------------------------------------------------


def _defines(text: str) -> dict[str, str]:
    return dict(re.findall(r"^#define (\w+)\t(\S+)$", text, re.M))


def _qs_qn(s: float) -> tuple[int, int]:
    """SQ8.md §8 written out again independently of fixed_point."""
    f, e = math.frexp(s)
    qs = math.floor(f * 128 + 0.5)
    qn = 7 - e
    return (64, qn - 1) if qs == 128 else (qs, qn)


def test_header_matches_qshow(session: Any, generated: tuple[Path, list[Path]]) -> None:
    header = generated[1][1]
    assert header.name == "model.h"
    defs = _defines(header.read_text())
    doc = _qshow_json(session)
    names = ["Input_1"] + [
        "S3_Conv2d_6x3x5x5_MaxPool_2x2_Relu",
        "S6_Conv2d_16x6x5x5_MaxPool_2x2_Relu",
        "S9_Op__fc1_Gemm_fusion",
        "S12_Op__fc2_Gemm_fusion",
        "S15_Linear_10x84",
    ]
    qs = [doc["layers"][0]["inputs"][0]] + [row["output"] for row in doc["layers"]]
    assert len(defs) == 4 * len(names)
    for name, q in zip(names, qs, strict=True):
        scale = float(defs[f"CIFAR_NET_{name}_OUT_SCALE"])
        assert scale == q["scale"]
        assert int(defs[f"CIFAR_NET_{name}_OUT_ZERO_POINT"]) == q["zero_point"]
        qscale = int(defs[f"CIFAR_NET_{name}_OUT_QSCALE"])
        qnorm = int(defs[f"CIFAR_NET_{name}_OUT_QNORM"])
        assert (qscale, qnorm) == _qs_qn(scale)
        assert 64 <= qscale <= 127
        assert abs(qscale * 2.0**-qnorm - scale) <= scale * 2.0**-7


def test_header_qscale_128_case(session: Any, tmp_path: Path) -> None:
    s = 0.999 * 2.0**-5  # mantissa 0.999: f·128 rounds to 128
    f, e = math.frexp(s)
    assert math.floor(f * 128 + 0.5) == 128
    assert header_qscale_qnorm(s) == (64, 7 - e - 1) == _qs_qn(s)
    assert abs(64 * 2.0 ** -(7 - e - 1) - s) <= s * 2.0**-7  # not s/4 as NNTool reports
    qs = session.qstate
    tensors = {**qs.tensors, "output": QType(s, 0, symmetric=True)}
    fake = QuantState(qs.scheme, qs.options, tensors, qs.nodes, qs.ranges)
    paths = generate_autotiler(
        session.graph, fake, session.settings, tmp_path, None, "tensors", "x.h", False
    )
    defs = _defines(paths[1].read_text())
    assert defs["CIFAR_NET_S15_Linear_10x84_OUT_QSCALE"] == "64"
    assert defs["CIFAR_NET_S15_Linear_10x84_OUT_QNORM"] == str(7 - e - 1)
    assert float(defs["CIFAR_NET_S15_Linear_10x84_OUT_SCALE"]) == s


# -- determinism, goldens, command line --------------------------------------------------------


def test_generation_is_deterministic(session: Any, tmp_path: Path) -> None:
    a = session.gen_autotiler(model_dir=str(tmp_path / "a"))
    b = session.gen_autotiler(model_dir=str(tmp_path / "b"))
    assert [p.relative_to(tmp_path / "a") for p in a] == [p.relative_to(tmp_path / "b") for p in b]
    for pa, pb in zip(a, b, strict=True):
        assert pa.read_bytes() == pb.read_bytes(), pa.name
    text = a[0].read_text() + a[1].read_text()
    assert str(tmp_path) not in text and "/tmp" not in text
    assert not [p for p in (tmp_path / "a").rglob(".*")]  # no temporary file left


def test_matches_golden_files(session: Any, tmp_path: Path) -> None:
    files = GOLDEN.golden_outputs(session, tmp_path)
    for name, data in files.items():
        golden = GOLDEN.GOLDEN_DIR / name
        assert golden.is_file(), f"missing golden {name}: run python scripts/update_golden.py"
        assert golden.read_bytes() == data, (
            f"{name} differs from tests/golden/autotiler (if the change is intended, run "
            "python scripts/update_golden.py and review the diff)"
        )
    assert sorted(p.name for p in GOLDEN.GOLDEN_DIR.iterdir()) == sorted(files)


def test_unquantized_graph_is_refused(tmp_path: Path) -> None:
    from nnshell.session import Session

    s = Session()
    s.open(str(GOLDEN.SAMPLE_MODEL))
    with pytest.raises(GraphStateError):
        s.gen_autotiler(model_dir=str(tmp_path))
    assert not list(tmp_path.iterdir())


def test_command_line_generates_from_state(session: Any, tmp_path: Path) -> None:
    state, _ = session.save_state(str(tmp_path / "lenet.json"))
    expected = session.gen_autotiler(model_dir=str(tmp_path / "ref"), header="lenetInfo.h")
    proc = subprocess.run(
        [sys.executable, "-m", "nnshell", "-g", str(state), "-M", str(tmp_path / "cli"),
         "-m", "lenetModel.c", "-T", "tensors", "-H", "lenetInfo.h"],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    cli = tmp_path / "cli"
    assert (cli / "lenetModel.c").read_bytes() == expected[0].read_bytes()
    assert (cli / "lenetInfo.h").read_bytes() == expected[1].read_bytes()
    for p in expected[2:]:
        assert (cli / "tensors" / p.name).read_bytes() == p.read_bytes()
    bad = subprocess.run(
        [sys.executable, "-m", "nnshell", "-g", str(tmp_path / "missing.json")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 1 and bad.stderr.count("error:") == 1
    assert "Traceback" not in bad.stderr


def _residual_model(folder: Path) -> Path:
    """conv+relu, conv, add+relu, avgpool, global avgpool, linear, softmax (8x8 input)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    consts = {
        "w1": rng.normal(0, 0.3, (8, 3, 3, 3)),
        "b1": rng.normal(0, 0.1, 8),
        "w2": rng.normal(0, 0.3, (8, 8, 3, 3)),
        "b2": rng.normal(0, 0.1, 8),
        "w3": rng.normal(0, 0.3, (4, 8)),
        "b3": np.zeros(4),
    }
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c2", "r1"], ["a"]),
        helper.make_node("Relu", ["a"], ["r2"]),
        helper.make_node("AveragePool", ["r2"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("GlobalAveragePool", ["p"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["y0"], transB=1),
        helper.make_node("Softmax", ["y0"], ["y"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "residual",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in consts.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = folder / "residual.onnx"
    onnx.save(model, str(path))
    for i in range(16):
        np.save(folder / f"in{i}.npy", rng.normal(0, 1, (3, 8, 8)).astype(np.float32))
    return path


def test_pool_matadd_global_pool_softmax_generators(tmp_path: Path) -> None:
    from nnshell.session import Session

    s = Session()
    s.open(str(_residual_model(tmp_path)))
    s.adjust()
    s.fusions("scale8")
    s.aquant([str(tmp_path / "*.npy")])
    paths = s.gen_autotiler(model_dir=str(tmp_path / "gen"))
    text = paths[0].read_text()
    conv = _calls(text, "CNN_ConvolutionPoolAct_SQ8")
    assert [c[0] for c in conv] == ['"S3_Conv2d_8x3x3x3_Relu"', '"S6_Conv2d_8x8x3x3"']
    assert conv[0][4:16] == ["3", "8", "8", "8", "KOP_CONV", "3", "3", "1", "1", "1", "1", "1"]
    assert conv[1][-9:] == ["KOP_NONE", "0", "0", "0", "0", "0", "0", "0", "KOP_NONE"]
    assert _calls(text, "CNN_MatAddAct_SQ8") == [
        ['"S7_MatAdd_8x8x8_Relu"', "0", "8", "8", "8", "KOP_MATADD", "KOP_RELU"]
    ]
    assert _calls(text, "CNN_PoolAct_SQ8") == [
        ['"S8_AveragePool_2x2"', "0", "8", "8", "8", "KOP_AVGPOOL"]
        + ["2", "2", "1", "1", "2", "2", "0", "KOP_NONE"]
    ]
    assert _calls(text, "CNN_GlobalPoolAct_SQ8") == [
        ['"S9_Op_GlobalAveragePool_6"', "0", "8", "4", "4", "KOP_GLOBAL_AVGPOOL", "KOP_NONE"]
    ]
    assert _calls(text, "CNN_SoftMax_SQ8") == [['"S13_SoftMax"', "0", "4", "KOP_SOFTMAX"]]
    # the flatten is no kernel; the softmax writes Q15 shorts straight to the graph output
    assert 'TCArgInfo("signed short * __restrict__", "Output_1", ARG_SCOPE_ARG' in text
    add = re.search(r'AddNode\("S7_MatAdd_8x8x8_Relu",(.*?)\);', text, re.S)
    assert add is not None
    binds = re.findall(r"GNodeArg\((GNA_\w+), \"([^\"]+)\", 0\)", add.group(1))
    assert [b[0] for b in binds] == ["GNA_IN", "GNA_IN", "GNA_OUT", "GNA_IN"]
    assert {binds[0][1], binds[1][1]} == {"S3_Output", "S6_Output"}
    infos = np.fromfile(tmp_path / "gen" / "tensors" / "S7_Infos.tensor", np.int8)
    nq = s.qstate.nodes[s.graph.nodes[2].name].consts
    # CNN_Infos_SQ8.h: OUTSCALE at 10, OUTSCALEN at 11
    assert int(infos[10]) & 0xFF == int(nq["mul"]) and infos[11] == int(nq["shift"])
