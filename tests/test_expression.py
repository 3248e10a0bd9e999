"""``fusions -a expression_matcher`` and calibration with several inputs (issue 20).

A two-input ONNX chain (Add, Tanh, Mul, Relu, Add, Sigmoid) with two outputs, made here, becomes
ONE expression node; its float result is onnxruntime's; NNTool-style ``aquant a.npy b.npy
--nptype int8`` (one int8 .npy per input and sample) quantizes it in SQ8 and the generated C
is bit-exact with the integer executor (gcc). The GAP SDK expressions model, where the mirror
exists, groups exactly the ten layers NNTool groups into ``expr_0``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SDK = Path(os.environ.get("GAP_SDK_REPO", "/work/.mirror/GreenWaves-Technologies+gap_sdk/repo"))
SHAPE = [1, 4, 6, 6]


def _chain(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("Add", ["x", "y"], ["s"], name="add0"),
        helper.make_node("Tanh", ["s"], ["t"], name="tanh0"),
        helper.make_node("Mul", ["t", "y"], ["m"], name="mul0"),
        helper.make_node("Relu", ["m"], ["out1"], name="relu0"),
        helper.make_node("Add", ["out1", "x"], ["a2"], name="add1"),
        helper.make_node("Sigmoid", ["a2"], ["out2"], name="sig0"),
    ]
    vi = helper.make_tensor_value_info
    g = helper.make_graph(
        nodes,
        "chain",
        [vi(n, TensorProto.FLOAT, SHAPE) for n in ("x", "y")],
        [vi(n, TensorProto.FLOAT, SHAPE) for n in ("out1", "out2")],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, str(path))
    return path


def _samples(folder: Path, n: int) -> list[str]:
    rng = np.random.default_rng(3)
    files = []
    for k in range(n):
        for i in range(2):
            f = folder / f"s{k}_{i}.npy"
            np.save(f, rng.integers(-128, 127, SHAPE[1:]).astype(np.int8))
            files.append(str(f))
    return files


def _nnshell(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m nnshell ARGS`` with this checkout importable, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "nnshell", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=cwd,
        timeout=300,
    )


def test_expression_float_matches_onnxruntime(tmp_path: Path) -> None:
    import onnxruntime as ort

    from nnshell.exec import run_float
    from nnshell.session import Session

    model = _chain(tmp_path / "chain.onnx")
    s = Session()
    s.open(str(model))
    s.fusions(names=["expression_matcher"])
    assert [n.op for n in s.graph.nodes] == ["Expression"]
    node = s.graph.nodes[0]
    assert node.name == "expr_0" and len(node.inputs) == 2 and len(node.outputs) == 2
    rng = np.random.default_rng(0)
    feeds = {k: rng.uniform(-1, 1, SHAPE).astype(np.float32) for k in ("x", "y")}
    got = run_float(s.graph, feeds)
    want = ort.InferenceSession(str(model)).run(["out1", "out2"], feeds)
    for name, ref in zip(("out1", "out2"), want, strict=True):
        np.testing.assert_allclose(got[name], ref, rtol=1e-5, atol=1e-6)


def test_expression_sq8_two_inputs_npy_int8_gen_verify(tmp_path: Path) -> None:
    if shutil.which("gcc") is None and shutil.which("cc") is None:
        pytest.skip("no C compiler")
    model = _chain(tmp_path / "chain.onnx")
    files = _samples(tmp_path, 3)
    script = tmp_path / "script"
    script.write_text(
        "fusions -a expression_matcher\n"
        "set input_norm_func 'x:x/128'\n"
        f"aquant {' '.join(files)} --nptype int8\n"
        "qshow\n"
        f"qerror {' '.join(files[:2])} -F int8\n"
        f"gen --target c -M {tmp_path / 'c'} --verify {' '.join(files[:4])} -F int8\n"
        f"save_state {tmp_path / 'st'}\n"
    )
    proc = _nnshell([str(model), "-s", str(script)])
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "add0, tanh0, mul0, relu0, add1, sig0 → expr_0" in out
    assert "calibrated on 3 image(s)" in out
    assert "bit-exact on 2 images, 6 layers" in out
    assert "expr_0:out2" in out  # qerror: a row per output of the expression
    # the state reopens and generates the same bit-exact C
    proc = _nnshell(
        [
            str(tmp_path / "st.json"),
            "-c",
            "qshow",
            "-c",
            f"gen --target c -M {tmp_path / 'c2'} --verify {files[4]} {files[5]} -F int8",
        ]
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "bit-exact on 1 image, 6 layers" in proc.stdout
    # an odd number of files for two inputs is one clear line
    proc = _nnshell([str(model), "-c", "fusions -a expression_matcher", "-c", f"aquant {files[0]}"])
    assert proc.returncode != 0
    assert "the graph has 2 inputs (x, y) but 1 file(s) were given" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


def test_expression_pow2_and_one_folder_per_input(tmp_path: Path) -> None:
    """POW2-16 quantizes the parts with their POW2 kernels (C bit-exact); calibration also
    takes one folder per input, whose sorted files pair up."""
    if shutil.which("gcc") is None and shutil.which("cc") is None:
        pytest.skip("no C compiler")
    from nnshell.session import Session

    model = _chain(tmp_path / "chain.onnx")
    files = _samples(tmp_path, 2)
    for i, d in enumerate(("xs", "ys")):
        (tmp_path / d).mkdir()
        for f in files[i::2]:
            shutil.copy(f, tmp_path / d / Path(f).name)
    s = Session()
    s.open(str(model))
    s.fusions(names=["expression_matcher"])
    s.fusions("pow2")
    out = s.aquant([str(tmp_path / "xs"), str(tmp_path / "ys")], scheme="POW2", bits=16)
    assert out.images == 2
    assert s.qstate.scheme == "POW2" and "expr_0" in s.qstate.nodes
    from nnshell.codegen.verify import verify

    res = verify(s.graph, s.qstate, files[:2], s.input_options(), tmp_path / "b")
    assert res.mismatch is None and res.layers == 6


def test_min_max_by_scalar_become_clip_in_an_expression(tmp_path: Path) -> None:
    """``Max(Min(x + y, 6), 0) * y`` (TFLite's MINIMUM / MAXIMUM by a scalar): the same floats
    as onnxruntime after ``expression_matcher`` (the bounds become Clips), and SQ8 C bit-exact."""
    if shutil.which("gcc") is None and shutil.which("cc") is None:
        pytest.skip("no C compiler")
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from nnshell.codegen.verify import verify
    from nnshell.exec import run_float
    from nnshell.session import Session

    nodes = [
        helper.make_node("Add", ["x", "y"], ["s"], name="add0"),
        helper.make_node("Min", ["s", "six"], ["lo"], name="min0"),
        helper.make_node("Max", ["lo", "zero"], ["r"], name="max0"),
        helper.make_node("Mul", ["r", "y"], ["out"], name="mul0"),
    ]
    vi = helper.make_tensor_value_info
    inits = [
        numpy_helper.from_array(np.array(0.6, np.float32), "six"),
        numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
    ]
    g = helper.make_graph(
        nodes,
        "mm",
        [vi(n, TensorProto.FLOAT, SHAPE) for n in ("x", "y")],
        [vi("out", TensorProto.FLOAT, SHAPE)],
        inits,
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, str(tmp_path / "mm.onnx"))
    s = Session()
    s.open(str(tmp_path / "mm.onnx"))
    s.fusions(names=["expression_matcher"])
    (node,) = s.graph.nodes
    assert [p.op for p in node.attrs.parts] == ["Add", "Clip", "Clip", "Mul"]
    rng = np.random.default_rng(1)
    feeds = {k: rng.uniform(-1, 1, SHAPE).astype(np.float32) for k in ("x", "y")}
    want = ort.InferenceSession(str(tmp_path / "mm.onnx")).run(["out"], feeds)[0]
    np.testing.assert_allclose(run_float(s.graph, feeds)["out"], want, rtol=1e-6, atol=1e-7)
    files = _samples(tmp_path, 2)
    s.set("input_norm_func", "x:x/128")
    s.aquant(files)
    res = verify(s.graph, s.qstate, files, s.input_options(), tmp_path / "b")
    assert res.mismatch is None and res.images == 2 and res.layers == 4


def test_sdk_expressions_grouping_matches_nntool(tmp_path: Path) -> None:
    if not SDK.exists():
        pytest.skip(f"GAP SDK mirror not available ({SDK})")
    rel = "examples/gap8/nn/nntool/expressions/model/expressions.tflite"
    proc = subprocess.run(["git", "-C", str(SDK), "show", f"HEAD:{rel}"], capture_output=True)
    if proc.returncode != 0:
        pytest.skip("GAP SDK mirror has no expressions example")
    model = tmp_path / "expressions.tflite"
    model.write_bytes(proc.stdout)
    from nnshell.session import Session

    s = Session()
    s.open(str(model))
    s.adjust()
    s.fusions(names=["expression_matcher"])
    (node,) = s.graph.nodes
    # NNTool 4.x: expr_0 fuses these ten layers; 4 graph inputs, 2 outputs
    assert node.name == "expr_0"
    assert sorted(node.meta["fused_nodes"]) == sorted(
        [
            "ADD_0_0",
            "TANH_0_2",
            "MUL_0_7",
            "TANH_0_8",
            "MAXIMUM_0_6",
            "MINIMUM_0_5",
            "ADD_0_4",
            "MUL_0_3",
            "ADD_0_1",
            "MUL_0_9",
        ]
    )
    acts = [i for i in node.inputs if not s.graph.tensors[i].is_const]
    assert acts == list(s.graph.inputs) and len(node.outputs) == 2


def test_sdk_expressions_script_runs_unchanged_and_generates(tmp_path: Path) -> None:
    """The SDK's own nntool_script on its model and samples: runs, the state reopens, the C
    is bit-exact on the four sample inputs."""
    if not SDK.exists():
        pytest.skip(f"GAP SDK mirror not available ({SDK})")
    base = "examples/gap8/nn/nntool/expressions"
    wanted = ["model/expressions.tflite", "model/nntool_script", "model/nntool_script_emul"]
    wanted += [f"samples/input_{k}.{e}" for k in range(4) for e in ("npy", "dat")]
    for rel in wanted:
        proc = subprocess.run(
            ["git", "-C", str(SDK), "show", f"HEAD:{base}/{rel}"], capture_output=True
        )
        if proc.returncode != 0:
            pytest.skip("GAP SDK mirror has no expressions example")
        dest = tmp_path / rel
        dest.parent.mkdir(exist_ok=True)
        dest.write_bytes(proc.stdout)
    proc = _nnshell(
        ["model/expressions.tflite", "-s", "model/nntool_script"]
        + ["-D", "MODEL_L3_RAM=AT_MEM_L3_HRAM", "-D", "MODEL_L3_FLASH=AT_MEM_L3_HFLASH"],
        cwd=tmp_path,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "→ expr_0" in out and "calibrated on 1 image(s)" in out
    samples = " ".join(f"samples/input_{k}.npy" for k in range(4))
    proc = _nnshell(
        [
            "model/expressions.json",
            "-c",
            "qshow",
            "-c",
            f"gen --target c -M c --verify {samples}",
        ],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "bit-exact on 1 image, 10 layers" in proc.stdout
    # the _emul variant reads the same samples as headerless int8 .dat files
    proc = _nnshell(
        ["model/expressions.tflite", "-s", "model/nntool_script_emul"]
        + ["-D", "MODEL_L3_RAM=AT_MEM_L3_HRAM", "-D", "MODEL_L3_FLASH=AT_MEM_L3_HFLASH"],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "S=0.04514 Z=0 [-5.78, 5.67]" in proc.stdout  # NNTool: 0.04513626
