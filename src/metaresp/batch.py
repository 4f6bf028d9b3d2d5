"""Vectorised pooling over many datasets at once (replicates of a simulation).

Every function takes 2-D arrays shaped ``(replicates, k)``: one row per dataset, all rows
with the same number of studies ``k``. The arithmetic is that of the scalar engine
(:func:`metaresp.pool`) applied row by row, so that a simulation can fit thousands of
datasets in a few array operations instead of a Python loop:

* effect sizes: :func:`metaresp.transforms.effect_sizes` itself (it is elementwise), so the
  continuity correction is metafor's ``escalc`` rule (0.5 added to events and non-events of
  0/n and n/n studies for ``logit``, none for ``freeman-tukey``);
* τ²: DerSimonian-Laird in closed form, REML by Fisher scoring from the truncated Hedges
  value with step halving at 0, per-row convergence masks, the boundary snap and metafor's
  likelihood check at 0, exactly as :mod:`metaresp.estimators` does for one dataset;
* intervals: ``z``, ``t`` (k-1 df), ``hksj`` and ``hksj-adhoc`` (Hartung & Knapp 2001;
  Sidik & Jonkman 2002; Knapp & Hartung 2003 for the ad hoc floor at 1) and the prediction
  interval μ̂ ± t_{k-2} sqrt(τ̂² + SE²) (Higgins, Thompson & Spiegelhalter 2009), undefined
  (NaN) for k < 3;
* the binomial-normal GLMM (Stijnen, Hamza & Özdemir 2010): each study's random effect is
  integrated by adaptive Gauss-Hermite quadrature (Liu & Pierce 1994; lme4's ``nAGQ``), and
  (μ, τ) is found per row by a safeguarded Newton iteration on finite-difference derivatives,
  all rows advancing together. Rows whose fit fails are flagged, never dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray
from scipy import special, stats

from metaresp.estimators import MAXITER, METAFOR_THRESHOLD, METAFOR_TOL
from metaresp.glmm import (
    GRAD_TOL,
    MAX_ITER,
    MU_DIVERGED,
    STEP_TOL,
    TAU_BOUNDARY,
    TAU_DIVERGED,
    conditional_modes,
    quadrature_rule,
)
from metaresp.transforms import effect_sizes

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

#: Interval types of the inverse-variance models (contract §1).
IV_CIS: Final[tuple[str, ...]] = ("z", "t", "hksj", "hksj-adhoc")
#: Interval types of the GLMM.
GLMM_CIS: Final[tuple[str, ...]] = ("z", "t")
#: Transforms the batch layer supports.
BATCH_TRANSFORMS: Final[tuple[str, ...]] = ("logit", "freeman-tukey")
#: τ² estimators the batch layer supports.
BATCH_ESTIMATORS: Final[tuple[str, ...]] = ("FE", "DL", "REML", "GLMM")


def _as_counts(events: object, totals: object) -> tuple[IntArray, IntArray]:
    x = np.asarray(events)
    n = np.asarray(totals)
    if x.ndim != 2 or x.shape != n.shape:
        raise ValueError(
            "events and totals must be 2-D arrays of the same shape (replicates, k); "
            f"got {x.shape} and {n.shape}"
        )
    if x.shape[1] < 2:
        raise ValueError(f"each dataset needs k >= 2 studies; got k = {x.shape[1]}")
    xi = x.astype(np.int64)
    ni = n.astype(np.int64)
    if np.any(xi != x) or np.any(ni != n):
        raise ValueError("events and totals must be whole numbers")
    if np.any(ni < 1) or np.any(xi < 0) or np.any(xi > ni):
        raise ValueError("events must lie in 0..total and totals must be >= 1")
    return xi, ni


# --------------------------------------------------------------------------- effect sizes


def batch_effect_sizes(
    transform: str, events: IntArray, totals: IntArray
) -> tuple[FloatArray, FloatArray]:
    """``yi`` and ``vi`` for every study of every row (metafor ``escalc``; see transforms)."""
    if transform not in BATCH_TRANSFORMS:
        raise ValueError(
            f"transform must be one of {', '.join(BATCH_TRANSFORMS)}; got {transform!r}"
        )
    xi, ni = _as_counts(events, totals)
    return effect_sizes(transform, xi, ni)


def _pft(p: FloatArray, n: FloatArray) -> FloatArray:
    """Freeman-Tukey transform of proportion ``p`` at total ``n`` (metafor ``transf.pft``)."""
    xn = p * n
    out: FloatArray = 0.5 * (
        np.arcsin(np.sqrt(xn / (n + 1.0))) + np.arcsin(np.sqrt((xn + 1.0) / (n + 1.0)))
    )
    return out


def ipft_hm(t: FloatArray, n_hm: FloatArray) -> FloatArray:
    """Miller's (1978) inverse double arcsine at the harmonic-mean total, elementwise.

    p = (1 - sgn(cos 2t) sqrt(1 - (sin 2t + (sin 2t - 1/sin 2t)/n)^2)) / 2; 1 above the
    transform of p = 1, 0 below that of p = 0, NaN where the radicand is negative (metafor's
    ``transf.ipft.hm`` returns NA there). NaN in, NaN out.
    """
    t = np.asarray(t, dtype=np.float64)
    n = np.broadcast_to(np.asarray(n_hm, dtype=np.float64), t.shape)
    s = np.sin(2.0 * t)
    c = np.cos(2.0 * t)
    with np.errstate(divide="ignore", invalid="ignore"):
        inner = 1.0 - (s + (s - 1.0 / s) / n) ** 2
        p = 0.5 * (1.0 - np.sign(c) * np.sqrt(inner))
    p = np.where((s == 0.0) | (inner < 0.0), np.nan, p)
    p = np.where(t > _pft(np.ones_like(n), n), 1.0, p)
    p = np.where(t < _pft(np.zeros_like(n), n), 0.0, p)
    out: FloatArray = np.where(np.isnan(t), np.nan, p)
    return out


def back_transform(transform: str, values: FloatArray, n_hm: FloatArray) -> FloatArray:
    """Transformed-scale values to proportions: expit (logit) or ipft.hm (Freeman-Tukey).

    ``values`` has shape (replicates,) or (replicates, m); ``n_hm`` is one harmonic-mean
    total per replicate.
    """
    if transform == "logit":
        out: FloatArray = special.expit(values)
        return out
    if transform == "freeman-tukey":
        n = n_hm if values.ndim == 1 else n_hm[:, None]
        return ipft_hm(values, n)
    raise ValueError(f"transform must be one of {', '.join(BATCH_TRANSFORMS)}; got {transform!r}")


# --------------------------------------------------------------------------- tau2


def tau2_dl(yi: FloatArray, vi: FloatArray) -> FloatArray:
    """DerSimonian-Laird τ² per row: max(0, (Q - (k-1)) / (S1 - S2/S1)), S_r = Σ vi^-r."""
    k = yi.shape[1]
    w = 1.0 / vi
    sw = w.sum(axis=1)
    mu = (w * yi).sum(axis=1) / sw
    q = (w * (yi - mu[:, None]) ** 2).sum(axis=1)
    out: FloatArray = np.maximum(0.0, (q - (k - 1)) / (sw - (w * w).sum(axis=1) / sw))
    return out


def _tau2_he(yi: FloatArray, vi: FloatArray) -> FloatArray:
    """Hedges' moment estimator, the REML starting value (untruncated)."""
    k = yi.shape[1]
    r = yi - yi.mean(axis=1, keepdims=True)
    out: FloatArray = ((r * r).sum(axis=1) - vi.sum(axis=1) * (k - 1) / k) / (k - 1)
    return out


