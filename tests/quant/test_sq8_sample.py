"""SQ8 on the sample LeNet: per-layer QSNR, accuracy, footprint, re-quantization, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nnshell.errors import GraphStateError, ImageError, NnshellError
from nnshell.exec import run_float
from nnshell.exec.int_exec import run_int
from nnshell.input.images import InputOptions, expand_files, iter_batches, label_from_name
from nnshell.session import Session
from tests.conftest import CALIB_DIR, SAMPLE_MODEL, TEST_DIR

NORM = "x: (x/255 - 0.5)/0.5"


@pytest.fixture(scope="module")
def session() -> Session:
    s = Session()
    s.open(str(SAMPLE_MODEL))
    s.set("input_norm_func", NORM)
    s.adjust()
    s.fusions("scale8")
    s.aquant([str(CALIB_DIR)])
    return s


@pytest.fixture(scope="module")
def test_set() -> tuple[np.ndarray, np.ndarray]:
    files = expand_files([str(TEST_DIR)])
    opts = InputOptions(norm_func=NORM)
    xs = np.concatenate([b for _, b in iter_batches(files, opts, (3, 32, 32), 256)])
    return xs, np.array([label_from_name(f) for f in files])


def test_every_layer_qsnr_above_30db(session: Session, test_set) -> None:  # noqa: ANN001
    xs, _ = test_set
    g, qs = session.graph, session.qstate
    names = [n.outputs[0] for n in g.nodes]
    fl = run_float(g, {g.inputs[0]: xs}, keep=names)
    it = run_int(g, qs, {g.inputs[0]: xs}, keep=names)
    for name in names:
        ref = fl[name].reshape(len(xs), -1).astype(np.float64)
        deq = qs.tensors[name].dequantize(it[name]).reshape(len(xs), -1)
        per_image = 10 * np.log10((ref**2).sum(1) / np.maximum(((ref - deq) ** 2).sum(1), 1e-30))
        assert per_image.mean() >= 30.0, f"{name}: {per_image.mean():.1f} dB"


def test_accuracy_within_one_point(session: Session) -> None:
    res = session.validate([str(TEST_DIR)])
    assert res.float_acc >= 0.95
    assert res.quant_acc is not None
    assert res.float_acc - res.quant_acc <= 0.01


def test_qtypes_follow_sq8_defaults(session: Session) -> None:
    g, qs = session.graph, session.qstate
    inp = qs.tensors[g.inputs[0]]
    assert inp.symmetric and np.isclose(inp.scale, 1 / 127)  # range [-1, 1]
    for node in g.nodes[:4]:  # the four ReLU-terminated fused layers
        q = qs.tensors[node.outputs[0]]
        assert q.zero_point == -128 and not q.symmetric
    out = qs.tensors[g.outputs[0]]
    assert out.symmetric and out.forced_by == "graph output"


def test_requantize_without_images_and_modes(session: Session) -> None:
    before = session.qstate
    for mode in ("percentile:99.99", "mse", "kl"):
        out = session.aquant([], mode=mode)
        assert out.reused and out.images == 256
        res = session.validate([str(TEST_DIR)])
        assert res.quant_acc is not None and res.quant_acc >= 0.93, mode
    out = session.aquant([], symmetric=True)
    assert all(q.zero_point == 0 for q in session.qstate.tensors.values())
    session.aquant([])  # back to the defaults for the other tests
    assert session.qstate is not before


def test_footprint_ratio_and_hand_computed_peak(session: Session) -> None:
    fp = session.footprint()
    assert fp.float_params == 62_006 * 4
    weights = 450 + 2400 + 48_000 + 10_080 + 840
    channels = 6 + 16 + 120 + 84 + 10
    assert fp.quant_params == weights + 4 * channels + 2 * channels
    assert 0.25 <= fp.quant_params / fp.float_params <= 0.27
    # int8: at step 0 the 3x32x32 input and the 6x14x14 output of conv1+pool+relu are alive
    assert fp.quant_act_peak == 3 * 32 * 32 + 6 * 14 * 14
    assert fp.float_act_peak == 4 * fp.quant_act_peak
    # the float model as imported holds conv1's whole 6x28x28 output before the pool: the
    # peak `show` prints, which fusion (not int8) removes
    assert fp.unfused_peak is not None and fp.unfused_peak.node == "_conv1_Conv"
    assert fp.unfused_peak.bytes == 4 * (3 * 32 * 32 + 6 * 28 * 28) == 31_104
    assert [b for _, b in fp.unfused_peak.tensors] == [12_288, 18_816]
    assert fp.quant_peak is not None and fp.quant_peak.bytes == fp.quant_act_peak
    assert fp.float_peak is not None and fp.float_peak.step == fp.quant_peak.step == 0


def test_gap8_placement_follows_the_budgets(session: Session) -> None:
    from nnshell.analysis.footprint import gap8_placement

    fp = session.footprint()
    place = gap8_placement(fp, session.settings)
    assert (place.l1_budget, place.l2_budget) == (64_000, 300_000)
    assert place.l2_needed == fp.quant_act_peak + fp.quant_params
    assert place.act_fits_l2 and place.consts_fit_l2
    tight = gap8_placement(fp, {"l2_size": fp.quant_act_peak + fp.quant_params - 1})
    assert tight.act_fits_l2 and not tight.consts_fit_l2


def test_interrupted_aquant_keeps_previous_quantization(session: Session) -> None:
    before = session.qstate

    def interrupt(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        session.aquant([str(CALIB_DIR)], progress=interrupt)
    assert session.qstate is before


def test_bad_inputs_one_clear_error(tmp_path: Path) -> None:
    from PIL import Image

    s = Session()
    with pytest.raises(GraphStateError, match="no graph open"):
        s.aquant([str(CALIB_DIR)])
    s.open(str(SAMPLE_MODEL))
    with pytest.raises(GraphStateError, match="fusions --scale8"):
        s.aquant([str(CALIB_DIR)])
    s.fusions("scale8")
    empty = tmp_path / "empty"
    empty.mkdir()
    (tmp_path / "notes.txt").write_text("x")
    Image.new("RGB", (20, 20)).save(tmp_path / "small.png")
    Image.new("L", (32, 32)).save(tmp_path / "gray.png")
    bad_png = tmp_path / "bad.png"
    bad_png.write_text("not a png")
    for spec in (
        str(empty),
        str(tmp_path / "small.png"),
        str(tmp_path / "gray.png"),
        str(bad_png),
        str(tmp_path / "missing.png"),
    ):
        with pytest.raises(ImageError):
            s.aquant([spec])
        assert s.qstate is None
    with pytest.raises(NnshellError, match="not arithmetic"):
        s.aquant([str(CALIB_DIR)], s.input_options(norm_func="__import__('os')"))
    assert s.qstate is None
