"""Inverse-variance meta-regression: the mixed-effects model yi = X β + u_i + e_i,
u_i ~ N(0, τ²), e_i ~ N(0, vi), with every τ² estimator of metafor 3.8 ``rma.uni(mods=)``.

Notation (Viechtbauer 2010, J Stat Softw 36(3), section 3; Raudenbush 2009, "Analyzing
effect sizes: random-effects models", in The Handbook of Research Synthesis and
Meta-Analysis, 2nd ed., ch. 16): with W = diag(w), w = 1/(vi + τ²), the projection

    P(τ²) = W - W X (X'WX)⁻¹ X'W,     RSS(τ²) = y'P y (the generalised residual Q),

and P₀ = I - X (X'X)⁻¹ X' the unweighted one. The estimators, for p coefficients:

* ``FE``: τ² = 0.
* ``HS`` (Hunter & Schmidt 2004): (RSS(0) - k) / Σ(1/vi).
* ``HE`` (Hedges 1983, method of moments on OLS residuals): (y'P₀y - tr(P₀V)) / (k - p).
* ``DL`` (DerSimonian & Laird 1986, Raudenbush's generalisation): (RSS(0) - (k - p)) / tr P(0).
* ``SJ`` (Sidik & Jonkman 2005): τ₀ RSS(τ₀) / (k - p), τ₀ = Σ(yi - ȳ)²/k.
* ``PM`` (Paule & Mandel 1982): the root of RSS(τ²) = k - p, by R's ``uniroot`` on
  [0, max(100, 10 mad(y)²)] (:func:`metaresp._roots.brent_roots`, step for step).
* ``ML``, ``REML``, ``EB``: Fisher scoring from the truncated HE value, steps
  (y'PPy - Σw)/Σw², (y'PPy - tr P)/tr(PP) and (y'Py k/(k-p) - k)/Σw, halved while τ² would
  turn negative, stopped when τ² changes by at most 1e-5; ML and REML then check that the
  likelihood at τ² = 0 is not higher (metafor's ``ll0check``; τ² is set to 0 if it is).

Every τ² is truncated at 0. The standard errors of τ² are metafor's (``se.tau2``). Sums use
y centred at its mean (metafor's ``Ymc``), which the intercept makes harmless and which keeps
them accurate when y is far from 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from metaresp._roots import METAFOR_TOL, brent_roots
from metaresp.estimators import METAFOR_THRESHOLD as THRESHOLD
from metaresp.estimators import scoring_step

__all__ = ["IvTau2", "fit_tau2", "inv_xwx", "projection", "r2_fe", "r2_re"]

FloatArray = NDArray[np.float64]

#: metafor's Fisher-scoring iteration limit (``control``: maxiter; its threshold is
#: ``estimators.METAFOR_THRESHOLD``).
METAFOR_MAXITER: Final[int] = 100
#: We go on iterating up to this many steps where metafor gives up, and say so.
MAXITER: Final[int] = 1000


@dataclass(frozen=True, slots=True)
class IvTau2:
    """A τ² estimate with its standard error (NaN for FE) and notes in words."""

    tau2: float
    se: float
    converged: bool
    notes: tuple[str, ...]


def inv_xwx(x: FloatArray, w: FloatArray) -> FloatArray:
    """(X'WX)⁻¹ from the QR decomposition of √W X (as metafor's ``.invcalc``)."""
    _, r = np.linalg.qr(np.sqrt(w)[:, None] * x)
    r_inv = np.linalg.solve(r, np.eye(r.shape[0]))
    out: FloatArray = r_inv @ r_inv.T
    return out


def projection(x: FloatArray, w: FloatArray) -> FloatArray:
    """P = W - W X (X'WX)⁻¹ X'W."""
    wx = w[:, None] * x
    out: FloatArray = np.diag(w) - wx @ inv_xwx(x, w) @ wx.T
    return out


def _rss(y: FloatArray, x: FloatArray, vi: FloatArray, tau2: float) -> float:
    p = projection(x, 1.0 / (vi + tau2))
    return float(y @ p @ y)


def _mad(y: FloatArray) -> float:
    med = float(np.median(y))
    return 1.4826 * float(np.median(np.abs(y - med)))


def _loglik(y: FloatArray, x: FloatArray, vi: FloatArray, tau2: float, reml: bool) -> float:
    """(Restricted) log-likelihood as metafor's ll0check computes it."""
    k, p = x.shape
    w = 1.0 / (vi + tau2)
    s = inv_xwx(x, w)
    beta = s @ (x.T @ (w * y))
    rss = float(np.sum(w * (y - x @ beta) ** 2))
    if not reml:
        return float(
            -0.5 * k * math.log(2 * math.pi) - 0.5 * float(np.log(vi + tau2).sum()) - 0.5 * rss
        )
    logdet = float(np.linalg.slogdet(x.T @ (w[:, None] * x))[1])
    return float(
        -0.5 * (k - p) * math.log(2 * math.pi)
        - 0.5 * float(np.log(vi + tau2).sum())
        - 0.5 * logdet
        - 0.5 * rss
    )


def _scoring(
    method: str, y: FloatArray, x: FloatArray, vi: FloatArray, start: float
) -> tuple[float, bool, int]:
    k, p = x.shape
    tau2 = start
    for it in range(1, MAXITER + 1):
        w = 1.0 / (vi + tau2)
        pm = projection(x, w)
        if method == "EB":
            adj = (float(y @ pm @ y) * k / (k - p) - k) / float(w.sum())
        else:
            py = pm @ y
            ypp = float(py @ py)
            if method == "ML":
                adj = (ypp - float(w.sum())) / float(np.sum(w * w))
            else:
                adj = (ypp - float(np.trace(pm))) / float(np.sum(pm * pm))
        old, tau2 = tau2, scoring_step(tau2, adj)
        if abs(old - tau2) <= THRESHOLD:
            return tau2, True, it
    return tau2, False, MAXITER


def _pm(y: FloatArray, x: FloatArray, vi: FloatArray, raw_y: FloatArray) -> tuple[float, str]:
    k, p = x.shape
    target = float(k - p)
    q0 = _rss(y, x, vi, 0.0) - target
    if q0 < 0.0:
        return 0.0, ""
    hi = max(100.0, 10.0 * _mad(raw_y) ** 2)
    note = ""
    q_hi = _rss(y, x, vi, hi) - target
    while q_hi > 0.0:
        note = (
            "PM: RSS(tau2) > k-p up to the end of metafor's search interval; searched further "
            "(metafor stops with an error)"
        )
        hi *= 10.0
        q_hi = _rss(y, x, vi, hi) - target

    def f_row(_: int) -> object:
        return lambda t: _rss(y, x, vi, t) - target

    def f(_rows: NDArray[np.int64], t: FloatArray) -> FloatArray:
        return np.array([_rss(y, x, vi, float(v)) - target for v in t])

    root = brent_roots(
        f,
        np.zeros(1),
        np.array([hi]),
        np.array([q0]),
        np.array([q_hi]),
        tol=METAFOR_TOL,
        maxiter=METAFOR_MAXITER,
        row_function=f_row,  # type: ignore[arg-type]
    )
    return float(root[0]), note


def fit_tau2(method: str, yi: FloatArray, vi: FloatArray, x: FloatArray) -> IvTau2:
    """τ² of the mixed-effects model by ``method`` (metafor's code), truncated at 0."""
    k, p = x.shape
    y = yi - yi.mean()
    notes: list[str] = []
    converged = True
    w0 = 1.0 / vi
    if method == "FE":
        return IvTau2(0.0, math.nan, True, ())
    if method in ("HS", "DL"):
        p0 = projection(x, w0)
        rss = float(y @ p0 @ y)
        if method == "HS":
            tau2 = max(0.0, (rss - k) / float(w0.sum()))
            se = math.sqrt(
                (2 * (k - p) + 4 * tau2 * np.trace(p0) + 2 * tau2**2 * np.sum(p0 * p0))
                / float(w0.sum()) ** 2
            )
        else:
            tr = float(np.trace(p0))
            tau2 = max(0.0, (rss - (k - p)) / tr)
            se = math.sqrt((2 * (k - p) + 4 * tau2 * tr + 2 * tau2**2 * np.sum(p0 * p0)) / tr**2)
        return IvTau2(tau2, se, True, ())
    if method == "SJ":
        tau0 = float(np.mean(y * y))
        pm = projection(x, 1.0 / (vi + tau0))
        tau2 = max(0.0, tau0 * float(y @ pm @ y) / (k - p))
        pv = pm * vi[None, :]
        se = math.sqrt(
            tau0**2
            / (k - p) ** 2
            * (2 * np.sum(pv * pv.T) + 4 * tau2 * np.sum(pv * pm) + 2 * tau2**2 * np.sum(pm * pm))
        )
        return IvTau2(tau2, se, True, ())
    # HE, and the start of ML/REML/EB
    hat = x @ np.linalg.solve(x.T @ x, x.T)
    p_ols = np.eye(k) - hat
    tr_pv = float(np.sum(np.diag(p_ols) * vi))
    he = (float(y @ p_ols @ y) - tr_pv) / (k - p)
    if method == "HE":
        tau2 = max(0.0, he)
        pv = p_ols * vi[None, :]
        se = math.sqrt(
            (2 * np.sum(pv * pv.T) + 4 * tau2 * tr_pv + 2 * tau2**2 * (k - p)) / (k - p) ** 2
        )
        return IvTau2(tau2, se, True, ())
    if method == "PM":
        tau2, note = _pm(y, x, vi, yi)
        if note:
            notes.append(note)
    elif method in ("ML", "REML", "EB"):
        tau2, converged, its = _scoring(method, y, x, vi, max(0.0, he))
        if not converged:
            notes.append(
                f"{method} Fisher scoring did not converge in {MAXITER} iterations "
                f"(last tau2 = {tau2:.6g})"
            )
        elif its > METAFOR_MAXITER:
            notes.append(
                f"{method} Fisher scoring needed {its} iterations (metafor stops with an "
                f"error after {METAFOR_MAXITER})"
            )
        if converged and method in ("ML", "REML"):
            reml = method == "REML"
            gain0 = _loglik(y, x, vi, 0.0, reml) - _loglik(y, x, vi, tau2, reml)
            if gain0 > METAFOR_TOL and tau2 > THRESHOLD:
                notes.append(
                    f"{method} Fisher scoring stopped at a local maximum; tau2 set to 0 "
                    "(as metafor)"
                )
                tau2 = 0.0
    else:
        raise ValueError(f"unknown estimator {method!r}")
    tau2 = max(0.0, tau2)
    w = 1.0 / (vi + tau2)
    if method == "ML":
        se = math.sqrt(2.0 / float(np.sum(w * w)))
    elif method == "REML":
        pm = projection(x, w)
        se = math.sqrt(2.0 / float(np.sum(pm * pm)))
    else:
        se = math.sqrt(2.0 * k * k / (k - p) / float(w.sum()) ** 2)
    return IvTau2(tau2, se, converged, tuple(notes))


def r2_fe(yi: FloatArray, vi: FloatArray, qe: float, k: int, p: int) -> float:
    """metafor 3.8 for FE: max(0, 100 adj. R²) of the weighted least-squares fit."""
    if float(np.var(yi)) == 0.0:
        return 0.0
    w = 1.0 / vi
    ybar = float(np.sum(w * yi) / np.sum(w))
    tss = float(np.sum(w * (yi - ybar) ** 2))
    r2 = 1.0 - qe / tss
    adj = 1.0 - (1.0 - r2) * (k - 1) / (k - p)
    return max(0.0, 100.0 * adj)


def r2_re(estimator: str, yi: FloatArray, vi: FloatArray, tau2: float) -> float | None:
    """Pseudo-R² (Raudenbush 2009): 100 (τ²₀ - τ²)/τ²₀, floored at 0; 0 when τ²₀ = 0."""
    try:
        tau2_0 = fit_tau2(estimator, yi, vi, np.ones((yi.size, 1))).tau2
    except (ValueError, np.linalg.LinAlgError):  # pragma: no cover - metafor gives NA
        return None
    if tau2_0 == 0.0:
        return 0.0
    return max(0.0, 100.0 * (tau2_0 - tau2) / tau2_0)
