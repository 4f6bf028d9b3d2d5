"""Meta-regression (``metaresp.regress``) against R's metafor.

Reference values come from ``tests/fixtures/regress_metafor.R`` (metafor 3.8.1, lme4
1.1-31; the R, metafor and lme4 versions and the exact calls are stored in the JSON). R is
not needed to run these tests.

Tolerances, relative to max(1, |reference|):

* inverse-variance models, 1e-6 for the closed forms (FE, DL, HE, HS, SJ): both sides
  evaluate the same formulas in double precision and the JSON keeps 15 significant digits
  (measured: below 2e-7 on every field);
* 1e-4 for the iterative estimators (REML, ML, EB by Fisher scoring, PM by uniroot):
  metafor stops Fisher scoring at an absolute change of 1e-5 and PM at uniroot's absolute
  tolerance eps^0.25; we repeat both step for step, so the measured differences are far
  smaller (below 2e-7), but another dataset could stop one step apart;
* GLMM, 1e-3: metafor calls ``lme4::glmer(nAGQ = 7)``, which maximises the same
  adaptive-quadrature likelihood with the derivative-free bobyqa optimiser and a loose
  stopping rule, and computes the covariance from a finite-difference Hessian; measured on
  this file: coefficients 2.5e-5, SEs 1.2e-5, CI bounds 5.5e-5, τ² 1.3e-5, QM 6.3e-5,
  I² 7.6e-5, QE.Wld 2.6e-7, QE.LRT 1e-10. That our optimum is at least as high as lme4's is
  checked separately.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import special

from metaresp.errors import StatisticalWarning
from metaresp.regression import RegressionResult, regress

REFERENCE = Path(__file__).parent / "fixtures" / "regress_metafor.json"
DATA: dict[str, Any] = json.loads(REFERENCE.read_text())
DATASETS: dict[str, Any] = DATA["datasets"]

ESTIMATORS = ["FE", "DL", "REML", "ML", "PM", "SJ", "HE", "EB", "HS"]
TESTS = {"z": "z", "knha": "hksj", "t": "t", "adhoc": "hksj-adhoc"}
ITERATIVE = {"REML", "ML", "EB", "PM"}
CLOSED_TOL = 1e-6
ITERATIVE_TOL = 1e-4
GLMM_TOL = 1e-3
ZERO_ATOL = 1e-12

COEF_FIELDS = [
    ("estimates", "estimate"),
    ("ses", "se"),
    ("statistics", "zval"),
    ("pvalues", "pval"),
    ("ci_lows", "ci_lb"),
    ("ci_highs", "ci_ub"),
]


def _mods(ds: dict[str, Any]) -> dict[str, list[Any]]:
    return {name: ds["moderators"][name]["values"] for name in ds["moderator_order"]}


def _fit(ds: dict[str, Any], **kwargs: Any) -> RegressionResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StatisticalWarning)
        return regress(ds["xi"], ds["ni"], _mods(ds), **kwargs)


def _close(ours: float | None, ref: float | None, tol: float) -> bool:
    if ref is None:
        return ours is None or (isinstance(ours, float) and math.isnan(ours))
    if ours is None or math.isnan(ours):
        return False
    return abs(ours - ref) <= tol * max(1.0, abs(ref)) + ZERO_ATOL


def _check_coefficients(
    problems: list[str], fit: RegressionResult, ref: dict[str, Any], tol: float
) -> None:
    coef = ref["coefficients"]
    if list(fit.names) != coef["names"]:
        problems.append(f"names: ours {fit.names}, metafor {coef['names']}")
        return
    for ours_name, ref_name in COEF_FIELDS:
        for name, a, b in zip(fit.names, getattr(fit, ours_name), coef[ref_name], strict=True):
            if not _close(a, b, tol):
                problems.append(f"{name}.{ref_name}: ours {a!r}, metafor {b!r}")
    m, df2 = ref["QMdf"]
    if fit.qm_df != (m, df2):
        problems.append(f"QMdf: ours {fit.qm_df}, metafor {(m, df2)}")


# ------------------------------------------------------------------------------ the grid


def test_reference_records_versions_and_calls() -> None:
    assert DATA["metafor_version"] == "3.8.1"
    assert DATA["lme4_version"] == "1.1.31"
    assert DATA["r_version"].startswith("R version")
    assert {"escalc", "rma", "glmm", "predict"} <= set(DATA["calls"])
    assert DATA["collation"] == "C"


def test_grid_is_complete() -> None:
    """The reference cannot shrink quietly: ≥ 20 datasets, each fitted with every
    estimator × test, real and synthetic data, every kind of moderator, 0/n and n/n
    studies, every transform somewhere, the GLMM on at least 12 datasets."""
    assert DATA["methods"] == ESTIMATORS
    assert DATA["tests"] == list(TESTS)
    assert DATA["glmm_tests"] == ["z", "t"]
    assert len(DATASETS) >= 20
    kinds: set[str] = set()
    transforms: set[str] = set()
    n_glmm = 0
    for name, ds in DATASETS.items():
        assert "logit" in ds["transforms"], name
        for tname, tr in ds["transforms"].items():
            transforms.add(tname)
            assert sorted(tr["estimators"]) == sorted(ESTIMATORS), (name, tname)
            for est, fits in tr["estimators"].items():
                assert sorted(fits) == sorted(TESTS), (name, tname, est)
                for test, ref in fits.items():
                    assert "error" not in ref, (name, tname, est, test, ref.get("error"))
        if "glmm" in ds:
            n_glmm += 1
            assert sorted(ds["glmm"]) == ["t", "z"], name
            assert all("error" not in r for r in ds["glmm"].values()), name
        mods = ds["moderators"]
        for col in mods.values():
            kinds.add(col["kind"])
        n_levels = [len(set(c["values"])) for c in mods.values() if c["kind"] == "text"]
        if any(n >= 3 for n in n_levels):
            kinds.add("factor3+")
        if len(mods) >= 2:
            kinds.add("two moderators")
        xi, ni = np.array(ds["xi"]), np.array(ds["ni"])
        if (xi == 0).any():
            kinds.add("zero-event study")
        if (xi == ni).any():
            kinds.add("all-event study")
        if ds["source"].startswith("metadat::"):
            kinds.add("real")
    assert {
        "numeric",
        "text",
        "factor3+",
        "two moderators",
        "zero-event study",
        "all-event study",
        "real",
    } <= kinds
    assert transforms == {"logit", "raw", "arcsine", "freeman-tukey", "log"}
    assert n_glmm >= 12
    ks = [ds["k"] for ds in DATASETS.values()]
    assert min(ks) <= 4
    assert max(ks) >= 30
    # a redundant (constant) moderator that metafor drops with a warning
    assert any(
        "Redundant predictors dropped from the model." in ref["warnings"]
        for ds in DATASETS.values()
        for ref in ds["transforms"]["logit"]["estimators"]["REML"].values()
    )
    assert len(DATA["predictions"]) >= 3
    assert {c["method"] for c in DATA["levels"]} >= {"REML", "DL", "GLMM"}
    assert sorted(c["nagq"] for c in DATA["nagq"]) == [7, 15]


IV_CASES = [
    pytest.param(d, t, e, id=f"{d}-{t}-{e}")
    for d, ds in DATASETS.items()
    for t in ds["transforms"]
    for e in ESTIMATORS
]


@pytest.mark.parametrize(("dataset", "transform", "estimator"), IV_CASES)
def test_inverse_variance_matches_metafor(dataset: str, transform: str, estimator: str) -> None:
    ds = DATASETS[dataset]
    tr = ds["transforms"][transform]
    tol = ITERATIVE_TOL if estimator in ITERATIVE else CLOSED_TOL
    problems: list[str] = []
    for test, ci in TESTS.items():
        ref = tr["estimators"][estimator][test]
        fit = _fit(ds, transform=transform, estimator=estimator, ci=ci)
        sub: list[str] = []
        np.testing.assert_allclose(fit.yi, tr["yi"], rtol=CLOSED_TOL)
        np.testing.assert_allclose(fit.vi, tr["vi"], rtol=CLOSED_TOL)
        _check_coefficients(sub, fit, ref, tol)
        for ours, name in [
            (fit.tau2, "tau2"),
            (fit.tau2_se, "se_tau2"),
            (fit.qm, "QM"),
            (fit.qm_pvalue, "QMp"),
            (fit.qe, "QE"),
            (fit.qe_pvalue, "QEp"),
            (fit.r2, "R2"),
            (fit.i2, "I2"),
            (fit.h2, "H2"),
        ]:
            if not _close(ours, ref[name], tol):
                sub.append(f"{name}: ours {ours!r}, metafor {ref[name]!r}")
        if fit.k != ref["k"] or fit.p != ref["p"]:
            sub.append(f"k, p: ours {fit.k}, {fit.p}; metafor {ref['k']}, {ref['p']}")
        redundant = "Redundant predictors dropped from the model." in ref["warnings"]
        if redundant != bool(fit.dropped):
            sub.append(f"dropped columns: ours {fit.dropped}, metafor warned: {redundant}")
        problems.extend(f"{test}: {s}" for s in sub)
    assert not problems, "\n".join(problems)


GLMM_CASES = [pytest.param(d, id=d) for d, ds in DATASETS.items() if "glmm" in ds]


@pytest.mark.parametrize("dataset", GLMM_CASES)
def test_glmm_matches_metafor(dataset: str) -> None:
    ds = DATASETS[dataset]
    problems: list[str] = []
    for test in ("z", "t"):
        ref = ds["glmm"][test]
        fit = _fit(ds, estimator="GLMM", ci=test)
        sub: list[str] = []
        _check_coefficients(sub, fit, ref, GLMM_TOL)
        for ours, name in [
            (fit.tau2, "tau2"),
            (fit.qm, "QM"),
            (fit.qm_pvalue, "QMp"),
            (fit.qe, "QE_Wld"),
            (fit.qe_pvalue, "QEp_Wld"),
            (fit.qe_lrt, "QE_LRT"),
            (fit.qe_lrt_pvalue, "QEp_LRT"),
            (fit.i2, "I2"),
            (fit.h2, "H2"),
        ]:
            if not _close(ours, ref[name], GLMM_TOL):
                sub.append(f"{name}: ours {ours!r}, metafor {ref[name]!r}")
        assert fit.qe_df == ref["QE_df"]
        assert fit.r2 is None
        assert fit.qe_kind == "wald"
        problems.extend(f"{test}: {s}" for s in sub)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("dataset", GLMM_CASES)
def test_glmm_optimum_is_at_least_lme4s(dataset: str) -> None:
    """Same likelihood, so ours must not be lower than lme4's (minus the saturated
    log-likelihood, lme4's convention for a binomial response with totals)."""
    ds = DATASETS[dataset]
    fit = _fit(ds, estimator="GLMM", ci="z")
    x = np.array(ds["xi"], dtype=float)
    n = np.array(ds["ni"], dtype=float)
    log_choose = special.gammaln(n + 1) - special.gammaln(x + 1) - special.gammaln(n - x + 1)
    saturated = float(
        np.sum(log_choose + special.xlogy(x, x / n) + special.xlogy(n - x, (n - x) / n))
    )
    assert fit.loglik is not None
    assert fit.loglik - saturated >= ds["glmm"]["z"]["logLik_lme4"] - 1e-7


