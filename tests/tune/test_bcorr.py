"""bcorr (issue 20): empirical bias correction, library functions and one shell run."""

from __future__ import annotations

import numpy as np
import pytest

from nnshell.errors import GraphStateError
from nnshell.exec import run_float
from nnshell.session import Session
from nnshell.tune.bcorr import bcorr, channel_errors, corrected_graph
from tests.conftest import CALIB_DIR, SAMPLE_MODEL

NORM = "x: (x/255 - 0.5)/0.5"
FILES = [str(p) for p in sorted(CALIB_DIR.iterdir())[:24]]


def _quantized(per_tensor: bool = True) -> Session:
    s = Session()
    s.open(str(SAMPLE_MODEL))
    s.adjust()
    s.fusions("scale8")
    s.aquant(FILES, s.input_options(norm_func=NORM), per_tensor=per_tensor)
    return s


def _errors(s: Session, reference=None) -> dict[str, np.ndarray]:  # noqa: ANN001
    """Each layer's mean channel error (its own, isolated) against ``reference``'s floats."""
    _paths, batches, fast = s._analysis_pass(FILES, s.input_options(norm_func=NORM))
    return channel_errors(s.graph, s.qstate, batches, len(FILES), None, fast, reference)[0]


def test_bcorr_removes_the_mean_channel_error_it_measured() -> None:
    s = _quantized()
    original = s.graph
    before = _errors(s)
    seen: list[tuple[int, int]] = []
    res = bcorr(s, FILES, s.input_options(norm_func=NORM), lambda d, t: seen.append((d, t)))
    assert res.images == len(FILES) and seen[-1] == (len(FILES), len(FILES))
    assert sorted(res.corrected) == sorted(before)
    after = _errors(s, original)  # the corrected integer layers against the original floats
    tot_before = sum(float(np.abs(e).mean()) for e in before.values())
    tot_after = sum(float(np.abs(e).mean()) for e in after.values())
    assert tot_after < 0.6 * tot_before, (tot_before, tot_after)


def test_corrected_graph_subtracts_the_error_and_adds_a_missing_bias() -> None:
    s = _quantized()
    g = s.graph
    name = "_conv1_Conv_fusion"
    node = g.node(name)
    old = g.tensors[node.inputs[2]].const.copy()
    err = np.arange(old.size, dtype=np.float64) / 100
    # drop the bias of the first conv: bcorr must create one
    work0 = g.copy()
    work0.node(name).inputs = work0.node(name).inputs[:2]
    work = corrected_graph(work0, {name: err})
    np.testing.assert_allclose(work.tensors[work.node(name).inputs[2]].const, -err, rtol=1e-6)
    work = corrected_graph(g, {name: err})
    np.testing.assert_allclose(work.tensors[work.node(name).inputs[2]].const, old - err, rtol=1e-6)
    assert np.array_equal(g.tensors[node.inputs[2]].const, old)  # the original is untouched
    x = np.zeros((1, 3, 32, 32), np.float32)
    a, b = run_float(g, {g.inputs[0]: x}), run_float(work, {work.inputs[0]: x})
    assert not np.allclose(a[g.outputs[0]], b[work.outputs[0]])


def test_bcorr_needs_a_quantized_graph_and_images() -> None:
    s = Session()
    s.open(str(SAMPLE_MODEL))
    s.adjust()
    s.fusions("scale8")
    graph = s.graph
    with pytest.raises(GraphStateError):
        bcorr(s, FILES)
    assert s.graph is graph


def test_shell_bcorr(shell) -> None:  # noqa: ANN001
    for line in (f"open {SAMPLE_MODEL}", "adjust", "fusions --scale8"):
        assert shell.run(line)[0]
    ok, out, err = shell.run(f"bcorr {CALIB_DIR}")
    assert not ok and "Traceback" not in err and "aquant" in err
    assert shell.run(f'aquant {" ".join(FILES[:8])} -N "{NORM}"')[0]
    ok, out, err = shell.run(f'bcorr {" ".join(FILES[:8])} -N "{NORM}"')
    assert ok, err
    assert "bcorr: 5 layer(s) corrected on 8 image(s)" in out and "re-quantized" in out


def test_bcorr_on_a_pow2_graph_requantizes_pow2() -> None:
    s = Session()
    s.open(str(SAMPLE_MODEL))
    s.adjust()
    s.fusions("pow2")
    s.aquant(FILES[:8], s.input_options(norm_func=NORM), scheme="POW2", bits=8)
    res = bcorr(s, FILES[:8], s.input_options(norm_func=NORM))
    assert res.corrected and s.qstate.scheme == "POW2" and s.qstate.options.bits == 8


def test_bcorr_after_open_q_keeps_the_file_scales() -> None:
    from tests.tflite_oracle import TFLITE_DIR

    s = Session()
    s.open(str(TFLITE_DIR / "cifar_net_int8.tflite"), load_quantization=True)
    s.adjust()
    s.fusions("scale8")
    before = dict(s.qstate.tensors)
    res = bcorr(s, FILES[:8], s.input_options(norm_func=NORM))
    assert res.corrected
    assert s.qstate.tensors == before  # the file's qtypes, not a calibration of its own
    assert any("_bcorr_bias" in i for n in s.graph.nodes for i in n.inputs)
