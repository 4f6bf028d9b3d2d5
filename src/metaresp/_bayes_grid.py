"""The (τ, μ) grid of :mod:`metaresp.bayes`: a pilot pass that locates μ | τ and the part of
the τ range the posterior occupies, then the main pass that tabulates the conditional
posterior of μ on every τ node (see :mod:`metaresp.bayes` for the method and its accuracy).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from metaresp.bayesquad import (
    _CHUNK_ELEMENTS,
    WIDE_TAU,
    Resolution,
    _Grid,
    _rule,
    _study_loglik,
)
from metaresp.priors import MuPrior, TauPrior

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]

__all__ = ["build_grids"]


def _normal_approx(
    x: FloatArray, n: FloatArray, count: FloatArray, tau: FloatArray, mu_prior: MuPrior
) -> tuple[FloatArray, FloatArray]:
    """Centre and SD of μ | τ from the normal-normal model with 0.5 corrections."""
    y = np.log((x + 0.5) / (n - x + 0.5))
    v = 1.0 / (x + 0.5) + 1.0 / (n - x + 0.5)
    w = count[:, None, :] / (v[:, None, :] + tau[..., None] ** 2)
    prec = np.sum(w, axis=-1) + 1.0 / mu_prior.sd**2
    centre = (np.sum(w * y[:, None, :], axis=-1) + mu_prior.mean / mu_prior.sd**2) / prec
    return centre, 1.0 / np.sqrt(prec)


def _conditional(
    x: FloatArray,
    n: FloatArray,
    lc: FloatArray,
    w: FloatArray,
    tau: FloatArray,
    mu_nodes: FloatArray,
    mu_prior: MuPrior,
    res: Resolution,
) -> FloatArray:
    """log L(μ, τ) + log π(μ) at nodes mu_nodes (R, T, M) for τ (R, T)."""
    xs, ns, ls, ws = (a[:, None, None, :] for a in (x, n, lc, w))
    # Each row's node count depends on its own τ only, so a row's result does not depend
    # on the other rows of a batch: columns where rows disagree are evaluated both ways.
    is_wide = tau >= WIDE_TAU
    ll = np.empty(mu_nodes.shape)
    rows, _, n_mu = mu_nodes.shape
    for want_wide in (False, True):
        nagq = res.nagq_wide if want_wide else res.nagq
        cols = np.any(is_wide, axis=0) if want_wide else ~np.all(is_wide, axis=0)
        idx = np.flatnonzero(cols)
        block = max(1, _CHUNK_ELEMENTS // (rows * n_mu * x.shape[-1] * nagq))
        for start in range(0, idx.size, block):
            sel = idx[start : start + block]
            vals = _study_loglik(
                xs, ns, ls, ws, mu_nodes[:, sel, :, None], tau[:, sel, None, None], nagq, res
            )
            mine = is_wide[:, sel] == want_wide
            ll[:, sel] = np.where(mine[..., None], vals, ll[:, sel])
    out: FloatArray = ll + mu_prior.log_pdf(mu_nodes)
    return out


@lru_cache(maxsize=8)
def _chebyshev(nodes: int, targets: int) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Chebyshev points u_c = cos(πc/N) on [-1, 1] (N = nodes - 1), the matrix B that maps
    values at them to the polynomial interpolant at ``targets`` equispaced points from -1
    to 1 (barycentric formula), and the rows of the two highest Chebyshev coefficients."""
    big_n = nodes - 1
    u = np.cos(np.pi * np.arange(nodes) / big_n)
    bw = (-1.0) ** np.arange(nodes)
    bw[0] *= 0.5
    bw[-1] *= 0.5
    s = np.linspace(-1.0, 1.0, targets)
    diff = s[:, None] - u[None, :]
    hit = np.abs(diff) < 1e-14
    b = bw / np.where(hit, 1.0, diff)
    b /= np.sum(b, axis=1, keepdims=True)
    for i, j in zip(*np.nonzero(hit), strict=True):
        b[i] = 0.0
        b[i, j] = 1.0
    # a_j = (2/N) Σ'' f_c cos(jcπ/N), the end terms halved (and a_N halved once more).
    half = np.ones(nodes)
    half[0] = half[-1] = 0.5
    j = np.array([big_n - 1, big_n])[:, None]
    coef = 2.0 / big_n * half * np.cos(np.pi * j * np.arange(nodes) / big_n)
    coef[1] *= 0.5
    return u, b, coef


