"""The one estimate row: built from a subgroup's fit, read by every output.

Expected values come from the engine's own result (``metaresp.pool`` on the same counts:
the row must carry them unchanged), from the beta distribution for a single study's exact
interval (Clopper & Pearson 1934), and from hand-written key lists.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest
from scipy.stats import beta

import metaresp
from factories import DEFAULT_MODEL_JSON
from metaresp import formatting as fmt
from metaresp.analysis import GroupResult, Record, pool_groups
from metaresp.estimates import (
    EstimateRow,
    estimate_row,
    fallback_reason,
    fitted_model,
    is_fallback,
    q_kind,
    summary_dict,
    text_lines,
)
from metaresp.forestdata import PooledRow
from metaresp.plan import ModelSettings, resolve_model
from metaresp.pooling import PoolResult


def record(i: int, events: int, total: int) -> Record:
    return Record(
        record_id=f"r{i}",
        study=f"S{i}",
        group_id=f"g{i}",
        group="",
        cohort=f"c{i}",
        outcome="ORR",
        population="",
        setting="",
        unit="patients",
        events=events,
        total=total,
        label=f"Study {i}",
    )


def group(counts: list[tuple[int, int]], **model: Any) -> tuple[GroupResult, Any]:
    m = resolve_model(ModelSettings.model_validate(model))
    pooled = pool_groups({"A": [record(i, x, n) for i, (x, n) in enumerate(counts)]}, m)
    return pooled.groups[0], m


COUNTS = [(22, 28), (7, 10), (24, 37), (5, 11), (7, 21)]


def test_pooled_row_carries_the_fit_unchanged() -> None:
    g, model = group(COUNTS, estimator="REML", ci="hksj")
    row = estimate_row(g, level=0.95, requested=model, analysis="orr", set_aside=2)
    direct = metaresp.pool(
        [x for x, _ in COUNTS], [n for _, n in COUNTS], estimator="REML", ci="hksj"
    )
    assert (row.proportion, row.ci_low, row.ci_high) == (
        direct.proportion,
        direct.ci_low,
        direct.ci_high,
    )
    assert (row.pi_low, row.pi_high, row.tau2, row.i2, row.q, row.q_pvalue) == (
        direct.pi_low,
        direct.pi_high,
        direct.tau2,
        direct.i2,
        direct.q,
        direct.q_pvalue,
    )
    assert row.q_df == 4
    assert row.q_kind == "cochran"
    assert (row.k, row.responders, row.patients) == (5, 65, 107)
    assert row.records == ("r0", "r1", "r2", "r3", "r4")
    assert (row.analysis, row.subgroup, row.kind, row.set_aside) == ("orr", "A", "subgroup", 2)
    assert not row.fallback
    assert row.fallback_reason is None
    assert row.fitted is not None
    assert row.fitted.estimator == "REML"
    assert row.model_text == "REML (logit), Hartung-Knapp CI"
    assert not row.few_studies
    assert row.pooled
    assert not row.single


def test_glmm_row_reports_a_wald_q_and_few_studies() -> None:
    g, model = group(COUNTS[:3], estimator="GLMM")
    row = estimate_row(g, level=0.95, requested=model)
    assert row.q_kind == "wald"
    assert row.few_studies  # k = 3
    assert row.requested == row.fitted
    # metafor prints both heterogeneity tests of rma.glmm: the Wald and the LRT
    res = g.result
    assert res is not None
    assert (row.q_lrt, row.q_lrt_pvalue) == (res.q_lrt, res.q_lrt_pvalue)
    assert row.q_lrt is not None
    lrt = [line for line in text_lines(row) if line.startswith("likelihood-ratio test")]
    assert lrt == [
        "likelihood-ratio test of heterogeneity: " + fmt.lrt_test(res.q_lrt, 2, res.q_lrt_pvalue)
    ]


def test_single_study_row_has_the_exact_interval() -> None:
    g = GroupResult("B", (record(0, 3, 12),), None, "one study: shown, not pooled")
    row = estimate_row(g, level=0.90)
    assert row.single
    assert not row.pooled
    assert not row.few_studies
    assert row.proportion == pytest.approx(0.25)
    assert row.ci_low == pytest.approx(beta.ppf(0.05, 3, 10), rel=1e-10)
    assert row.ci_high == pytest.approx(beta.ppf(0.95, 4, 9), rel=1e-10)
    assert row.q is None
    assert row.fitted is None
    assert row.model_text == "not pooled (one study)"
    assert row.notes == ("one study: shown, not pooled",)
    assert text_lines(row) == ["one study: shown, not pooled"]


def test_glmm_fallback_is_recorded_with_the_model_fitted() -> None:
    # every study at 0%: no GLMM maximum
    g, model = group([(0, 5), (0, 7), (0, 9)], estimator="GLMM")
    assert g.result is not None
    row = estimate_row(g, level=0.95, requested=model)
    assert row.fallback
    assert row.fallback_reason is not None
    assert row.fallback_reason
    assert row.requested is not None
    assert row.requested.estimator == "GLMM"
    assert row.fitted is not None
    assert row.fitted.estimator != "GLMM"
    assert row.model_text.endswith("(fallback)")
    assert row.q_kind == "cochran"  # the fallback is an inverse-variance model
    assert any(line.startswith("model fitted: ") for line in text_lines(row))


def test_the_fit_is_read_from_the_result_fields_not_its_warnings() -> None:
    """A warning that mentions a fallback does not make one: the result's fields decide."""
    spec = SimpleNamespace(transform="logit", estimator="PM", ci="z", level=0.9)
    fake = cast(
        PoolResult,
        SimpleNamespace(
            warnings=("the model fell back",),
            fallback=False,
            fallback_reason="stale",
            fitted=spec,
            q_kind="wald",
            transform="logit",
            estimator="REML",
            ci="t",
            level=0.95,
        ),
    )
    assert not is_fallback(fake)
    assert fallback_reason(fake) is None
    assert fitted_model(fake).estimator == "PM"
    assert fitted_model(fake).level == 0.9
    assert q_kind(fake) == "wald"
    silent = cast(
        PoolResult,
        SimpleNamespace(
            warnings=(),
            fallback=True,
            fallback_reason="GLMM did not converge",
            fitted=spec,
            q_kind="none",
        ),
    )
    assert is_fallback(silent)
    assert fallback_reason(silent) == "GLMM did not converge"
    assert q_kind(silent) == "none"


