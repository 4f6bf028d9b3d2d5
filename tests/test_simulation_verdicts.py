"""What the README and the report say about the coverage simulation is what the committed
simulation output says.

``docs/simulation/coverage.csv`` is written by ``metaresp simulate`` (full grid, the seed
in ``summary.md``). An engine change that moves coverage needs a re-run of the simulation,
and these tests then fail until the README's table and verdicts are updated with it: the
verdicts cannot go stale.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from metaresp import simreport

ROOT = Path(__file__).resolve().parents[1]
COVERAGE = ROOT / "docs" / "simulation" / "coverage.csv"
SUMMARY = ROOT / "docs" / "simulation" / "summary.md"
README = ROOT / "README.md"


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return pd.read_csv(COVERAGE)


def _readme_coverage_rows() -> dict[str, list[tuple[float, float]]]:
    """Method -> [(mean, worst) per k] from the README's coverage table (between the
    ``coverage-table`` markers; its first column names the simulation's method)."""
    text = README.read_text(encoding="utf-8")
    block = text.split("<!-- coverage-table -->")[1].split("<!-- /coverage-table -->")[0]
    rows: dict[str, list[tuple[float, float]]] = {}
    for line in block.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not cells[0].startswith("`"):
            continue
        method = cells[0].split("`")[1]
        pairs = [re.fullmatch(r"([\d.]+) \[([\d.]+)\]", c) for c in cells[1:]]
        rows[method] = [(float(m.group(1)), float(m.group(2))) for m in pairs if m]
    return rows


def test_readme_table_is_the_csv(frame: pd.DataFrame) -> None:
    rows = _readme_coverage_rows()
    assert rows, "the README has no coverage table between the markers"
    ks = sorted(frame["k"].unique())
    for method, pairs in rows.items():
        sub = frame[frame["method"] == method]
        assert not sub.empty, f"README names {method!r}, which the CSV does not have"
        assert len(pairs) == len(ks)
        # one unit in the last printed digit: the CSV keeps 6 significant digits, so a
        # value at a rounding boundary (93.55) can print either way
        for k, (mean, worst) in zip(ks, pairs, strict=True):
            cov = sub[sub["k"] == k]["coverage"]
            assert mean == pytest.approx(100 * cov.mean(), abs=0.11), (method, k)
            assert worst == pytest.approx(100 * cov.min(), abs=0.11), (method, k)


def test_summary_tables_are_the_csv(frame: pd.DataFrame) -> None:
    """summary.md is what ``summary_markdown`` makes of the CSV (the wall-time line aside)."""
    reps = int(frame["reps"].iloc[0])
    seed = int(re.search(r"seed (\d+)", SUMMARY.read_text(encoding="utf-8")).group(1))  # type: ignore[union-attr]
    made = simreport.summary_markdown(frame, reps=reps, seed=seed, seconds=None)
    shipped = "\n".join(
        line
        for line in SUMMARY.read_text(encoding="utf-8").splitlines()
        if not line.startswith("Wall time:")
    )
    # the CSV keeps 6 significant digits, so a regenerated percentage can differ from the
    # shipped one by one unit in its last printed digit; words and structure must be equal
    number = re.compile(r"\d+\.\d+")
    assert number.sub("#", shipped.strip()) == number.sub("#", made.strip())
    for a, b in zip(number.findall(shipped), number.findall(made), strict=True):
        assert float(a) == pytest.approx(float(b), abs=0.11)


def test_readme_verdicts_follow_from_the_csv(frame: pd.DataFrame) -> None:
    text = README.read_text(encoding="utf-8")
    block = text.split("<!-- coverage-verdict -->")[1].split("<!-- /coverage-verdict -->")[0]
    # "never below 93% within Monte-Carlo error": no cell's coverage is more than 1.96
    # standard errors below 93% (methods.md: the rule that chooses the default)
    never_below = sorted(
        m
        for m, sub in frame.groupby("method")
        if (sub["coverage"] + 1.96 * sub["coverage_mcse"] >= 0.93).all()
    )
    claim = re.search(r"\*\*([^*]*)never fell below 93%", block)
    assert claim is not None, "the README states no 'never fell below 93%' verdict"
    named = re.findall(r"`([^`]+)`", claim.group(1))
    assert sorted(set(named)) == never_below
    in_band_k3 = [
        m
        for m, sub in frame[frame["k"] <= 3].groupby("method")
        if sub["coverage"].map(simreport.in_band).all()
    ]
    if "no interval method kept 93-97%" in block.replace("\n", " "):
        assert in_band_k3 == []
    width = re.search(r"median width (\d+) percentage points", block)
    if width:
        winner = named[0]
        sub = frame[(frame["method"] == winner) & (frame["k"] == 2)]
        assert int(width.group(1)) == round(100 * sub["ci_width_median"].median())


FEW = ROOT / "docs" / "simulation" / "few-studies" / "coverage.csv"


def test_defaults_are_the_rules_winner_on_the_few_studies_run() -> None:
    """methods.md: the default is the method the written rule picks from the simulation on
    data drawn like the corpus (``docs/simulation/few-studies``); pool(), the plan and the
    shipped analysis plan all use it."""
    from metaresp import models
    from metaresp import simulate as sim
    from metaresp.plan import load_plan

    few = pd.read_csv(FEW)
    winner = simreport.chosen_default(few)
    assert winner is not None
    spec = sim.METHODS[winner]
    assert spec.estimator == models.DEFAULT_ESTIMATOR
    if spec.estimator == "BAYES":
        assert spec.tau_prior == models.DEFAULT_TAU_PRIOR
        assert spec.mu_prior == models.DEFAULT_MU_PRIOR
    shipped = load_plan(ROOT / "analysis-plan.yaml").expanded()
    primary = next(a for a in shipped if a.role == "primary")
    assert (primary.model.estimator, primary.model.tau_prior, primary.model.mu_prior) == (
        spec.estimator,
        spec.tau_prior,
        spec.mu_prior,
    )


def _readme_few_rows() -> dict[str, list[str]]:
    text = README.read_text(encoding="utf-8")
    block = text.split("<!-- few-studies-table -->")[1].split("<!-- /few-studies-table -->")[0]
    rows: dict[str, list[str]] = {}
    for line in block.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0].startswith("`"):
            rows[cells[0].split("`")[1]] = cells[1:]
    return rows


def test_readme_few_studies_table_is_the_csv() -> None:
    """The README's few-studies table (corpus-sized studies): coverage mean [worst] at
    k = 2 / 3 / 5 and the median width at k = 2 / 3, as the committed CSV has them."""
    few = pd.read_csv(FEW)
    corpus = few[few["design"] == "corpus"]
    rows = _readme_few_rows()
    assert len(rows) >= 4
    for method, (coverage, width) in ((m, (c[0], c[1])) for m, c in rows.items()):
        sub = corpus[corpus["method"] == method]
        assert not sub.empty, method
        pairs = re.findall(r"([\d.]+) \[([\d.]+)\]", coverage)
        assert len(pairs) == 3
        for k, (mean, worst) in zip((2, 3, 5), pairs, strict=True):
            cov = sub[sub["k"] == k]["coverage"]
            assert float(mean) == pytest.approx(100 * cov.mean(), abs=0.11), (method, k)
            assert float(worst) == pytest.approx(100 * cov.min(), abs=0.11), (method, k)
        widths = [float(w) for w in re.findall(r"[\d.]+", width)]
        for k, w in zip((2, 3), widths, strict=True):
            made = 100 * sub[sub["k"] == k]["ci_width_median"].median()
            assert w == pytest.approx(made, abs=0.11), (method, k)
