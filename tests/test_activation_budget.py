"""The activation budget caps the batch of all-tensor passes; the statistics do not change."""

from __future__ import annotations

import numpy as np
import pytest

from nnshell.exec.budget import activation_bytes_per_image, images_per_batch
from nnshell.session import Session
from tests.fuzz.generators import SAMPLE_MODEL

CALIB = SAMPLE_MODEL.parent.parent / "sample_images" / "calib"


def _session() -> Session:
    s = Session()
    s.open(str(SAMPLE_MODEL))
    s.set("input_norm_func", "x: (x/255 - 0.5)/0.5")
    s.adjust()
    s.fusions("scale8")
    return s


def test_batch_is_capped_by_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    g = _session().graph
    per_image = activation_bytes_per_image(g)
    # hand count: every non-constant tensor's elements without the batch axis, float32
    want = sum(int(np.prod(t.shape[1:])) * 4 for t in g.tensors.values() if not t.is_const)
    assert per_image == want > 0
    monkeypatch.setenv("NNSHELL_ACTIVATION_BUDGET", str(3 * per_image + 1))
    assert images_per_batch(g, 64) == 3
    assert images_per_batch(g, 2) == 2
    monkeypatch.setenv("NNSHELL_ACTIVATION_BUDGET", "1")
    assert images_per_batch(g, 64) == 1


def test_statistics_do_not_depend_on_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    files = sorted(str(p) for p in CALIB.glob("*.png"))[:20]
    a = _session()
    a.aquant(files)
    per_image = activation_bytes_per_image(a.graph, 8)
    monkeypatch.setenv("NNSHELL_ACTIVATION_BUDGET", str(3 * per_image))  # batches of 3
    b = _session()
    b.aquant(files)
    assert a.stats is not None and b.stats is not None
    assert a.stats.keys() == b.stats.keys() and any(k.startswith("acc::") for k in a.stats)
    for k, sa in a.stats.items():
        sb = b.stats[k]
        assert sa.count == sb.count, k
        np.testing.assert_allclose([sa.min, sa.max], [sb.min, sb.max], rtol=1e-5, err_msg=k)
        assert sa.argmin == sb.argmin and sa.argmax == sb.argmax, k


def test_accumulators_from_onnxruntime_match_numpy() -> None:
    """Calibration takes fused layers' accumulators from onnxruntime's extra outputs; the numpy
    executor recomputes them: the same ranges."""
    files = sorted(str(p) for p in CALIB.glob("*.png"))[:16]
    fast, ref = _session(), _session()
    ref.set("float_backend", "numpy")
    fast.aquant(files)
    ref.aquant(files)
    assert any(r is not None for _, r in fast._runners.values())  # onnxruntime did run
    assert fast.stats is not None and ref.stats is not None
    accs = [k for k in ref.stats if k.startswith("acc::")]
    assert len(accs) >= 2
    for k in accs:
        got, want = fast.stats[k], ref.stats[k]
        scale = max(abs(want.min), abs(want.max))
        assert abs(got.min - want.min) <= 1e-4 * scale and abs(got.max - want.max) <= 1e-4 * scale
        assert got.count == want.count
