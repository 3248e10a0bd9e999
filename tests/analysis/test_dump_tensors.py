"""dump -q / -d / -S / -s and tensors: list, show, compare."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tests.conftest import CALIB_DIR, SAMPLE_MODEL, TEST_DIR

NORM = "x: (x/255 - 0.5)/0.5"


def _quantized(shell) -> None:  # noqa: ANN001
    for line in (
        f"open {SAMPLE_MODEL}",
        f'set input_norm_func "{NORM}"',
        "fusions --scale8",
        f"aquant {CALIB_DIR}",
    ):
        ok, _, err = shell.run(line)
        assert ok, err


def test_dump_quantized_and_dequantized(shell, tmp_path: Path) -> None:  # noqa: ANN001
    _quantized(shell)
    img = sorted(TEST_DIR.glob("*.png"))[0]
    qf, df = tmp_path / "q.npz", tmp_path / "d.npz"
    ok, out, err = shell.run(f"dump {img} -q -S q -P {qf}")
    assert ok, err
    assert "stored 6 arrays as tensor set 'q'" in out
    ok, out, err = shell.run(f"dump {img} -d -P {df}")
    assert ok, err
    session = shell.app.session
    qs, g = session.qstate, session.graph
    with np.load(qf) as zq, np.load(df) as zd:
        q, d = dict(zq), dict(zd)
    assert set(q) == {n.name for n in g.nodes} | {"output"}
    for node in g.nodes:
        assert q[node.name].dtype == np.int8
        np.testing.assert_array_equal(
            d[node.name], qs.tensors[node.outputs[0]].dequantize(q[node.name])
        )
    np.testing.assert_array_equal(session.tensors["q"]["output"], q["output"])
    ok, out, err = shell.run(f"dump {img} -q -s 1")
    assert ok, err
    assert "quantized outputs" in out and "_conv2_Conv_fusion" in out
    assert "_conv1_Conv_fusion" not in out
    ok, out, err = shell.run(f"dump {img} -s -1 -S last")
    assert ok, err
    assert set(session.tensors["last"]) == {"_fc3_Gemm", "output"}


def test_tensors_list_show_compare(shell, tmp_path: Path) -> None:  # noqa: ANN001
    _quantized(shell)
    ok, out, _ = shell.run("tensors")
    assert ok and "no tensor sets" in out
    img = sorted(TEST_DIR.glob("*.png"))[3]
    for line in (f"dump {img} -S f", f"dump {img} -d -S d", f"dump {img} -q -S q"):
        ok, _, err = shell.run(line)
        assert ok, err
    ok, out, err = shell.run("tensors --json")
    assert ok, err
    sets = json.loads(out)["sets"]
    assert set(sets) == {"f", "d", "q"} and sets["f"]["tensors"] == 6
    ok, out, err = shell.run("tensors -t f d --json")
    assert ok, err
    doc = json.loads(out)
    store = shell.app.session.tensors
    for row in doc["tensors"]:
        ref = store["f"][row["name"]].astype(np.float64)
        other = store["d"][row["name"]].astype(np.float64)
        want = 10 * np.log10((ref**2).sum() / ((ref - other) ** 2).sum())
        assert abs(row["qsnr"] - want) < 1e-9
        cos = (ref * other).sum() / np.linalg.norm(ref) / np.linalg.norm(other)
        assert abs(row["cosine"] - cos) < 1e-12
        assert row["max_abs"] == np.abs(ref - other).max()
        assert row["qsnr"] > 25.0
    ok, out, _ = shell.run("tensors -t f d -Q --json")
    assert set(json.loads(out)["tensors"][0]) == {"name", "qsnr"}
    ok, out, _ = shell.run("tensors -t f d -E -s 0 -c 2")
    assert ok and "Max abs error" in out and "QSNR" not in out and "channel 2" in out
    ok, out, _ = shell.run("tensors -t f q")
    assert ok and "dump -d" in out  # integer codes vs real values: said so
    ok, out, _ = shell.run("tensors -t d -s _fc3_Gemm")
    assert ok and "_fc3_Gemm 10 float64" in out
    npy = tmp_path / "c.npy"
    ok, out, err = shell.run(f"tensors -t f -s 0 -c 1 --write_numpy {npy}")
    assert ok, err
    np.testing.assert_array_equal(np.load(npy), store["f"]["_conv1_Conv_fusion"][1])
    ok, _, err = shell.run("tensors -t nope")
    assert not ok and "no tensor set 'nope'" in err
