"""Maximum-likelihood fits of the binomial-normal GLMM, for many datasets at once.

The safeguarded Newton iteration over signed τ on the adaptive-quadrature likelihood of
:mod:`metaresp._glmm_quad`, on (rows × studies) arrays; see :mod:`metaresp.glmm` for the
model, the method and its sources. :func:`fit_glmm_rows` is used by
:func:`metaresp.glmm.fit_glmm` (one row) and by the coverage simulation (thousands); a single
row is iterated in Python floats (:func:`_newton_one`, the same steps as
:func:`_newton_rows` without the bookkeeping of many rows).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray
from scipy import special

from metaresp import models
from metaresp._glmm_quad import (
    _evaluate,
    _fd_hessian,
    conditional_modes,
    quadrature_rule,
)

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
#: Newton steps on Louis' information before switching to the differenced Hessian.
LOUIS_ITER = 8
#: Convergence: largest Newton step in (mu, tau) and largest absolute score.
STEP_TOL = 1e-9
GRAD_TOL = 1e-7
#: |tau| (logit-scale SD) or |mu| beyond these means the likelihood has no finite maximum.
TAU_DIVERGED = 30.0
MU_DIVERGED = 40.0
#: Below this |tau| the fit is the boundary (common-effect) fit.
TAU_BOUNDARY = 1e-6
#: A maximum with |τ| below this (τ² < 1e-8) is reported as the common-effect fit.
TAU_NEGLIGIBLE = 1e-4

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
    out_mu = mu0.copy()
    out_tau = tau0.copy()
    ev = _evaluate(x, n, lchoose, out_mu, out_tau, nagq)
    out_ll, out_modes = ev.loglik.copy(), ev.modes.copy()
    status = np.full(r, _ACTIVE, dtype=np.int64)
    iterations = np.zeros(r, dtype=np.int64)
    # the state of the rows still iterating, compacted whenever rows finish (so that a
    # single fit, or a batch in which every row is still going, indexes nothing)
    idx = np.arange(r)
    ax, an, alc, bok = x, n, lchoose, boundary_ok
    gtol = GRAD_TOL * (1.0 + n.sum(axis=1))
    mu, tau = out_mu.copy(), out_tau.copy()
    loglik, grad, hess, modes = ev.loglik, ev.grad, ev.hess, ev.modes

    def finish(rows: BoolArray, codes: IntArray | int) -> None:
        nonlocal idx, ax, an, alc, bok, gtol, mu, tau, loglik, grad, hess, modes
        which = idx[rows]
        status[which] = codes
        out_mu[which] = mu[rows]
        out_tau[which] = tau[rows]
        out_ll[which] = loglik[rows]
        out_modes[which] = modes[rows]
        keep = ~rows
        idx, ax, an, alc = idx[keep], ax[keep], an[keep], alc[keep]
        bok, gtol = bok[keep], gtol[keep]
        mu, tau, loglik = mu[keep], tau[keep], loglik[keep]
        grad, hess, modes = grad[keep], hess[keep], modes[keep]

    for it in range(1, MAX_ITER + 1):
        if idx.size == 0:
            break
        iterations[idx] = it
        if it > LOUIS_ITER:
            # Louis' matrix is not the Hessian of the quadrature likelihood (its nodes move
            # with θ), so Newton on it converges only linearly, and on a flat ridge (a 0%
            # study beside a high one, large τ) it zigzags for dozens of steps: from here on
            # use the Hessian from differences of the exact gradient
            hess = _fd_hessian(ax, an, alc, mu, tau, nagq, modes)
        step = _ascent_directions(grad, hess)
        # converged where the next Newton step is already below the tolerance: stop
        # here rather than evaluate a point that differs by less than 1e-9
        done = np.abs(step).max(axis=1) < STEP_TOL
        done &= np.abs(grad).max(axis=1) < gtol
        if done.any():
            at_zero = bok[done] & (np.abs(tau[done]) < TAU_BOUNDARY)
            finish(done, np.where(at_zero, _BOUNDARY, _INTERIOR))
            step = step[~done]
            if idx.size == 0:
                break
        slope = (grad * step).sum(axis=1)
        m = idx.size
        alpha = np.ones(m)
        accepted = np.zeros(m, dtype=bool)
        todo = np.arange(m)
        for _ in range(40):
            if todo.size == 0:
                break
            if todo.size == m:
                trial = _evaluate(
                    ax, an, alc, mu + alpha * step[:, 0], tau + alpha * step[:, 1], nagq, modes
                )
            else:
                trial = _evaluate(
                    ax[todo],
                    an[todo],
                    alc[todo],
                    mu[todo] + alpha[todo] * step[todo, 0],
                    tau[todo] + alpha[todo] * step[todo, 1],
                    nagq,
                    modes[todo],
                )
            ok = trial.loglik >= loglik[todo] + 1e-4 * alpha[todo] * slope[todo]
            good = todo[ok]
            mu[good] = mu[good] + alpha[good] * step[good, 0]
            tau[good] = tau[good] + alpha[good] * step[good, 1]
            loglik[good] = trial.loglik[ok]
            grad[good] = trial.grad[ok]
            hess[good] = trial.hess[ok]
            modes[good] = trial.modes[ok]
            accepted[good] = True
            alpha[todo[~ok]] *= 0.5
            todo = todo[~ok]
        step_len = np.abs(alpha[:, None] * step).max(axis=1)
        code = np.full(m, _ACTIVE, dtype=np.int64)
        stationary = np.abs(grad).max(axis=1) < 1e3 * GRAD_TOL
        code[~accepted] = np.where(stationary[~accepted], _INTERIOR, _STALLED)
        diverged = (np.abs(tau) > TAU_DIVERGED) | (np.abs(mu) > MU_DIVERGED)
        diverged |= ~np.isfinite(mu) | ~np.isfinite(tau)
        diverged &= accepted
        code[diverged] = _DIVERGED
        at_zero = accepted & ~diverged & bok & (np.abs(tau) < TAU_BOUNDARY)
        code[at_zero] = _BOUNDARY
        small = accepted & ~diverged & ~at_zero & (step_len < STEP_TOL)
        small &= np.abs(grad).max(axis=1) < gtol
        code[small] = _INTERIOR
        stop = code != _ACTIVE
        if stop.any():
            finish(stop, code[stop])
    if idx.size:
        finish(np.ones(idx.size, dtype=bool), _STALLED)
    return _NewtonRun(out_mu, out_tau, out_ll, out_modes, status, iterations)


def _ascent_one(g_mu: float, g_tau: float, hess: FloatArray) -> tuple[float, float]:
    """:func:`_ascent_directions` of one row: the same eigen-decomposition, the rest in
    Python floats in the same order of operations (so the same step, without the cost of
    NumPy calls on two-element arrays)."""
    values, vectors = np.linalg.eigh(-hess)
    (v00, v01), (v10, v11) = vectors.tolist()
    l0, l1 = values.tolist()
    floor = 1e-8 * max(1.0, max(abs(l0), abs(l1)))
    l0, l1 = max(abs(l0), floor), max(abs(l1), floor)
    c0 = (v00 * g_mu + v10 * g_tau) / l0
    c1 = (v01 * g_mu + v11 * g_tau) / l1
    s_mu = v00 * c0 + v01 * c1
    s_tau = v10 * c0 + v11 * c1
    largest = max(abs(s_mu), abs(s_tau))
    shrink = 2.0 / largest if largest > 2.0 else 1.0
    return s_mu * shrink, s_tau * shrink


def _newton_one(
    x: FloatArray,
    n: FloatArray,
    lchoose: FloatArray,
    mu0: FloatArray,
    tau0: FloatArray,
    boundary_ok: BoolArray,
    nagq: int,
) -> _NewtonRun:
    """:func:`_newton_rows` for a single row (arrays of one row): the same iteration, step
    for step, with the parameters, the step and the stopping rules in Python floats; only
    the likelihood is evaluated on arrays. A single fit spends most of its time outside
    :func:`_evaluate` otherwise (``tests/test_glmm.py`` checks both drivers agree)."""
    mu, tau = float(mu0[0]), float(tau0[0])
    ev = _evaluate(x, n, lchoose, mu0, tau0, nagq)
    loglik = float(ev.loglik[0])
    grad, hess, modes = ev.grad, ev.hess, ev.modes
    g_mu, g_tau = grad[0].tolist()
    bok = bool(boundary_ok[0])
    gtol = GRAD_TOL * (1.0 + float(n.sum()))
    status, it = _STALLED, 0
    for it in range(1, MAX_ITER + 1):
        if it > LOUIS_ITER:
            hess = _fd_hessian(x, n, lchoose, np.array([mu]), np.array([tau]), nagq, modes)
        s_mu, s_tau = _ascent_one(g_mu, g_tau, hess[0])
        if max(abs(s_mu), abs(s_tau)) < STEP_TOL and max(abs(g_mu), abs(g_tau)) < gtol:
            status = _BOUNDARY if bok and abs(tau) < TAU_BOUNDARY else _INTERIOR
            break
        slope = g_mu * s_mu + g_tau * s_tau
        alpha, accepted = 1.0, False
        for _ in range(40):
            t_mu, t_tau = mu + alpha * s_mu, tau + alpha * s_tau
            trial = _evaluate(x, n, lchoose, np.array([t_mu]), np.array([t_tau]), nagq, modes)
            t_ll = float(trial.loglik[0])
            if t_ll >= loglik + 1e-4 * alpha * slope:
                mu, tau, loglik = t_mu, t_tau, t_ll
                grad, hess, modes = trial.grad, trial.hess, trial.modes
                g_mu, g_tau = grad[0].tolist()
                accepted = True
                break
            alpha *= 0.5
        grad_max = max(abs(g_mu), abs(g_tau))
        if not accepted:
            status = _INTERIOR if grad_max < 1e3 * GRAD_TOL else _STALLED
            break
        if (
            abs(tau) > TAU_DIVERGED
            or abs(mu) > MU_DIVERGED
            or not math.isfinite(mu)
            or not math.isfinite(tau)
        ):
            status = _DIVERGED
            break
        if bok and abs(tau) < TAU_BOUNDARY:
            status = _BOUNDARY
            break
        if max(abs(alpha * s_mu), abs(alpha * s_tau)) < STEP_TOL and grad_max < gtol:
            status = _INTERIOR
            break
    return _NewtonRun(
        np.array([mu]),
        np.array([tau]),
        np.array([loglik]),
        modes.copy(),
        np.array([status], dtype=np.int64),
        np.array([it], dtype=np.int64),
    )


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
        newton = _newton_one if pending.size == 1 else _newton_rows
        run = newton(
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
    # An optimum with |τ| below TAU_NEGLIGIBLE is the common-effect fit: there ℓ is flat in
    # τ to within rounding (it is even in τ), so the observed information is singular in
    # that direction and its inverse turns rounding noise into SE(μ̂) (4/4, 1/2, 1/1:
    # τ² = 8e-9 gave SE 1.29 where the common-effect and metafor's SE is 1.081).
    use = (reason == OK) & found & (np.abs(best_tau) >= TAU_NEGLIGIBLE) & (best_ll > ll_fe)
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
