"""Mutated ONNX models: ``open`` succeeds or raises one NnshellError; the open graph survives."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, numpy_helper

from nnshell.errors import ShapeError
from nnshell.session import Session
from tests.fuzz.generators import ONNX_MUTATORS, SAMPLE_MODEL, base_models, onnx_cases
from tests.fuzz.harness import open_and_exercise

#: The CI subset; scripts/fuzz_campaign.py runs the same generator with many more cases.
CI_SEED = 20240801
CI_CASES = 250


def test_base_models_open(tmp_path: Path) -> None:
    session = Session()
    for name, data in base_models().items():
        path = tmp_path / f"{name}.onnx"
        path.write_bytes(data)
        outcomes = open_and_exercise(session, str(path))
        assert all(o.kind == "ok" for o in outcomes), (name, outcomes)


def test_mutated_models_library(tmp_path: Path) -> None:
    session = Session()
    session.open(str(SAMPLE_MODEL))
    failures, kinds = [], {"ok": 0, "error": 0, "FAIL": 0}
    path = tmp_path / "case.onnx"
    for i, (base, data, what) in enumerate(onnx_cases(CI_SEED, CI_CASES)):
        path.write_bytes(data)
        for out in open_and_exercise(session, str(path), limit=10):
            kinds[out.kind] += 1
            if out.failed:
                failures.append(f"case {i} ({base}: {what}): {out.detail}")
    assert not failures, "\n".join(failures[:20])
    assert kinds["error"] > 50 and kinds["ok"] > 20  # the generator reaches both outcomes


@pytest.mark.parametrize(
    "mutator",
    ["huge_dim", "negative_dim", "cycle", "dangling_input", "garbage_op_type", "empty_graph"],
)
def test_mutated_model_through_shell(shell, tmp_path: Path, mutator: str) -> None:  # noqa: ANN001
    ok, _, err = shell.run(f"open {SAMPLE_MODEL}")
    assert ok, err
    graph, prompt = shell.app.session.graph, shell.app.prompt
    model = onnx.load(str(SAMPLE_MODEL))
    assert ONNX_MUTATORS[mutator](model, random.Random(mutator)) is not None
    bad = tmp_path / f"{mutator}.onnx"
    bad.write_bytes(model.SerializeToString())
    ok, out, err = shell.run(f"open {bad}")
    assert "Traceback" not in out + err
    if not ok:
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        assert "internal error" not in err
        assert shell.app.session.graph is graph and shell.app.prompt == prompt
    ok, _, err = shell.run("show")
    assert ok, err


def test_huge_declared_tensor_is_an_error(tmp_path: Path) -> None:
    """A 10**12-element tensor is refused before any allocation (issue 8)."""
    model = onnx.load(str(SAMPLE_MODEL))
    t = model.graph.initializer[0]
    del t.dims[:]
    t.dims.extend([10**6, 10**6])
    t.data_type = TensorProto.FLOAT
    path = tmp_path / "huge.onnx"
    path.write_bytes(model.SerializeToString())
    session = Session()
    with pytest.raises(ShapeError, match="refusing to allocate"):
        session.open(str(path))
    assert session.graph is None


def test_huge_folded_constant_is_an_error(tmp_path: Path) -> None:
    """ConstantOfShape([1, 3, 10**6, 10**6]) in a tiny file is refused, not evaluated."""
    model = onnx.ModelProto()
    model.ParseFromString(base_models()["const_of_shape"])
    shp = next(i for i in model.graph.initializer if i.name == "shp")
    shp.CopyFrom(numpy_helper.from_array(np.array([1, 3, 10**6, 10**6], np.int64), "shp"))
    path = tmp_path / "cos.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(ShapeError, match="refusing to allocate"):
        Session().open(str(path))
