"""Transformations of single proportions and their inverses (metafor ``escalc``).

Option names map once to metafor's measure codes:

=================  =======  =============================================  ===================
``transform``      metafor  ``yi``                                         ``vi``
=================  =======  =============================================  ===================
``logit``          PLO      log(p / (1 - p))                               1/x + 1/(n - x)
``log``            PLN      log(p)                                         1/x - 1/n
``raw``            PR       p                                              p (1 - p) / n
``arcsine``        PAS      asin(sqrt(p))                                  1 / (4 n)
``freeman-tukey``  PFT      (asin(sqrt(x/(n+1))) + asin(sqrt((x+1)/(n+1))))/2   1 / (4 n + 2)
=================  =======  =============================================  ===================

Continuity correction (metafor ``escalc`` defaults ``add=1/2, to="only0"``): for
``logit``, ``log`` and ``raw``, a study with 0 events or with all events gets 0.5 added
to its events and to its non-events (so 1 to its total) before ``yi`` *and* ``vi`` are
computed; other studies are untouched. ``arcsine`` and ``freeman-tukey`` are finite at 0
and 1 and get no correction (metafor sets ``add=0`` for PAS and PFT).

Back-transforms (metafor ``transf.*``): ``expit`` (logit), ``exp`` (log), identity (raw),
``sin(x)^2`` clipped to [0, 1] (``transf.iarcsin``) and Miller's (1978) inversion of the
double arcsine with the harmonic mean of the totals (``transf.ipft.hm``; Miller JR, The
inverse of the Freeman-Tukey double arcsine transformation, Am Stat 1978;32:138).
"""

from __future__ import annotations

import math
from typing import Final, Literal

import numpy as np
from numpy.typing import NDArray

Transform = Literal["logit", "freeman-tukey", "arcsine", "raw", "log"]

#: Our option name -> metafor ``escalc`` measure code.
METAFOR_MEASURE: Final[dict[str, str]] = {
    "logit": "PLO",
    "freeman-tukey": "PFT",
    "arcsine": "PAS",
    "raw": "PR",
    "log": "PLN",
}

TRANSFORMS: Final[tuple[str, ...]] = tuple(METAFOR_MEASURE)

#: Value added to events and non-events of 0/n and n/n studies (metafor ``add=1/2``).
CONTINUITY_CORRECTION: Final[float] = 0.5

#: Transforms that receive the continuity correction (metafor: all but PAS and PFT).
CORRECTED_TRANSFORMS: Final[frozenset[str]] = frozenset({"logit", "log", "raw"})

FloatArray = NDArray[np.float64]


def needs_correction(events: NDArray[np.int64], totals: NDArray[np.int64]) -> NDArray[np.bool_]:
    """Studies with 0 events or with all events (metafor ``to="only0"``)."""
    flags: NDArray[np.bool_] = (events == 0) | (events == totals)
    return flags


def effect_sizes(
    transform: str, events: NDArray[np.int64], totals: NDArray[np.int64]
) -> tuple[FloatArray, FloatArray]:
    """Transformed proportions ``yi`` and their sampling variances ``vi``.

    Exactly metafor 3.8 ``escalc(measure, xi=events, ni=totals)`` with its defaults
    (``add=1/2, to="only0", vtype="LS"``); see the module docstring for the formulas.
    """
    x = events.astype(np.float64)
    n = totals.astype(np.float64)
    if transform in CORRECTED_TRANSFORMS:
        add = np.where(needs_correction(events, totals), CONTINUITY_CORRECTION, 0.0)
        x = x + add
        n = n + 2.0 * add
    if transform == "logit":
        m = n - x
        return np.log(x / m), 1.0 / x + 1.0 / m
    if transform == "log":
        return np.log(x / n), 1.0 / x - 1.0 / n
    if transform == "raw":
        p = x / n
        return p, p * (1.0 - p) / n
    if transform == "arcsine":
        return np.arcsin(np.sqrt(x / n)), 1.0 / (4.0 * n)
    if transform == "freeman-tukey":
        yi = 0.5 * (np.arcsin(np.sqrt(x / (n + 1.0))) + np.arcsin(np.sqrt((x + 1.0) / (n + 1.0))))
        return yi, 1.0 / (4.0 * n + 2.0)
    raise ValueError(f"transform must be one of {', '.join(TRANSFORMS)}; got {transform!r}")


def harmonic_mean(totals: NDArray[np.int64]) -> float:
    """Harmonic mean of the totals, the ``n`` of ``transf.ipft.hm``."""
    return float(1.0 / np.mean(1.0 / totals.astype(np.float64)))


def _pft_of(p: float, n: float) -> float:
    """Freeman-Tukey transform of a proportion ``p`` at total ``n`` (metafor ``transf.pft``)."""
    xn = p * n
    lower = math.asin(math.sqrt(xn / (n + 1.0)))
    return 0.5 * (lower + math.asin(math.sqrt((xn + 1.0) / (n + 1.0))))


def _ipft(t: float, n: float) -> float:
    """Miller's (1978) inverse of the double arcsine at total ``n`` (``transf.ipft``).

    p = (1 - sgn(cos 2t) sqrt(1 - (sin 2t + (sin 2t - 1/sin 2t)/n)^2)) / 2, set to 0 below
    the transform of p=0 and to 1 above the transform of p=1, as metafor does. Returns NaN
    where metafor returns NA (a negative radicand inside the admissible range).
    """
    if t > _pft_of(1.0, n):
        return 1.0
    if t < _pft_of(0.0, n):
        return 0.0
    s = math.sin(2.0 * t)
    c = math.cos(2.0 * t)
    if s == 0.0:
        return math.nan
    inner = 1.0 - (s + (s - 1.0 / s) / n) ** 2
    if inner < 0.0:
        return math.nan
    sign = 1.0 if c > 0 else (-1.0 if c < 0 else 0.0)
    return 0.5 * (1.0 - sign * math.sqrt(inner))


def back_transform(transform: str, value: float, n_hm: float) -> tuple[float, bool]:
    """One value from the transformed scale to a proportion in [0, 1].

    Returns ``(proportion, clipped)``: ``clipped`` is True when the untouched inverse fell
    outside [0, 1] (possible for ``raw``, ``log`` and ``arcsine`` bounds, and for
    Freeman-Tukey values beyond the transform of 0 or 1) and the result was set to the
    nearest of 0 and 1. ``n_hm`` is the harmonic mean of the totals (Freeman-Tukey only).
    """
    if math.isnan(value):
        return math.nan, False
    if transform == "logit":
        # expit, written to avoid overflow for large |value|
        if value >= 0:
            return 1.0 / (1.0 + math.exp(-value)), False
        ev = math.exp(value)
        return ev / (1.0 + ev), False
    if transform == "log":
        p = math.exp(value) if value < 700 else math.inf
    elif transform == "raw":
        p = value
    elif transform == "arcsine":
        if value < 0.0:
            return 0.0, True
        if value > math.pi / 2:
            return 1.0, True
        return math.sin(value) ** 2, False
    elif transform == "freeman-tukey":
        p = _ipft(value, n_hm)
        clipped = value > _pft_of(1.0, n_hm) or value < _pft_of(0.0, n_hm)
        return p, clipped
    else:
        raise ValueError(f"transform must be one of {', '.join(TRANSFORMS)}; got {transform!r}")
    if p < 0.0:
        return 0.0, True
    if p > 1.0:
        return 1.0, True
    return p, False
