"""TFLite import (issue 19), checked against the TFLite interpreter (ai-edge-litert)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nnshell.errors import ModelFileError, NnshellError, UnsupportedOpError, UsageError
from nnshell.session import Session
from tests.tflite_oracle import ROOT, TFLITE_DIR, float_errors, load_images, quantized_agreement

pytest.importorskip("tflite")
litert = pytest.importorskip("ai_edge_litert")

FLOAT_MODELS = [
    "cifar_net",
    "lenet_bw",
    "mobile_block",
    "dw_block",
    "ops_shapes",
    "ops_elementwise",
    "ops_activations",
    "ops_pool_resize",
]
TEST = ROOT / "sample_images" / "test"
BW_TEST = ROOT / "sample_images" / "bw_test"
MNIST_SCRIPT = ROOT / "tests" / "data" / "nntool_mnist.nnscript"


@pytest.mark.parametrize("name", FLOAT_MODELS)
def test_every_tensor_matches_the_interpreter_in_float(name: str) -> None:
    errors = float_errors(TFLITE_DIR / f"{name}.tflite")
    assert len(errors) >= 5
    bad = {k: v for k, v in errors.items() if v > 1e-4}
    assert not bad, bad


@pytest.mark.parametrize("name", FLOAT_MODELS)
def test_int8_files_open_as_float_graphs(name: str) -> None:
    """A quantized file opens without -q: weights dequantized, QUANTIZE/DEQUANTIZE gone."""
    s = Session()
    g = s.open(str(TFLITE_DIR / f"{name}_int8.tflite"))
    assert not any(n.name.startswith(("QUANTIZE", "DEQUANTIZE")) for n in g.nodes)
    assert all(t.dtype == "float32" for t in g.tensors.values() if t.is_const is False)
    # the float graph is the int8 file's real arithmetic up to its rounding: close to it
    errors = float_errors(TFLITE_DIR / f"{name}_int8.tflite", samples=1)
    assert errors[g.outputs[0]] < 0.15


def test_nntool_names_and_adjust_removes_the_layout_transposes() -> None:
    s = Session()
    g = s.open(str(TFLITE_DIR / "cifar_net_int8.tflite"))
    names = [n.name for n in g.nodes]
    assert "CONV_2D_0_1" in names and "FULLY_CONNECTED_0_8" in names
    assert "MAX_POOL_2D_0_2_activation" in names  # the fused ReLU, named as NNTool does
    assert g.inputs == ["input_1"] and g.outputs == ["output_1"]
    assert g.tensors["input_1"].dims == (32, 32, 3)  # NHWC as in the file
    res = s.adjust()
    assert any("folded into the input" in e for e in res.edits)
    assert not [n for n in s.graph.nodes if n.op == "Transpose"]
    assert s.graph.tensors["input_1"].dims == (3, 32, 32)


def test_nntool_nodeoption_name_resolves_after_fusions(shell) -> None:  # noqa: ANN001
    model = TFLITE_DIR / "cifar_net_int8.tflite"
    for line in (f"open {model}", "adjust", "fusions --scale8"):
        ok, _out, err = shell.run(line)
        assert ok, err
    ok, out, err = shell.run("show CONV_2D_0_1_fusion")
    assert ok, err
    assert "CONV_2D_0_1_fusion" in out


def test_unsupported_operators_are_all_listed_on_one_line(tmp_path: Path) -> None:
    import tflite

    data = bytearray((TFLITE_DIR / "ops_activations.tflite").read_bytes())
    model = tflite.Model.GetRootAsModel(data, 0)
    # turn the LOGISTIC and TANH operator codes into ones nnshell does not import (in place)
    codes = {}
    for k in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(k)
        codes[oc.BuiltinCode()] = oc
    patched = 0
    for code, new in (
        (tflite.BuiltinOperator.LOGISTIC, tflite.BuiltinOperator.EXP),
        (tflite.BuiltinOperator.TANH, tflite.BuiltinOperator.LOG),
    ):
        oc = codes[code]
        for field_off, width in ((10, 4), (4, 1)):  # BuiltinCode (int32), deprecated (int8)
            o = oc._tab.Offset(field_off)
            if o:
                pos = oc._tab.Pos + o
                data[pos : pos + width] = int(new if width == 4 else min(new, 127)).to_bytes(
                    width, "little", signed=True
                )
                patched += 1
    assert patched
    path = tmp_path / "bad.tflite"
    path.write_bytes(bytes(data))
    with pytest.raises(UnsupportedOpError) as exc:
        Session().open(str(path))
    msg = str(exc.value)
    assert "\n" not in msg
    assert "2 node(s) use unsupported operators: EXP (EXP_0_4); LOG (LOG_0_5)" in msg
    assert "help tflite" in msg


def test_not_a_tflite_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "x.tflite"
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelFileError, match="not a TFLite model"):
        Session().open(str(path))
    with pytest.raises(UsageError, match="not a TFLite file"):
        Session().open(str(ROOT / "sample_models" / "cifar_net.onnx"), load_quantization=True)
    with pytest.raises(ModelFileError, match="holds no quantization"):
        Session().open(str(TFLITE_DIR / "cifar_net.tflite"), load_quantization=True)


def test_help_tflite_lists_the_operators(shell) -> None:  # noqa: ANN001
    ok, out, _ = shell.run("help tflite")
    assert ok
    from nnshell.importers.tflite_importer import supported_tflite_ops

    listed = {w.strip(",") for w in out.split()}
    assert set(supported_tflite_ops()) <= listed
    assert max(len(line) for line in out.splitlines()) <= 80  # an 80-column terminal


# -- open -q ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cifar_images() -> tuple[np.ndarray, list[int], list[str]]:
    """The first 120 test images, normalised as the LeNet was trained."""
    x, labels, files = load_images(TEST, False, lambda p: p / 127.5 - 1)
    return x[:120], labels[:120], files[:120]


@pytest.mark.parametrize(
    "name", ["cifar_net_int8", "cifar_net_uint8", "cifar_net_int8io", "cifar_net_uint8_legacy"]
)
def test_load_quantization_agrees_with_the_interpreter(name: str, cifar_images) -> None:  # noqa: ANN001
    x, labels, _ = cifar_images
    ag = quantized_agreement(TFLITE_DIR / f"{name}.tflite", x, labels)
    assert ag.images == 120
    assert len(ag.codes) == 6  # input, both conv+pool outputs, both hidden dense, the output
    if name.endswith("legacy"):  # asymmetric uint8 weights become symmetric per-channel int8
        assert ag.top1_same >= 118 and ag.exact() > 0.97 and ag.within1() > 0.9999
        return
    # 30-bit multipliers from the file's scales (file_mult_bits): TFLite's precision
    assert ag.top1_same == 120 and ag.top1_nnshell == ag.top1_tflite
    assert ag.exact() > 0.999 and ag.within1() == 1.0


def test_load_quantization_with_8bit_multipliers_is_sq8s_rule(tmp_path: Path) -> None:
    """file_mult_bits 8: GAP's SQ8 multipliers (what the AutoTiler target takes): the codes
    move away from the interpreter's, and the AutoTiler refuses the 30-bit default."""
    path = TFLITE_DIR / "cifar_net_int8.tflite"
    wide, narrow = Session(), Session()
    for s, bits in ((wide, 30), (narrow, 8)):
        s.open(str(path), load_quantization=True)
        s.set("file_mult_bits", str(bits))
        s.adjust()
        s.fusions("scale8")
    for s, bits in ((wide, 30), (narrow, 8)):
        muls = [nq.consts["mul"] for nq in s.qstate.nodes.values() if "mul" in nq.consts]
        assert muls and max(int(m.max()) for m in muls) < (1 << bits)
        assert s.qstate.options.mult_bits == bits
    assert (
        max(int(nq.consts["mul"].max()) for nq in wide.qstate.nodes.values() if "mul" in nq.consts)
        >= 1 << 20
    )
    with pytest.raises(NnshellError, match="8-bit ones"):
        wide.gen_autotiler(model_dir=str(tmp_path / "w"), write_tensors=False)
    narrow.gen_autotiler(model_dir=str(tmp_path / "n"), write_tensors=False)
    assert (tmp_path / "n").is_dir()


