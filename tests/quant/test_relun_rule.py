"""NNTool's ReLU-N range rule in SQ8 (SQ8.md §2): an asymmetric ReLU6 output is [0, 6]."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from nnshell.session import Session
from tests.conftest import ROOT

CALIB = str(ROOT / "sample_images" / "calib")


def _session(model: str, rule: str | None = None) -> Any:
    s = Session()
    s.open(str(ROOT / "sample_models" / model))
    s.set("input_norm_func", "x: x/127.5-1")
    s.set("float_backend", "numpy")
    if rule is not None:
        s.set("relun_range", rule)
    s.adjust()
    s.fusions("scale8")
    s.aquant([CALIB])
    return s


@pytest.fixture(scope="module")
def bound() -> Any:
    return _session("mobile_block.onnx")


def _out_q(s: Any, node: str) -> Any:
    return s.qstate.tensors[next(n for n in s.graph.nodes if n.name == node).outputs[0]]


def test_asymmetric_relu6_output_is_zero_to_six(bound: Any) -> None:
    for node in ("_block1_dw_dw_0_Conv_fusion", "_block2_dw_dw_0_Conv_fusion"):
        q = _out_q(bound, node)
        assert (float(q.scale), q.zero_point) == (pytest.approx(6 / 255, rel=1e-12), -128)


def test_calibrated_setting_keeps_the_seen_range(bound: Any) -> None:
    s = _session("mobile_block.onnx", "calibrated")
    q = _out_q(s, "_block2_dw_dw_0_Conv_fusion")
    assert q.zero_point == -128 and float(q.scale) < 6 / 255  # calibration saw less than 6
    assert "calibrated ReLU-N ranges" in s.qstate.options.describe()
    assert _out_q(bound, "_block2_dw_dw_0_Conv_fusion") != q


def test_forced_symmetric_relu6_keeps_its_calibrated_range() -> None:
    s = _session("mobile_net_tiny.onnx")  # the stem's ReLU6 feeds a padded depthwise conv
    q = _out_q(s, "_stem_stem_0_Conv_fusion")
    assert q.zero_point == 0 and float(q.scale) < 3 / 127


def test_state_keeps_the_rule(bound: Any, tmp_path: Any) -> None:
    import json

    path, _ = bound.save_state(str(tmp_path / "s.json"))
    doc = json.loads(path.read_text())
    assert doc["quantization"]["options"]["relun_range"] == "bound"
    del doc["quantization"]["options"]["relun_range"]  # a state saved before the rule
    old = tmp_path / "old.json"
    old.write_text(json.dumps(doc))
    s = Session()
    s.open(str(old))
    assert s.qstate.options.relun_range == "calibrated"


def test_parity_script_skips_without_sdk(tmp_path: Any) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "nntool_parity.py"), "m.onnx", "x", "x: x"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0
    assert proc.stdout.count("\n") == 1 and "SDK_REPO is not set" in proc.stdout
