"""A published single-proportion analysis, reproduced at its printed precision.

Source: Stijnen T, Hamza TH, Özdemir P (2010). Random effects meta-analysis of event
outcome in the framework of the generalized linear mixed model with applications in
sparse data. Statistics in Medicine 29:3046-3067, Table II (p. 3050), "approximate
normal within-study likelihood" rows: the logit-transformed proportions of catheter-related
bloodstream infections in the control and the treated arms of the 18 trials of Nielweise
et al. (2007), pooled by REML with a Wald (z) interval.

The numbers below are those of Table II as transcribed, with the page, in metafor's own
test suite (file tests/testthat/test_analysis_example_stijnen2010.r of the metafor
sources, 3.8 series), which records where the paper prints fewer digits than metafor
reports ("0.035 in paper", "0.056 in paper"); the data are metafor's dat.nielweise2007
(metadat package). Each value is compared at half a unit of the last digit given, except
the two control-arm proportions the paper prints with three decimals (0.035 and 0.056):
those agree with back-transforming *rounded* logit values (expit(-3.30 + 1.96 x 0.238) =
0.0556 -> 0.056) rather than the exact ones (0.0355, 0.0554), so they are compared at one
unit of their last digit.
"""

from __future__ import annotations

import pytest

from metaresp.pooling import pool

# dat.nielweise2007: events and totals per trial
CONTROL_EVENTS = [3, 3, 9, 7, 6, 4, 3, 2, 19, 2, 7, 1, 5, 11, 0, 1, 3, 1]
CONTROL_TOTALS = [
    117,
    35,
    195,
    136,
    157,
    139,
    177,
    39,
    103,
    122,
    64,
    58,
    175,
    180,
    105,
    262,
    362,
    69,
]
TREATED_EVENTS = [0, 1, 2, 0, 5, 1, 1, 1, 1, 1, 0, 0, 3, 6, 0, 0, 1, 4]
TREATED_TOTALS = [116, 44, 208, 130, 151, 98, 174, 74, 97, 113, 66, 70, 188, 187, 118, 252, 345, 64]


#: printed values derived from rounded intermediate results (see the module docstring)
ROUNDED_IN_PAPER = {"0.035", "0.056"}


def _tolerance(printed: str) -> float:
    decimals = len(printed.split(".")[1])
    units = 1.0 if printed in ROUNDED_IN_PAPER else 0.5
    return units * 10.0**-decimals


@pytest.mark.parametrize(
    ("events", "totals", "expected"),
    [
        pytest.param(
            CONTROL_EVENTS,
            CONTROL_TOTALS,
            {
                "estimate": "-3.3018",
                "se": "0.2378",
                "tau2": "0.6629",
                "proportion": "0.035",
                "ci_low": "0.0226",
                "ci_high": "0.056",
            },
            id="control-arm",
        ),
        pytest.param(
            TREATED_EVENTS,
            TREATED_TOTALS,
            {
                "estimate": "-4.2604",
                "se": "0.2589",
                "tau2": "0.3928",
                "proportion": "0.0139",
                "ci_low": "0.0084",
                "ci_high": "0.0229",
            },
            id="treated-arm",
        ),
    ],
)
def test_stijnen_2010_table_ii_normal_within_study_model(
    events: list[int], totals: list[int], expected: dict[str, str]
) -> None:
    res = pool(events, totals, transform="logit", estimator="REML", ci="z")
    for field, printed in expected.items():
        value = getattr(res, field)
        assert abs(value - float(printed)) <= _tolerance(printed), (field, value, printed)