def test_load_quantization_on_depthwise_separable_layers() -> None:
    """Padded convs pad with the input zero point, as TFLite does (issue 17): their inputs keep
    the file's qtype, zero point included; MEAN over H, W is a global average pool."""
    from nnshell.ops import get_op

    path = TFLITE_DIR / "dw_block_int8.tflite"
    s = Session()
    s.open(str(path), load_quantization=True)
    s.adjust()
    out = s.fusions("scale8")
    assert not any("with padding) needs 0" in n for n in out.notes), out.notes
    fq = s.graph.meta["tflite_quant"]
    padded = [n for n in s.graph.nodes if get_op(n.op).q_padded_input(n, 0) == "conv with padding"]
    kept = [n.inputs[0] for n in padded if fq.get(n.inputs[0], {}).get("zero_point", [0])[0]]
    assert kept, "no padded conv reads a tensor with a zero point in the file"
    for t in kept:
        assert s.qstate.tensors[t].zero_point == fq[t]["zero_point"][0]
    assert [n.op for n in s.graph.nodes].count("GlobalAveragePool") == 1
    x = np.random.default_rng(3).uniform(-1, 1, (100, 16, 16, 3)).astype(np.float32)
    ag = quantized_agreement(path, x)
    assert ag.top1_same >= 95
    assert ag.within1() > 0.95
    assert "CONV_2D_0_3_activation_out" in ag.codes


