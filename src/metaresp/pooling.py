"""Pooling single proportions: :func:`pool` and its immutable :class:`PoolResult`.

The pipeline follows metafor's: counts -> ``yi, vi`` (:mod:`metaresp.transforms`) ->
model fit (:mod:`metaresp.estimators`, or the binomial-normal GLMM in
:mod:`metaresp.glmm`) -> back-transform. Printing and tables only read the result.

Definitions (metafor 3.8 ``rma.uni`` / ``predict.rma`` / ``confint.rma.uni``):

* estimate ``mu = sum(w yi)/sum(w)``, ``w = 1/(vi + tau2)``, ``se = sqrt(1/sum(w))``;
* ``ci="z"``: mu ± z se; ``ci="t"``: mu ± t_{k-1} se;
* ``ci="hksj"`` (Hartung & Knapp 2001; Sidik & Jonkman 2002; metafor ``test="knha"``):
  se multiplied by sqrt(s2), s2 = sum(w (yi - mu)^2)/(k-1) (0 when that sum is 0),
  with t_{k-1}; ``ci="hksj-adhoc"`` (Röver, Knapp & Friede 2015; ``test="adhoc"``): s2
  floored at 1;
* prediction interval mu ± t_{k-2} sqrt(tau2 + se^2) with the se the CI uses (Higgins,
  Thompson & Spiegelhalter 2009, J R Stat Soc A 172:137), ``None`` for k < 3;
* Q and its p-value always from fixed-effect weights ``1/vi`` (k-1 df); for random-effects
  models I² = 100 tau2/(tau2 + vt), H² = tau2/vt + 1 with the typical variance
  vt = (k-1)/(S1 - S2/S1) (Higgins & Thompson 2002); for FE I² = max(0, 100 (Q-(k-1))/Q),
  H² = Q/(k-1);
* τ² CI by the Q-profile method (Viechtbauer 2007), ``None`` for FE and GLMM;
* weights in percent, 100 w/sum(w).

Bounds that fall outside [0, 1] after back-transformation (raw and log scales, and the
clipping metafor itself applies to arcsine and Freeman-Tukey) are set to 0 or 1 and noted
in ``warnings``; the unclipped transformed-scale bounds stay in ``estimate_ci_low`` etc.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from numpy.typing import NDArray
from scipy import special

from metaresp import models
from metaresp._inputs import validate_counts
from metaresp._pool_extras import CommonEffect
from metaresp.errors import StatisticalWarning
from metaresp.intervals import clopper_pearson
from metaresp.models import ModelSpec

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

ESTIMATORS: Final[tuple[str, ...]] = tuple(models.ESTIMATORS)
CIS: Final[tuple[str, ...]] = models.CIS
#: Gauss-Hermite nodes for the GLMM (metafor ``rma.glmm`` default ``nAGQ=7``).
GLMM_NAGQ: Final[int] = models.DEFAULT_NAGQ

_DEFAULT_SPEC: Final[ModelSpec] = ModelSpec()


IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class PoolResult:
    """A pooled proportion (immutable). Proportion-scale unless a field says otherwise."""

    k: int
    #: pooled value and its standard error on the transformed scale
    estimate: float
    se: float
    proportion: float
    ci_low: float
    ci_high: float
    pi_low: float | None
    pi_high: float | None
    tau2: float
    i2: float
    h2: float
    q: float
    q_pvalue: float
    weights: tuple[float, ...] | None
    warnings: tuple[str, ...]
    transform: str
    estimator: str
    ci: str
    level: float
    converged: bool
    #: CI and PI bounds on the transformed scale, not clipped
    estimate_ci_low: float
    estimate_ci_high: float
    estimate_pi_low: float | None
    estimate_pi_high: float | None
    #: degrees of freedom of the t critical value (None for z)
    df: int | None
    yi: tuple[float, ...]
    vi: tuple[float, ...]
    events: tuple[int, ...]
    totals: tuple[int, ...]
    labels: tuple[str, ...]
    #: the model asked for, and the model actually fitted (they differ after a fallback)
    requested: ModelSpec = _DEFAULT_SPEC
    fitted: ModelSpec = _DEFAULT_SPEC
    #: True when the requested model could not be fitted and ``fitted`` was used instead
    fallback: bool = False
    fallback_reason: str | None = None
    #: which heterogeneity statistic ``q`` is: "cochran" (inverse-variance models, metafor
    #: ``QE``) or "wald" (the GLMM's Wald test of the saturated model, metafor ``QE.Wld``);
    #: "none" for the Bayesian model
    q_kind: str = "cochran"
    q_df: int = 0
    #: GLMM: metafor's likelihood-ratio test of heterogeneity (``QE.LRT``, saturated vs
    #: common-effect model, k-1 df)
    q_lrt: float | None = None
    q_lrt_pvalue: float | None = None
    #: GLMM: likelihood-ratio test of τ² = 0 against the common-effect binomial model,
    #: 2 (ℓ - ℓ_FE), with the boundary p-value ½ P(χ²₁ > LRT) (Self & Liang 1987)
    tau2_lrt: float | None = None
    tau2_lrt_pvalue: float | None = None
    #: GLMM: marginal log-likelihood (binomial coefficients included) and quadrature nodes
    loglik: float | None = None
    nagq: int | None = None
    #: GLMM and BAYES: the mean response rate across studies E[expit(μ + τz)] and its interval
    mean_proportion: float | None = None
    mean_ci_low: float | None = None
    mean_ci_high: float | None = None
    #: BAYES: posterior probability that the response rate exceeds ``threshold``
    threshold: float | None = None
    prob_above: float | None = None
    prob_mean_above: float | None = None
    #: computed-on-demand values (the Q-profile τ² CI); not part of equality or repr
    _lazy: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def _tau2_ci(self) -> tuple[float | None, float | None]:
        if "tau2_ci" not in self._lazy:
            bounds: tuple[float | None, float | None] = (None, None)
            if self.fitted.family == "iv" and self.fitted.estimator != "FE" and self.k >= 2:
                from metaresp.estimators import q_profile_ci

                lo, hi = q_profile_ci(
                    np.asarray(self.yi), np.asarray(self.vi), self.tau2, self.level
                )
                bounds = (_opt(lo), _opt(hi))
            self._lazy["tau2_ci"] = bounds
        out: tuple[float | None, float | None] = self._lazy["tau2_ci"]
        return out

    @property
    def tau2_ci_low(self) -> float | None:
        """Lower bound of the Q-profile CI of τ² (Viechtbauer 2007; inverse-variance
        random-effects models only, else None); computed when first asked for."""
        return self._tau2_ci()[0]

    @property
    def tau2_ci_high(self) -> float | None:
        """Upper bound of the Q-profile CI of τ² (see :attr:`tau2_ci_low`)."""
        return self._tau2_ci()[1]

    @property
    def model(self) -> ModelSpec:
        """The model actually fitted (``fitted``)."""
        return self.fitted

    @property
    def tau(self) -> float:
        """τ, the square root of :attr:`tau2`."""
        return math.sqrt(max(self.tau2, 0.0))

    @property
    def h(self) -> float:
        """H, the square root of :attr:`h2`."""
        return math.sqrt(self.h2) if math.isfinite(self.h2) and self.h2 >= 0 else math.nan

    def _het_ci(self) -> tuple[float, float, float, float] | None:
        """I² (percent) and H² bounds from the τ² CI: I² = 100 τ²/(τ² + ṽ), H² = τ²/ṽ + 1
        at each bound (metafor ``confint.rma.uni``); ``None`` without a τ² CI."""
        lo, hi = self.tau2_ci_low, self.tau2_ci_high
        if lo is None or hi is None:
            return None
        from metaresp.estimators import typical_variance

        vt = typical_variance(np.asarray(self.vi, dtype=np.float64))
        return (
            100.0 * lo / (lo + vt),
            100.0 * hi / (hi + vt),
            lo / vt + 1.0,
            hi / vt + 1.0,
        )

    @property
    def tau_ci_low(self) -> float | None:
        """Lower bound of τ's CI (the square root of :attr:`tau2_ci_low`)."""
        lo = self.tau2_ci_low
        return None if lo is None else math.sqrt(max(lo, 0.0))

    @property
    def tau_ci_high(self) -> float | None:
        """Upper bound of τ's CI (the square root of :attr:`tau2_ci_high`)."""
        hi = self.tau2_ci_high
        return None if hi is None else math.sqrt(max(hi, 0.0))

    @property
    def i2_ci_low(self) -> float | None:
        """Lower bound of I²'s CI in percent, from the τ² CI (metafor ``confint``);
        ``None`` where τ² has no CI (FE, GLMM, BAYES)."""
        ci = self._het_ci()
        return None if ci is None else ci[0]

    @property
    def i2_ci_high(self) -> float | None:
        """Upper bound of I²'s CI in percent (see :attr:`i2_ci_low`)."""
        ci = self._het_ci()
        return None if ci is None else ci[1]

    @property
    def h_ci_low(self) -> float | None:
        """Lower bound of H's CI: the square root of metafor's H² bound (see
        :attr:`i2_ci_low`)."""
        ci = self._het_ci()
        return None if ci is None else math.sqrt(ci[2])

    @property
    def h_ci_high(self) -> float | None:
        """Upper bound of H's CI (see :attr:`h_ci_low`)."""
        ci = self._het_ci()
        return None if ci is None else math.sqrt(ci[3])

    def common_effect(self) -> CommonEffect | None:
        """The common-effect estimate beside this fit (see :class:`CommonEffect`); ``None``
        for the common-effect model itself, the Bayesian model and k = 1."""
        if "common" not in self._lazy:
            self._lazy["common"] = self._common_effect()
        out: CommonEffect | None = self._lazy["common"]
        return out

    def _common_effect(self) -> CommonEffect | None:
        from metaresp._pool_extras import common_effect

        return common_effect(self, pool)

    # -- tables -----------------------------------------------------------------------

    def studies(self) -> pd.DataFrame:
        """One row per study: label, events, total, proportion, exact Clopper-Pearson CI
        at the result's level (Clopper & Pearson 1934, beta quantiles), weight (percent)."""
        import pandas as pd

        x = np.asarray(self.events, dtype=np.float64)
        n = np.asarray(self.totals, dtype=np.float64)
        low, high = clopper_pearson(x, n, self.level)
        return pd.DataFrame(
            {
                "label": list(self.labels),
                "events": list(self.events),
                "total": list(self.totals),
                "proportion": x / n,
                "ci_low": low,
                "ci_high": high,
                "weight": list(self.weights) if self.weights is not None else [None] * self.k,
            }
        )

    def _refit(self, index: Sequence[int]) -> PoolResult:
        idx = list(index)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", StatisticalWarning)
            return pool(
                [self.events[i] for i in idx],
                [self.totals[i] for i in idx],
                labels=[self.labels[i] for i in idx],
                threshold=self.threshold,
                **self.requested.as_kwargs(),
            )

    @staticmethod
    def _row(res: PoolResult) -> dict[str, Any]:
        return {
            "k": res.k,
            "estimate": res.estimate,
            "se": res.se,
            "proportion": res.proportion,
            "ci_low": res.ci_low,
            "ci_high": res.ci_high,
            "pi_low": res.pi_low,
            "pi_high": res.pi_high,
            "tau2": res.tau2,
            "i2": res.i2,
            "h2": res.h2,
            "q": res.q,
            "q_pvalue": res.q_pvalue,
            "warnings": "; ".join(res.warnings),
        }

    def leave_one_out(self) -> pd.DataFrame:
        """One row per omitted study (column ``label`` names it), refitted with the same
        settings (metafor ``leave1out``). Needs k ≥ 2."""
        import pandas as pd

        if self.k < 2:
            raise ValueError("leave_one_out needs at least 2 studies; this result has k = 1")
        rows = []
        for i in range(self.k):
            fit = self._refit([j for j in range(self.k) if j != i])
            rows.append({"label": self.labels[i], **self._row(fit)})
        return pd.DataFrame(rows)

    def cumulative(self, order: Sequence[int] | None = None) -> pd.DataFrame:
        """Cumulative meta-analysis (metafor ``cumul``): row j pools the first j studies of
        ``order`` (0-based study indices, default the given order); ``label`` names the
        study added at that step."""
        import pandas as pd

        if order is None:
            seq = list(range(self.k))
        else:
            seq = [int(i) for i in order]
            if sorted(seq) != list(range(self.k)):
                raise ValueError(
                    f"order must be a permutation of the study indices 0..{self.k - 1}; "
                    f"got {list(order)!r}"
                )
        rows = []
        for j in range(1, self.k + 1):
            fit = self._refit(seq[:j])
            rows.append({"label": self.labels[seq[j - 1]], **self._row(fit)})
        return pd.DataFrame(rows)

    def influence(self) -> pd.DataFrame:
        """Case-deletion diagnostics, one row per study (``label``), each study deleted and
        the model refitted with the same settings.

        Inverse-variance models: metafor 3.8.1 ``influence.rma.uni`` (Viechtbauer & Cheung
        2010, Res Synth Methods 1:112), columns with its names: ``rstudent`` (studentised
        deleted residual), ``dffits``, ``cook.d``, ``cov.r``, ``tau2.del``, ``QE.del``,
        ``hat``, ``weight`` (percent), ``dfbs`` (DFBETAS) and ``inf`` (True where metafor
        marks the study influential with ``*``). GLMM (metafor has no ``influence`` for
        ``rma.glmm``): the leave-one-out refits of the GLMM and the statistics that have a
        definition without inverse-variance weights, on the logit scale (``rstudent``,
        ``cook.d``, ``cov.r``, ``tau2.del``, ``QE.del``); the columns ``hat``, ``weight``,
        ``dffits`` and ``dfbs`` are left out, because the GLMM gives a study no
        inverse-variance weight (``frame.attrs["omitted"]`` names them with this reason), and
        ``inf`` uses Cook's distance only (a missing value never flags a study). Both add
        ``estimate.del`` and ``se.del`` (the refit's pooled value on the transformed scale
        and its se) and ``warnings``. Formulas: :mod:`metaresp.influence`. Needs k >= 2.
        """
        from metaresp.influence import influence_frame

        return influence_frame(self)

    # -- display ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """All fields as plain Python values (floats, ints, strings, lists, None)."""
        from metaresp._pool_extras import result_dict

        return result_dict(self)

    def summary(self) -> str:
        """A text report, what R's ``metaprop`` prints: the model fitted (after a fallback,
        the fallback model, why, and what to try), the common-effect and random-effects
        estimates with their intervals, the prediction interval, τ² and τ, I² and H with
        their intervals, the heterogeneity test named by kind (and the GLMM's
        likelihood-ratio tests), and every warning (:mod:`metaresp.resulttext`)."""
        from metaresp import resulttext

        lines = [
            f"Pooled proportion: {resulttext.model_header(self)}; k = {self.k} "
            f"{'study' if self.k == 1 else 'studies'}, "
            f"{sum(self.events)} events / {sum(self.totals)} total",
            *(f"  {line}" for line in resulttext.fallback_lines(self, style="python")),
        ]
        # the Bayesian model's priors are named in the first line
        bayes = self.fitted.family == "bayes"
        if bayes and self.threshold is not None and self.prob_above is not None:
            lines.append(
                f"  P(response rate > {fmt_percent(self.threshold)}) = {self.prob_above:.3f}"
            )
        lines.extend(f"  {line}" for line in resulttext.result_lines(self))
        lines.append(
            f"  estimate {self.estimate:.4f} (se {self.se:.4f}) on the {self.transform} scale"
        )
        lines.extend(f"  warning: {w}" for w in self.warnings)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def fmt_percent(p: float) -> str:
    """A proportion in percent as every output writes it (:func:`metaresp.formatting.percent`)."""
    from metaresp.formatting import percent

    return percent(p)