def test_summary_keys_are_those_of_summary_json() -> None:
    g, _model = group(COUNTS)
    keys = {
        "subgroup",
        "pooled",
        "k",
        "patients",
        "responders",
        "estimate",
        "ci_low",
        "ci_high",
        "pi_low",
        "pi_high",
        "i2",
        "tau2",
        "q",
        "q_df",
        "q_pvalue",
        "mean",
        "mean_ci_low",
        "mean_ci_high",
        "threshold",
        "prob_above",
        "model",
        "warnings",
        "records",
        "combined",
    }
    assert set(summary_dict(estimate_row(g, level=0.95))) == keys
    # the default model is the Bayesian one, its priors written out
    assert summary_dict(estimate_row(g, level=0.95))["model"] == DEFAULT_MODEL_JSON
    glmm, _ = group(COUNTS, estimator="GLMM")
    assert summary_dict(estimate_row(glmm, level=0.95))["model"] == {
        "transform": "logit",
        "estimator": "GLMM",
        "ci": "t",
        "level": 0.95,
    }


def test_forest_pooled_row_is_the_estimate_row() -> None:
    assert PooledRow is EstimateRow
    row = PooledRow("Random effects model", 3, 10, 21, 0.44, 0.08, 0.88)
    assert (row.events, row.total, row.level, row.q_kind) == (10, 21, 0.95, "cochran")


