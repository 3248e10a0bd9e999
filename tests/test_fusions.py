"""Issue 4: adjust + fusions on the sample model and the onnx-wheel light models.

- The sample LeNet fuses into exactly four layers plus the plain fc3, through the shell and the
  Session API.
- The fused float graph equals the ORIGINAL model run by onnxruntime (1e-5 of the output range)
  on every sample test image and on the nine light models with seeded random weights, under both
  schemes (one onnxruntime run per model serves both).
- Commands in a bad order fail with one error line, or are harmless, never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from nnshell.exec import run_float
from nnshell.importers.onnx_importer import load_onnx
from nnshell.input.images import InputOptions, expand_files, iter_batches
from nnshell.passes import PASSES, run_scheme
from nnshell.passes.adjust import adjust_layout
from nnshell.session import Session
from tests.conftest import SAMPLE_MODEL, TEST_DIR
from tests.helpers import ort_run
from tests.test_onnx_zoo import LIGHT, randomize_weights

#: Error bound of the fused float graph against onnxruntime, relative to the output range.
RTOL = 1e-5
SCHEMES = ("scale8", "pow2")

SAMPLE_FUSIONS = [
    {
        "old": ["_conv1_Conv", "_pool_MaxPool", "_Relu"],
        "new": "_conv1_Conv_fusion",
        "kind": "conv_pool_active",
    },
    {
        "old": ["_conv2_Conv", "_pool_1_MaxPool", "_Relu_1"],
        "new": "_conv2_Conv_fusion",
        "kind": "conv_pool_active",
    },
    {"old": ["_fc1_Gemm", "_Relu_2"], "new": "_fc1_Gemm_fusion", "kind": "linear_active"},
    {"old": ["_fc2_Gemm", "_Relu_3"], "new": "_fc2_Gemm_fusion", "kind": "linear_active"},
]
SAMPLE_LAYERS = [
    ("_conv1_Conv_fusion", "Conv+MaxPool+Relu"),
    ("_conv2_Conv_fusion", "Conv+MaxPool+Relu"),
    ("_fc1_Gemm_fusion", "Linear+Relu"),
    ("_fc2_Gemm_fusion", "Linear+Relu"),
    ("_fc3_Gemm", "Linear"),
]


def _range(a: np.ndarray) -> float:
    return max(float(a.max() - a.min()), float(np.abs(a).max()), 1e-12)


def assert_close_to_range(name: str, got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
    err = float(np.abs(got.astype(np.float64) - want).max())
    assert err <= RTOL * _range(want), f"{name}: error {err:.3g} vs range {_range(want):.3g}"


# --------------------------------------------------------------------------- sample model


@pytest.mark.parametrize("scheme", SCHEMES)
def test_sample_fusions_through_the_shell(shell, scheme: str) -> None:  # noqa: ANN001
    assert shell.run(f"open {SAMPLE_MODEL}")[0]
    ok, out, err = shell.run("adjust --json")
    assert ok, err
    assert json.loads(out)["changed"] == 0
    ok, out, err = shell.run(f"fusions --{scheme} --json")
    assert ok, err
    doc = json.loads(out)
    assert doc["fusions"] == SAMPLE_FUSIONS
    assert doc["removed"] == ["_Flatten"]
    ok, out, err = shell.run("show --json")
    assert ok, err
    layers = json.loads(out)["layers"]
    assert [(r["name"], r["op"]) for r in layers] == SAMPLE_LAYERS
    assert layers[0]["out_dims"][0] == [6, 14, 14]
    ok, out, _ = shell.run("show")
    assert ok and "Conv+MaxPool+Relu" in out and "Linear+Relu" in out


def test_sample_fusions_through_the_session() -> None:
    s = Session()
    s.open(str(SAMPLE_MODEL))
    assert s.adjust().changed == 0
    out = s.fusions("scale8")
    recs = [{"old": list(f.old), "new": f.new, "kind": f.kind} for f in out.result.fusions]
    assert recs == SAMPLE_FUSIONS
    assert out.result.removed == ["_Flatten"]
    g = s.graph
    assert [(n.name, n.op) for n in g.nodes] == [
        ("_conv1_Conv_fusion", "Fused"),
        ("_conv2_Conv_fusion", "Fused"),
        ("_fc1_Gemm_fusion", "Fused"),
        ("_fc2_Gemm_fusion", "Fused"),
        ("_fc3_Gemm", "Linear"),
    ]
    assert g.outputs == s.imported.outputs
    assert g.nodes[2].inputs[0] == g.nodes[1].outputs[0]  # the Flatten is gone


def test_sample_fused_float_matches_onnxruntime_on_every_test_image() -> None:
    files = expand_files([str(TEST_DIR)])
    opts = InputOptions(norm_func="x: (x/255 - 0.5)/0.5")
    xs = np.concatenate([b for _, b in iter_batches(files, opts, (3, 32, 32), batch_size=256)])
    assert len(xs) == len(files) >= 500
    model = onnx.load(str(SAMPLE_MODEL))
    want = ort_run(model, {model.graph.input[0].name: xs})[model.graph.output[0].name]
    for scheme in SCHEMES:
        s = Session()
        s.open(str(SAMPLE_MODEL))
        s.adjust()
        s.fusions(scheme)
        g = s.graph
        got = run_float(g, {g.inputs[0]: xs})[g.outputs[0]]
        assert_close_to_range(f"{scheme} output", got, want)
        # one range for the whole set hides per-image errors on small outputs: check each image
        for i in range(len(xs)):
            assert_close_to_range(f"{scheme} {files[i]}", got[i], want[i])


# --------------------------------------------------------------------------- light models


def _checked_tensors(model: onnx.ModelProto) -> list[str]:
    """The graph outputs, plus the input of a final Softmax (random weights saturate softmax
    to exact 0/1, which would hide errors in the logits)."""
    names = [o.name for o in model.graph.output]
    for n in model.graph.node:
        if n.op_type == "Softmax" and n.output[0] in names:
            names.append(n.input[0])
    return names


@pytest.mark.parametrize("path", LIGHT, ids=[p.stem for p in LIGHT])
def test_light_model_fused_matches_onnxruntime(path: Path, tmp_path: Path) -> None:
    model = randomize_weights(onnx.load(str(path)), seed=0)
    src = tmp_path / path.name
    onnx.save(model, str(src))
    names = _checked_tensors(model)
    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    have = {o.name for o in exposed.graph.output}
    exposed.graph.output.extend(
        onnx.helper.make_empty_tensor_value_info(n) for n in names if n not in have
    )
    graph = load_onnx(str(src))
    (inp,) = graph.inputs
    x = np.random.default_rng(0).standard_normal(graph.tensors[inp].shape).astype(np.float32)
    want = ort_run(exposed, {inp: x})  # one reference run serves both schemes
    for scheme in SCHEMES:
        # What Session.adjust + Session.fusions do, on a copy of one import (the 224x224
        # models are large; importing once keeps the test fast).
        g = graph.copy()
        adjust_layout(g)
        res = run_scheme(g, scheme)
        assert res.fusions, f"{scheme}: nothing fused"
        bns = [n.name for n in g.nodes if n.op == "BatchNormalization"]
        if "densenet" not in path.stem:  # densenet's BNs after a Concat/MaxPool stay
            assert not bns, f"{scheme}: BatchNormalization not folded: {bns[:3]}"
        keep = [n for n in names if n in g.tensors]
        assert set(graph.outputs) <= set(keep)
        got = run_float(g, {inp: x}, keep=keep)
        for n in keep:
            assert_close_to_range(f"{path.stem} {scheme} {n}", got[n], want[n])


# --------------------------------------------------------------------------- command order


def one_error(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert "Traceback" not in err
    return lines[0]


def test_fusions_without_a_model(shell) -> None:  # noqa: ANN001
    ok, _, err = shell.run("fusions --scale8")
    assert not ok
    assert "no graph open" in one_error(err)
    ok, _, err = shell.run("adjust")
    assert not ok and "no graph open" in one_error(err)


def test_adjust_twice_is_not_an_error(shell) -> None:  # noqa: ANN001
    shell.run(f"open {SAMPLE_MODEL}")
    assert shell.run("adjust")[0]
    ok, out, err = shell.run("adjust")
    assert ok, err
    assert "nothing to change" in out and "already adjusted" in out
    assert "error" not in err


def test_unknown_pass_name_suggests(shell) -> None:  # noqa: ANN001
    shell.run(f"open {SAMPLE_MODEL}")
    before = shell.app.session.graph
    ok, _, err = shell.run("fusions -a fuse_cnv")
    assert not ok
    assert "did you mean fuse_conv" in one_error(err)
    ok, _, err = shell.run("fusions -a nope")
    assert not ok
    line = one_error(err)
    assert "nope" in line and ("did you mean" in line or "fusions -l" in line)
    assert shell.app.session.graph is before


def test_adjust_after_fusions_is_one_error(shell) -> None:  # noqa: ANN001
    shell.run(f"open {SAMPLE_MODEL}")
    assert shell.run("fusions --scale8")[0]
    before = shell.app.session.graph
    ok, _, err = shell.run("adjust")
    assert not ok and "before fusions" in one_error(err)
    assert shell.app.session.graph is before


def _signature(graph) -> list[tuple[str, str, tuple[str, ...]]]:  # noqa: ANN001
    return [(n.name, n.op, tuple(n.inputs)) for n in graph.nodes]


def test_scale8_twice_is_harmless(shell) -> None:  # noqa: ANN001
    shell.run(f"open {SAMPLE_MODEL}")
    assert shell.run("fusions --scale8")[0]
    first = _signature(shell.app.session.graph)
    ok, out, err = shell.run("fusions --scale8")
    assert ok, err
    assert "nothing to change" in out
    assert _signature(shell.app.session.graph) == first
    ok, out, _ = shell.run("fusions --scale8 --json")
    assert ok and json.loads(out)["changed"] == 0


def test_pow2_after_scale8_is_rederived(shell) -> None:  # noqa: ANN001
    shell.run(f"open {SAMPLE_MODEL}")
    assert shell.run("fusions --scale8")[0]
    ok, out, err = shell.run("fusions --pow2")
    assert ok, err
    assert "derived again" in out and "4 fusion(s)" in out
    assert shell.app.session.scheme == "pow2"
    ok, out, _ = shell.run("fusions --scale8 --json")
    doc = json.loads(out)
    assert doc["rederived_from"] == "pow2" and doc["fusions"] == SAMPLE_FUSIONS


def test_dry_run_leaves_the_graph(shell) -> None:  # noqa: ANN001
    shell.run(f"open {SAMPLE_MODEL}")
    before = shell.app.session.graph
    sig = _signature(before)
    ok, out, err = shell.run("fusions --scale8 --dry-run")
    assert ok, err
    assert "dry run" in out and "_conv1_Conv_fusion" in out
    assert shell.app.session.graph is before and _signature(before) == sig
    assert shell.app.session.scheme is None
    ok, out, _ = shell.run("adjust --dry-run")
    assert ok and shell.app.session.graph is before


def test_list_shows_every_pass(shell) -> None:  # noqa: ANN001
    ok, out, err = shell.run("fusions -l")
    assert ok, err
    for name in PASSES:
        assert name in out, name
