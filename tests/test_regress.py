"""``metaresp.regress``: input checks, factor coding, warnings, the result's views and the
bubble plot. Agreement with metafor is in ``test_regress_metafor.py``."""

from __future__ import annotations

import json
import math
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import metaresp
from metaresp.errors import ConvergenceError, StatisticalWarning
from metaresp.regression import RegressionResult, regress

EVENTS = [5, 8, 2, 12, 7, 3, 14, 9, 4, 11]
TOTALS = [20, 18, 15, 25, 19, 16, 22, 21, 17, 23]
YEAR = [2016, 2017, 2017, 2018, 2019, 2019, 2020, 2021, 2022, 2023]
SETTING = ["any-line", "first-salvage", "any-line", "first-salvage", "any-line", "any-line"]
SETTING += ["first-salvage", "first-salvage", "any-line", "first-salvage"]


def _quiet(*args: Any, **kwargs: Any) -> RegressionResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StatisticalWarning)
        return regress(*args, **kwargs)


def test_exported_lazily() -> None:
    assert metaresp.regress is regress
    assert "regress" in metaresp.__all__
    assert "bubble_plot" in metaresp.__all__


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"estimator": "XYZ"}, "estimator: must be one of"),
        ({"estimator": "BAYES"}, "no meta-regression"),
        ({"transform": "probit"}, "transform: must be one of"),
        ({"ci": "knha"}, "ci: with estimator='REML' must be"),
        ({"estimator": "GLMM", "ci": "hksj"}, 'must be "z" or "t"'),
        ({"estimator": "GLMM", "transform": "raw"}, 'needs transform="logit"'),
        ({"level": 1.5}, "level: must be a number"),
        ({"estimator": "GLMM", "nagq": 0}, "nagq: must be a whole number"),
    ],
)
def test_bad_options_raise_value_error(kwargs: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValueError, match=re.escape(needle)):
        regress(EVENTS, TOTALS, {"year": YEAR}, **kwargs)


@pytest.mark.parametrize(
    ("events", "totals", "mods", "needle"),
    [
        (EVENTS[:9], TOTALS, {"year": YEAR}, "unequal lengths"),
        (EVENTS, TOTALS, {"year": YEAR[:9]}, "9 values for 10 studies"),
        (EVENTS, TOTALS, {"year": [*YEAR[:9], math.nan]}, "missing value"),
        (EVENTS, TOTALS, {"setting": [*SETTING[:9], None]}, "missing value"),
        (EVENTS, TOTALS, {"x": [1, "a"] * 5}, "mixes numbers and text"),
        (EVENTS, TOTALS, {"site": ["a"] * 10}, "at least two levels"),
        (EVENTS, TOTALS, {}, "at least one moderator"),
        (EVENTS, TOTALS, [1, 2, 3], "must be a mapping"),
        ([1, 2, 3], [5, 5, 5], {"a": [1, 2, 3], "b": [3, 1, 2]}, "at least one study more"),
        ([1, 2, 30], [5, 5, 5], {"a": [1, 2, 3]}, "exceed the total"),
    ],
)
def test_bad_inputs_raise_value_error(events: Any, totals: Any, mods: Any, needle: str) -> None:
    with pytest.raises(ValueError, match=re.escape(needle)):
        regress(events, totals, mods)


def test_factor_coding_follows_r() -> None:
    """Reference = first level in sorted (code point) order; one dummy per other level,
    named <moderator><level>; booleans as FALSE/TRUE; a Categorical keeps its order."""
    pd = pytest.importorskip("pandas")
    levels = ["b", "a", "c", "a", "b", "c", "c", "a", "b", "a"]
    fit = _quiet(EVENTS, TOTALS, {"arm": levels, "year": YEAR})
    assert fit.names == ("intrcpt", "armb", "armc", "year")
    flag = [True, False] * 5
    assert _quiet(EVENTS, TOTALS, {"new": flag}).names == ("intrcpt", "newTRUE")
    frame = pd.DataFrame({"arm": pd.Categorical(levels, categories=["c", "b", "a", "z"])})
    fit_cat = _quiet(EVENTS, TOTALS, frame)
    assert fit_cat.names == ("intrcpt", "armb", "arma")
    bare = pd.Categorical(levels, categories=["c", "b", "a"])
    assert _quiet(EVENTS, TOTALS, {"arm": bare}).names == ("intrcpt", "armb", "arma")
    # recoding the reference changes the parametrisation, not the model
    assert fit_cat.tau2 == pytest.approx(_quiet(EVENTS, TOTALS, {"arm": levels}).tau2, rel=1e-9)
    coef = fit_cat.coefficients
    assert list(coef.columns[:5]) == ["estimate", "se", "ci_low", "ci_high", "pvalue"]
    assert list(coef.index) == ["intrcpt", "armb", "arma"]


