"""SQ8 end to end on the six LRN-free light models of the onnx wheel (seeded random weights).

adjust + fusions --scale8, calibration on seeded random normal images (batch 8), quantize with
the default options, run the integer executor on 4 other images, and compare the dequantized
graph output — and the logits feeding the final Softmax, which random weights saturate — with
the float graph. Every node has an integer kernel (there is no float fallback). Run with
``pytest -s`` to see the QSNR table.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import onnx
import pytest

from nnshell.exec import run_float
from nnshell.exec.int_exec import run_int
from nnshell.exec.ort_backend import make_runner
from nnshell.importers.onnx_importer import load_onnx
from nnshell.ops.fused import op_label
from nnshell.passes import run_scheme
from nnshell.passes.adjust import adjust_layout
from nnshell.quant.sq8 import QuantOptions, describe_unquantizable, quantize_graph
from nnshell.quant.stats import collect_stats
from tests.test_onnx_zoo import LIGHT, randomize_weights

MODELS = ("resnet50", "squeezenet", "shufflenet", "inception_v2", "densenet121", "vgg19")
PATHS = [p for p in LIGHT if p.stem.removeprefix("light_") in MODELS]
#: Calibration images per model: vgg19 is by far the heaviest (20 GMAC per image, and importing,
#: randomizing and quantizing its 140M weights alone take ~25 s) → one batch of 8.
CALIB = {"vgg19": 8, "densenet121": 8}  # the two slowest: one batch keeps CI short
CALIB_DEFAULT = 32
BATCH = 8
#: Output QSNR floor. Random-weight deep nets lose much more than trained ones (no structure for
#: the ranges to follow), so this is a sanity bound, not an accuracy claim.
MIN_QSNR_DB = 10.0

RESULTS: dict[str, dict[str, float]] = {}


def _qsnr(ref: np.ndarray, got: np.ndarray) -> float:
    ref = ref.astype(np.float64)
    err = float(((ref - got) ** 2).sum())
    return 10 * math.log10(float((ref**2).sum()) / max(err, 1e-30))


@pytest.fixture(scope="module", autouse=True)
def table():  # noqa: ANN201
    yield
    if RESULTS:
        print("\n\nSQ8 light models (random weights): dequantized int vs float")
        print(
            f"{'model':<14}{'nodes':>6}{'calib':>6}{'logits dB':>11}{'output dB':>11}{'time s':>8}"
        )
        for name, r in RESULTS.items():
            print(
                f"{name:<14}{int(r['nodes']):>6}{int(r['calib']):>6}{r['logits']:>11.2f}"
                f"{r['output']:>11.2f}{r['time']:>8.1f}"
            )


@pytest.mark.parametrize("path", PATHS, ids=[p.stem.removeprefix("light_") for p in PATHS])
def test_light_model_sq8(path: Path, tmp_path: Path) -> None:
    t0 = time.perf_counter()
    name = path.stem.removeprefix("light_")
    src = tmp_path / path.name
    onnx.save(randomize_weights(onnx.load(str(path)), seed=0), str(src))
    g = load_onnx(str(src))
    adjust_layout(g)
    run_scheme(g, "scale8")
    assert not describe_unquantizable(g)
    (inp,) = g.inputs
    shape = g.tensors[inp].shape[1:]
    rng = np.random.default_rng(0)
    n_cal = CALIB.get(name, CALIB_DEFAULT)
    batches = [
        ([f"random_{k}"] * BATCH, rng.standard_normal((BATCH, *shape)).astype(np.float32))
        for k in range(n_cal // BATCH)
    ]
    # calibration runs on the validated onnxruntime fast path, as aquant does
    fast = make_runner(g, batches[0][1][:2], [n.outputs[0] for n in g.nodes])
    assert fast is not None
    stats, _ = collect_stats(g, batches, n_cal, fast=fast)
    qs = quantize_graph(g, stats, QuantOptions())
    assert set(qs.nodes) == {n.name for n in g.nodes}  # every node has integer parameters

    softmax = [n for n in g.nodes if n.op == "Softmax" and n.outputs[0] in g.outputs]
    logits = softmax[0].inputs[0] if softmax else g.outputs[0]
    x = rng.standard_normal((2, *shape)).astype(np.float32)
    seen: list[str] = []
    fl = run_float(g, {inp: x}, keep=[logits])
    it = run_int(g, qs, {inp: x}, keep=[logits], observer=lambda n, v: seen.append(n))
    for t in [*g.outputs, logits]:
        assert it[t].dtype.kind == "i", f"{t}: {it[t].dtype}"
    produced = {o for n in g.nodes for o in n.outputs}
    assert produced <= set(seen)  # every node ran in the integer executor

    q_logits = _qsnr(fl[logits], qs.tensors[logits].dequantize(it[logits]))
    out = g.outputs[0]
    q_out = _qsnr(fl[out], qs.tensors[out].dequantize(it[out]))
    RESULTS[name] = {
        "nodes": len(g.nodes),
        "calib": n_cal,
        "logits": q_logits,
        "output": q_out,
        "time": time.perf_counter() - t0,
    }
    kinds = sorted({op_label(n) for n in g.nodes})
    assert q_logits > MIN_QSNR_DB, f"{name}: logits QSNR {q_logits:.1f} dB ({kinds})"
    if softmax:
        # a saturated softmax compares one-hot vectors; it must still be close in Q15
        assert float(np.abs(qs.tensors[out].dequantize(it[out]) - fl[out]).max()) < 1.0