# -- fitting --------------------------------------------------------------------------------


def _opt(value: float) -> float | None:
    return None if not math.isfinite(value) else float(value)


def pool(
    events: Sequence[int] | NDArray[np.integer[Any]],
    totals: Sequence[int] | NDArray[np.integer[Any]],
    *,
    labels: Sequence[str] | None = None,
    transform: str = models.DEFAULT_TRANSFORM,
    estimator: str = models.DEFAULT_ESTIMATOR,
    ci: str | None = None,
    level: float = models.DEFAULT_LEVEL,
    nagq: int = models.DEFAULT_NAGQ,
    tau_prior: str | None = None,
    mu_prior: str | None = None,
    threshold: float | None = None,
) -> PoolResult:
    """Pool single proportions ``events/totals`` across studies.

    ``transform``: "logit", "freeman-tukey", "arcsine", "raw", "log" (metafor PLO, PFT,
    PAS, PR, PLN). ``estimator``: "FE", "DL", "REML", "ML", "PM", "SJ", "HE", "EB", "HS"
    (inverse-variance, metafor ``rma.uni``), "GLMM" (binomial-normal, ML, logit only;
    metafor ``rma.glmm``) or "BAYES" (binomial-normal with priors ``tau_prior`` and
    ``mu_prior``, exact posterior; :mod:`metaresp.bayes`). ``ci``: "z", "t" (k-1 df),
    "hksj", "hksj-adhoc" (GLMM: "z" or "t"); by default t for GLMM and BAYES, HKSJ for
    random-effects inverse-variance models and z for FE. ``nagq``: quadrature nodes per
    study for the GLMM (metafor's ``nAGQ``, default 7). ``threshold``: a proportion; BAYES
    reports the posterior probability that the response rate exceeds it.

    Raises :class:`~metaresp.errors.InputError` (a ``ValueError``) naming each bad argument
    and its allowed values. When the GLMM cannot be fitted the result is the REML logit
    model with an HKSJ interval: ``fallback`` is True, ``fallback_reason`` says why, and
    ``requested``/``fitted`` name both models. Every note in ``warnings`` is also issued
    with :func:`warnings.warn` as a :class:`~metaresp.errors.StatisticalWarning`.
    """
    if ci is None:
        ci = models.default_ci(estimator) if isinstance(estimator, str) else "t"
    problems = models.model_problems(transform, estimator, ci, level, nagq)
    if threshold is not None and (
        isinstance(threshold, bool)
        or not isinstance(threshold, numbers.Real)
        or not (0.0 < float(threshold) < 1.0)
    ):
        problems.append(
            f"threshold: must be a proportion strictly between 0 and 1; got {threshold!r}"
        )
    xi, ni, labs = validate_counts(events, totals, labels, problems)
    spec = ModelSpec(
        transform=transform,
        estimator=estimator,
        ci=ci,
        level=float(level),
        nagq=int(nagq),
        tau_prior=tau_prior,
        mu_prior=mu_prior,
    )
    if spec.family == "bayes":
        result = _pool_bayes(xi, ni, labs, spec, threshold)
    else:
        result = _pool_frequentist(xi, ni, labs, spec, threshold)
    for note in result.warnings:
        warnings.warn(note, StatisticalWarning, stacklevel=2)
    return result