def _reml_loglik(yi: FloatArray, vi: FloatArray, tau2: FloatArray) -> FloatArray:
    """Restricted log-likelihood of the intercept-only model, one value per row."""
    k = yi.shape[1]
    v = vi + tau2[:, None]
    w = 1.0 / v
    sw = w.sum(axis=1)
    mu = (w * yi).sum(axis=1) / sw
    rss = (w * (yi - mu[:, None]) ** 2).sum(axis=1)
    out: FloatArray = (
        -0.5 * (k - 1) * math.log(2 * math.pi)
        - 0.5 * np.log(v).sum(axis=1)
        - 0.5 * np.log(sw)
        - 0.5 * rss
    )
    return out


def tau2_reml(yi: FloatArray, vi: FloatArray) -> tuple[FloatArray, BoolArray]:
    """REML τ² per row and whether its Fisher scoring converged.

    The scalar algorithm of :mod:`metaresp.estimators` (metafor 3.8 ``rma.uni``, step for
    step) on all rows at once: start at max(0, HE); step adj = (Σ w²r² - tr P) / tr(P²)
    with w = 1/(vi + τ²), r = yi - μ̂(τ²), tr P = S1 - S2/S1 and
    tr(P²) = S2 - 2 S3/S1 + (S2/S1)²; a negative step at 0 is dropped, one that would cross
    0 is halved until it does not; stop when τ² changes by at most 1e-5 (metafor's
    threshold). A converged τ² whose restricted likelihood is beaten at 0 by more than
    eps^0.25 is set to 0 (metafor's ``ll0check``).
    """
    tau2 = np.maximum(0.0, _tau2_he(yi, vi))
    converged = np.zeros(yi.shape[0], dtype=bool)
    active = np.arange(yi.shape[0])
    for _ in range(MAXITER):
        if active.size == 0:
            break
        y = yi[active]
        t2 = tau2[active]
        w = 1.0 / (vi[active] + t2[:, None])
        sw = w.sum(axis=1)
        mu = (w * y).sum(axis=1) / sw
        r = y - mu[:, None]
        w2 = w * w
        sw2 = w2.sum(axis=1)
        tr_p = sw - sw2 / sw
        tr_pp = sw2 - 2.0 * (w2 * w).sum(axis=1) / sw + (sw2 / sw) ** 2
        with np.errstate(divide="ignore", invalid="ignore"):
            adj = ((w2 * r * r).sum(axis=1) - tr_p) / tr_pp
        adj = np.where(np.isfinite(adj), adj, 0.0)
        adj = np.where((t2 == 0.0) & (adj < 0.0), 0.0, adj)
        crossing = t2 + adj < 0.0
        while crossing.any():
            adj = np.where(crossing, adj / 2.0, adj)
            crossing = t2 + adj < 0.0
        new = t2 + adj
        tau2[active] = new
        done = np.abs(t2 - new) <= METAFOR_THRESHOLD
        converged[active[done]] = True
        active = active[~done]
    tau2 = np.maximum(0.0, tau2)
    ll0 = _reml_loglik(yi, vi, np.zeros_like(tau2))
    llt = _reml_loglik(yi, vi, tau2)
    beaten = converged & (ll0 - llt > METAFOR_TOL) & (tau2 > METAFOR_THRESHOLD)
    tau2 = np.where(beaten, 0.0, tau2)
    return tau2, converged


