"""The numerical engine: every model fitted to many datasets at once.

One pipeline, as metafor's: counts -> ``yi, vi`` (:mod:`metaresp.transforms`) -> τ² and the
pooled estimate (:mod:`metaresp.estimators`, or the binomial-normal likelihood of
:mod:`metaresp.glmm`) -> interval (:mod:`metaresp.intervals`) -> back-transform. Every array
has a leading axis of datasets ("rows", all with the same number of studies k): the
coverage simulation passes thousands of rows, :func:`metaresp.pool` passes one. Only NumPy
and SciPy are imported.

Definitions (metafor 3.8 ``rma.uni`` / ``predict.rma`` / ``confint.rma.uni``):

* estimate ``mu = Σ w yi / Σ w``, ``w = 1/(vi + τ²)``, ``se = sqrt(1/Σ w)`` (times the
  Hartung-Knapp factor for ``hksj``); the GLMM's from its likelihood;
* CI ``mu ± crit·se``, crit z or t_{k-1}; prediction interval ``mu ± t_{k-2}
  sqrt(τ² + se²)``, undefined for k < 3;
* Q and its p-value from fixed-effect weights ``1/vi`` (k-1 df; Cochran's Q) for
  inverse-variance models; the Wald test of the saturated model (metafor ``QE.Wld``) for the
  GLMM; I² = 100 τ²/(τ² + ṽ), H² = τ²/ṽ + 1 with the typical variance ṽ for random-effects
  models, and the Q-based forms for FE;
* τ² CI by the Q-profile method (inverse-variance random-effects models only);
* the GLMM's mean response rate across studies, m(μ, τ) = E[expit(μ + τ z)], z ~ N(0, 1),
  with a delta-method interval on the logit scale from the inverse observed information
  (at τ = 0 it is expit(μ) and its interval the CI).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray
from scipy import special

from metaresp import estimators, glmm
from metaresp.errors import ConvergenceError
from metaresp.intervals import critical, hksj_scale
from metaresp.models import ModelSpec
from metaresp.transforms import back_transform_array, effect_sizes

__all__ = ["FALLBACK", "Rows", "assemble_glmm", "fit_one", "fit_rows", "mean_rate"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

FALLBACK: Final[ModelSpec] = ModelSpec(transform="logit", estimator="REML", ci="hksj-adhoc")
"""The model used where the GLMM cannot be fitted (methods.md: REML on the logit scale with
the HKSJ interval). The GLMM fails mostly when every study has 0 or all events; the
continuity-corrected logits of such studies are often identical (0/2 and 0/2), where the
plain HKSJ interval has zero width. The ad hoc floor (Knapp & Hartung 2003; Jackson et al.
2017) keeps it at least as wide as the standard REML interval."""

#: Gauss-Hermite nodes for E[expit(μ + τz)]: the integrand is smooth but its poles near the
#: real axis (μ + τz = ±iπ) slow the rule for large τ; 100 nodes keep the error below 1e-10
#: for τ up to 3 (checked against SciPy's adaptive quad in the tests).
MEAN_RATE_NODES: Final[int] = 100


@dataclass(frozen=True, slots=True)
class Rows:
    """Fits of R datasets; every array has one entry (or row) per dataset.

    Transformed-scale values: ``estimate``, ``se`` (the SE the CI uses), ``ci_t``/``pi_t``
    ((R, 2) bounds, unclipped; ``pi_t`` NaN for k < 3). Proportion scale: ``proportion``,
    ``ci``, ``pi`` ((R, 2)), with ``clipped`` ((R, 5): estimate, CI and PI bounds set to 0 or
    1 by the back-transform). ``tau2_ci`` is NaN where not computed. ``fell_back`` marks rows
    fitted with :data:`FALLBACK` because the GLMM failed (``glmm.reason`` says why);
    ``failed`` rows have no usable result.
    """

    spec: ModelSpec
    k: int
    yi: FloatArray
    vi: FloatArray
    estimate: FloatArray
    se: FloatArray
    df: int | None
    ci_t: FloatArray
    pi_t: FloatArray
    proportion: FloatArray
    ci: FloatArray
    pi: FloatArray
    clipped: BoolArray
    tau2: FloatArray
    tau2_ci: FloatArray
    q: FloatArray
    q_pvalue: FloatArray
    i2: FloatArray
    h2: FloatArray
    weights: FloatArray | None
    converged: BoolArray
    failed: BoolArray
    fell_back: BoolArray
    tau2_fit: estimators.Tau2Rows | None = None
    glmm: glmm.GlmmRows | None = None
    #: GLMM only: mean response rate and its interval ((R, 3): value, low, high)
    mean: FloatArray | None = None


def _iv(
    yi: FloatArray, vi: FloatArray, spec: ModelSpec, tau2_ci: bool
) -> tuple[dict[str, object], estimators.Tau2Rows | None]:
    r_count, k = yi.shape
    if k == 1:
        tau = None
        tau2 = np.zeros(r_count)
        converged = np.ones(r_count, dtype=bool)
    else:
        tau = estimators.tau2_rows(spec.estimator, yi, vi)
        tau2, converged = tau.tau2, tau.converged
    w = 1.0 / (vi + tau2[:, None])
    sw = w.sum(axis=1)
    mu = (w * yi).sum(axis=1) / sw
    se = np.sqrt(1.0 / sw)
    if k >= 2:
        se = se * np.sqrt(hksj_scale(yi, w, mu, spec.ci))
    if k >= 2:
        q = tau.q0 if tau is not None and tau.q0 is not None else estimators.q_rows(yi, vi)
        q_p = special.chdtrc(k - 1, q)
    else:
        q, q_p = np.zeros(r_count), np.ones(r_count)
    if k < 2:
        i2, h2 = np.zeros(r_count), np.ones(r_count)
    elif spec.estimator == "FE":
        with np.errstate(divide="ignore", invalid="ignore"):
            i2 = np.where(q > 0, np.maximum(0.0, 100.0 * (q - (k - 1)) / q), 0.0)
        h2 = q / (k - 1)
    else:
        vt = estimators.typical_variance_rows(vi)
        i2 = 100.0 * tau2 / (vt + tau2)
        h2 = tau2 / vt + 1.0
    t2ci = np.full((r_count, 2), np.nan)
    if tau2_ci and spec.estimator != "FE" and k >= 2:
        lo, hi = estimators.q_profile_rows(yi, vi, tau2, spec.level)
        t2ci = np.stack([lo, hi], axis=1)
    out: dict[str, object] = {
        "estimate": mu,
        "se": se,
        "tau2": tau2,
        "tau2_ci": t2ci,
        "q": q,
        "q_pvalue": q_p,
        "i2": i2,
        "h2": h2,
        "weights": 100.0 * w / sw[:, None],
        "converged": converged,
    }
    return out, tau


@lru_cache(maxsize=1)
def _mean_rule() -> tuple[FloatArray, FloatArray]:
    """The nodes of :data:`MEAN_RATE_NODES` and their weights for the standard normal."""
    t, logw = glmm.quadrature_rule(MEAN_RATE_NODES)
    w: FloatArray = np.exp(logw - 0.5 * t * t) / math.sqrt(2.0 * math.pi)
    return t, w


def mean_rate(mu: FloatArray, tau: FloatArray) -> FloatArray:
    """m(μ, τ) = E[expit(μ + τ z)], z ~ N(0, 1), by Gauss-Hermite quadrature, elementwise."""
    t, w = _mean_rule()
    out: FloatArray = (special.expit(mu[..., None] + tau[..., None] * t) * w).sum(axis=-1)
    return out


def _mean_with_interval(
    mu: FloatArray, tau: FloatArray, info: FloatArray, crit: float, ci: FloatArray
) -> FloatArray:
    """The GLMM's mean response rate with a delta-method interval on the logit scale, from
    the inverse observed information ``info`` in (μ, τ) ((R, 2, 2); NaN at the boundary,
    where the mean is expit(μ) and its interval the CI ``ci``)."""
    t, w = _mean_rule()
    p = special.expit(mu[:, None] + tau[:, None] * t)
    m = (p * w).sum(axis=-1)  # mean_rate(mu, tau)
    dp = p * (1.0 - p) * w
    grad = np.stack([dp.sum(axis=1), (dp * t).sum(axis=1)], axis=1) / (m * (1.0 - m))[:, None]
    out = np.stack([m, ci[:, 0], ci[:, 1]], axis=1)
    interior = np.isfinite(info).all(axis=(1, 2)) & (tau > 0.0)
    if interior.any():
        cov = np.linalg.inv(info[interior])
        g = grad[interior]
        var = np.einsum("ri,rij,rj->r", g, cov, g)
        half = crit * np.sqrt(np.maximum(var, 0.0))
        lm = special.logit(m[interior])
        out[interior, 1] = special.expit(lm - half)
        out[interior, 2] = special.expit(lm + half)
    return out


def assemble_glmm(
    events: IntArray,
    totals: IntArray,
    spec: ModelSpec,
    *,
    mu: FloatArray,
    se: FloatArray,
    tau2: FloatArray,
    q: FloatArray,
    converged: BoolArray,
    info: FloatArray | None = None,
    fit: glmm.GlmmRows | None = None,
    q_pvalue: FloatArray | None = None,
) -> Rows:
    """Intervals, I² and the mean rate of fitted GLMMs (one row per dataset): the part of
    the GLMM that is not the likelihood fit, shared by :func:`fit_rows` and
    :func:`metaresp.pool`."""
    r_count, k = events.shape
    yi, vi = effect_sizes("logit", events, totals)
    vt = estimators.typical_variance_rows(vi) if k > 1 else vi[:, 0]
    if q_pvalue is None:
        q_pvalue = special.chdtrc(k - 1, q) if k > 1 else np.full(r_count, np.nan)
    if info is None:
        info = np.full((r_count, 2, 2), np.nan)
    df = None if spec.ci == "z" or k < 2 else k - 1
    crit = critical(spec.level, df)
    ci = special.expit(np.stack([mu - crit * se, mu + crit * se], axis=1))
    parts: dict[str, Any] = {
        "estimate": mu,
        "se": se,
        "tau2": tau2,
        "tau2_ci": np.full((r_count, 2), np.nan),
        "q": q,
        "q_pvalue": q_pvalue,
        "i2": 100.0 * tau2 / (vt + tau2) if k > 1 else np.zeros(r_count),
        "h2": tau2 / vt + 1.0 if k > 1 else np.ones(r_count),
        "weights": None,
        "converged": converged,
    }
    mean = _mean_with_interval(mu, np.sqrt(tau2), info, crit, ci)
    return _assemble(spec, k, yi, vi, totals, parts, {"glmm": fit, "mean": mean})


def _assemble(
    spec: ModelSpec,
    k: int,
    yi: FloatArray,
    vi: FloatArray,
    totals: IntArray,
    parts: dict[str, Any],
    extra: dict[str, Any],
) -> Rows:
    mu = np.asarray(parts["estimate"], dtype=np.float64)
    se = np.asarray(parts["se"], dtype=np.float64)
    tau2 = np.asarray(parts["tau2"], dtype=np.float64)
    df = None if spec.ci == "z" or k < 2 else k - 1
    crit = critical(spec.level, df)
    ci_t = np.stack([mu - crit * se, mu + crit * se], axis=1)
    if k >= 3:
        half = critical(spec.level, k - 2) * np.sqrt(tau2 + se * se)
        pi_t = np.stack([mu - half, mu + half], axis=1)
    else:
        pi_t = np.full((mu.size, 2), np.nan)
    values = np.concatenate([mu[:, None], ci_t, pi_t], axis=1)
    # the harmonic mean of the totals: only the Freeman-Tukey back-transform uses it
    n_hm = (
        (1.0 / np.mean(1.0 / totals, axis=1))[:, None]
        if spec.transform == "freeman-tukey"
        else math.nan
    )
    back, clipped = back_transform_array(spec.transform, values, n_hm)
    converged = np.asarray(parts["converged"], dtype=bool)
    failed = ~converged | ~np.isfinite(back[:, :3]).all(axis=1)
    return Rows(
        spec=spec,
        k=k,
        yi=yi,
        vi=vi,
        estimate=mu,
        se=se,
        df=df,
        ci_t=ci_t,
        pi_t=pi_t,
        proportion=back[:, 0],
        ci=back[:, 1:3],
        pi=back[:, 3:5],
        clipped=clipped,
        tau2=tau2,
        tau2_ci=np.asarray(parts["tau2_ci"], dtype=np.float64),
        q=np.asarray(parts["q"], dtype=np.float64),
        q_pvalue=np.asarray(parts["q_pvalue"], dtype=np.float64),
        i2=np.asarray(parts["i2"], dtype=np.float64),
        h2=np.asarray(parts["h2"], dtype=np.float64),
        weights=parts["weights"] if parts["weights"] is not None else None,
        converged=converged,
        failed=failed,
        fell_back=np.zeros(mu.size, dtype=bool),
        **extra,
    )


def _merge_fallback(primary: Rows, fallback: Rows, rows: IntArray) -> Rows:
    """``primary`` with the given rows replaced by ``fallback``'s fits (same k)."""
    changes: dict[str, object] = {}
    for name in (
        "estimate",
        "se",
        "ci_t",
        "pi_t",
        "proportion",
        "ci",
        "pi",
        "clipped",
        "tau2",
        "tau2_ci",
        "q",
        "q_pvalue",
        "i2",
        "h2",
        "converged",
    ):
        value = getattr(primary, name).copy()
        value[rows] = getattr(fallback, name)
        changes[name] = value
    failed = primary.failed.copy()
    failed[rows] = fallback.failed
    fell_back = primary.fell_back.copy()
    fell_back[rows] = True
    return replace(primary, failed=failed, fell_back=fell_back, **changes)  # type: ignore[arg-type]


