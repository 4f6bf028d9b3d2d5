"""Meta-regression of single proportions: :func:`regress` and its frozen result.

The model is metafor's mixed-effects meta-regression (Viechtbauer 2010, J Stat Softw 36(3);
Thompson & Higgins 2002, Stat Med 21:1559): on the transformed scale,

    yi = X_i β + u_i + e_i,   u_i ~ N(0, τ²),   e_i ~ N(0, vi)

for the inverse-variance estimators (metafor ``rma(yi, vi, mods=, method=, test=)``), or the
binomial-normal logistic model x_i ~ Bin(n_i, expit(X_i β + u_i)) fitted by maximum
likelihood for ``"GLMM"`` (metafor ``rma.glmm(measure="PLO", mods=, method="ML")``). τ² is
the residual between-study variance, the part the moderators leave unexplained.

Tests, as metafor reports them:

* coefficients: Wald z (``ci="z"``), t with k - p df (``ci="t"``), or Hartung-Knapp
  (``ci="hksj"``, metafor ``test="knha"``: the covariance scaled by s² = RSS/(k - p), t with
  k - p df; ``"hksj-adhoc"`` floors s² at 1, metafor ``test="adhoc"``);
* QM, the omnibus test that every coefficient but the intercept is 0: χ² on m df (z), or
  QM/m against F(m, k - p) (t and Hartung-Knapp);
* QE, residual heterogeneity: the weighted residual sum of squares with weights 1/vi on
  k - p df (inverse variance); for the GLMM, the Wald and likelihood-ratio tests of the
  logistic model with these moderators against the saturated one (metafor ``QE.Wld`` and
  ``QE.LRT``), also on k - p df;
* R² (percent; Raudenbush 2009): max(0, 100 (τ²₀ - τ²)/τ²₀), τ²₀ from the same estimator
  without moderators, 0 when τ²₀ = 0. For FE, metafor 3.8 reports the adjusted R² of the
  weighted least-squares fit instead (max(0, 100 adj. R²)); the GLMM has none (None);
* I² = 100 τ²/(τ² + ṽ), H² = τ²/ṽ + 1 with ṽ = (k - p)/tr P, P the projection with weights
  1/vi (FE: I² = 100 (QE - (k - p))/QE, H² = QE/(k - p)).

Few studies. The Cochrane Handbook (section 10.11.5.1) advises against meta-regression with
fewer than about ten studies for each moderator; a fit with fewer than ten studies per
moderator coefficient says so in ``warnings``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from metaresp import models
from metaresp._inputs import validate_counts
from metaresp._regression_design import Design, Term, build_design, design_rows
from metaresp._regression_iv import fit_tau2, inv_xwx, projection, r2_fe, r2_re
from metaresp.errors import InputError, StatisticalWarning
from metaresp.intervals import critical
from metaresp.transforms import back_transform_array, effect_sizes, harmonic_mean

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["REGRESSION_CIS", "RegressionResult", "regress"]

FloatArray = NDArray[np.float64]

#: Studies per moderator coefficient below which a warning is given (Cochrane Handbook
#: 10.11.5.1: "at least ten studies for each characteristic modelled").
STUDIES_PER_MODERATOR: Final[int] = 10
#: Interval methods of the inverse-variance models and of the GLMM.
REGRESSION_CIS: Final[tuple[str, ...]] = ("z", "t", "hksj", "hksj-adhoc")
GLMM_CIS: Final[tuple[str, ...]] = ("z", "t")
_EPS: Final[float] = float(np.finfo(np.float64).eps)


@dataclass(frozen=True)
class RegressionResult:
    """A fitted meta-regression (all estimates on the transformed scale).

    ``coefficients`` is a data frame (one row per coefficient, intercept first, named as
    metafor prints them; columns ``estimate, se, ci_low, ci_high, pvalue`` and ``zval`` or
    ``tval``). ``tau2`` is the residual τ² (``tau2_se`` its standard error where metafor
    gives one); ``qm``/``qm_df``/``qm_pvalue`` the omnibus moderator test (``qm_kind``
    "chi2" or "F"; ``qm_df`` (m, None) or (m, k - p)); ``qe``/``qe_df``/``qe_pvalue`` the
    residual heterogeneity test (``qe_kind`` "cochran" or, for the GLMM, "wald", with the
    likelihood-ratio version in ``qe_lrt``/``qe_lrt_pvalue``); ``r2``, ``i2`` in percent.
    ``vcov`` is the coefficients' covariance (Hartung-Knapp scaled where ``ci`` says so);
    ``weights`` the studies' weights in percent (see :mod:`metaresp.bubble` for the GLMM's);
    ``yi``/``vi`` the transformed proportions and their variances (continuity-corrected);
    ``dropped`` the redundant design columns left out; ``nagq`` and ``loglik`` the GLMM's node
    count and marginal log-likelihood.
    """

    transform: str
    estimator: str
    ci: str
    level: float
    k: int
    p: int
    names: tuple[str, ...]
    estimates: tuple[float, ...]
    ses: tuple[float, ...]
    statistics: tuple[float, ...]
    pvalues: tuple[float, ...]
    ci_lows: tuple[float, ...]
    ci_highs: tuple[float, ...]
    vcov: tuple[tuple[float, ...], ...]
    df: int | None
    tau2: float
    tau2_se: float | None
    qm: float
    qm_df: tuple[int, int | None]
    qm_pvalue: float
    qm_kind: str
    qe: float
    qe_df: int
    qe_pvalue: float
    qe_kind: str
    qe_lrt: float | None
    qe_lrt_pvalue: float | None
    r2: float | None
    i2: float
    h2: float
    moderators: tuple[str, ...]
    dropped: tuple[str, ...]
    labels: tuple[str, ...]
    events: tuple[int, ...]
    totals: tuple[int, ...]
    yi: tuple[float, ...]
    vi: tuple[float, ...]
    weights: tuple[float, ...]
    warnings: tuple[str, ...]
    nagq: int | None = None
    #: GLMM only: the marginal log-likelihood (binomial coefficients included)
    loglik: float | None = None
    _design: Design | None = field(default=None, repr=False, compare=False)

    @property
    def statistic_name(self) -> str:
        """ "zval" or "tval" (as metafor's print)."""
        return "zval" if self.df is None else "tval"

    @property
    def coefficients(self) -> pd.DataFrame:
        """The coefficient table as a pandas data frame (index: coefficient names)."""
        import pandas as pd

        return pd.DataFrame(
            {
                "estimate": self.estimates,
                "se": self.ses,
                "ci_low": self.ci_lows,
                "ci_high": self.ci_highs,
                "pvalue": self.pvalues,
                self.statistic_name: self.statistics,
            },
            index=pd.Index(self.names, name="coefficient"),
        )

    def predict(self, newmods: Mapping[str, Sequence[Any]]) -> pd.DataFrame:
        """Predicted values at new moderator values (metafor ``predict.rma``).

        ``newmods`` maps every moderator to its values (level names for a categorical one).
        Columns: ``estimate, se, ci_low, ci_high, pi_low, pi_high`` on the transformed
        scale (the prediction interval adds τ² to the variance; critical values as the
        coefficients') and ``proportion, proportion_ci_low, ..._pi_high`` back-transformed.
        """
        import pandas as pd

        if self._design is None:  # pragma: no cover - every result carries its design
            raise ValueError("this result has no design to predict from")
        rows = design_rows(self._design, newmods)
        table = self._predict_rows(rows)
        return pd.DataFrame(table)

    def _predict_rows(self, rows: FloatArray) -> dict[str, FloatArray]:
        vb = np.asarray(self.vcov)
        beta = np.asarray(self.estimates)
        pred = rows @ beta
        se = np.sqrt(np.einsum("ij,jk,ik->i", rows, vb, rows))
        crit = critical(self.level, self.df)
        sp = np.sqrt(se * se + self.tau2)
        out = {
            "estimate": pred,
            "se": se,
            "ci_low": pred - crit * se,
            "ci_high": pred + crit * se,
            "pi_low": pred - crit * sp,
            "pi_high": pred + crit * sp,
        }
        n_hm = harmonic_mean(np.asarray(self.totals, dtype=np.int64))
        for key in ("estimate", "ci_low", "ci_high", "pi_low", "pi_high"):
            name = "proportion" if key == "estimate" else f"proportion_{key}"
            out[name] = back_transform_array(self.transform, out[key], n_hm)[0]
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: every field as plain values, and the coefficient table as a list."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name.startswith("_"):
                continue
            value = getattr(self, f.name)
            out[f.name] = _plain(value)
        out["coefficients"] = [
            {
                "name": n,
                "estimate": _plain(b),
                "se": _plain(s),
                self.statistic_name: _plain(z),
                "pvalue": _plain(pv),
                "ci_low": _plain(lo),
                "ci_high": _plain(hi),
            }
            for n, b, s, z, pv, lo, hi in zip(
                self.names,
                self.estimates,
                self.ses,
                self.statistics,
                self.pvalues,
                self.ci_lows,
                self.ci_highs,
                strict=True,
            )
        ]
        return out

    def summary(self) -> str:
        """A text report in the shape of metafor's print of a meta-regression."""
        model = "Mixed-effects" if self.estimator != "FE" else "Fixed-effects (common-effect)"
        how = "binomial-normal GLMM, ML" if self.estimator == "GLMM" else self.estimator
        lines = [
            f"{model} meta-regression ({how}; k = {self.k}, {self.transform} scale, "
            f"moderators: {', '.join(self.moderators)})",
            "",
        ]
        if self.estimator != "FE":
            se = "" if self.tau2_se is None else f" (SE = {self.tau2_se:.4f})"
            lines.append(f"tau^2 (residual heterogeneity): {self.tau2:.4f}{se}")
            lines.append(f"I^2 (residual heterogeneity / unaccounted variability): {self.i2:.2f}%")
            lines.append(f"H^2 (unaccounted variability / sampling variability): {self.h2:.2f}")
            if self.r2 is not None:
                lines.append(f"R^2 (amount of heterogeneity accounted for): {self.r2:.2f}%")
        elif self.r2 is not None:
            lines.append(f"R^2 (adjusted, weighted least squares): {self.r2:.2f}%")
        qe = "Wald-type test" if self.qe_kind == "wald" else "Test"
        lines += [
            "",
            f"{qe} for residual heterogeneity: QE(df = {self.qe_df}) = {self.qe:.4f}, "
            f"p = {_p(self.qe_pvalue)}",
        ]
        if self.qe_lrt is not None and self.qe_lrt_pvalue is not None:
            lines.append(
                f"Likelihood-ratio test for residual heterogeneity: QE(df = {self.qe_df}) = "
                f"{self.qe_lrt:.4f}, p = {_p(self.qe_lrt_pvalue)}"
            )
        m, df2 = self.qm_df
        if self.qm_kind == "F":
            lines.append(
                f"Test of moderators (coefficients 2:{self.p}): F(df1 = {m}, df2 = {df2}) = "
                f"{self.qm:.4f}, p = {_p(self.qm_pvalue)}"
            )
        else:
            lines.append(
                f"Test of moderators (coefficients 2:{self.p}): QM(df = {m}) = {self.qm:.4f}, "
                f"p = {_p(self.qm_pvalue)}"
            )
        pct = f"{100 * self.level:g}%"
        cells = [
            [n, f"{b:.4f}", f"{s:.4f}", f"{z:.4f}", _p(pv), f"{lo:.4f}", f"{hi:.4f}"]
            for n, b, s, z, pv, lo, hi in zip(
                self.names,
                self.estimates,
                self.ses,
                self.statistics,
                self.pvalues,
                self.ci_lows,
                self.ci_highs,
                strict=True,
            )
        ]
        head = ["", "estimate", "se", self.statistic_name, "pval", "ci.lb", "ci.ub"]
        widths = [max(len(row[j]) for row in [head, *cells]) for j in range(len(head))]
        lines += ["", f"Coefficients ({pct} CI):"]
        for row in [head, *cells]:
            first = row[0].ljust(widths[0])
            rest = "  ".join(c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True))
            lines.append(f"{first}  {rest}")
        if self.ci in ("hksj", "hksj-adhoc"):
            lines.append(f"(Hartung-Knapp adjustment: t and F tests on {self.df} df)")
        if self.dropped:
            lines.append(f"Dropped as redundant: {', '.join(self.dropped)}")
        if self.warnings:
            lines.append("")
            lines.extend(f"Warning: {w}" for w in self.warnings)
        return "\n".join(lines)


