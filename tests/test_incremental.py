"""Incremental runs: an analysis whose inputs did not change is taken from the previous
run (fit and figures), the others are redone; the folder is still replaced as a whole."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from factories import SMALL_CORPUS, Count, write_corpus
from metaresp import runner
from metaresp.runner import RunOutput, run_plan_files

#: Two analyses that share no record: bispecific and CAR T, each pooled on its own.
TWO_PLAN = """\
version: 1
title: Two classes
analyses:
  - name: bis-orr
    title: "Bispecific: {outcome}"
    selection: {population: post-bcma-cart, setting: first-salvage, outcome: ORR,
                modality: [bispecific]}
  - name: cart-orr
    title: "CAR T: {outcome}"
    selection: {population: post-bcma-cart, setting: first-salvage, outcome: ORR,
                modality: [CAR-T]}
"""

pytestmark = pytest.mark.usefixtures("quick_figures")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write_corpus(tmp_path / "extractions", SMALL_CORPUS)
    (tmp_path / "plan.yaml").write_text(TWO_PLAN, encoding="utf-8")
    return tmp_path


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The stems of the figures drawn (still drawn, and counted)."""
    names: list[str] = []
    save = runner._save_one

    def counting(job: tuple[str, Any, Path, Path]) -> None:
        names.append(job[2].stem)
        save(job)

    monkeypatch.setattr(runner, "_save_one", counting)
    return names


def run(project: Path, **kwargs: Any) -> RunOutput:
    return run_plan_files(
        project / "plan.yaml", project / "extractions", project / "results", **kwargs
    )


def test_unchanged_run_reuses_everything(project: Path, drawn: list[str]) -> None:
    first = run(project)
    assert (first.reused, first.with_figures) == (0, 2)
    assert sorted(drawn) == ["bis-orr", "bis-orr--all-studies", "cart-orr"]
    before = {
        p.relative_to(project / "results").as_posix(): p.read_bytes()
        for p in (project / "results").rglob("*")
        if p.is_file() and ".cache" not in p.parts
    }
    drawn.clear()
    second = run(project)
    assert drawn == []
    assert (second.reused, second.with_figures, second.figures_drawn) == (2, 2, 0)
    assert "reused 2 of 2 analyses' figures" in second.message()
    after = {
        p.relative_to(project / "results").as_posix(): p.read_bytes()
        for p in (project / "results").rglob("*")
        if p.is_file() and ".cache" not in p.parts
    }
    assert after.keys() == before.keys()
    for name in before:
        if name not in ("report.html", "pooled.xlsx"):  # these carry the time of writing
            assert after[name] == before[name], name
    assert list(second.files) == sorted(before)


def test_new_study_redraws_only_its_class(project: Path, drawn: list[str]) -> None:
    run(project)
    summary = json.loads((project / "results" / "summary.json").read_text(encoding="utf-8"))
    drawn.clear()
    write_corpus(
        project / "extractions", (Count("cartc-2024", 2024, "CAR-T", 5, 8),)
    )  # the CAR T class now has three studies: a cumulative plot too
    again = run(project)
    assert sorted(drawn) == ["cart-orr", "cart-orr--all-studies"]
    assert (again.reused, again.with_figures) == (1, 2)
    new = json.loads((project / "results" / "summary.json").read_text(encoding="utf-8"))
    by_name = {a["analysis"]: a for a in new["analyses"]}
    old_by_name = {a["analysis"]: a for a in summary["analyses"]}
    assert by_name["bis-orr"]["estimates"] == old_by_name["bis-orr"]["estimates"]
    assert "cartc-2024/cart/ORR" in by_name["cart-orr"]["estimates"][0]["records"]
    cumulative = (project / "results" / "cumulative.csv").read_text(encoding="utf-8")
    assert "cartc-2024/cart/ORR" in cumulative
    assert "bisc-2023/tec/ORR" in cumulative


def test_what_the_analysis_sees_decides(project: Path, drawn: list[str]) -> None:
    """An edit of what no analysis record carries (the citation) is reused; an edit of a
    group's name (shown in its forest plot) redoes that analysis."""
    run(project)
    drawn.clear()
    path = project / "extractions" / "bisa-2021.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("Test J.", "Test Journal."), encoding="utf-8")
    assert run(project).reused == 2
    assert drawn == []
    path.write_text(text.replace("name: Teclistamab", "name: Teclistamab (Q2W)"), "utf-8")
    assert run(project).reused == 1
    assert sorted(drawn) == ["bis-orr", "bis-orr--all-studies"]


