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
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from numpy.typing import NDArray
from scipy import special

from metaresp.errors import ConvergenceError, InputError
from metaresp.estimators import (
    IV_ESTIMATORS,
    estimate_tau2,
    q_generalised,
    q_profile_ci,
    typical_variance,
)
from metaresp.transforms import TRANSFORMS, back_transform, effect_sizes, harmonic_mean

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

ESTIMATORS: Final[tuple[str, ...]] = (*IV_ESTIMATORS, "GLMM")
CIS: Final[tuple[str, ...]] = ("z", "t", "hksj", "hksj-adhoc")
GLMM_CIS: Final[tuple[str, ...]] = ("z", "t")
#: Gauss-Hermite nodes for the GLMM (metafor ``rma.glmm`` default ``nAGQ=7``).
GLMM_NAGQ: Final[int] = 7
#: Model used when the GLMM fails (methods.md: REML, logit, HKSJ).
FALLBACK: Final[tuple[str, str, str]] = ("logit", "REML", "hksj-adhoc")
"""The model used when the GLMM cannot be fitted (methods.md: REML on the logit scale with
the HKSJ interval). The GLMM fails exactly when every study has 0 or all events; the
continuity-corrected logits of such studies are often identical (0/2 and 0/2), where the
plain HKSJ interval has zero width. The ad hoc floor (Knapp & Hartung 2003; Jackson et al.
2017) keeps it at least as wide as the standard REML interval."""

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]


def _z(level: float) -> float:
    return float(-special.ndtri((1.0 - level) / 2.0))