def _p(value: float) -> str:
    if math.isnan(value):
        return "NA"
    return "<.0001" if value < 1e-4 else f"{value:.4f}"


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float | np.floating):
        f = float(value)
        return None if math.isnan(f) else f
    if isinstance(value, np.integer):
        return int(value)
    return value


# ------------------------------------------------------------------------------- checks


def _option_problems(
    transform: object, estimator: object, ci: object, level: object, nagq: object
) -> list[str]:
    problems = models.model_problems(transform, "REML", "z", level, nagq)
    iv = [e for e, info in models.ESTIMATORS.items() if info.family == "iv"]
    allowed_est = [*iv, "GLMM"]
    if not (isinstance(estimator, str) and estimator in allowed_est):
        listed = ", ".join(f'"{e}"' for e in allowed_est)
        extra = " (the Bayesian model has no meta-regression here)" if estimator == "BAYES" else ""
        problems.append(f"estimator: must be one of {listed}; got {estimator!r}{extra}")
    cis = GLMM_CIS if estimator == "GLMM" else REGRESSION_CIS
    if not (isinstance(ci, str) and ci in cis):
        listed = " or ".join(f'"{c}"' for c in cis)
        problems.append(f"ci: with estimator={estimator!r} must be {listed}; got {ci!r}")
    if estimator == "GLMM" and transform in models.TRANSFORMS and transform != "logit":
        problems.append(
            f'estimator: "GLMM" is a logit model and needs transform="logit"; got '
            f"transform={transform!r}"
        )
    return problems


