"""GRADE rules (metaresp.grade) on hand-built estimate rows: each domain, then the rating.

Every expected judgement follows from the rule written in the module docstring, applied
by hand to the numbers of the row; none is taken from a run of the code.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from metaresp import grade
from metaresp.estimates import EstimateRow
from metaresp.models import ModelSpec

GLMM = ModelSpec(transform="logit", estimator="GLMM", ci="t", level=0.95)
FT = ModelSpec(transform="freeman-tukey", estimator="DL", ci="z", level=0.95)


def row(**kw: object) -> EstimateRow:
    """Five single-arm trials, 200 patients, 45% (38 to 52), I² 20%, PI 30 to 60: a row
    with no concern in any domain (interval 14 points wide, threshold 30% below it)."""
    base = EstimateRow(
        label="Pooled",
        k=5,
        events=90,
        total=200,
        proportion=0.45,
        ci_low=0.38,
        ci_high=0.52,
        pi_low=0.30,
        pi_high=0.60,
        i2=20.0,
        tau2=0.05,
        fitted=GLMM,
        requested=GLMM,
        threshold=0.30,
        designs=("single-arm-trial",) * 5,
        populations=("post-bcma-cart",) * 5,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


POP = "post-bcma-cart"


def test_starting_level_low_unless_every_study_is_randomised() -> None:
    assert grade.starting_level(["randomised-trial"] * 2)[0] == "high"
    assert grade.starting_level(["randomised-trial", "single-arm-trial"])[0] == "low"
    assert grade.starting_level(["retrospective-cohort"])[0] == "low"
    assert grade.starting_level([])[0] == "low"
    assert "2 case series" in grade.starting_level(["case-series", "case-series"])[1]


def test_clean_row_has_no_concern_and_stays_low() -> None:
    c = grade.certainty(row(), POP)
    assert [d.downgrade for d in c.domains] == [0, 0, 0, 0, 0]
    assert c.start == "low"
    assert c.rating == "low"
    assert c.reasons() == []


@pytest.mark.parametrize(
    ("designs", "expected"),
    [
        (("single-arm-trial",) * 4 + ("case-series",), 0),  # 1 of 5
        (("single-arm-trial",) * 3 + ("case-series", "conference-abstract"), 0),  # 2 of 5
        (("single-arm-trial",) * 2 + ("case-series",) * 2, 1),  # 2 of 4: half
        (("case-report", "conference-abstract", "retrospective-cohort"), 1),  # 2 of 3
    ],
)
def test_risk_of_bias_counts_weak_designs(designs: tuple[str, ...], expected: int) -> None:
    assert grade.risk_of_bias(row(designs=designs)).downgrade == expected


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"i2": 49.9}, 0),
        ({"i2": 50.0}, 1),
        ({"pi_low": 0.20, "pi_high": 0.71}, 1),  # 51 points
        ({"tau2": 0.5}, 1),
        ({"tau2": 0.8, "fitted": FT}, 0),  # τ² on another scale is not judged
        ({"i2": 80.0, "pi_low": 0.10, "pi_high": 0.85}, 2),  # 75 points and I² >= 75
        ({"i2": 80.0, "pi_low": 0.20, "pi_high": 0.60}, 1),  # I² alone: serious only
        ({"k": 1, "pooled": False, "i2": 90.0}, 0),
    ],
)
def test_inconsistency(changes: dict[str, object], expected: int) -> None:
    assert grade.inconsistency(row(**changes)).downgrade == expected


def test_inconsistency_with_two_studies_says_it_can_hardly_be_judged() -> None:
    d = grade.inconsistency(row(k=2, pi_low=None, pi_high=None, i2=0.0, tau2=0.0))
    assert d.downgrade == 0
    assert "two studies" in d.reason


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, 0),  # 14 points, threshold 30% below the interval, 200 patients
        ({"threshold": 0.45}, 1),  # includes the threshold, 14 points wide
        ({"ci_low": 0.30, "ci_high": 0.61}, 1),  # 31 points, threshold at the bound
        ({"total": 95}, 1),  # fewer than 96 patients
        ({"total": 96}, 0),
        ({"ci_low": 0.20, "ci_high": 0.71}, 2),  # 51 points
        ({"ci_low": 0.25, "ci_high": 0.56, "threshold": 0.50}, 2),  # crosses, 31 points
        ({"threshold": None, "ci_low": 0.30, "ci_high": 0.55}, 0),  # 25 points, no threshold
    ],
)
def test_imprecision(changes: dict[str, object], expected: int) -> None:
    assert grade.imprecision(row(**changes)).downgrade == expected


def test_indirectness() -> None:
    assert grade.indirectness(row(), POP).downgrade == 0
    wider = row(populations=("post-bcma-cart",) * 4 + ("prior-bcma-exposed",))
    d = grade.indirectness(wider, POP)
    assert d.downgrade == 1
    assert "1 of 5" in d.reason
    assert "prior-bcma-exposed" in d.reason
    assert grade.indirectness(wider, None).downgrade == 0


def test_publication_bias_not_assessable_below_ten_studies() -> None:
    d = grade.publication_bias(row(k=9))
    assert d.downgrade == 0
    assert "not assessable with fewer than 10 studies" in d.reason
    assert "not assessable" not in grade.publication_bias(row(k=10)).reason


def test_rating_adds_downgrades_and_stops_at_very_low() -> None:
    one = grade.Domain("x", 1, "")
    two = grade.Domain("y", 2, "")
    assert grade.rate("high", [one]) == "moderate"
    assert grade.rate("high", [one, two]) == "very low"
    assert grade.rate("high", [two, two]) == "very low"
    assert grade.rate("low", [one]) == "very low"
    assert grade.rate("moderate", []) == "moderate"


def test_randomised_row_with_one_concern_is_moderate() -> None:
    c = grade.certainty(row(designs=("randomised-trial",) * 5, threshold=0.45), POP)
    assert c.start == "high"
    assert [d.name for d in c.domains if d.downgrade] == ["imprecision"]
    assert c.rating == "moderate"


def test_override_keeps_the_rules_rating_and_needs_a_reason() -> None:
    c = grade.certainty(row(total=50), POP)
    assert c.rating == "very low"
    o = grade.apply_override(c, "low", "  consistent with registry data  ")
    assert (o.rating, o.rule_rating, o.override_reason) == (
        "low",
        "very low",
        "consistent with registry data",
    )
    assert o.overridden
    assert not c.overridden
    with pytest.raises(ValueError, match="reason"):
        grade.apply_override(c, "low", " ")
    with pytest.raises(ValueError, match="rating"):
        grade.apply_override(c, "fair", "x")  # type: ignore[arg-type]


def test_mean_shown_only_when_it_differs_by_more_than_five_points() -> None:
    assert not grade.mean_differs(row())
    assert not grade.mean_differs(row(mean_proportion=0.495))  # 4.5 points
    assert grade.mean_differs(row(mean_proportion=0.51))
    assert grade.mean_differs(row(mean_proportion=0.39))