def test_plain_words_drop_internal_names() -> None:
    from metaresp.estimates import plain_words

    text = plain_words(
        "GLMM: the optimiser stopped at tau² = 0; try nagq = 15 or an inverse-variance "
        "model (estimator='REML'); the Wald heterogeneity statistic q_wald; HKSJ-ADHOC CI"
    )
    for internal in ("q_wald", "estimator=", "nagq", "HKSJ", "tau"):
        assert internal not in text
    assert "τ² = 0" in text
    assert "(REML)" in text
    assert "Hartung-Knapp CI" in text


def test_each_note_is_said_once_naming_its_estimates() -> None:
    from metaresp.estimates import plain_notes

    warning = "GLMM with k = 2: tau² is estimated from two studies and is very imprecise"
    rows = [
        PooledRow("Pooled", 2, 1, 9, 0.1, 0.0, 0.5, subgroup=name, warnings=(warning,))
        for name in ("A", "B", "C")
    ]
    rows.append(PooledRow("Pooled", 4, 1, 9, 0.1, 0.0, 0.5, subgroup="D"))
    notes = plain_notes(rows)
    assert notes == [
        "GLMM with k = 2: τ² is estimated from two studies and is very imprecise (A; B; C)."
    ]


def test_forest_lists_studies_by_date_then_author_with_their_weights() -> None:
    from dataclasses import replace

    from metaresp.forestdata import build

    dated = [
        replace(record(0, 5, 10), label="Zed 2024", year=2024, date=(2024, 3, 0)),
        replace(record(1, 2, 9), label="Undated"),
        replace(record(2, 4, 8), label="Bal 2021", year=2021, date=(2021, 0, 0)),
        replace(record(3, 6, 12), label="Abe 2021", year=2021, date=(2021, 0, 0)),
    ]
    m = resolve_model(ModelSettings.model_validate({"estimator": "REML", "ci": "z"}))
    pooled = pool_groups({"A": dated}, m)
    data = build(pooled, title="t", outcome="ORR")
    studies = data.subgroups[0].studies
    assert [s.label for s in studies] == ["Abe 2021", "Bal 2021", "Zed 2024", "Undated"]
    res = pooled.groups[0].result
    assert res is not None
    assert res.weights is not None
    # each study keeps its own counts and weight after the reordering
    assert [(s.events, s.total, s.weight) for s in studies] == [
        (6, 12, res.weights[3]),
        (4, 8, res.weights[2]),
        (5, 10, res.weights[0]),
        (2, 9, res.weights[1]),
    ]
    assert data.level == 0.95
    assert data.footnotes[0] == "Study intervals: exact (Clopper-Pearson) 95% CI."


def test_common_effect_row_has_no_prediction_interval() -> None:
    from metaresp.analysis import GroupResult, Record
    from metaresp.estimates import estimate_row
    from metaresp.pooling import pool

    recs = tuple(
        Record(f"r{i}", f"s{i}", f"g{i}", "g", f"c{i}", "ORR", "", "", "", x, n, f"s{i}")
        for i, (x, n) in enumerate([(3, 10), (5, 12), (7, 11)])
    )
    res = pool([3, 5, 7], [10, 12, 11], estimator="FE")
    assert res.pi_low is not None  # the result keeps it; the row shown does not
    row = estimate_row(GroupResult("g", recs, res), level=0.95)
    assert (row.pi_low, row.pi_high) == (None, None)
    reml = pool([3, 5, 7], [10, 12, 11], estimator="REML")
    assert estimate_row(GroupResult("g", recs, reml), level=0.95).pi_low == reml.pi_low


# Four studies whose rates vary widely (τ² about 5 on the logit scale): the GLMM's pooled
# rate is the median study's, far from the mean rate across studies.
SPREAD = [(2, 20), (18, 20), (19, 20), (20, 21)]