def _few_studies_note(k: int, m: int) -> str | None:
    if m == 0 or k >= STUDIES_PER_MODERATOR * m:
        return None
    return (
        f"only {k} studies for {m} moderator coefficient{'s' if m > 1 else ''}: "
        f"meta-regression needs about {STUDIES_PER_MODERATOR} studies per moderator (Cochrane "
        "Handbook 10.11.5.1); with fewer, the coefficients are imprecise and an apparent "
        "association can easily arise by chance"
    )


# ------------------------------------------------------------------------------- fitting


@dataclass(frozen=True, slots=True)
class _Fit:
    beta: FloatArray
    vb: FloatArray
    tau2: float
    tau2_se: float | None
    qe: float
    qe_pvalue: float
    qe_lrt: float | None
    qe_lrt_pvalue: float | None
    r2: float | None
    i2: float
    h2: float
    s2w: float
    weights: FloatArray
    notes: tuple[str, ...]
    loglik: float | None = None


def _i2_h2(x: FloatArray, vi: FloatArray, tau2: float) -> tuple[float, float]:
    k, p = x.shape
    vt = (k - p) / float(np.trace(projection(x, 1.0 / vi)))
    return 100.0 * tau2 / (vt + tau2), tau2 / vt + 1.0


def _fit_iv(yi: FloatArray, vi: FloatArray, x: FloatArray, estimator: str, ci: str) -> _Fit:
    k, p = x.shape
    t2 = fit_tau2(estimator, yi, vi, x)
    notes = list(t2.notes)
    tau2 = t2.tau2
    w = 1.0 / (vi + tau2)
    vb = inv_xwx(x, w)
    beta = vb @ (x.T @ (w * yi))
    rss = float(np.sum(w * (yi - x @ beta) ** 2))
    s2w = 1.0
    if ci in ("hksj", "hksj-adhoc"):
        s2w = 0.0 if rss <= _EPS else rss / (k - p)
        if ci == "hksj-adhoc":
            s2w = max(1.0, s2w)
        if estimator == "FE":
            notes.append(
                "the Hartung-Knapp adjustment is not meant for a fixed-effect model (metafor "
                "says the same)"
            )
    yc = yi - yi.mean()
    p_fe = projection(x, 1.0 / vi)
    qe = max(0.0, float(yc @ p_fe @ yc))
    r2: float | None
    if estimator == "FE":
        i2 = max(0.0, 100.0 * (qe - (k - p)) / qe) if qe > 0 else 0.0
        h2 = qe / (k - p)
        r2 = r2_fe(yi, vi, qe, k, p)
    else:
        i2, h2 = _i2_h2(x, vi, tau2)
        r2 = r2_re(estimator, yi, vi, tau2)
    return _Fit(
        beta=beta,
        vb=vb * s2w,
        tau2=tau2,
        tau2_se=None if math.isnan(t2.se) else t2.se,
        qe=qe,
        qe_pvalue=float(stats.chi2.sf(qe, k - p)),
        qe_lrt=None,
        qe_lrt_pvalue=None,
        r2=r2,
        i2=i2,
        h2=h2,
        s2w=s2w,
        weights=w,
        notes=tuple(notes),
    )


