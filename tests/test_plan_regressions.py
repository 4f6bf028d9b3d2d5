"""Meta-regressions asked for by the analysis plan (``regressions:``): parsing, running on
the shipped corpus, and what ``metaresp run`` writes for them."""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import pytest

import metaresp
from factories import SHIPPED_EXTRACTIONS, SHIPPED_PLAN, run_reproduce_script
from metaresp.errors import InputError, StatisticalWarning
from metaresp.plan import parse_plan
from metaresp.records import records_from_corpus
from metaresp.regressions import (
    RegressionOutcome,
    regression_state,
    run_regressions,
    write_regressions,
)
from metaresp.runner import run_analyses, run_plan_files

SMALL_PLAN = """
version: 1
title: Regression test plan
analyses:
  - name: any-line
    title: "Any salvage line: {outcome}"
    selection:
      population: post-bcma-cart
      setting: [first-salvage, any-line]
      outcome: ORR
      unit: patients
  - name: first-line
    title: "First salvage line: {outcome}"
    selection:
      population: post-bcma-cart
      setting: first-salvage
      outcome: CR+
      unit: patients
regressions:
  - name: orr-by-year-and-setting
    analysis: any-line
    moderators: [year, setting]
  - name: orr-by-year-glmm
    analysis: any-line
    moderators: year
    model: {estimator: GLMM, ci: t}
  - name: cr-by-year-and-modality
    analysis: first-line
    moderators: [year, modality]
"""


def _plan(extra: str = "") -> metaresp.Plan:
    return parse_plan(SMALL_PLAN + extra, source="test-plan.yaml")


def test_plan_parses_regressions() -> None:
    plan = _plan()
    names = [r.name for r in plan.regressions]
    assert names == ["orr-by-year-and-setting", "orr-by-year-glmm", "cr-by-year-and-modality"]
    assert plan.regressions[1].moderators == ["year"]
    model = plan.regressions[0].resolved_model()
    assert (model.estimator, model.ci) == ("REML", "hksj")
    glmm = plan.regressions[1].resolved_model()
    assert (glmm.estimator, glmm.ci) == ("GLMM", "t")
    # the shipped plan has no regressions and is unchanged by the feature
    assert metaresp.load_plan(SHIPPED_PLAN).regressions == []


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (
            "  - {name: bad, analysis: nowhere, moderators: [year]}\n",
            "not a primary analysis",
        ),
        ("  - {name: bad, analysis: any-line, moderators: [colour]}\n", "moderators"),
        (
            "  - {name: bad, analysis: any-line, moderators: [year], model: {estimator: BAYES}}\n",
            "BAYES has no meta-regression",
        ),
        ("  - {name: orr-by-year-glmm, analysis: any-line, moderators: [year]}\n", "used twice"),
        ("  - {name: bad, analysis: any-line, moderators: [year, year]}\n", "at most once"),
    ],
)
def test_bad_regression_entries_are_one_line_errors(extra: str, needle: str) -> None:
    with pytest.raises(InputError) as err:
        _plan(extra)
    assert needle in str(err.value)
    assert "test-plan.yaml" in str(err.value)


@pytest.fixture(scope="module")
def outcomes() -> list[RegressionOutcome]:
    plan = _plan()
    corpus = metaresp.load_extractions(SHIPPED_EXTRACTIONS)
    results = run_analyses(plan, corpus)
    return run_regressions(plan.regressions, results)


def test_regressions_use_the_pooled_records(outcomes: list[RegressionOutcome]) -> None:
    first = outcomes[0]
    assert first.error is None
    assert first.fit is not None
    assert first.fit.names == ("intrcpt", "year", "settingfirst-salvage")
    assert first.fit.k == len(first.records) == len({r.cohort for r in first.records})
    # the regression is regress() on exactly these records' counts and fields
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StatisticalWarning)
        direct = metaresp.regress(
            [r.events for r in first.records],
            [r.total for r in first.records],
            {
                "year": [r.year for r in first.records],
                "setting": [r.setting for r in first.records],
            },
            ci="hksj",
        )
    assert direct.estimates == first.fit.estimates
    glmm = outcomes[1]
    assert glmm.fit is not None
    assert glmm.fit.estimator == "GLMM"


