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

Batching over many datasets (for simulation). Every quantity above is a sum over studies
of elementwise functions on a (nodes × studies) grid, so R datasets padded to a common
k_max stack into (nodes × R × k_max) arrays with a 0/1 study mask multiplying each
study's contribution (padding with x = 0, n = 1 is harmless once masked). The mode search
is already elementwise; the Newton step is a batch of 2 × 2 solves (closed form), with a
per-dataset step length and a per-dataset "done" mask, and the boundary check is the
closed-form curvature above per dataset. That would turn R fits into about the same number
of NumPy calls as one fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray
from scipy import special, stats

from metaresp.errors import ConvergenceError

__all__ = ["GlmmFit", "fit_glmm", "marginal_loglik"]

FloatArray = NDArray[np.float64]

#: Default number of quadrature nodes: metafor's ``rma.glmm(nAGQ = 7)`` default.
DEFAULT_NAGQ = 7
#: Largest Newton iteration count before the fit is declared failed.
MAX_ITER = 100
#: Convergence: largest Newton step in (mu, tau) and largest absolute score.
STEP_TOL = 1e-9
GRAD_TOL = 1e-7
#: |tau| (logit-scale SD) or |mu| beyond these means the likelihood has no finite maximum.
TAU_DIVERGED = 30.0
MU_DIVERGED = 40.0
#: Below this |tau| the fit is the boundary (common-effect) fit.
TAU_BOUNDARY = 1e-6
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
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


@dataclass(frozen=True)
class GlmmFit:
    """A fitted binomial-normal GLMM (logit scale).

    ``mu``/``se``: pooled logit and its standard error; ``tau2``: between-study variance
    (exactly 0 when the maximum is on the boundary); ``q_wald``/``q_lrt``: metafor's
    ``QE.Wld``/``QE.LRT`` with p-values on ``q_wald_df = k - 1`` df (NaN when k = 1);
    ``i2``/``h2``/``vt``: metafor's I², H² and typical within-study variance;
    ``random_effects``: conditional modes ``tau * ẑ_i`` of the study effects.
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


@dataclass(frozen=True)
class _Data:
    x: FloatArray
    n: FloatArray
    log_choose: float


@dataclass(frozen=True)
class _Eval:
    loglik: float
    grad: FloatArray
    hess: FloatArray
    modes: FloatArray


@lru_cache(maxsize=16)
def quadrature_rule(nagq: int) -> tuple[FloatArray, FloatArray]:
    """Probabilists' Gauss-Hermite nodes t_j and log(w_j) + t_j²/2 (∫ e^{-t²/2} f(t) dt)."""
    t, w = np.polynomial.hermite_e.hermegauss(nagq)
    return t.astype(np.float64), (np.log(w) + 0.5 * t * t).astype(np.float64)


def conditional_modes(x: FloatArray, n: FloatArray, mu: FloatArray | float,
                      tau: FloatArray | float, start: FloatArray | float = 0.0) -> FloatArray:
    """Modes ẑ_i of h_i(z) = x_i (mu + tau z) - n_i log(1 + e^(mu + tau z)) - z²/2.

    h_i is strictly concave (h'' <= -1) and its root lies between tau (x_i - n_i) and
    tau x_i, so Newton's method is safeguarded by bisection inside that bracket. ``mu``,
    ``tau`` and ``start`` broadcast against ``x`` (one dataset here; rows × studies in the
    simulation's batch layer).
    """
    a, b = tau * x, tau * (x - n)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    z = np.clip(np.broadcast_to(start, lo.shape), lo, hi)
    for _ in range(200):
        p = special.expit(mu + tau * z)
        g = tau * (x - n * p) - z
        lo = np.where(g > 0.0, z, lo)
        hi = np.where(g < 0.0, z, hi)
        z_new = z + g / (1.0 + tau * tau * n * p * (1.0 - p))
        outside = (z_new < lo) | (z_new > hi)
        z_new = np.where(outside, 0.5 * (lo + hi), z_new)
        done = bool(np.all(np.abs(z_new - z) <= 1e-13 * (1.0 + np.abs(z))))
        z = z_new
        if done:
            break
    out: FloatArray = z
    return out


