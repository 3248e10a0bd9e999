"""The onnxruntime fast path equals the numpy reference executor, and falls back safely."""

from __future__ import annotations

import numpy as np
import pytest

from nnshell.exec import run_float
from nnshell.exec.ort_backend import OrtRunner, make_runner
from nnshell.importers.onnx_importer import load_onnx
from nnshell.passes import run_scheme
from nnshell.session import Session
from tests.conftest import CALIB_DIR, SAMPLE_MODEL, TEST_DIR


@pytest.mark.parametrize("fused", [False, True])
def test_every_tensor_matches_numpy_on_sample(fused: bool) -> None:
    g = load_onnx(str(SAMPLE_MODEL))
    if fused:
        run_scheme(g, "scale8")
    x = np.random.default_rng(0).normal(size=(5, 3, 32, 32)).astype(np.float32)
    keep = [n.outputs[0] for n in g.nodes]
    got = OrtRunner(g, keep).run({g.inputs[0]: x})
    ref = run_float(g, {g.inputs[0]: x}, keep=keep)
    for k in keep:
        np.testing.assert_allclose(got[k], ref[k], atol=1e-5 * max(1.0, np.abs(ref[k]).max()))


def test_fallback_to_numpy_when_export_fails(monkeypatch) -> None:  # noqa: ANN001
    import nnshell.exporters.onnx_export as ex

    def broken(*_a: object, **_k: object) -> None:
        raise ex.ExportError("synthetic")

    monkeypatch.setattr(ex, "export_onnx", broken)
    g = load_onnx(str(SAMPLE_MODEL))
    assert make_runner(g, np.zeros((1, 3, 32, 32), np.float32)) is None


def test_aquant_same_quantization_with_either_backend() -> None:
    results = {}
    for backend in ("numpy", "auto"):
        s = Session()
        s.open(str(SAMPLE_MODEL))
        s.set("float_backend", backend)
        s.set("input_norm_func", "x: (x/255 - 0.5)/0.5")
        s.fusions("scale8")
        s.aquant([str(CALIB_DIR)])
        res = s.validate([str(TEST_DIR)])
        results[backend] = (s.qstate, res.float_acc, res.quant_acc)
    (qa, fa, ia), (qb, fb, ib) = results["numpy"], results["auto"]
    assert fa == fb and ia == ib
    for name, q in qa.tensors.items():
        assert np.isclose(float(q.scale), float(qb.tensors[name].scale), rtol=1e-5)
        assert q.zero_point == qb.tensors[name].zero_point
