"""Case-deletion (leave-one-out) diagnostics for a pooled proportion.

Inverse-variance models follow metafor 3.8.1 ``influence.rma.uni`` for the intercept-only
model ``yi ~ N(mu, vi + tau2)`` (Viechtbauer & Cheung 2010, Res Synth Methods 1:112,
"Outlier and influence diagnostics for meta-analysis"). Study *i* is deleted and the model
refitted with the same τ² estimator and the same test; with a subscript ``(-i)`` for that
refit, ``w = 1/(vi + tau2)`` the full-data weights and ``s2w`` the HKSJ scale factor of a
fit (1 for ``ci="z"``/``"t"``; ``sum w (y - mu)^2/(k-1)`` for ``"hksj"``, 0 when that sum is
at most machine epsilon; floored at 1 for ``"hksj-adhoc"``), ``vb = s2w/sum(w)`` the
variance of the pooled estimate the CI uses:

* ``hat``     h_i = w_i / sum(w) (set to 1 above 1 - 10 eps, as metafor);
* ``weight``  100 h_i (percent, before that rounding);
* ``rstudent`` (y_i - mu_(-i)) / sqrt(s2w_(-i) (v_i + tau2_(-i)) + vb_(-i)), the residual set
  to 0 when below 100 eps in absolute value;
* ``dffits``  (mu - mu_(-i)) / sqrt(s2w_(-i) h_i (tau2_(-i) + v_i));
* ``cook.d``  (mu - mu_(-i))^2 / vb (the full fit's variance, HKSJ-scaled where it is);
* ``cov.r``   vb_(-i) / vb;
* ``tau2.del``, ``QE.del``: τ² and Cochran's Q (fixed-effect weights) of the refit;
* ``dfbs``    (mu - mu_(-i)) / sqrt(s2w_(-i) / sum_j 1/(v_j + tau2_(-i))), the sum over
  all k studies (metafor's DFBETAS);
* ``inf``     metafor's rule: |dffits| > 3 sqrt(1/(k-1)), or P(chi2_1 <= cook.d) > 0.5, or
  hat > 3/k, or |dfbs| > 1 (a missing value counts as "not flagged").

When a deletion leaves one study, metafor's refit sets τ² = 0 and ``test="z"`` (so
``s2w = 1``), whatever the estimator; the same is done here. A refit whose τ² iteration
does not converge gives a row of NaN (metafor's ``influence`` skips refits that stop with
an error). A full fit with zero variance (HKSJ with identical estimates), which metafor
cannot invert, gives NaN for ``cook.d`` and ``cov.r``, with a warning.

The binomial-normal GLMM has no closed-form hat matrix, and metafor offers no diagnostics
for ``rma.glmm``. :func:`glmm_influence` takes the GLMM refitted without each study and
defines, on the logit scale, with ``y_i, v_i`` the study's empirical logit and its variance
(0.5 added to both cells of a study with 0 or all events, as metafor's ``escalc``) and
``mu, se`` the GLMM's pooled logit and its standard error (inverse observed information):

* ``rstudent`` (y_i - mu_(-i)) / sqrt(v_i + tau2_(-i) + se_(-i)^2): the deleted residual
  standardised with the refit's τ² and se, i.e. the formula above with s2w = 1;
* ``cook.d``  (mu - mu_(-i))^2 / se^2, ``cov.r`` se_(-i)^2 / se^2;
* ``tau2.del`` the refit's τ², ``QE.del`` its Wald-type heterogeneity statistic
  (metafor's ``QE.Wld``, NaN when one study is left);
* ``hat``, ``weight``, ``dffits``, ``dfbs``: NaN, because the GLMM gives a study no
  inverse-variance weight;
* ``inf``: P(chi2_1 <= cook.d) > 0.5, the only part of metafor's rule that is defined.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import numpy as np
from numpy.typing import NDArray
from scipy import special

from metaresp.estimators import estimate_tau2, q_generalised

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from metaresp.pooling import PoolResult

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

#: Columns of the diagnostics, in metafor's order and with its names
#: (``influence.rma.uni``; ``dfbs`` is its ``dfbs`` table for the intercept).
COLUMNS: Final[tuple[str, ...]] = (
    "rstudent",
    "dffits",
    "cook.d",
    "cov.r",
    "tau2.del",
    "QE.del",
    "hat",
    "weight",
    "dfbs",
)
_EPS: Final[float] = float(np.finfo(np.float64).eps)
#: Median of chi-square with 1 df: Cook's distance above it flags a study (metafor's
#: ``pchisq(cook.d, df = 1) > 0.5``).
_COOK_CUT: Final[float] = float(special.chdtri(1, 0.5))


@dataclass(frozen=True)
class Influence:
    """Case-deletion diagnostics, one array entry per study (see the module docstring)."""

    rstudent: FloatArray
    dffits: FloatArray
    cook_d: FloatArray
    cov_r: FloatArray
    tau2_del: FloatArray
    qe_del: FloatArray
    hat: FloatArray
    weight: FloatArray
    dfbs: FloatArray
    estimate_del: FloatArray
    se_del: FloatArray
    inf: BoolArray
    #: per-study notes (refit warnings and failures)
    notes: tuple[tuple[str, ...], ...]

    def columns(self) -> dict[str, FloatArray]:
        """The diagnostics keyed by metafor's column names (:data:`COLUMNS`)."""
        return {
            "rstudent": self.rstudent,
            "dffits": self.dffits,
            "cook.d": self.cook_d,
            "cov.r": self.cov_r,
            "tau2.del": self.tau2_del,
            "QE.del": self.qe_del,
            "hat": self.hat,
            "weight": self.weight,
            "dfbs": self.dfbs,
        }


