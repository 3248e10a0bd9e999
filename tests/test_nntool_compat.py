"""NNTool script compatibility (issue 12): imageformat, AutoTiler settings, NNTool scripts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nnshell.errors import SettingError, UsageError
from nnshell.exec.float_exec import run_float
from nnshell.exec.int_exec import run_int
from nnshell.input.formatter import FORMATS, NORMS, Formatter, FormatterError, get_formatter
from nnshell.session import Session
from nnshell.shell.commands.nntool_cmds import FORMAT_CHOICES, NORM_CHOICES

ROOT = Path(__file__).resolve().parents[1]
LENET_BW = ROOT / "sample_models" / "lenet_bw.onnx"
BW_CALIB = ROOT / "sample_images" / "bw_calib"
BW_TEST = ROOT / "sample_images" / "bw_test"
CIFAR = ROOT / "sample_models" / "cifar_net.onnx"
CALIB = ROOT / "sample_images" / "calib"
TEST = ROOT / "sample_images" / "test"
SCRIPT = ROOT / "tests" / "data" / "nntool_mnist.nnscript"


def _quantized(model: Path, calib: Path, norm: str | None = "x: x/128-1") -> Session:
    s = Session()
    s.open(str(model))
    s.adjust()
    s.fusions("scale8")
    if norm is not None:
        s.set("input_norm_func", norm)
    s.aquant([str(calib)])
    return s


@pytest.fixture(scope="module")
def bw() -> Session:
    """lenet_bw quantized with x/128-1 (no formatter); tests copy what they change."""
    return _quantized(LENET_BW, BW_CALIB)


def _copy(s: Session) -> Session:
    import copy

    return copy.copy(s)  # Session methods assign new objects: a shallow copy is independent


# -- the formatter's transforms ------------------------------------------------------------
def test_shell_choices_match_the_library() -> None:
    assert set(FORMAT_CHOICES) == set(FORMATS)
    assert set(NORM_CHOICES) == set(NORMS)


def test_integer_transforms_and_their_real_values() -> None:
    p = np.arange(256, dtype=np.uint8).reshape(16, 16, 1)
    off, sh, o16 = (Formatter("bw8", n) for n in ("offset_int8", "shift_int8", "out_int16"))
    assert np.array_equal(off.to_codes(p)[0], p[..., 0].astype(np.int16) - 128)
    assert np.array_equal(sh.to_codes(p)[0], p[..., 0] >> 1)
    assert o16.to_codes(p).dtype == np.int16
    assert np.array_equal(o16.to_codes(p)[0], p[..., 0].astype(np.int16) << 7)
    # float path = the real value of the codes, exactly: quantizing it gives the codes back
    for f in (off, sh):
        assert np.array_equal(f.qtype().quantize(f.to_float(p)), f.to_codes(p))
    assert np.allclose(off.to_float(p)[0], p[..., 0] / 128.0 - 1.0)
    assert off.real_range() == (-1.0, 127 / 128)
    assert sh.real_range() == (0.0, 127 / 128)
    rgb = np.full((2, 2, 3), 0xFF, np.uint8)
    assert Formatter("rgb565_rgb888", "offset_int8").to_codes(rgb)[:, 0, 0].tolist() == [
        0xF8 - 128,
        0xFC - 128,
        0xF8 - 128,
    ]
    assert Formatter("rgb888", "shift_int8").to_codes(rgb).shape == (3, 2, 2)  # HWC -> CHW
    with pytest.raises(UsageError, match="unknown format"):
        Formatter("yuv", "offset_int8")


# -- the issue's NNTool script, unchanged but for the image path ----------------------------
def test_nntool_mnist_script_runs_and_gen_autotiler_shows_it(tmp_path: Path) -> None:
    model = tmp_path / "lenet_bw.onnx"
    shutil.copy(LENET_BW, model)  # save_state writes next to the model: keep the repo clean
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cli = [sys.executable, "-m", "nnshell"]
    proc = subprocess.run(
        [*cli, str(model), "-s", str(SCRIPT)]
        + ["-D", "MODEL_L3_RAM=AT_MEM_L3_OSPIRAM", "-D", "MODEL_L3_FLASH=AT_MEM_L3_OSPIFLASH"],
        cwd=ROOT,  # the script's image glob is relative to the repository root
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    state = tmp_path / "lenet_bw.json"
    assert state.is_file() and len(list(tmp_path.glob("lenet_bw.*.npz"))) == 1
    out = tmp_path / "gen"
    proc = subprocess.run(
        [*cli, str(state), "-c", f"gen --target autotiler -M {out}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    model_c = (out / "lenet_bwModel.c").read_text()
    for line in (
        "AT_SetGraphCtrl(AT_GRAPH_MONITOR_CYCLES, AT_OPT_ON);",
        "AT_SetGraphCtrl(AT_GRAPH_PRODUCE_NODE_NAMES, AT_OPT_ON);",
        "AT_SetGraphCtrl(AT_GRAPH_PRODUCE_OPERINFOS, AT_OPT_ON);",
        "AT_SetGraphCtrl(AT_GRAPH_WARM_CONSTRUCT, AT_OPT_VAL(2));",
        'AT_MEM_L3_OSPIRAM, L3Memory, "lenet_bw_L3_Memory"',
        'AT_MEM_L3_OSPIFLASH, L3Flash, "lenet_bw_L3_Flash"',
        'TCArgInfo("unsigned char * __restrict__", "Input_1", ARG_SCOPE_ARG, ARG_DIR_IN',
        'CNN_Norm("S0_Op_Input_1_Formatter", 28, 28, 1, KOP_NORM_BW);',
        'GNodeArg(GNA_IN, "S0_Output_1", 0)',
    ):
        assert line in model_c, line
    assert "REORDER_CONSTANT_IN" not in model_c  # true is the default: not emitted
    assert model_c.count("AT_SetGraphCtrl") == 4


def test_script_with_the_issue_devices(tmp_path: Path) -> None:
    from nnshell.script import script_lines

    lines = script_lines(
        str(SCRIPT), {"MODEL_L3_RAM": "AT_MEM_L3_HRAM", "MODEL_L3_FLASH": "AT_MEM_L3_HFLASH"}
    )
    assert [ln.text for ln in lines][-3:] == [
        "set l3_ram_device AT_MEM_L3_HRAM",
        "set l3_flash_device AT_MEM_L3_HFLASH",
        "save_state",
    ]


# -- acceptance: raw PNGs through the formatter give the same accuracy --------------------------
def test_cifar_rgb888_offset_int8_validate_on_raw_pngs() -> None:
    s = _quantized(CIFAR, CALIB)  # x/128-1 so offset_int8 matches (S = 2^-7, Z = 0)
    before = s.validate([str(TEST)])
    s.imageformat("input", "rgb888", "offset_int8")
    after = s.validate([str(TEST)])  # raw PNGs, no -T, no -N
    assert abs(after.float_acc - before.float_acc) <= 0.002
    assert abs(after.quant_acc - before.quant_acc) <= 0.002
    assert np.array_equal(after.quant_pred, before.quant_pred)  # in fact identical


def test_mismatch_on_the_sample_model_normalisation() -> None:
    s = _quantized(CIFAR, CALIB, "x: x/127.5-1")  # S = 1/127.5 (not 2^-7)
    with pytest.raises(FormatterError) as exc:
        s.imageformat("input", "rgb888", "offset_int8")
    assert 'set input_norm_func "x: x/128-1"' in str(exc.value)
    assert get_formatter(s.graph) is None


def test_shift_int8_on_x_over_128_minus_1_is_reported_with_the_fix(bw: Session) -> None:
    s = _copy(bw)
    with pytest.raises(FormatterError) as exc:
        s.imageformat("input_1", "bw8", "shift_int8")
    msg = str(exc.value)
    assert "calibrated on [-1" in msg
    assert "imageformat input_1 bw8 offset_int8" in msg  # the fix
    assert get_formatter(s.graph) is None and s.graph is bw.graph  # nothing changed


def test_out_int16_is_refused_on_an_sq8_graph(bw: Session) -> None:
    with pytest.raises(FormatterError, match="int16"):
        _copy(bw).imageformat("input_1", "bw16", "out_int16")


def test_wrong_channels_and_input_names(bw: Session) -> None:
    s = _copy(bw)
    with pytest.raises(FormatterError, match="1, H, W|3 channels|shape"):
        s.imageformat("input_1", "rgb888", "offset_int8")
    with pytest.raises(UsageError, match="input_1"):
        s.imageformat("input1", "bw8", "offset_int8")


def test_remove_by_running_again_and_executors_honour_raw_feeds(bw: Session) -> None:
    s = _copy(bw)
    s.imageformat("input_1", "bw8", "offset_int8")
    g, q = s.graph, s.qstate
    opts = s.input_options()
    assert opts.formatter == "bw8/offset_int8" and opts.norm_func is None
    files = sorted(BW_TEST.glob("*.png"))[:8]
    from PIL import Image

    raw = np.stack([np.asarray(Image.open(f))[..., None] for f in files])  # (N, 28, 28, 1) u8
    x = raw[..., 0].astype(np.float32)[:, None] / 128 - 1  # what the network was calibrated on
    out = g.outputs[0]
    assert np.allclose(run_float(g, {"input_1": raw})[out], run_float(g, {"input_1": x})[out])
    assert np.array_equal(run_int(g, q, {"input_1": raw})[out], run_int(g, q, {"input_1": x})[out])
    with pytest.raises(UsageError, match="drop -D/-O/-N"):
        s.input_options(norm_func="x: x/255")
    res = s.validate([str(BW_TEST)])
    assert res.quant_acc is not None and res.quant_acc > 0.9
    s.imageformat("input_1", "bw8", "offset_int8")  # again: removed
    assert get_formatter(s.graph) is None
    assert s.input_options().norm_func == "x: x/128-1"
    s.imageformat("input_1", "bw8", "offset_int8")
    s.imageformat("input_1")  # no FORMAT NORM: removed too
    assert get_formatter(s.graph) is None
    with pytest.raises(UsageError, match="no formatter"):
        s.imageformat("input_1")


def test_formatter_before_aquant_fixes_the_input_qtype() -> None:
    s = Session()
    s.open(str(LENET_BW))
    s.adjust()
    s.fusions("scale8")
    s.imageformat("input_1", "bw8", "shift_int8")  # not quantized yet: nothing to check
    s.aquant([str(BW_CALIB)])  # calibrates on raw PNGs through the formatter
    q = s.qstate.tensors["input_1"]
    assert (float(q.scale), q.zero_point, q.bits) == (2.0**-7, 0, 8)
    lo, hi = s.qstate.ranges["input_1"]
    assert lo == 0.0 and hi == 127 / 128
    s.imageformat("input_1", "bw8", "shift_int8")  # remove, insert again: the check passes
    s.imageformat("input_1", "bw8", "shift_int8")
    res = s.validate([str(BW_TEST)])  # (the net was trained on x/128-1: only consistency here)
    assert abs(res.quant_acc - res.float_acc) < 0.03


def test_state_round_trip_keeps_the_formatter(bw: Session, tmp_path: Path) -> None:
    s = _copy(bw)
    s.imageformat("input_1", "bw8", "offset_int8")
    s.set("graph_monitor_cycles", "true")
    s.set("default_input_home_location", "AT_MEM_L3_HRAM")
    json_path, _ = s.save_state(str(tmp_path / "st.json"))
    t = Session()
    t.open(str(json_path))
    assert get_formatter(t.graph) == Formatter("bw8", "offset_int8")
    assert t.settings["graph_monitor_cycles"] is True
    a, b = s.validate([str(BW_TEST)]), t.validate([str(BW_TEST)])
    assert np.array_equal(a.quant_pred, b.quant_pred)
    paths = t.gen_autotiler(str(tmp_path / "at"))
    text = Path(paths[0]).read_text()
    assert '"Input_1", ARG_SCOPE_ARG, ARG_DIR_IN, AT_MEM_L3_HRAM, AT_MEM_L2' in text


def test_save_state_without_argument_writes_next_to_the_model(tmp_path: Path) -> None:
    model = tmp_path / "lenet_bw.onnx"
    shutil.copy(LENET_BW, model)
    s = Session()
    s.open(str(model))
    json_path, npz_path = s.save_state()
    assert Path(json_path) == tmp_path / "lenet_bw.json" and Path(npz_path).is_file()


# -- settings and script syntax --------------------------------------------------------------
def test_settings_defaults_and_unknown_names() -> None:
    s = Session()
    assert s.settings["graph_reorder_constant_in"] is True
    assert s.settings["graph_warm_construct"] == 0
    assert s.settings["default_global_home_location"] == "AT_MEM_L3_HFLASH"
    assert s.set("graph_warm_construct", "2") == 2
    with pytest.raises(SettingError) as exc:
        s.set("graph_monitor_cycle", "true")
    assert "graph_monitor_cycles" in str(exc.value)


def test_shell_imageformat_quoting_and_variables(shell, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("NNSHELL_TEST_RAM", "AT_MEM_L3_QSPIRAM")
    from nnshell.script import command_lines

    lines = command_lines(
        ["set input_norm_func 'x: x/128-1'", "set l3_ram_device $(NNSHELL_TEST_RAM)"], {}
    )
    assert shell.run(f"open {LENET_BW}")[0]
    for ln in lines:
        ok, out, err = shell.run(ln.text)
        assert ok, err
    assert shell.app.session.settings["input_norm_func"] == "x: x/128-1"
    assert shell.app.session.settings["l3_ram_device"] == "AT_MEM_L3_QSPIRAM"
    ok, out, _ = shell.run("imageformat input_1 bw8 offset_int8")
    assert ok and "raw bw8 28x28x1" in out
    ok, out, _ = shell.run("imageformat input_1 bw8 offset_int8")
    assert ok and "removed" in out
    ok, _, err = shell.run("imageformat input_1 bw9 offset_int8")
    assert not ok and "bw8" in err
