"""Figures of a run stay bounded whatever the corpus: forest plots cut into pages of
whole studies and left out past a stated number of studies, cumulative plots drawn at
evenly spaced steps past a stated number, each said in a note; worker processes that
cannot start or that die are one line or a fallback, never a silent exit."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from factories import SMALL_CORPUS, SMALL_PLAN, write_corpus
from metaresp import _figure_bounds, _workers, runner
from metaresp._figure_bounds import bounded_cumulative, forest_note, paged, thinned_steps
from metaresp.cumulative import CumulativeFigure
from metaresp.errors import InputError
from metaresp.forestdata import CumulativeRow, ForestData, PooledRow, StudyRow, Subgroup
from metaresp.runner import run_plan_files


def study(i: int, label: str | None = None) -> StudyRow:
    return StudyRow(label or f"S{i}", 3, 10, 0.3, 0.07, 0.65)


POOLED = PooledRow(label="", events=30, total=100, proportion=0.3, ci_low=0.2, ci_high=0.4, k=8)


def test_a_class_taller_than_a_page_is_cut_into_runs_of_whole_studies() -> None:
    tall = Subgroup("CAR T", tuple(study(i) for i in range(1, 81)), POOLED)
    small = Subgroup("Bispecific", tuple(study(i) for i in range(81, 86)), POOLED)
    data = ForestData("T", "ORR", (tall, small), overall=POOLED)
    out = paged(data, lines=34)
    names = [s.name for s in out.subgroups]
    assert names == [
        "CAR T (studies 1\u201334 of 80)",
        "CAR T (studies 35\u201368 of 80)",
        "CAR T (studies 69\u201380 of 80)",
        "Bispecific",
    ]
    assert [s.pooled for s in out.subgroups] == [None, None, POOLED, POOLED]
    # every study once, in its order; the rest of the plot as it was
    assert [s for sub in out.subgroups for s in sub.studies] == [
        *tall.studies,
        *small.studies,
    ]
    assert out.overall == data.overall
    assert paged(ForestData("T", "ORR", (small,)), lines=34).subgroups == (small,)


def test_a_wrapped_label_counts_for_its_lines() -> None:
    # ten words of 5 letters wrap over 3 lines in the narrowest label column (1.5 in)
    long = " ".join(["abcde"] * 10)
    rows = (study(1, long), study(2, long), study(3), study(4))
    out = paged(ForestData("T", "ORR", (Subgroup("A", rows, POOLED),)), lines=6)
    assert [len(s.studies) for s in out.subgroups] == [2, 2]


def test_thinned_steps() -> None:
    assert thinned_steps(5, most=100) == [0, 1, 2, 3, 4]
    assert thinned_steps(199, most=100) == list(range(0, 199, 2))
    picked = thinned_steps(1500, most=100)
    assert len(picked) == 100
    assert picked[0] == 0
    assert picked[-1] == 1499
    assert picked == sorted(set(picked))


def test_a_long_cumulative_plot_is_drawn_at_spaced_steps_and_says_so() -> None:
    rows = tuple(CumulativeRow(f"S{k}", k, 0.3, 0.2, 0.4) for k in range(1, 151))
    fig = CumulativeFigure(Path("figures/cumulative/a--b.png"), rows, "T", "ORR", "GLMM")
    thinned, note = bounded_cumulative(fig)
    assert len(thinned.rows) == _figure_bounds.MAX_CUMULATIVE_PLOT_ROWS
    assert thinned.rows[0].k == 1
    assert thinned.rows[-1].k == 150
    assert thinned.model_note.startswith("GLMM ")
    assert "100 of 150 steps drawn" in thinned.model_note
    assert note is not None
    assert note.startswith("figures/cumulative/a--b.png: 100 of 150 steps drawn")
    short = CumulativeFigure(fig.png, rows[:20], "T", "ORR", "GLMM")
    assert bounded_cumulative(short) == (short, None)


def test_forest_note_past_the_limit() -> None:
    limit = _figure_bounds.MAX_PLOT_ROWS
    assert forest_note("a", limit) is None
    note = forest_note("a", limit + 1)
    assert note is not None
    assert note.startswith(f"a: {limit + 1:,} studies, more than the {limit}")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write_corpus(tmp_path / "extractions", SMALL_CORPUS)
    (tmp_path / "plan.yaml").write_text(SMALL_PLAN, encoding="utf-8")
    return tmp_path


def run(project: Path) -> runner.RunOutput:
    return run_plan_files(
        project / "plan.yaml", project / "extractions", project / "results", published=None
    )


@pytest.mark.usefixtures("quick_figures")
def test_a_run_past_the_forest_limit_draws_no_forest_plot_and_says_so(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_figure_bounds, "MAX_PLOT_ROWS", len(SMALL_CORPUS) - 1)
    out = run(project)
    name = "post-cart-orr"
    assert not list((project / "results" / "figures").glob(f"{name}*"))
    report = (project / "results" / "report.html").read_text(encoding="utf-8")
    assert f"No forest plot: its {len(SMALL_CORPUS)} studies are more than the" in report
    (note,) = [w for w in out.warnings if "forest plot" in w]
    assert note.startswith(f"{name}: {len(SMALL_CORPUS)} studies, more than the")
    # the note comes again when the analysis is taken from the cache
    assert note in run(project).warnings


@pytest.mark.usefixtures("quick_figures")
def test_workers_that_cannot_start_leave_the_run_in_this_process(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    drawn: list[str] = []
    save = runner._save_one

    def here(job: tuple[str, Any, Path, Path]) -> None:
        drawn.append(job[2].stem)
        save(job)

    monkeypatch.setattr(runner, "FIGURE_WORKERS", 2)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    real = os.access
    # this user may not run the interpreter again (every other check as it is)
    monkeypatch.setattr(os, "access", lambda path, mode: mode != os.X_OK and real(path, mode))
    monkeypatch.setattr(runner, "_save_one", here)
    out = run(project)
    assert drawn  # the figures were drawn here
    notes = [w for w in out.warnings if "cannot start the interpreter again" in w]
    assert len(notes) == 1


def test_a_failure_to_start_the_pool_is_a_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    import concurrent.futures

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", refuse)
    pool, note = _workers.start_pool(2, int, ())
    assert pool is None
    assert note is not None
    assert note.startswith("worker processes could not be started (Broken pipe)")


def _die() -> None:
    os._exit(9)


def test_a_worker_that_dies_is_one_line() -> None:
    pool, note = _workers.start_pool(2, int, ())
    if pool is None:
        pytest.skip(f"no worker processes here: {note}")
    try:
        future = pool.submit(_die)
        with pytest.raises(InputError) as caught:
            runner._worker_result(future, "drawing x")
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    (line,) = caught.value.problems
    assert line.startswith("a worker process of this run ended unexpectedly while drawing x")
