"""fuse_conv / fuse_linear / fuse_pool / fuse_add and their _pow2 variants."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from nnshell.passes import run_passes
from tests.helpers import load_model, rand
from tests.passes import apply, conv_w, model, node, ops

X = {"x": [1, 3, 8, 8]}
W = {"w": conv_w(4, 3), "b": rand((4,), 2)}
CONV = node("Conv", ["x", "w", "b"], "c", pads=[1, 1, 1, 1])


def conv_chain(*rest: onnx.NodeProto, inits: dict | None = None) -> onnx.ModelProto:
    return model([CONV, *rest], X, [rest[-1].output[0]], {**W, **(inits or {})})


def kinds(res) -> list[str]:  # noqa: ANN001
    return [f.kind for f in res.fusions]


MAXPOOL = {"kernel_shape": [2, 2], "strides": [2, 2]}


@pytest.mark.parametrize("sfx", ["", "_pow2"])
def test_conv_kinds(sfx: str) -> None:
    cases = [
        ([node("Relu", ["c"], "y")], "conv_active", "Conv+Relu"),
        ([node("MaxPool", ["c"], "y", **MAXPOOL)], "conv_pool", "Conv+MaxPool"),
        (
            [node("MaxPool", ["c"], "p", **MAXPOOL), node("Relu", ["p"], "y")],
            "conv_pool_active",
            "Conv+MaxPool+Relu",
        ),
        (
            [node("Relu", ["c"], "r"), node("MaxPool", ["r"], "y", **MAXPOOL)],
            "conv_active_pool",
            "Conv+Relu+MaxPool",
        ),
        (
            [node("AveragePool", ["c"], "p", **MAXPOOL), node("Relu", ["p"], "y")],
            "conv_pool_active",
            "Conv+AveragePool+Relu",
        ),
    ]
    for rest, kind, label in cases:
        before, after, res = apply(conv_chain(*rest), f"fuse_conv{sfx}")
        assert ops(after) == [f"Fused({label})"], label
        assert kinds(res) == [kind]
        (fused,) = after.nodes
        assert fused.name == "n_c_fusion" and fused.outputs == ["y"]
        assert res.fusions[0].old == tuple(n.name for n in before.nodes)


def test_relu_then_average_pool_fuses_only_the_relu() -> None:
    # Near miss: conv_active_pool takes a max pool only (max commutes with a monotonic
    # activation, an average does not), so the AveragePool stays a layer of its own.
    m = conv_chain(node("Relu", ["c"], "r"), node("AveragePool", ["r"], "y", **MAXPOOL))
    _, after, res = apply(m, "fuse_conv")
    assert ops(after) == ["Fused(Conv+Relu)", "AveragePool"] and kinds(res) == ["conv_active"]


def test_fan_out_stops_the_chain() -> None:
    # Near miss: the conv output is also a graph output; fusing would hide it.
    m = model([CONV, node("Relu", ["c"], "y")], X, ["y", "c"], W)
    _, after, res = apply(m, "fuse_conv")
    assert ops(after) == ["Conv", "Relu"] and res.changed == 0
    # The pool has two readers: conv + pool fuse? No: the chain stops at the conv's sole reader.
    m = model(
        [
            CONV,
            node("MaxPool", ["c"], "p", **MAXPOOL),
            node("Relu", ["p"], "y"),
            node("Sigmoid", ["p"], "z"),
        ],
        X,
        ["y", "z"],
        W,
    )
    _, after, res = apply(m, "fuse_conv")
    assert ops(after) == ["Fused(Conv+MaxPool)", "Relu", "Sigmoid"]


@pytest.mark.parametrize("sfx", ["", "_pow2"])
def test_softplus_after_conv_is_not_fused(sfx: str) -> None:
    # Near miss: no kernel implements Softplus; the note says why.
    _, after, res = apply(conv_chain(node("Softplus", ["c"], "y")), f"fuse_conv{sfx}")
    assert ops(after) == ["Conv", "Softplus"] and res.changed == 0


def test_prelu_after_conv_is_not_fused() -> None:
    # Near miss: PRelu has a learned slope tensor (a second input); the kernels' activations
    # take scalar parameters only.
    slope = np.full((4, 1, 1), 0.1, np.float32)
    m = conv_chain(node("PRelu", ["c", "s"], "y"), inits={"s": slope})
    _, after, res = apply(m, "fuse_conv")
    assert ops(after) == ["Conv", "PRelu"] and res.changed == 0


@pytest.mark.parametrize("name", ["fuse_conv", "fuse_conv_pow2"])
def test_clip_with_non_constant_bound_is_not_fused(name: str) -> None:
    # Near miss: a bound computed at run time cannot become a kernel parameter. The importer
    # already rejects such a Clip, so the bound is turned into an activation in the IR here (no
    # numbers to compare: nothing feeds it).
    m = conv_chain(
        node("Clip", ["c", "lo", "hi"], "y"),
        inits={"lo": np.array(0.0, np.float32), "hi": np.array(6.0, np.float32)},
    )
    graph = load_model(m)
    graph.tensors["hi"].const = None
    res = run_passes(graph, [name])
    assert ops(graph) == ["Conv", "Clip"] and res.changed == 0


@pytest.mark.parametrize("sfx", ["", "_pow2"])
def test_clip_bounds_from_inputs_become_attributes(sfx: str) -> None:
    m = conv_chain(
        node("Clip", ["c", "lo", "hi"], "y"),
        inits={"lo": np.array(0.0, np.float32), "hi": np.array(6.0, np.float32)},
    )
    _, after, _ = apply(m, f"fuse_conv{sfx}")
    assert ops(after) == ["Fused(Conv+Clip)"]
    part = after.nodes[0].attrs.parts[1]
    assert (part.attrs.min, part.attrs.max) == (0.0, 6.0)
    assert len(after.nodes[0].inputs) == 3  # the bounds are not inputs of the fused node


def clip(lo: float, hi: float, inp: str = "c", out: str = "y") -> onnx.NodeProto:
    return node("Clip", [inp], out, min=lo, max=hi)


def test_clip_under_pow2_only_relu6() -> None:
    relu6 = model([CONV, clip(0.0, 6.0)], X, ["y"], W, opset=10)
    other = model([CONV, clip(-1.0, 1.0)], X, ["y"], W, opset=10)
    assert ops(apply(relu6, "fuse_conv_pow2")[1]) == ["Fused(Conv+Clip)"]
    # Near miss: Clip(-1, 1) is not a ReLU6, the POW2 kernels cannot clip to other bounds.
    _, after, res = apply(other, "fuse_conv_pow2")
    assert ops(after) == ["Conv", "Clip"]
    assert any("[0, 6] only" in n for n in res.notes)
    assert ops(apply(other, "fuse_conv")[1]) == ["Fused(Conv+Clip)"]


def test_pow2_relu6_fuses_even_when_another_clip_does_not() -> None:
    # Two convs in one graph: the ReLU6 one fuses under pow2, the Clip(-1, 1) one does not.
    m = model(
        [
            CONV,
            clip(0.0, 6.0, "c", "r6"),
            node("Conv", ["r6", "w2"], "c2"),
            clip(-1.0, 1.0, "c2", "y"),
        ],
        X,
        ["y"],
        {**W, "w2": conv_w(4, 4, seed=3)},
        opset=10,
    )
    _, after, _ = apply(m, "fuse_conv_pow2")
    assert ops(after) == ["Fused(Conv+Clip)", "Conv", "Clip"]


def test_linear_clip_under_pow2_only_relu6() -> None:
    def lin(lo: float, hi: float) -> onnx.ModelProto:
        return model(
            [node("Gemm", ["x", "w"], "g", transB=1), clip(lo, hi, "g")],
            {"x": [1, 6]},
            ["y"],
            {"w": rand((4, 6), 1)},
            opset=10,
        )

    assert ops(apply(lin(0.0, 6.0), ["to_linear", "fuse_linear_pow2"])[1]) == ["Fused(Linear+Clip)"]
    assert ops(apply(lin(-1.0, 1.0), ["to_linear", "fuse_linear"])[1]) == ["Fused(Linear+Clip)"]
    assert ops(apply(lin(-1.0, 1.0), ["to_linear", "fuse_linear_pow2"])[1]) == ["Linear", "Clip"]


@pytest.mark.parametrize("sfx", ["", "_pow2"])
def test_sigmoid_fuses_with_conv_in_both_schemes(sfx: str) -> None:
    _, after, res = apply(conv_chain(node("Sigmoid", ["c"], "y")), f"fuse_conv{sfx}")
    assert ops(after) == ["Fused(Conv+Sigmoid)"] and kinds(res) == ["conv_active"]


def linear_then(act: str) -> onnx.ModelProto:
    return model(
        [node("Gemm", ["x", "w", "b"], "g", transB=1), node(act, ["g"], "y")],
        {"x": [1, 6]},
        ["y"],
        {"w": rand((4, 6), 1), "b": rand((4,), 2)},
    )


@pytest.mark.parametrize("sfx", ["", "_pow2"])
def test_linear_active(sfx: str) -> None:
    _, after, res = apply(linear_then("Relu"), ["to_linear", f"fuse_linear{sfx}"])
    assert ops(after) == ["Fused(Linear+Relu)"] and kinds(res) == ["linear_active"]


@pytest.mark.parametrize("sfx", ["", "_pow2"])
def test_tanh_fuses_after_linear_in_both_schemes(sfx: str) -> None:
    """Tanh has fused hooks in both schemes (ops/fused_act.py), so both passes fuse it."""
    _, after, _ = apply(linear_then("Tanh"), ["to_linear", f"fuse_linear{sfx}"])
    assert ops(after) == ["Fused(Linear+Tanh)"]


@pytest.mark.parametrize("sfx", ["", "_pow2"])
@pytest.mark.parametrize("pool", ["GlobalAveragePool", "GlobalMaxPool", "MaxPool"])
def test_pool_active(sfx: str, pool: str) -> None:
    attrs = MAXPOOL if pool == "MaxPool" else {}
    m = model([node(pool, ["x"], "p", **attrs), node("Relu", ["p"], "y")], X, ["y"])
    _, after, res = apply(m, f"fuse_pool{sfx}")
    assert ops(after) == [f"Fused({pool}+Relu)"] and kinds(res) == ["pool_active"]


@pytest.mark.parametrize("sfx", ["", "_pow2"])
def test_add_active(sfx: str) -> None:
    m = model(
        [node("Add", ["x", "r"], "a"), node("Relu", ["a"], "y")],
        {"x": [1, 3, 8, 8], "r": [1, 3, 8, 8]},
        ["y"],
    )
    _, after, res = apply(m, f"fuse_add{sfx}")
    assert ops(after) == ["Fused(Add+Relu)"] and kinds(res) == ["add_active"]
    assert after.nodes[0].inputs == ["x", "r"]


def test_add_of_a_constant_is_not_an_add_active() -> None:
    # Near miss: add_active is the two-tensor (residual) add kernel; a constant bias add is
    # fold_const_bias's job.
    m = model(
        [node("Add", ["x", "k"], "a"), node("Relu", ["a"], "y")],
        X,
        ["y"],
        {"k": rand((3, 1, 1), 1)},
    )
    _, after, res = apply(m, "fuse_add")
    assert ops(after) == ["Add", "Relu"] and res.changed == 0
