"""R's ``uniroot`` (Brent's method), step for step, for many functions at once.

metafor finds the Paule-Mandel estimate and the Q-profile bounds of τ² with ``uniroot(tol =
eps^0.25)``; :func:`brent_roots` repeats that search so that our values are metafor's, on
every row of a batch at once (and row by row in Python floats when there are few rows).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import numpy as np
from numpy.typing import NDArray

__all__ = ["METAFOR_TOL", "brent_roots"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
_EPS: Final[float] = float(np.finfo(np.float64).eps)
#: metafor's tolerance for uniroot (``.Machine$double.eps^0.25``).
METAFOR_TOL: Final[float] = float(np.finfo(np.float64).eps ** 0.25)


def _brent_one(
    f: Callable[[float], float],
    a: float,
    b: float,
    fa: float,
    fb: float,
    tol: float,
    maxiter: int,
) -> float:
    """One row of :func:`brent_roots` in Python floats: the same steps, without NumPy's
    per-call cost on one-element arrays (a single fit spends most of its time here
    otherwise). ``tests/test_estimators_rows.py`` checks that both give the same roots."""
    c, fc = a, fa
    if fa == 0.0:
        return a
    if fb == 0.0:
        return b
    for _ in range(maxiter + 1):
        prev_step = b - a
        if abs(fc) < abs(fb):
            a, b, c = b, c, b
            fa, fb, fc = fb, fc, fb
        tol_act = 2.0 * _EPS * abs(b) + tol / 2.0
        new_step = (c - b) / 2.0
        if abs(new_step) <= tol_act or fb == 0.0:
            return b
        if abs(prev_step) >= tol_act and abs(fa) > abs(fb):
            cb = c - b
            if a == c:
                t1 = fb / fa
                p = cb * t1
                q = 1.0 - t1
            else:
                q = fa / fc
                t1 = fb / fc
                t2 = fb / fa
                p = t2 * (cb * q * (q - t1) - (b - a) * (t1 - 1.0))
                q = (q - 1.0) * (t1 - 1.0) * (t2 - 1.0)
            if p > 0.0:
                q = -q
            else:
                p = -p
            if p < 0.75 * cb * q - abs(tol_act * q) / 2.0 and p < abs(prev_step * q / 2.0):
                new_step = p / q
        if abs(new_step) < tol_act:
            new_step = tol_act if new_step > 0.0 else -tol_act
        a, fa = b, fb
        b += new_step
        fb = f(b)
        if (fb > 0.0 and fc > 0.0) or (fb < 0.0 and fc < 0.0):
            c, fc = a, fa
    return b


def _row_of(f: Callable[[IntArray, FloatArray], FloatArray], i: int) -> Callable[[float], float]:
    idx = np.array([i])

    def f_row(x: float) -> float:
        return float(f(idx, np.array([x]))[0])

    return f_row


#: Up to this many rows, :func:`brent_roots` runs row by row in Python floats.
_SCALAR_ROWS: Final[int] = 4


def brent_roots(
    f: Callable[[IntArray, FloatArray], FloatArray],
    a: FloatArray,
    b: FloatArray,
    fa: FloatArray,
    fb: FloatArray,
    tol: float = METAFOR_TOL,
    maxiter: int = 1000,
    row_function: Callable[[int], Callable[[float], float]] | None = None,
) -> FloatArray:
    """Brent's (1973) root finder on every row at once, step for step as R's ``uniroot``.

    ``f(rows, x)`` evaluates the function of the given rows at ``x``. metafor finds the PM
    estimate and the Q-profile bounds with ``uniroot(tol = eps^0.25)``, an *absolute*
    tolerance of about 1.2e-4 on τ²; on scales where τ² is small (raw, arcsine) its answer
    can differ from the exact root by a few percent, so the same search is repeated here
    (bisection, secant and inverse quadratic interpolation as in Brent, Algorithms for
    Minimization without Derivatives, 1973, ch. 4) to give metafor's value. Rows advance
    together; each row follows its own sequence of steps and stops by its own test. With
    few rows, each is solved in Python floats (``row_function(i)`` gives row i's function
    of a float, if the caller has a faster one than ``f``).
    """
    a, b, fa, fb = (np.array(v, dtype=np.float64) for v in (a, b, fa, fb))
    if a.size <= _SCALAR_ROWS:
        out_rows = []
        for i in range(a.size):
            f_row = row_function(i) if row_function is not None else _row_of(f, i)
            out_rows.append(
                _brent_one(
                    f_row, float(a[i]), float(b[i]), float(fa[i]), float(fb[i]), tol, maxiter
                )
            )
        return np.array(out_rows, dtype=np.float64)
    c, fc = a.copy(), fa.copy()
    out = b.copy()
    out[fa == 0.0] = a[fa == 0.0]
    active = np.flatnonzero((fa != 0.0) & (fb != 0.0))
    for _ in range(maxiter + 1):
        if active.size == 0:
            break
        A, B, C = a[active], b[active], c[active]
        FA, FB, FC = fa[active], fb[active], fc[active]
        prev_step = B - A
        swap = np.abs(FC) < np.abs(FB)
        A, B, C = np.where(swap, B, A), np.where(swap, C, B), np.where(swap, B, C)
        FA, FB, FC = np.where(swap, FB, FA), np.where(swap, FC, FB), np.where(swap, FB, FC)
        tol_act = 2.0 * _EPS * np.abs(B) + tol / 2.0
        new_step = (C - B) / 2.0
        done = (np.abs(new_step) <= tol_act) | (FB == 0.0)
        out[active[done]] = B[done]
        with np.errstate(divide="ignore", invalid="ignore"):
            cb = C - B
            secant = A == C
            t1s = FB / FA
            q_i = FA / FC
            t1 = FB / FC
            t2 = FB / FA
            p = np.where(secant, cb * t1s, t2 * (cb * q_i * (q_i - t1) - (B - A) * (t1 - 1.0)))
            q = np.where(secant, 1.0 - t1s, (q_i - 1.0) * (t1 - 1.0) * (t2 - 1.0))
            q = np.where(p > 0.0, -q, q)
            p = np.abs(p)
            interp = (np.abs(prev_step) >= tol_act) & (np.abs(FA) > np.abs(FB))
            accept = (p < 0.75 * cb * q - np.abs(tol_act * q) / 2.0) & (
                p < np.abs(prev_step * q / 2.0)
            )
            new_step = np.where(interp & accept, p / q, new_step)
        small = np.abs(new_step) < tol_act
        new_step = np.where(small, np.where(new_step > 0.0, tol_act, -tol_act), new_step)
        keep = ~done
        rows = active[keep]
        A_new, FA_new = B[keep], FB[keep]
        B_new = B[keep] + new_step[keep]
        FB_new = f(rows, B_new)
        C_k, FC_k = C[keep], FC[keep]
        same = ((FB_new > 0.0) & (FC_k > 0.0)) | ((FB_new < 0.0) & (FC_k < 0.0))
        a[rows], fa[rows] = A_new, FA_new
        b[rows], fb[rows] = B_new, FB_new
        c[rows] = np.where(same, A_new, C_k)
        fc[rows] = np.where(same, FA_new, FC_k)
        out[rows] = B_new
        active = rows
    return out