# --------------------------------------------------------------------------- intervals


@dataclass(frozen=True, slots=True)
class BatchPool:
    """Pooled results of many datasets; every field has one entry per row.

    ``estimate``, ``se`` and ``tau2`` are on the transformed scale; ``proportion``,
    ``ci_*`` and ``pi_*`` on the proportion scale (``pi_*`` NaN where k < 3). ``failed``
    marks rows whose fit did not converge or gave a non-finite interval; their other fields
    may hold anything and must not be used.
    """

    estimate: FloatArray
    se: FloatArray
    tau2: FloatArray
    proportion: FloatArray
    ci_low: FloatArray
    ci_high: FloatArray
    pi_low: FloatArray
    pi_high: FloatArray
    failed: BoolArray


def _critical(level: float, df: int | None) -> float:
    q = 0.5 + level / 2.0
    return float(stats.norm.ppf(q) if df is None else stats.t.ppf(q, df))


def _assemble(
    transform: str,
    mu: FloatArray,
    se: FloatArray,
    tau2: FloatArray,
    crit: float,
    k: int,
    n_hm: FloatArray,
    level: float,
    failed: BoolArray,
) -> BatchPool:
    """CI μ̂ ± crit·SE and PI μ̂ ± t_{k-2}·sqrt(τ̂² + SE²), back-transformed."""
    half = crit * se
    if k >= 3:
        pi_half = _critical(level, k - 2) * np.sqrt(tau2 + se * se)
        pi_t = np.stack([mu - pi_half, mu + pi_half], axis=1)
    else:
        pi_t = np.full((mu.size, 2), np.nan)
    on_t = np.stack([mu, mu - half, mu + half], axis=1)
    on_p = back_transform(transform, on_t, n_hm)
    pi_p = back_transform(transform, pi_t, n_hm)
    bad = failed | ~np.isfinite(on_p).all(axis=1)
    return BatchPool(
        estimate=mu,
        se=se,
        tau2=tau2,
        proportion=on_p[:, 0],
        ci_low=on_p[:, 1],
        ci_high=on_p[:, 2],
        pi_low=pi_p[:, 0],
        pi_high=pi_p[:, 1],
        failed=bad,
    )