@pytest.mark.parametrize("name", ["mobile_block_int8", "ops_pool_resize_int8", "ops_shapes_int8"])
def test_load_quantization_on_hardswish_and_resize_models(name: str) -> None:
    """HARD_SWISH fused into a depthwise conv, a residual ADD; pools, MEAN and both resizes
    (RESIZE_BILINEAR is ONNX's linear Resize, which has SQ8 kernels); PAD, SPLIT, slices."""
    shape = {"mobile_b": (16, 16, 3), "ops_pool": (12, 12, 3), "ops_shap": (8, 8, 4)}[name[:8]]
    x = np.random.default_rng(3).uniform(-1, 1, (100, *shape)).astype(np.float32)
    ag = quantized_agreement(TFLITE_DIR / f"{name}.tflite", x)
    assert ag.top1_same >= 94
    assert ag.within1() > 0.95


def test_load_quantization_keeps_the_file_scales() -> None:
    import tflite

    from nnshell.importers.tflite_importer import import_tflite

    path = TFLITE_DIR / "cifar_net_int8.tflite"
    s = Session()
    s.open(str(path), load_quantization=True)
    s.adjust()
    out = s.fusions("scale8")
    assert any("file's quantization applied" in n for n in out.notes)
    qs = s.qstate
    fq = import_tflite(str(path)).graph.meta["tflite_quant"]
    q = fq["MAX_POOL_2D_0_2_activation_out"]
    mine = qs.tensors["MAX_POOL_2D_0_2_activation_out"]
    assert mine.zero_point == q["zero_point"][0] and np.isclose(mine.scale, q["scale"][0])
    # the weights' per-channel scales are the file's
    nq = qs.nodes["CONV_2D_0_1_fusion"]
    assert np.allclose(nq.consts["weights_scale"], fq["CONV_2D_0_1_weights"]["scale"], rtol=1e-5)
    assert tflite  # the parser is the library


@pytest.mark.parametrize("name", ["cifar_net_uint8", "cifar_net_uint8_legacy"])
def test_uint8_model_gen_verify_is_bit_exact(name: str, tmp_path: Path) -> None:
    """uint8 interface (int8 inside), and a legacy fully-uint8 file: uint8 weights with zero
    points, uint8 activations, all shifted to int8 by -q."""
    from nnshell.importers.tflite_importer import import_tflite

    fq = import_tflite(str(TFLITE_DIR / f"{name}.tflite")).graph.meta["tflite_quant"]
    uint8_weights = [k for k, v in fq.items() if k.endswith("_weights") and v["dtype"] == "uint8"]
    assert len(uint8_weights) == (5 if name.endswith("legacy") else 0)
    s = Session()
    s.open(str(TFLITE_DIR / f"{name}.tflite"), load_quantization=True)
    s.adjust()
    s.fusions("scale8")
    s.set("input_norm_func", "x: x/127.5 - 1")
    files = sorted(str(p) for p in TEST.glob("*.png"))[:40]
    res = s.gen_verify(files, out_dir=str(tmp_path / "c"))
    assert res.ok, res.summary()


def test_sixteen_by_eight_model_opens_with_q() -> None:
    s = Session()
    s.open(str(TFLITE_DIR / "cifar_net_16x8.tflite"), load_quantization=True)
    s.adjust()
    out = s.fusions("scale8")
    assert s.qstate is not None
    assert any("int16 in the file" in n for n in out.notes)