def _evaluate(mu: float, tau: float, data: _Data, nagq: int, start: FloatArray) -> _Eval:
    """Adaptive-quadrature log-likelihood with its score and observed Hessian in (mu, tau)."""
    t, logw = quadrature_rule(nagq)
    x, n = data.x, data.n
    zhat = conditional_modes(data.x, data.n, mu, tau, start)
    p_hat = special.expit(mu + tau * zhat)
    scale = 1.0 / np.sqrt(1.0 + tau * tau * n * p_hat * (1.0 - p_hat))
    z = zhat[None, :] + scale[None, :] * t[:, None]  # nodes × studies
    eta = mu + tau * z
    log_f = x * eta - n * np.logaddexp(0.0, eta) - 0.5 * z * z + logw[:, None]
    top = log_f.max(axis=0)
    f = np.exp(log_f - top)
    total = f.sum(axis=0)
    loglik = data.log_choose + float(
        np.sum(np.log(scale) + top + np.log(total)) - x.size * _LOG_SQRT_2PI
    )
    post = f / total  # posterior weights of the nodes, per study
    p = special.expit(eta)
    r = x - n * p
    v = n * p * (1.0 - p)
    zr = z * r
    e_r = (post * r).sum(axis=0)
    e_zr = (post * zr).sum(axis=0)
    # Louis' identities: the observed information of the exact likelihood, each moment by
    # quadrature. Used as the Newton matrix (it differs from the Hessian of the quadrature
    # approximation only by the quadrature error).
    h_mm = np.sum((post * (r * r - v)).sum(axis=0) - e_r * e_r)
    h_mt = np.sum((post * z * (r * r - v)).sum(axis=0) - e_r * e_zr)
    h_tt = np.sum((post * (zr * zr - z * z * v)).sum(axis=0) - e_zr * e_zr)
    hess = np.array([[h_mm, h_mt], [h_mt, h_tt]])
    # Exact gradient of the quadrature approximation itself, nodes z_j = ẑ + s t_j moving
    # with (mu, tau): d/dθ [log s + log Σ_j w_j e^{h(z_j)}] = E[∂h/∂θ] + E[h'(z_j) dz_j/dθ]
    # + (ds/dθ)/s, with dẑ/dθ from h'(ẑ) = 0 (implicit function theorem).
    v_hat = n * p_hat * (1.0 - p_hat)
    r_hat = x - n * p_hat
    curv = 1.0 + tau * tau * v_hat
    dz_mu = -tau * v_hat / curv
    dz_tau = (r_hat - tau * v_hat * zhat) / curv
    dv_deta = v_hat * (1.0 - 2.0 * p_hat)
    dcurv_mu = tau * tau * dv_deta * (1.0 + tau * dz_mu)
    dcurv_tau = 2.0 * tau * v_hat + tau * tau * dv_deta * (zhat + tau * dz_tau)
    dlogs_mu = -0.5 * dcurv_mu / curv  # (ds/dθ)/s
    dlogs_tau = -0.5 * dcurv_tau / curv
    slope = tau * r - z  # h'(z) at the nodes
    t_nodes = t[:, None]
    grad_mu = e_r + (post * slope * (dz_mu + t_nodes * scale * dlogs_mu)).sum(axis=0)
    grad_tau = e_zr + (post * slope * (dz_tau + t_nodes * scale * dlogs_tau)).sum(axis=0)
    grad = np.array([np.sum(grad_mu + dlogs_mu), np.sum(grad_tau + dlogs_tau)])
    return _Eval(loglik=loglik, grad=grad, hess=hess, modes=zhat)


def _hessian(mu: float, tau: float, data: _Data, nagq: int, start: FloatArray) -> FloatArray:
    """Hessian of the quadrature log-likelihood: central differences of its exact gradient.

    This is the matrix ``lme4`` inverts for ``vcov`` (there by differences of the deviance);
    with a step of 1e-5 the truncation error is of order 1e-10.
    """
    cols = []
    for i in range(2):
        h = 1e-5 * (1.0 + abs((mu, tau)[i]))
        up = _evaluate(mu + h * (i == 0), tau + h * (i == 1), data, nagq, start).grad
        down = _evaluate(mu - h * (i == 0), tau - h * (i == 1), data, nagq, start).grad
        cols.append((up - down) / (2.0 * h))
    hess = np.column_stack(cols)
    out: FloatArray = 0.5 * (hess + hess.T)
    return out


def _ascent_direction(grad: FloatArray, hess: FloatArray) -> FloatArray:
    """Newton direction for maximisation, with -H made positive definite if it is not."""
    values, vectors = np.linalg.eigh(-hess)
    floor = 1e-8 * max(1.0, float(np.max(np.abs(values))))
    values = np.maximum(np.abs(values), floor)
    step: FloatArray = vectors @ ((vectors.T @ grad) / values)
    # Keep one step within a sane range on the logit scale.
    largest = float(np.max(np.abs(step)))
    if largest > 2.0:
        step = step * (2.0 / largest)
    return step


