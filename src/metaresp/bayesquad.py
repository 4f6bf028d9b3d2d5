"""Numerical core of :mod:`metaresp.bayes`: quadrature rules, study likelihoods, the
(τ, μ) grid and the posterior summaries computed on it. See :mod:`metaresp.bayes` for the
method and how its accuracy is controlled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray
from scipy import special

from metaresp._bayes_interp import _hermite_slope, _hermite_table, _invert
from metaresp.glmm import quadrature_rule
from metaresp.priors import TauPrior

FloatArray = NDArray[np.float64]
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)

#: From this τ on, study integrals use Resolution.nagq_wide nodes.
WIDE_TAU = 1.0
#: From this τ on, 0/n and n/n studies are integrated by parts (see _extreme_loglik).
EXTREME_SWITCH_TAU = 1.0


@dataclass(frozen=True)
class Resolution:
    """Node counts and tolerances of the integration (the defaults meet 1e-3; see module doc).

    ``nagq``/``nagq_wide``: adaptive Gauss-Hermite nodes per study for τ below / from
    ``WIDE_TAU`` on (skewed near-0/n studies need more when τ is large);
    ``mode_steps``: Newton steps centring them; ``mu_nodes``/``mu_half_width``: μ nodes
    per τ node and their half-width in conditional SDs; ``pilot_*``: the coarse pass
    locating μ | τ; ``tau_step``: largest step in v (τ = a sinh v); ``tau_tail_tol``:
    posterior mass allowed beyond the τ grid; ``mean_nodes``: nodes for the mean rate;
    ``pred_nodes``: nodes over z for the predictive; ``extreme_nodes``: nodes for 0/n and
    n/n studies at large τ; ``solver_steps``: most Newton steps after bracketing on
    ``bracket_points`` points; ``cheb_nodes``: Chebyshev nodes from which log L(μ | τ) is
    interpolated to the μ nodes (0: evaluate every μ node), accepted where the last two
    Chebyshev coefficients sum to at most ``cheb_tol`` (``pilot_cheb_tol`` in the pilot);
    ``tau_cut_tol``: the τ grid leaves out the ends where the pilot's posterior density of
    v is below this fraction of its peak under every τ prior sharing the grid (0: never);
    ``min_tau_nodes``: fewest τ nodes.
    """

    nagq: int = 9
    nagq_wide: int = 15
    mode_steps: int = 5
    mu_nodes: int = 32
    mu_half_width: float = 7.0
    pilot_nodes: int = 20
    pilot_half_width: float = 10.0
    pilot_stride: int = 4
    tau_step: float = 0.1
    tau_tail_tol: float = 1e-6
    mean_nodes: int = 24
    pred_nodes: int = 12
    extreme_nodes: int = 20
    bracket_points: int = 24
    solver_steps: int = 16
    cheb_nodes: int = 11
    cheb_tol: float = 1e-6
    pilot_cheb_tol: float = 1e-2
    tau_cut_tol: float = 1e-10
    min_tau_nodes: int = 12

    @classmethod
    def fine(cls) -> Resolution:
        """A far denser setting, for checking the default one."""
        return cls(
            nagq=31,
            nagq_wide=31,
            mode_steps=12,
            mu_nodes=96,
            mu_half_width=10.0,
            pilot_nodes=60,
            pilot_half_width=14.0,
            pilot_stride=1,
            tau_step=0.025,
            tau_tail_tol=1e-9,
            mean_nodes=100,
            pred_nodes=40,
            extreme_nodes=60,
            # the bracketing points only locate each root for the solver, which then runs
            # until its bracket closes (at most 60 steps): 32 points give the quantiles of
            # 200 to 1e-9 on the accuracy tests' datasets
            bracket_points=32,
            solver_steps=60,
            # every likelihood value evaluated directly, on the whole τ range
            cheb_nodes=0,
            tau_cut_tol=0.0,
            min_tau_nodes=24,
        )


DEFAULT_RESOLUTION = Resolution()
DEFAULT_NAGQ = DEFAULT_RESOLUTION.nagq
#: Cap on R·T·M·k·nagq elements in one likelihood evaluation (memory).
_CHUNK_ELEMENTS = 400_000
__all__ = ["DEFAULT_NAGQ", "DEFAULT_RESOLUTION", "Resolution"]


# ----------------------------------------------------------------------------- rules


@lru_cache(maxsize=64)
def _rule(n: int, reflect: bool) -> tuple[FloatArray, FloatArray]:
    """Four-point composite rule on n equispaced nodes (unit step).

    Returns (C, w): C[j] is the (n, n) matrix row giving ∫_{x_0}^{x_j} f as C @ f, w the
    weights of the whole integral. ``reflect``: f is even about x_0 (f(x_-1) = f(x_1)).
    """
    c = np.zeros((n, n))
    for i in range(n - 1):
        row = np.zeros(n)
        if i == 0:
            if reflect:
                row[:3] += np.array([13.0, 12.0, -1.0]) / 24.0  # f(x_-1) = f(x_1)
            else:
                row[:4] += np.array([9.0, 19.0, -5.0, 1.0]) / 24.0
        elif i == n - 2:
            row[n - 4 :] += np.array([1.0, -5.0, 19.0, 9.0]) / 24.0
        else:
            row[i - 1 : i + 3] += np.array([-1.0, 13.0, 13.0, -1.0]) / 24.0
        c[i + 1] = c[i] + row
    return c, c[-1].copy()


@lru_cache(maxsize=4)
def _laguerre(nodes: int) -> tuple[FloatArray, FloatArray]:
    s, w = special.roots_laguerre(nodes)
    return s.astype(np.float64), w.astype(np.float64)


def _gh_normal(nodes: int) -> tuple[FloatArray, FloatArray]:
    """Nodes and weights of E[f(Z)], Z ~ N(0, 1)."""
    t, lw = quadrature_rule(nodes)
    w = np.exp(lw - 0.5 * t * t - _LOG_SQRT_2PI)
    return t, w


# ----------------------------------------------------------------------- likelihood


def _modes(x: FloatArray, n: FloatArray, mu: FloatArray, tau: FloatArray, steps: int) -> FloatArray:
    """Approximate modes ẑ of x(μ + τz) - n log(1 + e^(μ+τz)) - z²/2 (``steps`` steps).

    Start from the normal approximation (0.5-corrected logit and variance), then Newton
    steps kept inside the bracket [τ(x - n), τx] that holds the root. The quadrature only
    needs a centre near the mode: its accuracy is checked end to end by the tests.
    """
    y = np.log((x + 0.5) / (n - x + 0.5))
    v = 1.0 / (x + 0.5) + 1.0 / (n - x + 0.5)
    z = tau * (y - mu) / (v + tau * tau)
    lo, hi = tau * (x - n), tau * x
    for _ in range(steps):
        p = special.expit(mu + tau * z)
        g = tau * (x - n * p) - z
        z = np.clip(z + g / (1.0 + tau * tau * n * p * (1.0 - p)), lo, hi)
    out: FloatArray = z
    return out


def _study_loglik(
    x: FloatArray,
    n: FloatArray,
    lc: FloatArray,
    w: FloatArray,
    mu: FloatArray,
    tau: FloatArray,
    nagq: int,
    res: Resolution,
) -> FloatArray:
    """Σ_i w_i log L_i(μ, τ) by adaptive Gauss-Hermite; x, n, lc, w: (R, 1, 1, k), w the
    number of studies with these counts.

    With t the nodes, z = ẑ + σt and θ = μ + τz = η + τσt, the log integrand relative to
    its value at ẑ is t(B + Ct) - n(s(θ) - s(η)) + x τσ t, s the softplus, B = -ẑσ,
    C = -σ²/2; the value at ẑ is added back in closed form.
    """
    t, lw = quadrature_rule(nagq)
    zhat = _modes(x, n, mu, tau, res.mode_steps)
    eta = mu + tau * zhat
    p = special.expit(eta)
    sig = 1.0 / np.sqrt(1.0 + tau * tau * n * p * (1.0 - p))
    slope = tau * sig
    sp_eta = _softplus(eta)
    theta = eta[..., None] + slope[..., None] * t
    h = _softplus(theta)
    h -= sp_eta[..., None]
    h *= -n[..., None]
    h += t * ((x * slope - zhat * sig)[..., None] - (0.5 * sig * sig)[..., None] * t)
    h += lw
    top = np.max(h, axis=-1, keepdims=True)
    np.exp(h - top, out=h)
    li = np.log(np.sum(h, axis=-1)) + top[..., 0] + np.log(sig) - _LOG_SQRT_2PI
    li += x * eta - n * sp_eta - 0.5 * zhat * zhat
    extreme = ((x == 0) | (x == n)) & (tau >= EXTREME_SWITCH_TAU)
    if np.any(extreme):
        cols = np.flatnonzero(np.any(extreme, axis=(0, 1, 2)))
        li[..., cols] = np.where(
            extreme[..., cols],
            _extreme_loglik(x[..., cols], n[..., cols], mu, tau, res),
            li[..., cols],
        )
    out: FloatArray = np.sum((li + lc) * w, axis=-1)
    return out


def _softplus(v: FloatArray) -> FloatArray:
    """log(1 + e^v) without overflow."""
    out: FloatArray = np.log1p(np.exp(-np.abs(v)))
    out += np.maximum(v, 0.0)
    return out


def _extreme_loglik(
    x: FloatArray, n: FloatArray, mu: FloatArray, tau: FloatArray, res: Resolution
) -> FloatArray:
    """log L_i for a 0/n or n/n study by parts, accurate for large τ.

    With S(θ) = (1 - expit θ)^n (x = 0; x = n mirrors μ), L = ∫ S(θ) N(θ | μ, τ²) dθ =
    ∫ D(t) Φ((t - μ)/τ) dt, D(t) = n e^t / (1 + e^t)^(n+1) a density of unit scale; for
    τ ≥ 1 the integrand is smooth on that scale, where adaptive quadrature in z would
    straddle the cliff of S. Gauss-Hermite around D's mode -log n, as a ratio to ∫ D = 1.
    """
    u, lw = quadrature_rule(res.extreme_nodes)
    sign = np.where((x == n) & (x > 0), -1.0, 1.0)
    centre = -np.log(n)
    scale = np.sqrt((n + 1.0) / n)
    t = centre[..., None] + scale[..., None] * u
    log_d = np.log(n)[..., None] + t - (n[..., None] + 1.0) * np.logaddexp(0.0, t) + lw
    top = np.max(log_d, axis=-1, keepdims=True)
    q = np.exp(log_d - top)
    tau_safe = np.maximum(tau, EXTREME_SWITCH_TAU)
    arg = (t - (sign * mu)[..., None]) / tau_safe[..., None]
    out: FloatArray = np.log(np.sum(q * special.ndtr(arg), axis=-1) / np.sum(q, axis=-1))
    return out


def _mean_rate(mu: FloatArray, tau: FloatArray, nodes: int) -> tuple[FloatArray, FloatArray]:
    """m(μ, τ) = E[expit(μ + τ Z)] and ∂m/∂μ (broadcast shapes).

    τ < 1: Gauss-Hermite over z. τ ≥ 1: m = Φ(μ/τ) + ∫_0^∞ expit(-s) [φ((s + μ)/τ) -
    φ((s - μ)/τ)] ds / τ (split at expit's step, by parts), Gauss-Laguerre in s.
    """
    mu, tau = np.broadcast_arrays(mu, tau)
    m = np.empty(mu.shape)
    d = np.empty(mu.shape)
    small = tau < 1.0
    if np.any(small):
        t, w = _gh_normal(nodes)
        ps = special.expit(mu[small][:, None] + tau[small][:, None] * t)
        m[small] = ps @ w
        d[small] = (ps * (1.0 - ps)) @ w
    big = ~small
    if np.any(big):
        s, wl = _laguerre(nodes)
        mb = mu[big][:, None]
        tb = tau[big][:, None]
        a = (s + mb) / tb
        b = (s - mb) / tb
        phi_a = np.exp(-0.5 * a * a - _LOG_SQRT_2PI)
        phi_b = np.exp(-0.5 * b * b - _LOG_SQRT_2PI)
        den = tb * (1.0 + np.exp(-s))
        ratio = mb[:, 0] / tb[:, 0]
        m[big] = special.ndtr(ratio) + ((phi_a - phi_b) / den) @ wl
        d[big] = (
            np.exp(-0.5 * ratio * ratio - _LOG_SQRT_2PI) / tb[:, 0]
            + ((-a * phi_a - b * phi_b) / (den * tb)) @ wl
        )
    return np.clip(m, 0.0, 1.0), np.maximum(d, 0.0)


@dataclass(frozen=True)
class _Grid:
    """Likelihood × mu-prior on the (τ, μ) grid of R rows; shapes (R, T[, M])."""

    v_step: FloatArray  # (R,)
    v0: FloatArray  # (R,): first v node (0 unless the grid's low end was cut off)
    scale: float
    tau: FloatArray  # (R, T)
    log_jac: FloatArray  # (R, T): log dτ/dv
    mu0: FloatArray  # (R, T): first μ node
    mu_step: FloatArray  # (R, T)
    cdf: FloatArray  # (R, T, M): F(μ | τ) at the nodes
    pdf: FloatArray  # (R, T, M): f(μ | τ) at the nodes
    log_z: FloatArray  # (R, T): log ∫ L(μ, τ) π(μ) dμ
    mean: FloatArray  # (R, T): E[μ | τ]
    second: FloatArray  # (R, T): E[μ² | τ]
    edge: FloatArray  # (R, T): density at the μ grid ends relative to the peak
    #: maps computed once per grid and shared by the τ priors summarised on it
    cache: dict[str, tuple[FloatArray, FloatArray, FloatArray]] = field(
        default_factory=dict, compare=False, repr=False
    )


def _tau_weights(grid: _Grid, prior: TauPrior) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Posterior density of v on its nodes (normalised), its CDF, and mixing weights."""
    lg = grid.log_z + prior.log_pdf(grid.tau) + grid.log_jac
    g = np.exp(lg - np.max(lg, axis=-1, keepdims=True))
    n_tau = g.shape[-1]
    # From v = 0 the density is even in v (reflected end rule); a grid cut off below
    # starts where the density is negligible.
    from_zero = (grid.v0 == 0.0)[:, None]
    cmat, w = _rule(n_tau, True)
    cmat_cut, w_cut = _rule(n_tau, False)
    cum = np.where(from_zero, np.einsum("ij,rj->ri", cmat, g), np.einsum("ij,rj->ri", cmat_cut, g))
    cum = cum * grid.v_step[:, None]
    w = np.where(from_zero, w, w_cut)
    total = cum[:, -1]
    mix = w * g
    mix = np.maximum(mix, 0.0)
    mix /= np.sum(mix, axis=-1, keepdims=True)
    return g / total[:, None], cum / total[:, None], mix


# -------------------------------------------------------------------------- summary


def _summarise(
    grid: _Grid, prior: TauPrior, probs: FloatArray, threshold: float | None, res: Resolution
) -> tuple[dict[str, FloatArray], FloatArray]:
    dens_v, cdf_v, mix = _tau_weights(grid, prior)
    rows, n_tau = mix.shape
    tau_tail = dens_v[:, -1]  # ≈ mass beyond the grid: heavy tails decay like e^-v
    out: dict[str, FloatArray] = {}
    span = (grid.cdf.shape[-1] - 1) * grid.mu_step
    lo_all = grid.mu0
    hi_all = grid.mu0 + span

    # μ
    table_mu = _hermite_table(grid.cdf, grid.pdf, grid.mu_step)

    def cdf_mu(c: FloatArray) -> tuple[FloatArray, FloatArray]:
        vals, dens = _hermite_slope(grid.mu0, grid.mu_step, table_mu, c[:, None, :])
        return np.einsum("rt,rtp->rp", mix, vals), np.einsum("rt,rtp->rp", mix, dens)

    mean_mu = np.sum(mix * grid.mean, axis=-1)
    var_mu = np.maximum(np.sum(mix * grid.second, axis=-1) - mean_mu**2, 0.0)
    sd_mu = np.sqrt(var_mu)
    lo = np.maximum(np.min(lo_all, axis=-1), mean_mu - 40.0 * sd_mu)
    hi = np.minimum(np.max(hi_all, axis=-1), mean_mu + 40.0 * sd_mu)
    wide_probs = np.array([0.001, 0.999])
    q_mu = _invert(
        cdf_mu, lo, hi, np.r_[probs, wide_probs], res, centre=mean_mu, scale=sd_mu + 1e-6
    )
    mu_far = q_mu[:, 3:]
    out["mu"] = q_mu[:, 1]
    out["mu_sd"] = sd_mu
    out["proportion"] = special.expit(q_mu[:, 1])
    out["ci_low"] = special.expit(q_mu[:, 0])
    out["ci_high"] = special.expit(q_mu[:, 2])

    # τ²
    v_step = grid.v_step
    v0 = grid.v0

    table_v = _hermite_table(cdf_v, dens_v, v_step)

    def cdf_v_at(c: FloatArray) -> tuple[FloatArray, FloatArray]:
        return _hermite_slope(v0, v_step, table_v, c)

    v_nodes = v0[:, None] + v_step[:, None] * np.arange(n_tau)
    q_v = _invert(cdf_v_at, v0, v_nodes[:, -1], np.r_[probs, wide_probs[1]], res, points=v_nodes)
    tau_far = grid.scale * np.sinh(q_v[:, 3])
    q_v = q_v[:, :3]
    q_tau = np.minimum(grid.scale * np.sinh(q_v), grid.tau[:, -1:])
    out["tau2"] = q_tau[:, 1] ** 2
    out["tau2_ci_low"] = q_tau[:, 0] ** 2
    out["tau2_ci_high"] = q_tau[:, 2] ** 2

    # Mean rate m(μ, τ), in y = logit m; inverse map y -> μ per τ node by Hermite.
    nodes = grid.mu0[..., None] + grid.mu_step[..., None] * np.arange(grid.cdf.shape[-1])
    key = f"mean_rate_{res.mean_nodes}"
    if key not in grid.cache:  # the same for every τ prior on this grid
        tau3 = np.broadcast_to(grid.tau[..., None], nodes.shape)
        # m(-μ) = 1 - m(μ) and ∂m/∂μ is even in μ: integrate the smaller of the two only
        small, d_pos = _mean_rate(-np.abs(nodes), tau3, res.mean_nodes)
        neg = nodes < 0.0
        m_pos = np.where(neg, small, 1.0 - small)
        m_neg = np.where(neg, 1.0 - small, small)
        grid.cache[key] = (m_pos, d_pos, m_neg)
    m_pos, d_pos, m_neg = grid.cache[key]
    with np.errstate(divide="ignore"):
        y = np.log(m_pos) - np.log(m_neg)
        dy = d_pos / (m_pos * m_neg)
    y = np.maximum.accumulate(np.nan_to_num(y, nan=-np.inf), axis=-1)
    slope = np.where(dy > 0.0, 1.0 / np.where(dy > 0.0, dy, 1.0), 0.0)

    def cdf_m(c: FloatArray) -> tuple[FloatArray, FloatArray]:
        cc = c[:, None, :]
        j = np.sum(y[..., None] <= cc[:, :, None, :], axis=2) - 1
        below = j < 0
        above = j >= grid.cdf.shape[-1] - 1
        jj = np.clip(j, 0, grid.cdf.shape[-1] - 2)
        y0 = np.take_along_axis(y, jj, axis=-1)
        y1 = np.take_along_axis(y, jj + 1, axis=-1)
        dyy = np.where(np.isfinite(y1 - y0) & (y1 > y0), y1 - y0, 1.0)
        t_raw = np.where(np.isfinite(y0), (cc - y0) / dyy, 1.0)
        t = np.clip(t_raw, 0.0, 1.0)
        x0 = np.take_along_axis(nodes, jj, axis=-1)
        x1 = np.take_along_axis(nodes, jj + 1, axis=-1)
        s0 = np.take_along_axis(slope, jj, axis=-1) * dyy
        s1 = np.take_along_axis(slope, jj + 1, axis=-1) * dyy
        t2, t3 = t * t, t * t * t
        mu_star = (
            (2 * t3 - 3 * t2 + 1) * x0
            + (t3 - 2 * t2 + t) * s0
            + (3 * t2 - 2 * t3) * x1
            + (t3 - t2) * s1
        )
        lo_x, hi_x = np.minimum(x0, x1), np.maximum(x0, x1)
        d_star = (
            (6 * t2 - 6 * t) * (x0 - x1) + (3 * t2 - 4 * t + 1) * s0 + (3 * t2 - 2 * t) * s1
        ) / dyy
        inside = (t_raw > 0.0) & (t_raw < 1.0) & (mu_star > lo_x) & (mu_star < hi_x)
        mu_star = np.clip(mu_star, lo_x, hi_x)
        vals, dens = _hermite_slope(grid.mu0, grid.mu_step, table_mu, mu_star)
        vals = np.where(below, 0.0, np.where(above, 1.0, vals))
        dens = np.where(below | above | ~inside, 0.0, dens * d_star)
        return np.einsum("rt,rtp->rp", mix, vals), np.einsum("rt,rtp->rp", mix, dens)

    wq = _rule(grid.cdf.shape[-1], False)[1] * grid.mu_step[..., None] * grid.pdf
    finite_y = np.where(np.isfinite(y), y, 0.0)
    ym = np.sum(mix * np.sum(wq * finite_y, axis=-1), axis=-1)
    ysd = np.sqrt(
        np.maximum(np.sum(mix * np.sum(wq * finite_y**2, axis=-1), axis=-1) - ym**2, 1e-12)
    )
    ylo = np.maximum(ym - 40.0 * ysd, np.min(np.where(np.isfinite(y), y, np.inf), axis=(1, 2)))
    yhi = np.minimum(ym + 40.0 * ysd, np.max(finite_y, axis=(1, 2)))
    q_m = _invert(cdf_m, ylo - 1e-9, yhi + 1e-9, probs, res, centre=ym, scale=ysd)
    out["mean_proportion"] = special.expit(q_m[:, 1])
    out["mean_ci_low"] = special.expit(q_m[:, 0])
    out["mean_ci_high"] = special.expit(q_m[:, 2])

    # Posterior predictive θ_new = μ + τ z.
    tz, wz = _gh_normal(res.pred_nodes)
    sd_cond = np.sqrt(np.maximum(grid.second - grid.mean**2, 1e-300))
    narrow = grid.tau < sd_cond  # (R, T)
    wmu = wq  # (R, T, M): quadrature weights of μ | τ

    tau_safe = np.where(narrow, 1.0, grid.tau)

    def cdf_pred(c: FloatArray) -> tuple[FloatArray, FloatArray]:
        shifted = c[:, None, :, None] - grid.tau[:, :, None, None] * tz  # (R, T, P, Z)
        vals, dens = _hermite_slope(
            grid.mu0[..., None], grid.mu_step[..., None], table_mu[:, :, None], shifted
        )
        arg = (c[:, None, None, :] - nodes[..., None]) / tau_safe[..., None, None]
        wide_vals = np.einsum("rtm,rtmp->rtp", wmu, special.ndtr(arg))
        wide_dens = np.einsum("rtm,rtmp->rtp", wmu, np.exp(-0.5 * arg * arg - _LOG_SQRT_2PI))
        wide_dens /= tau_safe[..., None]
        nar = narrow[..., None]
        both = np.where(nar, vals @ wz, wide_vals)
        both_d = np.where(nar, dens @ wz, wide_dens)
        return np.einsum("rt,rtp->rp", mix, both), np.einsum("rt,rtp->rp", mix, both_d)

    # Search range: P(θ_new < lo) <= P(μ < q_0.001) + P(τ > q_0.999) + Φ(-6) < (1-level)/2.
    reach = 6.0 * tau_far + 1.0
    pq = np.array([probs[0], probs[2]])
    q_pred = _invert(
        cdf_pred,
        mu_far[:, 0] - reach,
        mu_far[:, 1] + reach,
        pq,
        res,
        centre=q_mu[:, 1],
        scale=sd_mu + np.sqrt(out["tau2"]) + 1e-3,
    )
    out["pi_low"] = special.expit(q_pred[:, 0])
    out["pi_high"] = special.expit(q_pred[:, 1])

    if threshold is None:
        out["prob_above"] = np.full(rows, np.nan)
        out["prob_mean_above"] = np.full(rows, np.nan)
    else:
        lt = np.full((rows, 1), special.logit(threshold))
        out["prob_above"] = np.clip(1.0 - cdf_mu(lt)[0][:, 0], 0.0, 1.0)
        out["prob_mean_above"] = np.clip(1.0 - cdf_m(lt)[0][:, 0], 0.0, 1.0)
    out["tau_max"] = grid.tau[:, -1].copy()
    out["tau_nodes"] = np.full(rows, float(n_tau))
    edge = np.max(mix * grid.edge, axis=-1)
    return out, np.stack([tau_tail, edge], axis=-1)
