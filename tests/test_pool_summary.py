"""What the metaprop-style summary prints, against metafor, and how it reads.

Reference values: ``tests/fixtures/metafor/make_summary_reference.R`` (metafor's
``confint`` for τ², τ, I² and H², ``rma(method="EE")`` and ``rma.glmm(method="EE")`` for the
common-effect estimates, separate subgroup fits for the between-subgroup Q). R is not
needed to run these tests.

Tolerances (relative, with an absolute floor for values at 0), as in
``test_pool_metafor.py``:

* 1e-6 for closed forms (the common-effect estimates, closed-form τ² estimators);
* 1e-4 for the iterative τ² estimators (REML, ML, EB, PM);
* 1e-3 relative and 3e-4 absolute for the Q-profile bounds and what is derived from them
  (metafor's ``uniroot(tol = eps^0.25)``);
* the GLMM's common-effect se and CI: 2e-5 (metafor fits it with ``glm()``, IRLS stopped at
  a relative deviance change of 1e-8; ours is the closed form);
* the GLMM's I² and the between-subgroup Q of GLMM subgroups: 1e-3 relative (metafor's
  ``rma.glmm`` optimiser stops at its default tolerances; see ``test_glmm.py``).
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import pytest

import metaresp
from metaresp.errors import StatisticalWarning
from metaresp.pooling import pool

DATA: dict[str, Any] = json.loads(
    (Path(__file__).parent / "fixtures" / "metafor" / "summary_reference.json").read_text()
)
ITERATIVE = {"REML", "ML", "EB", "PM"}


def close(ours: float | None, theirs: float | None, rtol: float, atol: float = 1e-10) -> bool:
    if theirs is None:
        return ours is None
    if ours is None:
        return False
    return abs(ours - theirs) <= max(atol, rtol * abs(theirs))


@pytest.fixture(autouse=True)
def _quiet() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StatisticalWarning)
        yield


def test_reference_grid_is_complete() -> None:
    assert DATA["metafor_version"]
    for ds in DATA["datasets"].values():
        assert set(ds["transforms"]) == {"logit", "freeman-tukey", "arcsine", "raw", "log"}
        for t in ds["transforms"].values():
            assert set(t["estimators"]) == {"DL", "REML", "ML", "PM", "SJ", "HE", "EB", "HS"}
    assert len(DATA["datasets"]) >= 6
    assert len(DATA["subgroups"]) >= 2


@pytest.mark.parametrize("name", sorted(DATA["datasets"]))
def test_heterogeneity_intervals_match_metafor_confint(name: str) -> None:
    ds = DATA["datasets"][name]
    problems: list[str] = []
    for tname, t in ds["transforms"].items():
        for ename, ref in t["estimators"].items():
            res = pool(ds["events"], ds["totals"], transform=tname, estimator=ename, ci="z")
            where = f"{name}/{tname}/{ename}"
            rtol = 1e-4 if ename in ITERATIVE else 1e-6
            if not close(res.tau, math.sqrt(ref["tau2"]), max(rtol, 1e-6), 1e-6):
                problems.append(f"{where} tau: {res.tau} vs {math.sqrt(ref['tau2'])}")
            pairs = {
                "tau2_ci": (res.tau2_ci_low, res.tau2_ci_high),
                "tau_ci": (res.tau_ci_low, res.tau_ci_high),
                "i2_ci": (res.i2_ci_low, res.i2_ci_high),
                "h2_ci": (
                    None if res.h_ci_low is None else res.h_ci_low**2,
                    None if res.h_ci_high is None else res.h_ci_high**2,
                ),
            }
            for key, ours in pairs.items():
                for side, o, r in zip(("low", "high"), ours, ref[key], strict=True):
                    atol = 3e-4 if key != "i2_ci" else 3e-2  # I² is in percent
                    if not close(o, r, 1e-3, atol):
                        problems.append(f"{where} {key} {side}: {o} vs {r}")
    assert not problems, "\n".join(problems[:20])


@pytest.mark.parametrize("name", sorted(DATA["datasets"]))
def test_common_effect_matches_metafor_ee(name: str) -> None:
    ds = DATA["datasets"][name]
    for tname, t in ds["transforms"].items():
        ref = t["common"]
        res = pool(ds["events"], ds["totals"], transform=tname, estimator="REML")
        common = res.common_effect()
        assert common is not None
        assert close(common.estimate, ref["estimate"], 1e-6), (tname, common, ref)
        assert close(common.se, ref["se"], 1e-6), (tname, common, ref)
        fe = pool(ds["events"], ds["totals"], transform=tname, estimator="FE")
        assert close(fe.i2, ref["i2"], 1e-6)
        assert close(fe.h2, ref["h2"], 1e-6)
        assert close(fe.estimate_ci_low, ref["ci_low"], 1e-6)
        assert close(fe.estimate_ci_high, ref["ci_high"], 1e-6)


@pytest.mark.parametrize("name", sorted(DATA["glmm"]))
def test_glmm_common_effect_matches_rma_glmm_ee(name: str) -> None:
    ref = DATA["glmm"][name]
    res = pool(ref["events"], ref["totals"], estimator="GLMM")
    common = res.common_effect()
    assert common is not None
    assert common.model == "GLMM"
    r = ref["common"]
    # metafor fits the common-effect binomial model with glm() (IRLS, stopping at a relative
    # deviance change of 1e-8), so its se carries ~1e-6 relative noise; ours is closed form
    assert close(common.estimate, r["estimate"], 1e-6)
    assert close(common.se, r["se"], 2e-5)
    lo = math.log(common.ci_low / (1 - common.ci_low))  # type: ignore[operator]
    hi = math.log(common.ci_high / (1 - common.ci_high))  # type: ignore[operator]
    assert close(lo, r["ci_low"], 2e-5, 1e-5)
    assert close(hi, r["ci_high"], 2e-5, 1e-5)
    if res.estimator == "GLMM" and ref["i2"] is not None:
        assert close(res.i2, ref["i2"], 1e-3, 1e-3)
        assert close(res.h2, ref["h2"], 1e-3, 1e-3)


def test_common_effect_after_a_glmm_fallback_is_the_fallback_family() -> None:
    res = pool([0, 0, 0], [5, 6, 7], estimator="GLMM")
    assert res.fallback
    common = res.common_effect()
    assert common is not None
    assert common.model == "inverse variance"
    assert pool([0, 0, 0], [5, 6, 7], estimator="FE").common_effect() is None


@pytest.mark.parametrize("name", sorted(DATA["subgroups"]))
def test_pool_subgroups_matches_separate_metafor_fits(name: str) -> None:
    sg = DATA["subgroups"][name]
    for key, ref in sg["iv"].items():
        tname, ename, cname = key.split("/")
        res = metaresp.pool_subgroups(
            sg["events"], sg["totals"], sg["groups"], transform=tname, estimator=ename, ci=cname
        )
        assert list(res.names) == ref["subgroups"], key
        rtol = 1e-4 if ename in ITERATIVE else 1e-6
        for i, sub in enumerate(ref["subgroups"]):
            fit = res[sub]
            assert fit is not None
            assert close(fit.estimate, ref["estimate"][i], rtol), (key, sub)
            assert close(fit.se, ref["se"][i], rtol), (key, sub)
            assert close(fit.tau2, ref["tau2"][i], rtol, 1e-8), (key, sub)
        assert res.df_between == ref["df"]
        assert close(res.q_between, ref["q"], rtol), (key, res.q_between, ref["q"])
        assert close(res.p_between, ref["pvalue"], rtol), key
    ref = sg["glmm"]
    res = metaresp.pool_subgroups(sg["events"], sg["totals"], sg["groups"], estimator="GLMM")
    assert close(res.q_between, ref["q"], 1e-3), (res.q_between, ref["q"])
    assert res.df_between == ref["df"]


def test_pool_subgroups_result_is_frozen_and_tabulates() -> None:
    res = metaresp.pool_subgroups(
        [22, 7, 24, 5, 7, 3], [28, 10, 37, 11, 21, 9], ["G", "G", "B", "B", "B", "C"]
    )
    with pytest.raises(AttributeError):
        res.q_between = 0.0  # type: ignore[misc]
    frame = res.to_frame()
    assert frame["subgroup"].tolist() == ["G", "B", "C", "overall"]
    assert frame["pooled"].tolist() == [True, True, False, True]
    assert res["C"] is None
    assert res.tested == ("G", "B")  # the single-study subgroup is left out of the test
    assert any("single-study" in n for n in res.notes)
    assert json.loads(json.dumps(res.to_dict()))["test"]["df"] == 1
    text = res.summary()
    assert "C: one study (3/9), shown, not pooled" in text
    assert "test for subgroup differences" in text


def test_pool_subgroups_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="groups: 2 values for 3 studies"):
        metaresp.pool_subgroups([1, 2, 3], [5, 5, 5], ["a", "b"])
    with pytest.raises(ValueError, match="bogus: not an argument"):
        metaresp.pool_subgroups([1, 2], [5, 5], ["a", "b"], bogus=1)
    with pytest.raises(ValueError, match="estimator"):
        metaresp.pool_subgroups([1, 2], [5, 5], ["a", "b"], estimator="XX")
    with pytest.raises(ValueError, match=r"study 2 .* has no subgroup"):
        metaresp.pool_subgroups([1, 2], [5, 5], ["a", " "])


# -- the text ---------------------------------------------------------------------------------

EVENTS, TOTALS = [22, 7, 24, 5, 7], [28, 10, 37, 11, 21]


def test_summary_prints_what_metaprop_prints_for_iv() -> None:
    text = pool(EVENTS, TOTALS, estimator="REML").summary()
    ref = DATA["datasets"]["five-small"]["transforms"]["logit"]["estimators"]["REML"]
    assert "common effect (inverse variance): 60.2% (95% CI 50.0 to 69.5), z interval" in text
    assert "random effects (REML τ²):" in text
    # metafor confint: tau^2 0.4277 [0, 5.0865], I^2 64.56% [0, 95.59], H^2 [1, 22.66]
    assert f"I² = 64.6% (95% CI 0.0 to {ref['i2_ci'][1]:.1f})" in text
    assert f"H = 1.68 (95% CI 1.00 to {math.sqrt(ref['h2_ci'][1]):.2f})" in text
    assert "τ² = 0.4277 (95% CI 0 to 5.087, Q-profile), τ = 0.6540 (95% CI 0 to 2.255)" in text
    assert "Cochran's Q = 11.11, df = 4, p = 0.03" in text


def test_summary_glmm_names_wald_and_lrt_and_has_no_weights() -> None:
    res = pool(EVENTS, TOTALS, estimator="GLMM")
    text = res.summary()
    assert "common effect (GLMM):" in text
    assert "Wald Q = 11.11, df = 4, p = 0.03; LRT = 12.17, df = 4, p = 0.02" in text
    assert "no CI: metafor has no confidence interval" in text
    assert "Cochran" not in text


def test_summary_explains_large_i2_with_large_p() -> None:
    res = pool([0, 3, 0], [5, 3, 4], estimator="REML")
    assert res.i2 > 50
    assert res.q_pvalue > 0.05
    assert "no contradiction" in res.summary()
    assert "no contradiction" not in pool(EVENTS, TOTALS, estimator="REML").summary()


def test_summary_fe_has_z_interval_and_no_prediction_interval() -> None:
    text = pool(EVENTS, TOTALS, estimator="FE").summary()
    assert "z interval" in text
    assert "prediction interval:              not shown" in text
    assert "random effects" not in text


def test_summary_bayes_says_credible_interval() -> None:
    text = pool(EVENTS, TOTALS, estimator="BAYES").summary()
    assert "95% CrI" in text
    assert "95% CI" not in text


def test_summary_after_fallback_names_the_model_fitted_and_advice() -> None:
    text = pool([0, 3, 0], [5, 3, 4], estimator="GLMM").summary()
    first = text.splitlines()[0]
    assert "REML" in first
    assert "GLMM" not in first
    assert "could not be fitted: every study has 0 or all events" in text
    assert 'estimator="REML"' in text


def test_summary_of_one_study_names_the_z_interval_it_used() -> None:
    res = pool([3], [10], estimator="REML")
    text = res.summary()
    assert "k = 1 study," in text
    assert "z interval (one study" in text
    assert "Hartung-Knapp interval," not in text