def _flag(dffits: FloatArray, cook: FloatArray, hat: FloatArray, dfbs: FloatArray) -> BoolArray:
    """metafor's rule for an intercept-only model (p = 1); NaN compares as False."""
    k = cook.size
    with np.errstate(invalid="ignore"):
        flag: BoolArray = (
            (np.abs(dffits) > 3.0 * math.sqrt(1.0 / (k - 1)))
            | (cook > _COOK_CUT)
            | (hat > 3.0 / k)
            | (np.abs(dfbs) > 1.0)
        )
    return flag


def _scale_factor(yi: FloatArray, w: FloatArray, mu: float, ci: str) -> float:
    """HKSJ scale factor s2w of a fit with k = yi.size >= 2 (1 for z and t)."""
    if ci not in ("hksj", "hksj-adhoc"):
        return 1.0
    r = yi - mu
    rss = float(w @ (r * r))
    s2w = 0.0 if rss <= _EPS else rss / (yi.size - 1)
    return max(1.0, s2w) if ci == "hksj-adhoc" else s2w


def iv_influence(
    yi: FloatArray,
    vi: FloatArray,
    *,
    estimator: str,
    ci: str,
    estimate: float,
    se: float,
    tau2: float,
) -> Influence:
    """metafor's ``influence.rma.uni`` for the intercept-only inverse-variance model.

    ``yi, vi``: the studies' transformed proportions and sampling variances;
    ``estimator``, ``ci``: the fit's τ² estimator ("FE", "DL", ...) and CI type ("z",
    "t", "hksj", "hksj-adhoc"); ``estimate``, ``se``, ``tau2``: the full fit (``se`` as the
    CI uses it, HKSJ-scaled for "hksj"). Needs k >= 2 (``ValueError`` otherwise).
    """
    yi = np.asarray(yi, dtype=np.float64)
    vi = np.asarray(vi, dtype=np.float64)
    k = yi.size
    if k < 2:
        raise ValueError(f"influence diagnostics need at least 2 studies; got k = {k}")
    w = 1.0 / (vi + tau2)
    weight = 100.0 * w / w.sum()
    hat = w / w.sum()
    hat[hat > 1.0 - 10.0 * _EPS] = 1.0
    vb = se * se
    nan = np.full(k, np.nan)
    tau2_del, qe_del, mu_del, vb_del, s2w_del = (nan.copy() for _ in range(5))
    notes: list[tuple[str, ...]] = []
    for i in range(k):
        keep = np.arange(k) != i
        y, v = yi[keep], vi[keep]
        row: list[str] = []
        if k - 1 == 1:
            t2, s2w = 0.0, 1.0
            if estimator != "FE":
                row.append("one study left: tau2 set to 0 and a z test used (as metafor)")
        else:
            fit = estimate_tau2(estimator, y, v)
            row.extend(fit.warnings)
            if not fit.converged:
                row.append(f"{estimator} refit without this study did not converge: no values")
                notes.append(tuple(row))
                continue
            t2 = fit.tau2
        wd = 1.0 / (v + t2)
        mu = float(wd @ y) / float(wd.sum())
        if k - 1 >= 2:
            s2w = _scale_factor(y, wd, mu, ci)
        tau2_del[i], mu_del[i], s2w_del[i] = t2, mu, s2w
        vb_del[i] = s2w / float(wd.sum())
        qe_del[i] = q_generalised(y, v, 0.0) if k - 1 >= 2 else 0.0
        notes.append(tuple(row))
    diff = estimate - mu_del
    resid = yi - mu_del
    resid[np.abs(resid) < 100.0 * _EPS] = 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        rstudent = resid / np.sqrt(vi * s2w_del + vb_del + tau2_del * s2w_del)
        dffits = diff / np.sqrt(s2w_del * hat * (tau2_del + vi))
        vb_full_at_del = np.array(
            [1.0 / float(np.sum(1.0 / (vi + t))) if np.isfinite(t) else np.nan for t in tau2_del]
        )
        dfbs = diff / np.sqrt(s2w_del * vb_full_at_del)
        if vb > 0.0:
            cook = diff * diff / vb
            cov_r = vb_del / vb
        else:
            cook, cov_r = nan.copy(), nan.copy()
            msg = (
                "the pooled estimate has zero variance (HKSJ with identical estimates): "
                "Cook's distance and the covariance ratio are undefined"
            )
            notes = [(*row, msg) for row in notes]
    return Influence(
        rstudent=rstudent,
        dffits=dffits,
        cook_d=cook,
        cov_r=cov_r,
        tau2_del=tau2_del,
        qe_del=qe_del,
        hat=hat,
        weight=weight,
        dfbs=dfbs,
        estimate_del=mu_del,
        se_del=np.sqrt(vb_del),
        inf=_flag(dffits, cook, hat, dfbs),
        notes=tuple(notes),
    )