def test_mean_rate_is_carried_and_said_where_it_differs_from_the_median() -> None:
    g, model = group(SPREAD, estimator="GLMM", ci="t")
    row = estimate_row(g, level=0.95, requested=model)
    direct = metaresp.pool([x for x, _ in SPREAD], [n for _, n in SPREAD], estimator="GLMM")
    assert direct.mean_proportion is not None
    assert (row.mean_proportion, row.mean_ci_low, row.mean_ci_high) == (
        direct.mean_proportion,
        direct.mean_ci_low,
        direct.mean_ci_high,
    )
    assert abs(direct.mean_proportion - direct.proportion) > 0.05
    assert row.mean_differs
    said = " ".join(text_lines(row))
    assert f"mean response rate across studies is {fmt.percent(direct.mean_proportion)}" in said
    assert summary_dict(row)["mean"] == direct.mean_proportion


def test_mean_rate_is_not_said_where_it_is_close_to_the_median() -> None:
    g, model = group(COUNTS, estimator="GLMM", ci="t")
    row = estimate_row(g, level=0.95, requested=model)
    assert row.mean_proportion is not None
    assert abs(row.mean_proportion - row.proportion) <= 0.05
    assert not row.mean_differs
    assert not any("mean response rate" in line for line in text_lines(row))


def test_bayesian_probability_above_the_threshold_reaches_the_row() -> None:
    m = resolve_model(ModelSettings.model_validate({"estimator": "BAYES"}))
    recs = [record(i, x, n) for i, (x, n) in enumerate(COUNTS)]
    pooled = pool_groups({"A": recs}, m, threshold=0.5)
    row = estimate_row(pooled.groups[0], level=0.95, requested=m)
    direct = metaresp.pool(
        [x for x, _ in COUNTS], [n for _, n in COUNTS], estimator="BAYES", threshold=0.5
    )
    assert row.threshold == 0.5
    assert row.prob_above == direct.prob_above
    assert any("exceeds 50.0%" in line for line in text_lines(row))


def test_an_interval_wider_than_90_points_is_explained() -> None:
    """Two studies under the GLMM's t interval (1 df): the sentence names the degrees of
    freedom and the critical value, t(0.975, 1) = 12.7 (any t table)."""
    g, model = group([(6, 7), (2, 5)], estimator="GLMM", ci="t")
    row = estimate_row(g, level=0.95, requested=model)
    assert row.ci_high - row.ci_low > 0.9
    lines = text_lines(row)
    assert any("1 degree of freedom (critical value 12.7" in line for line in lines)
    narrow, model = group(COUNTS, estimator="GLMM", ci="t")
    assert not any(
        "degree of freedom" in line or "interval is wide" in line
        for line in text_lines(estimate_row(narrow, level=0.95, requested=model))
    )


def test_a_pool_of_studies_without_responders_says_where_its_rate_comes_from() -> None:
    """0/2 and 0/2 under REML: each logit is log(0.5 / 2.5) after the 0.5 correction, so
    the pooled rate is 0.5 / 3 = 16.7% although no patient responded."""
    g, model = group([(0, 2), (0, 2)], estimator="REML", ci="hksj")
    row = estimate_row(g, level=0.95, requested=model)
    assert row.proportion == pytest.approx(0.5 / 3.0, rel=1e-12)
    said = " ".join(text_lines(row))
    assert "No patient of 4 responded; the pooled 16.7% comes from the 0.5 added" in said


def test_a_pooled_rate_far_from_the_crude_rate_says_why() -> None:
    from metaresp.estimates import CRUDE_DIFFERS, row_sentences

    # the shipped corpus's BCMA CAR-T retreatment: one large study at 21%, five small ones
    # at 71-100% (23/47 responded, 49%)
    far, _ = group([(6, 28), (4, 4), (1, 1), (2, 2), (5, 5), (5, 7)])
    row = estimate_row(far, level=0.95)
    assert abs(row.proportion - 23 / 47) > CRUDE_DIFFERS
    said = [s for s in row_sentences(row) if "crude rate" in s]
    assert len(said) == 1
    assert "23/47" in said[0]
    assert "48.9%" in said[0]
    near, _ = group(COUNTS)
    row = estimate_row(near, level=0.95)
    assert abs(row.proportion - row.events / row.total) <= CRUDE_DIFFERS
    assert not [s for s in row_sentences(row) if "crude rate" in s]