def fit_rows(
    events: NDArray[np.integer[Any]],
    totals: NDArray[np.integer[Any]],
    spec: ModelSpec,
    *,
    tau2_ci: bool = True,
    heterogeneity: bool = True,
    fallback: bool = True,
    glmm_fit: glmm.GlmmRows | None = None,
) -> Rows:
    """Fit ``spec`` to every row of ``events``/``totals`` ((R, k) whole counts, already
    checked: 1 ≤ n, 0 ≤ x ≤ n).

    ``tau2_ci``: compute the Q-profile CI of τ² (a root search per bound); ``heterogeneity``:
    compute the GLMM's Wald test (an IRLS fit per row); ``fallback``: refit rows where the
    GLMM fails with :data:`FALLBACK` (flagged in ``fell_back``); ``glmm_fit``: a GLMM fit
    of the same data to reuse (e.g. for both a z and a t interval). The Bayesian model is
    fitted by :mod:`metaresp.bayes`, not here.
    """
    x = np.asarray(events, dtype=np.int64)
    n = np.asarray(totals, dtype=np.int64)
    r_count, k = x.shape
    if spec.family == "bayes":
        raise ValueError('estimator="BAYES" is fitted by metaresp.bayes, not by fit_rows')
    if spec.family == "iv":
        yi, vi = effect_sizes(spec.transform, x, n)
        parts, tau = _iv(yi, vi, spec, tau2_ci)
        return _assemble(spec, k, yi, vi, n, parts, {"tau2_fit": tau})
    fit = glmm_fit if glmm_fit is not None else glmm.fit_glmm_rows(x, n, spec.nagq)
    q = np.full(r_count, np.nan)
    if k > 1 and heterogeneity:
        q = glmm.saturated_wald(x.astype(np.float64), n.astype(np.float64))
    out = assemble_glmm(
        x,
        n,
        spec,
        mu=fit.mu,
        se=fit.se,
        tau2=fit.tau * fit.tau,
        q=q,
        converged=~fit.failed,
        info=fit.info,
        fit=fit,
    )
    bad = np.flatnonzero(fit.failed)
    if fallback and bad.size:
        fb_spec = FALLBACK.with_(level=spec.level)
        fb = fit_rows(x[bad], n[bad], fb_spec, tau2_ci=tau2_ci)
        out = _merge_fallback(out, fb, bad)
        if out.mean is not None:
            mean = out.mean.copy()
            mean[bad] = np.nan
            out = replace(out, mean=mean)
    return out