@dataclass(frozen=True)
class DeletedFit:
    """A GLMM refitted without one study: pooled logit, its se, τ² and the Wald Q; ``None``
    when no GLMM could be fitted (the reason goes in ``notes``)."""

    estimate: float | None
    se: float | None
    tau2: float | None
    q: float | None
    notes: tuple[str, ...] = ()


def glmm_influence(
    yi: FloatArray,
    vi: FloatArray,
    *,
    estimate: float,
    se: float,
    deleted: Sequence[DeletedFit],
) -> Influence:
    """Case-deletion diagnostics for the binomial-normal GLMM from its refits.

    ``yi, vi``: empirical logits and their variances (0.5 added to studies with 0 or all
    events); ``estimate, se``: the GLMM's pooled logit and its se; ``deleted[i]``: the GLMM
    refitted without study i. Definitions in the module docstring.
    """
    yi = np.asarray(yi, dtype=np.float64)
    vi = np.asarray(vi, dtype=np.float64)
    k = yi.size
    if k < 2 or len(deleted) != k:
        raise ValueError(f"need k >= 2 studies and one refit per study; got k = {k}")

    def arr(name: str) -> FloatArray:
        vals = [getattr(d, name) for d in deleted]
        return np.array([np.nan if v is None else float(v) for v in vals], dtype=np.float64)

    mu_del, se_del, tau2_del, qe_del = arr("estimate"), arr("se"), arr("tau2"), arr("q")
    vb = se * se
    diff = estimate - mu_del
    resid = yi - mu_del
    resid[np.abs(resid) < 100.0 * _EPS] = 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        rstudent = resid / np.sqrt(vi + tau2_del + se_del * se_del)
        cook = diff * diff / vb
        cov_r = se_del * se_del / vb
    nan = np.full(k, np.nan)
    with np.errstate(invalid="ignore"):
        inf: BoolArray = cook > _COOK_CUT
    return Influence(
        rstudent=rstudent,
        dffits=nan.copy(),
        cook_d=cook,
        cov_r=cov_r,
        tau2_del=tau2_del,
        qe_del=qe_del,
        hat=nan.copy(),
        weight=nan.copy(),
        dfbs=nan.copy(),
        estimate_del=mu_del,
        se_del=se_del,
        inf=inf,
        notes=tuple(d.notes for d in deleted),
    )


#: influence() columns with no definition for the GLMM, and why they are left out
GLMM_UNDEFINED: Final[tuple[str, ...]] = ("hat", "weight", "dffits", "dfbs")
GLMM_UNDEFINED_REASON: Final[str] = (
    "not defined for the GLMM: it gives a study no inverse-variance weight, so there is no "
    "hat value, weight, DFFITS or DFBETAS (metafor has no influence() for rma.glmm)"
)


def influence_frame(res: PoolResult) -> pd.DataFrame:
    """:meth:`metaresp.pooling.PoolResult.influence`: every study deleted in turn and the
    model refitted with the same settings; the statistics of :func:`iv_influence` or
    :func:`glmm_influence` as a data frame."""
    import pandas as pd

    if res.k < 2:
        raise ValueError("influence needs at least 2 studies; this result has k = 1")
    yi = np.asarray(res.yi, dtype=np.float64)
    vi = np.asarray(res.vi, dtype=np.float64)
    if res.estimator == "GLMM":
        deleted = []
        for i in range(res.k):
            fit = res._refit([j for j in range(res.k) if j != i])
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
        diag = glmm_influence(yi, vi, estimate=res.estimate, se=res.se, deleted=deleted)
    else:
        diag = iv_influence(
            yi,
            vi,
            estimator=res.estimator,
            ci=res.ci,
            estimate=res.estimate,
            se=res.se,
            tau2=res.tau2,
        )
    columns = diag.columns()
    omitted: dict[str, str] = {}
    if res.estimator == "GLMM":
        omitted = dict.fromkeys(GLMM_UNDEFINED, GLMM_UNDEFINED_REASON)
        columns = {name: values for name, values in columns.items() if name not in omitted}
    frame = pd.DataFrame(
        {
            "label": list(res.labels),
            **columns,
            "inf": diag.inf,
            "estimate.del": diag.estimate_del,
            "se.del": diag.se_del,
            "warnings": ["; ".join(dict.fromkeys(n)) for n in diag.notes],
        }
    )
    frame.attrs["omitted"] = omitted
    return frame


__all__ = [
    "COLUMNS",
    "GLMM_UNDEFINED",
    "GLMM_UNDEFINED_REASON",
    "DeletedFit",
    "Influence",
    "glmm_influence",
    "influence_frame",
    "iv_influence",
]
