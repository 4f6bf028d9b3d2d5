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
and arcsine scales); :func:`brent_roots` repeats that search step for step, on every row
at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray
from scipy import special

from metaresp._roots import _brent_one, brent_roots

__all__ = [
    "IV_ESTIMATORS",
    "TAU2_ROWS",
    "Tau2Estimate",
    "Tau2Rows",
    "brent_roots",
    "estimate_tau2",
    "q_generalised",
    "q_profile_ci",
    "q_profile_rows",
    "q_rows",
    "tau2_rows",
    "typical_variance",
    "typical_variance_rows",
]

#: Maximum number of Fisher-scoring steps.
MAXITER: Final[int] = 1000
#: metafor's iteration limit for Fisher scoring (``control=list(maxiter=100)``).
METAFOR_MAXITER: Final[int] = 100
#: metafor's tolerance for its ll0check and for uniroot (``.Machine$double.eps^0.25``).
METAFOR_TOL: Final[float] = float(np.finfo(np.float64).eps ** 0.25)
#: metafor's Fisher-scoring threshold, used by its ll0check.
METAFOR_THRESHOLD: Final[float] = 1e-5
_EPS: Final[float] = float(np.finfo(np.float64).eps)

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
IntArray = NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Tau2Rows:
    """τ² per row (truncated at 0) with how it was reached.

    ``converged``: the iteration (ML, REML, EB) stopped by its rule; ``iterations``: steps
    taken (0 for closed forms); ``slow``: converged only after more steps than metafor allows
    (it stops with an error there); ``reset``: ML/REML stopped at a local maximum and τ² was
    set to 0 (metafor's ll0check); ``extended``: PM searched beyond metafor's interval;
    ``q0``: Cochran's Q (:func:`q_rows` at τ² = 0) where the estimator computed it on the
    way, for the engine to reuse (None otherwise).
    """

    tau2: FloatArray
    converged: BoolArray
    iterations: IntArray
    slow: BoolArray
    reset: BoolArray
    extended: BoolArray
    q0: FloatArray | None = None

    def notes(self, row: int, method: str) -> tuple[str, ...]:
        """The warnings of one row, in words."""
        out: list[str] = []
        if not self.converged[row]:
            out.append(
                f"{method} Fisher scoring did not converge in {MAXITER} iterations "
                f"(last tau2 = {self.tau2[row]:.6g})"
            )
        elif self.slow[row]:
            out.append(
                f"{method} Fisher scoring needed {int(self.iterations[row])} iterations "
                f"(metafor stops with an error after {METAFOR_MAXITER})"
            )
        if self.reset[row]:
            out.append(
                f"{method} Fisher scoring stopped at a local maximum; tau2 set to 0 (as metafor)"
            )
        if self.extended[row]:
            out.append(
                "PM: Q(tau2) > k-1 up to the end of metafor's search interval; searched further "
                "(metafor stops with an error)"
            )
        return tuple(out)


@dataclass(frozen=True, slots=True)
class Tau2Estimate:
    """A τ² estimate of one dataset with how it was reached."""

    tau2: float
    converged: bool
    iterations: int
    warnings: tuple[str, ...] = ()


# --------------------------------------------------------------------------- building blocks


def _centred(yi: FloatArray) -> FloatArray:
    """yi minus its row mean: sums of w·yc and w·yc² then stay accurate (metafor's ``Ymc``)."""
    out: FloatArray = yi - yi.mean(axis=1, keepdims=True)
    return out


def _moments(yc: FloatArray) -> FloatArray:
    """Rows 1, yc, yc² per dataset ((R, 3, k)): ``M @ w`` gives Σw, Σw·yc, Σw·yc² at once."""
    out: FloatArray = np.stack([np.ones_like(yc), yc, yc * yc], axis=1)
    return out


def _q_moments(m: FloatArray, vi: FloatArray, tau2: FloatArray) -> FloatArray:
    """Q(τ²) per row from the moments of :func:`_moments`."""
    s = np.matmul(m, (1.0 / (vi + tau2[:, None]))[:, :, None])[:, :, 0]
    out: FloatArray = np.maximum(0.0, s[:, 2] - s[:, 1] * s[:, 1] / s[:, 0])
    return out


