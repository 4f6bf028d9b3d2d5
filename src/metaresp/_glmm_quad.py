"""The adaptive-quadrature likelihood of the binomial-normal GLMM, for many datasets at once.

Each study's random effect is integrated by adaptive Gauss-Hermite quadrature centred at
its conditional mode; :func:`_evaluate` gives the log-likelihood, its exact gradient and
Louis' observed information on (rows × studies × nodes) arrays, and :func:`_fd_hessian` the
Hessian from differences of that gradient. See :mod:`metaresp.glmm` for the model and its
sources; the Newton iteration that maximises it is in :mod:`metaresp._glmm_rows`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray
from scipy import special

__all__ = ["conditional_modes", "quadrature_rule"]

FloatArray = NDArray[np.float64]

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
# 0-d arrays: a Python float on the left of a NumPy operator costs a microsecond more.
_ZERO = np.zeros(())
_ONE = np.ones(())


@lru_cache(maxsize=16)
def quadrature_rule(nagq: int) -> tuple[FloatArray, FloatArray]:
    """Probabilists' Gauss-Hermite nodes t_j and log(w_j) + t_j²/2 (∫ e^{-t²/2} f(t) dt)."""
    t, w = np.polynomial.hermite_e.hermegauss(nagq)
    return t.astype(np.float64), (np.log(w) + 0.5 * t * t).astype(np.float64)


@lru_cache(maxsize=16)
def _node_powers(nagq: int) -> FloatArray:
    """The nodes' powers (1, t_j, t_j²) as columns: a matrix product with the node weights
    gives each study's three moments at once."""
    t, _ = quadrature_rule(nagq)
    out: FloatArray = np.stack([np.ones_like(t), t, t * t], axis=1)
    return out


