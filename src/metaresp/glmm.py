"""Binomial-normal generalised linear mixed model for single proportions.

The model (Stijnen, Hamza & Özdemir 2010, Stat Med 29:3046, model "UM.FS" with an
intercept only; metafor's ``rma.glmm(measure="PLO")``)::

    x_i | u_i ~ Binomial(n_i, expit(mu + u_i)),    u_i ~ N(0, tau²),   i = 1..k

is fitted by maximum likelihood. Writing ``u_i = tau * z_i`` with ``z_i ~ N(0, 1)``, study
*i* contributes

    L_i(mu, tau) = C(n_i, x_i) ∫ exp{x_i eta - n_i log(1 + e^eta)} phi(z) dz,
    eta = mu + tau z,

and the integral is evaluated by *adaptive* Gauss-Hermite quadrature (Liu & Pierce 1994,
Biometrika 81:624; Pinheiro & Bates 1995, J Comput Graph Stat 4:12): the rule is centred at
the mode ``ẑ_i`` of the integrand and scaled by ``s_i = (1 + tau² n_i p̂_i (1 - p̂_i))^(-1/2)``,
its curvature there. This is the approximation ``lme4::glmer(nAGQ = q)`` uses (its spherical
random effects are our ``z``; its penalised-IRLS weights are ``n p (1 - p)``), so with the
same ``q`` both programs maximise the same function. No continuity correction enters the
likelihood, so studies with 0 or ``n_i`` events are used as they are.

Derivatives. The gradient is the exact gradient of the quadrature approximation (the
nodes move with the parameters; see :func:`_evaluate`), so the optimum is that of the same
function ``glmer`` maximises. The Newton matrix is the observed information from Louis'
(1982, JRSS-B 44:226) identities, each posterior moment taken with the same nodes:

    ∂²ℓ/∂θ∂θ' ≈ Σ_i (E_i[∂s/∂θ'] + Cov_i[s]),   s = (r, z r),   r = x_i - n_i expit(eta),
    ∂s/∂θ' = -n_i p (1 - p) [[1, z], [z, z²]],

with θ = (mu, tau) and E_i the posterior expectation given study *i*'s data; it differs
from the Hessian of the approximation only by the quadrature error, which is all a Newton
direction needs.

Parametrisation and the boundary. The likelihood is an even function of tau, so it is
maximised over *signed* tau by Newton's method with a backtracking line search: tau = 0 is
then an interior point with zero gradient, rather than the end of a ``log tau`` axis that
Newton can only approach slowly. At tau = 0 the curvature in tau is exactly

    ∂²ℓ/∂tau² |_(mu_FE, 0) = Σ_i {(x_i - n_i p̂)² - n_i p̂ (1 - p̂)},   p̂ = Σx / Σn,

(the score statistic for overdispersion). When it is positive the maximum is interior; when
it is not, the common-effect fit (tau² = 0 exactly, as ``glmer`` reports at the boundary) is
compared with any interior maximum found from a positive start, and the larger likelihood
wins.

Standard error. ``lme4`` (checked with 1.1-31) computes ``vcov`` for ``nAGQ > 0`` by
inverting the finite-difference Hessian of the deviance in (theta, beta) and keeping the
beta block (the ``use.hessian`` path of ``vcov.merMod``; it falls back to the penalised-IRLS
matrix only when that Hessian is not positive definite). We invert the Hessian of the
quadrature log-likelihood in (mu, tau), from central differences of its exact gradient, and
keep the mu entry: the same quantity (the mu block of the inverse does not change when tau
is reparametrised at a stationary point). At the boundary it is the common-effect binomial
value ``1 / sqrt(Σ n_i p̂ (1 - p̂))``, which is also what ``glmer`` reports there.

Heterogeneity tests, as metafor reports them for ``rma.glmm(measure="PLO")`` (metafor 3.8
``rma.glmm`` source, "Conducting heterogeneity tests"): both compare the common-effect
logistic model with the saturated one (one parameter per study), on k - 1 df.

* ``q_lrt`` (metafor ``QE.LRT``) = 2 Σ_i [x_i log(x_i / (n_i p̂)) + (n_i - x_i) log((n_i - x_i) /
  (n_i (1 - p̂)))], with 0 log 0 = 0, floored at 0.
* ``q_wald`` (metafor ``QE.Wld``) is the Wald test that the saturated model's study
  contrasts are zero, Σ w_i (y_i - ȳ_w)² with y_i = logit(x_i / n_i) and
  w_i = x_i (n_i - x_i) / n_i. A study with 0 or n_i events has an infinite saturated
  logit: R's ``glm`` stops at a large finite coefficient whose contribution is about 1e-7.
  We repeat R's IRLS iterations for the saturated model so that the number is the same
  (see :func:`_saturated_wald`), and record a warning that such studies carry no weight in
  this test. Neither test is defined for k = 1 (NaN, with a warning).

I² and H² follow metafor: I² = 100 tau² / (tau² + ṽ), H² = tau² / ṽ + 1, with
ṽ = (k - 1) / (Σ w_i - Σ w_i² / Σ w_i) (Higgins & Thompson 2002), w_i = 1 / v_i and v_i the
variance of the logit with 0.5 added to both cells of studies with 0 or all events
(metafor's ``escalc`` defaults ``add = 1/2, to = "only0"``).

Log-likelihoods. ``loglik`` is the marginal log-likelihood (binomial coefficients
included, comparable with a binomial ``glm``'s ``logLik``). ``lme4`` reports, for a
``cbind(x, n - x)`` response, that value minus the saturated log-likelihood
Σ log Bin(x_i; n_i, x_i / n_i). ``loglik_metafor`` is what
metafor reports as ``logLik(res)`` for this model: ``ll.QE - deviance(glmer fit) / 2``, and
``deviance()`` of a GLMM fit in lme4 is the sum of squared deviance residuals at the
conditional modes, so this is the binomial log-likelihood at ``p_i = expit(mu + tau ẑ_i)``.

One engine for one dataset and for many. Every quantity above is a sum over studies of
elementwise functions on a (rows × studies × nodes) grid, so :func:`fit_glmm_rows` fits R
datasets with the same k at once: the mode search is elementwise, the Newton step is a
batch of 2 × 2 eigen-solves with a per-row step length and a per-row "done" mask, and the
boundary check is the closed-form curvature per row. :func:`fit_glmm` is its one-row case
plus the heterogeneity tests and the diagnostics a single fit reports; the coverage
simulation calls :func:`fit_glmm_rows` directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy import special

from metaresp._glmm_quad import _evaluate
from metaresp._glmm_rows import (
    ALL_EXTREME,
    DEFAULT_NAGQ,
    DIVERGED,
    OK,
    REASONS,
    GlmmRows,
    _log_choose,
    conditional_modes,
    fit_glmm_rows,
    quadrature_rule,
)
from metaresp.errors import ConvergenceError

__all__ = [
    "GlmmFit",
    "GlmmRows",
    "conditional_modes",
    "fit_glmm",
    "fit_glmm_rows",
    "lrt_heterogeneity",
    "marginal_loglik",
    "quadrature_rule",
    "saturated_fit",
    "saturated_wald",
]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

#: A refit with 2 * nagq + 1 nodes predicted to move mu or tau² by more than this (relative
#: to max(1, |value|)) gets a warning: the quadrature, not the data, would then set the
#: third significant digit.
QUADRATURE_SHIFT_TOL = 5e-4
#: Continuity correction metafor's escalc adds to 0/n and n/n studies (I² only).
ESCALC_ADD = 0.5
#: R's glm.control() defaults, used to repeat metafor's saturated-model fit (QE.Wld).
GLM_EPSILON = 1e-8
GLM_MAXIT = 25
_DBL_EPS = float(np.finfo(np.float64).eps)


@dataclass(frozen=True)
class GlmmFit:
    """A fitted binomial-normal GLMM (logit scale).

    ``mu``/``se``: pooled logit and its standard error; ``tau2``: between-study variance
    (exactly 0 when the maximum is on the boundary); ``q_wald``/``q_lrt``: metafor's
    ``QE.Wld``/``QE.LRT`` with p-values on ``q_wald_df = k - 1`` df (NaN when k = 1);
    ``i2``/``h2``/``vt``: metafor's I², H² and typical within-study variance;
    ``random_effects``: conditional modes ``tau * ẑ_i`` of the study effects;
    ``info``: the observed information in (mu, tau) at the optimum (None at the boundary).
    """

    mu: float
    se: float
    tau2: float
    converged: bool
    iterations: int
    loglik: float
    q_wald: float
    q_wald_df: int
    q_wald_pvalue: float
    q_lrt: float
    q_lrt_pvalue: float
    warnings: tuple[str, ...]
    k: int
    nagq: int
    at_boundary: bool
    loglik_metafor: float
    i2: float
    h2: float
    vt: float
    random_effects: tuple[float, ...] = field(default=())
    #: log-likelihood of the common-effect model (τ² = 0), for the LRT of τ² = 0
    loglik_fe: float = math.nan
    info: tuple[tuple[float, float], tuple[float, float]] | None = None


# --------------------------------------------------------------------------- tests and checks


def _binomial_deviance(y: FloatArray, mu: FloatArray, n: FloatArray) -> FloatArray:
    out: FloatArray = 2.0 * (
        n * (special.xlogy(y, y / mu) + special.xlogy(1.0 - y, (1.0 - y) / (1.0 - mu)))
    ).sum(axis=1)
    return out


def saturated_fit(x: FloatArray, n: FloatArray) -> tuple[FloatArray, FloatArray]:
    """The saturated logistic model's logits and IRLS weights per study, as R's ``glm``.

    A study with 0 or n_i events has no finite logit; R's ``glm`` stops its iteratively
    reweighted least squares (IRLS) at a large finite value whose contribution is about 1e-7.
    To return the same number, this repeats the IRLS of R's ``glm.fit`` (starting values
    (n y + 0.5) / (n + 1), convergence when the relative deviance change is below 1e-8, at
    most 25 iterations, the logit inverse clamped at |eta| = 30, and the covariance from the
    weights of the last IRLS step); the saturated model's Newton step acts on each study
    separately, and each row stops by its own deviance test.
    """
    y = x / n
    mu = (n * y + 0.5) / (n + 1.0)
    eta = np.log(mu / (1.0 - mu))
    dev_old = _binomial_deviance(y, mu, n)
    weights = n * mu * (1.0 - mu)
    active = np.ones(x.shape[0], dtype=bool)
    for _ in range(GLM_MAXIT):
        a = np.exp(-np.abs(eta))
        dmu = np.maximum(a / (1.0 + a) ** 2, _DBL_EPS)  # R's binomial()$mu.eta
        w_new = n * dmu * dmu / (mu * (1.0 - mu))
        eta_new = eta + (y - mu) / dmu
        # R's logit linkinv: eps below eta = -30, 1/eps above 30, else exp(eta)
        e = np.exp(np.minimum(np.maximum(eta_new, -30.0), 30.0))
        np.copyto(e, _DBL_EPS, where=eta_new < -30.0)
        np.copyto(e, 1.0 / _DBL_EPS, where=eta_new > 30.0)
        mu_new = e / (1.0 + e)
        act = active[:, None]
        weights = np.where(act, w_new, weights)
        eta = np.where(act, eta_new, eta)
        mu = np.where(act, mu_new, mu)
        dev = _binomial_deviance(y, mu, n)
        stop = np.abs(dev - dev_old) / (np.abs(dev) + 0.1) < GLM_EPSILON
        active &= ~stop
        dev_old = np.where(active, dev, dev_old)
        if not active.any():
            break
    return eta, weights


def saturated_wald(x: FloatArray, n: FloatArray) -> FloatArray:
    """metafor's QE.Wld per row: Wald test of the saturated logistic model's study contrasts.

    With one free logit per study, cov(eta) = diag(1 / W_i), so the Wald statistic for
    "all logits equal" is Σ W_i (eta_i - eta_W)², eta_W the W-weighted mean. For studies
    with 0 < x_i < n_i this is Σ w_i (logit(x_i / n_i) - ȳ_w)², w_i = x_i (n_i - x_i) / n_i;
    the logits and weights of studies with 0 or n_i events are those of R's ``glm`` (see
    :func:`saturated_fit`).
    """
    eta, weights = saturated_fit(x, n)
    centre = (weights * eta).sum(axis=1) / weights.sum(axis=1)
    out: FloatArray = np.maximum(0.0, (weights * (eta - centre[:, None]) ** 2).sum(axis=1))
    return out


def lrt_heterogeneity(x: FloatArray, n: FloatArray) -> FloatArray:
    """metafor's QE.LRT per row: 2 Σ [x log(x / (n p̂)) + (n - x) log((n - x) / (n (1 - p̂)))]
    with p̂ = Σx / Σn and 0 log 0 = 0 (common-effect vs saturated logistic model), ≥ 0."""
    p_fe = (x.sum(axis=1) / n.sum(axis=1))[:, None]
    ll_sat = special.xlogy(x, x / n) + special.xlogy(n - x, (n - x) / n)
    ll_fe = special.xlogy(x, p_fe) + special.xlogy(n - x, 1.0 - p_fe)
    out: FloatArray = np.maximum(0.0, 2.0 * (ll_sat - ll_fe).sum(axis=1))
    return out


def _typical_variance(x: FloatArray, n: FloatArray) -> float:
    """metafor's ṽ = (k - 1) / tr(P) from escalc("PLO") variances (0.5 added to 0/n, n/n)."""
    add = np.where((x == 0) | (x == n), ESCALC_ADD, 0.0)
    vi = 1.0 / (x + add) + 1.0 / (n - x + add)
    if x.size == 1:
        return float(vi[0])
    wi = 1.0 / vi
    return float((x.size - 1) / (wi.sum() - np.sum(wi * wi) / wi.sum()))


