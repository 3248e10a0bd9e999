"""Node selectors on the sample model."""

from __future__ import annotations

import pytest

from nnshell.errors import SelectorError
from nnshell.importers.onnx_importer import load_onnx
from nnshell.selectors import select_steps
from tests.conftest import SAMPLE_MODEL


@pytest.fixture(scope="module")
def graph():  # noqa: ANN201
    return load_onnx(str(SAMPLE_MODEL))


def test_selector_forms(graph) -> None:  # noqa: ANN001
    n = len(graph.nodes)
    assert select_steps(graph, None) == list(range(n))
    assert select_steps(graph, "0") == [0]
    assert select_steps(graph, "-1") == [n - 1]
    assert select_steps(graph, "_conv1_Conv") == [0]
    assert select_steps(graph, "_conv*") == [0, 3]
    assert select_steps(graph, "1:3") == [1, 2, 3]
    assert select_steps(graph, ":1") == [0, 1]
    assert select_steps(graph, f"{n - 2}:") == [n - 2, n - 1]
    assert select_steps(graph, "_conv2_Conv:_pool_1_MaxPool") == [3, 4]
    assert select_steps(graph, "0, 2,_fc3_Gemm") == [0, 2, n - 1]


@pytest.mark.parametrize("bad", ["99", "-99", "_nope", "_zz*", "3:1"])
def test_selector_errors(graph, bad: str) -> None:  # noqa: ANN001
    with pytest.raises(SelectorError):
        select_steps(graph, bad)
