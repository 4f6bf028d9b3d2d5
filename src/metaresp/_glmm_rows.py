"""The likelihood machinery of the binomial-normal GLMM, for many datasets at once.

Adaptive Gauss-Hermite quadrature of each study's random effect, its exact gradient and
Louis' observed information, and the safeguarded Newton iteration over signed τ, on
(rows × studies) arrays; see :mod:`metaresp.glmm` for the model, the method and its
sources. :func:`fit_glmm_rows` is used by :func:`metaresp.glmm.fit_glmm` (one row) and by the
coverage simulation (thousands).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray
from scipy import special

from metaresp import models

__all__ = [
    "REASONS",
    "GlmmRows",
    "conditional_modes",
    "fit_glmm_rows",
    "quadrature_rule",
]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

#: Default number of quadrature nodes (metafor's ``rma.glmm(nAGQ = 7)``; from the registry).
DEFAULT_NAGQ = models.DEFAULT_NAGQ
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
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)

#: Why a row's fit failed (``GlmmRows.reason``); 0 = it did not.
OK, ALL_EXTREME, DIVERGED, STALLED, BOUNDARY_STOP, NOT_PD = 0, 1, 2, 3, 4, 5
REASONS: Final[dict[int, str]] = {
    ALL_EXTREME: (
        "every study has 0 or all events, so the likelihood has no finite maximum (the "
        "pooled logit or τ² runs to infinity)"
    ),
    DIVERGED: ("the maximum-likelihood estimate does not exist (the pooled logit or τ diverges)"),
    STALLED: (
        f"the optimiser found no maximum (no increase of the likelihood, or no convergence "
        f"in {MAX_ITER} Newton steps from any start)"
    ),
    BOUNDARY_STOP: (
        "the optimiser stopped at τ² = 0 although the likelihood increases away from it"
    ),
    NOT_PD: "the observed information is not positive definite at the optimum",
}


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
                x[rows],
                n[rows],
                lchoose[rows],
                mu[rows] + alpha[todo] * step[todo, 0],
                tau[rows] + alpha[todo] * step[todo, 1],
                nagq,
                modes[rows],
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
            x[pending],
            n[pending],
            lchoose[pending],
            mu_fe[pending],
            tau0,
            boundary_ok[pending],
            nagq,
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
        mu=mu,
        tau=tau,
        se=se,
        loglik=loglik,
        loglik_fe=ll_fe,
        iterations=iterations,
        modes=modes,
        info=info_all,
        reason=reason,
    )