def _q_centred(yc: FloatArray, vi: FloatArray, tau2: FloatArray) -> FloatArray:
    return _q_moments(_moments(yc), vi, tau2)


def _q_of_row(m: FloatArray, vi: FloatArray, target: float) -> Callable[[float], float]:
    """Q(τ²) - target of one dataset as a function of a float (moments ``m``: (3, k))."""

    def q(tau2: float) -> float:
        s0, s1, s2 = (m @ (1.0 / (vi + tau2))).tolist()
        return float(max(0.0, s2 - s1 * s1 / s0) - target)

    return q


def q_rows(yi: FloatArray, vi: FloatArray, tau2: FloatArray | float = 0.0) -> FloatArray:
    """Generalised Cochran Q(τ²) = Σ w (yi - μ̂)², w = 1/(vi + τ²), per row; Q(0) is Cochran's Q."""
    t = np.broadcast_to(np.asarray(tau2, dtype=np.float64), (yi.shape[0],))
    return _q_centred(_centred(yi), vi, t)


def typical_variance_rows(vi: FloatArray) -> FloatArray:
    """Typical within-study variance ṽ = (k-1)/(S1 - S2/S1) per row (Higgins & Thompson 2002,
    eq. 9; metafor's ``vt`` for I² and H²)."""
    w = 1.0 / vi
    sw = w.sum(axis=1)
    out: FloatArray = (vi.shape[1] - 1) / (sw - (w * w).sum(axis=1) / sw)
    return out


# --------------------------------------------------------------------------- estimators


def _he(yi: FloatArray, vi: FloatArray) -> FloatArray:
    """Hedges' moment estimator (untruncated)."""
    k = yi.shape[1]
    r = _centred(yi)
    out: FloatArray = ((r * r).sum(axis=1) - vi.sum(axis=1) * (k - 1) / k) / (k - 1)
    return out


def _loglik(yc: FloatArray, vi: FloatArray, tau2: FloatArray, reml: bool) -> FloatArray:
    """(Restricted) log-likelihood of the intercept-only model per row, as metafor's ll0check."""
    k = yc.shape[1]
    v = vi + tau2[:, None]
    w = 1.0 / v
    s0 = w.sum(axis=1)
    s1 = (w * yc).sum(axis=1)
    rss = (w * yc * yc).sum(axis=1) - s1 * s1 / s0
    log_det = np.log(v).sum(axis=1)
    if reml:
        out: FloatArray = (
            -0.5 * (k - 1) * math.log(2 * math.pi) - 0.5 * log_det - 0.5 * np.log(s0) - 0.5 * rss
        )
        return out
    out = -0.5 * k * math.log(2 * math.pi) - 0.5 * log_det - 0.5 * rss
    return out


def _scoring_adj(method: str, k: int, s: Any) -> Any:
    """The Fisher-scoring step from the weighted moments ``s`` (``s[i][j]`` = Σ w^(j+1) yc^i,
    i = 0..2, j = 0..2; floats of one dataset or arrays of many): ML (Σw²r² - Σw)/Σw², REML
    (y'PPy - tr P)/tr(PP), EB (Q k/(k-1) - k)/Σw, with r = yc - μ̂, μ̂ = Σw yc/Σw."""
    s0, s1, s2 = s[0][0], s[1][0], s[2][0]
    t0, t1, t2 = s[0][1], s[1][1], s[2][1]
    mu = s1 / s0
    w2r2 = t2 - 2.0 * mu * t1 + mu * mu * t0
    if method == "ML":
        return (w2r2 - s0) / t0
    if method == "REML":
        tr_p = s0 - t0 / s0
        tr_pp = t0 - 2.0 * s[0][2] / s0 + (t0 / s0) ** 2
        return (w2r2 - tr_p) / tr_pp
    return ((s2 - s1 * mu) * k / (k - 1) - k) / s0  # EB


