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
from functools import lru_cache
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray
from scipy import special, stats

from metaresp.errors import ConvergenceError

__all__ = [
    "GlmmFit",
    "GlmmRows",
    "conditional_modes",
    "fit_glmm",
    "fit_glmm_rows",
    "marginal_loglik",
    "quadrature_rule",
]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

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

#: Why a row's fit failed (``GlmmRows.reason``); 0 = it did not.
OK, ALL_EXTREME, DIVERGED, STALLED, BOUNDARY_STOP, NOT_PD = 0, 1, 2, 3, 4, 5
REASONS: Final[dict[int, str]] = {
    ALL_EXTREME: (
        "every study has 0 or all events, so the likelihood has no finite maximum (the "
        "pooled logit or τ² runs to infinity)"
    ),
    DIVERGED: (
        "the maximum-likelihood estimate does not exist (the pooled logit or τ diverges)"
    ),
    STALLED: (
        f"the optimiser found no maximum (no increase of the likelihood, or no convergence "
        f"in {MAX_ITER} Newton steps from any start)"
    ),
    BOUNDARY_STOP: (
        "the optimiser stopped at τ² = 0 although the likelihood increases away from it"
    ),
    NOT_PD: "the observed information is not positive definite at the optimum",
}


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


@lru_cache(maxsize=16)
def quadrature_rule(nagq: int) -> tuple[FloatArray, FloatArray]:
    """Probabilists' Gauss-Hermite nodes t_j and log(w_j) + t_j²/2 (∫ e^{-t²/2} f(t) dt)."""
    t, w = np.polynomial.hermite_e.hermegauss(nagq)
    return t.astype(np.float64), (np.log(w) + 0.5 * t * t).astype(np.float64)


