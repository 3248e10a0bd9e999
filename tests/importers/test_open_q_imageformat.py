"""imageformat after ``open -q`` (issue 20, visual wake): the file's quantization is derived
again with the formatter's input codes when the ranges agree, refused otherwise; removing the
formatter brings the file's input qtype back."""

from __future__ import annotations

import pytest

from nnshell.errors import NnshellError
from nnshell.session import Session
from tests.tflite_oracle import TFLITE_DIR


def _session() -> Session:
    s = Session()
    s.open(str(TFLITE_DIR / "cifar_net_int8.tflite"), load_quantization=True)
    s.adjust()
    s.fusions("scale8")
    return s


def test_offset_int8_refits_the_file_quantization_and_removal_restores_it() -> None:
    s = _session()
    name = s.graph.inputs[0]
    file_q = s.qstate.tensors[name]
    assert file_q.zero_point == -1 and abs(float(file_q.scale) - 2 / 255) < 1e-9
    s.imageformat(name, "rgb888", "offset_int8")
    q = s.qstate.tensors[name]
    assert (float(q.scale), q.zero_point) == (1 / 128, 0)
    first = next(n for n in s.graph.nodes if name in n.inputs)
    assert s.qstate.nodes[first.name].in_q[0] == q  # the first layer re-derived for it
    s.imageformat(name)  # remove
    assert s.qstate.tensors[name] == file_q


def test_a_formatter_whose_range_differs_is_refused_and_nothing_changes() -> None:
    s = _session()
    name = s.graph.inputs[0]
    graph, qstate = s.graph, s.qstate
    with pytest.raises(NnshellError, match="does not match the input quantization"):
        s.imageformat(name, "rgb888", "shift_int8")
    assert s.graph is graph and s.qstate is qstate
