"""The fields of a :class:`~metaresp.pooling.PoolResult` for ``estimator="BAYES"``."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import special

from metaresp.errors import InputError
from metaresp.models import ModelSpec

__all__ = ["bayes_fields"]

IntArray = NDArray[np.int64]


def bayes_fields(
    xi: IntArray, ni: IntArray, labs: tuple[str, ...], spec: ModelSpec, threshold: float | None
) -> dict[str, Any]:
    """The Bayesian binomial-normal model (:mod:`metaresp.bayes`): posterior medians and
    equal-tailed credible intervals in the fields the frequentist models fill with point
    estimates and confidence intervals. I² and H² use the posterior median of τ² with the
    typical within-study variance; Q is Cochran's Q of the continuity-corrected logits,
    reported as a description of the data (the model does not use it)."""
    from metaresp import bayes
    from metaresp.estimators import q_generalised, typical_variance
    from metaresp.priors import parse_mu_prior, parse_tau_prior
    from metaresp.transforms import effect_sizes

    problems: list[str] = []
    tau_text, mu_text = spec.priors
    for parse, text in ((parse_tau_prior, tau_text), (parse_mu_prior, mu_text)):
        try:
            parse(text)
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        raise InputError(problems)
    fit = bayes.fit_bayes(
        xi, ni, tau_prior=tau_text, mu_prior=mu_text, level=spec.level, threshold=threshold
    )
    fitted = spec.with_(tau_prior=fit.tau_prior, mu_prior=fit.mu_prior)
    k = int(xi.size)
    yi, vi = effect_sizes("logit", xi, ni)
    if k >= 2:
        vt = typical_variance(vi)
        i2, h2 = 100.0 * fit.tau2 / (vt + fit.tau2), fit.tau2 / vt + 1.0
        q = q_generalised(yi, vi, 0.0)
        q_p = float(special.chdtrc(k - 1, q))
    else:
        i2, h2, q, q_p = 0.0, 1.0, 0.0, 1.0
    logit = special.logit
    return dict(
        k=k,
        estimate=float(fit.mu),
        se=float(fit.mu_sd),
        proportion=float(fit.proportion),
        ci_low=float(fit.ci_low),
        ci_high=float(fit.ci_high),
        pi_low=float(fit.pi_low),
        pi_high=float(fit.pi_high),
        tau2=float(fit.tau2),
        i2=float(i2),
        h2=float(h2),
        q=float(q),
        q_pvalue=q_p,
        weights=None,
        warnings=tuple(dict.fromkeys(fit.warnings)),
        transform="logit",
        estimator="BAYES",
        ci=fitted.ci,
        level=fitted.level,
        converged=True,
        estimate_ci_low=float(logit(fit.ci_low)),
        estimate_ci_high=float(logit(fit.ci_high)),
        estimate_pi_low=float(logit(fit.pi_low)),
        estimate_pi_high=float(logit(fit.pi_high)),
        df=None,
        yi=tuple(yi.tolist()),
        vi=tuple(vi.tolist()),
        events=tuple(xi.tolist()),
        totals=tuple(ni.tolist()),
        labels=labs,
        requested=spec,
        fitted=fitted,
        q_kind="cochran",
        q_df=max(k - 1, 0),
        mean_proportion=float(fit.mean_proportion),
        mean_ci_low=float(fit.mean_ci_low),
        mean_ci_high=float(fit.mean_ci_high),
        threshold=threshold,
        prob_above=fit.prob_above,
        prob_mean_above=fit.prob_mean_above,
        _lazy={"tau2_ci": (float(fit.tau2_ci_low), float(fit.tau2_ci_high))},
    )
