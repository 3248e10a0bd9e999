"""The ONNX test zoo shipped inside the ``onnx`` wheel, run through nnshell's float executor.

a) The nine ``light_*`` ImageNet models: every intermediate tensor is compared with onnxruntime,
   both with the shipped (constant-filled) weights and with seeded random weights, because the
   shipped weights are all equal and would hide layout or indexing bugs.
b) Every ``pytorch-converted`` / ``pytorch-operator`` case is run against its stored outputs;
   cases outside nnshell's scope (an unsupported op, an op that would mix the batch axis) are
   skipped with the importer's reason, never failed. A summary line counts ran/passed/skipped.

The models are located through the installed onnx package and never copied.
"""

from __future__ import annotations

import collections
import glob
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from nnshell.errors import ShapeError, UnsupportedOpError
from nnshell.exec.float_exec import run_float
from nnshell.importers.onnx_importer import load_onnx
from tests.helpers import ort_run

DATA = Path(os.path.dirname(onnx.__file__)) / "backend" / "test" / "data"
LIGHT = sorted(DATA.glob("light/light_*.onnx"))
CASES = sorted(Path(d) for d in glob.glob(str(DATA / "pytorch-*" / "test_*")) if os.path.isdir(d))

#: Relative tolerance of the light-model comparisons (per tensor, against its range).
LIGHT_RTOL = 1e-4


# --------------------------------------------------------------------------- light models


def _consumers(model: onnx.ModelProto) -> dict[str, list[tuple[onnx.NodeProto, int]]]:
    """Map each tensor to the (node, input index) pairs that read it."""
    out: dict[str, list[tuple[onnx.NodeProto, int]]] = collections.defaultdict(list)
    for n in model.graph.node:
        for i, name in enumerate(n.input):
            out[name].append((n, i))
    return out


def _role(name: str, cons: dict[str, list[tuple[onnx.NodeProto, int]]]) -> tuple[str, int]:
    """Return (consumer op, input index) of a constant, looking through Unsqueeze/Reshape."""
    seen = 0
    while cons.get(name) and seen < 4:
        node, idx = cons[name][0]
        if node.op_type in ("Unsqueeze", "Reshape", "Identity") and idx == 0:
            name, seen = node.output[0], seen + 1
            continue
        return node.op_type, idx
    return "", -1


def _random_value(
    shape: tuple[int, ...], role: tuple[str, int], trans_b: bool, rng: np.random.Generator
) -> np.ndarray:
    """Draw a weight that keeps activations in a sane range for its role in the network."""
    op, idx = role
    normal = rng.standard_normal(shape, dtype=np.float32)
    if op == "Conv" and idx == 1:
        fan_in = int(np.prod(shape[1:]))
        return normal * np.float32(np.sqrt(2.0 / fan_in))
    if op in ("Gemm", "MatMul") and idx == 1 and len(shape) == 2:
        fan_in = shape[1] if trans_b else shape[0]
        return normal * np.float32(np.sqrt(2.0 / fan_in))
    if (op == "BatchNormalization" and idx in (1, 4)) or op == "Mul":
        return rng.random(shape, dtype=np.float32) + np.float32(0.5)  # positive scales, variances
    return normal * np.float32(0.1)


def randomize_weights(model: onnx.ModelProto, seed: int = 0) -> onnx.ModelProto:
    """Return a copy whose float weights (initializers and ConstantOfShape fills) are random."""
    rng = np.random.default_rng(seed)
    m = onnx.ModelProto()
    m.CopyFrom(model)
    cons = _consumers(m)
    trans_b = {
        n.input[1]: any(a.name == "transB" and a.i for a in n.attribute)
        for n in m.graph.node
        if n.op_type == "Gemm"
    }
    inits = {t.name: t for t in m.graph.initializer}
    new_inits = []
    for t in m.graph.initializer:
        arr = numpy_helper.to_array(t)
        if arr.dtype == np.float32:
            val = _random_value(arr.shape, _role(t.name, cons), trans_b.get(t.name, False), rng)
            t.CopyFrom(numpy_helper.from_array(val, t.name))
    keep = []
    for n in m.graph.node:
        if n.op_type == "ConstantOfShape" and n.input[0] in inits:
            shape = tuple(int(v) for v in numpy_helper.to_array(inits[n.input[0]]))
            out = n.output[0]
            val = _random_value(shape, _role(out, cons), trans_b.get(out, False), rng)
            new_inits.append(numpy_helper.from_array(val, out))
        else:
            keep.append(n)
    del m.graph.node[:]
    m.graph.node.extend(keep)
    m.graph.initializer.extend(new_inits)
    return m