@pytest.mark.parametrize(
    "case", DATA["predictions"], ids=[f"{c['dataset']}-{c['method']}" for c in DATA["predictions"]]
)
def test_predict_matches_metafor(case: dict[str, Any]) -> None:
    ds = DATASETS[case["dataset"]]
    fit = _fit(ds, transform="logit", estimator=case["method"], ci=TESTS[case["test"]])
    table = fit.predict({case["moderator"]: case["newmods"]})
    tol = ITERATIVE_TOL if case["method"] in ITERATIVE else CLOSED_TOL
    for ours, ref in [
        ("estimate", "pred"),
        ("se", "se"),
        ("ci_low", "ci_lb"),
        ("ci_high", "ci_ub"),
        ("pi_low", "pi_lb"),
        ("pi_high", "pi_ub"),
    ]:
        np.testing.assert_allclose(table[ours], case[ref], rtol=tol, atol=ZERO_ATOL)
    np.testing.assert_allclose(table["proportion"], special.expit(case["pred"]), rtol=tol)


@pytest.mark.parametrize(
    "case", DATA["levels"], ids=[f"{c['dataset']}-{c['method']}" for c in DATA["levels"]]
)
def test_another_level_matches_metafor(case: dict[str, Any]) -> None:
    ds = DATASETS[case["dataset"]]
    ci = TESTS[case["test"]] if case["method"] != "GLMM" else case["test"]
    fit = _fit(ds, transform="logit", estimator=case["method"], ci=ci, level=case["level"])
    tol = {"GLMM": GLMM_TOL}.get(case["method"], ITERATIVE_TOL)
    coef = case["coefficients"]
    assert list(fit.names) == coef["names"]
    np.testing.assert_allclose(fit.ci_lows, coef["ci_lb"], rtol=tol, atol=tol)
    np.testing.assert_allclose(fit.ci_highs, coef["ci_ub"], rtol=tol, atol=tol)
    np.testing.assert_allclose(fit.pvalues, coef["pval"], rtol=tol, atol=tol)


@pytest.mark.parametrize("case", DATA["nagq"], ids=[f"nagq{c['nagq']}" for c in DATA["nagq"]])
def test_glmm_node_count_matches_metafor(case: dict[str, Any]) -> None:
    """``nagq`` is metafor's ``nAGQ``; with large τ² and studies at 0%, 7 nodes are too few
    and the fit says so (our check, not metafor's)."""
    mods = {name: col["values"] for name, col in case["moderators"].items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StatisticalWarning)
        fit = regress(case["xi"], case["ni"], mods, estimator="GLMM", nagq=case["nagq"])
    np.testing.assert_allclose(fit.estimates, case["coefficients"]["estimate"], rtol=GLMM_TOL)
    np.testing.assert_allclose(fit.ses, case["coefficients"]["se"], rtol=GLMM_TOL)
    assert fit.tau2 == pytest.approx(case["tau2"], rel=GLMM_TOL)
    too_few = any("quadrature nodes per study are too few" in w for w in fit.warnings)
    assert too_few == (case["nagq"] == 7)