def _pool_frequentist(
    xi: IntArray, ni: IntArray, labs: tuple[str, ...], spec: ModelSpec, threshold: float | None
) -> PoolResult:
    k = int(xi.size)
    notes: list[str] = []
    from metaresp.engine import fit_one

    rows, fitted, reason, glmm_fit = fit_one(xi, ni, spec, notes)
    if k == 1 and fitted.family == "iv" and fitted.estimator != "FE":
        notes.append("k = 1: between-study variance not estimable; tau2 set to 0")
    if k == 1 and fitted.ci != "z":
        notes.append(f'k = 1: ci="{fitted.ci}" needs k >= 2; a z interval is used (as metafor)')
    if glmm_fit is not None:
        notes.extend(glmm_fit.warnings)
    elif rows.tau2_fit is not None:
        notes.extend(rows.tau2_fit.notes(0, fitted.estimator))
        if fitted.ci == "hksj" and k >= 2 and rows.se[0] == 0.0:
            notes.append(
                "HKSJ scale factor is 0: the studies' estimates agree exactly, so the "
                "Hartung-Knapp CI has zero width; that is not certainty (the ad hoc "
                "Hartung-Knapp variant never falls below the z interval)"
            )
    what = (
        "pooled estimate",
        "CI lower bound",
        "CI upper bound",
        "prediction interval lower bound",
        "prediction interval upper bound",
    )
    values = (rows.estimate[0], *rows.ci_t[0], *rows.pi_t[0])
    backs = (rows.proportion[0], *rows.ci[0], *rows.pi[0])
    for name, value, p, clipped in zip(what, values, backs, rows.clipped[0], strict=True):
        if clipped:
            notes.append(
                f"{name} {value:.6g} on the {fitted.transform} scale lies outside [0, 1] when "
                f"back-transformed; set to {p:g}"
            )
        elif math.isnan(p) and math.isfinite(value):
            notes.append(
                f"{name}: the {fitted.transform} back-transform is undefined at {value:.6g}"
            )
    converged = bool(rows.converged[0])
    if not converged:
        notes.append(
            f"{fitted.estimator}: the fit did not converge; treat the results with caution"
        )
    has_pi = k >= 3
    extra: dict[str, Any] = {}
    if glmm_fit is not None:
        ll_fe = getattr(glmm_fit, "loglik_fe", math.nan)
        lrt = max(0.0, 2.0 * (glmm_fit.loglik - ll_fe)) if k > 1 else math.nan
        extra = {
            "q_lrt": _opt(glmm_fit.q_lrt),
            "q_lrt_pvalue": _opt(glmm_fit.q_lrt_pvalue),
            "tau2_lrt": _opt(lrt),
            "tau2_lrt_pvalue": (
                _opt(0.5 * float(special.chdtrc(1, lrt)))
                if lrt > 0
                else (1.0 if k > 1 and math.isfinite(lrt) else None)
            ),
            "loglik": glmm_fit.loglik,
            "nagq": fitted.nagq,
        }
        if rows.mean is not None:
            extra.update(
                mean_proportion=float(rows.mean[0, 0]),
                mean_ci_low=float(rows.mean[0, 1]),
                mean_ci_high=float(rows.mean[0, 2]),
            )
    return PoolResult(
        k=k,
        estimate=float(rows.estimate[0]),
        se=float(rows.se[0]),
        proportion=float(rows.proportion[0]),
        ci_low=float(rows.ci[0, 0]),
        ci_high=float(rows.ci[0, 1]),
        pi_low=float(rows.pi[0, 0]) if has_pi else None,
        pi_high=float(rows.pi[0, 1]) if has_pi else None,
        tau2=float(rows.tau2[0]),
        i2=float(rows.i2[0]),
        h2=float(rows.h2[0]),
        q=float(rows.q[0]) if k > 1 else (math.nan if fitted.family == "glmm" else 0.0),
        q_pvalue=float(rows.q_pvalue[0])
        if k > 1
        else (math.nan if fitted.family == "glmm" else 1.0),
        weights=None if rows.weights is None else tuple(rows.weights[0].tolist()),
        warnings=tuple(dict.fromkeys(notes)),
        transform=fitted.transform,
        estimator=fitted.estimator,
        ci=fitted.ci,
        level=fitted.level,
        converged=converged,
        estimate_ci_low=float(rows.ci_t[0, 0]),
        estimate_ci_high=float(rows.ci_t[0, 1]),
        estimate_pi_low=float(rows.pi_t[0, 0]) if has_pi else None,
        estimate_pi_high=float(rows.pi_t[0, 1]) if has_pi else None,
        df=rows.df,
        yi=tuple(rows.yi[0].tolist()),
        vi=tuple(rows.vi[0].tolist()),
        events=tuple(xi.tolist()),
        totals=tuple(ni.tolist()),
        labels=labs,
        requested=spec,
        fitted=fitted,
        fallback=reason is not None,
        fallback_reason=reason,
        q_kind="wald" if fitted.family == "glmm" else "cochran",
        q_df=max(k - 1, 0),
        threshold=threshold,
        **extra,
    )


def _pool_bayes(
    xi: IntArray, ni: IntArray, labs: tuple[str, ...], spec: ModelSpec, threshold: float | None
) -> PoolResult:
    from metaresp._bayes_fields import bayes_fields

    return PoolResult(**bayes_fields(xi, ni, labs, spec, threshold))


__all__ = ["CIS", "ESTIMATORS", "CommonEffect", "PoolResult", "pool"]