def _scoring_one(
    method: str, k: int, mom: FloatArray, vi: FloatArray, tau2: float
) -> tuple[float, bool, int]:
    """Fisher scoring of one dataset (the steps of :func:`_scoring_rows`, in floats)."""
    it = 0
    powers = np.empty((vi.size, 3))  # columns w, w², w³ (np.stack's layout, filled in place)
    w, w2, w3 = powers[:, 0], powers[:, 1], powers[:, 2]
    for it in range(1, MAXITER + 1):
        np.divide(1.0, vi + tau2, out=w)
        np.multiply(w, w, out=w2)
        np.multiply(w2, w, out=w3)
        sums = (mom @ powers).tolist()
        try:
            adj = float(_scoring_adj(method, k, sums))
        except ZeroDivisionError:
            adj = 0.0
        old, tau2 = tau2, scoring_step(tau2, adj)
        if abs(old - tau2) <= METAFOR_THRESHOLD:
            return tau2, True, it
    return tau2, False, it


def scoring_step(tau2: float, adj: float) -> float:
    """τ² after one Fisher-scoring step ``adj``, as metafor takes it: a step that is not
    finite, or a step below 0 from τ² = 0, is no step; a step that would make τ² negative
    is halved until it does not."""
    if not math.isfinite(adj) or (tau2 == 0.0 and adj < 0.0):
        adj = 0.0
    while tau2 + adj < 0.0:
        adj /= 2.0
    return tau2 + adj


def _scoring_rows(
    method: str,
    k: int,
    mom: FloatArray,
    vi: FloatArray,
    tau2: FloatArray,
    converged: BoolArray,
    iterations: IntArray,
) -> None:
    """Fisher scoring of every row (updates ``tau2``, ``converged``, ``iterations``)."""
    active = np.arange(tau2.size)
    for it in range(1, MAXITER + 1):
        if active.size == 0:
            break
        t2 = tau2[active]
        w = 1.0 / (vi[active] + t2[:, None])
        w2 = w * w
        sums = np.matmul(mom[active], np.stack([w, w2, w2 * w], axis=2))  # (r, 3, 3)
        with np.errstate(divide="ignore", invalid="ignore"):
            adj = _scoring_adj(method, k, sums.transpose(1, 2, 0))
        adj = np.where(np.isfinite(adj), adj, 0.0)
        # metafor halves a negative step at 0 until it underflows to -0: the same result
        adj = np.where((t2 == 0.0) & (adj < 0.0), 0.0, adj)
        crossing = t2 + adj < 0.0
        while crossing.any():
            adj = np.where(crossing, adj / 2.0, adj)
            crossing = t2 + adj < 0.0
        new = t2 + adj
        tau2[active] = new
        iterations[active] = it
        done = np.abs(t2 - new) <= METAFOR_THRESHOLD
        converged[active[done]] = True
        active = active[~done]