def _quadrature_check(
    x: FloatArray,
    n: FloatArray,
    lchoose: FloatArray,
    mu: float,
    tau: float,
    modes: FloatArray,
    nagq: int,
) -> str | None:
    """Warn when ``nagq`` nodes are too few: predict the optimum with 2 * nagq + 1 nodes.

    One Newton step from the current optimum on the finer rule's likelihood gives the shift
    of (mu, tau) to first order. With large tau² (above about 2 on the logit scale) and
    studies at 0% or 100%, seven nodes can move tau² by several percent.
    """
    finer = 2 * nagq + 1
    ev = _evaluate(x, n, lchoose, np.array([mu]), np.array([tau]), finer, modes)
    try:
        shift = np.linalg.solve(-ev.hess[0], ev.grad[0])
    except np.linalg.LinAlgError:
        return None
    d_mu = float(shift[0])
    tau2 = tau * tau
    d_tau2 = (tau + float(shift[1])) ** 2 - tau2
    if abs(d_mu) <= QUADRATURE_SHIFT_TOL * max(1.0, abs(mu)) and abs(
        d_tau2
    ) <= QUADRATURE_SHIFT_TOL * max(1.0, tau2):
        return None
    return (
        f"{nagq} quadrature nodes per study are too few for these data: {finer} nodes would "
        f"move the pooled logit by about {d_mu:+.2g} and τ² by about {d_tau2:+.2g} "
        f"(metafor: nAGQ={finer})"
    )


