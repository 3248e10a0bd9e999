"""Paired comparison of two classifiers scored on the same labelled images.

An accuracy drop (float against quantized, one calibration against another) is measured on the
*same* images, so the two accuracies are strongly correlated: only the images on which the two
disagree about correctness carry information. The standard error of one accuracy
(``sqrt(p(1-p)/n)``) therefore overstates the noise of a difference; these functions use the
paired view instead:

- ``b``: images the first classifier gets right and the second wrong ("broken"),
- ``c``: images the first gets wrong and the second right ("fixed"),
- :func:`mcnemar_exact`: the exact two-sided McNemar test, a binomial test of ``b`` among the
  ``b + c`` discordant images with probability 1/2 (no chi-square approximation, which is wrong
  for a handful of discordant pairs);
- :func:`wald_paired_interval` and :func:`newcombe_paired_interval`: confidence intervals on the
  difference of the two accuracies, ``(b - c) / n``.

Pure Python (``math`` only): no scipy at run time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np


def binom_cdf_half(k: int, n: int) -> float:
    """``P(X <= k)`` for ``X ~ Binomial(n, 1/2)``, exact (integer binomial coefficients)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    return math.fsum(math.comb(n, i) for i in range(k + 1)) / 2.0**n


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for ``b`` and ``c`` discordant pairs.

    Under the null hypothesis (both classifiers equally accurate) each discordant image is as
    likely to favour one as the other, so ``b ~ Binomial(b + c, 1/2)``; the two-sided p-value
    doubles the smaller tail and is capped at 1. With no discordant pair nothing differs: 1.
    """
    if b < 0 or c < 0:
        raise ValueError("discordant counts must be non-negative")
    n = b + c
    if n == 0:
        return 1.0
    return min(1.0, 2.0 * binom_cdf_half(min(b, c), n))


def _z(confidence: float) -> float:
    """The two-sided normal quantile of ``confidence`` (1.95996... for 0.95)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must lie strictly between 0 and 1")
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def wald_paired_interval(b: int, c: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wald interval on ``(b - c) / n``, the difference of two paired proportions.

    ``Var = ((b + c) - (b - c)^2 / n) / n^2`` (Agresti, *Categorical Data Analysis*, 10.1):
    the variance of a difference of correlated proportions, which only the discordant pairs
    feed. Simple and symmetric; its coverage is poor when ``b + c`` is tiny (with none it
    collapses to a point), see :func:`newcombe_paired_interval`.
    """
    if n <= 0:
        raise ValueError("n must be positive")
    d = (b - c) / n
    var = max(0.0, ((b + c) - (b - c) ** 2 / n)) / n**2
    half = _z(confidence) * math.sqrt(var)
    return d - half, d + half


def wilson_interval(x: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of one proportion ``x / n``."""
    if n <= 0:
        raise ValueError("n must be positive")
    z = _z(confidence)
    p = x / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    den = 1 + z * z / n
    return (centre - half) / den, (centre + half) / den


def newcombe_paired_interval(
    a: int, b: int, c: int, d: int, confidence: float = 0.95
) -> tuple[float, float]:
    """Newcombe's square-and-add interval on ``p1 - p2`` for a paired 2x2 table.

    ``a``: both right, ``b``: first right only, ``c``: second right only, ``d``: both wrong;
    ``p1 = (a + b) / n``, ``p2 = (a + c) / n``. Newcombe (Stat. Med. 1998, method 10) combines
    the Wilson intervals of ``p1`` and ``p2`` with the continuity-corrected correlation ``phi``
    of the table; it keeps its coverage with few discordant pairs, where the Wald interval does
    not.
    """
    n = a + b + c + d
    if n <= 0:
        raise ValueError("the table is empty")
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson_interval(a + b, n, confidence)
    l2, u2 = wilson_interval(a + c, n, confidence)
    margins = (a + b) * (c + d) * (a + c) * (b + d)
    phi = 0.0
    if margins > 0:
        cross = a * d - b * c
        if cross > n / 2:
            phi = (cross - n / 2) / math.sqrt(margins)
        elif cross < 0:
            phi = cross / math.sqrt(margins)
    diff = p1 - p2
    lo = diff - math.sqrt(
        max(0.0, (p1 - l1) ** 2 + (u2 - p2) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2))
    )
    hi = diff + math.sqrt(
        max(0.0, (p2 - l2) ** 2 + (u1 - p1) ** 2 - 2 * phi * (p2 - l2) * (u1 - p1))
    )
    return lo, hi


@dataclass(frozen=True)
class PairedComparison:
    """Two classifiers on the same ``n`` labelled images: the paired 2x2 table and its tests.

    The difference is ``acc_first - acc_second`` (for float against quantized: the drop).
    """

    n: int
    both_right: int
    broken: int  # first right, second wrong
    fixed: int  # first wrong, second right
    both_wrong: int
    confidence: float = 0.95

    @property
    def diff(self) -> float:
        """``acc_first - acc_second``."""
        return (self.broken - self.fixed) / self.n

    @property
    def discordant(self) -> int:
        """Images on which exactly one of the two is right: all the information on the diff."""
        return self.broken + self.fixed

    @property
    def p_value(self) -> float:
        """Exact two-sided McNemar p-value."""
        return mcnemar_exact(self.broken, self.fixed)

    @property
    def wald(self) -> tuple[float, float]:
        """Wald interval on :attr:`diff`."""
        return wald_paired_interval(self.broken, self.fixed, self.n, self.confidence)

    @property
    def newcombe(self) -> tuple[float, float]:
        """Newcombe's square-and-add interval on :attr:`diff`."""
        return newcombe_paired_interval(
            self.both_right, self.broken, self.fixed, self.both_wrong, self.confidence
        )

    def to_dict(self) -> dict[str, float | int]:
        """JSON-ready figures."""
        return {
            "images": self.n,
            "both_right": self.both_right,
            "broken": self.broken,
            "fixed": self.fixed,
            "both_wrong": self.both_wrong,
            "diff": self.diff,
            "mcnemar_exact_p": self.p_value,
            "confidence": self.confidence,
            "wald_interval": list(self.wald),
            "newcombe_interval": list(self.newcombe),
        }


def compare_predictions(
    labels: np.ndarray, first: np.ndarray, second: np.ndarray, confidence: float = 0.95
) -> PairedComparison:
    """The paired table of two prediction vectors against the same labels."""
    labels, first, second = (np.asarray(v).reshape(-1) for v in (labels, first, second))
    if not labels.size or not labels.shape == first.shape == second.shape:
        raise ValueError("labels and both predictions must be non-empty and of the same length")
    r1, r2 = first == labels, second == labels
    return PairedComparison(
        n=int(labels.size),
        both_right=int((r1 & r2).sum()),
        broken=int((r1 & ~r2).sum()),
        fixed=int((~r1 & r2).sum()),
        both_wrong=int((~r1 & ~r2).sum()),
        confidence=confidence,
    )
