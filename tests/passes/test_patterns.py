"""Pattern normalisation passes (issue 17): div_to_mul, hardswish, hardsigmoid,
normalise_hardsigmoid and swish. Each rewrite is checked against onnxruntime on the original
model (within RTOL of the output range); each near miss is left alone, with a note where the
user could expect a rewrite.
"""

from __future__ import annotations

import numpy as np
import pytest

from nnshell.exec import run_float
from nnshell.ops.registry import all_ops
from nnshell.passes import SCHEMES
from tests.helpers import ort_run
from tests.passes import RTOL, apply, conv_w, feeds_for, model, node, ops

X = {"x": [1, 3, 6, 6]}
C = 4


def check_ort(m, after) -> None:  # noqa: ANN001
    """``after`` (the rewritten graph) matches onnxruntime on the original model."""
    feeds = {"x": (feeds_for(after, 2)["x"] * 4).astype(np.float32)}  # reaches both clip bounds
    want = ort_run(m, feeds)
    got = run_float(after, feeds)
    for name, w in want.items():
        err = float(np.abs(got[name].astype(np.float64) - w).max())
        assert err <= RTOL * max(float(np.abs(w).max()), 1e-6), (name, err)


def consts(**kv: float) -> dict[str, np.ndarray]:
    return {k: np.array(v, np.float32) for k, v in kv.items()}


# ----------------------------------------------------------------------------- const_last


@pytest.mark.parametrize("op", ["Add", "Mul"])
def test_constant_first_moves_second(op: str) -> None:
    m = model([node(op, ["c", "x"], "y")], X, ["y"], {"c": np.array([2.5], np.float32)})
    _, after, res = apply(m, "const_last")
    assert after.nodes[0].inputs == ["x", "c"] and res.changed == 1
    check_ort(m, after)


def test_sub_with_constant_first_is_not_commuted() -> None:
    m = model([node("Sub", ["c", "x"], "y")], X, ["y"], consts(c=1.0))
    _, after, res = apply(m, "const_last")
    assert after.nodes[0].inputs == ["c", "x"] and res.changed == 0


# ----------------------------------------------------------------------------- div_to_mul


def test_div_by_constant_becomes_mul() -> None:
    c = (np.random.default_rng(1).random((1, 3, 1, 1)) + 0.5).astype(np.float32)
    m = model([node("Div", ["x", "c"], "y")], X, ["y"], {"c": c})
    _, after, res = apply(m, "div_to_mul")
    assert ops(after) == ["Mul"] and res.changed == 1
    check_ort(m, after)


def test_constant_divided_by_activation_is_kept() -> None:
    m = model([node("Div", ["c", "x"], "y")], X, ["y"], consts(c=2.0))
    _, after, res = apply(m, "div_to_mul")
    assert ops(after) == ["Div"] and res.changed == 0 and res.notes


def test_division_by_zero_constant_is_kept() -> None:
    m = model([node("Div", ["x", "c"], "y")], X, ["y"], consts(c=0.0))
    after, res = apply_no_check(m, "div_to_mul")  # x/0 is inf on both sides: no comparison
    assert ops(after) == ["Div"] and res.changed == 0 and "nonzero" in res.notes[0]


def apply_no_check(m, name):  # noqa: ANN001, ANN201
    """Run a pass without comparing numbers (x/0 is inf on both sides)."""
    from nnshell.passes import run_passes
    from tests.helpers import load_model

    g = load_model(m)
    return g, run_passes(g, [name])


# ------------------------------------------------------------------------------ hardswish


def hswish_nodes(order: str = "x_first", div: bool = True) -> list:
    mul_ins = ["x", "r"] if order == "x_first" else ["r", "x"]
    last = node("Div", ["m", "six"], "y") if div else node("Mul", ["m", "sixth"], "y")
    return [
        node("Add", ["x", "three"], "a"),
        node("Clip", ["a", "zero", "six"], "r"),
        node("Mul", mul_ins, "m"),
        last,
    ]


HS_CONSTS = consts(three=3.0, zero=0.0, six=6.0, sixth=1.0 / 6.0)


@pytest.mark.parametrize("order", ["x_first", "clip_first"])
@pytest.mark.parametrize("div", [True, False])
def test_written_out_hardswish_becomes_one_node(order: str, div: bool) -> None:
    m = model(hswish_nodes(order, div), X, ["y"], HS_CONSTS)
    _, after, res = apply(m, ["div_to_mul", "hardswish"])
    assert ops(after) == ["HardSwish"] and after.nodes[0].outputs == ["y"]
    assert set(res.removed) == {"n_a", "n_r", "n_m"}
    check_ort(m, after)


def test_x_times_unit_hardsigmoid_becomes_hardswish() -> None:
    nodes = [node("HardSigmoid", ["x"], "h", alpha=1 / 6, beta=0.5), node("Mul", ["h", "x"], "y")]
    m = model(nodes, X, ["y"])
    _, after, _ = apply(m, "hardswish")
    assert ops(after) == ["HardSwish"]
    check_ort(m, after)


