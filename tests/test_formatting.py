"""The formatting module: one way to write each kind of number, edge cases included.

Expected strings follow the conventions written in the module's docstring, worked out by
hand (e.g. 22/46 = 0.47826... -> "47.8%").
"""

from __future__ import annotations

import math

import pytest

from metaresp import formatting as fmt

MISSING = "–"


@pytest.mark.parametrize("missing", [None, math.nan, math.inf, -math.inf])
def test_missing_values_print_as_one_marker(missing: float | None) -> None:
    assert fmt.MISSING == MISSING
    for text in (
        fmt.percent(missing),
        fmt.percent_number(missing),
        fmt.number(missing),
        fmt.interval(missing, 0.5),
        fmt.interval(0.5, missing),
        fmt.estimate_interval(missing, 0.1, 0.2),
        fmt.pvalue(missing),
        fmt.tau2(missing),
        fmt.i2(missing),
        fmt.q_test(missing, 3, 0.2),
        fmt.subgroup_test(missing, 2, 0.5),
    ):
        assert text == MISSING
    assert fmt.p_text(missing) == f"p = {MISSING}"
    assert fmt.counts(None, 10) == MISSING


def test_percent() -> None:
    assert fmt.percent(22 / 46) == "47.8%"
    assert fmt.percent(0.0) == "0.0%"
    assert fmt.percent(1.0) == "100.0%"
    assert fmt.percent(0.5, sign=False) == "50.0"
    assert fmt.percent(0.123456, digits=2) == "12.35%"
    # a rate strictly inside (0, 1) never reads as exactly 0% or 100%
    assert fmt.percent(0.9995) == "> 99.9%"
    assert fmt.percent(0.99999) == "> 99.9%"
    assert fmt.percent(0.9994) == "99.9%"
    assert fmt.percent(0.0004) == "< 0.1%"
    assert fmt.percent(0.0005 + 1e-9) == "0.1%"
    assert fmt.percent(0.99999, sign=False) == "> 99.9"


def test_interval_is_one_style_with_plain_rounding() -> None:
    assert fmt.interval(0.227, 0.594) == "22.7 to 59.4"
    assert fmt.interval(0.0, 1.0) == "0.0 to 100.0"  # exact bounds may be 0 and 100
    assert fmt.interval(0.9996, 1.0) == "100.0 to 100.0"
    assert fmt.interval(-0.52, 1.234, 2, scale="raw") == "-0.52 to 1.23"
    assert fmt.interval(-0.0001, 0.2, 2, scale="raw") == "0.00 to 0.20"  # no "-0.00"
    assert "–" not in fmt.interval(0.1, 0.2)  # the dash means "missing" only


def test_estimate_with_interval_and_level() -> None:
    assert fmt.estimate_interval(0.41, 0.227, 0.594) == "41.0% (22.7 to 59.4)"
    assert fmt.estimate_interval(0.41, 0.227, 0.594, level=0.95) == "41.0% (95% CI 22.7 to 59.4)"
    assert fmt.estimate_interval(0.41, 0.3, 0.5, level=0.9) == "41.0% (90% CI 30.0 to 50.0)"
    assert fmt.ci_label(0.95) == "95% CI"
    assert fmt.ci_label(0.9, "PI") == "90% PI"
    assert fmt.level_text(0.995) == "99.5%"


@pytest.mark.parametrize(
    ("p", "text"),
    [
        (0.0, "< 0.001"),
        (0.0004, "< 0.001"),
        (0.001, "0.001"),
        (0.0049, "0.005"),
        (0.0099, "0.010"),
        (0.01, "0.01"),
        (0.0149, "0.01"),
        (0.157, "0.16"),
        (0.5, "0.50"),
        (0.99, "0.99"),
        (0.995, "> 0.99"),
        (1.0, "> 0.99"),
    ],
)
def test_pvalue(p: float, text: str) -> None:
    assert fmt.pvalue(p) == text


def test_p_text() -> None:
    assert fmt.p_text(0.0001) == "p < 0.001"
    assert fmt.p_text(0.2) == "p = 0.20"
    assert fmt.p_text(1.0) == "p > 0.99"


@pytest.mark.parametrize(
    ("tau2", "text"),
    [
        (0.0, "0"),
        (-1e-12, "0"),
        (0.00004, "< 0.0001"),
        (0.0001, "0.0001"),
        (0.00123, "0.0012"),
        (0.21, "0.2100"),
        (1.2, "1.200"),
        (1.23456, "1.235"),
        (12.3456, "12.35"),
        (1234.56, "1235"),
        (98765.4, "98765"),
        (9.99995, "10.00"),
    ],
)
def test_tau2_tiny_and_huge(tau2: float, text: str) -> None:
    assert fmt.tau2(tau2) == text
    assert "e" not in fmt.tau2(tau2)


def test_i2_and_counts() -> None:
    assert fmt.i2(0.0) == "0.0%"
    assert fmt.i2(85.34) == "85.3%"
    assert fmt.i2(100.0) == "100.0%"
    assert fmt.counts(22, 46) == "22/46"
    assert fmt.counts(0, 5) == "0/5"


def test_q_tests_are_named_by_kind() -> None:
    assert fmt.q_test(12.345, 4, 0.0151) == "Cochran's Q = 12.35, df = 4, p = 0.02"
    assert fmt.q_test(5.3, 2, 0.0004, "wald") == "Wald Q = 5.30, df = 2, p < 0.001"
    assert fmt.q_test(0.0, 1, 1.0, "cochran") == "Cochran's Q = 0.00, df = 1, p > 0.99"
    assert fmt.subgroup_test(5.21, 3, 0.157) == "Q = 5.21, df = 3, p = 0.16"
    with pytest.raises(ValueError, match="cochran, wald"):
        fmt.q_test(1.0, 1, 0.3, "lrt")


def test_likelihood_ratio_test() -> None:
    assert fmt.lrt_test(12.1726, 4, 0.0161) == "LRT = 12.17, df = 4, p = 0.02"
    assert fmt.lrt_test(None, 4, 0.5) == MISSING
