"""Paired statistics of a drop measured on the same images (nnshell.analysis.paired).

Reference values: the exact binomial tails by hand, Agresti's presidential-approval table for
the Wald interval (Categorical Data Analysis, 10.1: 794, 150, 86, 570 gives 0.021..0.059) and
Newcombe's square-and-add interval of the table 59, 6, 16, 80 (-0.1186..-0.0046, the value
the R package contingencytables tests).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from nnshell.analysis.paired import (
    PairedComparison,
    binom_cdf_half,
    compare_predictions,
    mcnemar_exact,
    newcombe_paired_interval,
    wald_paired_interval,
    wilson_interval,
)


def test_binomial_tail_by_hand() -> None:
    assert binom_cdf_half(0, 4) == pytest.approx(1 / 16)
    assert binom_cdf_half(1, 4) == pytest.approx(5 / 16)
    assert binom_cdf_half(2, 4) == pytest.approx(11 / 16)
    assert binom_cdf_half(-1, 4) == 0.0 and binom_cdf_half(4, 4) == 1.0


def test_mcnemar_exact() -> None:
    assert mcnemar_exact(2, 2) == 1.0  # 2 * 11/16 capped at 1
    assert mcnemar_exact(4, 0) == pytest.approx(2 / 16)  # all four discordant one way
    assert mcnemar_exact(3, 0) == pytest.approx(2 / 8)
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(10, 0) == pytest.approx(2 / 1024)
    assert mcnemar_exact(1, 9) == mcnemar_exact(9, 1) == pytest.approx(2 * 11 / 1024)
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 2)


def test_wald_interval_agresti_example() -> None:
    lo, hi = wald_paired_interval(150, 86, 1600)
    assert (round(lo, 3), round(hi, 3)) == (0.021, 0.059)
    # two discordant each way on 540 images: +-1.96 * 2 / 540
    lo, hi = wald_paired_interval(2, 2, 540)
    assert hi == pytest.approx(1.959964 * 2 / 540, rel=1e-5) and lo == pytest.approx(-hi)


def test_wilson_and_newcombe_reference_values() -> None:
    lo, hi = wilson_interval(0, 10)
    assert lo == pytest.approx(0.0, abs=1e-12) and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = newcombe_paired_interval(59, 6, 16, 80)
    assert (round(lo, 4), round(hi, 4)) == (-0.1186, -0.0046)


def test_comparison_from_predictions() -> None:
    labels = np.array([0, 1, 2, 3, 4, 5])
    first = np.array([0, 1, 2, 3, 9, 9])  # 4 right
    second = np.array([0, 1, 9, 3, 4, 9])  # 4 right: one broken (2), one fixed (4)
    pc = compare_predictions(labels, first, second)
    assert (pc.both_right, pc.broken, pc.fixed, pc.both_wrong) == (3, 1, 1, 1)
    assert pc.diff == 0.0 and pc.discordant == 2 and pc.p_value == 1.0
    doc = pc.to_dict()
    assert doc["wald_interval"][0] == pytest.approx(-doc["wald_interval"][1])
    assert math.isclose(sum(doc[k] for k in ("both_right", "broken", "fixed", "both_wrong")), 6)
    with pytest.raises(ValueError):
        compare_predictions(labels, first, second[:3])


def test_newcombe_is_wider_than_wald_with_few_discordant_pairs() -> None:
    pc = PairedComparison(540, 528, 2, 2, 8)
    assert pc.newcombe[1] > pc.wald[1] > 0