def pool_iv(
    events: IntArray,
    totals: IntArray,
    *,
    transform: str = "logit",
    estimator: str = "REML",
    ci: str = "hksj",
    level: float = 0.95,
) -> BatchPool:
    """Inverse-variance pooling of every row, as ``metaresp.pool`` would pool each one.

    μ̂ = Σ w yi / Σ w with w = 1/(vi + τ̂²); SE = 1/sqrt(Σ w). ``t`` uses t_{k-1};
    ``hksj`` multiplies SE² by s² = Σ w (yi - μ̂)² / (k-1) and uses t_{k-1}
    (Hartung & Knapp 2001); ``hksj-adhoc`` floors s² at 1 (Knapp & Hartung 2003;
    metafor ``test="adhoc"``).
    """
    if estimator not in ("FE", "DL", "REML"):
        raise ValueError(f"estimator must be one of FE, DL, REML; got {estimator!r}")
    if ci not in IV_CIS:
        raise ValueError(f"ci must be one of {', '.join(IV_CIS)}; got {ci!r}")
    xi, ni = _as_counts(events, totals)
    yi, vi = batch_effect_sizes(transform, xi, ni)
    k = yi.shape[1]
    converged = np.ones(yi.shape[0], dtype=bool)
    if estimator == "FE":
        tau2 = np.zeros(yi.shape[0])
    elif estimator == "DL":
        tau2 = tau2_dl(yi, vi)
    else:
        tau2, converged = tau2_reml(yi, vi)
    w = 1.0 / (vi + tau2[:, None])
    sw = w.sum(axis=1)
    mu = (w * yi).sum(axis=1) / sw
    se = 1.0 / np.sqrt(sw)
    if ci in ("hksj", "hksj-adhoc"):
        rss = (w * (yi - mu[:, None]) ** 2).sum(axis=1)
        s2 = np.where(rss <= np.finfo(np.float64).eps, 0.0, rss / (k - 1))
        if ci == "hksj-adhoc":
            s2 = np.maximum(1.0, s2)
        se = se * np.sqrt(s2)
    crit = _critical(level, None if ci == "z" else k - 1)
    n_hm = 1.0 / np.mean(1.0 / ni, axis=1)
    return _assemble(transform, mu, se, tau2, crit, k, n_hm, level, ~converged)


# --------------------------------------------------------------------------- GLMM


@dataclass(frozen=True, slots=True)
class _Eval:
    loglik: FloatArray  # (r,)
    grad: FloatArray  # (r, 2)
    hess: FloatArray  # (r, 2, 2)


