"""Between-study variance (τ²) estimators and heterogeneity statistics for the
intercept-only normal-normal model ``yi ~ N(mu, vi + tau2)``.

Every function takes the transformed proportions ``yi`` and their sampling variances
``vi`` (float arrays, all ``vi > 0``) and follows metafor 3.8 ``rma.uni`` definitions
(Viechtbauer 2010, J Stat Softw 36(3); Viechtbauer 2005, J Educ Behav Stat 30:261).
With ``w = 1/(vi + tau2)``, ``mu(tau2) = sum(w yi)/sum(w)`` and the generalised Q
``Q(tau2) = sum(w (yi - mu)^2)``:

* ``DL``  DerSimonian & Laird (1986): (Q(0) - (k-1)) / (S1 - S2/S1), with S_r = sum(vi^-r).
* ``HE``  Hedges (1983), method of moments on unweighted residuals:
  (sum((yi - ybar)^2) - (1 - 1/k) sum(vi)) / (k - 1).
* ``HS``  Hunter & Schmidt (2004): (Q(0) - k) / S1.
* ``SJ``  Sidik & Jonkman (2005), one step from tau0 = sum((yi - ybar)^2)/k:
  tau0 Q(tau0) / (k - 1).
* ``PM``  Paule & Mandel (1982): the root of Q(tau2) = k - 1.
* ``EB``  empirical Bayes (Morris 1983; Berkey et al. 1995): Fisher scoring on
  sum(w ((k/(k-1)) (yi - mu)^2 - vi - tau2)) = 0, which for this model has the same root
  as PM (Viechtbauer et al. 2015, Res Synth Methods 7:55).
* ``ML``, ``REML`` maximum and restricted maximum likelihood by Fisher scoring started at
  the HE value, with step halving at the boundary and metafor's check that the likelihood
  at tau2 = 0 is not higher (``ll0check``).

Every estimate is truncated at 0. ML, REML and EB repeat metafor's Fisher scoring step
for step, including its stopping rule (absolute change below 1e-5): this iteration
converges linearly, and stopping elsewhere moves τ² by up to a few 1e-4 relative from
metafor's value. PM and the Q-profile bounds are roots of Q(τ²) = c that metafor finds with
``uniroot(tol = eps^0.25)``, an absolute tolerance that is coarse where τ² is small (raw
and arcsine scales); :func:`brent_root` repeats that search step for step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
from numpy.typing import NDArray
from scipy import special

Estimator = Literal["FE", "DL", "REML", "ML", "PM", "SJ", "HE", "EB", "HS"]

#: Inverse-variance estimators (metafor ``rma.uni`` method codes; FE is metafor "FE"/"EE").
IV_ESTIMATORS: Final[tuple[str, ...]] = ("FE", "DL", "REML", "ML", "PM", "SJ", "HE", "EB", "HS")

#: Maximum number of Fisher-scoring / Newton steps.
MAXITER: Final[int] = 1000
#: metafor's iteration limit for Fisher scoring (``control=list(maxiter=100)``).
METAFOR_MAXITER: Final[int] = 100
#: metafor's tolerance for its ll0check and for uniroot (``.Machine$double.eps^0.25``).
METAFOR_TOL: Final[float] = float(np.finfo(np.float64).eps ** 0.25)
#: metafor's Fisher-scoring threshold, used by its ll0check.
METAFOR_THRESHOLD: Final[float] = 1e-5

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Tau2Estimate:
    """A τ² estimate with how it was reached."""

    tau2: float
    converged: bool
    iterations: int
    warnings: tuple[str, ...] = ()


def _moments_matrix(yi: FloatArray) -> FloatArray:
    """Rows 1, yc, yc² with yc = yi - mean(yi): ``M @ w`` gives Σw, Σw·yc, Σw·yc² in one
    product. Centring (as metafor's ``Ymc``) keeps Σw·yc² - (Σw·yc)²/Σw accurate."""
    yc = yi - yi.mean()
    return np.vstack((np.ones_like(yc), yc, yc * yc))


def q_function(yi: FloatArray, vi: FloatArray) -> Callable[[float], float]:
    """Q(τ²) as a fast closure over ``yi, vi`` (three array operations per call)."""
    m = _moments_matrix(yi)

    def q(tau2: float) -> float:
        s0, s1, s2 = (m @ (1.0 / (vi + tau2))).tolist()
        return max(0.0, float(s2 - s1 * s1 / s0))

    return q


def q_generalised(yi: FloatArray, vi: FloatArray, tau2: float) -> float:
    """Generalised Cochran Q(τ²) = Σ w (yi - μ̂)², w = 1/(vi + τ²); Q(0) is Cochran's Q."""
    return q_function(yi, vi)(tau2)


def brent_root(
    f: Callable[[float], float],
    a: float,
    b: float,
    fa: float,
    fb: float,
    tol: float = METAFOR_TOL,
    maxiter: int = 1000,
) -> float:
    """Brent's (1973) root finder, step for step as R's ``uniroot`` (``zeroin``).

    metafor finds the PM estimate and the Q-profile bounds with ``uniroot(tol =
    eps^0.25)``, an *absolute* tolerance of about 1.2e-4 on τ². On scales where τ² is
    small (raw, arcsine) its answer can differ from the exact root by a few percent, so the
    same search is repeated here (same interval, tolerance and steps: bisection, secant and
    inverse quadratic interpolation as in Brent, Algorithms for Minimization without
    Derivatives, 1973, ch. 4) to give metafor's value rather than a different rounding.
    """
    eps = float(np.finfo(np.float64).eps)
    c, fc = a, fa
    if fa == 0.0:
        return a
    if fb == 0.0:
        return b
    for _ in range(maxiter + 1):
        prev_step = b - a
        if abs(fc) < abs(fb):  # keep b the best guess, c on the other side of the root
            a, b, c = b, c, b
            fa, fb, fc = fb, fc, fb
        tol_act = 2.0 * eps * abs(b) + tol / 2.0
        new_step = (c - b) / 2.0
        if abs(new_step) <= tol_act or fb == 0.0:
            return b
        if abs(prev_step) >= tol_act and abs(fa) > abs(fb):
            cb = c - b
            if a == c:  # secant
                t1 = fb / fa
                p = cb * t1
                q = 1.0 - t1
            else:  # inverse quadratic interpolation
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


def _mad(x: FloatArray) -> float:
    """R's ``mad``: 1.4826 times the median absolute deviation from the median."""
    med = float(np.median(x))
    return 1.4826 * float(np.median(np.abs(x - med)))


def _he(yi: FloatArray, vi: FloatArray) -> float:
    k = yi.size
    r = yi - yi.mean()
    return (float(r @ r) - float(vi.sum()) * (k - 1) / k) / (k - 1)


def _loglik(yi: FloatArray, vi: FloatArray, tau2: float, reml: bool) -> float:
    """(Restricted) log-likelihood of the intercept-only model, as metafor's ll0check."""
    w = 1.0 / (vi + tau2)
    s0, s1, s2 = (_moments_matrix(yi) @ w).tolist()
    rss = float(s2 - s1 * s1 / s0)
    k = yi.size
    log_det = float(np.log(vi + tau2).sum())
    if reml:
        return (
            -0.5 * (k - 1) * math.log(2 * math.pi)
            - 0.5 * log_det
            - 0.5 * math.log(float(s0))
            - (0.5 * rss)
        )
    return -0.5 * k * math.log(2 * math.pi) - 0.5 * log_det - 0.5 * rss


def _fisher_scoring(method: str, yi: FloatArray, vi: FloatArray) -> Tau2Estimate:
    """ML, REML or EB by Fisher scoring, step for step as metafor 3.8 ``rma.uni``.

    Start at the truncated HE value; step ``adj`` (ML: (Σw²r² - Σw)/Σw²; REML:
    (y'PPy - tr P)/tr(PP); EB: (Q(τ²) k/(k-1) - k)/Σw), halved while it would make τ²
    negative; stop when the absolute change is below 1e-5. Fisher scoring converges
    linearly, so the exact root can differ from this value by a few times 1e-5 relative;
    the stopping rule is kept so that results agree with metafor to rounding error.
    Where metafor gives up (100 steps) iteration continues up to 1000 steps and the
    result is flagged. With r = yi - μ̂: Σw²r² = Σw²yc² - 2μ Σw²yc + μ² Σw², μ = Σw yc/Σw.
    """
    k = yi.size
    m = _moments_matrix(yi)
    tau2 = max(0.0, _he(yi, vi))
    converged = False
    it = 0
    for it in range(1, MAXITER + 1):  # noqa: B007 - iteration count is reported
        w = 1.0 / (vi + tau2)
        w2 = w * w
        s0, s1, s2 = (m @ w).tolist()
        t0, t1, t2 = (m @ w2).tolist()
        mu = s1 / s0
        w2r2 = t2 - 2.0 * mu * t1 + mu * mu * t0
        if method == "ML":
            adj = (w2r2 - s0) / t0
        elif method == "REML":
            tr_p = s0 - t0 / s0
            tr_pp = t0 - 2.0 * float(w2 @ w) / s0 + (t0 / s0) ** 2
            adj = (w2r2 - tr_p) / tr_pp
        else:  # EB
            adj = ((s2 - s1 * mu) * k / (k - 1) - k) / s0
        if not math.isfinite(adj):
            adj = 0.0
        if tau2 == 0.0 and adj < 0.0:
            adj = 0.0  # metafor halves it until it underflows to -0: the same result
        while tau2 + adj < 0.0:
            adj /= 2.0
        old = tau2
        tau2 = tau2 + adj
        if abs(old - tau2) <= METAFOR_THRESHOLD:
            converged = True
            break
    notes: list[str] = []
    if not converged:
        notes.append(
            f"{method} Fisher scoring did not converge in {MAXITER} iterations "
            f"(last tau2 = {tau2:.6g})"
        )
    elif it > METAFOR_MAXITER:
        notes.append(
            f"{method} Fisher scoring needed {it} iterations (metafor stops with an error "
            f"after {METAFOR_MAXITER})"
        )
    tau2 = max(0.0, tau2)
    if converged and method in ("ML", "REML"):
        reml = method == "REML"
        if (
            _loglik(yi, vi, 0.0, reml) - _loglik(yi, vi, tau2, reml) > METAFOR_TOL
            and tau2 > METAFOR_THRESHOLD
        ):
            notes.append(
                f"{method} Fisher scoring stopped at a local maximum; tau2 set to 0 (as metafor)"
            )
            tau2 = 0.0
    return Tau2Estimate(tau2, converged, it, tuple(notes))


def estimate_tau2(method: str, yi: FloatArray, vi: FloatArray) -> Tau2Estimate:
    """τ² by ``method`` (see the module docstring), truncated at 0; needs k ≥ 2."""
    k = yi.size
    if method == "FE":
        return Tau2Estimate(0.0, True, 0)
    if method in ("ML", "REML", "EB"):
        return _fisher_scoring(method, yi, vi)
    w = 1.0 / vi
    sw = float(w.sum())
    if method == "DL":
        q0 = q_generalised(yi, vi, 0.0)
        tau2 = (q0 - (k - 1)) / (sw - float(w @ w) / sw)
    elif method == "HS":
        tau2 = (q_generalised(yi, vi, 0.0) - k) / sw
    elif method == "HE":
        tau2 = _he(yi, vi)
    elif method == "SJ":
        r = yi - yi.mean()
        tau0 = float(r @ r) / k
        tau2 = tau0 * q_generalised(yi, vi, tau0) / (k - 1) if tau0 > 0 else 0.0
    elif method == "PM":
        # metafor: 0 if Q(0) < k-1, else uniroot on [0, max(100, 10 mad(yi)^2)]
        target = float(k - 1)
        qf = q_function(yi, vi)
        q0 = qf(0.0)
        if q0 < target:
            tau2 = 0.0
        else:
            hi = max(100.0, 10.0 * _mad(yi) ** 2)
            q_hi = qf(hi)
            notes: tuple[str, ...] = ()
            if q_hi > target:
                while q_hi > target:
                    hi *= 10.0
                    q_hi = qf(hi)
                notes = (
                    f"PM: Q(tau2) > k-1 up to tau2 = {hi / 10:g}; searched further "
                    "(metafor stops with an error)",
                )
            tau2 = brent_root(
                lambda t: qf(t) - target,
                0.0,
                hi,
                q0 - target,
                q_hi - target,
                maxiter=METAFOR_MAXITER,
            )
            return Tau2Estimate(max(0.0, tau2), True, 1, notes)
    else:
        raise ValueError(f"estimator must be one of {', '.join(IV_ESTIMATORS)}; got {method!r}")
    return Tau2Estimate(max(0.0, tau2), True, 0)


def typical_variance(vi: FloatArray) -> float:
    """Typical within-study variance ṽ = (k-1)/(S1 - S2/S1) (Higgins & Thompson 2002, eq. 9;
    metafor's ``vt`` for I² and H²)."""
    w = 1.0 / vi
    sw = float(w.sum())
    return (vi.size - 1) / (sw - float(w @ w) / sw)


def q_profile_ci(
    yi: FloatArray, vi: FloatArray, tau2_hat: float, level: float
) -> tuple[float, float]:
    """Q-profile confidence interval for τ² (Viechtbauer 2007, Stat Med 26:37).

    Bounds solve Q(τ²) = χ²_{k-1} quantiles (upper quantile for the lower bound, lower for
    the upper), searched on [0, max(100, 10 τ̂²)] as metafor's ``confint.rma.uni``: a bound
    beyond that range is reported as its end, and bounds below 0 as 0.
    """
    k = yi.size
    alpha = 1.0 - level
    df = k - 1
    crit_u = float(special.chdtri(df, alpha / 2.0))  # upper alpha/2 quantile
    crit_l = float(special.chdtri(df, 1.0 - alpha / 2.0))  # lower alpha/2 quantile
    t_min = 0.0
    t_max = max(100.0, 10.0 * tau2_hat)
    qf = q_function(yi, vi)
    q_min = qf(t_min)
    q_max = qf(t_max)
    if q_min < crit_l:
        ub = t_min
    elif q_max > crit_l:
        ub = t_max
    else:
        ub = brent_root(lambda t: qf(t) - crit_l, t_min, t_max, q_min - crit_l, q_max - crit_l)
    if q_max > crit_u:
        lb = ub = t_max
    elif q_min < crit_u:
        lb = t_min
    else:
        lb = brent_root(lambda t: qf(t) - crit_u, t_min, t_max, q_min - crit_u, q_max - crit_u)
    if q_min < crit_l:
        lb = ub = t_min
    return lb, ub
