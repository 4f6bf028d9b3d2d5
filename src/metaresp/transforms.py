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
from numpy.typing import ArrayLike, NDArray
from scipy import special

from metaresp.models import TRANSFORMS as _REGISTRY

__all__ = [
    "CONTINUITY_CORRECTION",
    "TRANSFORMS",
    "back_transform",
    "back_transform_array",
    "effect_sizes",
    "harmonic_mean",
    "needs_correction",
]

Transform = Literal["logit", "freeman-tukey", "arcsine", "raw", "log"]

#: Our option name -> metafor ``escalc`` measure code (from the registry).
METAFOR_MEASURE: Final[dict[str, str]] = {name: t.metafor for name, t in _REGISTRY.items()}

TRANSFORMS: Final[tuple[str, ...]] = tuple(_REGISTRY)

#: Value added to events and non-events of 0/n and n/n studies (metafor ``add=1/2``).
CONTINUITY_CORRECTION: Final[float] = 0.5

#: Transforms that receive the continuity correction (metafor: all but PAS and PFT).
CORRECTED_TRANSFORMS: Final[frozenset[str]] = frozenset(
    name for name, t in _REGISTRY.items() if t.corrected
)

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


def _pft(p: FloatArray, n: FloatArray) -> FloatArray:
    """Freeman-Tukey transform of a proportion ``p`` at total ``n`` (metafor ``transf.pft``)."""
    xn = p * n
    out: FloatArray = 0.5 * (
        np.arcsin(np.sqrt(xn / (n + 1.0))) + np.arcsin(np.sqrt((xn + 1.0) / (n + 1.0)))
    )
    return out


def _ipft(t: FloatArray, n: FloatArray) -> tuple[FloatArray, NDArray[np.bool_]]:
    """Miller's (1978) inverse of the double arcsine at total ``n`` (``transf.ipft``).

    p = (1 - sgn(cos 2t) sqrt(1 - (sin 2t + (sin 2t - 1/sin 2t)/n)^2)) / 2, set to 0 below
    the transform of p=0 and to 1 above the transform of p=1, as metafor does (those are
    reported as clipped). NaN where metafor returns NA (a negative radicand inside the
    admissible range).
    """
    s = np.sin(2.0 * t)
    c = np.cos(2.0 * t)
    with np.errstate(divide="ignore", invalid="ignore"):
        inner = 1.0 - (s + (s - 1.0 / s) / n) ** 2
        p = 0.5 * (1.0 - np.sign(c) * np.sqrt(inner))
    p = np.where((s == 0.0) | (inner < 0.0), np.nan, p)
    above = t > _pft(np.ones_like(n), n)
    below = t < _pft(np.zeros_like(n), n)
    p = np.where(above, 1.0, np.where(below, 0.0, p))
    return p, above | below


def back_transform_array(
    transform: str, values: ArrayLike, n_hm: ArrayLike = math.nan
) -> tuple[FloatArray, NDArray[np.bool_]]:
    """Values on the transformed scale to proportions in [0, 1], elementwise.

    Returns ``(proportions, clipped)``: ``clipped`` is True where the untouched inverse fell
    outside [0, 1] (possible for ``raw``, ``log`` and ``arcsine`` bounds, and for
    Freeman-Tukey values beyond the transform of 0 or 1) and the result was set to the
    nearest of 0 and 1. ``n_hm`` is the harmonic mean of the totals (Freeman-Tukey only; it
    broadcasts against ``values``). NaN in, NaN out (not clipped).
    """
    v = np.asarray(values, dtype=np.float64)
    if transform == "logit":
        return special.expit(v), np.zeros(v.shape, dtype=bool)
    if transform == "freeman-tukey":
        n = np.broadcast_to(np.asarray(n_hm, dtype=np.float64), v.shape)
        p, clipped = _ipft(v, n)
        nan = np.isnan(v)
        return np.where(nan, np.nan, p), clipped & ~nan
    if transform == "log":
        with np.errstate(over="ignore"):
            p = np.exp(v)
    elif transform == "raw":
        p = v.copy()
    elif transform == "arcsine":
        p = np.where(v < 0.0, -1.0, np.where(v > math.pi / 2, 2.0, np.sin(v) ** 2))
    else:
        raise ValueError(f"transform must be one of {', '.join(TRANSFORMS)}; got {transform!r}")
    clipped = (p < 0.0) | (p > 1.0)
    return np.clip(p, 0.0, 1.0), clipped


def back_transform(transform: str, value: float, n_hm: float) -> tuple[float, bool]:
    """One value from the transformed scale to a proportion (see :func:`back_transform_array`)."""
    p, clipped = back_transform_array(transform, value, n_hm)
    return float(p), bool(clipped)
