"""TFLite MAXIMUM / MINIMUM (issue 20: the GAP SDK's expressions example uses them) against the
TFLite interpreter, on the SDK's own model (read from the GAP SDK mirror, Apache-2.0, not copied
here; skipped without it or without ai-edge-litert)."""

from __future__ import annotations

import os
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest

from nnshell.exec import run_float
from nnshell.session import Session

SDK = Path(os.environ.get("GAP_SDK_REPO", "/work/.mirror/GreenWaves-Technologies+gap_sdk/repo"))
MODEL = "examples/gap8/nn/nntool/expressions/model/expressions.tflite"


def test_expressions_model_with_max_and_min_matches_the_interpreter(tmp_path: Path) -> None:
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    proc = subprocess.run(["git", "-C", str(SDK), "show", f"HEAD:{MODEL}"], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"GAP SDK mirror not available ({SDK})")
    path = tmp_path / "expressions.tflite"
    path.write_bytes(proc.stdout)
    s = Session()
    s.open(str(path))
    g = s.graph
    assert {"Max", "Min"} <= {n.op for n in g.nodes}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        it = litert.Interpreter(model_path=str(path))
    it.allocate_tensors()
    rng = np.random.default_rng(0)
    # inputs wide enough that min(., 6) and max(., 0) both clip somewhere
    xs = [rng.uniform(-2, 2, (1, 12, 1, 80)).astype(np.float32) for _ in range(4)]
    for d, x in zip(it.get_input_details(), xs, strict=True):
        it.set_tensor(d["index"], x)
    it.invoke()
    want = [it.get_tensor(d["index"]) for d in it.get_output_details()]
    got = run_float(g, {name: x for name, x in zip(g.inputs, xs, strict=True)})
    for name, w in zip(g.outputs, want, strict=True):
        np.testing.assert_allclose(np.asarray(got[name]).reshape(w.shape), w, atol=1e-5)
    clipped = [n for n in g.nodes if n.op == "Min"][0]
    inner = run_float(g, dict(zip(g.inputs, xs, strict=True)), keep=[clipped.inputs[0]])
    pre = np.asarray(inner[clipped.inputs[0]])
    assert (pre > 6).any() and (pre < 0).any()  # both bounds were exercised