def _evaluate(
    x: FloatArray, n: FloatArray, lchoose: FloatArray, mu: FloatArray, tau: FloatArray, nagq: int
) -> _Eval:
    """Adaptive-quadrature log-likelihood, score and observed Hessian in (μ, τ), per row.

    L_i = C(n_i, x_i) ∫ exp{x_i η - n_i log(1 + e^η)} φ(z) dz with η = μ + τz, by the rule
    centred at the mode ẑ_i and scaled by s_i = (1 + τ² n_i p̂_i(1-p̂_i))^{-1/2} (Liu & Pierce
    1994; lme4 ``nAGQ``). Score and Hessian by Louis' (1982) identities with the same nodes:
    ∂ℓ/∂θ = Σ E_i[s], ∂²ℓ/∂θ∂θ' = Σ (E_i[∂s/∂θ'] + Cov_i[s]), s = (r, z r), r = x - n p,
    as the scalar fit (:mod:`metaresp.glmm`) does for one dataset.
    """
    t, logw = quadrature_rule(nagq)
    m = mu[:, None]
    s = tau[:, None]
    zhat = conditional_modes(x, n, m, s)
    p_hat = special.expit(m + s * zhat)
    scale = 1.0 / np.sqrt(1.0 + s * s * n * p_hat * (1.0 - p_hat))
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
    loglik = loglik - k * 0.5 * math.log(2.0 * math.pi)
    post = f / total
    p = special.expit(eta)
    r = xe - ne * p
    v = ne * p * (1.0 - p)
    zr = z * r
    e_r = (post * r).sum(axis=-1)
    e_zr = (post * zr).sum(axis=-1)
    h_mm = ((post * (r * r - v)).sum(axis=-1) - e_r * e_r).sum(axis=1)
    h_mt = ((post * z * (r * r - v)).sum(axis=-1) - e_r * e_zr).sum(axis=1)
    h_tt = ((post * (zr * zr - z * z * v)).sum(axis=-1) - e_zr * e_zr).sum(axis=1)
    # exact gradient of the quadrature approximation itself: the nodes z_j = ẑ + s t_j move
    # with (μ, τ); dẑ/dθ from h'(ẑ) = 0 (implicit function theorem), plus (ds/dθ)/s
    v_hat = n * p_hat * (1.0 - p_hat)
    r_hat = x - n * p_hat
    curv = 1.0 + s * s * v_hat
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
    return _Eval(loglik=loglik, grad=grad, hess=hess)


def glmm_loglik(
    events: IntArray, totals: IntArray, mu: FloatArray, tau: FloatArray, nagq: int = 7
) -> FloatArray:
    """Marginal log-likelihood (binomial coefficients included) of each row at (μ, τ)."""
    xi, ni = _as_counts(events, totals)
    x = xi.astype(np.float64)
    n = ni.astype(np.float64)
    lchoose = _log_choose(x, n)
    mu_a = np.broadcast_to(np.asarray(mu, dtype=np.float64), (x.shape[0],))
    tau_a = np.broadcast_to(np.asarray(tau, dtype=np.float64), (x.shape[0],))
    return _evaluate(x, n, lchoose, mu_a, tau_a, nagq).loglik


def _log_choose(x: FloatArray, n: FloatArray) -> FloatArray:
    out: FloatArray = (
        special.gammaln(n + 1.0) - special.gammaln(x + 1.0) - special.gammaln(n - x + 1.0)
    ).sum(axis=1)
    return out


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
    hess: FloatArray
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
    """Newton ascent with an Armijo backtracking line search, all rows at once.

    Per row, exactly the steps of the scalar fit: stop at τ = 0 (boundary) when the
    curvature at τ = 0 allows it and |τ| < 1e-6; at a step below 1e-9 with a score below
    1e-7 (1 + Σn); give up when |τ| > 30 or |μ| > 40 (no finite maximum), when the line
    search cannot increase ℓ away from a stationary point, or after 100 iterations.
    """
    r = x.shape[0]
    mu = mu0.copy()
    tau = tau0.copy()
    ev = _evaluate(x, n, lchoose, mu, tau, nagq)
    loglik = ev.loglik.copy()
    grad = ev.grad.copy()
    hess = ev.hess.copy()
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
            )
            ok = trial.loglik >= loglik[rows] + 1e-4 * alpha[todo] * slope[todo]
            good = todo[ok]
            rows_ok = active[good]
            mu[rows_ok] = mu[rows_ok] + alpha[good] * step[good, 0]
            tau[rows_ok] = tau[rows_ok] + alpha[good] * step[good, 1]
            loglik[rows_ok] = trial.loglik[ok]
            grad[rows_ok] = trial.grad[ok]
            hess[rows_ok] = trial.hess[ok]
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
    return _NewtonRun(mu, tau, loglik, hess, status, iterations)