def _fit_glmm(
    xi: NDArray[np.int64], ni: NDArray[np.int64], vi: FloatArray, x: FloatArray, nagq: int
) -> _Fit:
    from metaresp._regression_glmm import fit_glmm_regression

    g = fit_glmm_regression(xi, ni, x, nagq)
    k, p = x.shape
    i2, h2 = _i2_h2(x, vi, g.tau2)
    df = k - p
    return _Fit(
        beta=g.beta,
        vb=g.vcov,
        tau2=g.tau2,
        tau2_se=None,
        qe=g.qe_wald,
        qe_pvalue=float(stats.chi2.sf(g.qe_wald, df)),
        qe_lrt=g.qe_lrt,
        qe_lrt_pvalue=float(stats.chi2.sf(g.qe_lrt, df)),
        r2=None,
        i2=i2,
        h2=h2,
        s2w=1.0,
        weights=g.weights,
        notes=g.notes,
        loglik=g.loglik,
    )


def regress(
    events: Sequence[int] | NDArray[np.integer[Any]],
    totals: Sequence[int] | NDArray[np.integer[Any]],
    moderators: Mapping[str, Sequence[Any]] | pd.DataFrame,
    *,
    transform: str = "logit",
    estimator: str = "REML",
    ci: str = "z",
    level: float = 0.95,
    nagq: int = models.DEFAULT_NAGQ,
    labels: Sequence[str] | None = None,
) -> RegressionResult:
    """Meta-regression of proportions ``events/totals`` on ``moderators``.

    ``moderators``: a mapping of name to one value per study, or a data frame. Numeric
    columns enter as they are; text, boolean and categorical columns as treatment-coded
    factors (reference = the first level in sorted order, or a pandas Categorical's first
    category; see :mod:`metaresp._regression_design`). Coefficients are named as metafor
    prints them: ``intrcpt``, ``year``, ``settingfirst-salvage``.

    ``transform``: "logit", "freeman-tukey", "arcsine", "raw", "log" (0.5 added to events
    and non-events of studies with 0 or all events for logit, log and raw, as
    :func:`metaresp.pool`). ``estimator``: "FE", "DL", "REML", "ML", "PM", "SJ", "HE", "EB",
    "HS" (metafor ``rma(yi, vi, mods=, method=)``, every one matched) or "GLMM" (metafor
    ``rma.glmm(measure="PLO", mods=, method="ML", nAGQ=nagq)``, logit only); "BAYES" is not
    offered. ``ci``: "z", "t", "hksj" (metafor ``test="knha"``) or "hksj-adhoc"
    (``test="adhoc"``); the GLMM takes "z" or "t".

    Raises :class:`~metaresp.errors.InputError` (a ``ValueError``) for unknown options,
    bad counts, unequal lengths, a moderator with a missing value or a single level, and
    when there are not enough studies: metafor's rule, p + 1 ≤ k coefficients for the
    random-effects models (one more study than coefficients, for τ²) and p ≤ k for FE; we
    ask p + 1 ≤ k of FE too, so that its residual test has a degree of freedom. A numeric
    moderator that is constant or a linear combination of earlier columns is dropped with
    a warning, as metafor does. Every note in ``warnings`` (including the few-studies
    warning, fewer than 10 studies per moderator coefficient) is also issued as a
    :class:`~metaresp.errors.StatisticalWarning`.
    """
    problems = _option_problems(transform, estimator, ci, level, nagq)
    xi, ni, labs = validate_counts(events, totals, labels, problems)
    k = int(xi.size)
    design = build_design(moderators, k)
    x = design.matrix
    p = design.p
    if p + 1 > k:
        raise InputError(
            f"moderators: {p} coefficients (intercept included) for {k} studies; a "
            f"meta-regression needs at least one study more than it has coefficients "
            f"(metafor: 'Number of parameters to be estimated is larger than the number of "
            f"observations'), here at least {p + 1}"
        )
    notes: list[str] = []
    if design.dropped:
        notes.append(
            f"redundant moderator column(s) dropped from the model: {', '.join(design.dropped)} "
            "(constant, or a combination of earlier columns; as metafor)"
        )
    m = p - 1
    few = _few_studies_note(k, m)
    if few is not None:
        notes.append(few)
    yi, vi = effect_sizes(transform, xi, ni)
    if estimator == "GLMM":
        fit = _fit_glmm(xi, ni, vi, x, int(nagq))
    else:
        fit = _fit_iv(yi, vi, x, estimator, ci)
    notes.extend(fit.notes)
    df = None if ci == "z" else k - p
    se = np.sqrt(np.diag(fit.vb))
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = fit.beta / se
    crit = critical(float(level), df)
    pvals = 2.0 * stats.norm.sf(np.abs(stat)) if df is None else 2.0 * stats.t.sf(np.abs(stat), df)
    btt = slice(1, p)
    b = fit.beta[btt]
    qm = float(b @ np.linalg.solve(fit.vb[btt, btt], b)) if m > 0 else math.nan
    if df is None:
        qm_pvalue = float(stats.chi2.sf(qm, m))
        qm_df: tuple[int, int | None] = (m, None)
        kind = "chi2"
    else:
        qm = qm / m
        qm_pvalue = float(stats.f.sf(qm, m, df))
        qm_df = (m, df)
        kind = "F"
    result = RegressionResult(
        transform=transform,
        estimator=estimator,
        ci=ci,
        level=float(level),
        k=k,
        p=p,
        names=design.names,
        estimates=tuple(float(v) for v in fit.beta),
        ses=tuple(float(v) for v in se),
        statistics=tuple(float(v) for v in stat),
        pvalues=tuple(float(v) for v in pvals),
        ci_lows=tuple(float(v) for v in fit.beta - crit * se),
        ci_highs=tuple(float(v) for v in fit.beta + crit * se),
        vcov=tuple(tuple(float(v) for v in row) for row in fit.vb),
        df=df,
        tau2=fit.tau2,
        tau2_se=fit.tau2_se,
        qm=qm,
        qm_df=qm_df,
        qm_pvalue=qm_pvalue,
        qm_kind=kind,
        qe=fit.qe,
        qe_df=k - p,
        qe_pvalue=fit.qe_pvalue,
        qe_kind="wald" if estimator == "GLMM" else "cochran",
        qe_lrt=fit.qe_lrt,
        qe_lrt_pvalue=fit.qe_lrt_pvalue,
        r2=fit.r2,
        i2=fit.i2,
        h2=fit.h2,
        moderators=tuple(t.name for t in design.terms),
        dropped=design.dropped,
        labels=labs,
        events=tuple(int(v) for v in xi),
        totals=tuple(int(v) for v in ni),
        yi=tuple(float(v) for v in yi),
        vi=tuple(float(v) for v in vi),
        weights=tuple(float(v) for v in 100.0 * fit.weights / fit.weights.sum()),
        warnings=tuple(notes),
        nagq=int(nagq) if estimator == "GLMM" else None,
        loglik=fit.loglik,
        _design=design,
    )
    for note in result.warnings:
        warnings.warn(note, StatisticalWarning, stacklevel=2)
    return result


def numeric_terms(result: RegressionResult) -> tuple[Term, ...]:
    """The numeric moderators of a fit (what a bubble plot can put on its x axis)."""
    if result._design is None:  # pragma: no cover
        return ()
    return tuple(t for t in result._design.terms if t.kind == "numeric" and t.name in result.names)
