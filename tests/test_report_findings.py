"""The report's summary of findings, header, generated methods and set-aside groups, and
the plan's certainty settings (a panel's overrides, the search date)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from factories import CliResult
from metaresp import report
from metaresp._report_sections import ReportHeader, reason_group, set_aside_html
from metaresp.errors import InputError
from metaresp.forestdata import ForestData, PooledRow, StudyRow, Subgroup
from metaresp.models import ModelSpec
from metaresp.plan import parse_plan

GLMM = ModelSpec(transform="logit", estimator="GLMM", ci="t", level=0.95)
BAYES = ModelSpec(
    transform="logit",
    estimator="BAYES",
    ci="t",
    level=0.95,
    tau_prior="half-normal(0.5)",
    mu_prior="normal(0, 2)",
)
REML = ModelSpec(transform="logit", estimator="REML", ci="hksj", level=0.95)

PLAN = """\
version: 1
groupings:
  cls:
    title: Class
    classes:
      Bispecific: {modality: bispecific}
      CAR-T: {modality: CAR-T}
analyses:
  - name: one
    title: One
    selection: {population: post-bcma-cart, setting: first-salvage, outcome: [ORR, CR+]}
    grouping: cls
"""


def forest(model: ModelSpec, *, fallback: str | None = None, p: float = 0.40) -> ForestData:
    studies = (
        StudyRow("A 2023 · x", 4, 10, 0.4, 0.12, 0.74),
        StudyRow("B 2024 · y", 8, 20, 0.4, 0.19, 0.64),
    )
    pooled = PooledRow(
        "Pooled",
        2,
        12,
        30,
        p,
        0.05,
        0.88,
        i2=10.0,
        tau2=0.1,
        subgroup="Bispecific",
        requested=GLMM if fallback else model,
        fitted=REML if fallback else model,
        fallback=fallback is not None,
        fallback_reason=fallback,
        threshold=0.5,
        prob_above=0.31 if model.estimator == "BAYES" else None,
        mean_proportion=0.47,
        designs=("single-arm-trial", "retrospective-cohort"),
        populations=("post-bcma-cart", "prior-bcma-exposed"),
    )
    single = PooledRow(
        "One study, not pooled", 1, 1, 3, 1 / 3, 0.008, 0.906, pooled=False, subgroup="CAR-T"
    )
    return ForestData(
        title="t",
        outcome="ORR",
        subgroups=(
            Subgroup("Bispecific", studies, pooled),
            Subgroup("CAR-T", (StudyRow("C 2022 · z", 1, 3, 1 / 3, 0.008, 0.906),), single),
        ),
    )


def page(**kw: object) -> str:
    analyses = [
        report.ReportAnalysis("ORR by class", forest=forest(GLMM), name="one-orr"),
        report.ReportAnalysis(
            "ORR by class, Bayesian",
            forest=forest(BAYES, p=0.42),
            name="one-bayes-orr",
            role="sensitivity",
            sensitivity_of="one-orr",
            other_family=True,
        ),
        report.ReportAnalysis(
            "CR by class",
            forest=forest(GLMM, fallback="every study has 0 or all events"),
            name="one-cr",
        ),
    ]
    args: dict[str, object] = {
        "title": "T",
        "corpus_version": "abc123",
        "analyses": analyses,
        "certainty": report.Certainty(
            population="post-bcma-cart",
            words="patients relapsed after a BCMA CAR-T",
            overrides={"one-cr": {"Bispecific": ("moderate", "registry data agree <closely>")}},
        ),
    }
    args.update(kw)
    return report.render_report(**args)  # type: ignore[arg-type]


def test_summary_of_findings_comes_first_with_certainty_per_row() -> None:
    html = page()
    sof = html.index('id="findings"')
    assert sof < html.index("Read this first") < html.index("Contents: 3 analyses")
    assert html.index("<summary>Contents") > html.index("<details", sof)  # contents collapsed
    first = html[sof : html.index('class="legend"')]
    # two rows (a pooled class, a single study), each with a certainty word
    assert first.count('<span class="cert cert-') == 2
    assert "40.0% (5.0 to 88.0)" in first
    # the Bayesian sensitivity line beside the primary, with its probability above 50%
    assert "Bayesian model: 42.0% (CrI 5.0 to 88.0); P(&gt; 50%) 0.31" in first
    # mean 47% differs from 40% by more than 5 points: shown, with why
    assert "mean across studies 47.0%" in first
    # a wider population: indirectness named; two studies, 30 patients: imprecision
    assert "Indirectness" in first or "indirectness" in first
    assert "30 patients (fewer than 96)" in first
    # the other primary analysis (CR) is in a collapsed block; its override is shown
    more = html[html.index('class="more-findings"') :]
    assert "Panel: registry data agree &lt;closely&gt;" in more
    assert "panel's rating (rules: very low)" in more


def test_methods_name_the_models_used_and_the_real_fallback_cause() -> None:
    html = page()
    methods = html[html.index('<p class="methods">') :]
    methods = methods[: methods.index("</p>")]
    assert "binomial-normal random-effects model (GLMM" in methods
    assert "half-normal prior with scale 0.5 on the between-study SD" in methods
    assert "Bispecific in one-cr (every study has 0 or all events): REML (logit)" in methods
    assert "wider population than patients relapsed after a BCMA CAR-T" in methods
    # the single fallback is counted once (not "every fallback")
    assert "for 1 pooled estimate, Bispecific" in methods


def test_header_and_changes() -> None:
    header = ReportHeader("2025-01-01 10:00 UTC", None, "abc123", "metaresp 9", "GLMM words")
    html = page(header=header, changes=report.Changes(None, against="published/summary.json"))
    assert "Last literature search</b>: not stated" in html
    assert "<b>Corpus version</b>: abc123" in html
    assert "No published state to compare with (published/summary.json)" in html
    html = page(changes=report.Changes("This update added X.", "diff text"))
    assert "This update added X." in html
    assert "<pre>diff text</pre>" in html


def test_set_aside_grouped_by_reason_with_counts() -> None:
    frame = pd.DataFrame(
        {
            "analysis": ["a", "b", "a", "a"],
            "record_id": ["s1/g/ORR", "s1/g/ORR", "s2/g/ORR", "s3/g/ORR"],
            "study": ["S1", "S1", "S2", "S3"],
            "reason": [
                "counts lines; this analysis pools patients",
                "counts lines; this analysis pools patients",
                "percent only: no count of responders and evaluable patients to pool",
                "an odd reason",
            ],
        }
    )
    html = set_aside_html(frame)
    assert html.startswith("<details>")
    assert "3 records set aside at least once (4 times over all analyses)" in html
    assert (
        '<td>counts treatment lines, not patients</td><td class="num">1</td>'
        '<td class="num">2</td>' in html
    )
    assert "<td>an odd reason</td>" in html
    assert reason_group("same cohort (c) as x in this subgroup; one cohort, one vote: set aside")


def test_plan_certainty_overrides_and_search_date() -> None:
    text = PLAN + (
        "search_date: 2024-10-31\n"
        "certainty:\n"
        "  population: post-bcma-cart\n"
        "  overrides:\n"
        "    one-orr:\n"
        "      Bispecific: {rating: low, reason: consistent with registry data}\n"
    )
    plan = parse_plan(text, "plan.yaml")
    assert plan.search_date is not None
    assert plan.search_date.isoformat() == "2024-10-31"
    assert plan.certainty.overrides["one-orr"]["Bispecific"].rating == "low"


@pytest.mark.parametrize(
    ("tail", "expected"),
    [
        (
            "certainty:\n  overrides:\n    one-vgpr:\n      Bispecific: {rating: low, reason: r}\n",
            "plan.yaml:15: certainty.overrides.one-vgpr: unknown analysis",
        ),
        (
            "certainty:\n  overrides:\n    one-orr:\n      Bispec: {rating: low, reason: r}\n",
            "plan.yaml:16: certainty.overrides.one-orr.Bispec: unknown subgroup",
        ),
        (
            "certainty:\n  overrides:\n    one-orr:\n      Bispecific: {rating: fair, reason: r}\n",
            "plan.yaml:16: certainty.overrides.one-orr.Bispecific.rating: Input should be",
        ),
        (
            "certainty:\n  overrides:\n    one-orr:\n"
            "      Bispecific: {rating: low, reason: ' '}\n",
            "plan.yaml:16: certainty.overrides.one-orr.Bispecific.reason: a panel's rating "
            "needs a reason",
        ),
        ("certainty:\n  population: post-cart\n", "plan.yaml:14: certainty.population: unknown"),
        ("search_date: last week\n", "plan.yaml:13: search_date: Input should be a valid date"),
    ],
)
def test_plan_certainty_errors_name_the_line(tail: str, expected: str) -> None:
    with pytest.raises(InputError) as info:
        parse_plan(PLAN + tail, "plan.yaml")
    assert any(p.startswith(expected) for p in info.value.problems), info.value.problems


def test_run_pdf_without_chromium_exits_1_before_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., CliResult]
) -> None:
    from metaresp import _report_pdf

    monkeypatch.setattr(_report_pdf, "find_chromium", lambda: None)
    out = tmp_path / "results"
    result = cli("run", "--results", out, "--pdf", "--no-publish", "--quiet")
    assert result.code == 1
    lines = result.err.strip().splitlines()
    assert len(lines) == 1
    assert "--pdf: report.pdf cannot be written here: no Chromium on PATH" in lines[0]
    assert not out.exists()
