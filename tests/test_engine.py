"""The one engine: registries, the model specification and what a result records.

References: metafor 3.8.1 and lme4 (``tests/fixtures/metafor/glmm_reference.json``, written by
``make_glmm_reference.R``) for the GLMM's log-likelihood; SciPy's adaptive ``quad`` (an
independent integrator) for the mean response rate.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import integrate, special, stats

from metaresp import engine, estimators, models
from metaresp.errors import StatisticalWarning
from metaresp.models import ModelSpec
from metaresp.pooling import pool
from metaresp.transforms import effect_sizes

GLMM_REF: dict[str, Any] = json.loads(
    (Path(__file__).parent / "fixtures" / "metafor" / "glmm_reference.json").read_text()
)


def test_engine_implements_every_registered_name() -> None:
    iv = {name for name, e in models.ESTIMATORS.items() if e.family == "iv"}
    assert iv == set(estimators.TAU2_ROWS)
    x, n = np.array([[3, 0, 7]]), np.array([[10, 5, 7]])
    for name in models.TRANSFORMS:
        yi, vi = effect_sizes(name, x, n)
        assert np.isfinite(yi).all(), name
        assert (vi > 0).all(), name
    for est in iv:
        for ci in models.ESTIMATORS[est].cis:
            rows = engine.fit_rows(x, n, ModelSpec(transform="logit", estimator=est, ci=ci))
            assert not rows.failed[0], (est, ci)


def test_one_row_of_many_is_the_single_fit() -> None:
    rng = np.random.default_rng(11)
    n = rng.integers(2, 40, size=(25, 4))
    x = rng.binomial(n, 0.4)
    for spec in (
        ModelSpec("logit", "PM", "hksj"),
        ModelSpec("arcsine", "EB", "t"),
        ModelSpec("logit", "GLMM", "t"),
    ):
        rows = engine.fit_rows(x, n, spec)
        for r in (0, 7, 24):
            one = pool(x[r], n[r], **spec.as_kwargs())
            if one.fallback:
                continue
            assert rows.proportion[r] == pytest.approx(one.proportion, rel=1e-9)
            assert rows.ci[r, 1] == pytest.approx(one.ci_high, rel=1e-9)
            assert rows.tau2[r] == pytest.approx(one.tau2, rel=1e-9, abs=1e-12)


def test_result_records_requested_and_fitted_model_and_fallback() -> None:
    with pytest.warns(StatisticalWarning, match="fell back"):
        res = pool([0, 0], [2, 2], estimator="GLMM")
    assert res.requested.estimator == "GLMM"
    assert res.fitted.estimator == "REML"
    assert res.fitted.ci == "hksj-adhoc"
    assert res.fallback
    assert res.fallback_reason is not None
    assert "0 or all events" in res.fallback_reason
    assert res.q_kind == "cochran"
    ok = pool([3, 10, 4], [10, 12, 9], estimator="GLMM")
    assert not ok.fallback
    assert ok.fallback_reason is None
    assert ok.requested == ok.fitted
    assert ok.q_kind == "wald"
    assert ok.q_df == 2
    assert ok.nagq == 7


def test_nagq_is_used_and_recorded() -> None:
    xi, ni = [0, 5, 12, 0, 9], [6, 5, 14, 8, 9]
    a = pool(xi, ni, estimator="GLMM", nagq=7)
    b = pool(xi, ni, estimator="GLMM", nagq=21)
    assert a.nagq == 7
    assert b.nagq == 21
    assert b.requested.nagq == 21
    assert a.tau2 != b.tau2
    with pytest.raises(ValueError, match="nagq"):
        pool(xi, ni, estimator="GLMM", nagq=0)


def test_warnings_are_issued_and_recorded() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = pool([1, 5], [2, 9], estimator="GLMM")
    issued = [str(w.message) for w in caught if issubclass(w.category, StatisticalWarning)]
    assert issued
    assert set(issued) == set(res.warnings)


def test_fe_defaults_to_a_z_interval_and_re_to_hksj() -> None:
    assert pool([3, 4, 5], [10, 10, 10], estimator="FE").ci == "z"
    assert pool([3, 4, 5], [10, 10, 10], estimator="REML").ci == "hksj"
    assert pool([3, 4, 5], [10, 10, 10]).ci == "t"


@pytest.mark.parametrize(
    "row",
    [d for d in GLMM_REF["datasets"] if d.get("tau2") and d["tau2"] > 1e-6],
    ids=lambda d: d["name"],
)
def test_glmm_likelihood_ratio_test_of_tau2_against_lme4(row: dict[str, Any]) -> None:
    """2 (ℓ - ℓ_FE) from lme4's logLik (which omits the saturated log-likelihood) and the
    closed-form binomial log-likelihoods: both fits maximise the same quadrature likelihood,
    so the GLMM tolerance of the metafor comparison (1e-3 relative) applies."""
    x = np.asarray(row["xi"], dtype=float)
    n = np.asarray(row["ni"], dtype=float)
    p = x.sum() / n.sum()
    sat = special.xlogy(x, x / n) + special.xlogy(n - x, (n - x) / n)
    fe = special.xlogy(x, p) + special.xlogy(n - x, 1 - p)
    expected = 2.0 * (row["logLik_lme4"] + float(np.sum(sat)) - float(np.sum(fe)))
    res = pool(row["xi"], row["ni"], estimator="GLMM")
    if res.fallback:
        pytest.skip("GLMM fell back for this dataset")
    assert res.tau2_lrt is not None
    assert res.tau2_lrt == pytest.approx(max(expected, 0.0), rel=1e-3, abs=1e-3)
    assert res.tau2_lrt_pvalue == pytest.approx(0.5 * stats.chi2.sf(res.tau2_lrt, 1))
    assert res.q_lrt == pytest.approx(row["QE_LRT"], rel=1e-6)


def test_mean_rate_against_an_independent_integrator() -> None:
    for mu, tau in ((-1.0, 0.0), (2.2, 2.4), (0.3, 0.8), (-3.0, 1.5)):

        def f(z: float, mu: float = mu, tau: float = tau) -> float:
            return float(special.expit(mu + tau * z) * stats.norm.pdf(z))

        want, _ = integrate.quad(f, -12, 12, epsabs=1e-13)
        got = float(engine.mean_rate(np.array([mu]), np.array([tau]))[0])
        assert got == pytest.approx(want, abs=1e-10)


def test_glmm_mean_rate_and_its_interval() -> None:
    # large heterogeneity: the median study (expit mu) and the mean rate differ
    res = pool([8, 2, 9, 0, 3], [8, 20, 9, 10, 5], estimator="GLMM")
    assert res.mean_proportion is not None
    assert res.mean_ci_low is not None
    assert res.mean_ci_low < res.mean_proportion < res.mean_ci_high  # type: ignore[operator]
    assert not math.isclose(res.mean_proportion, res.proportion, abs_tol=0.02)
    # no heterogeneity: the mean is the median and its interval the CI
    flat = pool([5, 5, 5], [10, 10, 10], estimator="GLMM")
    assert flat.tau2 == 0.0
    assert flat.mean_proportion == pytest.approx(flat.proportion)
    assert flat.mean_ci_low == pytest.approx(flat.ci_low)


def test_spec_describes_itself_and_reports_problems() -> None:
    spec = ModelSpec(estimator="GLMM")
    assert spec.problems() == []
    assert "GLMM" in spec.describe()
    assert "95%" in spec.describe()
    bad = ModelSpec(transform="raw", estimator="GLMM", ci="hksj")
    text = " | ".join(bad.problems())
    assert 'transform="logit"' in text
    assert '"z" or "t"' in text
