"""The numerical devices that make metaresp.bayes fast: Chebyshev interpolation of the
log-likelihood in μ, the cut of the τ grid to where the posterior lies, and the Newton
quantile solver. Each is checked against an independent computation (NumPy's Chebyshev
module, SciPy's normal quantiles) or against the same fit with the device switched off.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from numpy.polynomial import chebyshev as C
from scipy import special

from metaresp import _bayes_grid as grid
from metaresp._bayes_interp import _invert
from metaresp.bayes import Resolution, fit_bayes_batch
from metaresp.priors import parse_mu_prior

FIELDS = ("proportion", "ci_low", "ci_high", "pi_low", "pi_high", "mean_proportion")
FIELDS += ("mean_ci_low", "mean_ci_high", "prob_above")
PRIORS = ("half-normal(0.5)", "half-normal(1)", "half-cauchy(0.5)", "uniform(0, 5)")

#: k = 30 with many 0/n studies and totals of 2-10 (the Chebyshev test often fails here
#: and the 21-point and direct evaluations are used), k = 2, and k = 10 with larger totals.
DATA = {
    "k30_zero_heavy": (
        [1, 1, 0, 1, 0, 0, 1, 1, 2, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2, 0, 3, 0, 0, 3, 0, 0, 2],
        [8, 4, 6, 5, 9, 5, 7, 7, 9, 5, 6, 9, 2, 4, 10, 2, 4, 7, 9, 7, 3, 9, 6, 9, 4, 4, 7, 9, 2, 5],
    ),
    "k2": ([12, 7], [20, 15]),
    "k10": ([3, 17, 9, 30, 1, 12, 22, 5, 40, 11], [20, 25, 30, 45, 12, 40, 30, 18, 60, 22]),
}


def test_chebyshev_matrices_agree_with_numpy() -> None:
    nodes, targets = 11, 32
    u, interp, coef = grid._chebyshev(nodes, targets)
    rng = np.random.default_rng(3)
    c = rng.normal(size=nodes)
    # The interpolant of a polynomial of degree nodes - 1 is the polynomial itself.
    s = np.linspace(-1.0, 1.0, targets)
    assert np.allclose(interp @ C.chebval(u, c), C.chebval(s, c), atol=1e-12)
    # The two rows give its two highest Chebyshev coefficients.
    assert np.allclose(coef @ C.chebval(u, c), c[-2:], atol=1e-12)
    # The 21 points contain the 11 (at even indices), which the refinement relies on.
    u2, _, _ = grid._chebyshev(2 * nodes - 1, targets)
    assert np.allclose(u2[::2], u, atol=1e-15)


def _log_lik_setup(name: str) -> tuple[np.ndarray, ...]:
    x = np.array([DATA[name][0]], dtype=float)
    n = np.array([DATA[name][1]], dtype=float)
    lc = special.gammaln(n + 1) - special.gammaln(x + 1) - special.gammaln(n - x + 1)
    tau = np.array([[0.0, 0.05, 0.3, 0.9, 1.0, 2.5, 8.0]])
    mp = parse_mu_prior("normal(0, 2)")
    w = np.ones_like(x)
    c0, s0 = grid._normal_approx(x, n, w, tau, mp)
    nodes = c0[..., None] + s0[..., None] * np.linspace(-7.0, 7.0, 32)
    return x, n, lc, w, tau, nodes


@pytest.mark.parametrize("name", sorted(DATA))
def test_interpolated_log_likelihood_matches_direct(name: str) -> None:
    x, n, lc, w, tau, nodes = _log_lik_setup(name)
    mp = parse_mu_prior("normal(0, 2)")
    res = Resolution()
    direct = grid._conditional(x, n, lc, w, tau, nodes, mp, res)
    # tol 0: every τ node fails the test and is evaluated directly.
    assert np.array_equal(grid._main_pass(x, n, lc, w, tau, nodes, mp, res, 0.0), direct)
    approx = grid._main_pass(x, n, lc, w, tau, nodes, mp, res, res.cheb_tol)
    assert np.max(np.abs(approx - direct)) <= 1e-6
    # Without the test at all (tol inf), 11 points alone are close but coarser.
    loose = grid._main_pass(x, n, lc, w, tau, nodes, mp, res, math.inf)
    assert np.max(np.abs(loose - direct)) <= 1e-3


@pytest.mark.parametrize("name", sorted(DATA))
def test_fast_devices_change_no_reported_figure(name: str) -> None:
    x, n = DATA[name]
    res = Resolution()
    full = fit_bayes_batch([x], [n], tau_priors=PRIORS, threshold=0.3, resolution=res)
    for off in (replace(res, cheb_nodes=0), replace(res, tau_cut_tol=0.0, min_tau_nodes=24)):
        ref = fit_bayes_batch([x], [n], tau_priors=PRIORS, threshold=0.3, resolution=off)
        for ours, other in zip(full, ref, strict=True):
            for field in FIELDS:
                a, b = getattr(ours, field)[0], getattr(other, field)[0]
                assert abs(a - b) <= 1e-5, (name, ours.tau_prior, field, a, b)
            for field in ("tau2", "tau2_ci_low", "tau2_ci_high"):
                a, b = getattr(ours, field)[0], getattr(other, field)[0]
                assert abs(a - b) <= 1e-5 * b, (name, ours.tau_prior, field, a, b)


def test_tau_grid_is_cut_where_the_posterior_is_negligible() -> None:
    # 30 similar studies of 200 patients: τ is small and well determined.
    x = [70 + (7 * i) % 21 for i in range(30)]
    n = [200] * 30
    (cut,) = fit_bayes_batch([x], [n], tau_priors="half-normal(1)")
    (whole,) = fit_bayes_batch(
        [x], [n], tau_priors="half-normal(1)", resolution=Resolution(tau_cut_tol=0.0)
    )
    for field in FIELDS[:-1]:
        assert abs(getattr(cut, field)[0] - getattr(whole, field)[0]) <= 1e-5, field
    assert cut.tau_nodes[0] < whole.tau_nodes[0]
    assert cut.tau_max[0] < whole.tau_max[0]
    assert cut.tau2_ci_high[0] < cut.tau_max[0] ** 2


def test_newton_solver_finds_normal_quantiles() -> None:
    probs = np.array([0.001, 0.025, 0.5, 0.975, 0.999])
    mean = np.array([-1.0, 0.0, 3.0])
    sd = np.array([0.01, 1.0, 40.0])

    def cdf(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        z = (c - mean[:, None]) / sd[:, None]
        return special.ndtr(z), np.exp(-0.5 * z * z) / (sd[:, None] * math.sqrt(2 * math.pi))

    got = _invert(cdf, mean - 50 * sd, mean + 50 * sd, probs, Resolution())
    want = mean[:, None] + sd[:, None] * special.ndtri(probs)
    assert np.allclose(got, want, rtol=0, atol=1e-9 * sd[:, None])


def test_newton_solver_handles_flat_stretches() -> None:
    # Two narrow normals at -0.5 and 1.5, no mass to speak of between them: Newton steps
    # from the flat part leave the bracket and the solver falls back to regula falsi and
    # bisection.
    def cdf(c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        za, zb = (c + 0.5) / 0.1, (c - 1.5) / 0.1
        value = 0.5 * special.ndtr(za) + 0.5 * special.ndtr(zb)
        dens = (
            0.5 * (np.exp(-0.5 * za * za) + np.exp(-0.5 * zb * zb)) / (0.1 * math.sqrt(2 * math.pi))
        )
        return value, dens

    probs = np.array([0.01, 0.25, 0.5, 0.75, 0.99])
    res = replace(Resolution(), bracket_points=4, solver_steps=60)
    got = _invert(cdf, np.array([-5.0]), np.array([6.0]), probs, res)
    value, _ = cdf(got)
    assert np.allclose(value, probs, rtol=0, atol=1e-12)
    assert np.allclose(got[0, [1, 3]], [-0.5, 1.5], atol=1e-9)


def test_repeated_studies_are_computed_once_and_weighted() -> None:
    from metaresp.bayes import _distinct

    x = np.array([[0, 3, 0, 2], [1, 1, 1, 1], [5, 0, 2, 2]])
    n = np.array([[4, 9, 4, 2], [2, 2, 2, 2], [6, 3, 7, 7]])
    groups = {
        len(rows_x[0]): (rows, rows_x, rows_n, w) for rows, rows_x, rows_n, w in (_distinct(x, n))
    }
    rows, xd, nd, wd = groups[3]
    assert list(rows) == [0, 2]
    assert xd[0].tolist() == [0, 2, 3]
    assert nd[0].tolist() == [4, 2, 9]
    assert wd[0].tolist() == [2, 1, 1]
    assert wd[1].tolist() == [1, 2, 1]
    assert groups[1][3].tolist() == [[4.0]]
    # The weighted likelihood equals the one with every study listed.
    mp = parse_mu_prior("normal(0, 2)")
    tau = np.array([[0.0, 0.4, 1.3, 3.0]])
    mu = np.broadcast_to(np.linspace(-3.0, 2.0, 9), (1, 4, 9))

    def loglik(xs: list[int], ns: list[int], ws: list[int]) -> np.ndarray:
        xa, na = np.array([xs], dtype=float), np.array([ns], dtype=float)
        lc = special.gammaln(na + 1) - special.gammaln(xa + 1) - special.gammaln(na - xa + 1)
        wa = np.array([ws], dtype=float)
        return grid._conditional(xa, na, lc, wa, tau, mu, mp, Resolution())

    listed = loglik([0, 3, 0, 2], [4, 9, 4, 2], [1, 1, 1, 1])
    assert np.allclose(loglik([0, 2, 3], [4, 2, 9], [2, 1, 1]), listed, rtol=0, atol=1e-10)
