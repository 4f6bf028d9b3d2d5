"""The binomial-normal GLMM with moderators (metafor ``rma.glmm(measure="PLO", mods=)``).

    x_i | u_i ~ Binomial(n_i, expit(X_i β + u_i)),   u_i ~ N(0, τ²),

fitted by maximum likelihood with each study's random effect integrated by adaptive
Gauss-Hermite quadrature, as ``lme4::glmer(cbind(x, n - x) ~ X - 1 + (1 | study),
nAGQ = q)``, which metafor calls. It generalises :mod:`metaresp.glmm` (intercept only; the
method, its sources and the treatment of the boundary τ = 0 are described there): a study's
likelihood depends on β only through its linear predictor o_i = X_i β, so the gradient
and Louis' information in o_i per study, assembled with X, give them in β:

    ∂ℓ/∂β = X' g_o,   ∂²ℓ/∂β∂β' ≈ X' diag(h_oo) X,   ∂²ℓ/∂β∂τ ≈ X' h_oτ.

ℓ is even in τ and is maximised over signed τ by Newton's method with a backtracking line
search from several starts; τ = 0 (the logistic regression without random effects) wins
when no interior maximum has a higher likelihood. The covariance of β̂ is the β block of
the inverse of the Hessian of the quadrature log-likelihood in (β, τ) from central
differences of its exact gradient (lme4's ``vcov`` for ``nAGQ > 0`` inverts the same
Hessian, by differences of the deviance), or (X'WX)⁻¹ of the logistic regression at the
boundary.

Residual heterogeneity, as metafor: the logistic regression with these moderators against
the saturated model (one logit per study), on k - p df: the likelihood-ratio statistic
(``QE.LRT``) and the Wald statistic (``QE.Wld``), which for a saturated model is the
weighted residual sum of squares of the saturated logits on X, min_β Σ W_i (η_i - X_i β)²,
with R's ``glm`` logits and weights for studies with 0 or n_i events
(:func:`metaresp.glmm.saturated_fit`).

Weights (for plots only): 1/(1/(n_i p_i (1 - p_i)) + τ²) with p_i = expit(X_i β̂), the
study's approximate inverse marginal variance on the logit scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray
from scipy import special

from metaresp._glmm_quad import conditional_modes, quadrature_rule
from metaresp._regression_iv import projection
from metaresp.errors import ConvergenceError
from metaresp.glmm import QUADRATURE_SHIFT_TOL, saturated_fit

__all__ = ["GlmmRegression", "fit_glmm_regression"]

FloatArray = NDArray[np.float64]

MAX_ITER: Final[int] = 200
#: Newton steps on Louis' information before switching to the differenced Hessian.
LOUIS_STEPS: Final[int] = 8
STEP_TOL: Final[float] = 1e-10
GRAD_TOL: Final[float] = 1e-7
TAU_BOUNDARY: Final[float] = 1e-6
#: |β| or |τ| beyond these (logit units): no finite maximum.
DIVERGED: Final[float] = 40.0
#: A fitted logit beyond this (a proportion within 2e-9 of 0 or 1) means the moderators
#: separate studies with 0 (or all) events from the others: the maximum is at infinity.
SEPARATED: Final[float] = 20.0
_LOG_SQRT_2PI: Final[float] = 0.5 * math.log(2.0 * math.pi)


@dataclass(frozen=True, slots=True)
class GlmmRegression:
    beta: FloatArray
    vcov: FloatArray
    tau2: float
    loglik: float
    qe_wald: float
    qe_lrt: float
    weights: FloatArray
    notes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Eval:
    loglik: float
    grad: FloatArray  # (p + 1,)
    hess: FloatArray  # (p + 1, p + 1)
    modes: FloatArray  # (k,)


def _evaluate(
    x: FloatArray,
    n: FloatArray,
    lchoose: float,
    design: FloatArray,
    theta: FloatArray,
    nagq: int,
    start: FloatArray | float = 0.0,
) -> _Eval:
    """Quadrature log-likelihood at θ = (β, τ), its exact gradient and Louis' information
    (see :func:`metaresp._glmm_quad._evaluate`, of which this is the per-study form)."""
    beta, tau = theta[:-1], float(theta[-1])
    t, logw = quadrature_rule(nagq)
    o = design @ beta
    zhat = conditional_modes(x, n, o, tau, start)
    p_hat = special.expit(o + tau * zhat)
    v_hat = n * p_hat * (1.0 - p_hat)
    curv = 1.0 + tau * tau * v_hat
    scale = 1.0 / np.sqrt(curv)
    z = zhat[:, None] + scale[:, None] * t
    eta = o[:, None] + tau * z
    log_f = x[:, None] * eta - n[:, None] * np.logaddexp(0.0, eta) - 0.5 * z * z + logw
    top = log_f.max(axis=1, keepdims=True)
    f = np.exp(log_f - top)
    total = f.sum(axis=1, keepdims=True)
    loglik = lchoose + float((np.log(scale) + top[:, 0] + np.log(total[:, 0])).sum())
    loglik -= x.size * _LOG_SQRT_2PI
    post = f / total
    p = special.expit(eta)
    r = x[:, None] - n[:, None] * p
    v = n[:, None] * p * (1.0 - p)
    zr = z * r
    e_r = (post * r).sum(axis=1)
    e_zr = (post * zr).sum(axis=1)
    rr_v = r * r - v
    h_oo = (post * rr_v).sum(axis=1) - e_r * e_r
    h_ot = (post * z * rr_v).sum(axis=1) - e_r * e_zr
    h_tt = float(((post * (zr * zr - z * z * v)).sum(axis=1) - e_zr * e_zr).sum())
    r_hat = x - n * p_hat
    dz_o = -tau * v_hat / curv
    dz_t = (r_hat - tau * v_hat * zhat) / curv
    dv = v_hat * (1.0 - 2.0 * p_hat)
    dlogs_o = -0.5 * (tau * tau * dv * (1.0 + tau * dz_o)) / curv
    dlogs_t = -0.5 * (2.0 * tau * v_hat + tau * tau * dv * (zhat + tau * dz_t)) / curv
    slope = tau * r - z
    ts = t * scale[:, None]
    g_o = e_r + (post * slope * (dz_o[:, None] + ts * dlogs_o[:, None])).sum(axis=1) + dlogs_o
    g_t = e_zr + (post * slope * (dz_t[:, None] + ts * dlogs_t[:, None])).sum(axis=1) + dlogs_t
    grad = np.append(design.T @ g_o, g_t.sum())
    pdim = design.shape[1]
    hess = np.empty((pdim + 1, pdim + 1))
    hess[:pdim, :pdim] = design.T @ (h_oo[:, None] * design)
    hess[:pdim, pdim] = hess[pdim, :pdim] = design.T @ h_ot
    hess[pdim, pdim] = h_tt
    return _Eval(loglik, grad, hess, zhat)


def _direction(grad: FloatArray, hess: FloatArray) -> FloatArray:
    values, vectors = np.linalg.eigh(-hess)
    floor = 1e-8 * max(1.0, float(np.abs(values).max()))
    values = np.maximum(np.abs(values), floor)
    step: FloatArray = vectors @ ((vectors.T @ grad) / values)
    largest = float(np.abs(step).max())
    if largest > 2.0:
        step = step * (2.0 / largest)
    return step


def _newton(
    x: FloatArray, n: FloatArray, lchoose: float, design: FloatArray, theta0: FloatArray, nagq: int
) -> tuple[FloatArray, _Eval] | None:
    """Newton ascent with Armijo backtracking; None when it fails or diverges. Louis'
    information converges only linearly (it zigzags on a flat ridge), so after
    ``LOUIS_STEPS`` steps the Hessian is taken from central differences of the exact
    gradient instead, as :mod:`metaresp._glmm_rows` does."""
    theta = theta0.copy()
    ev = _evaluate(x, n, lchoose, design, theta, nagq)
    grad_tol = GRAD_TOL * (1.0 + float(n.sum()))
    for it in range(MAX_ITER):
        hess = ev.hess
        if it >= LOUIS_STEPS:
            hess = _fd_hessian(x, n, lchoose, design, theta, nagq, ev.modes)
        step = _direction(ev.grad, hess)
        slope = float(ev.grad @ step)
        alpha = 1.0
        for _ in range(50):
            trial_theta = theta + alpha * step
            trial = _evaluate(x, n, lchoose, design, trial_theta, nagq, ev.modes)
            if trial.loglik >= ev.loglik + 1e-4 * alpha * slope:
                break
            alpha *= 0.5
        else:
            stationary = float(np.abs(ev.grad).max()) < 1e3 * GRAD_TOL
            return (theta, ev) if stationary else None
        theta, ev = trial_theta, trial
        if not np.all(np.isfinite(theta)) or float(np.abs(theta).max()) > DIVERGED:
            return None
        if abs(theta[-1]) < TAU_BOUNDARY and float(np.abs(ev.grad[:-1]).max()) < grad_tol:
            theta[-1] = 0.0
            return theta, ev
        if float(np.abs(alpha * step).max()) < STEP_TOL and float(np.abs(ev.grad).max()) < grad_tol:
            return theta, ev
    return None


def _logistic(
    x: FloatArray, n: FloatArray, design: FloatArray
) -> tuple[FloatArray, FloatArray, float]:
    """The logistic regression without random effects by Newton's method: β, (X'WX)⁻¹ and
    the binomial log-likelihood without the binomial coefficients."""
    beta = np.zeros(design.shape[1])
    p0 = float(x.sum() / n.sum())
    beta[0] = math.log(p0 / (1.0 - p0))
    ll_old = -math.inf
    for _ in range(100):
        eta = design @ beta
        p = special.expit(eta)
        w = n * p * (1.0 - p)
        info = design.T @ (w[:, None] * design)
        beta = beta + np.linalg.solve(info, design.T @ (x - n * p))
        if not np.all(np.isfinite(beta)) or float(np.abs(beta).max()) > DIVERGED:
            raise ConvergenceError(
                "GLMM meta-regression: the logistic regression has no finite maximum "
                "(a moderator level or range where every study has 0 or all events); use an "
                "inverse-variance estimator (continuity-corrected) instead"
            )
        eta = design @ beta
        ll = float((x * eta - n * np.logaddexp(0.0, eta)).sum())
        if abs(ll - ll_old) <= 1e-12 * (1.0 + abs(ll)):
            break
        ll_old = ll
    if float(np.abs(design @ beta).max()) > SEPARATED:
        raise ConvergenceError(
            "GLMM meta-regression: the logistic regression has no finite maximum "
            "(a moderator level or range where every study has 0 or all events); use an "
            "inverse-variance estimator (continuity-corrected) instead"
        )
    p = special.expit(design @ beta)
    w = n * p * (1.0 - p)
    vcov = np.linalg.inv(design.T @ (w[:, None] * design))
    return beta, vcov, ll


def _fd_hessian(
    x: FloatArray,
    n: FloatArray,
    lchoose: float,
    design: FloatArray,
    theta: FloatArray,
    nagq: int,
    modes: FloatArray,
) -> FloatArray:
    dim = theta.size
    hess = np.empty((dim, dim))
    for j in range(dim):
        h = 1e-5 * (1.0 + abs(float(theta[j])))
        e = np.zeros(dim)
        e[j] = h
        up = _evaluate(x, n, lchoose, design, theta + e, nagq, modes).grad
        down = _evaluate(x, n, lchoose, design, theta - e, nagq, modes).grad
        hess[:, j] = (up - down) / (2.0 * h)
    out: FloatArray = 0.5 * (hess + hess.T)
    return out


def _quadrature_note(
    x: FloatArray,
    n: FloatArray,
    lchoose: float,
    design: FloatArray,
    theta: FloatArray,
    nagq: int,
    modes: FloatArray,
) -> str | None:
    """A warning when ``nagq`` nodes are too few: one Newton step on the likelihood with
    2 nagq + 1 nodes predicts how far the optimum would move (as :mod:`metaresp.glmm`)."""
    finer = 2 * nagq + 1
    ev = _evaluate(x, n, lchoose, design, theta, finer, modes)
    try:
        shift = np.linalg.solve(-ev.hess, ev.grad)
    except np.linalg.LinAlgError:  # pragma: no cover
        return None
    tau = float(theta[-1])
    d_tau2 = (tau + float(shift[-1])) ** 2 - tau * tau
    d_beta = float(np.max(np.abs(shift[:-1]) / np.maximum(1.0, np.abs(theta[:-1]))))
    if d_beta <= QUADRATURE_SHIFT_TOL and abs(d_tau2) <= QUADRATURE_SHIFT_TOL * max(1.0, tau * tau):
        return None
    return (
        f"{nagq} quadrature nodes per study are too few for these data: {finer} nodes would "
        f"move τ² by about {d_tau2:+.2g} (metafor: nAGQ={finer})"
    )


def fit_glmm_regression(
    xi: NDArray[np.int64], ni: NDArray[np.int64], design: FloatArray, nagq: int
) -> GlmmRegression:
    """ML fit of the binomial-normal meta-regression (see the module docstring).

    Columns that are not 0/1 dummies are centred and scaled to unit SD for the fit and the
    estimates transformed back (metafor's ``scaleX``), so that a moderator such as a
    calendar year does not make the intercept huge. Raises
    :class:`~metaresp.errors.ConvergenceError` when the likelihood has no finite maximum
    (every study at 0% or 100%, or separation by a moderator) or no start converges.
    """
    centre = np.zeros(design.shape[1])
    spread = np.ones(design.shape[1])
    for j in range(1, design.shape[1]):
        col = design[:, j]
        if not bool(np.isin(col, (0.0, 1.0)).all()):
            centre[j] = float(col.mean())
            spread[j] = float(col.std(ddof=1))
    scaled = (design - centre) / spread
    scaled[:, 0] = 1.0
    back = np.diag(1.0 / spread)
    back[0, 1:] = -centre[1:] / spread[1:]
    fit = _fit_scaled(xi, ni, scaled, nagq)
    return GlmmRegression(
        beta=back @ fit.beta,
        vcov=np.asarray(back @ fit.vcov @ back.T, dtype=np.float64),
        tau2=fit.tau2,
        loglik=fit.loglik,
        qe_wald=fit.qe_wald,
        qe_lrt=fit.qe_lrt,
        weights=fit.weights,
        notes=fit.notes,
    )


def _fit_scaled(
    xi: NDArray[np.int64], ni: NDArray[np.int64], design: FloatArray, nagq: int
) -> GlmmRegression:
    x = xi.astype(np.float64)
    n = ni.astype(np.float64)
    if bool(((x == 0) | (x == n)).all()):
        raise ConvergenceError(
            "GLMM meta-regression: every study has 0 or all events, so the likelihood has no "
            "finite maximum"
        )
    lchoose = float(
        (special.gammaln(n + 1) - special.gammaln(x + 1) - special.gammaln(n - x + 1)).sum()
    )
    beta_fe, vcov_fe, ll_fe_kernel = _logistic(x, n, design)
    ll_fe = lchoose + ll_fe_kernel
    ll_sat = lchoose + float((special.xlogy(x, x / n) + special.xlogy(n - x, (n - x) / n)).sum())
    qe_lrt = max(0.0, 2.0 * (ll_sat - ll_fe))
    eta_sat, w_sat = saturated_fit(x[None, :], n[None, :])
    qe_wald = max(0.0, float(eta_sat[0] @ projection(design, w_sat[0]) @ eta_sat[0]))

    p_fe = special.expit(design @ beta_fe)
    v_fe = n * p_fe * (1.0 - p_fe)
    curvature0 = float(((x - n * p_fe) ** 2 - v_fe).sum())
    tau_mom = math.sqrt(max(curvature0, 0.0) / float((v_fe * v_fe).sum()))
    best: tuple[FloatArray, _Eval] | None = None
    for tau0 in (max(tau_mom, 0.3), 1.0, 3.0):
        run = _newton(x, n, lchoose, design, np.append(beta_fe, tau0), nagq)
        if run is None or run[0][-1] == 0.0:
            continue
        if best is None or run[1].loglik > best[1].loglik:
            best = run
        if curvature0 > 0.0:
            break
    notes: list[str] = []
    if best is None and curvature0 > 0.0:
        raise ConvergenceError(
            "GLMM meta-regression: the optimiser found no maximum from any start; use an "
            "inverse-variance estimator instead"
        )
    if best is not None and best[1].loglik > ll_fe:
        theta, ev = best
        tau = abs(float(theta[-1]))
        theta = np.append(theta[:-1], tau)
        ev = _evaluate(x, n, lchoose, design, theta, nagq, ev.modes)
        info = -_fd_hessian(x, n, lchoose, design, theta, nagq, ev.modes)
        try:
            vcov_full = np.linalg.inv(info)
        except np.linalg.LinAlgError as exc:  # pragma: no cover - guarded by the PD check
            raise ConvergenceError("GLMM meta-regression: singular information") from exc
        if not bool(np.all(np.linalg.eigvalsh(info) > 0.0)):
            notes.append("the observed information is not positive definite at the optimum")
        note = _quadrature_note(x, n, lchoose, design, theta, nagq, ev.modes)
        if note is not None:
            notes.append(note)
        beta = theta[:-1]
        vcov = np.asarray(vcov_full[:-1, :-1], dtype=np.float64)
        tau2 = tau * tau
        loglik = ev.loglik
    else:
        beta, vcov, tau2, loglik = beta_fe, vcov_fe, 0.0, ll_fe
    p_fit = special.expit(design @ beta)
    weights = 1.0 / (1.0 / (n * p_fit * (1.0 - p_fit)) + tau2)
    return GlmmRegression(
        beta=beta,
        vcov=vcov,
        tau2=tau2,
        loglik=loglik,
        qe_wald=qe_wald,
        qe_lrt=qe_lrt,
        weights=weights,
        notes=tuple(notes),
    )
