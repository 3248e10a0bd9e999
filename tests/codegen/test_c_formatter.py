"""gen --target c with an input formatter (imageformat): the generated model reads the raw HWC
pixels, applies the formatter's integer transform and the HWC->CHW transpose in C, and every
layer (the formatted input included) matches the Python integer executor bit for bit."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from nnshell.codegen.c_emitter import render_c
from nnshell.codegen.verify import compare_steps, verify_arrays
from nnshell.errors import CodegenError, NnshellError
from nnshell.exec.int_exec import run_int
from nnshell.input.formatter import get_formatter
from nnshell.session import Session
from tests.conftest import CALIB_DIR, ROOT, SAMPLE_MODEL, TEST_DIR

pytestmark = pytest.mark.skipif(
    shutil.which("gcc") is None, reason="gen --target c tests need gcc on PATH (CI has it)"
)

LENET_BW = ROOT / "sample_models" / "lenet_bw.onnx"
BW_CALIB = ROOT / "sample_images" / "bw_calib"
BW_TEST = ROOT / "sample_images" / "bw_test"


def _session(model: Path, inp: str | None, fmt: str, norm: str, calib: Path) -> Session:
    s = Session()
    s.open(str(model))
    s.set("input_norm_func", "x: x/128-1")
    s.adjust()
    s.fusions("scale8")
    s.imageformat(inp or s.graph.inputs[0], fmt, norm)
    s.aquant([str(calib)])
    return s


def _images(folder: Path, n: int = 100) -> list[str]:
    return [str(p) for p in sorted(folder.iterdir()) if p.is_file()][:n]


@pytest.fixture(scope="module")
def cifar() -> Session:
    return _session(SAMPLE_MODEL, None, "rgb888", "offset_int8", CALIB_DIR)


def test_cifar_rgb888_offset_bit_exact(cifar: Session, tmp_path: Path) -> None:
    res = cifar.gen_verify(_images(TEST_DIR), out_dir=str(tmp_path))
    assert res.ok, res.summary()
    assert res.images == 100
    header = (tmp_path / "cifar_net.h").read_text()
    assert "void *cifar_net_input(int index);" in header
    assert "CIFAR_NET_INPUT_0_BYTES 3072" in header  # 32x32x3 raw bytes
    assert "nn_format(" in (tmp_path / "cifar_net.c").read_text()
    # the formatted input itself is dumped and compared
    assert (tmp_path / "steps" / "I0.bin").stat().st_size == 100 * 3072


def test_lenet_bw8_offset_bit_exact() -> None:
    if not LENET_BW.exists():
        pytest.skip(f"{LENET_BW} is missing")
    s = _session(LENET_BW, "input_1", "bw8", "offset_int8", BW_CALIB)
    res = s.gen_verify(_images(BW_TEST))
    assert res.ok, res.summary()


@pytest.mark.parametrize(
    ("fmt", "norm"),
    [("rgb565_rgb888", "offset_int8"), ("rgb16", "shift_int8"), ("rgb888", "shift_int8")],
)
def test_cifar_other_formats_bit_exact(fmt: str, norm: str, tmp_path: Path) -> None:
    s = _session(SAMPLE_MODEL, None, fmt, norm, CALIB_DIR)
    res = s.gen_verify(_images(TEST_DIR, 20))
    assert res.ok, res.summary()
    # random raw pixels too (every value 0..255 reaches the C transform)
    rng = np.random.default_rng(0)
    xs = rng.integers(0, 256, size=(8, 32, 32, 3)).astype(np.uint8)
    res = verify_arrays(s.graph, s.qstate, xs, tmp_path, "rnd")
    assert res.ok, res.summary()


def test_bw16_shift_bit_exact(tmp_path: Path) -> None:
    if not LENET_BW.exists():
        pytest.skip(f"{LENET_BW} is missing")
    s = _session(LENET_BW, "input_1", "bw16", "shift_int8", BW_CALIB)
    res = s.gen_verify(_images(BW_TEST, 20), out_dir=str(tmp_path))
    assert res.ok, res.summary()


def test_formatted_input_mismatch_is_reported(cifar: Session, tmp_path: Path) -> None:
    xs = np.random.default_rng(1).integers(0, 256, size=(2, 32, 32, 3)).astype(np.uint8)
    res = verify_arrays(cifar.graph, cifar.qstate, xs, tmp_path, "m")
    assert res.ok
    model = render_c(cifar.graph, cifar.qstate, "m")
    inp = cifar.graph.inputs[0]
    values = run_int(cifar.graph, cifar.qstate, {inp: xs}, keep=[s.output for s in model.steps])
    values[inp] = get_formatter(cifar.graph).to_codes(xs)
    assert compare_steps(model, values, tmp_path / "steps", 2) is None
    values[inp] = values[inp].copy()
    values[inp][1, 2, 3, 4] ^= 1
    bad = compare_steps(model, values, tmp_path / "steps", 2)
    assert bad is not None
    assert (bad.step, bad.image, bad.channel, bad.position) == (-1, 1, 2, (3, 4))
    assert "input formatter" in bad.describe()


def test_gen_into_a_file_is_a_clear_error(cifar: Session, tmp_path: Path) -> None:
    f = tmp_path / "x"
    f.write_text("not a folder")
    with pytest.raises(CodegenError, match="cannot write to '.*x': it is a file"):
        cifar.gen_c(str(f))
    with pytest.raises(NnshellError, match="cannot write to '.*x': it is a file"):
        cifar.gen_autotiler(str(f))
    assert f.read_text() == "not a folder"


def test_onnxruntime_times_read_the_formatted_images(cifar: Session) -> None:
    """gen --verify's onnxruntime line (issue 21) on a formatted input: the raw pixels go
    through the formatter to the float network input, and both timings are numbers."""
    from nnshell.exec.ort_timing import ort_times_on_images

    t = ort_times_on_images(cifar.graph, _images(TEST_DIR, 4), cifar.input_options())
    assert t.float_us is not None and t.float_us > 0, t.describe()
    assert t.qdq_us is not None and t.qdq_us > 0, t.describe()
    assert "onnxruntime float" in t.describe() and "n/a" not in t.describe()
