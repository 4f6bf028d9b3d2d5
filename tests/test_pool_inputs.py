"""pool(): argument checking, edge cases, GLMM wiring and fallback, result methods, and
property-based tests over random valid inputs."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import FrozenInstanceError, dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

import metaresp.glmm
from metaresp.errors import ConvergenceError, InputError
from metaresp.models import ESTIMATORS as MODEL_REGISTRY
from metaresp.pooling import CIS, ESTIMATORS, pool
from metaresp.transforms import TRANSFORMS, effect_sizes

EVENTS = [3, 6, 10, 1, 0, 12]
TOTALS = [11, 17, 21, 6, 9, 12]
IV = [e for e in ESTIMATORS if MODEL_REGISTRY[e].family == "iv"]


# -- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "argument", "allowed"),
    [
        ({"transform": "probit"}, "transform", '"logit"'),
        ({"estimator": "MCMC"}, "estimator", '"REML"'),
        ({"estimator": "dl"}, "estimator", '"DL"'),
        ({"ci": "wald"}, "ci", '"hksj-adhoc"'),
        ({"estimator": "GLMM", "transform": "raw"}, "estimator", 'transform="logit"'),
        ({"estimator": "GLMM", "ci": "hksj"}, "ci", '"z" or "t"'),
        ({"estimator": "GLMM", "ci": "hksj-adhoc"}, "ci", '"z" or "t"'),
        ({"level": 1.0}, "level", "between 0 and 1"),
        ({"level": 0}, "level", "between 0 and 1"),
        ({"level": 95}, "level", "between 0 and 1"),
        ({"level": True}, "level", "between 0 and 1"),
        ({"labels": ["a", "b"]}, "labels", "one per study"),
    ],
)
def test_bad_options_name_the_argument(kwargs: dict[str, Any], argument: str, allowed: str) -> None:
    args: dict[str, Any] = {"estimator": "REML", "ci": "t", **kwargs}
    with pytest.raises(ValueError, match=argument) as info:
        pool(EVENTS, TOTALS, **args)
    assert isinstance(info.value, InputError)
    assert allowed in str(info.value)


@pytest.mark.parametrize(
    ("events", "totals", "message"),
    [
        ([3, 12], [10, 10], "events[1]: 12 events exceed the total of 10"),
        ([-1, 2], [10, 10], "events[0]: must not be negative"),
        ([1.5, 2], [10, 10], "events[0]: must be a whole number"),
        ([float("nan"), 2], [10, 10], "events[0]: is missing (NaN)"),
        ([True, 2], [10, 10], "events[0]: must be a whole number, not a boolean"),
        ([1, 2], [10, np.bool_(True)], "totals[1]: must be a whole number, not a boolean"),
        (["3", 2], [10, 10], "events[0]: must be a whole number"),
        ([1, 2], [10, 0], "totals[1]: must be at least 1"),
        ([1, 2], [10, -4], "totals[1]: must be at least 1"),
        ([], [], "empty input"),
        ([1, 2, 3], [10, 10], "unequal lengths"),
        (5, [10], "events: must be a sequence"),
    ],
)
def test_bad_counts(events: Any, totals: Any, message: str) -> None:
    with pytest.raises(InputError) as info:
        pool(events, totals, estimator="DL")
    assert any(message in p for p in info.value.problems), info.value.problems


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(InputError) as info:
        pool([1, -1, 20], [10, 10, 10], transform="probit", estimator="XX", ci="q")
    assert len(info.value.problems) == 5


def test_whole_floats_and_numpy_integers_are_accepted() -> None:
    a = pool([3.0, 6.0, 10.0], [11.0, 17.0, 21.0], estimator="DL")
    b = pool(np.array([3, 6, 10], dtype=np.int32), np.array([11, 17, 21]), estimator="DL")
    assert a.estimate == b.estimate
    assert a.events == (3, 6, 10)


# -- small k ---------------------------------------------------------------------------------


def test_k1_gives_the_study_with_a_warning() -> None:
    res = pool([4], [10], estimator="REML", ci="hksj", transform="logit")
    assert res.k == 1
    assert res.tau2 == 0.0
    assert res.pi_low is None
    assert res.pi_high is None
    assert res.tau2_ci_low is None
    assert (res.q, res.q_pvalue, res.i2, res.h2) == (0.0, 1.0, 0.0, 1.0)
    assert res.proportion == pytest.approx(0.4)
    # the study's own logit CI with a z critical value (metafor switches to z for k = 1)
    half = 1.959963984540054 * math.sqrt(1 / 4 + 1 / 6)
    assert res.estimate_ci_high == pytest.approx(math.log(4 / 6) + half)
    assert any("k = 1" in w for w in res.warnings)


def test_k2_has_no_prediction_interval_but_a_tau2_ci() -> None:
    res = pool([4, 7], [10, 12], estimator="REML", ci="t")
    assert res.pi_low is None
    assert res.pi_high is None
    assert res.tau2_ci_low is not None
    assert res.df == 1


def test_fe_has_no_tau2_ci_and_zero_tau2() -> None:
    res = pool(EVENTS, TOTALS, estimator="FE", ci="z")
    assert res.tau2 == 0.0
    assert res.tau2_ci_low is None
    assert res.tau2_ci_high is None


def test_hksj_on_identical_studies_warns_about_zero_width() -> None:
    res = pool([5, 5, 5], [10, 10, 10], estimator="DL", ci="hksj")
    assert res.ci_low == res.ci_high == pytest.approx(0.5)
    assert any("zero width" in w for w in res.warnings)
    adhoc = pool([5, 5, 5], [10, 10, 10], estimator="DL", ci="hksj-adhoc")
    assert adhoc.ci_low < 0.5 < adhoc.ci_high


def test_raw_bounds_outside_unit_interval_are_clipped_with_a_warning() -> None:
    res = pool([0, 1, 0], [5, 8, 4], transform="raw", estimator="DL", ci="t")
    assert res.estimate_ci_low < 0.0
    assert res.ci_low == 0.0
    assert any("outside [0, 1]" in w for w in res.warnings)


# -- GLMM wiring and fallback -------------------------------------------------------------------


@dataclass(frozen=True)
class FakeGlmmFit:
    mu: float
    se: float
    tau2: float
    converged: bool
    loglik: float
    q_wald: float
    q_wald_df: int
    q_wald_pvalue: float
    q_lrt: float
    q_lrt_pvalue: float
    warnings: tuple[str, ...]


def test_glmm_result_is_wired_as_specified(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeGlmmFit(-0.5, 0.3, 0.4, True, -20.0, 12.5, 5, 0.03, 9.0, 0.001, ("note",))
    monkeypatch.setattr(metaresp.glmm, "fit_glmm", lambda xi, ni, *, nagq=7: fake)
    res = pool(EVENTS, TOTALS, estimator="GLMM", ci="t")
    k = len(EVENTS)
    t = stats.t.ppf(0.975, k - 1)
    assert res.estimate_ci_low == pytest.approx(-0.5 - t * 0.3, rel=1e-12)
    assert res.ci_high == pytest.approx(1 / (1 + math.exp(-(-0.5 + t * 0.3))), rel=1e-12)
    half = stats.t.ppf(0.975, k - 2) * math.sqrt(0.4 + 0.09)
    assert res.estimate_pi_high == pytest.approx(-0.5 + half, rel=1e-12)
    # I² with the typical variance of the continuity-corrected logit vi (rma.glmm)
    x = np.array(EVENTS, dtype=float)
    n = np.array(TOTALS, dtype=float)
    corr = np.where((x == 0) | (x == n), 0.5, 0.0)
    vi = 1 / (x + corr) + 1 / (n - x + corr)
    w = 1 / vi
    vt = (k - 1) / (w.sum() - (w**2).sum() / w.sum())
    assert res.i2 == pytest.approx(100 * 0.4 / (0.4 + vt), rel=1e-12)
    assert res.h2 == pytest.approx(0.4 / vt + 1, rel=1e-12)
    assert (res.q, res.q_pvalue) == (12.5, 0.03)
    assert res.weights is None
    assert res.tau2_ci_low is None
    assert "note" in res.warnings
    assert res.estimator == "GLMM"
    z = pool(EVENTS, TOTALS, estimator="GLMM", ci="z")
    assert z.estimate_ci_low == pytest.approx(-0.5 - 1.959963984540054 * 0.3, rel=1e-12)


@pytest.mark.parametrize("how", ["raises", "not-converged"])
def test_glmm_failure_falls_back_to_reml_logit_hksj(
    monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    def failing(xi: Any, ni: Any, *, nagq: int = 7) -> FakeGlmmFit:
        if how == "raises":
            raise ConvergenceError("no convergence")
        return FakeGlmmFit(
            math.nan,
            math.nan,
            math.nan,
            False,
            math.nan,
            math.nan,
            5,
            math.nan,
            math.nan,
            math.nan,
            (),
        )

    monkeypatch.setattr(metaresp.glmm, "fit_glmm", failing)
    res = pool(EVENTS, TOTALS, estimator="GLMM", ci="t")
    ref = pool(EVENTS, TOTALS, transform="logit", estimator="REML", ci="hksj-adhoc")
    assert (res.estimator, res.transform, res.ci) == ("REML", "logit", "hksj-adhoc")
    assert res.estimate == ref.estimate
    assert res.ci_low == ref.ci_low
    assert any("GLMM did not converge" in w and "REML" in w for w in res.warnings)


# -- result object ---------------------------------------------------------------------------


def test_result_is_frozen_and_json_ready() -> None:
    res = pool(EVENTS, TOTALS, estimator="REML", ci="hksj", labels=list("abcdef"))
    with pytest.raises(FrozenInstanceError):
        res.tau2 = 1.0  # type: ignore[misc]
    d = res.to_dict()
    text = json.dumps(d, allow_nan=False)
    assert json.loads(text)["labels"] == list("abcdef")
    fe = pool(EVENTS, TOTALS, estimator="FE").to_dict()
    assert fe["tau2_ci_low"] is None
    assert all(type(v) in (int, float, str, bool, list, type(None)) for v in d.values())


def test_studies_table_has_exact_clopper_pearson_intervals() -> None:
    res = pool(EVENTS, TOTALS, estimator="DL", ci="z", level=0.9)
    table = res.studies()
    assert list(table.columns) == [
        "label",
        "events",
        "total",
        "proportion",
        "ci_low",
        "ci_high",
        "weight",
    ]
    for (_, row), x, n in zip(table.iterrows(), EVENTS, TOTALS, strict=True):
        lo = 0.0 if x == 0 else stats.beta.ppf(0.05, x, n - x + 1)
        hi = 1.0 if x == n else stats.beta.ppf(0.95, x + 1, n - x)
        assert row["ci_low"] == pytest.approx(lo, abs=1e-12)
        assert row["ci_high"] == pytest.approx(hi, abs=1e-12)
    assert table["weight"].sum() == pytest.approx(100.0)


def test_leave_one_out_and_cumulative_tables() -> None:
    res = pool(EVENTS, TOTALS, estimator="DL", ci="t", labels=list("abcdef"))
    loo = res.leave_one_out()
    needed = {
        "label",
        "k",
        "estimate",
        "se",
        "proportion",
        "ci_low",
        "ci_high",
        "pi_low",
        "pi_high",
        "tau2",
        "i2",
        "q",
    }
    assert needed <= set(loo.columns)
    assert loo["k"].tolist() == [5] * 6
    direct = pool(EVENTS[1:], TOTALS[1:], estimator="DL", ci="t")
    assert loo["proportion"].iloc[0] == direct.proportion
    cum = res.cumulative(order=[5, 4, 3, 2, 1, 0])
    assert needed <= set(cum.columns)
    assert cum["label"].tolist() == list("fedcba")
    assert cum["proportion"].iloc[-1] == pytest.approx(res.proportion, rel=1e-12)
    with pytest.raises(ValueError, match="order"):
        res.cumulative(order=[0, 0, 1, 2, 3, 4])


def test_summary_mentions_model_and_numbers() -> None:
    text = pool(EVENTS, TOTALS, estimator="REML", ci="hksj").summary()
    assert "REML" in text
    assert "τ² = " in text
    assert "I² = " in text


def test_importing_pooling_does_not_import_pandas() -> None:
    code = "import sys, metaresp.pooling; print('pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- properties ------------------------------------------------------------------------------


@st.composite
def studies(draw: st.DrawFn) -> tuple[list[int], list[int]]:
    k = draw(st.integers(min_value=1, max_value=12))
    totals = draw(st.lists(st.integers(1, 400), min_size=k, max_size=k))
    events = [draw(st.integers(0, n)) for n in totals]
    return events, totals


PROPERTY_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@PROPERTY_SETTINGS
@given(
    data=studies(),
    transform=st.sampled_from(TRANSFORMS),
    estimator=st.sampled_from(IV),
    ci=st.sampled_from(CIS),
    seed=st.integers(0, 2**32 - 1),
)
def test_random_valid_input_gives_a_sane_result(
    data: tuple[list[int], list[int]], transform: str, estimator: str, ci: str, seed: int
) -> None:
    events, totals = data
    res = pool(events, totals, transform=transform, estimator=estimator, ci=ci)
    numbers = [
        res.proportion,
        res.ci_low,
        res.ci_high,
        res.estimate,
        res.se,
        res.tau2,
        res.i2,
        res.h2,
        res.q,
        res.q_pvalue,
    ]
    if any(math.isnan(v) for v in numbers):
        assert res.warnings, "NaN without a recorded warning"
    else:
        assert 0.0 <= res.ci_low <= res.proportion <= res.ci_high <= 1.0
        if res.pi_low is not None and res.pi_high is not None:
            assert 0.0 <= res.pi_low <= res.pi_high <= 1.0
        assert res.tau2 >= 0.0
    # invariance to study order
    perm = np.random.default_rng(seed).permutation(len(events))
    shuffled = pool(
        [events[i] for i in perm],
        [totals[i] for i in perm],
        transform=transform,
        estimator=estimator,
        ci=ci,
    )
    for a, b in [
        (res.estimate, shuffled.estimate),
        (res.tau2, shuffled.tau2),
        (res.ci_low, shuffled.ci_low),
        (res.ci_high, shuffled.ci_high),
        (res.q, shuffled.q),
    ]:
        assert a == pytest.approx(b, rel=1e-6, abs=1e-9)


@PROPERTY_SETTINGS
@given(data=studies(), transform=st.sampled_from(TRANSFORMS))
def test_effect_sizes_are_finite_with_positive_variances(
    data: tuple[list[int], list[int]], transform: str
) -> None:
    events, totals = data
    yi, vi = effect_sizes(transform, np.array(events), np.array(totals))
    assert np.isfinite(yi).all()
    assert (vi > 0).all()