def _fisher_scoring(method: str, yi: FloatArray, vi: FloatArray) -> Tau2Rows:
    """ML, REML or EB by Fisher scoring, step for step as metafor 3.8 ``rma.uni``, all rows.

    Start at the truncated HE value; step ``adj`` (ML: (Σw²r² - Σw)/Σw²; REML:
    (y'PPy - tr P)/tr(PP); EB: (Q(τ²) k/(k-1) - k)/Σw), halved while it would make τ²
    negative; stop when the absolute change is below 1e-5. Fisher scoring converges
    linearly, so the exact root can differ from this value by a few times 1e-5 relative;
    the stopping rule is kept so that results agree with metafor to rounding error. Where
    metafor gives up (100 steps) iteration continues up to 1000 steps and the row is
    flagged ``slow``. With r = yi - μ̂: Σw²r² = Σw²yc² - 2μ Σw²yc + μ² Σw², μ = Σw yc/Σw.
    """
    r_count, k = yi.shape
    yc = _centred(yi)
    mom = _moments(yc)
    tau2 = np.maximum(0.0, _he(yi, vi))
    converged = np.zeros(r_count, dtype=bool)
    iterations = np.zeros(r_count, dtype=np.int64)
    if r_count == 1:
        t, ok, its = _scoring_one(method, k, mom[0], vi[0], float(tau2[0]))
        tau2[0], converged[0], iterations[0] = t, ok, its
    else:
        _scoring_rows(method, k, mom, vi, tau2, converged, iterations)
    tau2 = np.maximum(0.0, tau2)
    reset = np.zeros(r_count, dtype=bool)
    if method in ("ML", "REML"):
        reml = method == "REML"
        # the log-likelihood at 0 and at the estimate, row by row, in one call
        both = _loglik(
            np.concatenate([yc, yc]),
            np.concatenate([vi, vi]),
            np.concatenate([np.zeros(r_count), tau2]),
            reml,
        )
        gain0 = both[:r_count] - both[r_count:]
        reset = converged & (gain0 > METAFOR_TOL) & (tau2 > METAFOR_THRESHOLD)
        tau2 = np.where(reset, 0.0, tau2)
    slow = converged & (iterations > METAFOR_MAXITER)
    no = np.zeros(r_count, dtype=bool)
    return Tau2Rows(
        tau2, converged, iterations, slow, reset, no, _q_moments(mom, vi, np.zeros(r_count))
    )


def _mad(x: FloatArray) -> FloatArray:
    """R's ``mad`` per row: 1.4826 times the median absolute deviation from the median."""
    med = np.median(x, axis=1, keepdims=True)
    out: FloatArray = 1.4826 * np.median(np.abs(x - med), axis=1)
    return out


def _closed(tau2: FloatArray, q0: FloatArray | None = None) -> Tau2Rows:
    r = tau2.shape[0]
    no = np.zeros(r, dtype=bool)
    return Tau2Rows(
        np.maximum(0.0, tau2), np.ones(r, dtype=bool), np.zeros(r, dtype=np.int64), no, no, no, q0
    )


def _tau2_fe(yi: FloatArray, vi: FloatArray) -> Tau2Rows:
    return _closed(np.zeros(yi.shape[0]))


def _tau2_dl(yi: FloatArray, vi: FloatArray) -> Tau2Rows:
    """DerSimonian & Laird (1986): (Q(0) - (k-1)) / (S1 - S2/S1)."""
    k = yi.shape[1]
    w = 1.0 / vi
    sw = w.sum(axis=1)
    q0 = q_rows(yi, vi)
    return _closed((q0 - (k - 1)) / (sw - (w * w).sum(axis=1) / sw), q0)


def _tau2_hs(yi: FloatArray, vi: FloatArray) -> Tau2Rows:
    """Hunter & Schmidt (2004): (Q(0) - k) / S1."""
    q0 = q_rows(yi, vi)
    return _closed((q0 - yi.shape[1]) / (1.0 / vi).sum(axis=1), q0)


def _tau2_he(yi: FloatArray, vi: FloatArray) -> Tau2Rows:
    """Hedges (1983), moments of the unweighted residuals."""
    return _closed(_he(yi, vi))


def _tau2_sj(yi: FloatArray, vi: FloatArray) -> Tau2Rows:
    """Sidik & Jonkman (2005), one step from tau0 = Σ(yi - ȳ)²/k: tau0 Q(tau0) / (k-1)."""
    k = yi.shape[1]
    r = _centred(yi)
    tau0 = (r * r).sum(axis=1) / k
    q = q_rows(yi, vi, tau0)
    return _closed(np.where(tau0 > 0.0, tau0 * q / (k - 1), 0.0))