def _fd_hessian(
    x: FloatArray, n: FloatArray, lchoose: FloatArray, mu: FloatArray, tau: FloatArray, nagq: int
) -> FloatArray:
    """Hessian of the quadrature log-likelihood from central differences of its exact
    gradient, step 1e-5 (1 + |θ|), symmetrised: the matrix whose inverse gives SE(μ̂), as
    in the scalar fit (and lme4's ``vcov`` for ``nAGQ > 0``)."""
    cols = []
    for i, theta in enumerate((mu, tau)):
        h = 1e-5 * (1.0 + np.abs(theta))
        dm = h if i == 0 else 0.0
        dt = h if i == 1 else 0.0
        up = _evaluate(x, n, lchoose, mu + dm, tau + dt, nagq).grad
        down = _evaluate(x, n, lchoose, mu - dm, tau - dt, nagq).grad
        cols.append((up - down) / (2.0 * h[:, None]))
    hess = np.stack(cols, axis=2)
    out: FloatArray = 0.5 * (hess + np.swapaxes(hess, 1, 2))
    return out


@dataclass(frozen=True, slots=True)
class BatchGlmm:
    """Maximum-likelihood fits of the binomial-normal model, one entry per row.

    ``mu`` (logit of the median-study proportion), ``tau`` (≥ 0, exactly 0 at the
    boundary), ``se`` of μ̂ from the observed information, ``loglik``, Newton
    ``iterations`` (all starts); ``failed`` is True where :func:`metaresp.glmm.fit_glmm`
    raises ``ConvergenceError`` for that dataset (and ``metaresp.pool`` falls back to
    REML-logit-HKSJ): every study at 0% or 100%, a diverging parameter, no convergence from
    any start, or an observed information that is not positive definite.
    """

    mu: FloatArray
    tau: FloatArray
    se: FloatArray
    loglik: FloatArray
    iterations: IntArray
    failed: BoolArray