@dataclass(frozen=True)
class _Optimum:
    mu: float
    tau: float
    ev: _Eval
    iterations: int


def _newton(data: _Data, nagq: int, mu0: float, tau0: float, boundary_ok: bool) -> _Optimum:
    """Maximise the likelihood from (mu0, tau0); raise ConvergenceError on failure."""
    mu, tau = mu0, tau0
    ev = _evaluate(mu, tau, data, nagq, np.zeros_like(data.x))
    for it in range(1, MAX_ITER + 1):
        step = _ascent_direction(ev.grad, ev.hess)
        slope = float(ev.grad @ step)
        alpha = 1.0
        for _ in range(40):
            trial = _evaluate(mu + alpha * step[0], tau + alpha * step[1], data, nagq, ev.modes)
            if trial.loglik >= ev.loglik + 1e-4 * alpha * slope:
                break
            alpha *= 0.5
        else:
            # No ascent possible along the direction: accept if already stationary.
            if float(np.max(np.abs(ev.grad))) < 1e3 * GRAD_TOL:
                return _Optimum(mu, tau, ev, it)
            raise ConvergenceError(
                "GLMM: the line search found no increase of the likelihood "
                f"(mu = {mu:.4g}, tau = {abs(tau):.4g}); try nagq = 15 or an "
                "inverse-variance model (estimator='REML')"
            )
        mu, tau, ev = mu + alpha * step[0], tau + alpha * step[1], trial
        if abs(tau) > TAU_DIVERGED or abs(mu) > MU_DIVERGED:
            raise ConvergenceError(
                "GLMM: the maximum-likelihood estimate does not exist "
                f"(mu -> {mu:.3g}, tau -> {abs(tau):.3g} diverging); use an "
                "inverse-variance model with continuity correction (estimator='REML')"
            )
        if boundary_ok and abs(tau) < TAU_BOUNDARY:
            return _Optimum(mu, 0.0, ev, it)
        small_step = float(np.max(np.abs(alpha * step))) < STEP_TOL
        if small_step and float(np.max(np.abs(ev.grad))) < GRAD_TOL * (1.0 + data.n.sum()):
            return _Optimum(mu, tau, ev, it)
    raise ConvergenceError(
        f"GLMM: no convergence in {MAX_ITER} Newton iterations (mu = {mu:.4g}, "
        f"tau = {abs(tau):.4g}); try nagq = 15 or an inverse-variance model "
        "(estimator='REML')"
    )