def _tau2_pm(yi: FloatArray, vi: FloatArray) -> Tau2Rows:
    """Paule & Mandel (1982): the root of Q(τ²) = k - 1, as metafor: 0 if Q(0) < k - 1, else
    ``uniroot`` on [0, max(100, 10 mad(yi)²)] (extended tenfold while Q is still above)."""
    r_count, k = yi.shape
    target = float(k - 1)
    m = _moments(_centred(yi))
    q0 = _q_moments(m, vi, np.zeros(r_count))
    tau2 = np.zeros(r_count)
    extended = np.zeros(r_count, dtype=bool)
    rows = np.flatnonzero(q0 >= target)
    if rows.size:
        hi = np.maximum(100.0, 10.0 * _mad(yi[rows]) ** 2)
        q_hi = _q_moments(m[rows], vi[rows], hi)
        while (q_hi > target).any():
            more = q_hi > target
            extended[rows[more]] = True
            hi = np.where(more, hi * 10.0, hi)
            q_hi = np.where(more, _q_moments(m[rows], vi[rows], hi), q_hi)

        def f(sub: IntArray, t: FloatArray) -> FloatArray:
            idx = rows[sub]
            return _q_moments(m[idx], vi[idx], t) - target

        roots = brent_roots(
            f,
            np.zeros(rows.size),
            hi,
            q0[rows] - target,
            q_hi - target,
            maxiter=METAFOR_MAXITER,
            row_function=lambda i: _q_of_row(m[rows[i]], vi[rows[i]], target),
        )
        tau2[rows] = roots
    out = _closed(tau2)
    return Tau2Rows(out.tau2, out.converged, out.iterations, out.slow, out.reset, extended, q0)


def _tau2_ml(yi: FloatArray, vi: FloatArray) -> Tau2Rows:
    return _fisher_scoring("ML", yi, vi)


def _tau2_reml(yi: FloatArray, vi: FloatArray) -> Tau2Rows:
    return _fisher_scoring("REML", yi, vi)


def _tau2_eb(yi: FloatArray, vi: FloatArray) -> Tau2Rows:
    return _fisher_scoring("EB", yi, vi)


#: The inverse-variance τ² estimators by metafor's method code (the names of
#: :data:`metaresp.models.ESTIMATORS` whose family is "iv").
TAU2_ROWS: Final[dict[str, Callable[[FloatArray, FloatArray], Tau2Rows]]] = {
    "FE": _tau2_fe,
    "DL": _tau2_dl,
    "REML": _tau2_reml,
    "ML": _tau2_ml,
    "PM": _tau2_pm,
    "SJ": _tau2_sj,
    "HE": _tau2_he,
    "EB": _tau2_eb,
    "HS": _tau2_hs,
}

IV_ESTIMATORS: Final[tuple[str, ...]] = tuple(TAU2_ROWS)


def tau2_rows(method: str, yi: FloatArray, vi: FloatArray) -> Tau2Rows:
    """τ² by ``method`` for every row of ``yi, vi`` (shape (R, k), k ≥ 2), truncated at 0."""
    func = TAU2_ROWS.get(method)
    if func is None:
        raise ValueError(f"estimator must be one of {', '.join(IV_ESTIMATORS)}; got {method!r}")
    return func(yi, vi)


def q_profile_rows(
    yi: FloatArray, vi: FloatArray, tau2_hat: FloatArray, level: float
) -> tuple[FloatArray, FloatArray]:
    """Q-profile confidence interval for τ² per row (Viechtbauer 2007, Stat Med 26:37).

    Bounds solve Q(τ²) = χ²_{k-1} quantiles (upper quantile for the lower bound, lower for
    the upper), searched on [0, max(100, 10 τ̂²)] as metafor's ``confint.rma.uni``: a bound
    beyond that range is reported as its end, and bounds below 0 as 0.
    """
    r_count, k = yi.shape
    if r_count == 1:
        lo1, hi1 = _q_profile_one(yi, vi, float(tau2_hat[0]), level)
        return np.array([lo1]), np.array([hi1])
    crit_u, crit_l = _q_profile_crit(k, level)
    m = _moments(_centred(yi))
    t_max = np.maximum(100.0, 10.0 * tau2_hat)
    q_min = _q_moments(m, vi, np.zeros(r_count))
    q_max = _q_moments(m, vi, t_max)

    def solve(crit: float, rows: IntArray) -> FloatArray:
        def f(sub: IntArray, t: FloatArray) -> FloatArray:
            idx = rows[sub]
            return _q_moments(m[idx], vi[idx], t) - crit

        return brent_roots(
            f,
            np.zeros(rows.size),
            t_max[rows],
            q_min[rows] - crit,
            q_max[rows] - crit,
            row_function=lambda i: _q_of_row(m[rows[i]], vi[rows[i]], crit),
        )

    ub = np.where(q_min < crit_l, 0.0, t_max)
    search = np.flatnonzero(~(q_min < crit_l) & ~(q_max > crit_l))
    if search.size:
        ub[search] = solve(crit_l, search)
    lb = np.zeros(r_count)
    search = np.flatnonzero(~(q_max > crit_u) & ~(q_min < crit_u))
    if search.size:
        lb[search] = solve(crit_u, search)
    beyond = q_max > crit_u
    lb = np.where(beyond, t_max, lb)
    ub = np.where(beyond, t_max, ub)
    none = q_min < crit_l
    lb = np.where(none, 0.0, lb)
    ub = np.where(none, 0.0, ub)
    return lb, ub


