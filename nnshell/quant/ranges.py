"""Choosing the quantization range of a tensor from its calibration statistics.

All methods work on the streaming statistics (min, max and the ``|x|`` histogram), so changing
method never re-reads images:

- ``minmax``: the absolute min and max over every calibration input (NNTool's default);
- ``percentile:P``: clip ``|x|`` at the P-th percentile of its histogram (e.g. 99.99);
- ``mse``: the clip ``c`` minimising the expected 8-bit quantization error of the histogram,
  ``Σ_{|x|>c} (|x| - c)² + Σ_{|x|<=c} Δ²/12`` with ``Δ = 2c/255``;
- ``kl``: the clip minimising the KL divergence between the histogram and its quantized version
  (128 levels of ``|x|``, or 255 for a non-negative tensor; the entropy method of TensorRT-style
  calibrators), with the first bin (exact zeros of ReLU outputs) left out.
A clip never widens the observed range: the result is ``[max(min, -c), min(max, c)]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nnshell.errors import UsageError
from nnshell.quant.stats import TensorStats

MODES = ("minmax", "percentile", "mse", "kl")


@dataclass(frozen=True)
class RangeMode:
    """A parsed ``--mode`` value."""

    name: str
    percentile: float = 99.99

    def __str__(self) -> str:
        return f"percentile:{self.percentile:g}" if self.name == "percentile" else self.name


def parse_mode(text: str) -> RangeMode:
    """Parse ``minmax``, ``percentile:P``, ``mse`` or ``kl``."""
    name, _, arg = text.partition(":")
    if name not in MODES:
        raise UsageError(f"--mode '{text}' is not one of minmax, percentile:P, mse, kl")
    if name == "percentile":
        try:
            p = float(arg) if arg else 99.99
        except ValueError:
            raise UsageError(
                f"--mode '{text}': P must be a number, e.g. percentile:99.99"
            ) from None
        if not 50.0 < p <= 100.0:
            raise UsageError(f"--mode '{text}': P must be in (50, 100]")
        return RangeMode(name, p)
    if arg:
        raise UsageError(f"--mode '{text}': {name} takes no argument")
    return RangeMode(name)


def _centres(st: TensorStats) -> np.ndarray:
    n = st.hist.size
    return (np.arange(n) + 0.5) * (st.hist_range / n)


def _percentile_clip(st: TensorStats, p: float) -> float:
    cum = np.cumsum(st.hist)
    k = int(np.searchsorted(cum, cum[-1] * p / 100.0))
    return (k + 1) * st.hist_range / st.hist.size


def _mse_clip(st: TensorStats) -> float:
    x, h = _centres(st), st.hist.astype(np.float64)
    best, best_c = np.inf, st.hist_range
    for c in np.linspace(st.hist_range / 64, st.hist_range, 128):
        over = x > c
        clip_err = float(np.sum(h[over] * (x[over] - c) ** 2))
        delta = 2 * c / 255
        err = clip_err + float(h[~over].sum()) * delta * delta / 12
        if err < best:
            best, best_c = err, c
    return float(best_c)


def _kl_clip(st: TensorStats) -> float:
    # A non-negative tensor (ReLU output) gets all 255 asymmetric levels over [0, c]; exact
    # zeros are left out of both distributions, or their spike would pull the clip down.
    levels = 255 if st.min >= 0.0 else 128
    h = st.hist.astype(np.float64)
    h[0] = 0.0
    n = h.size
    best, best_k = np.inf, n
    for k in range(levels, n + 1, max(1, (n - levels) // 96)):
        ref = h[:k].copy()
        ref[k - 1] += h[k:].sum()
        if ref.sum() == 0:
            continue
        chunks = np.array_split(np.arange(k), levels)
        q = np.zeros(k)
        for idx in chunks:
            nz = h[idx] > 0
            if nz.any():
                q[idx[nz]] = h[idx].sum() / nz.sum()
        p_ = ref / ref.sum()
        q_ = q / q.sum() if q.sum() else q
        mask = p_ > 0
        kl = float(np.sum(p_[mask] * np.log(p_[mask] / np.maximum(q_[mask], 1e-12))))
        if kl < best:
            best, best_k = kl, k
    return best_k * st.hist_range / n


def choose_range(st: TensorStats, mode: RangeMode) -> tuple[float, float]:
    """Return the (lo, hi) range ``mode`` selects for a tensor."""
    lo, hi = st.min, st.max
    if mode.name == "minmax" or st.hist_range == 0.0 or st.count == 0:
        return lo, hi
    if mode.name == "percentile":
        c = _percentile_clip(st, mode.percentile)
    elif mode.name == "mse":
        c = _mse_clip(st)
    else:
        c = _kl_clip(st)
    return max(lo, -c), min(hi, c)
