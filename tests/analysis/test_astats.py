"""astats: statistics, ranges per method, convergence in one pass, class coverage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from nnshell.analysis.astats import checkpoints_for
from nnshell.input.images import InputOptions, expand_files, iter_batches, label_from_name
from nnshell.quant.stats import ACC_PREFIX, collect_stats
from nnshell.session import Session
from tests.conftest import CALIB_DIR, SAMPLE_MODEL

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


def test_checkpoints() -> None:
    assert checkpoints_for(1) == [1]
    assert checkpoints_for(8) == [1, 2, 4, 8]
    assert checkpoints_for(10) == [1, 2, 4, 8, 10]


def test_stats_and_ranges_match_aquant(session: Session) -> None:
    rep = session.astats([str(CALIB_DIR)])
    assert rep.images == 256 and rep.mode == "minmax"
    by_tensor = {r.tensor: r for r in rep.layers}
    for t, st in session.stats.items():
        if t.startswith(ACC_PREFIX):  # a layer's accumulator range (POW2 budget), no tensor
            continue
        r = by_tensor[t]
        assert (r.min, r.max) == (st.min, st.max)
        assert r.ranges["minmax"] == (st.min, st.max)
        assert r.mean == pytest.approx(st.mean) and r.std == pytest.approx(st.std)
        assert r.argmax_file == session.stats_files[st.argmax]
        lo, hi = r.ranges["percentile:99.99"]
        assert hi <= st.max and r.outliers <= 0.0001 * r.count + st.hist.max()
        assert set(r.ranges) == {"minmax", "percentile:99.99", "mse", "kl"}
    # no files: the statistics of the last aquant, nothing read
    again = session.astats([])
    assert [r.ranges for r in again.layers] == [r.ranges for r in rep.layers]


def test_convergence_snapshots_equal_prefix_statistics(session: Session) -> None:
    rep = session.astats([str(CALIB_DIR)], convergence=True)
    conv = rep.convergence
    assert conv is not None and conv.checkpoints == [1, 2, 4, 8, 16, 32, 64, 128, 256]
    assert conv.stable_at in conv.checkpoints
    files = expand_files([str(CALIB_DIR)])
    g = session.graph
    for n in (1, 8, 64):  # the one-pass snapshot equals statistics of the prefix alone
        batches = iter_batches(files[:n], InputOptions(norm_func=NORM), (3, 32, 32), 64)
        stats, _ = collect_stats(g, batches, n)
        j = conv.checkpoints.index(n)
        for t, rs in conv.ranges.items():
            assert rs[j][0] == pytest.approx(stats[t].min, rel=1e-5, abs=1e-6)
            assert rs[j][1] == pytest.approx(stats[t].max, rel=1e-5)
    for t in conv.ranges:
        pct = conv.pct_of_final(t)
        assert pct[-1] == pytest.approx(100.0)
        assert all(a <= b + 1e-9 for a, b in zip(pct, pct[1:], strict=False))  # minmax grows
        assert conv.deviation(t)[-1] == 0.0
        assert conv.stable_from(t) <= conv.stable_at
    labels = {label_from_name(f) for f in files}
    assert conv.classes_seen[-1] == len(labels) == 10


def test_coverage_names_missing_classes(session: Session) -> None:
    files = [f for f in expand_files([str(CALIB_DIR)]) if label_from_name(f) not in (5, 7)][:40]
    rep = session.astats(files)
    assert rep.coverage is not None
    assert rep.coverage.missing == [5, 7] and rep.coverage.classes == 10
    assert sum(rep.coverage.counts.values()) == 40


def test_astats_command_convergence_and_plots(shell, tmp_path: Path) -> None:  # noqa: ANN001
    for line in (f"open {SAMPLE_MODEL}", f'set input_norm_func "{NORM}"', "fusions --scale8"):
        assert shell.run(line)[0]
    png = tmp_path / "h.png"
    ok, out, err = shell.run(f"astats {CALIB_DIR} --convergence --hist 0:1 --png {png}")
    assert ok, err
    assert "within 5% of its final value from" in out
    assert "range (minmax) in % of its final width" in out and "classes seen" in out
    assert "_conv1_Conv_fusion: |x| over" in out and "┃" in out
    assert "all 10 classes present" in out
    assert png.read_bytes()[:4] == b"\x89PNG"
    ok, out, err = shell.run(f"astats {CALIB_DIR} --convergence --mode mse --json")
    assert ok, err
    doc = json.loads(out)
    conv = doc["convergence"]
    assert conv["mode"] == "mse" and conv["stable_at"] in conv["checkpoints"]
    assert doc["coverage"]["missing"] == []
    for layer in doc["layers"]:
        assert layer["chosen"] == layer["ranges"]["mse"]
        assert np.isfinite(layer["std"])
    ok, _, err = shell.run("astats --convergence")
    assert not ok and "calibration images" in err
