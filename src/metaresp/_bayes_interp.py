"""Interpolation and root finding on the Bayesian model's grids: a monotone cubic Hermite
interpolant of a CDF tabulated on equispaced nodes, and the bracketing-then-Illinois solver
that inverts such a CDF for quantiles (:mod:`metaresp.bayesquad` uses both).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:  # pragma: no cover
    from metaresp.bayesquad import Resolution

FloatArray = NDArray[np.float64]


def _hermite_table(big: FloatArray, small: FloatArray, h: FloatArray) -> FloatArray:
    """Per-interval (F_j, F_j+1, h f_j, h f_j+1) of a CDF on nodes x0 + j h: (..., M-1, 4)."""
    hh = h[..., None]
    out: FloatArray = np.stack(
        [big[..., :-1], big[..., 1:], small[..., :-1] * hh, small[..., 1:] * hh], axis=-1
    )
    return out


def _hermite(x0: FloatArray, h: FloatArray, table: FloatArray, c: FloatArray) -> FloatArray:
    """Cubic Hermite interpolant of a CDF (see :func:`_hermite_table`) at ``c``.

    ``x0``/``h`` have the leading shape of ``table`` and ``c`` that shape plus (P,).
    Monotone: each value is clipped between its interval's end values.
    """
    s = (c - x0[..., None]) / h[..., None]
    j = np.clip(np.floor(s), 0, table.shape[-2] - 1).astype(np.intp)
    t = np.clip(s - j, 0.0, 1.0)
    g = np.take_along_axis(table, j[..., None], axis=-2)
    f0, f1, d0, d1 = g[..., 0], g[..., 1], g[..., 2], g[..., 3]
    t2 = t * t
    val = (
        f0 + t * d0 + t2 * (3.0 * (f1 - f0) - 2.0 * d0 - d1) + t2 * t * (2.0 * (f0 - f1) + d0 + d1)
    )
    out: FloatArray = np.clip(val, np.minimum(f0, f1), np.maximum(f0, f1))
    return out


def _invert(
    cdf: Callable[[FloatArray], FloatArray],
    lo: FloatArray,
    hi: FloatArray,
    probs: FloatArray,
    res: Resolution,
    centre: FloatArray | None = None,
    scale: FloatArray | None = None,
) -> FloatArray:
    """Solve cdf(c) = p per row for each p (rows of ``lo``/``hi``: the search range).

    With ``centre``/``scale`` the bracketing points are spaced as centre + scale·sinh(u),
    u equispaced: fine near the centre, geometric far out (for very wide ranges).
    """
    u = np.linspace(0.0, 1.0, res.bracket_points)
    if centre is None or scale is None:
        grid = lo[:, None] + (hi - lo)[:, None] * u
    else:
        ua = np.arcsinh((lo - centre) / scale)[:, None]
        ub = np.arcsinh((hi - centre) / scale)[:, None]
        grid = centre[:, None] + scale[:, None] * np.sinh(ua + (ub - ua) * u)
    vals = cdf(grid)
    vals = np.maximum.accumulate(vals, axis=1)
    idx = np.sum(vals[:, :, None] < probs[None, None, :], axis=1)
    idx = np.clip(idx, 1, res.bracket_points - 1)
    a = np.take_along_axis(grid, idx - 1, axis=1)
    b = np.take_along_axis(grid, idx, axis=1)
    fa = np.take_along_axis(vals, idx - 1, axis=1) - probs
    fb = np.take_along_axis(vals, idx, axis=1) - probs
    for _ in range(res.solver_steps):
        if np.all(np.abs(b - a) <= 1e-13 * (1.0 + np.abs(b))):
            break  # every bracket has closed: further steps cannot move b
        denom = fb - fa
        ok = np.abs(denom) > 0.0
        c = np.where(ok, b - fb * (b - a) / np.where(ok, denom, 1.0), 0.5 * (a + b))
        c = np.clip(c, np.minimum(a, b), np.maximum(a, b))
        fc = cdf(c) - probs
        # Illinois: keep a bracket; halve the retained end's value when it is kept again.
        swap = fc * fb < 0.0
        a, fa = np.where(swap, b, a), np.where(swap, fb, 0.5 * fa)
        b, fb = c, fc
    return b


__all__ = ["_hermite", "_hermite_table", "_invert"]