def test_a_data_frame_and_a_mapping_give_the_same_fit() -> None:
    pd = pytest.importorskip("pandas")
    a = _quiet(EVENTS, TOTALS, {"year": YEAR, "setting": SETTING})
    b = _quiet(EVENTS, TOTALS, pd.DataFrame({"year": YEAR, "setting": SETTING}))
    assert a.estimates == b.estimates
    assert a.names == b.names


def test_constant_numeric_moderator_is_dropped_with_a_warning() -> None:
    with pytest.warns(StatisticalWarning, match="redundant moderator"):
        fit = regress(EVENTS, TOTALS, {"year": YEAR, "site": [2] * 10})
    assert fit.dropped == ("site",)
    assert fit.names == ("intrcpt", "year")
    assert any("redundant" in w for w in fit.warnings)


def test_few_studies_per_moderator_warns() -> None:
    with pytest.warns(StatisticalWarning, match="10 studies per moderator"):
        fit = regress(EVENTS, TOTALS, {"year": YEAR, "setting": SETTING})
    assert any("Cochrane Handbook 10.11.5.1" in w for w in fit.warnings)
    with warnings.catch_warnings():
        warnings.simplefilter("error", StatisticalWarning)
        one = regress(EVENTS, TOTALS, {"year": YEAR})  # 10 studies, 1 moderator: no warning
    assert not any("per moderator" in w for w in one.warnings)


def test_fe_with_hartung_knapp_says_it_is_not_meant_for_it() -> None:
    fit = _quiet(EVENTS, TOTALS, {"year": YEAR}, estimator="FE", ci="hksj")
    assert any("not meant for a fixed-effect model" in w for w in fit.warnings)


def test_glmm_separation_raises_convergence_error() -> None:
    with pytest.raises(ConvergenceError, match="no finite maximum"):
        _quiet(
            [0, 0, 0, 5, 6, 7],
            [5, 6, 7, 10, 12, 14],
            {"g": ["a"] * 3 + ["b"] * 3},
            estimator="GLMM",
        )


def test_summary_and_to_dict() -> None:
    fit = _quiet(EVENTS, TOTALS, {"year": YEAR, "setting": SETTING}, ci="hksj")
    text = fit.summary()
    assert "settingfirst-salvage" in text
    assert "F(df1 = 2, df2 = 7)" in text
    assert "Warning: only 10 studies for 2 moderator coefficients" in text
    d = fit.to_dict()
    json.dumps(d)  # JSON-ready
    assert [c["name"] for c in d["coefficients"]] == ["intrcpt", "year", "settingfirst-salvage"]
    assert d["qm_df"] == [2, 7]
    assert d["r2"] == fit.r2
    assert "_design" not in d


def test_predict_checks_its_input() -> None:
    fit = _quiet(EVENTS, TOTALS, {"year": YEAR, "setting": SETTING})
    table = fit.predict({"year": [2018, 2020], "setting": ["any-line", "first-salvage"]})
    assert list(table["estimate"]) == pytest.approx(
        [
            fit.estimates[0] + 2018 * fit.estimates[1],
            fit.estimates[0] + 2020 * fit.estimates[1] + fit.estimates[2],
        ]
    )
    assert ((table["proportion"] > 0) & (table["proportion"] < 1)).all()
    with pytest.raises(ValueError, match="missing setting"):
        fit.predict({"year": [2018]})
    with pytest.raises(ValueError, match="unknown level"):
        fit.predict({"year": [2018], "setting": ["other"]})


# ------------------------------------------------------------------------------ bubble plot


def test_bubble_plot_draws_studies_line_and_band(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from matplotlib.collections import PathCollection, PolyCollection

    from metaresp.bubble import bubble_plot, save_bubble_plot

    fit = _quiet(EVENTS, TOTALS, {"year": YEAR, "setting": SETTING}, ci="hksj")
    ax = bubble_plot(fit, "year")
    points = [c for c in ax.collections if isinstance(c, PathCollection)]
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(points) == 1
    assert len(bands) == 1
    offsets = points[0].get_offsets()
    assert sorted(np.asarray(offsets)[:, 0].tolist()) == sorted(float(v) for v in YEAR)
    sizes = points[0].get_sizes()
    assert len(sizes) == 10
    assert sizes.max() == pytest.approx(350.0)
    line = ax.get_lines()[0]
    assert float(np.min(line.get_ydata())) > 0.0
    assert float(np.max(line.get_ydata())) < 100.0
    assert ax.yaxis.get_major_formatter().format_pct(50, 100) == "50%"
    out = save_bubble_plot(fit, tmp_path / "bubble.png", moderator="year")
    assert out.stat().st_size > 10_000


def test_bubble_plot_needs_a_numeric_moderator() -> None:
    pytest.importorskip("matplotlib")
    from metaresp.bubble import bubble_plot

    fit = _quiet(EVENTS, TOTALS, {"setting": SETTING})
    with pytest.raises(ValueError, match="no numeric moderator"):
        bubble_plot(fit)
    two = _quiet(EVENTS, TOTALS, {"year": YEAR, "dose": list(range(10))})
    with pytest.raises(ValueError, match="several numeric moderators"):
        bubble_plot(two)
