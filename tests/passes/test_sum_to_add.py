"""sum_to_add: a two-input Sum becomes Add."""

from __future__ import annotations

from tests.passes import apply, model, node, ops

X = {"a": [1, 4, 5, 5], "b": [1, 4, 5, 5], "c": [1, 4, 5, 5]}


def test_two_input_sum_becomes_add() -> None:
    m = model([node("Sum", ["a", "b"], "s"), node("Relu", ["s"], "y")], X, ["y"])
    before, after, res = apply(m, "sum_to_add")
    assert ops(before) == ["Sum", "Relu"] and ops(after) == ["Add", "Relu"]
    assert res.changed == 1 and after.nodes[0].inputs == ["a", "b"]


def test_broadcasting_sum_becomes_add() -> None:
    m = model([node("Sum", ["a", "b"], "y")], {"a": [1, 4, 5, 5], "b": [1, 4, 1, 1]}, ["y"])
    _, after, _ = apply(m, "sum_to_add")
    assert ops(after) == ["Add"]


def test_three_input_sum_is_kept() -> None:
    # Near miss: Add takes exactly two inputs; a three-input Sum would need two adds.
    m = model([node("Sum", ["a", "b", "c"], "y")], X, ["y"])
    _, after, res = apply(m, "sum_to_add")
    assert ops(after) == ["Sum"] and res.changed == 0