def _quadrature_check(opt: _Optimum, data: _Data, nagq: int) -> str | None:
    """Warn when ``nagq`` nodes are too few: predict the optimum with 2 * nagq + 1 nodes.

    One Newton step from the current optimum on the finer rule's likelihood gives the
    shift of (mu, tau) to first order. With large tau² (above about 2 on the logit scale)
    and studies at 0% or 100%, seven nodes can move tau² by several percent.
    """
    finer = 2 * nagq + 1
    ev = _evaluate(opt.mu, opt.tau, data, finer, opt.ev.modes)
    try:
        shift = np.linalg.solve(-ev.hess, ev.grad)
    except np.linalg.LinAlgError:
        return None
    d_mu = float(shift[0])
    tau2 = opt.tau * opt.tau
    d_tau2 = (opt.tau + float(shift[1])) ** 2 - tau2
    if abs(d_mu) <= QUADRATURE_SHIFT_TOL * max(1.0, abs(opt.mu)) and abs(
        d_tau2
    ) <= QUADRATURE_SHIFT_TOL * max(1.0, tau2):
        return None
    return (
        f"GLMM: {nagq} quadrature nodes are too few for these data: {finer} nodes would "
        f"move mu by about {d_mu:+.2g} and tau² by about {d_tau2:+.2g}; refit with "
        f"nagq={finer} (metafor: nAGQ={finer})"
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


def _saturated_wald(x: FloatArray, n: FloatArray) -> float:
    """metafor's QE.Wld: Wald test of the saturated logistic model's study contrasts.

    With one free logit per study, cov(eta) = diag(1 / W_i), so the Wald statistic for
    "all logits equal" is Σ W_i (eta_i - eta_W)², eta_W the W-weighted mean. For studies
    with 0 < x_i < n_i this is Σ w_i (logit(x_i / n_i) - ȳ_w)², w_i = x_i (n_i - x_i) / n_i.
    A study with 0 or n_i events has no finite logit; R's ``glm`` stops its iteratively
    reweighted least squares (IRLS) at a large finite value whose contribution is about 1e-7.
    To return the same number, this function repeats the IRLS of R's ``glm.fit`` (starting
    values (n y + 0.5) / (n + 1), convergence when the relative deviance change is below
    1e-8, at most 25 iterations, the logit inverse clamped at |eta| = 30, and the
    covariance from the weights of the last IRLS step); the saturated model's Newton step
    acts on each study separately.
    """
    y = x / n
    mu = (n * y + 0.5) / (n + 1.0)
    eta = np.log(mu / (1.0 - mu))
    dev_old = _binomial_deviance(y, mu, n)
    weights = n * mu * (1.0 - mu)
    for _ in range(GLM_MAXIT):
        a = np.exp(-np.abs(eta))
        dmu = np.maximum(a / (1.0 + a) ** 2, _DBL_EPS)  # R's binomial()$mu.eta
        weights = n * dmu * dmu / (mu * (1.0 - mu))
        eta = eta + (y - mu) / dmu
        e = np.where(
            eta < -30.0,
            _DBL_EPS,
            np.where(eta > 30.0, 1.0 / _DBL_EPS, np.exp(np.clip(eta, -30.0, 30.0))),
        )
        mu = e / (1.0 + e)
        dev = _binomial_deviance(y, mu, n)
        if abs(dev - dev_old) / (abs(dev) + 0.1) < GLM_EPSILON:
            break
        dev_old = dev
    centre = float(np.sum(weights * eta) / np.sum(weights))
    return max(0.0, float(np.sum(weights * (eta - centre) ** 2)))


def _binomial_deviance(y: FloatArray, mu: FloatArray, n: FloatArray) -> float:
    return float(
        2.0
        * np.sum(n * (special.xlogy(y, y / mu) + special.xlogy(1.0 - y, (1.0 - y) / (1.0 - mu))))
    )


def _heterogeneity(x: FloatArray, n: FloatArray, p_fe: float) -> tuple[float, float]:
    """metafor's QE.Wld and QE.LRT (common-effect vs saturated logistic model)."""
    ll_sat = special.xlogy(x, x / n) + special.xlogy(n - x, (n - x) / n)
    ll_fe = special.xlogy(x, p_fe) + special.xlogy(n - x, 1.0 - p_fe)
    q_lrt = max(0.0, float(2.0 * np.sum(ll_sat - ll_fe)))
    return _saturated_wald(x, n), q_lrt


def _typical_variance(x: FloatArray, n: FloatArray) -> float:
    """metafor's ṽ = (k - 1) / tr(P) from escalc("PLO") variances (0.5 added to 0/n, n/n)."""
    add = np.where((x == 0) | (x == n), ESCALC_ADD, 0.0)
    vi = 1.0 / (x + add) + 1.0 / (n - x + add)
    if x.size == 1:
        return float(vi[0])
    wi = 1.0 / vi
    return float((x.size - 1) / (wi.sum() - np.sum(wi * wi) / wi.sum()))


def fit_glmm(xi: NDArray[np.int64], ni: NDArray[np.int64], *, nagq: int = DEFAULT_NAGQ) -> GlmmFit:
    """Fit the binomial-normal random-intercept model by ML with adaptive quadrature.

    ``xi``: events per study, ``ni``: totals (``1 <= ni``, ``0 <= xi <= ni``); ``nagq``:
    quadrature nodes per study (metafor/lme4 default 7). Raises ``ValueError`` for bad
    arguments and :class:`~metaresp.errors.ConvergenceError` when the likelihood has no
    finite maximum (all studies at 0% or 100%) or the optimiser fails. With k = 1, tau² is
    not estimable and is set to 0 (recorded in ``warnings``); with k = 2 a warning says that
    tau² rests on two studies. When a refit with ``2 * nagq + 1`` nodes is predicted to move
    mu or tau² by more than 5e-4 (relative), a warning recommends it: metafor's nAGQ = 7 is
    not enough for tau² above about 2 with studies at 0% or 100%.

    The optimiser starts from the common-effect estimate with tau = max(moment estimate,
    0.3), then 1 and 3 if needed (only 1 and 3 when tau = 0 is a local maximum);
    ``iterations`` counts Newton steps over all starts.
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
    extreme = (x == 0) | (x == n)
    if bool(np.all(x == 0)) or bool(np.all(x == n)) or bool(np.all(extreme)):
        which = (
            "0 events"
            if np.all(x == 0)
            else "all events"
            if np.all(x == n)
            else ("0 or all events")
        )
        raise ConvergenceError(
            f"GLMM: every study has {which}, so the likelihood has no finite maximum "
            "(the pooled logit or tau² runs to infinity); use an inverse-variance model "
            "with continuity correction (estimator='REML')"
        )
    data = _Data(x=x, n=n, log_choose=float(np.sum(_log_choose(n, x))))
    warnings: list[str] = []

    p_fe = float(x.sum() / n.sum())
    mu_fe = math.log(p_fe / (1.0 - p_fe))
    v_fe = n * p_fe * (1.0 - p_fe)
    ll_fe = data.log_choose + float(
        np.sum(special.xlogy(x, p_fe) + special.xlogy(n - x, 1.0 - p_fe))
    )
    curvature0 = float(np.sum((x - n * p_fe) ** 2 - v_fe))

    iterations = 0
    best: _Optimum | None = None
    if k == 1:
        warnings.append(
            "GLMM with k = 1: tau² is not estimable and was set to 0 (common-effect "
            "binomial fit); no heterogeneity test"
        )
    else:
        if k == 2:
            warnings.append(
                "GLMM with k = 2: tau² is estimated from two studies and is very imprecise"
            )
        tau_mom = math.sqrt(max(curvature0, 0.0) / float(np.sum(v_fe * v_fe)))
        failures: list[str] = []
        # From a boundary that is a local maximum, look for an interior one from two
        # positive starts; otherwise start near the moment estimate.
        starts = (max(tau_mom, 0.3), 1.0, 3.0) if curvature0 > 0.0 else (1.0, 3.0)
        for tau0 in starts:
            try:
                opt = _newton(data, nagq, mu_fe, tau0, boundary_ok=curvature0 <= 0.0)
            except ConvergenceError as exc:
                if "does not exist" in str(exc):
                    raise
                failures.append(str(exc))
                continue
            iterations += opt.iterations
            if best is None or opt.ev.loglik > best.ev.loglik:
                best = opt
            if opt.tau != 0.0:
                break
        if best is None:
            raise ConvergenceError(failures[-1])
        if curvature0 > 0.0 and best.tau == 0.0:
            raise ConvergenceError(
                "GLMM: the optimiser stopped at tau² = 0 although the likelihood increases "
                "away from it; try nagq = 15 or an inverse-variance model (estimator='REML')"
            )

    if best is not None and best.tau != 0.0 and best.ev.loglik > ll_fe:
        info = -_hessian(best.mu, best.tau, data, nagq, best.ev.modes)
        if not bool(np.all(np.linalg.eigvalsh(info) > 0.0)):
            raise ConvergenceError(
                "GLMM: the observed information is not positive definite at the optimum; "
                "try nagq = 15 or an inverse-variance model (estimator='REML')"
            )
        mu, tau = best.mu, abs(best.tau)
        se = math.sqrt(float(np.linalg.inv(info)[0, 0]))
        loglik = best.ev.loglik
        modes = best.ev.modes * np.sign(best.tau)
        at_boundary = False
        check = _quadrature_check(best, data, nagq)
        if check is not None:
            warnings.append(check)
    else:
        mu, tau = mu_fe, 0.0
        se = 1.0 / math.sqrt(float(v_fe.sum()))
        loglik = ll_fe
        modes = np.zeros_like(x)
        at_boundary = k > 1
    b = tau * modes
    p_cond = special.expit(mu + b)
    loglik_metafor = data.log_choose + float(
        np.sum(special.xlogy(x, p_cond) + special.xlogy(n - x, 1.0 - p_cond))
    )

    tau2 = tau * tau
    if k > 1:
        q_wald, q_lrt = _heterogeneity(x, n, p_fe)
        df = k - 1
        q_wald_p = float(stats.chi2.sf(q_wald, df))
        q_lrt_p = float(stats.chi2.sf(q_lrt, df))
        n_extreme = int(extreme.sum())
        if n_extreme:
            warnings.append(
                f"{n_extreme} of {k} studies have 0 or all events: their logit is infinite, "
                "so they add almost nothing (about 1e-7, as in metafor) to the Wald "
                "heterogeneity statistic q_wald"
            )
    else:
        q_wald = q_lrt = q_wald_p = q_lrt_p = math.nan
        df = 0
    vt = _typical_variance(x, n)
    return GlmmFit(
        mu=mu,
        se=se,
        tau2=tau2,
        converged=True,
        iterations=iterations,
        loglik=loglik,
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
    data = _Data(x=x, n=n, log_choose=float(np.sum(_log_choose(n, x))))
    return _evaluate(float(mu), math.sqrt(tau2), data, int(nagq), np.zeros_like(x)).loglik


def _log_choose(n: FloatArray, x: FloatArray) -> FloatArray:
    out: FloatArray = (
        special.gammaln(n + 1.0) - special.gammaln(x + 1.0) - special.gammaln(n - x + 1.0)
    )
    return out
