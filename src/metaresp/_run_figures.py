"""Which figures a run draws, one analysis at a time (:mod:`metaresp.runner` draws them).

- The plan's figure scope (:attr:`metaresp.plan.Plan.figures`): ``primary`` draws the
  forest and cumulative plots of the primary analyses only, ``all`` those of every
  analysis. An analysis outside the scope has no cumulative analysis either (it is a
  figure's data: ``cumulative.csv`` holds what the cumulative plots draw).
- The forest plot is known as soon as the analysis is fitted (:func:`forest_job`), so it
  can be drawn while the next analyses are fitted; the cumulative plots wait for the
  cumulative refits (:func:`cumulative_jobs`).
- The bounds of :mod:`metaresp._figure_bounds` keep each figure's size independent of the
  corpus; :func:`figure_notes` says, in one line each, what they leave out.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, cast, get_args

from metaresp._runcache import FIGURE_SETTINGS

if TYPE_CHECKING:  # pragma: no cover
    from metaresp._plan_spec import Analysis, FigureScope
    from metaresp.analysis import AnalysisResult
    from metaresp.cumulative import CumulativeStep

__all__ = [
    "CUMULATIVE_MIN_K",
    "Job",
    "cumulative_data",
    "cumulative_jobs",
    "drawn",
    "figure_notes",
    "figure_scope",
    "forest_job",
    "more_pages",
    "with_pages",
]

CUMULATIVE_MIN_K = int(FIGURE_SETTINGS["cumulative_min_k"])
"""Smallest class drawn as a cumulative plot (fewer studies only repeat the forest plot)."""

Job = tuple[str, Any, Path, Path]
"""One figure to draw: its kind (``forest``, ``cumulative``), its data, PNG and SVG."""


def drawn(scope: FigureScope, analysis: Analysis) -> bool:
    """Whether a run with the figure scope ``scope`` (the plan's ``figures``) draws the
    figures of ``analysis``."""
    return scope == "all" or analysis.role == "primary"


def figure_scope(value: str, where: str) -> FigureScope:
    """``value`` as a figure scope; an :class:`~metaresp.errors.InputError` naming
    ``where`` (``--figures``, ``figures``) when it is none."""
    from metaresp._plan_spec import FigureScope
    from metaresp.errors import InputError

    choices = get_args(FigureScope)
    if value not in choices:
        raise InputError(f"{where}: {value!r} is not one of {', '.join(choices)}")
    return cast("FigureScope", value)


def cumulative_data(fig: Any) -> tuple[Any, ...]:
    """What a cumulative plot draws (its rows and labels; not where it is written)."""
    return (fig.rows, fig.title, fig.outcome, fig.model_note)


def forest_job(folder: Path, result: AnalysisResult) -> Job | None:
    """The forest plot of ``result`` to draw, cut into pages (none for an empty analysis
    or one past :data:`~metaresp.limits.MAX_PLOT_ROWS` studies)."""
    from metaresp._figure_bounds import forest_note, paged

    if result.empty or forest_note(result.analysis.name, _studies(result)) is not None:
        return None
    png = folder / "figures" / f"{result.analysis.name}.png"
    return ("forest", paged(result.forest_data()), png, png.with_suffix(".svg"))


def cumulative_jobs(
    folder: Path, result: AnalysisResult, steps: dict[str, list[CumulativeStep]]
) -> list[Job]:
    """The cumulative plots of ``result`` to draw (at most
    :data:`~metaresp._figure_bounds.MAX_CUMULATIVE_PLOT_ROWS` steps each)."""
    from metaresp._figure_bounds import bounded_cumulative
    from metaresp.cumulative import figures_of

    jobs: list[Job] = []
    for fig in figures_of(folder, result, steps, min_k=CUMULATIVE_MIN_K):
        fig = bounded_cumulative(fig)[0]
        jobs.append(("cumulative", fig, fig.png, fig.png.with_suffix(".svg")))
    return jobs


def _studies(result: AnalysisResult) -> int:
    """The rows of studies in a forest plot of ``result`` (one per record of each group,
    as :func:`metaresp.forestdata.build` draws them)."""
    return sum(len(g.records) for g in result.pooled.groups)


def figure_notes(
    folder: Path, result: AnalysisResult, steps: dict[str, list[CumulativeStep]]
) -> list[str]:
    """What :func:`forest_job` and :func:`cumulative_jobs` leave out of an analysis's
    figures, in one line each; from counts alone, so that an analysis taken from the cache
    is not built again."""
    from metaresp._figure_bounds import bounded_cumulative, forest_note
    from metaresp.cumulative import figures_of

    notes = []
    if not result.empty:
        note = forest_note(result.analysis.name, _studies(result))
        if note is not None:
            notes.append(note)
    for fig in figures_of(folder, result, steps, min_k=CUMULATIVE_MIN_K):
        note = bounded_cumulative(fig)[1]
        if note is not None:
            notes.append(note)
    return notes


def more_pages(folder: Path, png: str) -> list[str]:
    """The files of a plot's further pages (``NAME-p2.png``, ``NAME-p2.svg``, ...;
    :func:`metaresp.forest.save_forest`, :func:`~metaresp.forest.save_cumulative`)
    present in ``folder``, as relative names."""
    from metaresp._forest_pages import page_paths

    first = folder / png
    n = 1
    while page_paths(first, n + 1)[-1][0].exists():
        n += 1
    return [p.relative_to(folder).as_posix() for pair in page_paths(first, n)[1:] for p in pair]


def with_pages(folder: Path, files: tuple[Path, ...]) -> tuple[Path, ...]:
    """A forest plot's (png, svg) with the files of its further pages, in page order."""
    more = more_pages(folder, files[0].relative_to(folder).as_posix())
    return (*files[:2], *(folder / f for f in more))
