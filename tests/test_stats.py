"""Streaming statistics: exact min/max/mean/std, histogram merging, memory independent of N."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from nnshell.images import InputOptions, expand_files, iter_batches
from nnshell.importers.onnx_importer import load_onnx
from nnshell.passes import run_scheme
from nnshell.quant.stats import HIST_BINS, TensorStats, collect_stats
from tests.conftest import CALIB_DIR, SAMPLE_MODEL


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=2, max_size=200), st.integers(1, 5))
def test_streaming_equals_batch_statistics(values: list[float], chunks: int) -> None:
    data = np.array(values, np.float64).reshape(-1, 1)
    s = TensorStats()
    for part in np.array_split(data, chunks):
        if part.size:
            s.update(part)
    assert s.min == data.min() and s.max == data.max()
    assert np.isclose(s.mean, data.mean(), rtol=1e-9, atol=1e-9)
    assert np.isclose(s.std, data.std(), rtol=1e-6, atol=1e-6)
    assert int(s.hist.sum()) == data.size
    assert s.hist_range >= np.abs(data).max()


def test_histogram_grows_by_merging() -> None:
    s = TensorStats()
    s.update(np.full((1, 10), 0.5))
    s.update(np.full((1, 5), 3.0))
    assert s.hist_range == 4.0 and s.hist.sum() == 15
    assert s.hist.shape == (HIST_BINS,)


def test_collect_stats_on_sample_model() -> None:
    graph = load_onnx(str(SAMPLE_MODEL))
    run_scheme(graph, "scale8")
    files = expand_files([str(CALIB_DIR)])[:64]
    opts = InputOptions(norm_func="x: (x/255 - 0.5)/0.5")
    seen: list[int] = []
    stats, order = collect_stats(
        graph,
        iter_batches(files, opts, (3, 32, 32), batch_size=16),
        len(files),
        progress=lambda done, total: seen.append(done),
    )
    assert seen == [16, 32, 48, 64] and order == files
    assert set(stats) == {graph.inputs[0], *(n.outputs[0] for n in graph.nodes)}
    inp = stats[graph.inputs[0]]
    assert -1.0 <= inp.min < 0 < inp.max <= 1.0
    relu_out = stats[graph.nodes[0].outputs[0]]
    assert relu_out.min >= 0.0  # conv+pool+relu output
    assert order[relu_out.argmax] in files


def test_range_modes_clip_outliers() -> None:
    from nnshell.quant.ranges import choose_range, parse_mode

    rng = np.random.default_rng(0)
    data = rng.normal(size=(64, 1000))
    data[0, 0] = 40.0  # one outlier
    s = TensorStats()
    s.update(data)
    assert choose_range(s, parse_mode("minmax")) == (s.min, 40.0)
    for mode in ("percentile:99.9", "mse", "kl"):
        lo, hi = choose_range(s, parse_mode(mode))
        assert s.min <= lo < 0 < hi < 40.0, mode
    lo, hi = choose_range(s, parse_mode("percentile:99.9"))
    assert 2.5 < hi < 4.5  # 99.9th percentile of |N(0,1)| is about 3.3


def test_parse_mode_errors() -> None:
    import pytest

    from nnshell.errors import UsageError
    from nnshell.quant.ranges import parse_mode

    for bad in ("max", "percentile:abc", "percentile:20", "mse:3"):
        with pytest.raises(UsageError):
            parse_mode(bad)
