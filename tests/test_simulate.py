"""The coverage simulation: end to end, a case with known coverage, reproducibility."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from metaresp import simulate as sim
from metaresp.cli import main


def test_quick_grid_runs_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sim"
    code = main(["simulate", "--quick", "--reps", "40", "--out", str(out), "--seed", "3"])
    assert code == 0
    frame = pd.read_csv(out / "coverage.csv")
    assert len(frame) == len(sim.quick_grid()) * len(sim.FREQUENTIST)
    assert set(frame["method"]) == set(sim.FREQUENTIST)
    assert frame["coverage"].between(0, 1).all()
    assert (frame.loc[frame["k"] == 2, "pi_undefined_share"] == 1.0).all()
    assert frame.loc[frame["k"] == 5, "pi_coverage"].between(0, 1).all()
    assert (out / "coverage-heatmap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (out / "summary.md").read_text(encoding="utf-8")
    assert "Which methods keep 93-97%" in text
    assert not list(out.glob(".*"))  # no temporary files left behind


def test_bad_options_give_one_line_each(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["simulate", "--quick", "--reps", "0", "--jobs", "0"])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: --reps: must be at least 1, got 0",
        "error: --jobs: must be at least 1, got 0",
    ]


def test_common_effect_with_large_totals_covers_95_percent() -> None:
    """With τ = 0 and n = 2000 per study the common-effect logit z interval is correct up
    to the normal approximation of a logit with ~600 events per study (bias far below 0.5
    points). Monte Carlo error: 4,000 replicates give SE = sqrt(0.95·0.05/4000) = 0.34
    points; we accept |coverage - 95%| <= 4 SE = 1.38 points (two-sided false alarm
    probability about 6e-5)."""
    reps = 4000
    cell = sim.Cell(k=5, p=0.3, tau=0.0)
    rows = sim.simulate_cell(
        cell, reps, seed=11, methods=("FE-logit-z", "REML-logit-z"), totals=(2000, 2000)
    )
    bound = 4 * math.sqrt(0.95 * 0.05 / reps)
    fe = rows[0]
    assert fe["method"] == "FE-logit-z"
    assert fe["failed_share"] == 0.0
    assert abs(fe["coverage"] - 0.95) <= bound
    # REML's τ̂² ≥ 0 can only widen the interval when τ = 0: at least nominal
    assert rows[1]["coverage"] >= 0.95 - bound


def test_same_seed_same_results_and_jobs_do_not_matter() -> None:
    cells = [sim.Cell(2, 0.2, 1.0), sim.Cell(3, 0.5, 0.5)]
    one = sim.run_grid(cells, 60, seed=5, jobs=1)
    again = sim.run_grid(cells, 60, seed=5, jobs=1)
    two = sim.run_grid(cells, 60, seed=5, jobs=2)
    pd.testing.assert_frame_equal(one, again)
    pd.testing.assert_frame_equal(one, two)
    # a cell's numbers do not depend on which other cells are in the grid
    alone = sim.run_grid(cells[1:], 60, seed=5, jobs=1)
    pd.testing.assert_frame_equal(
        one[one["k"] == 3].reset_index(drop=True), alone.reset_index(drop=True)
    )
    other = sim.run_grid(cells, 60, seed=6, jobs=1)
    assert not one["ci_width_median"].equals(other["ci_width_median"])


def test_draw_follows_the_cell() -> None:
    x, n, new = sim.draw(sim.Cell(10, 0.8, 0.0), 3000, seed=1)
    assert n.min() >= 5
    assert n.max() <= 60
    assert (x <= n).all()
    assert abs(x.sum() / n.sum() - 0.8) < 0.005  # 3000 x 10 x ~32 trials: SE ~ 0.0007
    np.testing.assert_allclose(new, 0.8, rtol=1e-12)  # τ = 0: every new study has p = 0.8


def test_corpus_design_bayes_and_a_local_dask_cluster_agree(tmp_path: Path) -> None:
    """The corpus design draws its study sizes from the given counts; the Bayesian methods
    run beside the frequentist ones; a local Dask cluster gives the in-process numbers."""
    corpus = (2, 3, 3, 5, 8, 40)
    cells = [sim.Cell(2, 0.5, 0.5, "corpus"), sim.Cell(3, 0.2, 0.0, "uniform")]
    methods = ("GLMM-t", "BAYES-HN0.5", "BAYES-HC0.5")
    one = sim.run_grid(cells, 12, seed=9, jobs=1, corpus=corpus, methods=methods)
    two = sim.run_grid(cells, 12, seed=9, jobs=2, corpus=corpus, methods=methods)
    pd.testing.assert_frame_equal(one, two)
    assert list(one["design"].unique()) == ["uniform", "corpus"]
    _, n, _ = sim.draw(cells[0], 200, seed=9, corpus=corpus)
    assert set(np.unique(n)) <= set(corpus)
    assert one["coverage"].between(0, 1).all()
