"""Streaming statistics: exact min/max/mean/std, histogram merging, memory independent of N."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nnshell.importers.onnx_importer import load_onnx
from nnshell.input.images import InputOptions, expand_files, iter_batches
from nnshell.passes import run_scheme
from nnshell.quant.stats import ACC_PREFIX, HIST_BINS, TensorStats, acc_key, collect_stats
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
    tensors = {k for k in stats if not k.startswith(ACC_PREFIX)}
    assert tensors == {graph.inputs[0], *(n.outputs[0] for n in graph.nodes)}
    # the accumulator ranges of the layers (POW2 budget) are kept next to them
    assert set(stats) - tensors <= {acc_key(n.name) for n in graph.nodes}
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


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(-30, 30), st.integers(1, 4))
def test_float32_batches_give_the_float64_statistics_exactly(
    seed: int, exponent: int, batches: int
) -> None:
    """float32 activations take a float32 path for min/max and the histogram: same numbers."""
    rng = np.random.default_rng(seed)
    s32, s64 = TensorStats(), TensorStats()
    for k in range(batches):
        x = (rng.standard_normal((3, 50)) * 2.0**exponent).astype(np.float32)
        x[0, :5] = 0.0
        x[1, 0] = rng.choice([2.0 ** (exponent + 2), -(2.0 ** (exponent + 3))])  # |x| == R
        s32.update(x, 3 * k)
        s64.update(x.astype(np.float64), 3 * k)
    assert s32.to_dict() == s64.to_dict()
    assert np.array_equal(s32.hist, s64.hist)


def _fused_sample_and_batches(n: int = 40, batch: int = 16):  # noqa: ANN202
    graph = load_onnx(str(SAMPLE_MODEL))
    run_scheme(graph, "scale8")
    files = expand_files([str(CALIB_DIR)])[:n]
    opts = InputOptions(norm_func="x: (x/255 - 0.5)/0.5")
    return graph, files, list(iter_batches(files, opts, (3, 32, 32), batch_size=batch))


def test_fast_runner_pass_equals_a_serial_loop() -> None:
    """The onnxruntime pass overlaps reading with the runner: the numbers of a plain loop."""
    from nnshell.exec.ort_backend import make_runner

    graph, files, batches = _fused_sample_and_batches()
    keep = [o for n in graph.nodes for o in n.outputs]
    fast = make_runner(graph, batches[0][1][:2], keep)
    assert fast is not None
    want: dict[str, TensorStats] = {}
    first = 0
    for names, batch in batches:
        values = {graph.inputs[0]: batch, **fast.run({graph.inputs[0]: batch})}
        for name in [graph.inputs[0], *keep]:
            want.setdefault(name, TensorStats()).update(values[name], first)
        first += len(names)
    seen: list[int] = []
    got, order = collect_stats(graph, iter(batches), len(files), lambda d, t: seen.append(d), fast)
    tensors = [k for k in got if not k.startswith(ACC_PREFIX)]
    assert order == files and seen == [16, 32, 40] and tensors == list(want)
    for name, s in want.items():
        assert got[name].to_dict() == s.to_dict() and np.array_equal(got[name].hist, s.hist)


def test_fast_runner_pass_stops_at_a_bad_batch() -> None:
    from nnshell.errors import ImageError
    from nnshell.exec.ort_backend import make_runner

    graph, _, batches = _fused_sample_and_batches()
    fast = make_runner(graph, batches[0][1][:2], [o for n in graph.nodes for o in n.outputs])
    runs: list[int] = []

    class Counting:
        def run(self, feeds):  # noqa: ANN001, ANN202
            out = fast.run(feeds)
            runs.append(1)
            return out

    def failing():  # noqa: ANN202
        yield batches[0]
        raise ImageError("'bad.png' is not a readable image")

    with pytest.raises(ImageError, match="bad.png"):
        collect_stats(graph, failing(), 40, None, Counting())
    assert runs == [1]  # the first batch's run had finished when the error came out