def _main_pass(
    x: FloatArray,
    n: FloatArray,
    lc: FloatArray,
    w: FloatArray,
    tau: FloatArray,
    nodes: FloatArray,
    mu_prior: MuPrior,
    res: Resolution,
    tol: float,
) -> FloatArray:
    """log L + log π(μ) at ``nodes`` (R, T, M), equispaced in μ for each τ node.

    With ``res.cheb_nodes`` = C the function of μ is evaluated at C Chebyshev points
    spanning the nodes and interpolated. Where its last two Chebyshev coefficients sum to
    more than ``tol`` (they bound the interpolation error, typically tenfold), the 2C - 1
    points that contain those C are used instead, and where that still fails every node
    is evaluated directly.
    """
    n_mu = nodes.shape[-1]
    c1 = res.cheb_nodes
    if c1 <= 0 or c1 >= n_mu:
        return _conditional(x, n, lc, w, tau, nodes, mu_prior, res)
    lo, hi = nodes[..., 0], nodes[..., -1]
    mid, half = 0.5 * (lo + hi), 0.5 * (hi - lo)
    u, interp, coef = _chebyshev(c1, n_mu)
    vals = _conditional(x, n, lc, w, tau, mid[..., None] + half[..., None] * u, mu_prior, res)
    lp: FloatArray = np.einsum("mc,rtc->rtm", interp, vals)
    tail = np.sum(np.abs(np.einsum("jc,rtc->rtj", coef, vals)), axis=-1)
    bad_r, bad_t = np.nonzero(~(tail <= tol))
    c2 = 2 * c1 - 1
    if bad_r.size and c2 < n_mu:
        # The Chebyshev points of 2C - 1 nodes are those of C (even indices) and C - 1 more.
        u2, interp2, coef2 = _chebyshev(c2, n_mu)
        both = np.empty((bad_r.size, c2))
        both[:, ::2] = vals[bad_r, bad_t]
        at = mid[bad_r, bad_t][:, None] + half[bad_r, bad_t][:, None] * u2[1::2]
        both[:, 1::2] = _gathered(x, n, lc, w, tau, at, bad_r, bad_t, mu_prior, res)
        lp[bad_r, bad_t] = both @ interp2.T
        ok = np.sum(np.abs(both @ coef2.T), axis=-1) <= tol
        bad_r, bad_t = bad_r[~ok], bad_t[~ok]
    if bad_r.size:
        lp[bad_r, bad_t] = _gathered(
            x, n, lc, w, tau, nodes[bad_r, bad_t], bad_r, bad_t, mu_prior, res
        )
    return lp


def _gathered(
    x: FloatArray,
    n: FloatArray,
    lc: FloatArray,
    w: FloatArray,
    tau: FloatArray,
    at: FloatArray,
    rows: IntArray,
    cols: IntArray,
    mu_prior: MuPrior,
    res: Resolution,
) -> FloatArray:
    """:func:`_conditional` at the (row, τ node) pairs ``rows``, ``cols``: points ``at``
    (S, P). Pairs below and from WIDE_TAU on go in separate calls (one node count each)."""
    out = np.empty(at.shape)
    t_sel = tau[rows, cols]
    for part in (np.flatnonzero(t_sel < WIDE_TAU), np.flatnonzero(t_sel >= WIDE_TAU)):
        if part.size:
            r = rows[part]
            vals = _conditional(
                x[r], n[r], lc[r], w[r], t_sel[part][:, None], at[part][:, None, :], mu_prior, res
            )
            out[part] = vals[:, 0]
    return out


def _tau_range(
    lp: FloatArray,
    log_du: FloatArray,
    v_pick: FloatArray,
    v_max: FloatArray,
    tau_pick: FloatArray,
    log_jac: FloatArray,
    priors: Sequence[TauPrior],
    res: Resolution,
) -> tuple[FloatArray, FloatArray]:
    """Per row, the v range holding the posterior: from the pilot node before the first to
    the one after the last pilot node whose density of v, under some τ prior of the group,
    is at least ``res.tau_cut_tol`` of its peak (the whole range without a tolerance)."""
    rows = lp.shape[0]
    if res.tau_cut_tol <= 0.0:
        return np.zeros(rows), v_max.copy()
    top = np.max(lp, axis=-1)
    log_z = top + np.log(np.sum(np.exp(lp - top[..., None]), axis=-1)) + log_du
    rel = np.full(log_z.shape, -np.inf)
    for prior in priors:
        lg = log_z + prior.log_pdf(tau_pick) + log_jac
        rel = np.maximum(rel, lg - np.max(lg, axis=-1, keepdims=True))
    keep = rel >= math.log(res.tau_cut_tol)
    last_pick = v_pick.shape[1] - 1
    first = np.maximum(np.argmax(keep, axis=1) - 1, 0)
    last = np.minimum(last_pick - np.argmax(keep[:, ::-1], axis=1) + 1, last_pick)
    rr = np.arange(rows)
    v_lo = np.where(first == 0, 0.0, v_pick[rr, first])
    v_hi = np.where(last == last_pick, v_max, v_pick[rr, last])
    return v_lo, v_hi


