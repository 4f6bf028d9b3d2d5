"""Exact Bayesian binomial-normal pooling of single proportions, by numerical integration.

Model (Günhan, Röver & Friede 2020, Res Synth Methods 11:74; Friede et al. 2017, Biom J
59:658)::

    x_i ~ Bin(n_i, expit θ_i),   θ_i ~ N(μ, τ²),   μ ~ mu_prior,   τ ~ tau_prior.

The posterior of (μ, τ) is prior × Π_i L_i(μ, τ) with L_i = ∫ Bin(x_i | n_i, expit θ)
N(θ | μ, τ²) dθ. No MCMC: every reported number is a deterministic integral.

How the integrals are done, and what controls their accuracy
------------------------------------------------------------
1. **Study integrals.** Each L_i by adaptive Gauss-Hermite quadrature (9 nodes, 15 from
   τ = 1 on) centred at the mode of the integrand in z = (θ - μ)/τ and scaled by its
   curvature, as :mod:`metaresp.glmm` does; exact at τ = 0. For 0/n and n/n studies with
   τ ≥ 1 the integral is taken by parts instead (the integrand has a cliff there).
2. **τ.** A grid equispaced in v with τ = a·sinh(v) (a = 0.1, or a quarter of the smallest
   prior scale), dense near 0 and geometric for large τ, with step at most 0.1 in v. It
   runs to the end of a uniform prior's support, otherwise to τ = 10 first and is extended
   while the posterior mass estimated beyond the grid exceeds 1e-6, for every prior that
   shares the grid (a half-Cauchy prior on all-0% data needs τ in the millions). A pilot
   pass on every fourth node leaves out the ends of this range where the posterior
   density of v is below 1e-10 of its peak under every prior sharing the grid (with one
   pilot node of margin: the mass left out is far below 1e-6).
3. **μ given τ.** For every τ node, 32 equispaced μ nodes spanning ±7 conditional
   standard deviations around the conditional mean, both taken from the coarse pilot pass
   (the conditional posterior of μ given τ is log-concave, so moments locate it). The
   log-likelihood is smooth in μ: it is evaluated at 11 Chebyshev points spanning those
   nodes and interpolated; the sum of its two highest Chebyshev coefficients estimates
   the interpolation error (on the data tried, it overstates it about tenfold), and where
   it exceeds 1e-6 on the log scale 21 points are used, and failing that every node is
   evaluated.
4. **Marginals.** Cumulative integrals use the four-point (cubic) composite rule, exact to
   O(h⁴); between nodes a CDF is the cubic Hermite interpolant of its node values and its
   density. Posterior quantiles of μ, τ, the mean rate and a new study's θ are found on
   mixtures Σ_v w_v F(· | τ_v) by Newton steps on that interpolant (its derivative is
   exact), kept inside a bracket, until |F - p| ≤ 1e-13.

The node counts and tolerances are the fields of :class:`Resolution`. The test suite checks
every reported quantity against a reference computed with far more nodes and with the
Chebyshev interpolation and the τ cut switched off (``Resolution.fine()``,
``tests/test_bayes.py``) to 1e-3 on the proportion scale and 1e-3 relative for τ², and
against long Stan runs (``tests/test_bayes_stan.py``).

The likelihood grid does not depend on the τ prior: :func:`fit_bayes_batch` evaluates it
once for every τ prior that shares a support (half-normal and half-Cauchy priors share one;
each uniform bound has its own) and reweights it per prior.

Reported quantities (:class:`BayesFit`)
---------------------------------------
``mu``, ``mu_sd``: posterior median and SD of μ (logit). ``proportion``: expit(median μ),
the posterior median of the typical study's rate expit(μ); ``ci_low``/``ci_high``: its
equal-tailed credible interval at ``level``. ``pi_low``/``pi_high``: equal-tailed interval
of a new study's true rate expit(μ + τ z) under the posterior predictive (defined for every
k). ``tau2`` and ``tau2_ci_low``/``tau2_ci_high``: posterior median and interval of τ².
``mean_proportion`` and ``mean_ci_low``/``mean_ci_high``: median and interval of the
population-averaged rate m(μ, τ) = E_z[expit(μ + τ z)]. ``prob_above`` = P(expit(μ) >
threshold | data) and ``prob_mean_above`` = P(m(μ, τ) > threshold | data) (None without a
threshold).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import special

from metaresp._bayes_grid import build_grids
from metaresp.bayesquad import (
    _CHUNK_ELEMENTS,
    DEFAULT_NAGQ,
    DEFAULT_RESOLUTION,
    Resolution,
    _summarise,
)
from metaresp.models import DEFAULT_MU_PRIOR, DEFAULT_TAU_PRIOR
from metaresp.priors import (
    MuPrior,
    TauPrior,
    parse_mu_prior,
    parse_tau_prior,
)

__all__ = [
    "DEFAULT_MU_PRIOR",
    "DEFAULT_NAGQ",
    "DEFAULT_TAU_PRIOR",
    "BayesBatch",
    "BayesFit",
    "Resolution",
    "fit_bayes",
    "fit_bayes_batch",
]

FloatArray = NDArray[np.float64]

#: τ grid: τ = a sinh(v) with a = TAU_SINH_SCALE (or a quarter of the smallest prior scale);
#: first upper end for unbounded priors; growth factor and count of extensions.
TAU_SINH_SCALE = 0.1
TAU_FIRST_MAX = 10.0
TAU_EXTEND = 1.5
TAU_MAX_EXTENSIONS = 4
#: Density at either end of a μ grid above this fraction of its peak gets a warning.
MU_EDGE_TOL = 1e-7


@dataclass(frozen=True)
class BayesFit:
    """One posterior summary (see the module docstring for every field)."""

    k: int
    tau_prior: str
    mu_prior: str
    level: float
    threshold: float | None
    mu: float
    mu_sd: float
    proportion: float
    ci_low: float
    ci_high: float
    pi_low: float
    pi_high: float
    tau2: float
    tau2_ci_low: float
    tau2_ci_high: float
    mean_proportion: float
    mean_ci_low: float
    mean_ci_high: float
    prob_above: float | None
    prob_mean_above: float | None
    warnings: tuple[str, ...]
    tau_max: float
    tau_nodes: int


_FIELDS = (
    "mu",
    "mu_sd",
    "proportion",
    "ci_low",
    "ci_high",
    "pi_low",
    "pi_high",
    "tau2",
    "tau2_ci_low",
    "tau2_ci_high",
    "mean_proportion",
    "mean_ci_low",
    "mean_ci_high",
    "prob_above",
    "prob_mean_above",
    "tau_max",
    "tau_nodes",
)


@dataclass(frozen=True)
class BayesBatch:
    """Posterior summaries of R datasets under one τ prior: arrays of shape (R,).

    Same fields as :class:`BayesFit`; ``prob_above``/``prob_mean_above`` are NaN without a
    threshold; ``warnings[r]`` belongs to row r. ``row(r)`` gives one :class:`BayesFit`.
    """

    k: int
    tau_prior: str
    mu_prior: str
    level: float
    threshold: float | None
    mu: FloatArray
    mu_sd: FloatArray
    proportion: FloatArray
    ci_low: FloatArray
    ci_high: FloatArray
    pi_low: FloatArray
    pi_high: FloatArray
    tau2: FloatArray
    tau2_ci_low: FloatArray
    tau2_ci_high: FloatArray
    mean_proportion: FloatArray
    mean_ci_low: FloatArray
    mean_ci_high: FloatArray
    prob_above: FloatArray
    prob_mean_above: FloatArray
    warnings: tuple[tuple[str, ...], ...]
    tau_max: FloatArray
    tau_nodes: FloatArray

    def __len__(self) -> int:
        return len(self.warnings)

    def row(self, r: int) -> BayesFit:
        """Row ``r`` as a :class:`BayesFit`."""
        vals = {name: float(getattr(self, name)[r]) for name in _FIELDS}
        has = self.threshold is not None
        return BayesFit(
            k=self.k,
            tau_prior=self.tau_prior,
            mu_prior=self.mu_prior,
            level=self.level,
            threshold=self.threshold,
            mu=vals["mu"],
            mu_sd=vals["mu_sd"],
            proportion=vals["proportion"],
            ci_low=vals["ci_low"],
            ci_high=vals["ci_high"],
            pi_low=vals["pi_low"],
            pi_high=vals["pi_high"],
            tau2=vals["tau2"],
            tau2_ci_low=vals["tau2_ci_low"],
            tau2_ci_high=vals["tau2_ci_high"],
            mean_proportion=vals["mean_proportion"],
            mean_ci_low=vals["mean_ci_low"],
            mean_ci_high=vals["mean_ci_high"],
            prob_above=vals["prob_above"] if has else None,
            prob_mean_above=vals["prob_mean_above"] if has else None,
            warnings=self.warnings[r],
            tau_max=vals["tau_max"],
            tau_nodes=int(vals["tau_nodes"]),
        )


# ------------------------------------------------------------------------------ API


def _as_matrix(values: object, name: str) -> NDArray[np.int64]:
    arr = np.asarray(values)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] == 0 or arr.shape[0] == 0:
        raise ValueError(f"{name}: expected a non-empty (rows, studies) array of counts")
    whole = arr.dtype.kind in "iu" or (
        arr.dtype.kind == "f"
        and bool(np.all(np.isfinite(arr)))
        and bool(np.all(arr == np.round(arr)))
    )
    if not whole:
        raise ValueError(f"{name}: expected whole numbers")
    return arr.astype(np.int64)


def _check_level(level: float, threshold: float | None) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level: expected a number between 0 and 1, got {level!r}")
    if threshold is not None and not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold: expected a proportion between 0 and 1, got {threshold!r}")


def _distinct(
    x: NDArray[np.int64], n: NDArray[np.int64]
) -> list[tuple[NDArray[np.intp], FloatArray, FloatArray, FloatArray]]:
    """Each row's distinct (events, total) pairs, sorted, with their counts: studies with the
    same counts have the same likelihood, so it is computed once and weighted. Rows with
    the same number of distinct pairs are returned together: (rows, x, n, count)."""
    per_row = []
    for r in range(x.shape[0]):
        pairs, count = np.unique(np.stack([x[r], n[r]], axis=1), axis=0, return_counts=True)
        per_row.append((pairs, count))
    sizes = np.array([len(c) for _, c in per_row])
    out: list[tuple[NDArray[np.intp], FloatArray, FloatArray, FloatArray]] = []
    for size in np.unique(sizes):
        rows = np.flatnonzero(sizes == size)
        both: FloatArray = np.stack([per_row[r][0] for r in rows]).astype(np.float64)
        weight: FloatArray = np.stack([per_row[r][1] for r in rows]).astype(np.float64)
        out.append((rows, both[..., 0], both[..., 1], weight))
    return out


def fit_bayes_batch(
    events: object,
    totals: object,
    *,
    tau_priors: Sequence[str | TauPrior] | str | TauPrior = DEFAULT_TAU_PRIOR,
    mu_prior: str | MuPrior = DEFAULT_MU_PRIOR,
    level: float = 0.95,
    threshold: float | None = None,
    resolution: Resolution = DEFAULT_RESOLUTION,
) -> tuple[BayesBatch, ...]:
    """Posterior summaries of R datasets (``events``/``totals``: (R, k) counts), per τ prior.

    Returns one :class:`BayesBatch` per entry of ``tau_priors`` (a single prior string gives
    a 1-tuple). Priors with the same support share one likelihood evaluation.
    """
    x_int = _as_matrix(events, "events")
    n_int = _as_matrix(totals, "totals")
    if x_int.shape != n_int.shape:
        raise ValueError(f"events, totals: shapes differ ({x_int.shape} vs {n_int.shape})")
    if np.any(n_int < 1):
        raise ValueError("totals: every total must be at least 1")
    if np.any(x_int < 0) or np.any(x_int > n_int):
        raise ValueError("events: every count must lie between 0 and its total")
    _check_level(level, threshold)
    if isinstance(tau_priors, (str, TauPrior)):
        tau_priors = [tau_priors]
    priors = [parse_tau_prior(p) for p in tau_priors]
    if not priors:
        raise ValueError("tau_priors: give at least one prior")
    mp = parse_mu_prior(mu_prior)
    res = resolution
    if not isinstance(res, Resolution):
        raise ValueError("resolution: expected a metaresp.bayes.Resolution")
    rows, k = x_int.shape
    probs = np.array([(1.0 - level) / 2.0, 0.5, (1.0 + level) / 2.0])
    results: list[dict[str, FloatArray]] = [{} for _ in priors]
    notes: list[list[list[str]]] = [[[] for _ in range(rows)] for _ in priors]
    groups: dict[float, list[int]] = {}
    for i, p in enumerate(priors):
        groups.setdefault(p.upper, []).append(i)
    for upper, members in groups.items():
        scale = min(TAU_SINH_SCALE, 0.25 * min(priors[i].scale for i in members))
        if math.isfinite(upper):
            tau_end = np.full(rows, upper)
        else:
            first = max(priors[i].quantile(1.0 - 1e-9) for i in members)
            tau_end = np.full(rows, min(TAU_FIRST_MAX, max(1.0, first)))
        todo = np.arange(rows)
        group = [priors[i] for i in members]
        for attempt in range(TAU_MAX_EXTENSIONS + 1):
            n_tau = max(
                24, math.ceil(math.asinh(float(np.max(tau_end)) / scale) / res.tau_step) + 1
            )
            per_row = max(1, 4 * _CHUNK_ELEMENTS // (n_tau * res.mu_nodes * k * res.nagq_wide))
            again: dict[int, float] = {}
            for start in range(0, todo.size, per_row):
                chunk = todo[start : start + per_row]
                v_end = np.arcsinh(tau_end[chunk] / scale)
                grids = []
                for rows_d, xd, nd, wd in _distinct(x_int[chunk], n_int[chunk]):
                    lcd = (
                        special.gammaln(nd + 1.0)
                        - special.gammaln(xd + 1.0)
                        - special.gammaln(nd - xd + 1.0)
                    )
                    for part, grid in build_grids(
                        xd, nd, lcd, wd, v_end[rows_d], scale, upper, mp, group, res
                    ):
                        grids.append((chunk[rows_d[part]], grid))
                for sel, grid in grids:
                    for i in members:
                        vals, diag = _summarise(grid, priors[i], probs, threshold, res)
                        for name, arr in vals.items():
                            results[i].setdefault(name, np.full(rows, np.nan))[sel] = arr
                        for j, r in enumerate(sel):
                            notes[i][r] = []
                            if diag[j, 1] > MU_EDGE_TOL:
                                notes[i][r].append(
                                    "posterior of μ reaches the edge of the "
                                    "integration grid; figures may be inaccurate"
                                )
                            if not math.isfinite(upper) and diag[j, 0] > res.tau_tail_tol:
                                if attempt < TAU_MAX_EXTENSIONS:
                                    # Heavy tails decay like e^-v: jump far enough at once.
                                    jump = max(
                                        TAU_EXTEND, math.log(diag[j, 0] / res.tau_tail_tol) + 1.0
                                    )
                                    again[int(r)] = max(again.get(int(r), 0.0), jump)
                                else:
                                    notes[i][r].append(
                                        f"posterior of τ has mass beyond τ = {tau_end[r]:.3g}; "
                                        "τ² figures may be inaccurate"
                                    )
            if not again:
                break
            todo = np.array(sorted(again), dtype=np.intp)
            tau_end[todo] *= np.exp([again[int(r)] for r in todo])
    out: list[BayesBatch] = []
    for i, p in enumerate(priors):
        vals = results[i]
        out.append(
            BayesBatch(
                k=k,
                tau_prior=str(p),
                mu_prior=str(mp),
                level=float(level),
                threshold=threshold,
                warnings=tuple(tuple(w) for w in notes[i]),
                **{name: vals[name] for name in _FIELDS},
            )
        )
    return tuple(out)


def fit_bayes(
    events: object,
    totals: object,
    *,
    tau_prior: str | TauPrior = DEFAULT_TAU_PRIOR,
    mu_prior: str | MuPrior = DEFAULT_MU_PRIOR,
    level: float = 0.95,
    threshold: float | None = None,
    resolution: Resolution = DEFAULT_RESOLUTION,
) -> BayesFit:
    """Posterior summary of one dataset (1-d ``events``/``totals``); see the module docstring."""
    xa = np.asarray(events)
    na = np.asarray(totals)
    if xa.ndim != 1 or na.ndim != 1:
        raise ValueError("events, totals: expected one-dimensional sequences of counts")
    if xa.size != na.size:
        raise ValueError(f"events, totals: lengths differ ({xa.size} vs {na.size})")
    (batch,) = fit_bayes_batch(
        xa,
        na,
        tau_priors=[tau_prior],
        mu_prior=mu_prior,
        level=level,
        threshold=threshold,
        resolution=resolution,
    )
    return batch.row(0)