def _as_counts(values: NDArray[np.int64], name: str) -> FloatArray:
    arr = np.asarray(values)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name}: expected a non-empty 1-D array of counts")
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{name}: expected integer counts, got dtype {arr.dtype}")
    out = arr.astype(np.float64)
    if not np.all(np.isfinite(out)) or np.any(out != np.round(out)) or np.any(out < 0):
        raise ValueError(f"{name}: counts must be finite non-negative integers")
    return out


def fit_glmm(xi: NDArray[np.int64], ni: NDArray[np.int64], *, nagq: int = DEFAULT_NAGQ) -> GlmmFit:
    """Fit the binomial-normal random-intercept model by ML with adaptive quadrature.

    The one-row case of :func:`fit_glmm_rows`, plus what a single fit reports: metafor's
    heterogeneity tests, the conditional modes, and warnings. ``xi``: events per study,
    ``ni``: totals (``1 <= ni``, ``0 <= xi <= ni``); ``nagq``: quadrature nodes per study
    (metafor/lme4 default 7). Raises ``ValueError`` for bad arguments and
    :class:`~metaresp.errors.ConvergenceError` when the likelihood has no finite maximum
    (all studies at 0% or 100%) or the optimiser fails (the message says why). With k = 1,
    tau² is not estimable and is set to 0 (recorded in ``warnings``); with k = 2 a warning
    says that tau² rests on two studies. When a refit with ``2 * nagq + 1`` nodes is
    predicted to move mu or tau² by more than 5e-4 (relative), a warning says so: metafor's
    nAGQ = 7 is not enough for tau² above about 2 with studies at 0% or 100%.
    """
    if isinstance(nagq, bool) or not isinstance(nagq, int | np.integer) or nagq < 1:
        raise ValueError(f"nagq: expected an integer >= 1 (7 as in metafor), got {nagq!r}")
    nagq = int(nagq)
    x = _as_counts(xi, "xi")
    n = _as_counts(ni, "ni")
    if x.size != n.size:
        raise ValueError(f"xi and ni: lengths differ ({x.size} vs {n.size})")
    if np.any(n < 1):
        raise ValueError("ni: every total must be at least 1")
    if np.any(x > n):
        raise ValueError("xi: events must not exceed the totals ni")
    k = int(x.size)
    rows = fit_glmm_rows(x[None, :], n[None, :], nagq)
    code = int(rows.reason[0])
    if code != OK:
        advice = (
            "an inverse-variance model with continuity correction (estimator='REML')"
            if code in (ALL_EXTREME, DIVERGED)
            else "nagq=15, or an inverse-variance model (estimator='REML')"
        )
        raise ConvergenceError(f"GLMM: {REASONS[code]}; try {advice}")
    warnings: list[str] = []
    if k == 1:
        warnings.append(
            "GLMM with k = 1: τ² is not estimable and was set to 0 (common-effect binomial "
            "fit); no heterogeneity test"
        )
    elif k == 2:
        warnings.append("GLMM with k = 2: τ² is estimated from two studies and is very imprecise")
    mu, tau, se = float(rows.mu[0]), float(rows.tau[0]), float(rows.se[0])
    modes = rows.modes[0]
    at_boundary = k > 1 and tau == 0.0
    lchoose = _log_choose(x[None, :], n[None, :])
    if tau != 0.0:
        check = _quadrature_check(x[None, :], n[None, :], lchoose, mu, tau, modes[None, :], nagq)
        if check is not None:
            warnings.append(check)
    b = tau * modes
    p_cond = special.expit(mu + b)
    loglik_metafor = float(lchoose[0]) + float(
        np.sum(special.xlogy(x, p_cond) + special.xlogy(n - x, 1.0 - p_cond))
    )
    tau2 = tau * tau
    if k > 1:
        q_wald = float(saturated_wald(x[None, :], n[None, :])[0])
        q_lrt = float(lrt_heterogeneity(x[None, :], n[None, :])[0])
        df = k - 1
        # P(χ²_df > q): what scipy.stats.chi2.sf computes, without its argument handling
        q_wald_p = float(special.chdtrc(df, q_wald))
        q_lrt_p = float(special.chdtrc(df, q_lrt))
        n_extreme = int(((x == 0) | (x == n)).sum())
        if n_extreme:
            warnings.append(
                f"{n_extreme} of {k} studies have 0 or all events: their logit is infinite, so "
                "they add almost nothing (about 1e-7, as in metafor) to the Wald test of "
                "heterogeneity"
            )
    else:
        q_wald = q_lrt = q_wald_p = q_lrt_p = math.nan
        df = 0
    vt = _typical_variance(x, n)
    info = rows.info[0]
    return GlmmFit(
        mu=mu,
        se=se,
        tau2=tau2,
        converged=True,
        iterations=int(rows.iterations[0]),
        loglik=float(rows.loglik[0]),
        q_wald=q_wald,
        q_wald_df=df,
        q_wald_pvalue=q_wald_p,
        q_lrt=q_lrt,
        q_lrt_pvalue=q_lrt_p,
        warnings=tuple(warnings),
        k=k,
        nagq=nagq,
        at_boundary=at_boundary,
        loglik_metafor=loglik_metafor,
        i2=100.0 * tau2 / (vt + tau2),
        h2=tau2 / vt + 1.0,
        vt=vt,
        random_effects=tuple(float(v) for v in b),
        loglik_fe=float(rows.loglik_fe[0]),
        info=None
        if not np.isfinite(info).all()
        else ((float(info[0, 0]), float(info[0, 1])), (float(info[1, 0]), float(info[1, 1]))),
    )


def marginal_loglik(
    xi: NDArray[np.int64],
    ni: NDArray[np.int64],
    mu: float,
    tau2: float,
    *,
    nagq: int = DEFAULT_NAGQ,
) -> float:
    """Adaptive-quadrature marginal log-likelihood at (mu, tau2), binomial coefficients included.

    The function :func:`fit_glmm` maximises; useful to compare two fits (for instance ours and
    metafor's) on the same objective.
    """
    x = _as_counts(xi, "xi")
    n = _as_counts(ni, "ni")
    if x.size != n.size or np.any(n < 1) or np.any(x > n):
        raise ValueError("xi, ni: need equal lengths, ni >= 1 and 0 <= xi <= ni")
    if not tau2 >= 0.0:
        raise ValueError(f"tau2: expected a non-negative number, got {tau2!r}")
    xr, nr = x[None, :], n[None, :]
    ev = _evaluate(
        xr, nr, _log_choose(xr, nr), np.array([float(mu)]), np.array([math.sqrt(tau2)]), int(nagq)
    )
    return float(ev.loglik[0])