def expose_all_outputs(model: onnx.ModelProto) -> onnx.ModelProto:
    """Return a copy that lists every node output as a graph output (for onnxruntime)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for n in m.graph.node:
        for o in n.output:
            if o and o not in have:
                m.graph.output.append(onnx.helper.make_empty_tensor_value_info(o))
                have.add(o)
    return m


def _range(a: np.ndarray) -> float:
    """Return the magnitude a tensor's errors are measured against."""
    if a.size == 0:
        return 1.0
    return max(float(a.max() - a.min()), float(np.abs(a).max()), 1e-12)


@pytest.mark.parametrize("weights", ["shipped", "random"])
@pytest.mark.parametrize("path", LIGHT, ids=[p.stem for p in LIGHT])
def test_light_model_every_tensor(path: Path, weights: str, tmp_path: Path) -> None:
    model = onnx.load(str(path))
    if weights == "random":
        model = randomize_weights(model, seed=0)
    src = tmp_path / path.name
    onnx.save(model, str(src))
    graph = load_onnx(str(src))
    (inp,) = graph.inputs
    x = np.random.default_rng(0).standard_normal(graph.tensor(inp).shape).astype(np.float32)
    acts = [n for n, t in graph.tensors.items() if not t.is_const and n not in graph.inputs]
    got = run_float(graph, {inp: x}, keep=acts)
    want = ort_run(expose_all_outputs(model), {inp: x})
    assert set(graph.outputs) <= set(got)
    bad = []
    for name in acts:
        g, w = got[name], want[name]
        assert g.shape == w.shape, f"{name}: shape {g.shape} != onnxruntime {w.shape}"
        err = float(np.max(np.abs(g.astype(np.float64) - w))) if w.size else 0.0
        if err > LIGHT_RTOL * _range(w):
            bad.append(f"{name}: error {err:.3g} vs range {_range(w):.3g}")
    assert not bad, f"{len(bad)} of {len(acts)} tensors differ: " + "; ".join(bad[:5])


# --------------------------------------------------------------------------- pytorch cases

_TALLY: dict[str, int] = collections.Counter()
_SKIPS: dict[str, list[str]] = collections.defaultdict(list)


@pytest.fixture(scope="module", autouse=True)
def zoo_summary(request: pytest.FixtureRequest) -> Iterator[None]:
    """Print how many pytorch zoo cases ran, passed and were skipped (grouped by reason)."""
    yield
    tr = request.config.pluginmanager.get_plugin("terminalreporter")
    cap = request.config.pluginmanager.get_plugin("capturemanager")
    if tr is None or cap is None or not sum(_TALLY.values()):
        return
    with cap.global_and_fixture_disabled():  # teardown output is captured otherwise
        tr.write_line("")
        tr.write_sep(
            "-",
            f"onnx pytorch zoo: {_TALLY['ran']} ran, {_TALLY['passed']} passed, "
            f"{_TALLY['skipped']} skipped",
        )
        for reason, names in sorted(_SKIPS.items()):
            tr.write_line(f"  skipped ({len(names)}): {reason}: {', '.join(sorted(names))}")


def _skip(case: Path, reason: str, group: str) -> None:
    _TALLY["skipped"] += 1
    _SKIPS[group].append(case.name)
    reason = reason.replace(f"'{case / 'model.onnx'}': ", "")
    pytest.skip(f"{case.parent.name}/{case.name}: {reason}")


def _load_pb(path: str) -> np.ndarray:
    t = onnx.TensorProto()
    with open(path, "rb") as fh:
        t.ParseFromString(fh.read())
    return numpy_helper.to_array(t)


@pytest.mark.parametrize("case", CASES, ids=[f"{c.parent.name}/{c.name}" for c in CASES])
def test_pytorch_case(case: Path) -> None:
    try:
        graph = load_onnx(str(case / "model.onnx"))
    except UnsupportedOpError as exc:
        _skip(case, exc.message, "unsupported operator")
    except ShapeError as exc:
        group = "would mix the batch axis" if "batch" in exc.message else "shape out of scope"
        _skip(case, exc.message, group)
    _TALLY["ran"] += 1
    for ds in sorted(glob.glob(str(case / "test_data_set_*"))):
        inputs = [_load_pb(p) for p in sorted(glob.glob(os.path.join(ds, "input_*.pb")))]
        outputs = [_load_pb(p) for p in sorted(glob.glob(os.path.join(ds, "output_*.pb")))]
        feeds = dict(zip(graph.inputs, inputs, strict=True))
        got = run_float(graph, feeds)
        for name, want in zip(graph.outputs, outputs, strict=True):
            np.testing.assert_allclose(got[name], want, rtol=1e-3, atol=1e-4, err_msg=name)
    _TALLY["passed"] += 1
