"""aquant checks every layer before reading any image and lists all refusals on one line; its
hint names the other scheme only when that scheme would quantize every layer (issue 17)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from nnshell.errors import QuantizationError
from nnshell.session import Session
from tests.helpers import rand


def _model(tmp_path: Path, tail: list[onnx.NodeProto], inits: dict[str, np.ndarray]) -> str:
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        *tail,
    ]
    inits = {"w1": rand((4, 3, 3, 3), 1, 0.3), **inits}
    g = helper.make_graph(
        nodes,
        "t",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    path = str(tmp_path / "m.onnx")
    onnx.save(m, path)
    return path


def _refusal(path: str, scheme: str) -> QuantizationError | None:
    s = Session()
    s.open(path)
    s.adjust()
    s.fusions("scale8" if scheme == "SQ8" else "pow2")
    try:  # the folder does not exist: a refusal must come before any image is read
        s.aquant(["/nonexistent/calibration"], scheme=scheme)
    except QuantizationError as e:
        return e
    raise AssertionError("aquant read images instead of refusing")  # pragma: no cover


TWO_BAD = (
    [
        helper.make_node("Exp", ["r1"], ["e"], name="exp1"),
        helper.make_node("Conv", ["e", "w2"], ["c2"], name="conv2"),
        helper.make_node("Softplus", ["c2"], ["y"], name="softplus1"),
    ],
    {"w2": rand((4, 4, 1, 1), 2, 0.3)},
)


@pytest.mark.parametrize("scheme", ["SQ8", "POW2"])
def test_every_refused_layer_is_listed_before_calibration(tmp_path: Path, scheme: str) -> None:
    err = _refusal(_model(tmp_path, *TWO_BAD), scheme)
    assert err is not None
    assert err.message.startswith(f"2 layer(s) cannot be quantized in {scheme}: ")
    assert "exp1 (Exp): " in err.message and "softplus1 (Softplus): " in err.message
    assert "\n" not in str(err)
    other = "POW2" if scheme == "SQ8" else "SQ8"
    assert f"aquant -s {other}" not in (err.hint or "")  # the other scheme refuses them too


def test_pow2_hint_names_sq8_only_when_sq8_would_work(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    # Every op with an SQ8 quantizer has a POW2 one today, so take Add's POW2 hooks away: a
    # per-channel constant add after a ReLU is then refused by POW2 and quantized by SQ8.
    from nnshell.ops import get_op
    from nnshell.ops.registry import OpDef

    c = (np.arange(4, dtype=np.float32) / 4).reshape(1, 4, 1, 1)
    path = _model(tmp_path, [helper.make_node("Add", ["r1", "k"], ["y"], name="add1")], {"k": c})
    assert _refusal_or_none(path, "POW2") is None  # as shipped: POW2 quantizes it
    monkeypatch.setattr(type(get_op("Add")), "quantize_pow2", OpDef.quantize_pow2, raising=False)
    err = _refusal_or_none(path, "POW2")
    assert err is not None and "add1" in err.message
    assert _refusal_or_none(path, "SQ8") is None
    assert "aquant -s SQ8" in (err.hint or "")


def _refusal_or_none(path: str, scheme: str) -> QuantizationError | None:
    s = Session()
    s.open(path)
    s.adjust()
    s.fusions("scale8" if scheme == "SQ8" else "pow2")
    try:
        s._require_scheme_graph("scale8" if scheme == "SQ8" else "pow2")
    except QuantizationError as e:
        return e
    return None


def test_a_quantizer_crash_is_listed_not_raised(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    from nnshell.ops import get_op

    def boom(self, ctx):  # noqa: ANN001, ANN202
        raise AssertionError

    monkeypatch.setattr(type(get_op("Relu")), "quantize_sq8", boom)
    path = _model(tmp_path, [helper.make_node("Relu", ["r1"], ["y"], name="relu2")], {})
    err = _refusal_or_none(path, "SQ8")
    assert err is not None and "relu2 (Relu): its quantizer failed (AssertionError)" in err.message