def test_force_and_settings_redraw_everything(
    project: Path, drawn: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run(project)
    drawn.clear()
    assert run(project, force=True).reused == 0
    assert len(drawn) == 3
    drawn.clear()
    monkeypatch.setattr(runner, "FIGURE_DPI", 60)  # another resolution: other figures
    assert run(project).reused == 0
    assert len(drawn) == 3


def test_failed_run_leaves_the_previous_results_and_cache(
    project: Path, drawn: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run(project)
    results = project / "results"
    before = {p.relative_to(results): p.read_bytes() for p in results.rglob("*") if p.is_file()}
    write_corpus(project / "extractions", (Count("bisd-2024", 2024, "bispecific", 9, 12),))

    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    with monkeypatch.context() as mp:
        mp.setattr(runner, "_write_report", broken)
        with pytest.raises(OSError, match="disk full"):
            run(project)
    after = {p.relative_to(results): p.read_bytes() for p in results.rglob("*") if p.is_file()}
    assert after == before
    assert sorted(p.name for p in project.iterdir()) == ["extractions", "plan.yaml", "results"]
    drawn.clear()
    assert run(project).reused == 1  # the cache of the intact previous run still serves
    assert sorted(drawn) == ["bis-orr", "bis-orr--all-studies"]


def test_damaged_cache_means_redo(project: Path, drawn: list[str]) -> None:
    run(project)
    for pickle in (project / "results" / ".cache" / "analyses").iterdir():
        pickle.write_bytes(b"not a pickle")
    drawn.clear()
    assert run(project).reused == 0  # refitted ...
    assert drawn == []  # ... but the figures, whose data did not change, are kept
    (project / "results" / ".cache" / "manifest.json").write_text("{", encoding="utf-8")
    assert run(project).reused == 0
    assert len(drawn) == 3


def test_files_the_run_does_not_own_stay(project: Path) -> None:
    run(project)
    notes = project / "results" / "notes" / "mine.txt"
    notes.parent.mkdir()
    notes.write_text("my notes", encoding="utf-8")
    (project / "results" / "figures" / "stale.png").write_bytes(b"not ours to keep")
    write_corpus(project / "extractions", (Count("bisd-2024", 2024, "bispecific", 9, 12),))
    again = run(project)
    assert notes.read_text(encoding="utf-8") == "my notes"
    assert not (project / "results" / "figures" / "stale.png").exists()
    assert "notes/mine.txt" not in again.files
    run(project)  # kept again by a run that reuses everything
    assert notes.read_text(encoding="utf-8") == "my notes"


def test_a_new_study_redraws_the_cumulative_plot_of_its_class_only(
    tmp_path: Path, drawn: list[str]
) -> None:
    """One analysis with two classes: a new CAR T study moves the analysis (its forest plot
    shows both classes) but not the bispecific class's cumulative plot."""
    from factories import SMALL_PLAN

    extractions = write_corpus(tmp_path / "extractions", SMALL_CORPUS)
    write_corpus(extractions, (Count("cartc-2024", 2024, "CAR-T", 5, 8),))
    (tmp_path / "plan.yaml").write_text(SMALL_PLAN, encoding="utf-8")
    first = run(tmp_path)
    assert sorted(drawn) == [
        "post-cart-orr",
        "post-cart-orr--bispecific-antibody",
        "post-cart-orr--car-t",
    ]
    drawn.clear()
    write_corpus(extractions, (Count("cartd-2025", 2025, "CAR-T", 2, 6),))
    again = run(tmp_path)
    assert sorted(drawn) == ["post-cart-orr", "post-cart-orr--car-t"]
    assert (first.figures_total, again.figures_total, again.figures_drawn) == (3, 3, 2)


#: TWO_PLAN with a sensitivity analysis of the CAR T analysis (another model).
SCOPED_PLAN = TWO_PLAN.replace(
    "                modality: [CAR-T]}\n",
    "                modality: [CAR-T]}\n"
    "    sensitivity:\n"
    "      - name: cart-orr-dl\n"
    "        description: DerSimonian-Laird\n"
    "        model: {estimator: DL}\n",
)


def test_sensitivity_analyses_get_figures_only_when_asked(project: Path, drawn: list[str]) -> None:
    """The plan's figure scope: the primary analyses' plots by default; ``figures: all``
    in the plan, or ``figures="all"`` for one run, draws the sensitivity analysis's too,
    and a run back in the default scope leaves them out again (the run owns its figures)."""
    (project / "plan.yaml").write_text(SCOPED_PLAN, encoding="utf-8")
    first = run(project)
    assert sorted(drawn) == ["bis-orr", "bis-orr--all-studies", "cart-orr"]
    assert first.not_drawn == 1
    assert "(none for the 1 sensitivity analyses: --figures all)" in first.message()
    figures = project / "results" / "figures"
    assert not (figures / "cart-orr-dl.png").exists()
    steps = (project / "results" / "cumulative.csv").read_text(encoding="utf-8")
    assert "cart-orr-dl" not in steps  # no cumulative analysis outside the scope either
    report = (project / "results" / "report.html").read_text(encoding="utf-8")
    assert report.count("No forest plot: a run draws the primary analyses") == 1
    summary = json.loads((project / "results" / "summary.json").read_text(encoding="utf-8"))
    assert [a["analysis"] for a in summary["analyses"]] == ["bis-orr", "cart-orr", "cart-orr-dl"]

    drawn.clear()
    every = run(project, figures="all")
    assert drawn == ["cart-orr-dl"]  # the primary analyses' figures are reused
    assert (every.not_drawn, every.reused) == (0, 2)
    assert (figures / "cart-orr-dl.png").exists()
    steps = (project / "results" / "cumulative.csv").read_text(encoding="utf-8")
    assert "cart-orr-dl" in steps
    report = (project / "results" / "report.html").read_text(encoding="utf-8")
    assert "No forest plot: a run draws the primary analyses" not in report

    drawn.clear()
    back = run(project)
    assert drawn == []
    assert back.not_drawn == 1
    assert not (figures / "cart-orr-dl.png").exists()

    from metaresp.errors import InputError

    with pytest.raises(InputError, match=r"^figures: 'some' is not one of primary, all$"):
        run(project, figures="some")

    (project / "plan.yaml").write_text(SCOPED_PLAN + "figures: all\n", encoding="utf-8")
    in_plan = run(project)
    assert drawn == ["cart-orr-dl"]
    assert in_plan.not_drawn == 0


def test_a_figure_scope_the_plan_does_not_know_is_named(project: Path) -> None:
    from metaresp.errors import InputError
    from metaresp.plan import load_plan

    (project / "plan.yaml").write_text(TWO_PLAN + "figures: some\n", encoding="utf-8")
    with pytest.raises(InputError) as info:
        load_plan(project / "plan.yaml")
    line = len(TWO_PLAN.splitlines()) + 1
    assert str(info.value).endswith(
        f"plan.yaml:{line}: figures: Input should be 'primary' or 'all'"
    )