def _t(level: float, df: int) -> float:
    return float(special.stdtrit(df, 1.0 - (1.0 - level) / 2.0))


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
    tau2_ci_low: float | None
    tau2_ci_high: float | None
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

    # -- tables -----------------------------------------------------------------------

    def studies(self) -> pd.DataFrame:
        """One row per study: label, events, total, proportion, exact Clopper-Pearson CI
        at the result's level (Clopper & Pearson 1934, beta quantiles), weight (percent)."""
        import pandas as pd

        x = np.asarray(self.events, dtype=np.float64)
        n = np.asarray(self.totals, dtype=np.float64)
        alpha = 1.0 - self.level
        with np.errstate(invalid="ignore", divide="ignore"):
            low = np.where(x > 0, special.betaincinv(x, n - x + 1.0, alpha / 2.0), 0.0)
            high = np.where(x < n, special.betaincinv(x + 1.0, n - x, 1.0 - alpha / 2.0), 1.0)
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
        return pool(
            [self.events[i] for i in idx],
            [self.totals[i] for i in idx],
            labels=[self.labels[i] for i in idx],
            transform=self.transform,
            estimator=self.estimator,
            ci=self.ci,
            level=self.level,
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
        marks the study influential with ``*``). GLMM: the same columns from GLMM refits
        on the logit scale; ``hat``, ``weight``, ``dffits`` and ``dfbs`` are NaN (the model
        has no inverse-variance weights) and ``inf`` uses Cook's distance only. Both add
        ``estimate.del`` and ``se.del`` (the refit's pooled value on the transformed scale
        and its se) and ``warnings``. Formulas: :mod:`metaresp.influence`. Needs k >= 2.
        """
        import pandas as pd

        from metaresp.influence import DeletedFit, glmm_influence, iv_influence

        if self.k < 2:
            raise ValueError("influence needs at least 2 studies; this result has k = 1")
        yi = np.asarray(self.yi, dtype=np.float64)
        vi = np.asarray(self.vi, dtype=np.float64)
        if self.estimator == "GLMM":
            deleted = []
            for i in range(self.k):
                fit = self._refit([j for j in range(self.k) if j != i])
                if fit.estimator != "GLMM":
                    deleted.append(
                        DeletedFit(
                            None,
                            None,
                            None,
                            None,
                            (*fit.warnings, "no GLMM without this study: no values"),
                        )
                    )
                else:
                    deleted.append(DeletedFit(fit.estimate, fit.se, fit.tau2, fit.q, fit.warnings))
            diag = glmm_influence(yi, vi, estimate=self.estimate, se=self.se, deleted=deleted)
        else:
            diag = iv_influence(
                yi,
                vi,
                estimator=self.estimator,
                ci=self.ci,
                estimate=self.estimate,
                se=self.se,
                tau2=self.tau2,
            )
        return pd.DataFrame(
            {
                "label": list(self.labels),
                **diag.columns(),
                "inf": diag.inf,
                "estimate.del": diag.estimate_del,
                "se.del": diag.se_del,
                "warnings": ["; ".join(dict.fromkeys(n)) for n in diag.notes],
            }
        )

    # -- display ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """All fields as plain Python values (floats, ints, strings, lists, None)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = [_plain(v) for v in value] if isinstance(value, tuple) else _plain(value)
        return out

    def summary(self) -> str:
        """A short text report of the model and its results."""
        pct = 100.0 * self.level

        def p(v: float | None) -> str:
            return "NA" if v is None or math.isnan(v) else f"{100.0 * v:.1f}%"

        ci_name = {"z": "z", "t": f"t, {self.df} df", "hksj": "HKSJ", "hksj-adhoc": "HKSJ ad hoc"}
        lines = [
            f"Pooled proportion: {self.estimator} model, {self.transform} transform, "
            f"k = {self.k} studies, {sum(self.events)} events / {sum(self.totals)} total",
            f"  proportion {p(self.proportion)}  ({pct:g}% CI {p(self.ci_low)} to "
            f"{p(self.ci_high)}; {ci_name.get(self.ci, self.ci)})",
        ]
        if self.pi_low is not None:
            lines.append(
                f"  prediction interval {p(self.pi_low)} to {p(self.pi_high)} (t, {self.k - 2} df)"
            )
        else:
            lines.append("  prediction interval: not shown for k < 3")
        lines.append(
            f"  estimate {self.estimate:.4f} (se {self.se:.4f}) on the {self.transform} scale"
        )
        tau_ci = ""
        if self.tau2_ci_low is not None and self.tau2_ci_high is not None:
            tau_ci = f" ({pct:g}% CI {self.tau2_ci_low:.4g} to {self.tau2_ci_high:.4g})"
        lines.append(f"  tau^2 = {self.tau2:.4g}{tau_ci}")
        lines.append(
            f"  I^2 = {self.i2:.1f}%, H^2 = {self.h2:.2f}, "
            f"Q = {self.q:.2f} on {max(self.k - 1, 0)} df (p = {self.q_pvalue:.3g})"
        )
        for w in self.warnings:
            lines.append(f"  warning: {w}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# -- input validation ---------------------------------------------------------------------


def _counts(name: str, values: Any, problems: list[str]) -> IntArray | None:
    """Whole, finite, non-boolean counts as an int64 array; problems are appended."""
    if isinstance(values, str | bytes) or not hasattr(values, "__len__"):
        problems.append(f"{name}: must be a sequence of whole numbers; got {type(values).__name__}")
        return None
    if isinstance(values, np.ndarray):
        arr = values
    else:
        seq = list(values)
        if any(isinstance(v, bool | np.bool_) for v in seq):
            arr = np.asarray(seq, dtype=object)
        else:
            try:
                arr = np.asarray(seq)
            except (TypeError, ValueError):
                arr = np.asarray(seq, dtype=object)
    if arr.ndim != 1:
        problems.append(f"{name}: must be one-dimensional; got shape {arr.shape}")
        return None
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    if arr.dtype.kind == "f" and np.isfinite(arr).all() and (arr == np.floor(arr)).all():
        return arr.astype(np.int64)
    out: list[int] = []
    for i, v in enumerate(arr.tolist()):
        if isinstance(v, bool | np.bool_):
            problems.append(f"{name}[{i}]: must be a whole number, not a boolean ({v!r})")
        elif isinstance(v, numbers.Integral):
            out.append(int(v))
        elif isinstance(v, numbers.Real) and math.isnan(float(v)):
            problems.append(f"{name}[{i}]: is missing (NaN); must be a whole number")
        elif isinstance(v, numbers.Real) and math.isfinite(float(v)) and float(v).is_integer():
            out.append(int(float(v)))
        else:
            problems.append(f"{name}[{i}]: must be a whole number; got {v!r}")
    return np.asarray(out, dtype=np.int64) if len(out) == arr.size else None


def _check_option(name: str, value: Any, allowed: Sequence[str], problems: list[str]) -> None:
    if not isinstance(value, str) or value not in allowed:
        choices = ", ".join(f'"{a}"' for a in allowed)
        problems.append(f"{name}: must be one of {choices}; got {value!r}")


def _validate(
    events: Any,
    totals: Any,
    labels: Any,
    transform: Any,
    estimator: Any,
    ci: Any,
    level: Any,
) -> tuple[IntArray, IntArray, tuple[str, ...]]:
    problems: list[str] = []
    _check_option("transform", transform, TRANSFORMS, problems)
    _check_option("estimator", estimator, ESTIMATORS, problems)
    _check_option("ci", ci, CIS, problems)
    if estimator == "GLMM":
        if transform in TRANSFORMS and transform != "logit":
            problems.append(
                f'estimator: "GLMM" is a logit model and needs transform="logit"; '
                f"got transform={transform!r}"
            )
        if ci in CIS and ci not in GLMM_CIS:
            problems.append(f'ci: with estimator="GLMM" must be "z" or "t"; got {ci!r}')
    if (
        isinstance(level, bool)
        or not isinstance(level, numbers.Real)
        or not (0.0 < float(level) < 1.0)
    ):
        problems.append(f"level: must be a number strictly between 0 and 1; got {level!r}")
    xi = _counts("events", events, problems)
    ni = _counts("totals", totals, problems)
    n_ev = len(events) if hasattr(events, "__len__") and not isinstance(events, str) else None
    n_to = len(totals) if hasattr(totals, "__len__") and not isinstance(totals, str) else None
    if n_ev == 0 or n_to == 0:
        problems.append("events, totals: empty input; at least one study is needed")
    elif n_ev is not None and n_to is not None and n_ev != n_to:
        problems.append(f"events, totals: unequal lengths ({n_ev} events, {n_to} totals)")
    elif xi is not None and ni is not None:
        bad = (ni <= 0) | (xi < 0) | (xi > ni)
        if bad.any():
            for i in np.flatnonzero(bad).tolist():
                x, n = int(xi[i]), int(ni[i])
                if n <= 0:
                    problems.append(f"totals[{i}]: must be at least 1; got {n}")
                if x < 0:
                    problems.append(f"events[{i}]: must not be negative; got {x}")
                elif n > 0 and x > n:
                    problems.append(f"events[{i}]: {x} events exceed the total of {n}")
    k = n_ev or 0
    if labels is None:
        labs = tuple(f"Study {i + 1}" for i in range(k))
    elif isinstance(labels, str) or not hasattr(labels, "__len__"):
        problems.append("labels: must be a sequence of strings, one per study")
        labs = ()
    else:
        labs = tuple(str(v) for v in labels)
        if len(labs) != k:
            problems.append(f"labels: {len(labs)} labels for {k} studies; need one per study")
    if problems or xi is None or ni is None:
        raise InputError(problems)
    return xi, ni, labs


# -- fitting --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Fit:
    estimate: float
    se: float
    ci: tuple[float, float]
    pi: tuple[float, float] | None
    df: int | None
    tau2: float
    tau2_ci: tuple[float, float] | None
    i2: float
    h2: float
    q: float
    q_pvalue: float
    weights: tuple[float, ...] | None
    converged: bool
    warnings: tuple[str, ...]


def _heterogeneity(yi: FloatArray, vi: FloatArray) -> tuple[float, float]:
    """Cochran's Q from fixed-effect weights and its chi-square p-value (k-1 df)."""
    k = yi.size
    if k < 2:
        return 0.0, 1.0
    q = max(0.0, q_generalised(yi, vi, 0.0))
    return q, float(special.chdtrc(k - 1, q))


def _interval(
    estimate: float, se: float, tau2: float, k: int, ci: str, level: float, notes: list[str]
) -> tuple[tuple[float, float], tuple[float, float] | None, int | None]:
    if ci == "z" or k < 2:
        crit = _z(level)
        df: int | None = None
    else:
        df = k - 1
        crit = _t(level, df)
    ci_bounds = (estimate - crit * se, estimate + crit * se)
    pi = None
    if k >= 3:
        half = _t(level, k - 2) * math.sqrt(tau2 + se * se)
        pi = (estimate - half, estimate + half)
    return ci_bounds, pi, df


def _fit_iv(yi: FloatArray, vi: FloatArray, estimator: str, ci: str, level: float) -> _Fit:
    """Inverse-variance fit, metafor ``rma.uni(yi, vi, method, test)``."""
    k = yi.size
    notes: list[str] = []
    if k == 1:
        tau = estimate_tau2("FE", yi, vi)
        if estimator != "FE":
            notes.append("k = 1: between-study variance not estimable; tau2 set to 0")
        if ci != "z":
            notes.append(f'k = 1: ci="{ci}" needs k >= 2; a z interval is used (as metafor)')
    else:
        tau = estimate_tau2(estimator, yi, vi)
        notes.extend(tau.warnings)
    tau2 = tau.tau2
    w = 1.0 / (vi + tau2)
    sw = float(w.sum())
    mu = float(w @ yi) / sw
    se = math.sqrt(1.0 / sw)
    if ci in ("hksj", "hksj-adhoc") and k >= 2:
        r = yi - mu
        rss = float(w @ (r * r))
        s2 = 0.0 if rss <= np.finfo(np.float64).eps else rss / (k - 1)
        if ci == "hksj-adhoc":
            s2 = max(1.0, s2)
        elif s2 == 0.0:
            notes.append("HKSJ scale factor is 0 (identical estimates): the CI has zero width")
        se = se * math.sqrt(s2)
    ci_bounds, pi, df = _interval(mu, se, tau2, k, ci, level, notes)
    q, q_p = _heterogeneity(yi, vi)
    if k < 2:
        i2, h2 = 0.0, 1.0
    elif estimator == "FE":
        i2 = max(0.0, 100.0 * (q - (k - 1)) / q) if q > 0 else 0.0
        h2 = q / (k - 1)
    else:
        vt = typical_variance(vi)
        i2 = 100.0 * tau2 / (vt + tau2)
        h2 = tau2 / vt + 1.0
    tau2_ci = None
    if estimator != "FE" and k >= 2:
        tau2_ci = q_profile_ci(yi, vi, tau2, level)
    weights = tuple((100.0 * w / sw).tolist())
    return _Fit(
        mu,
        se,
        ci_bounds,
        pi,
        df,
        tau2,
        tau2_ci,
        i2,
        h2,
        q,
        q_p,
        weights,
        tau.converged,
        tuple(notes),
    )


def _fit_glmm(
    events: IntArray, totals: IntArray, yi: FloatArray, vi: FloatArray, ci: str, level: float
) -> _Fit:
    """Binomial-normal GLMM (metafor ``rma.glmm(measure="PLO", nAGQ=7)``).

    I² and H² use the typical variance of the continuity-corrected logit ``vi``, as
    ``rma.glmm`` does; Q is the Wald-type test of heterogeneity (metafor ``QE.Wld``).
    """
    from metaresp.glmm import fit_glmm

    k = events.size
    fit = fit_glmm(events, totals, nagq=GLMM_NAGQ)
    if not fit.converged:
        raise ConvergenceError("the GLMM fit reports no convergence")
    notes = list(fit.warnings)
    if k == 1 and ci != "z":
        notes.append(f'k = 1: ci="{ci}" needs k >= 2; a z interval is used')
    ci_bounds, pi, df = _interval(fit.mu, fit.se, fit.tau2, k, ci, level, notes)
    if k >= 2:
        vt = typical_variance(vi)
        i2 = 100.0 * fit.tau2 / (vt + fit.tau2)
        h2 = fit.tau2 / vt + 1.0
    else:
        i2, h2 = 0.0, 1.0
    return _Fit(
        float(fit.mu),
        float(fit.se),
        ci_bounds,
        pi,
        df,
        float(fit.tau2),
        None,
        i2,
        h2,
        float(fit.q_wald),
        float(fit.q_wald_pvalue),
        None,
        bool(fit.converged),
        tuple(notes),
    )


def pool(
    events: Sequence[int] | NDArray[np.integer[Any]],
    totals: Sequence[int] | NDArray[np.integer[Any]],
    *,
    labels: Sequence[str] | None = None,
    transform: str = "logit",
    estimator: str = "GLMM",
    ci: str = "t",
    level: float = 0.95,
) -> PoolResult:
    """Pool single proportions ``events/totals`` across studies.

    ``transform``: "logit", "freeman-tukey", "arcsine", "raw", "log" (metafor PLO, PFT,
    PAS, PR, PLN). ``estimator``: "FE", "DL", "REML", "ML", "PM", "SJ", "HE", "EB", "HS"
    (inverse-variance, metafor ``rma.uni``) or "GLMM" (binomial-normal, ML, logit only;
    metafor ``rma.glmm``). ``ci``: "z", "t" (k-1 df), "hksj", "hksj-adhoc" (GLMM: "z" or
    "t"). Raises :class:`~metaresp.errors.InputError` (a ``ValueError``) naming each bad
    argument and its allowed values. When the GLMM does not converge the result is the
    REML logit model with an HKSJ interval, and ``warnings`` says so (methods.md).
    """
    xi, ni, labs = _validate(events, totals, labels, transform, estimator, ci, level)
    level = float(level)
    notes: list[str] = []
    fit: _Fit | None = None
    if estimator == "GLMM":
        yi, vi = effect_sizes("logit", xi, ni)
        try:
            fit = _fit_glmm(xi, ni, yi, vi, ci, level)
        except ConvergenceError as exc:
            transform, estimator, ci = FALLBACK
            notes.append(
                f"GLMM did not converge ({exc}); fell back to the REML model on the logit "
                "scale with an HKSJ interval (ad hoc floor: never narrower than the z interval)"
            )
    else:
        yi, vi = effect_sizes(transform, xi, ni)
    if fit is None:
        fit = _fit_iv(yi, vi, estimator, ci, level)
    notes.extend(fit.warnings)
    n_hm = harmonic_mean(ni) if transform == "freeman-tukey" else math.nan

    def back(value: float, what: str) -> float:
        p, clipped = back_transform(transform, value, n_hm)
        if clipped:
            notes.append(
                f"{what} {value:.6g} on the {transform} scale lies outside [0, 1] when "
                f"back-transformed; set to {p:g}"
            )
        if math.isnan(p):
            notes.append(f"{what}: the {transform} back-transform is undefined at {value:.6g}")
        return p

    proportion = back(fit.estimate, "pooled estimate")
    ci_low = back(fit.ci[0], "CI lower bound")
    ci_high = back(fit.ci[1], "CI upper bound")
    pi_low = pi_high = None
    if fit.pi is not None:
        pi_low = back(fit.pi[0], "prediction interval lower bound")
        pi_high = back(fit.pi[1], "prediction interval upper bound")
    if not fit.converged:
        notes.append(f"{estimator}: the fit did not converge; treat the results with caution")
    return PoolResult(
        k=int(xi.size),
        estimate=fit.estimate,
        se=fit.se,
        proportion=proportion,
        ci_low=ci_low,
        ci_high=ci_high,
        pi_low=pi_low,
        pi_high=pi_high,
        tau2=fit.tau2,
        tau2_ci_low=None if fit.tau2_ci is None else fit.tau2_ci[0],
        tau2_ci_high=None if fit.tau2_ci is None else fit.tau2_ci[1],
        i2=fit.i2,
        h2=fit.h2,
        q=fit.q,
        q_pvalue=fit.q_pvalue,
        weights=fit.weights,
        warnings=tuple(dict.fromkeys(notes)),
        transform=transform,
        estimator=estimator,
        ci=ci,
        level=level,
        converged=fit.converged,
        estimate_ci_low=fit.ci[0],
        estimate_ci_high=fit.ci[1],
        estimate_pi_low=None if fit.pi is None else fit.pi[0],
        estimate_pi_high=None if fit.pi is None else fit.pi[1],
        df=fit.df,
        yi=tuple(yi.tolist()),
        vi=tuple(vi.tolist()),
        events=tuple(xi.tolist()),
        totals=tuple(ni.tolist()),
        labels=labs,
    )


__all__ = ["CIS", "ESTIMATORS", "PoolResult", "pool"]