def conditional_modes(
    x: FloatArray,
    n: FloatArray,
    mu: FloatArray | float,
    tau: FloatArray | float,
    start: FloatArray | float = 0.0,
) -> FloatArray:
    """Modes ẑ_i of h_i(z) = x_i (mu + tau z) - n_i log(1 + e^(mu + tau z)) - z²/2.

    h_i is strictly concave (h'' <= -1) and its root lies between tau (x_i - n_i) and
    tau x_i, so Newton's method is safeguarded by bisection inside that bracket: a step
    that leaves the bracket, or (while larger than 1e-9) is more than half the previous
    step, is replaced by the bisection of the bracket. ``mu``, ``tau`` and ``start``
    broadcast against ``x`` (rows × studies). Iterates until no mode moves by more than
    1e-13 (1 + max |ẑ|). The arrays of a single fit are small, so the loop uses in-place
    masked copies rather than ``np.where``: its cost is the number of NumPy calls.
    """
    a = tau * x
    b = a - tau * n
    lo = np.minimum(a, b)
    hi = np.maximum(a, b)
    z = np.maximum(np.minimum(start, hi), lo)  # broadcasts ``start`` to the bracket's shape
    # |previous step| (the bracket's width before the first) and |z|, each taken once
    a_last = hi - lo
    a_z = np.abs(z)
    tau2n = tau * tau * n
    for _ in range(200):
        p = special.expit(mu + tau * z)
        g = (x - n * p) * tau - z
        np.copyto(lo, z, where=np.greater(g, _ZERO))
        np.copyto(hi, z, where=np.less(g, _ZERO))
        step = g / (tau2n * p * (_ONE - p) + _ONE)
        z_new = z + step
        # bisect where Newton leaves the bracket or, away from convergence, does not halve
        # its previous step (on h' of very different slopes either side of the root,
        # Newton can jump from one end of the bracket to the other for ever)
        bisect = np.less(z_new, lo)
        bisect |= np.greater(z_new, hi)
        a_step = np.abs(step)
        slow = np.greater(a_step, a_last * 0.5)
        slow &= np.greater(a_step, (a_z + _ONE) * 1e-9)
        bisect |= slow
        np.copyto(z_new, (lo + hi) * 0.5, where=bisect)
        a_last = np.abs(z_new - z)
        moved = np.maximum.reduce(a_last, axis=None)
        z = z_new
        a_z = np.abs(z)
        if moved <= 1e-13 * (1.0 + np.maximum.reduce(a_z, axis=None)):
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

    The rule is centred at the mode ẑ_i and scaled by c_i = (1 + τ² n_i p̂_i(1-p̂_i))^{-1/2}
    (Liu & Pierce 1994; lme4 ``nAGQ``): nodes z_ij = ẑ_i + c_i t_j. The Newton matrix is
    Louis' (1982) identity with the same nodes: Σ (E_i[∂s/∂θ'] + Cov_i[s]), s = (r, z r),
    r = x - n p. The gradient is the exact gradient of the quadrature approximation itself:
    the nodes move with (μ, τ), dẑ/dθ from h'(ẑ) = 0 (implicit function theorem), plus
    (dc/dθ)/c. Every posterior expectation over the nodes is a combination of six moments
    per study, E[t^a], E[r t^a] and E[(r² - v) t^a] (a ≤ 2, v = n p (1 - p)), which one
    matrix product with the nodes' powers gives.
    """
    t, logw = quadrature_rule(nagq)
    powers = _node_powers(nagq)
    m = mu[:, None]
    s = tau[:, None]
    zhat = conditional_modes(x, n, m, s, start)
    eta_hat = m + s * zhat
    p_hat = special.expit(eta_hat)
    v_hat = n * p_hat * (_ONE - p_hat)
    curv = s * s * v_hat + _ONE
    c = np.reciprocal(np.sqrt(curv))
    z = zhat[..., None] + c[..., None] * t  # rows × studies × nodes
    eta = eta_hat[..., None] + (s * c)[..., None] * t
    xe = x[..., None]
    ne = n[..., None]
    log_f = xe * eta - ne * np.logaddexp(eta, _ZERO) - z * z * 0.5 + logw
    top = np.maximum.reduce(log_f, axis=-1)
    f = np.exp(log_f - top[..., None])
    p = special.expit(eta)
    np_ = ne * p
    r = xe - np_
    q = r * r - np_ * (_ONE - p)
    mf = np.matmul(f, powers)  # rows × studies × 3: Σ f, Σ f t, Σ f t²
    total = mf[..., 0]
    inv = np.reciprocal(total)
    et1 = mf[..., 1] * inv
    et2 = mf[..., 2] * inv
    mr = np.matmul(f * r, powers[:, :2])
    r0 = mr[..., 0] * inv
    r1 = mr[..., 1] * inv
    mq = np.matmul(f * q, powers)
    q0 = mq[..., 0] * inv
    q1 = mq[..., 1] * inv
    q2 = mq[..., 2] * inv
    e_zr = zhat * r0 + c * r1
    cq1 = c * q1
    r_hat = x - n * p_hat
    dz_mu = -s * v_hat / curv
    dz_tau = (r_hat - s * v_hat * zhat) / curv
    s2dv = s * s * v_hat * (_ONE - p_hat * 2.0)
    dlogs_mu = s2dv * (s * dz_mu + _ONE) / curv * -0.5
    dlogs_tau = (s * v_hat * 2.0 + s2dv * (zhat + s * dz_tau)) / curv * -0.5
    e_slope = s * r0 - zhat - c * et1
    e_slope_t = c * (s * r1 - zhat * et1 - c * et2)
    rows, k = x.shape
    per_study = np.empty((rows, 6, k))
    per_study[:, 0] = np.log(c * total) + top
    per_study[:, 1] = q0 - r0 * r0
    per_study[:, 2] = zhat * q0 + cq1 - r0 * e_zr
    per_study[:, 3] = zhat * (zhat * q0 + cq1 * 2.0) + c * c * q2 - e_zr * e_zr
    e_slope_t += _ONE
    per_study[:, 4] = r0 + dz_mu * e_slope + dlogs_mu * e_slope_t
    per_study[:, 5] = e_zr + dz_tau * e_slope + dlogs_tau * e_slope_t
    sums = np.add.reduce(per_study, axis=2)
    loglik = lchoose + sums[:, 0] - k * _LOG_SQRT_2PI
    grad = sums[:, 4:6].copy()
    hess = np.empty((rows, 2, 2))
    hess[:, 0, 0] = sums[:, 1]
    hess[:, 0, 1] = hess[:, 1, 0] = sums[:, 2]
    hess[:, 1, 1] = sums[:, 3]
    return _Eval(loglik=loglik, grad=grad, hess=hess, modes=zhat)


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
    # the four shifted points (μ ± h, τ), (μ, τ ± h) of every row, evaluated as one batch
    h_mu = 1e-5 * (1.0 + np.abs(mu))
    h_tau = 1e-5 * (1.0 + np.abs(tau))
    zero = np.zeros_like(mu)
    d_mu = np.concatenate([h_mu, -h_mu, zero, zero])
    d_tau = np.concatenate([zero, zero, h_tau, -h_tau])
    starts = np.broadcast_to(start, x.shape)
    ev = _evaluate(
        np.tile(x, (4, 1)),
        np.tile(n, (4, 1)),
        np.tile(lchoose, 4),
        np.tile(mu, 4) + d_mu,
        np.tile(tau, 4) + d_tau,
        nagq,
        np.tile(starts, (4, 1)),
    )
    grads = ev.grad.reshape(4, x.shape[0], 2)
    hess = np.stack(
        [
            (grads[0] - grads[1]) / (2.0 * h_mu[:, None]),
            (grads[2] - grads[3]) / (2.0 * h_tau[:, None]),
        ],
        axis=2,
    )
    out: FloatArray = 0.5 * (hess + np.swapaxes(hess, 1, 2))
    return out
