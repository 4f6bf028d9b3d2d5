"""Interval arithmetic shared by every model: critical values, the Hartung-Knapp scale
factor, prediction intervals and exact per-study intervals. Arrays broadcast; a single
dataset is one row.

* ``ci="z"``: μ̂ ± z·SE; ``ci="t"``: μ̂ ± t_{k-1}·SE;
* ``ci="hksj"`` (Hartung & Knapp 2001; Sidik & Jonkman 2002; metafor ``test="knha"``): SE
  multiplied by sqrt(s²), s² = Σ w (yi - μ̂)²/(k-1) (0 when that sum is at most machine
  epsilon), with t_{k-1}; ``ci="hksj-adhoc"`` (Knapp & Hartung 2003; Röver, Knapp & Friede
  2015; metafor ``test="adhoc"``): s² floored at 1;
* prediction interval μ̂ ± t_{k-2}·sqrt(τ̂² + SE²) with the SE the CI uses (Higgins,
  Thompson & Spiegelhalter 2009, J R Stat Soc A 172:137), undefined for k < 3;
* per-study intervals: exact Clopper-Pearson, the beta quantiles B(α/2; x, n-x+1) and
  B(1-α/2; x+1, n-x) (Clopper & Pearson 1934, Biometrika 26:404).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Final

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

__all__ = ["clopper_pearson", "critical", "hksj_scale", "uses_scale"]

FloatArray = NDArray[np.float64]
_EPS: Final[float] = float(np.finfo(np.float64).eps)


@lru_cache(maxsize=256)
def critical(level: float, df: int | None) -> float:
    """Two-sided critical value at ``level``: normal for ``df=None``, else t with ``df``
    (cached: a fit asks for the same few values again and again)."""
    if df is None:
        return float(-special.ndtri((1.0 - level) / 2.0))
    return float(special.stdtrit(df, 1.0 - (1.0 - level) / 2.0))


def uses_scale(ci: str) -> bool:
    """True for the Hartung-Knapp intervals, whose SE carries the scale factor."""
    return ci in ("hksj", "hksj-adhoc")


def hksj_scale(yi: FloatArray, w: FloatArray, mu: FloatArray, ci: str) -> FloatArray:
    """The Hartung-Knapp scale factor s² per row (1 for ``z`` and ``t``).

    ``yi``, ``w``: (R, k) estimates and random-effects weights; ``mu``: (R,) pooled values.
    """
    if not uses_scale(ci):
        return np.ones(yi.shape[0])
    k = yi.shape[1]
    rss = (w * (yi - mu[:, None]) ** 2).sum(axis=1)
    s2: FloatArray = np.where(rss <= _EPS, 0.0, rss / (k - 1))
    if ci == "hksj-adhoc":
        s2 = np.maximum(1.0, s2)
    return s2


def clopper_pearson(
    events: ArrayLike, totals: ArrayLike, level: float = 0.95
) -> tuple[FloatArray, FloatArray]:
    """Exact (Clopper-Pearson) interval for each ``events/totals``, elementwise."""
    x = np.asarray(events, dtype=np.float64)
    n = np.asarray(totals, dtype=np.float64)
    alpha = 1.0 - level
    with np.errstate(invalid="ignore", divide="ignore"):
        low = np.where(x > 0, special.betaincinv(x, n - x + 1.0, alpha / 2.0), 0.0)
        high = np.where(x < n, special.betaincinv(x + 1.0, n - x, 1.0 - alpha / 2.0), 1.0)
    return np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