def test_a_regression_that_cannot_be_fitted_is_reported(outcomes: list[RegressionOutcome]) -> None:
    cr = outcomes[2]
    if cr.fit is None:
        assert cr.error
    else:  # few studies for its moderators: the warning says so
        assert any("10 studies per moderator" in w for w in cr.fit.warnings)
    state = regression_state(outcomes)
    json.dumps(state)
    assert [s["regression"] for s in state] == [o.spec.name for o in outcomes]
    assert all(s["records"] for s in state)


def test_write_regressions(tmp_path: Path, outcomes: list[RegressionOutcome]) -> None:
    written = write_regressions(tmp_path, outcomes)
    rows = list(csv.DictReader((tmp_path / "regressions.csv").open(encoding="utf-8")))
    fitted = [o for o in outcomes if o.fit is not None]
    assert len(rows) == sum(o.fit.p for o in fitted) + sum(o.fit is None for o in outcomes)
    assert rows[0]["coefficient"] == "intrcpt"
    assert rows[0]["regression"] == outcomes[0].spec.name
    png = tmp_path / "figures" / "regression-orr-by-year-and-setting.png"
    assert png in written
    assert png.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_run_writes_regression_outputs(tmp_path: Path) -> None:
    plan_path = tmp_path / "plan.yaml"
    plan_path.write_text(SMALL_PLAN, encoding="utf-8")
    out = tmp_path / "results"
    run_plan_files(plan_path, SHIPPED_EXTRACTIONS, out, progress=False)
    state = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert [r["regression"] for r in state["regressions"]] == [
        "orr-by-year-and-setting",
        "orr-by-year-glmm",
        "cr-by-year-and-modality",
    ]
    assert state["regressions"][0]["coefficients"][1]["name"] == "year"
    assert (out / "regressions.csv").stat().st_size > 0
    assert (out / "figures" / "regression-orr-by-year-glmm.svg").stat().st_size > 0
    # records of a regression are records of the corpus
    corpus = metaresp.load_extractions(SHIPPED_EXTRACTIONS)
    ids = {r.record_id for r in records_from_corpus(corpus)}
    assert set(state["regressions"][0]["records"]) <= ids


def test_reproduce_script_refits_the_regressions_with_metafor(tmp_path: Path) -> None:
    """``reproduce.R`` refits every plan regression with metafor (``rma(mods=)`` or
    ``rma.glmm(mods=)``, the moderators inline) and writes the coefficients; they agree
    with summary.json (1e-4 for inverse-variance models; 2e-3 for the GLMM, whose optimum
    lme4 reaches less exactly). Skipped where R with metafor is absent."""
    plan_path = tmp_path / "plan.yaml"
    plan_path.write_text(SMALL_PLAN, encoding="utf-8")
    out = tmp_path / "results"
    run_plan_files(plan_path, SHIPPED_EXTRACTIONS, out, progress=False)
    script = (out / "reproduce.R").read_text(encoding="utf-8")
    assert "mods = ~ year + setting" in script
    target = tmp_path / "estimates.csv"
    run_reproduce_script(out / "reproduce.R", target)
    with (tmp_path / "estimates-regressions.csv").open(encoding="utf-8") as f:
        refit = {(r["regression"], r["coefficient"]): r for r in csv.DictReader(f)}
    state = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    compared = 0
    for reg in state["regressions"]:
        if reg.get("coefficients") is None:
            continue
        rtol = 2e-3 if reg["model"]["estimator"] == "GLMM" else 1e-4
        for coef in reg["coefficients"]:
            row = refit[(reg["regression"], coef["name"])]
            for ours, theirs in ((coef["estimate"], row["estimate"]), (coef["se"], row["se"])):
                assert abs(ours - float(theirs)) <= rtol * max(1.0, abs(float(theirs))), (
                    reg["regression"],
                    coef["name"],
                    ours,
                    theirs,
                )
            compared += 1
    assert compared >= 4
