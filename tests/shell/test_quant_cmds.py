"""aquant, qshow, validate and footprint driven through the real cmd2 app (issue 5)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CALIB_DIR, ROOT, SAMPLE_MODEL, TEST_DIR

NORM = '"x: (x/255 - 0.5)/0.5"'
FUSED = [
    "_conv1_Conv_fusion",
    "_conv2_Conv_fusion",
    "_fc1_Gemm_fusion",
    "_fc2_Gemm_fusion",
    "_fc3_Gemm",
]


def _ok(shell, line: str) -> str:  # noqa: ANN001
    ok, out, err = shell.run(line)
    assert ok, f"{line}: {err}"
    return out + err


def _fused(shell) -> None:  # noqa: ANN001
    """Open the sample, set its normalisation, adjust and apply the SQ8 fusions."""
    _ok(shell, f"open {SAMPLE_MODEL}")
    _ok(shell, f"set input_norm_func {NORM}")
    _ok(shell, "adjust")
    _ok(shell, "fusions --scale8")


def _quantized(shell) -> str:  # noqa: ANN001
    _fused(shell)
    return _ok(shell, f"aquant {CALIB_DIR}")


def _state(shell) -> tuple[object, ...]:  # noqa: ANN001
    """Identity of everything a failed command must leave alone."""
    s = shell.app.session
    return (s.graph, s.scheme, s.stats, s.qstate, tuple(s.stats_files), dict(s.settings))


def _fails(shell, line: str, *needles: str) -> str:  # noqa: ANN001
    """Run a command that must fail with one ``error:`` line and leave the session as it was."""
    before = _state(shell)
    ok, out, err = shell.run(line)
    assert not ok, f"{line} succeeded: {out}"
    text = out + err
    assert text.count("error:") == 1, text
    for n in needles:
        assert n in text, text
    after = _state(shell)
    assert all(a is b or a == b for a, b in zip(before, after, strict=True)), line
    return text


# --------------------------------------------------------------------------- the main flow


def test_aquant_names_options_and_points_to_qshow(shell) -> None:  # noqa: ANN001
    text = _quantized(shell)
    assert "SQ8 minmax, asymmetric activations, per-channel weights" in text
    assert "calibrated on 256 image(s)" in text
    assert "Use qshow" in text
    assert shell.app.session.qstate is not None


def test_aquant_mode_without_files_reuses_statistics(shell) -> None:  # noqa: ANN001
    _quantized(shell)
    stats = shell.app.session.stats
    first = shell.app.session.qstate
    text = _ok(shell, "aquant --mode mse")
    assert "reused the statistics of 256 image(s)" in text
    assert "SQ8 mse" in text and "Use qshow" in text
    assert shell.app.session.stats is stats
    assert shell.app.session.qstate is not first
    text = _ok(shell, "aquant --symmetric --per_tensor")
    assert "symmetric activations, per-tensor weights" in text and "reused" in text


def test_qshow_lists_every_fused_layer(shell) -> None:  # noqa: ANN001
    _quantized(shell)
    text = _ok(shell, "qshow")
    for name in FUSED:
        assert name in text
    last = next(line for line in text.splitlines() if "_fc3_Gemm" in line)
    assert "graph output" in last
    assert "SQ8 minmax" in text


def test_qshow_json_has_stable_keys(shell) -> None:  # noqa: ANN001
    _quantized(shell)
    ok, out, err = shell.run("qshow --json")
    assert ok, err
    doc = json.loads(out)
    assert set(doc) == {"scheme", "options", "input_options", "layers"}
    assert doc["scheme"] == "SQ8"
    assert [r["name"] for r in doc["layers"]] == FUSED
    assert [r["step"] for r in doc["layers"]] == list(range(len(FUSED)))
    for row in doc["layers"]:
        assert {"step", "name", "inputs", "output", "forced_by", "weights", "multiplier"} <= set(
            row
        )
        assert {"tensor", "scale", "zero_point", "bits", "symmetric", "range"} <= set(row["output"])
        assert len(row["multiplier"]["M"]) == row["weights"]["channels"]
    assert doc["layers"][-1]["forced_by"] == "graph output"
    assert doc["layers"][-1]["output"]["zero_point"] == 0
    assert doc["layers"][0]["inputs"][0]["range"] == [-1.0, 1.0]
    ok, out, _ = shell.run("qshow _fc* --json")
    assert ok and [r["name"] for r in json.loads(out)["layers"]] == FUSED[2:]


def test_validate_prints_float_quant_and_drop(shell) -> None:  # noqa: ANN001
    _quantized(shell)
    text = _ok(shell, f"validate {TEST_DIR}")
    assert "float     top-1: 98.15% (530/540)" in text
    assert "quantized top-1:" in text
    assert "drop:" in text and "points" in text
    # the paired view of the drop: McNemar on the discordant images and its interval
    assert "exact McNemar p = " in text
    assert "drop 95% interval: [" in text and "(paired Wald)" in text and "(Newcombe)" in text


def test_validate_json(shell) -> None:  # noqa: ANN001
    _quantized(shell)
    ok, out, err = shell.run(f"validate {TEST_DIR} --json")
    assert ok, err
    doc = json.loads(out)
    assert set(doc) == {"images", "float_top1", "quant_top1", "flips", "paired"}
    assert doc["images"] == 540
    assert doc["float_top1"] == pytest.approx(530 / 540)
    paired = doc["paired"]
    assert paired["broken"] + paired["fixed"] == len(doc["flips"]) - sum(
        1 for f in doc["flips"] if f["label"] not in (f["float"], f["quant"])
    )
    assert paired["diff"] == pytest.approx(doc["float_top1"] - doc["quant_top1"])
    assert 0.0 <= paired["mcnemar_exact_p"] <= 1.0
    assert doc["float_top1"] - doc["quant_top1"] <= 0.01
    for flip in doc["flips"]:
        assert set(flip) == {"file", "label", "float", "quant"}
        assert flip["float"] != flip["quant"]


def test_footprint_prints_ratio(shell) -> None:  # noqa: ANN001
    _quantized(shell)
    text = _ok(shell, "footprint")
    assert "248,024" in text and "63,186" in text
    assert "parameters:" in text and "(25.5%)" in text
    assert "peak activation RAM:" in text
    assert "x smaller" in text
    # the float model as imported (what `show` prints), the fused float graph, int8: each
    # peak with the tensors that make it up
    assert "float, as imported:   31,104 B at step 0 _conv1_Conv: 'input' 12,288 + " in text
    assert "float, fused:         16,992 B" in text
    assert "SQ8, fused:            4,248 B" in text
    assert "4,248 B is 13.7% of the float model's 31,104 B" in text
    assert "GAP8 (gen --target autotiler): no FPU" in text
    assert "activations: 4,248 B peak, in L2 (fits)" in text
    assert "constants: 63,186 B, home in L3 flash; promotable to L2 (67,434 B" in text


def test_footprint_json(shell) -> None:  # noqa: ANN001
    _quantized(shell)
    ok, out, err = shell.run("footprint --json")
    assert ok, err
    doc = json.loads(out)
    assert {
        "float_param_bytes",
        "quant_param_bytes",
        "float_peak_act_bytes",
        "quant_peak_act_bytes",
        "unfused_float_peak_act_bytes",
        "peaks",
        "gap8",
        "layers",
    } == set(doc)
    assert doc["float_param_bytes"] == 62_006 * 4
    assert doc["quant_param_bytes"] == sum(
        r["weight_bytes"] + r["bias_bytes"] + r["mult_bytes"] for r in doc["layers"]
    )
    assert doc["quant_peak_act_bytes"] * 4 == doc["float_peak_act_bytes"]
    # the float model as imported: the 3x32x32 input and conv1's whole 6x28x28 output
    assert doc["unfused_float_peak_act_bytes"] == 4 * (3 * 32 * 32 + 6 * 28 * 28)
    for key, total in (
        ("unfused_float", doc["unfused_float_peak_act_bytes"]),
        ("float", doc["float_peak_act_bytes"]),
        ("quant", doc["quant_peak_act_bytes"]),
    ):
        assert sum(size for _, size in doc["peaks"][key]["tensors"]) == total
    assert doc["gap8"]["const_bytes"] == doc["quant_param_bytes"]
    assert doc["gap8"]["act_bytes"] == doc["quant_peak_act_bytes"]
    assert doc["gap8"]["l2_budget"] == 300_000 and doc["gap8"]["consts_fit_l2"] is True
    assert [r["name"] for r in doc["layers"]] == FUSED


# --------------------------------------------------------------------------- errors


def test_aquant_before_open(shell) -> None:  # noqa: ANN001
    _fails(shell, f"aquant {CALIB_DIR}", "no graph open")
    assert shell.app.session.graph is None


def test_aquant_before_fusions(shell) -> None:  # noqa: ANN001
    _ok(shell, f"open {SAMPLE_MODEL}")
    _fails(shell, f"aquant {CALIB_DIR}", "fusions --scale8")
    assert shell.app.session.qstate is None


def test_qshow_before_aquant(shell) -> None:  # noqa: ANN001
    _fused(shell)
    _fails(shell, "qshow", "not quantized", "aquant")
    _fails(shell, "footprint", "not quantized")


def test_aquant_without_files_and_no_statistics(shell) -> None:  # noqa: ANN001
    _fused(shell)
    _fails(shell, "aquant --mode kl", "calibration images")


@pytest.fixture
def bad_inputs(tmp_path: Path) -> dict[str, Path]:
    """An empty dir, a text file, a fake PNG, a 16x16 PNG and an unlabelled image folder."""
    from PIL import Image

    empty = tmp_path / "empty"
    empty.mkdir()
    text = tmp_path / "notes.txt"
    text.write_text("not an image\n")
    fake = tmp_path / "fake" / "fake_1.png"
    fake.parent.mkdir()
    fake.write_bytes(b"this is no PNG")
    small = tmp_path / "small" / "small_1.png"
    small.parent.mkdir()
    Image.new("RGB", (16, 16), (10, 20, 30)).save(small)
    unlabelled = tmp_path / "unlabelled"
    unlabelled.mkdir()
    for i, src in enumerate(sorted(TEST_DIR.glob("*.png"))[:3]):
        shutil.copy(src, unlabelled / f"image{i}.png")
    return {"empty": empty, "text": text, "fake": fake, "small": small, "unlabelled": unlabelled}


@pytest.mark.parametrize(
    ("key", "needles"),
    [
        ("empty", ("no image files",)),
        ("text", ("notes.txt", "not a supported input file")),
        ("fake", ("fake_1.png", "not a readable image")),
        ("small", ("small_1.png", "(3, 32, 32)")),
    ],
)
def test_aquant_bad_inputs_keep_quantization(shell, bad_inputs, key, needles) -> None:  # noqa: ANN001
    _quantized(shell)
    before = shell.app.session.qstate
    _fails(shell, f"aquant {bad_inputs[key]}", *needles)
    assert shell.app.session.qstate is before


def test_aquant_rejects_code_in_norm_expression(shell) -> None:  # noqa: ANN001
    _quantized(shell)
    _fails(shell, f"aquant {CALIB_DIR} -N \"__import__('os')\"", "__import__")


def test_validate_folder_without_labels(shell, bad_inputs) -> None:  # noqa: ANN001
    _quantized(shell)
    _fails(shell, f"validate {bad_inputs['unlabelled']}", "no label", "image0.png")


# --------------------------------------------------------------------------- quickstart script


def test_quickstart_script_runs() -> None:
    exe = shutil.which("nnshell")
    cmd = [exe] if exe else [sys.executable, "-m", "nnshell"]
    proc = subprocess.run(
        [*cmd, "-s", "scripts/quickstart.nnscript"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text
    assert "error:" not in text
    assert "Use qshow" in text
    assert "float     top-1: 98.15%" in text and "quantized top-1:" in text and "drop:" in text
    assert "parameters:" in text and "peak activation RAM:" in text and "x smaller" in text