def fit_glmm_batch(events: IntArray, totals: IntArray, nagq: int = 7) -> BatchGlmm:
    """Binomial-normal GLMM (ML, logit link, adaptive quadrature) of every row at once.

    The algorithm of :func:`metaresp.glmm.fit_glmm` applied row-wise: ℓ(μ, τ) is even in τ
    and maximised over signed τ by Newton's method from μ = logit(Σx/Σn) and
    τ0 = max(τ_mom, 0.3), then 1 and 3 where a start fails or stops at the boundary; the
    curvature at τ = 0, Σ{(x - n p̂)² - n p̂(1-p̂)}, decides whether τ = 0 may be the
    answer. An interior maximum must beat the common-effect likelihood; otherwise the fit is
    the common-effect binomial one (τ = 0, SE = (Σ n p̂(1-p̂))^{-1/2}). SE(μ̂)² is the (μ, μ)
    entry of the inverse observed information.
    """
    if isinstance(nagq, bool) or nagq < 1:
        raise ValueError(f"nagq: expected an integer >= 1 (7 as in metafor), got {nagq!r}")
    xi, ni = _as_counts(events, totals)
    x = xi.astype(np.float64)
    n = ni.astype(np.float64)
    r = x.shape[0]
    lchoose = _log_choose(x, n)
    extreme = (x == 0) | (x == n)
    failed = extreme.all(axis=1)
    sx = x.sum(axis=1)
    sn = n.sum(axis=1)
    p_fe = np.where(failed, 0.5, sx / sn)
    mu_fe = np.log(p_fe / (1.0 - p_fe))
    v_fe = n * p_fe[:, None] * (1.0 - p_fe[:, None])
    ll_fe = lchoose + (
        special.xlogy(x, p_fe[:, None]) + special.xlogy(n - x, 1.0 - p_fe[:, None])
    ).sum(axis=1)
    curvature0 = ((x - n * p_fe[:, None]) ** 2 - v_fe).sum(axis=1)
    tau_mom = np.sqrt(np.maximum(curvature0, 0.0) / (v_fe * v_fe).sum(axis=1))
    boundary_ok = curvature0 <= 0.0

    best_mu = np.full(r, np.nan)
    best_tau = np.full(r, np.nan)
    best_ll = np.full(r, -np.inf)
    found = np.zeros(r, dtype=bool)
    iterations = np.zeros(r, dtype=np.int64)
    pending = np.flatnonzero(~failed)
    for start in range(3):
        if pending.size == 0:
            break
        # starts (max(τ_mom, 0.3), 1, 3); (1, 3) where τ = 0 is a local maximum
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
        failed[pending[diverged]] = True
        ok = (run.status == _INTERIOR) | (run.status == _BOUNDARY)
        tau_run = np.where(run.status == _BOUNDARY, 0.0, run.tau)
        better = ok & (~found[pending] | (run.loglik > best_ll[pending]))
        rows = pending[better]
        best_mu[rows] = run.mu[better]
        best_tau[rows] = tau_run[better]
        best_ll[rows] = run.loglik[better]
        found[rows] = True
        interior = ok & (tau_run != 0.0)
        pending = pending[~diverged & ~interior]
    failed |= ~found
    failed |= (curvature0 > 0.0) & (best_tau == 0.0)

    mu = mu_fe.copy()
    tau = np.zeros(r)
    se = 1.0 / np.sqrt(v_fe.sum(axis=1))
    loglik = ll_fe.copy()
    use = ~failed & (best_tau != 0.0) & (best_ll > ll_fe)
    info = -_fd_hessian(x[use], n[use], lchoose[use], best_mu[use], best_tau[use], nagq)
    a, b, c = info[:, 0, 0], info[:, 0, 1], info[:, 1, 1]
    det = a * c - b * b
    pd = (a > 0.0) & (c > 0.0) & (det > 0.0)
    rows = np.flatnonzero(use)
    failed[rows[~pd]] = True
    mu[rows] = best_mu[rows]
    tau[rows] = np.abs(best_tau[rows])
    with np.errstate(divide="ignore", invalid="ignore"):
        se[rows] = np.sqrt(c / det)
    loglik[rows] = best_ll[rows]
    failed |= ~np.isfinite(mu) | ~np.isfinite(se)
    return BatchGlmm(mu=mu, tau=tau, se=se, loglik=loglik, iterations=iterations, failed=failed)


def pool_glmm(
    events: IntArray,
    totals: IntArray,
    *,
    ci: str = "t",
    level: float = 0.95,
    nagq: int = 7,
    fit: BatchGlmm | None = None,
) -> BatchPool:
    """GLMM pooling of every row: μ̂ ± crit·SE with crit z or t_{k-1}; PI with t_{k-2}.

    Pass ``fit`` (from :func:`fit_glmm_batch` on the same data) to reuse one fit for both
    interval types.
    """
    if ci not in GLMM_CIS:
        raise ValueError(f"ci must be one of {', '.join(GLMM_CIS)} for the GLMM; got {ci!r}")
    xi, ni = _as_counts(events, totals)
    res = fit if fit is not None else fit_glmm_batch(xi, ni, nagq)
    k = xi.shape[1]
    crit = _critical(level, None if ci == "z" else k - 1)
    n_hm = 1.0 / np.mean(1.0 / ni, axis=1)
    return _assemble("logit", res.mu, res.se, res.tau**2, crit, k, n_hm, level, res.failed)


def pool_batch(
    events: IntArray,
    totals: IntArray,
    *,
    transform: str = "logit",
    estimator: str = "GLMM",
    ci: str = "t",
    level: float = 0.95,
) -> BatchPool:
    """Row-wise counterpart of ``metaresp.pool`` for the options the simulation needs."""
    if estimator not in BATCH_ESTIMATORS:
        raise ValueError(
            f"estimator must be one of {', '.join(BATCH_ESTIMATORS)}; got {estimator!r}"
        )
    if estimator == "GLMM":
        if transform != "logit":
            raise ValueError(f"the GLMM needs transform 'logit'; got {transform!r}")
        return pool_glmm(events, totals, ci=ci, level=level)
    return pool_iv(events, totals, transform=transform, estimator=estimator, ci=ci, level=level)
