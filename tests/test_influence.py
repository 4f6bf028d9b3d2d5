"""Case-deletion diagnostics (``PoolResult.influence``) and GLMM refits in
``leave_one_out`` / ``cumulative``.

Reference values come from ``tests/fixtures/metafor/make_influence_reference.R`` (metafor
3.8.1 ``influence.rma.uni`` and ``leave1out``; for the GLMM, ``rma.glmm`` refitted with
``subset=-i``; the R and metafor versions and the exact calls are stored in the JSON).
R is not needed to run these tests.

Tolerances against metafor (relative, ``numpy.isclose``):

* 1e-6 for closed-form estimators (FE, DL, HE, HS, SJ): both sides evaluate the same
  formulas in double precision and the JSON keeps 15 significant digits.
* 1e-4 for the iterative ones (REML, ML, EB by Fisher scoring; PM by root finding):
  metafor's refits stop Fisher scoring at an absolute change of 1e-5 and solve PM with
  ``uniroot(tol = eps^0.25)``.
* an absolute floor of 1e-9: where the deleted and full estimates agree (homogeneous data),
  ``dffits``, ``dfbs`` and ``cook.d`` are rounding noise of order 1e-15 on both sides.
* GLMM: 1e-3 relative to max(1, |value|), as in ``test_glmm.py``: metafor's ``rma.glmm``
  maximises the same likelihood with lme4's bobyqa, whose stopping rule is loose.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from metaresp.pooling import PoolResult, pool

REFERENCE = Path(__file__).parent / "fixtures" / "metafor" / "influence_reference.json"
DATA: dict[str, Any] = json.loads(REFERENCE.read_text())

TRANSFORMS = ["logit", "freeman-tukey", "arcsine", "raw", "log"]
ESTIMATORS = ["FE", "DL", "REML", "ML", "PM", "SJ", "HE", "EB", "HS"]
CIS = ["z", "t", "hksj", "hksj-adhoc"]
ITERATIVE = {"REML", "ML", "EB", "PM"}
COLUMNS = [
    "rstudent",
    "dffits",
    "cook.d",
    "cov.r",
    "tau2.del",
    "QE.del",
    "hat",
    "weight",
    "dfbs",
    "estimate.del",
    "se.del",
]
CLOSED_RTOL = 1e-6
ITERATIVE_RTOL = 1e-4
NOISE_ATOL = 1e-9  # rounding noise where the deleted and full estimates coincide
GLMM_TOL = 1e-3  # see the module docstring and test_glmm.py


def _num(v: float | str | None) -> float:
    if v is None:
        return math.nan
    if isinstance(v, str):
        return {"Inf": math.inf, "-Inf": -math.inf}[v]
    return float(v)


def _compare(ours: pd.Series[Any], ref: list[Any], rtol: float) -> bool:
    a = ours.to_numpy(dtype=np.float64)
    b = np.array([_num(v) for v in ref], dtype=np.float64)
    return bool(np.all(np.isclose(a, b, rtol=rtol, atol=NOISE_ATOL, equal_nan=True)))


def test_reference_records_versions_and_calls() -> None:
    assert DATA["metafor_version"] == "3.8.1"
    assert DATA["r_version"].startswith("R version")
    assert {"escalc", "rma", "influence", "leave1out"} <= set(DATA["calls"])
    assert "rma.glmm" in DATA["glmm_call"]
    assert "subset=-i" in DATA["glmm_call"]


def test_grid_is_complete() -> None:
    """The grid cannot shrink quietly: ≥ 15 datasets, each with every transform × estimator
    × CI, including k = 2 (one study left after a deletion), k = 3 and tied estimates."""
    assert DATA["transforms"] == TRANSFORMS
    assert DATA["estimators"] == ESTIMATORS
    assert DATA["cis"] == CIS
    datasets = DATA["datasets"]
    assert len(datasets) >= 15
    assert {"k2", "k2-zero", "k2-identical", "k3-two-identical", "outlier"} <= set(datasets)
    computed = 0
    for name, ds in datasets.items():
        assert sorted(ds["transforms"]) == sorted(TRANSFORMS), name
        for tname, tr in ds["transforms"].items():
            assert sorted(tr["estimators"]) == sorted(ESTIMATORS), (name, tname)
            for ename, est in tr["estimators"].items():
                assert sorted(est["cis"]) == sorted(CIS), (name, tname, ename)
                for case in est["cis"].values():
                    if "error" not in case:
                        computed += 1
                        assert len(case["rstudent"]) == len(ds["events"])
    # metafor stops only where HKSJ has zero variance (k2-identical, homogeneous): 81 cases
    assert computed >= len(datasets) * 180 - 81
    assert len(DATA["glmm"]) >= 7


@pytest.mark.parametrize("name", sorted(DATA["datasets"]))
def test_influence_matches_metafor(name: str) -> None:
    ds = DATA["datasets"][name]
    problems: list[str] = []
    for tname in TRANSFORMS:
        for ename in ESTIMATORS:
            rtol = ITERATIVE_RTOL if ename in ITERATIVE else CLOSED_RTOL
            for cname in CIS:
                ref = ds["transforms"][tname]["estimators"][ename]["cis"][cname]
                res = pool(ds["events"], ds["totals"], transform=tname, estimator=ename, ci=cname)
                inf = res.influence()
                where = f"{name}/{tname}/{ename}/{cname}"
                if "error" in ref:
                    # metafor cannot invert the zero HKSJ variance; we return NaN and say so
                    assert res.se == 0.0, where
                    assert inf["cook.d"].isna().all(), where
                    assert inf["cov.r"].isna().all(), where
                    assert inf["warnings"].str.contains("zero variance").all(), where
                    continue
                for col in COLUMNS:
                    if not _compare(inf[col], ref[col], rtol):
                        problems.append(f"{where} {col}: {inf[col].tolist()} vs {ref[col]}")
                if inf["inf"].tolist() != ref["inf"]:
                    problems.append(f"{where} inf: {inf['inf'].tolist()} vs {ref['inf']}")
    assert not problems, "\n".join(problems[:20])


def test_influence_table_shape_and_labels() -> None:
    res = pool(
        [12, 14, 11, 13, 45],
        [40, 45, 38, 42, 50],
        labels=["a", "b", "c", "d", "e"],
        transform="logit",
        estimator="REML",
        ci="hksj",
    )
    inf = res.influence()
    assert inf["label"].tolist() == ["a", "b", "c", "d", "e"]
    assert [*inf.columns] == ["label", *COLUMNS[:9], "inf", *COLUMNS[9:], "warnings"]
    assert inf["inf"].dtype == bool
    # the outlying fifth study (45/50 among about 30%) is the one metafor marks
    ref = DATA["datasets"]["outlier"]["transforms"]["logit"]["estimators"]["REML"]["cis"]
    assert inf["inf"].tolist() == ref["hksj"]["inf"]
    assert inf["inf"].tolist()[4] is True


def test_influence_deletion_fits_agree_with_leave_one_out() -> None:
    """influence() refits on arrays, leave_one_out() through pool(): same models."""
    ds = DATA["datasets"]["heterogeneous"]
    for estimator, ci in [("DL", "t"), ("REML", "hksj"), ("PM", "hksj-adhoc")]:
        res = pool(ds["events"], ds["totals"], transform="arcsine", estimator=estimator, ci=ci)
        inf, loo = res.influence(), res.leave_one_out()
        np.testing.assert_allclose(inf["estimate.del"], loo["estimate"], rtol=1e-12)
        np.testing.assert_allclose(inf["se.del"], loo["se"], rtol=1e-12)
        np.testing.assert_allclose(inf["tau2.del"], loo["tau2"], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(inf["QE.del"], loo["q"], rtol=1e-12)


def test_influence_needs_two_studies() -> None:
    res = pool([3], [10], transform="logit", estimator="REML", ci="z")
    with pytest.raises(ValueError, match="at least 2 studies"):
        res.influence()
    with pytest.raises(ValueError, match="at least 2 studies"):
        pool([3], [10], estimator="GLMM").influence()


# -- GLMM ------------------------------------------------------------------------------------

GLMM_CASES = {
    "k2": ([4, 7], [10, 12]),
    "k3": ([12, 30, 7], [40, 55, 30]),
    "zero-events": ([0, 0, 1, 2, 0], [10, 12, 15, 20, 8]),
}
#: columns that must be identical between a leave-one-out row and a separate pool() call
#: (same code path and the same deterministic optimiser, so equal to rounding)
LOO_COLUMNS = ["k", "estimate", "se", "proportion", "ci_low", "ci_high", "tau2", "i2", "q"]


def _assert_row_is_fit(row: pd.Series[Any], fit: PoolResult, where: str) -> None:
    for col in LOO_COLUMNS:
        ours, ref = float(row[col]), float(getattr(fit, col))
        assert (math.isnan(ours) and math.isnan(ref)) or math.isclose(
            ours, ref, rel_tol=1e-12, abs_tol=1e-15
        ), (where, col, ours, ref)
    for col in ("pi_low", "pi_high"):
        value = getattr(fit, col)
        assert (value is None and pd.isna(row[col])) or math.isclose(row[col], value), where
    assert row["warnings"] == "; ".join(fit.warnings), where


@pytest.mark.parametrize("name", sorted(GLMM_CASES))
@pytest.mark.parametrize("ci", ["z", "t"])
def test_glmm_leave_one_out_is_pool_without_the_study(name: str, ci: str) -> None:
    xi, ni = GLMM_CASES[name]
    res = pool(xi, ni, estimator="GLMM", ci=ci)
    assert res.estimator == "GLMM"
    loo = res.leave_one_out()
    assert len(loo) == len(xi)
    for i in range(len(xi)):
        keep = [j for j in range(len(xi)) if j != i]
        fit = pool(
            [xi[j] for j in keep],
            [ni[j] for j in keep],
            labels=[f"Study {j + 1}" for j in keep],
            estimator="GLMM",
            ci=ci,
        )
        assert fit.estimator == "GLMM"  # a real GLMM refit, not the REML fallback
        assert loo["label"][i] == f"Study {i + 1}"
        _assert_row_is_fit(loo.iloc[i], fit, f"{name} without {i}")
    # the refits use the GLMM: with two or more studies left they differ from the
    # inverse-variance REML refits (with one study left, without 0 or all events, both are
    # the study's own logit and its binomial variance)
    if len(xi) >= 3:
        iv = pool(xi, ni, estimator="REML", ci=ci).leave_one_out()
        assert not np.allclose(loo["estimate"], iv["estimate"], rtol=1e-6)


def test_glmm_refits_with_one_or_two_studies_left_carry_warnings() -> None:
    loo2 = pool([4, 7], [10, 12], estimator="GLMM").leave_one_out()
    assert (loo2["k"] == 1).all()
    assert loo2["warnings"].str.contains("k = 1").all()
    assert (loo2["tau2"] == 0.0).all()
    assert loo2["q"].isna().all()  # no heterogeneity test for one study, and it says so
    assert loo2["warnings"].str.contains("no heterogeneity test").all()
    loo3 = pool([12, 30, 7], [40, 55, 30], estimator="GLMM").leave_one_out()
    assert (loo3["k"] == 2).all()
    assert loo3["warnings"].str.contains("k = 2").all()


def test_glmm_cumulative_is_pool_of_the_first_studies() -> None:
    xi, ni = [3, 6, 10, 1, 7], [11, 17, 21, 6, 15]
    order = [4, 2, 0, 3, 1]
    res = pool(xi, ni, estimator="GLMM", ci="t")
    cum = res.cumulative(order)
    assert cum["label"].tolist() == [f"Study {i + 1}" for i in order]
    for j in range(1, len(xi) + 1):
        seq = order[:j]
        fit = pool(
            [xi[i] for i in seq],
            [ni[i] for i in seq],
            labels=[f"Study {i + 1}" for i in seq],
            estimator="GLMM",
            ci="t",
        )
        assert fit.estimator == "GLMM"
        _assert_row_is_fit(cum.iloc[j - 1], fit, f"step {j}")
    # the last step is the full fit
    assert math.isclose(cum["estimate"].iloc[-1], res.estimate, rel_tol=1e-9)


def test_glmm_refit_that_falls_back_is_reported() -> None:
    """Deleting the only study with events between 0 and n leaves a GLMM with no finite
    maximum: the leave-one-out row is pool()'s fallback model and says so; influence()
    gives that row no values and says why."""
    res = pool([0, 3], [5, 8], estimator="GLMM")
    loo = res.leave_one_out()
    assert loo["warnings"][1].startswith("GLMM did not converge")
    inf = res.influence()
    assert np.isnan(inf["cook.d"][1])
    assert np.isnan(inf["rstudent"][1])
    assert "no GLMM without this study" in inf["warnings"][1]
    assert np.isfinite(inf["cook.d"][0])
    assert not inf["inf"][1]


@pytest.mark.parametrize("name", sorted(DATA["glmm"]))
def test_glmm_influence_matches_metafor_refits(name: str) -> None:
    ref = DATA["glmm"][name]
    res = pool(ref["events"], ref["totals"], estimator="GLMM", ci="t")
    assert res.estimator == "GLMM"
    inf = res.influence()
    for col in ("estimate.del", "se.del", "tau2.del", "QE.del", "rstudent", "cook.d", "cov.r"):
        ours = inf[col].to_numpy(dtype=np.float64)
        theirs = np.array(ref[col], dtype=np.float64)
        assert np.all(np.abs(ours - theirs) <= GLMM_TOL * np.maximum(1.0, np.abs(theirs))), (
            col,
            ours.tolist(),
            theirs.tolist(),
        )
    # no inverse-variance weights: those columns are left out, with the reason attached
    for col in ("hat", "weight", "dffits", "dfbs"):
        assert col not in inf.columns, col
        assert "inverse-variance weight" in inf.attrs["omitted"][col]
    assert not inf.drop(columns=["inf", "warnings", "label"]).isna().all().any()
    # the GLMM flag is Cook's distance above the median of chi-square(1)
    assert inf["inf"].tolist() == (np.array(ref["cook.d"]) > 0.454936423119572).tolist()