def test_hardswish_with_wrong_offset_is_kept() -> None:
    # Near miss: x·clip(x+2, 0, 6)/6 is not HardSwish.
    m = model(hswish_nodes(), X, ["y"], {**HS_CONSTS, "three": np.array(2.0, np.float32)})
    _, after, res = apply(m, ["div_to_mul", "hardswish"])
    assert "HardSwish" not in ops(after) and res.changed == 1  # only the Div became a Mul


def test_hardswish_of_another_tensor_is_kept() -> None:
    # Near miss: z·clip(x+3, 0, 6)/6 multiplies a different tensor.
    nodes = hswish_nodes()
    nodes[2] = node("Mul", ["z", "r"], "m")
    m = model(nodes, {**X, "z": [1, 3, 6, 6]}, ["y"], HS_CONSTS)
    _, after, _ = apply(m, ["div_to_mul", "hardswish"])
    assert "HardSwish" not in ops(after)


def test_hardswish_with_intermediate_reader_is_kept() -> None:
    # Near miss: the clip output is also a graph output, so it must survive.
    m = model(hswish_nodes(), X, ["y", "r"], HS_CONSTS)
    _, after, _ = apply(m, ["div_to_mul", "hardswish"])
    assert "HardSwish" not in ops(after)


# ---------------------------------------------------------------------------- hardsigmoid


def test_written_out_hardsigmoid_becomes_one_node() -> None:
    nodes = [
        node("Add", ["x", "three"], "a"),
        node("Clip", ["a", "zero", "six"], "r"),
        node("Div", ["r", "six"], "y"),
    ]
    m = model(nodes, X, ["y"], HS_CONSTS)
    _, after, _ = apply(m, ["div_to_mul", "hardsigmoid"])
    assert ops(after) == ["HardSigmoid"]
    assert after.nodes[0].attrs.alpha == pytest.approx(1 / 6) and after.nodes[0].attrs.beta == 0.5
    check_ort(m, after)


def test_clip_with_other_bound_is_not_hardsigmoid() -> None:
    nodes = [
        node("Add", ["x", "three"], "a"),
        node("Clip", ["a", "zero", "five"], "r"),
        node("Mul", ["r", "sixth"], "y"),
    ]
    m = model(nodes, X, ["y"], {**HS_CONSTS, "five": np.array(5.0, np.float32)})
    _, after, res = apply(m, "hardsigmoid")
    assert ops(after) == ["Add", "Clip", "Mul"] and res.changed == 0


def test_hardsigmoid_alpha_beta_normalised_into_conv() -> None:
    nodes = [
        node("Conv", ["x", "w", "b"], "c", pads=[1, 1, 1, 1]),
        node("HardSigmoid", ["c"], "y", alpha=0.2, beta=0.5),
    ]
    m = model(nodes, X, ["y"], {"w": conv_w(C, 3), "b": np.arange(C, dtype=np.float32) / 4})
    _, after, res = apply(m, "normalise_hardsigmoid")
    assert ops(after) == ["Conv", "HardSigmoid"] and res.changed == 1
    assert after.nodes[1].attrs.alpha == pytest.approx(1 / 6)
    check_ort(m, after)


def test_hardsigmoid_without_own_conv_is_kept_with_a_note() -> None:
    # Near miss: the conv output is read twice; scaling the conv would change the other reader.
    nodes = [
        node("Conv", ["x", "w"], "c"),
        node("HardSigmoid", ["c"], "y", alpha=0.2, beta=0.5),
        node("Relu", ["c"], "z"),
    ]
    m = model(nodes, X, ["y", "z"], {"w": conv_w(C, 3)})
    _, after, res = apply(m, "normalise_hardsigmoid")
    assert after.nodes[1].attrs.alpha == pytest.approx(0.2) and res.changed == 0
    assert "kept" in res.notes[0]


# ---------------------------------------------------------------------------------- swish


@pytest.mark.parametrize("order", [["x", "s"], ["s", "x"]])
def test_x_times_sigmoid_becomes_swish_when_the_op_exists(order: list[str]) -> None:
    m = model([node("Sigmoid", ["x"], "s"), node("Mul", order, "y")], X, ["y"])
    _, after, res = apply(m, "swish")
    if "Swish" in all_ops():
        assert ops(after) == ["Swish"] and res.changed == 1
        check_ort(m, after)
    else:  # the Swish op class lands with the activation kernels: the pattern waits for it
        assert ops(after) == ["Sigmoid", "Mul"] and "no Swish op" in res.notes[0]


def test_sigmoid_of_other_tensor_is_not_swish() -> None:
    m = model(
        [node("Sigmoid", ["z"], "s"), node("Mul", ["x", "s"], "y")],
        {**X, "z": [1, 3, 6, 6]},
        ["y"],
    )
    _, after, res = apply(m, "swish")
    assert ops(after) == ["Sigmoid", "Mul"] and res.changed == 0 and not res.notes


def test_normalisation_passes_run_in_both_schemes_before_the_fusions() -> None:
    for scheme in SCHEMES.values():
        first_fuse = min(i for i, n in enumerate(scheme) if n.startswith("fuse_"))
        for p in (
            "const_last",
            "div_to_mul",
            "hardswish",
            "hardsigmoid",
            "normalise_hardsigmoid",
            "swish",
        ):
            assert scheme.index(p) < first_fuse
        assert scheme.index("hardsigmoid") < scheme.index("fold_const_bias")