@lru_cache(maxsize=64)
def _q_profile_crit(k: int, level: float) -> tuple[float, float]:
    """The χ²_{k-1} quantiles the Q-profile bounds solve for: (upper, lower)."""
    alpha = 1.0 - level
    return (
        float(special.chdtri(k - 1, alpha / 2.0)),
        float(special.chdtri(k - 1, 1.0 - alpha / 2.0)),
    )


def _q_profile_one(
    yi: FloatArray, vi: FloatArray, tau2_hat: float, level: float
) -> tuple[float, float]:
    """:func:`q_profile_rows` of one dataset (``yi``, ``vi``: (1, k)), its branches in
    Python floats and each bound by :func:`metaresp._roots._brent_one` directly: the same
    values and steps without NumPy's per-call cost on one-element arrays."""
    crit_u, crit_l = _q_profile_crit(yi.shape[1], level)
    m = _moments(_centred(yi))
    t_max = float(np.maximum(100.0, 10.0 * tau2_hat))
    q_min = float(_q_moments(m, vi, np.zeros(1))[0])
    q_max = float(_q_moments(m, vi, np.array([t_max]))[0])

    def solve(crit: float) -> float:
        f = _q_of_row(m[0], vi[0], crit)
        return _brent_one(f, 0.0, t_max, q_min - crit, q_max - crit, METAFOR_TOL, 1000)

    if q_min < crit_l:
        return 0.0, 0.0
    if q_max > crit_u:
        return t_max, t_max
    ub = t_max if q_max > crit_l else solve(crit_l)
    lb = 0.0 if q_min < crit_u else solve(crit_u)
    return lb, ub


# --------------------------------------------------------------------------- one dataset


def _row(values: FloatArray) -> FloatArray:
    out: FloatArray = np.asarray(values, dtype=np.float64).reshape(1, -1)
    return out


def estimate_tau2(method: str, yi: FloatArray, vi: FloatArray) -> Tau2Estimate:
    """τ² of one dataset by ``method``: the one-row case of :func:`tau2_rows`; needs k ≥ 2."""
    res = tau2_rows(method, _row(yi), _row(vi))
    return Tau2Estimate(
        float(res.tau2[0]), bool(res.converged[0]), int(res.iterations[0]), res.notes(0, method)
    )


def q_generalised(yi: FloatArray, vi: FloatArray, tau2: float) -> float:
    """Generalised Cochran Q(τ²) of one dataset; Q(0) is Cochran's Q."""
    return float(q_rows(_row(yi), _row(vi), tau2)[0])


def typical_variance(vi: FloatArray) -> float:
    """Typical within-study variance ṽ of one dataset (see :func:`typical_variance_rows`)."""
    return float(typical_variance_rows(_row(vi))[0])


def q_profile_ci(
    yi: FloatArray, vi: FloatArray, tau2_hat: float, level: float
) -> tuple[float, float]:
    """Q-profile CI for τ² of one dataset (see :func:`q_profile_rows`)."""
    return _q_profile_one(_row(yi), _row(vi), float(tau2_hat), level)
