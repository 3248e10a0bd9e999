"""fold_batchnorm: BatchNormalization after a conv or a Gemm folds into its weights."""

from __future__ import annotations

import numpy as np

from nnshell.exec import run_float
from tests.helpers import load_model, ort_run, rand
from tests.passes import apply, conv_w, model, node, ops

C = 4


def bn_params(prefix: str = "bn", c: int = C, seed: int = 5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        f"{prefix}_g": (rng.random(c) + 0.5).astype(np.float32),
        f"{prefix}_b": rng.standard_normal(c).astype(np.float32),
        f"{prefix}_m": rng.standard_normal(c).astype(np.float32),
        f"{prefix}_v": (rng.random(c) + 0.1).astype(np.float32),
    }


BN_IN = ["bn_g", "bn_b", "bn_m", "bn_v"]


def test_conv_bn_folds() -> None:
    m = model(
        [
            node("Conv", ["x", "w", "b"], "c", pads=[1, 1, 1, 1]),
            node("BatchNormalization", ["c", *BN_IN], "n", epsilon=1e-3),
            node("Relu", ["n"], "y"),
        ],
        {"x": [1, 3, 6, 6]},
        ["y"],
        {"w": conv_w(C, 3), "b": rand((C,), 2), **bn_params()},
    )
    before, after, res = apply(m, "fold_batchnorm")
    assert ops(before) == ["Conv", "BatchNormalization", "Relu"]
    assert ops(after) == ["Conv", "Relu"]
    assert res.removed == ["n_n"]
    # The original weights are not mutated (a copied graph shares constants).
    assert np.array_equal(before.tensors["w"].const, conv_w(C, 3))


def test_conv_without_bias_bn_folds() -> None:
    m = model(
        [node("Conv", ["x", "w"], "c"), node("BatchNormalization", ["c", *BN_IN], "y")],
        {"x": [1, 3, 6, 6]},
        ["y"],
        {"w": conv_w(C, 3), **bn_params()},
    )
    _, after, _ = apply(m, "fold_batchnorm")
    assert ops(after) == ["Conv"] and len(after.nodes[0].inputs) == 3
    assert after.outputs == ["y"] and after.nodes[0].outputs == ["y"]


def test_missing_epsilon_defaults_to_1e5() -> None:
    # With variances near 1e-5 the epsilon matters: compare with onnxruntime, not only with the
    # unfolded graph (which would share an importer default).
    params = bn_params()
    params["bn_v"] = np.full(C, 2e-5, np.float32)
    m = model(
        [node("Conv", ["x", "w"], "c"), node("BatchNormalization", ["c", *BN_IN], "y")],
        {"x": [1, 3, 6, 6]},
        ["y"],
        {"w": conv_w(C, 3), **params},
    )
    _, after, _ = apply(m, "fold_batchnorm")
    assert ops(after) == ["Conv"]
    x = rand((1, 3, 6, 6), 3)
    got = run_float(after, {"x": x})["y"]
    want = ort_run(m, {"x": x})["y"]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * float(np.abs(want).max()))
    assert np.isclose(load_model(m).nodes[1].attrs.epsilon, 1e-5)


def test_gemm_bn_folds_for_both_transb() -> None:
    for trans_b in (0, 1):
        w = rand((6, C) if not trans_b else (C, 6), 7, 0.4)
        m = model(
            [
                node("Gemm", ["x", "w", "b"], "g", transB=trans_b),
                node("BatchNormalization", ["g", *BN_IN], "y"),
            ],
            {"x": [1, 6]},
            ["y"],
            {"w": w, "b": rand((C,), 8), **bn_params()},
        )
        _, after, res = apply(m, "fold_batchnorm")
        assert ops(after) == ["Gemm"], trans_b
        assert res.changed == 1


def test_bn_after_concat_is_kept() -> None:
    # Near miss: a BN following a Concat has no single layer whose weights could absorb it
    # (densenet has these); it stays as a per-channel scale-shift.
    m = model(
        [
            node("Conv", ["x", "w"], "c1"),
            node("Conv", ["x", "w2"], "c2"),
            node("Concat", ["c1", "c2"], "cat", axis=1),
            node("BatchNormalization", ["cat", *BN_IN], "y"),
        ],
        {"x": [1, 3, 6, 6]},
        ["y"],
        {"w": conv_w(2, 3), "w2": conv_w(2, 3, seed=4), **bn_params()},
    )
    _, after, res = apply(m, "fold_batchnorm")
    assert ops(after) == ["Conv", "Conv", "Concat", "BatchNormalization"]
    assert res.changed == 0 and any("Concat" in n for n in res.notes)


def test_bn_after_conv_with_fan_out_is_kept() -> None:
    # Near miss: the conv output is also read by the Add; folding BN into the conv would change
    # what the Add sees.
    m = model(
        [
            node("Conv", ["x", "w"], "c"),
            node("BatchNormalization", ["c", *BN_IN], "n"),
            node("Add", ["n", "c"], "y"),
        ],
        {"x": [1, 3, 6, 6]},
        ["y"],
        {"w": conv_w(C, 3), **bn_params()},
    )
    _, after, res = apply(m, "fold_batchnorm")
    assert ops(after) == ["Conv", "BatchNormalization", "Add"]
    assert res.changed == 0 and any("other readers" in n for n in res.notes)


def test_convtranspose_bn_folds_with_groups() -> None:
    """Issue 17 (DBNet heads): BN after a ConvTranspose scales the weights' axis 1 per group."""
    rng = np.random.default_rng(9)
    for group in (1, 2):
        w = (rng.standard_normal((4, 4 // group, 2, 2)) * 0.5).astype(np.float32)
        m = model(
            [
                node("ConvTranspose", ["x", "w", "b"], "c", strides=[2, 2], group=group),
                node("BatchNormalization", ["c", *BN_IN], "y"),
            ],
            {"x": [1, 4, 3, 3]},
            ["y"],
            {"w": w, "b": rand((C,), 3), **bn_params()},
        )
        before, after, res = apply(m, "fold_batchnorm")
        assert ops(after) == ["ConvTranspose"] and res.changed == 1
        x = rand((1, 4, 3, 3), 4)
        want = ort_run(m, {"x": x})["y"]
        got = run_float(after, {"x": x})["y"]
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