def build_grids(
    x: FloatArray,
    n: FloatArray,
    lc: FloatArray,
    w: FloatArray,
    v_max: FloatArray,
    scale: float,
    upper: float,
    mu_prior: MuPrior,
    priors: Sequence[TauPrior],
    res: Resolution,
) -> list[tuple[IntArray, _Grid]]:
    """Grids of R rows; each (rows, grid) pair holds the rows sharing a τ node count.

    Every row's grid depends on its own data and ``v_max`` only, never on other rows.
    """
    full = np.maximum(24, np.ceil(v_max / res.tau_step) + 1).astype(np.intp)
    if np.any(full != full[0]):  # rows whose uncut τ grids differ are built apart
        out: list[tuple[IntArray, _Grid]] = []
        for size in np.unique(full):
            rows = np.flatnonzero(full == size)
            for part, grid in build_grids(
                x[rows],
                n[rows],
                lc[rows],
                w[rows],
                v_max[rows],
                scale,
                upper,
                mu_prior,
                priors,
                res,
            ):
                out.append((rows[part], grid))
        return out
    n_full = int(full[0])
    v_full = (v_max / (n_full - 1))[:, None] * np.arange(n_full)
    # Pilot: every pilot_stride-th τ node, a wide coarse μ grid from the normal approximation.
    pick = np.unique(np.r_[np.arange(0, n_full, res.pilot_stride), n_full - 1])
    v_pick = v_full[:, pick]
    tau_pick = scale * np.sinh(v_pick)
    c0, s0 = _normal_approx(x, n, w, tau_pick, mu_prior)
    u = np.linspace(-res.pilot_half_width, res.pilot_half_width, res.pilot_nodes)
    nodes = c0[..., None] + s0[..., None] * u
    lp = _main_pass(x, n, lc, w, tau_pick, nodes, mu_prior, res, res.pilot_cheb_tol)
    wts = np.exp(lp - np.max(lp, axis=-1, keepdims=True))
    wts /= np.sum(wts, axis=-1, keepdims=True)
    pm = np.sum(wts * nodes, axis=-1)
    psd = np.sqrt(np.maximum(np.sum(wts * (nodes - pm[..., None]) ** 2, axis=-1), 1e-300))
    psd = np.maximum(psd, 0.05 * s0)
    log_jac_pick = math.log(scale) + np.log(np.cosh(v_pick))
    log_du = np.log(s0 * (u[1] - u[0]))
    v_lo, v_hi = _tau_range(lp, log_du, v_pick, v_max, tau_pick, log_jac_pick, priors, res)
    counts = np.maximum(res.min_tau_nodes, np.ceil((v_hi - v_lo) / res.tau_step - 1e-9) + 1)
    counts = np.where((v_lo == 0.0) & (v_hi == v_max), n_full, counts).astype(np.intp)
    out = []
    for n_tau in np.unique(counts):
        sel = np.flatnonzero(counts == n_tau)
        out.append(
            (
                sel,
                _grid(
                    x[sel],
                    n[sel],
                    lc[sel],
                    w[sel],
                    v_lo[sel],
                    v_hi[sel],
                    int(n_tau),
                    scale,
                    upper if math.isfinite(upper) else math.inf,
                    v_max[sel],
                    (v_pick[sel], pm[sel], psd[sel]),
                    mu_prior,
                    res,
                ),
            )
        )
    return out


def _grid(
    x: FloatArray,
    n: FloatArray,
    lc: FloatArray,
    w: FloatArray,
    v_lo: FloatArray,
    v_hi: FloatArray,
    n_tau: int,
    scale: float,
    upper: float,
    v_max: FloatArray,
    pilot: tuple[FloatArray, FloatArray, FloatArray],
    mu_prior: MuPrior,
    res: Resolution,
) -> _Grid:
    rows = x.shape[0]
    v_step = (v_hi - v_lo) / (n_tau - 1)
    v = v_lo[:, None] + v_step[:, None] * np.arange(n_tau)
    tau = scale * np.sinh(v)
    if math.isfinite(upper):
        tau[:, -1] = np.where(v_hi == v_max, upper, tau[:, -1])
    log_jac = math.log(scale) + np.log(np.cosh(v))
    v_pick, pm, psd = pilot
    centre = np.stack([np.interp(v[r], v_pick[r], pm[r]) for r in range(rows)])
    sd = np.exp(np.stack([np.interp(v[r], v_pick[r], np.log(psd[r])) for r in range(rows)]))
    # Main pass.
    mu_step = 2.0 * res.mu_half_width * sd / (res.mu_nodes - 1)
    mu0 = centre - res.mu_half_width * sd
    nodes = mu0[..., None] + mu_step[..., None] * np.arange(res.mu_nodes)
    lp = _main_pass(x, n, lc, w, tau, nodes, mu_prior, res, res.cheb_tol)
    top = np.max(lp, axis=-1)
    dens = np.exp(lp - top[..., None])
    cmat, w = _rule(res.mu_nodes, False)
    cum = np.einsum("ij,rtj->rti", cmat, dens) * mu_step[..., None]
    total = cum[..., -1]
    pdf = dens / total[..., None]
    qw = w * mu_step[..., None] * pdf
    mean = np.sum(qw * nodes, axis=-1)
    second = np.sum(qw * nodes * nodes, axis=-1)
    edge = np.maximum(dens[..., 0], dens[..., -1])
    return _Grid(
        v_step=v_step,
        v0=v_lo.copy(),
        scale=scale,
        tau=tau,
        log_jac=log_jac,
        mu0=mu0,
        mu_step=mu_step,
        cdf=cum / total[..., None],
        pdf=pdf,
        log_z=np.log(total) + top,
        mean=mean,
        second=second,
        edge=edge,
    )