def conditional_modes(
    x: FloatArray,
    n: FloatArray,
    mu: FloatArray | float,
    tau: FloatArray | float,
    start: FloatArray | float = 0.0,
) -> FloatArray:
    """Modes ẑ_i of h_i(z) = x_i (mu + tau z) - n_i log(1 + e^(mu + tau z)) - z²/2.

    h_i is strictly concave (h'' <= -1) and its root lies between tau (x_i - n_i) and
    tau x_i, so Newton's method is safeguarded by bisection inside that bracket. ``mu``,
    ``tau`` and ``start`` broadcast against ``x`` (rows × studies).
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


@dataclass(frozen=True, slots=True)
class _Eval:
    loglik: FloatArray  # (r,)
    grad: FloatArray  # (r, 2)
    hess: FloatArray  # (r, 2, 2)
    modes: FloatArray  # (r, k)


def _evaluate(
    x: FloatArray,
    n: FloatArray,
    lchoose: FloatArray,
    mu: FloatArray,
    tau: FloatArray,
    nagq: int,
    start: FloatArray | float = 0.0,
) -> _Eval:
    """Adaptive-quadrature log-likelihood, its exact gradient and Louis' observed
    information in (μ, τ), per row (``x``, ``n``: rows × studies; ``mu``, ``tau``: rows).

    The rule is centred at the mode ẑ_i and scaled by s_i = (1 + τ² n_i p̂_i(1-p̂_i))^{-1/2}
    (Liu & Pierce 1994; lme4 ``nAGQ``). The Newton matrix is Louis' (1982) identity with the
    same nodes: Σ (E_i[∂s/∂θ'] + Cov_i[s]), s = (r, z r), r = x - n p. The gradient is the
    exact gradient of the quadrature approximation itself: the nodes z_j = ẑ + s t_j move
    with (μ, τ), dẑ/dθ from h'(ẑ) = 0 (implicit function theorem), plus (ds/dθ)/s.
    """
    t, logw = quadrature_rule(nagq)
    m = mu[:, None]
    s = tau[:, None]
    zhat = conditional_modes(x, n, m, s, start)
    p_hat = special.expit(m + s * zhat)
    v_hat = n * p_hat * (1.0 - p_hat)
    curv = 1.0 + s * s * v_hat
    scale = 1.0 / np.sqrt(curv)
    z = zhat[..., None] + scale[..., None] * t  # rows × studies × nodes
    eta = m[..., None] + s[..., None] * z
    xe = x[..., None]
    ne = n[..., None]
    log_f = xe * eta - ne * np.logaddexp(0.0, eta) - 0.5 * z * z + logw
    top = log_f.max(axis=-1, keepdims=True)
    f = np.exp(log_f - top)
    total = f.sum(axis=-1, keepdims=True)
    k = x.shape[1]
    loglik = lchoose + (np.log(scale) + top[..., 0] + np.log(total[..., 0])).sum(axis=1)
    loglik = loglik - k * _LOG_SQRT_2PI
    post = f / total
    p = special.expit(eta)
    r = xe - ne * p
    v = ne * p * (1.0 - p)
    zr = z * r
    e_r = (post * r).sum(axis=-1)
    e_zr = (post * zr).sum(axis=-1)
    rr_v = r * r - v
    h_mm = ((post * rr_v).sum(axis=-1) - e_r * e_r).sum(axis=1)
    h_mt = ((post * z * rr_v).sum(axis=-1) - e_r * e_zr).sum(axis=1)
    h_tt = ((post * (zr * zr - z * z * v)).sum(axis=-1) - e_zr * e_zr).sum(axis=1)
    r_hat = x - n * p_hat
    dz_mu = -s * v_hat / curv
    dz_tau = (r_hat - s * v_hat * zhat) / curv
    dv_deta = v_hat * (1.0 - 2.0 * p_hat)
    dlogs_mu = -0.5 * (s * s * dv_deta * (1.0 + s * dz_mu)) / curv
    dlogs_tau = -0.5 * (2.0 * s * v_hat + s * s * dv_deta * (zhat + s * dz_tau)) / curv
    slope = s[..., None] * r - z
    ts = t * scale[..., None]
    grad_mu = e_r + (post * slope * (dz_mu[..., None] + ts * dlogs_mu[..., None])).sum(axis=-1)
    grad_tau = e_zr + (post * slope * (dz_tau[..., None] + ts * dlogs_tau[..., None])).sum(axis=-1)
    grad = np.stack([(grad_mu + dlogs_mu).sum(axis=1), (grad_tau + dlogs_tau).sum(axis=1)], axis=1)
    hess = np.stack([np.stack([h_mm, h_mt], axis=1), np.stack([h_mt, h_tt], axis=1)], axis=1)
    return _Eval(loglik=loglik, grad=grad, hess=hess, modes=zhat)


def _ascent_directions(grad: FloatArray, hess: FloatArray) -> FloatArray:
    """Newton directions for maximisation, -H made positive definite by |eigenvalues|
    floored at 1e-8 of the largest, each step shortened to at most 2 logit units."""
    values, vectors = np.linalg.eigh(-hess)
    floor = 1e-8 * np.maximum(1.0, np.abs(values).max(axis=1))
    values = np.maximum(np.abs(values), floor[:, None])
    coef = np.einsum("rji,rj->ri", vectors, grad) / values
    step = np.einsum("rij,rj->ri", vectors, coef)
    largest = np.abs(step).max(axis=1)
    shrink = np.where(largest > 2.0, 2.0 / np.where(largest > 0.0, largest, 1.0), 1.0)
    out: FloatArray = step * shrink[:, None]
    return out


# Outcome codes of one Newton run per row.
_ACTIVE, _INTERIOR, _BOUNDARY, _DIVERGED, _STALLED = 0, 1, 2, 3, 4


@dataclass(frozen=True, slots=True)
class _NewtonRun:
    mu: FloatArray
    tau: FloatArray
    loglik: FloatArray
    modes: FloatArray
    status: IntArray
    iterations: IntArray


def _newton_rows(
    x: FloatArray,
    n: FloatArray,
    lchoose: FloatArray,
    mu0: FloatArray,
    tau0: FloatArray,
    boundary_ok: BoolArray,
    nagq: int,
) -> _NewtonRun:
    """Newton ascent over signed τ with an Armijo backtracking line search, all rows at once.

    Per row: stop at τ = 0 (boundary) when the curvature at τ = 0 allows it and |τ| < 1e-6;
    at a step below 1e-9 with a score below 1e-7 (1 + Σn); give up when |τ| > 30 or
    |μ| > 40 (no finite maximum), when the line search cannot increase ℓ away from a
    stationary point, or after 100 iterations. Each mode search starts from the last
    accepted modes of its row.
    """
    r = x.shape[0]
    mu = mu0.copy()
    tau = tau0.copy()
    ev = _evaluate(x, n, lchoose, mu, tau, nagq)
    loglik, grad, hess, modes = ev.loglik.copy(), ev.grad.copy(), ev.hess.copy(), ev.modes.copy()
    status = np.full(r, _ACTIVE, dtype=np.int64)
    iterations = np.zeros(r, dtype=np.int64)
    grad_tol = GRAD_TOL * (1.0 + n.sum(axis=1))
    active = np.arange(r)
    for it in range(1, MAX_ITER + 1):
        if active.size == 0:
            break
        iterations[active] = it
        step = _ascent_directions(grad[active], hess[active])
        slope = (grad[active] * step).sum(axis=1)
        alpha = np.ones(active.size)
        accepted = np.zeros(active.size, dtype=bool)
        todo = np.arange(active.size)
        for _ in range(40):
            if todo.size == 0:
                break
            rows = active[todo]
            trial = _evaluate(
                x[rows], n[rows], lchoose[rows],
                mu[rows] + alpha[todo] * step[todo, 0],
                tau[rows] + alpha[todo] * step[todo, 1],
                nagq, modes[rows],
            )
            ok = trial.loglik >= loglik[rows] + 1e-4 * alpha[todo] * slope[todo]
            good = todo[ok]
            rows_ok = active[good]
            mu[rows_ok] = mu[rows_ok] + alpha[good] * step[good, 0]
            tau[rows_ok] = tau[rows_ok] + alpha[good] * step[good, 1]
            loglik[rows_ok] = trial.loglik[ok]
            grad[rows_ok] = trial.grad[ok]
            hess[rows_ok] = trial.hess[ok]
            modes[rows_ok] = trial.modes[ok]
            accepted[good] = True
            alpha[todo[~ok]] *= 0.5
            todo = todo[~ok]
        step_len = np.abs(alpha[:, None] * step).max(axis=1)
        stuck = active[~accepted]
        stationary = np.abs(grad[stuck]).max(axis=1) < 1e3 * GRAD_TOL
        status[stuck] = np.where(stationary, _INTERIOR, _STALLED)
        diverged = (np.abs(tau[active]) > TAU_DIVERGED) | (np.abs(mu[active]) > MU_DIVERGED)
        diverged |= ~np.isfinite(mu[active]) | ~np.isfinite(tau[active])
        diverged &= accepted
        status[active[diverged]] = _DIVERGED
        at_zero = accepted & ~diverged & boundary_ok[active] & (np.abs(tau[active]) < TAU_BOUNDARY)
        status[active[at_zero]] = _BOUNDARY
        small = accepted & ~diverged & ~at_zero & (step_len < STEP_TOL)
        small &= np.abs(grad[active]).max(axis=1) < grad_tol[active]
        status[active[small]] = _INTERIOR
        active = active[status[active] == _ACTIVE]
    status[active] = _STALLED
    return _NewtonRun(mu, tau, loglik, modes, status, iterations)


def _fd_hessian(
    x: FloatArray,
    n: FloatArray,
    lchoose: FloatArray,
    mu: FloatArray,
    tau: FloatArray,
    nagq: int,
    start: FloatArray | float = 0.0,
) -> FloatArray:
    """Hessian of the quadrature log-likelihood from central differences of its exact
    gradient, step 1e-5 (1 + |θ|), symmetrised: the matrix whose inverse gives SE(μ̂), as
    lme4's ``vcov`` for ``nAGQ > 0`` (there by differences of the deviance); the truncation
    error is of order 1e-10."""
    cols = []
    for i, theta in enumerate((mu, tau)):
        h = 1e-5 * (1.0 + np.abs(theta))
        dm = h if i == 0 else 0.0
        dt = h if i == 1 else 0.0
        up = _evaluate(x, n, lchoose, mu + dm, tau + dt, nagq, start).grad
        down = _evaluate(x, n, lchoose, mu - dm, tau - dt, nagq, start).grad
        cols.append((up - down) / (2.0 * h[:, None]))
    hess = np.stack(cols, axis=2)
    out: FloatArray = 0.5 * (hess + np.swapaxes(hess, 1, 2))
    return out


@dataclass(frozen=True, slots=True)
class GlmmRows:
    """Maximum-likelihood fits of the binomial-normal model, one entry per row.

    ``mu`` (logit of the median-study proportion), ``tau`` (≥ 0, exactly 0 at the
    boundary), ``se`` of μ̂ from the observed information, ``loglik`` (binomial coefficients
    included), ``loglik_fe`` (the common-effect model's), Newton ``iterations`` (all starts),
    conditional ``modes`` ẑ (rows × studies), the observed information ``info`` (rows × 2 ×
    2; NaN at the boundary); ``reason`` is 0 where the fit succeeded and otherwise a key of
    :data:`REASONS`; ``failed`` is ``reason != 0``.
    """

    mu: FloatArray
    tau: FloatArray
    se: FloatArray
    loglik: FloatArray
    loglik_fe: FloatArray
    iterations: IntArray
    modes: FloatArray
    info: FloatArray
    reason: IntArray

    @property
    def failed(self) -> BoolArray:
        out: BoolArray = self.reason != OK
        return out


def _log_choose(x: FloatArray, n: FloatArray) -> FloatArray:
    out: FloatArray = (
        special.gammaln(n + 1.0) - special.gammaln(x + 1.0) - special.gammaln(n - x + 1.0)
    ).sum(axis=1)
    return out


def fit_glmm_rows(
    events: NDArray[np.integer[Any]] | FloatArray,
    totals: NDArray[np.integer[Any]] | FloatArray,
    nagq: int = DEFAULT_NAGQ,
) -> GlmmRows:
    """Binomial-normal GLMM (ML, logit link, adaptive quadrature) of every row at once.

    ``events``, ``totals``: (R, k) counts, checked by the caller (1 ≤ n, 0 ≤ x ≤ n).
    ℓ(μ, τ) is even in τ and maximised over signed τ by Newton's method from
    μ = logit(Σx/Σn) and τ0 = max(τ_mom, 0.3), then 1 and 3 where a start fails or stops at
    the boundary; the curvature at τ = 0, Σ{(x - n p̂)² - n p̂(1-p̂)}, decides whether τ = 0
    may be the answer (only 1 and 3 are tried from a boundary that is a local maximum). An
    interior maximum must beat the common-effect likelihood; otherwise the fit is the
    common-effect binomial one (τ = 0, SE = (Σ n p̂(1-p̂))^{-1/2}). SE(μ̂)² is the (μ, μ)
    entry of the inverse observed information. With k = 1 the fit is the common-effect one.
    """
    x = np.asarray(events, dtype=np.float64)
    n = np.asarray(totals, dtype=np.float64)
    r, k = x.shape
    lchoose = _log_choose(x, n)
    extreme = (x == 0) | (x == n)
    reason = np.where(extreme.all(axis=1), ALL_EXTREME, OK).astype(np.int64)
    p_fe = np.where(reason == ALL_EXTREME, 0.5, x.sum(axis=1) / n.sum(axis=1))
    mu_fe = np.log(p_fe / (1.0 - p_fe))
    v_fe = n * p_fe[:, None] * (1.0 - p_fe[:, None])
    ll_fe = lchoose + (
        special.xlogy(x, p_fe[:, None]) + special.xlogy(n - x, 1.0 - p_fe[:, None])
    ).sum(axis=1)
    curvature0 = ((x - n * p_fe[:, None]) ** 2 - v_fe).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        tau_mom = np.sqrt(np.maximum(curvature0, 0.0) / (v_fe * v_fe).sum(axis=1))
    boundary_ok = curvature0 <= 0.0

    best_mu = np.full(r, np.nan)
    best_tau = np.full(r, np.nan)
    best_ll = np.full(r, -np.inf)
    best_modes = np.zeros((r, k))
    found = np.zeros(r, dtype=bool)
    iterations = np.zeros(r, dtype=np.int64)
    pending = np.flatnonzero(reason == OK) if k > 1 else np.zeros(0, dtype=np.int64)
    for start in range(3):
        if pending.size == 0:
            break
        interior0 = curvature0[pending] > 0.0
        if start == 2:
            pending = pending[interior0]
            interior0 = interior0[interior0]
            if pending.size == 0:
                break
        options = (np.maximum(tau_mom[pending], 0.3), 1.0, 3.0)
        tau0 = np.where(interior0, options[start], options[start + 1] if start < 2 else 3.0)
        run = _newton_rows(
            x[pending], n[pending], lchoose[pending], mu_fe[pending], tau0,
            boundary_ok[pending], nagq,
        )
        iterations[pending] += run.iterations
        diverged = run.status == _DIVERGED
        reason[pending[diverged]] = DIVERGED
        ok = (run.status == _INTERIOR) | (run.status == _BOUNDARY)
        tau_run = np.where(run.status == _BOUNDARY, 0.0, run.tau)
        better = ok & (~found[pending] | (run.loglik > best_ll[pending]))
        rows = pending[better]
        best_mu[rows] = run.mu[better]
        best_tau[rows] = tau_run[better]
        best_ll[rows] = run.loglik[better]
        best_modes[rows] = run.modes[better]
        found[rows] = True
        interior = ok & (tau_run != 0.0)
        pending = pending[~diverged & ~interior]
    if k > 1:
        reason[(reason == OK) & ~found] = STALLED
        reason[(reason == OK) & (curvature0 > 0.0) & (best_tau == 0.0)] = BOUNDARY_STOP

    mu = mu_fe.copy()
    tau = np.zeros(r)
    with np.errstate(divide="ignore"):
        se = 1.0 / np.sqrt(v_fe.sum(axis=1))
    loglik = ll_fe.copy()
    modes = np.zeros((r, k))
    info_all = np.full((r, 2, 2), np.nan)
    use = (reason == OK) & found & (best_tau != 0.0) & (best_ll > ll_fe)
    rows = np.flatnonzero(use)
    if rows.size:
        info = -_fd_hessian(
            x[rows], n[rows], lchoose[rows], best_mu[rows], best_tau[rows], nagq, best_modes[rows]
        )
        a, b, c = info[:, 0, 0], info[:, 0, 1], info[:, 1, 1]
        det = a * c - b * b
        pd = (a > 0.0) & (c > 0.0) & (det > 0.0)
        reason[rows[~pd]] = NOT_PD
        mu[rows] = best_mu[rows]
        sign = np.sign(best_tau[rows])
        tau[rows] = np.abs(best_tau[rows])
        with np.errstate(divide="ignore", invalid="ignore"):
            se[rows] = np.sqrt(c / det)
        loglik[rows] = best_ll[rows]
        modes[rows] = best_modes[rows] * sign[:, None]
        # the information in (mu, |tau|): flip the cross term with the sign of tau
        info[:, 0, 1] *= sign
        info[:, 1, 0] *= sign
        info_all[rows] = info
    reason[(reason == OK) & (~np.isfinite(mu) | ~np.isfinite(se))] = STALLED
    return GlmmRows(
        mu=mu, tau=tau, se=se, loglik=loglik, loglik_fe=ll_fe, iterations=iterations,
        modes=modes, info=info_all, reason=reason,
    )


# --------------------------------------------------------------------------- tests and checks


def _binomial_deviance(y: FloatArray, mu: FloatArray, n: FloatArray) -> FloatArray:
    out: FloatArray = 2.0 * (
        n * (special.xlogy(y, y / mu) + special.xlogy(1.0 - y, (1.0 - y) / (1.0 - mu)))
    ).sum(axis=1)
    return out


def saturated_wald(x: FloatArray, n: FloatArray) -> FloatArray:
    """metafor's QE.Wld per row: Wald test of the saturated logistic model's study contrasts.

    With one free logit per study, cov(eta) = diag(1 / W_i), so the Wald statistic for
    "all logits equal" is Σ W_i (eta_i - eta_W)², eta_W the W-weighted mean. For studies
    with 0 < x_i < n_i this is Σ w_i (logit(x_i / n_i) - ȳ_w)², w_i = x_i (n_i - x_i) / n_i.
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
        e = np.where(
            eta_new < -30.0,
            _DBL_EPS,
            np.where(eta_new > 30.0, 1.0 / _DBL_EPS, np.exp(np.clip(eta_new, -30.0, 30.0))),
        )
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
    x: FloatArray, n: FloatArray, lchoose: FloatArray, mu: float, tau: float, modes: FloatArray,
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
        q_wald_p = float(stats.chi2.sf(q_wald, df))
        q_lrt_p = float(stats.chi2.sf(q_lrt, df))
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
        info=None if not np.isfinite(info).all() else (
            (float(info[0, 0]), float(info[0, 1])), (float(info[1, 0]), float(info[1, 1]))
        ),
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
    ev = _evaluate(xr, nr, _log_choose(xr, nr), np.array([float(mu)]),
                   np.array([math.sqrt(tau2)]), int(nagq))
    return float(ev.loglik[0])
