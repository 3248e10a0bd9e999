"""Tensor sets (``dump -S``, ``tensors``) through the library, without a shell: hand-computed
figures for a comparison, the channel slice, the A − B differences and the files written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nnshell.analysis import tensor_sets as ts
from nnshell.errors import UsageError


def _sets() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    a = {"conv": np.array([[1.0, 2.0], [3.0, 4.0]]), "fc": np.array([2.0, -2.0])}
    b = {"conv": np.array([[1.0, 2.0], [3.0, 3.0]]), "fc": np.array([2.0, -2.0])}
    return a, b


def test_compare_sets_hand_computed() -> None:
    a, b = _sets()
    cmp = ts.compare_sets(a, b, ["conv", "fc"], None)
    conv, fc = cmp.rows
    # conv: signal 1+4+9+16 = 30, noise 1 -> 10·log10(30) dB;
    # a·b = 1+4+9+12 = 26, |b|² = 23 -> cosine 26/sqrt(30·23)
    assert conv["qsnr"] == pytest.approx(10 * np.log10(30.0))
    assert conv["cosine"] == pytest.approx(26 / np.sqrt(30 * 23))
    assert conv["max_abs"] == 1.0 and fc["max_abs"] == 0.0 and fc["cosine"] == pytest.approx(1)
    np.testing.assert_array_equal(cmp.diffs["conv"], [[0.0, 0.0], [0.0, 1.0]])
    assert cmp.note is None


def test_channel_slice_and_its_errors() -> None:
    a, b = _sets()
    cmp = ts.compare_sets(a, b, ["conv"], 1)
    np.testing.assert_array_equal(cmp.diffs["conv"], [0.0, 1.0])
    with pytest.raises(UsageError, match="channel 2 out of range"):
        ts.pick(a["conv"], 2)
    with pytest.raises(UsageError, match="shapes differ"):
        ts.compare_sets(a, {"conv": np.zeros(3)}, ["conv"], None)


def test_integer_codes_against_real_values_get_a_note() -> None:
    a, _ = _sets()
    codes = {"conv": np.array([[1, 2], [3, 4]], np.int8)}
    assert "dump -d" in (ts.compare_sets(a, codes, ["conv"], None).note or "")


def test_lookup_and_keys() -> None:
    a, b = _sets()
    store = {"A": a, "B": b}
    assert ts.lookup(store, ["A", "B"]) == [a, b]
    with pytest.raises(UsageError, match="no tensor set 'C'"):
        ts.lookup(store, ["C"])
    with pytest.raises(UsageError, match="one set to show or two"):
        ts.lookup(store, ["A", "B", "A"])
    assert ts.select_keys(a, None, lambda: pytest.fail("no graph needed")) == ["conv", "fc"]
    assert ts.select_keys(a, "fc", lambda: pytest.fail("a tensor name needs no graph")) == ["fc"]
    assert ts.metrics_for(False, True, False) == ["cosine"]


def test_write_one_npy_or_several_npz(tmp_path: Path) -> None:
    a, _ = _sets()
    assert ts.write_arrays(str(tmp_path / "one.npy"), {"conv": a["conv"]}) == 1
    np.testing.assert_array_equal(np.load(tmp_path / "one.npy"), a["conv"])
    assert ts.write_arrays(str(tmp_path / "all.npz"), a) == 2
    with np.load(tmp_path / "all.npz") as z:
        assert sorted(z.files) == ["conv", "fc"]
        np.testing.assert_array_equal(z["fc"], a["fc"])
    stats = ts.tensor_stats(np.array([1, 3], np.int8))
    assert stats == {"min": 1.0, "max": 3.0, "mean": 2.0, "std": 1.0}
