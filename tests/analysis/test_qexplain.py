"""qexplain: the numbers of conv1's integer formula, recomputed from qshow --json."""

from __future__ import annotations

import json
import math

import numpy as np

from tests.conftest import CALIB_DIR, SAMPLE_MODEL

NORM = "x: (x/255 - 0.5)/0.5"


def _quantized(shell) -> None:  # noqa: ANN001
    for line in (
        f"open {SAMPLE_MODEL}",
        f'set input_norm_func "{NORM}"',
        "adjust",
        "fusions --scale8",
        f"aquant {CALIB_DIR}",
    ):
        ok, _, err = shell.run(line)
        assert ok, err


def test_qexplain_conv1_numbers_match_qshow(shell) -> None:  # noqa: ANN001
    _quantized(shell)
    ok, out, err = shell.run("qshow 0 --json")
    assert ok, err
    row = json.loads(out)["layers"][0]
    s_in, z_in = row["inputs"][0]["scale"], row["inputs"][0]["zero_point"]
    s_out, z_out = row["output"]["scale"], row["output"]["zero_point"]
    mm, nn = row["multiplier"]["M"], row["multiplier"]["N"]
    ok, out, err = shell.run("qexplain _conv1_Conv_fusion --json")
    assert ok, err
    ex = json.loads(out)["layers"][0]
    assert ex["step"] == 0 and ex["layer_index"] == 1
    assert ex["formula"] == "O0q = clip8(rnorm((B0q + Σ W0q·Iq) · M0, N0))"
    assert ex["input"]["scale"] == s_in and ex["input"]["zero_point"] == z_in
    assert ex["output"]["scale"] == s_out and ex["output"]["zero_point"] == z_out
    assert ex["input"]["producer"] == "graph input"
    chans = ex["channels"]
    assert [c["M"] for c in chans] == mm and [c["N"] for c in chans] == nn
    # the real multiplier from the qshow scales, and from the float weights independently
    w = shell.app.session.graph.tensors["conv1.weight"].const.astype(np.float64)
    sw = np.abs(w).reshape(w.shape[0], -1).max(1) / 127
    assert min(c["weight_scale"] for c in chans) == row["weights"]["scale_min"]
    assert max(c["weight_scale"] for c in chans) == row["weights"]["scale_max"]
    for c, m, n, swc in zip(chans, mm, nn, sw, strict=True):
        m_real = s_in * swc / s_out
        assert math.isclose(c["m_real"], m_real, rel_tol=1e-6)
        assert c["approx"] == m * 2.0**-n
        assert math.isclose(c["rel_err"], abs(m * 2.0**-n - m_real) / m_real, rel_tol=1e-5)
        assert c["rel_err"] < 2**-7  # an 8-bit multiplier: better than 1 part in 128
        # the bias offset: the output zero point pre-added at the accumulator scale (zI = 0)
        assert c["offset"] == math.floor(z_out * s_out / (s_in * c["weight_scale"]) + 0.5)
        assert c["bias_total"] == c["bias_q"] + c["offset"]
    # the text shows the same numbers
    ok, text, err = shell.run("qexplain 0")
    assert ok, err
    assert "O0q = clip8(rnorm((B0q + Σ W0q·Iq) · M0, N0))" in text
    assert f"sI = {s_in:.6g}, zI = {z_in}" in text and f"sO0 = {s_out:.6g}, zO0 = {z_out}" in text
    c0 = chans[0]
    assert f"≈ {mm[0]}·2^-{nn[0]} = {mm[0] * 2.0 ** -nn[0]:.6g}" in text
    assert f"(rel. error {c0['rel_err']:.2e})" in text
    assert f"B0q[0] = {c0['bias_total']}" in text
    for c in chans:
        assert f"{c['M']}  {c['N']}" in text


def test_qexplain_chain_names_the_producer(shell) -> None:  # noqa: ANN001
    _quantized(shell)
    ok, out, err = shell.run("qshow 0:1 --json")
    rows = json.loads(out)["layers"]
    ok, out, err = shell.run("qexplain 1 --json")
    assert ok, err
    ex = json.loads(out)["layers"][0]
    assert ex["input"]["producer"] == "_conv1_Conv_fusion (step 0)"
    assert ex["input"]["scale"] == rows[0]["output"]["scale"]  # sI(conv2) = sO(conv1)
    assert [e["name"] for e in ex["chain"]] == [
        "graph input",
        "_conv1_Conv_fusion",
        "_conv2_Conv_fusion",
    ]
    ok, text, _ = shell.run("qexplain 1")
    assert "sI of step 1 = sO of _conv1_Conv_fusion" in text
    assert "M_i·2^-N_i ≈ sO_(i−1)·sW_i[c]/sO_i" in text
    ok, _, err = shell.run("qexplain _nope")
    assert not ok and err.count("error:") == 1