def fit_one(
    xi: IntArray, ni: IntArray, spec: ModelSpec, notes: list[str]
) -> tuple[Any, ModelSpec, str | None, Any]:
    """One dataset (1-d counts) as :func:`metaresp.pool` fits it: the one-row fit, the model
    fitted, the fallback reason (None without a fallback) and, for the GLMM, its single-fit
    report (:class:`~metaresp.glmm.GlmmFit`, with the heterogeneity tests). A GLMM that
    cannot be fitted is replaced by :data:`FALLBACK`, and ``notes`` says so."""

    if spec.family == "iv":
        rows = fit_rows(xi[None, :], ni[None, :], spec, tau2_ci=False)
        return rows, spec, None, None
    reason: str | None = None
    try:
        fit = glmm.fit_glmm(xi, ni, nagq=spec.nagq)
        if not fit.converged:
            reason = "the fit reports no convergence"
    except ConvergenceError as exc:
        reason = str(exc).removeprefix("GLMM: ").split("; try ")[0]
    if reason is None:
        info = None if getattr(fit, "info", None) is None else np.array([fit.info])
        rows = assemble_glmm(
            xi[None, :],
            ni[None, :],
            spec,
            mu=np.array([fit.mu]),
            se=np.array([fit.se]),
            tau2=np.array([fit.tau2]),
            q=np.array([fit.q_wald]),
            converged=np.array([True]),
            info=info,
            q_pvalue=np.array([fit.q_wald_pvalue]),
        )
        return rows, spec, None, fit
    fitted = FALLBACK.with_(level=spec.level)
    notes.append(
        f"GLMM did not converge ({reason}); fell back to the REML model on the logit "
        "scale with an HKSJ interval (ad hoc floor: never narrower than the z interval)"
    )
    return fit_rows(xi[None, :], ni[None, :], fitted, tau2_ci=False), fitted, reason, None
