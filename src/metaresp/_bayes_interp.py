"""Interpolation and root finding on the Bayesian model's grids: a monotone cubic Hermite
interpolant of a CDF tabulated on equispaced nodes, and the bracketing-then-Illinois solver
that inverts such a CDF for quantiles (:mod:`metaresp.bayesquad` uses both).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:  # pragma: no cover
    from metaresp.bayesquad import Resolution

FloatArray = NDArray[np.float64]


def _hermite_table(big: FloatArray, small: FloatArray, h: FloatArray) -> FloatArray:
    """Per-interval cubic of a CDF on nodes x0 + j h: (..., M-1, 6).

    ``big``/``small``: the CDF and its density at the nodes. Columns: the four coefficients
    of the cubic Hermite interpolant in t = (x - x_j)/h (from its end values F_j, F_j+1 and
    slopes h f_j, h f_j+1), then the smaller and the larger end value.
    """
    hh = h[..., None]
    f0, f1 = big[..., :-1], big[..., 1:]
    d0, d1 = small[..., :-1] * hh, small[..., 1:] * hh
    out: FloatArray = np.stack(
        [
            f0,
            d0,
            3.0 * (f1 - f0) - 2.0 * d0 - d1,
            2.0 * (f0 - f1) + d0 + d1,
            np.minimum(f0, f1),
            np.maximum(f0, f1),
        ],
        axis=-1,
    )
    return out


def _hermite(x0: FloatArray, h: FloatArray, table: FloatArray, c: FloatArray) -> FloatArray:
    """Cubic Hermite interpolant of a CDF (see :func:`_hermite_table`) at ``c``.

    ``x0``/``h`` have the leading shape of ``table`` and ``c`` that shape plus (P,) (the
    leading shapes broadcast). Monotone: each value is clipped between its interval's end
    values; below the first node it is the first value, beyond the last the last one.
    """
    return _hermite_slope(x0, h, table, c, slope=False)[0]


def _hermite_slope(
    x0: FloatArray, h: FloatArray, table: FloatArray, c: FloatArray, slope: bool = True
) -> tuple[FloatArray, FloatArray]:
    """:func:`_hermite` and its derivative in ``c`` (0 where the value is clipped)."""
    hh = h[..., None]
    s = (c - x0[..., None]) / hh
    last = table.shape[-2] - 1
    j = np.minimum(np.maximum(np.floor(s), 0.0), float(last))
    t = np.minimum(np.maximum(s - j, 0.0), 1.0)
    lead = table.shape[:-2]
    base = (np.arange(math.prod(lead)) * (last + 1)).reshape((*lead, 1))
    g = table.reshape(-1, 6)[base + j.astype(np.intp)]
    a1, a2, a3 = g[..., 1], g[..., 2], g[..., 3]
    val = g[..., 0] + t * (a1 + t * (a2 + t * a3))
    lo, hi = g[..., 4], g[..., 5]
    out: FloatArray = np.minimum(np.maximum(val, lo), hi)
    if not slope:
        return out, out
    inside = (s > 0.0) & (s < last + 1.0) & (val > lo) & (val < hi)
    d: FloatArray = np.where(inside, (a1 + t * (2.0 * a2 + 3.0 * t * a3)) / hh, 0.0)
    return out, d


def _invert(
    cdf: Callable[[FloatArray], tuple[FloatArray, FloatArray]],
    lo: FloatArray,
    hi: FloatArray,
    probs: FloatArray,
    res: Resolution,
    centre: FloatArray | None = None,
    scale: FloatArray | None = None,
    points: FloatArray | None = None,
) -> FloatArray:
    """Solve cdf(c) = p per row for each p (rows of ``lo``/``hi``: the search range).

    ``cdf`` returns the CDF and its density. The root is bracketed on ``res.bracket_points``
    points (or on ``points``, (R, Q) ascending), then found by Newton steps kept inside the
    bracket (where one would leave it: regula falsi, or bisection when the previous step
    did not halve the bracket), at most ``res.solver_steps`` of them; each root
    stops moving once |cdf - p| ≤ 1e-13 or its bracket has closed, so a row's answer does
    not depend on the other rows. With ``centre``/``scale`` the bracketing points are
    spaced as centre + scale·sinh(u), u equispaced: fine near the centre, geometric far out
    (for very wide ranges).
    """
    u = np.linspace(0.0, 1.0, res.bracket_points)
    if points is not None:
        grid = points
    elif centre is None or scale is None:
        grid = lo[:, None] + (hi - lo)[:, None] * u
    else:
        ua = np.arcsinh((lo - centre) / scale)[:, None]
        ub = np.arcsinh((hi - centre) / scale)[:, None]
        grid = centre[:, None] + scale[:, None] * np.sinh(ua + (ub - ua) * u)
    vals, slopes = cdf(grid)
    vals = np.maximum.accumulate(vals, axis=1)
    idx = np.sum(vals[:, :, None] < probs[None, None, :], axis=1)
    idx = np.clip(idx, 1, grid.shape[1] - 1)
    a = np.take_along_axis(grid, idx - 1, axis=1)
    b = np.take_along_axis(grid, idx, axis=1)
    fa = np.take_along_axis(vals, idx - 1, axis=1) - probs
    fb = np.take_along_axis(vals, idx, axis=1) - probs
    # Start with a Newton step from the bracket's end nearer the root, if it stays inside.
    near_a = np.abs(fa) <= np.abs(fb)
    x0, f0 = np.where(near_a, a, b), np.where(near_a, fa, fb)
    d0 = np.where(
        near_a,
        np.take_along_axis(slopes, idx - 1, axis=1),
        np.take_along_axis(slopes, idx, axis=1),
    )
    width = np.abs(b - a)
    x = _newton_or_secant(x0, f0, d0, a, b, fa, fb, np.ones(x0.shape, dtype=bool))
    done = np.zeros(x.shape, dtype=bool)
    for _ in range(res.solver_steps):
        value, dens = cdf(x)
        r = value - probs
        done |= (np.abs(r) <= 1e-13) | (np.abs(b - a) <= 1e-13 * (1.0 + np.abs(x)))
        if np.all(done):
            break
        low = r < 0.0
        a, fa = np.where(low, x, a), np.where(low, r, fa)
        b, fb = np.where(low, b, x), np.where(low, fb, r)
        shrunk = np.abs(b - a) <= 0.5 * width
        width = np.abs(b - a)
        x = np.where(done, x, _newton_or_secant(x, r, dens, a, b, fa, fb, shrunk))
    return x


def _newton_or_secant(
    x: FloatArray,
    r: FloatArray,
    dens: FloatArray,
    a: FloatArray,
    b: FloatArray,
    fa: FloatArray,
    fb: FloatArray,
    secant: NDArray[np.bool_],
) -> FloatArray:
    """The Newton step from x (residual r, slope dens) if it lands inside the bracket, else
    the bracket's regula falsi point where ``secant``, else its middle."""
    ok = dens > 0.0
    step = np.where(ok, x - r / np.where(ok, dens, 1.0), np.nan)
    inside = (step > np.minimum(a, b)) & (step < np.maximum(a, b))
    other = np.where(secant, _secant(a, b, fa, fb), 0.5 * (a + b))
    out: FloatArray = np.where(inside, step, other)
    return out


def _secant(a: FloatArray, b: FloatArray, fa: FloatArray, fb: FloatArray) -> FloatArray:
    """The regula falsi point of the bracket [a, b] (values fa <= 0 <= fb), or its middle."""
    denom = fb - fa
    ok = denom > 0.0
    c = np.where(ok, a - fa * (b - a) / np.where(ok, denom, 1.0), 0.5 * (a + b))
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    inside = (c > lo) & (c < hi)
    out: FloatArray = np.where(inside, c, 0.5 * (a + b))
    return out


__all__ = ["_hermite", "_hermite_slope", "_hermite_table", "_invert"]