# -- the command line and NNTool's MNIST script ------------------------------------------------
def _cli(args: list[str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "nnshell", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_nntool_mnist_script_runs_unchanged_on_a_tflite_model(tmp_path: Path) -> None:
    model = tmp_path / "lenet_bw.tflite"
    shutil.copy(TFLITE_DIR / "lenet_bw.tflite", model)
    proc = _cli(
        [str(model), "-s", str(MNIST_SCRIPT)]
        + ["-D", "MODEL_L3_RAM=AT_MEM_L3_HRAM", "-D", "MODEL_L3_FLASH=AT_MEM_L3_HFLASH"]
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "lenet_bw.json").is_file()
    proc = _cli([str(tmp_path / "lenet_bw.json"), "-c", "validate sample_images/bw_test"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "quantized top-1" in proc.stdout


def test_command_line_q_and_quickstart_flow(tmp_path: Path) -> None:
    proc = _cli(
        [
            "-q",
            str(TFLITE_DIR / "cifar_net_int8.tflite"),
            "-c",
            "adjust; fusions --scale8; qshow; set input_norm_func 'x: x/127.5 - 1'; "
            f"validate sample_images/test; gen --target c -M {tmp_path / 'c'} "
            "--verify sample_images/test",
        ]
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "file's quantization applied" in proc.stdout
    assert "bit-exact" in proc.stdout


@pytest.mark.parametrize("name", ["cifar_net", "cifar_net_int8"])
def test_quickstart_flow_on_the_tflite_lenet(name: str, tmp_path: Path) -> None:
    """open, adjust, fusions --scale8, norm, aquant, validate, gen --verify; the float graph
    gives the ONNX LeNet's float predictions (same trained weights)."""
    calib = sorted(str(p) for p in (ROOT / "sample_images" / "calib").glob("*.png"))[:64]
    test = sorted(str(p) for p in TEST.glob("*.png"))[:60]

    def flow(model: Path) -> tuple[Session, object]:
        s = Session()
        s.open(str(model))
        s.adjust()
        s.fusions("scale8")
        s.set("input_norm_func", "x: x/127.5 - 1")
        s.aquant(calib)
        return s, s.validate(test)

    s, res = flow(TFLITE_DIR / f"{name}.tflite")
    assert s.graph.tensors["input_1"].dims == (3, 32, 32)  # no image layout option needed
    verify = s.gen_verify(test[:20], out_dir=str(tmp_path / "c"))
    assert verify.ok, verify.summary()
    if name == "cifar_net":
        _, ref = flow(ROOT / "sample_models" / "cifar_net.onnx")
        assert np.array_equal(res.float_pred, ref.float_pred)  # type: ignore[attr-defined]


def test_corrupt_files_fail_with_one_line_errors(tmp_path: Path) -> None:
    """Truncated files and flipped bytes: an NnshellError (one line) or a graph, never a
    traceback."""
    from nnshell.errors import NnshellError

    data = (TFLITE_DIR / "mobile_block_int8.tflite").read_bytes()
    rng = np.random.default_rng(19)
    path = tmp_path / "m.tflite"
    outcomes = {"error": 0, "graph": 0}
    for k in range(60):
        blob = bytearray(data)
        if k < 10:
            blob = blob[: int(len(blob) * (k + 1) / 11)]
        else:
            for pos in rng.integers(8, len(blob), size=4):
                blob[pos] = int(rng.integers(0, 256))
        path.write_bytes(bytes(blob))
        try:
            Session().open(str(path))
            outcomes["graph"] += 1
        except NnshellError as exc:
            assert "\n" not in str(exc)
            outcomes["error"] += 1
    assert outcomes["error"] >= 10


def test_load_quantization_survives_save_state(tmp_path: Path) -> None:
    """The file's quantization is saved like any other (meta holds plain JSON values)."""
    s = Session()
    s.open(str(TFLITE_DIR / "cifar_net_int8.tflite"), load_quantization=True)
    s.adjust()
    s.fusions("scale8")
    s.save_state(str(tmp_path / "st.json"))
    r = Session()
    r.open(str(tmp_path / "st.json"))
    assert r.qstate is not None and r.graph is not None
    assert r.graph.meta["format"] == "tflite"
    name = "MAX_POOL_2D_0_2_activation_out"
    assert r.qstate.tensors[name].zero_point == s.qstate.tensors[name].zero_point
