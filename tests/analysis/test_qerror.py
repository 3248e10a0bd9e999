"""qerror: QSNR against an independent numpy computation, isolated vs cumulative, a bad range."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from nnshell.analysis.qerror import compare_arrays, saturated_count
from nnshell.exec import run_float
from nnshell.exec.int_exec import run_int
from nnshell.input.images import InputOptions, expand_files, iter_batches
from nnshell.quant.sq8 import quantize_graph
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
def images() -> tuple[list[str], np.ndarray]:
    files = expand_files([str(TEST_DIR)])[:200]
    xs = np.concatenate(
        [b for _, b in iter_batches(files, InputOptions(norm_func=NORM), (3, 32, 32), 64)]
    )
    return files, xs


def test_qsnr_cosine_saturation_match_numpy(session: Session, images) -> None:  # noqa: ANN001
    files, xs = images
    rep = session.qerror(files)
    assert rep.mode == "cumulative" and rep.images == len(files)
    g, qs = session.graph, session.qstate
    names = [n.outputs[0] for n in g.nodes]
    fl = run_float(g, {g.inputs[0]: xs}, keep=names)
    it = run_int(g, qs, {g.inputs[0]: xs}, keep=names)
    for row in rep.layers:
        ref = fl[row.tensor].reshape(len(xs), -1).astype(np.float64)
        deq = qs.tensors[row.tensor].dequantize(it[row.tensor]).reshape(len(xs), -1)
        noise = ((ref - deq) ** 2).sum(1)
        assert (noise > 0).all()  # no exact match: the cap plays no role
        per_image = 10 * np.log10((ref**2).sum(1) / noise)
        # the command's float reference runs on onnxruntime, this one on numpy: 1e-4 dB
        assert row.qsnr == pytest.approx(per_image.mean(), abs=1e-4)
        assert row.worst_file == files[int(per_image.argmin())]
        assert row.qsnr_pooled == pytest.approx(
            10 * np.log10((ref**2).sum() / noise.sum()), abs=1e-4
        )
        cos = (ref * deq).sum(1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(deq, axis=1)
        assert row.cosine == pytest.approx(np.nan_to_num(cos, nan=1.0).mean(), abs=1e-7)
        assert row.max_abs == pytest.approx(np.abs(ref - deq).max(), rel=1e-4)
        q = qs.tensors[row.tensor]
        codes = it[row.tensor]
        top = (codes == 127).sum()
        low = (codes == -128).sum() if q.zero_point != -128 else 0
        assert row.saturated_pct == pytest.approx(100 * (top + low) / codes.size)


def test_cumulative_not_better_than_isolated(session: Session, images) -> None:  # noqa: ANN001
    files, _ = images
    cum = session.qerror(files)
    iso = session.qerror(files, isolated=True)
    assert iso.mode == "isolated"
    for c, i in zip(cum.layers, iso.layers, strict=True):
        assert c.name == i.name
        assert c.qsnr <= i.qsnr + 0.5, c.name
    # the first layer sees the same quantized input either way
    assert cum.layers[0].qsnr == pytest.approx(iso.layers[0].qsnr)
    # errors accumulate: the output is clearly worse end to end
    assert cum.layers[-1].qsnr < iso.layers[-1].qsnr - 0.5


@pytest.mark.parametrize("isolated", [False, True])
def test_bad_range_is_ranked_first(session: Session, images, isolated: bool) -> None:  # noqa: ANN001
    files, _ = images
    g = session.graph
    bad = g.nodes[1]  # conv2 + pool + relu
    stats = copy.deepcopy(session.stats)
    stats[bad.outputs[0]].max *= 0.05  # a forced tiny output scale: 20x too small
    good = session.qstate
    session.qstate = quantize_graph(g, stats, good.options)
    try:
        assert session.qstate.tensors[bad.outputs[0]].scale < good.tensors[bad.outputs[0]].scale
        rep = session.qerror(files, isolated=isolated)
    finally:
        session.qstate = good
    first = rep.ranked()[0]
    assert first.name == bad.name
    assert first.saturated_pct > 5.0
    others = [r for r in rep.layers if r.name != bad.name]
    assert all(r.saturated_pct < 1.0 for r in others)
    assert first.harm_db > 10.0


def test_metric_helpers() -> None:
    from nnshell.quant.fixed_point import QType

    a = np.array([3.0, 4.0])
    assert compare_arrays(a, a)["qsnr"] == 100.0  # exact: the cap
    r = compare_arrays(a, np.array([3.0, 3.0]))
    assert r["qsnr"] == pytest.approx(10 * np.log10(25.0))
    assert r["max_abs"] == 1.0 and 0.98 < r["cosine"] < 1.0
    assert compare_arrays(np.zeros(3), np.zeros(3))["cosine"] == 1.0
    relu = QType(0.1, -128, symmetric=False)
    sym = QType(0.1)
    codes = np.array([-128, -128, 0, 127], np.int8)
    assert saturated_count(codes, relu) == 1  # -128 is the ReLU floor: not clipping
    assert saturated_count(codes, sym) == 3


def test_qerror_command_json_and_png(shell, tmp_path: Path) -> None:  # noqa: ANN001
    for line in (
        f"open {SAMPLE_MODEL}",
        f'set input_norm_func "{NORM}"',
        "fusions --scale8",
        f"aquant {CALIB_DIR}",
    ):
        ok, _, err = shell.run(line)
        assert ok, err
    png = tmp_path / "q.png"
    ok, out, err = shell.run(f"qerror {TEST_DIR} -s --json --png {png}")
    assert ok, err
    doc = json.loads(out)
    assert doc["mode"] == "isolated" and doc["images"] == 540
    assert len(doc["layers"]) == 5 and set(doc["ranking"]) == {r["name"] for r in doc["layers"]}
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ok, out, err = shell.run(f"qerror {TEST_DIR}")
    assert ok, err
    assert "most harmful first" in out and "QSNR per layer" in out and "█" in out
    ok, _, err = shell.run("open " + str(SAMPLE_MODEL))
    ok, _, err = shell.run(f"qerror {TEST_DIR}")
    assert not ok and "not quantized" in err
